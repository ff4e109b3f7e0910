// "The best model for my budget": every candidate (the baseline and every completed round of every
// run, each in the variant it deploys) filtered by budget clauses (`latency<=0.45,bytes<=20000,
// accuracy>=0.85`), sorted by any objective, with the recommended model per weight vector WITHIN
// the budget: core's `recommend` (lowest J(w) within the hard constraints) over exactly the
// candidates the budget admits. The dashboard's candidates view and `prunewise pareto
// --max-latency-ms … --max-bytes …` both call `withinBudget`, so they show the same set and the
// same recommendation. Pure over the stored points (no SQL here besides the reads in db/).
import { recommend, type Weights } from '../core';
import { readParetoPoints, runWeights, type Db, type ParetoPoint } from '../db';
import { settingOf, type Setting } from './pareto';

/** The candidate columns a budget clause or a sort may name, and each one's value (null: unknown). */
export const CANDIDATE_COLUMNS = {
  run: (p: ParetoPoint) => p.k,
  round: (p: ParetoPoint) => p.round,
  /** test accuracy of exactly the deployed weight files, fraction */
  accuracy: (p: ParetoPoint) => p.accuracy,
  /** validation error of the deployed variant, fraction (what decisions use) */
  error: (p: ParetoPoint) => p.values.error,
  /** deployed weight bytes */
  bytes: (p: ParetoPoint) => p.values.bytes,
  /** THE model latency, ms (core/latency.ts) */
  latency: (p: ParetoPoint) => p.values.latencyMs,
  /** joules per inference */
  energy: (p: ParetoPoint) => p.values.energyJ,
  /** J(w) of the run's own weights (the baseline: 1) */
  objective: (p: ParetoPoint) => p.objective,
  /** 1 on the 4-objective Pareto front */
  front: (p: ParetoPoint) => (p.onFront ? 1 : 0),
} as const;
export type CandidateColumn = keyof typeof CANDIDATE_COLUMNS;
export const CANDIDATE_OPS = ['<=', '>=', '!=', '=', '<', '>'] as const;
export interface BudgetClause {
  col: CandidateColumn;
  op: (typeof CANDIDATE_OPS)[number];
  value: number;
}

/** The CLI's budget flags as clauses: --max-latency-ms, --max-bytes, --min-accuracy (a fraction). */
export function budgetClauses(b: { maxLatencyMs?: number; maxBytes?: number; minAccuracy?: number }): BudgetClause[] {
  const out: BudgetClause[] = [];
  if (b.maxLatencyMs !== undefined) out.push({ col: 'latency', op: '<=', value: b.maxLatencyMs });
  if (b.maxBytes !== undefined) out.push({ col: 'bytes', op: '<=', value: b.maxBytes });
  if (b.minAccuracy !== undefined) out.push({ col: 'accuracy', op: '>=', value: b.minAccuracy });
  return out;
}

/** `latency<=0.45,bytes<=20000` (the dashboard's `filter` text) from clauses. */
export const formatBudget = (clauses: BudgetClause[]): string => clauses.map((c) => `${c.col}${c.op}${c.value}`).join(',');

const holds = (v: number | null, op: BudgetClause['op'], x: number): boolean => {
  if (v === null) return false; // unknown never fits a budget
  switch (op) {
    case '<=':
      return v <= x;
    case '>=':
      return v >= x;
    case '<':
      return v < x;
    case '>':
      return v > x;
    case '=':
      return v === x;
    case '!=':
      return v !== x;
  }
};

/** Whether a candidate meets every clause. */
export const meetsBudget = (p: ParetoPoint, clauses: readonly BudgetClause[]): boolean =>
  clauses.every((c) => holds(CANDIDATE_COLUMNS[c.col](p), c.op, c.value));

export interface BudgetRecommendation {
  /** the run whose weight vector this is */
  runId: string;
  k: number;
  weights: Record<string, number>;
  /** the recommended candidate within the budget, or null when none fits */
  pick: ParetoPoint | null;
  objective: number | null;
}

/**
 * The candidates that meet `clauses`, sorted (nulls last; ties by run, then round), and per weight
 * vector the recommended one among them: core's `recommend` within the campaign's hard constraints.
 */
export function withinBudget(
  points: readonly ParetoPoint[],
  clauses: readonly BudgetClause[],
  s: Pick<Setting, 'baseline' | 'reference' | 'limits'>,
  vectors: ReadonlyArray<{ runId: string; k: number; weights: Record<string, number> }>,
  sort: { col: CandidateColumn; dir: 'asc' | 'desc' } = { col: 'run', dir: 'asc' },
): { points: ParetoPoint[]; recommendations: BudgetRecommendation[] } {
  const fit = points.filter((p) => meetsBudget(p, clauses));
  const val = CANDIDATE_COLUMNS[sort.col];
  const sign = sort.dir === 'asc' ? 1 : -1;
  fit.sort((a, b) => {
    const x = val(a);
    const y = val(b);
    if (x !== y) {
      if (x === null) return 1;
      if (y === null) return -1;
      return sign * (x - y);
    }
    return a.k - b.k || a.round - b.round;
  });
  // recommend() keeps the first of equal J: give it the candidates in (run, round) order whatever the sort
  const byId = fit.slice().sort((a, b) => a.k - b.k || a.round - b.round);
  const recommendations = vectors.map((v) => {
    const best = recommend(byId, v.weights as unknown as Weights, s.baseline, s.reference, s.limits);
    return { runId: v.runId, k: v.k, weights: v.weights, pick: best?.pick ?? null, objective: best?.j ?? null };
  });
  return { points: fit, recommendations };
}

/**
 * The candidates view of a campaign from its stored analysis (a read: never computes or writes),
 * for the first `maxVectors` runs' weight vectors. Undefined before the baseline is measured.
 */
export function candidatesView(
  db: Db,
  campaignId: string,
  clauses: readonly BudgetClause[],
  sort: { col: CandidateColumn; dir: 'asc' | 'desc' },
  maxVectors = 20,
  extra?: Weights,
): ({ all: number; setting: Setting } & ReturnType<typeof withinBudget>) | undefined {
  const s = settingOf(db, campaignId);
  if (!s) return undefined;
  const points = readParetoPoints(db, campaignId);
  // a weight vector given by hand (runId '', k 0) is answered first
  const vectors = [...(extra ? [{ runId: '', k: 0, weights: extra as unknown as Record<string, number> }] : []), ...runWeights(db, campaignId, maxVectors)];
  return { all: points.length, setting: s, ...withinBudget(points, clauses, s, vectors, sort) };
}
