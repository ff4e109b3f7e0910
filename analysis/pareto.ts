// The Pareto analysis of a campaign: read through db/, compute with core/pareto, store through db/.
// Candidates: the baseline and every completed round of every run.
//  - computePareto: the full analysis from the recorded metrics, read-only (`prunewise pareto`).
//  - refreshPareto: the full analysis, stored (bulk loads, and the full-recompute worker thread).
//  - refreshAfterRecord: after the store activity's applyRecord, updates the stored analysis for
//    the candidates that batch completed, one at a time (front flags, the runs' rows, the
//    hypervolume plus the new point's exclusive contribution) — O(front), not O(candidates).
//    What it cannot update in place (a baseline or constraints that changed, a candidate whose
//    numbers changed, a full recompute still owed) it reports for a full recompute.
import {
  bestRound,
  distinctCount,
  dominates,
  front2d,
  hypervolumeContribution,
  normalisedHypervolume,
  normalisedKeys,
  normalisedVector,
  objectiveValues,
  paretoFront,
  recommend,
  referencePoint,
  violations,
  type HardLimits,
  type ObjectiveKey,
  type ObjectiveValues,
  type Weights,
} from '../core';
import {
  baselineRunOf,
  campaignStatus,
  completedRounds,
  countParetoPoints,
  getCampaign,
  insertParetoPoint,
  metricMap,
  putParetoSummary,
  putRunRow,
  readFront,
  readParetoPoint,
  readParetoPoints,
  readParetoSummary,
  readRunPoints,
  replacePareto,
  roundOf,
  runOf,
  runWeights,
  setFrontFlag,
  type Db,
  type ParetoPoint,
  type RecordOp,
  type RunRow,
} from '../db';

export type { ParetoPoint };

export interface ParetoSummary {
  campaignId: string;
  points: ParetoPoint[];
  front: number;
  frontDistinct: number;
  front2d: number;
  /** normalised hypervolume: a fraction of the box [0, reference] */
  hypervolume: number;
  /** true when the hypervolume holds an estimated contribution (never for computePareto, which is exact) */
  hypervolumeApprox: boolean;
  /** latencies are roofline estimates for a target profile, not measurements */
  latencyEstimated: boolean;
  reference: ObjectiveValues;
  baseline: ObjectiveValues;
  /** the campaign's hard limits (constraints.maxLatencyMs / maxBytes; absent when not set) */
  limits: HardLimits;
  /** per run: the recommended model for its weight vector (lowest J(w) within the hard constraints) */
  recommendations: Array<{ runId: string; weights: Record<string, number>; pick: { runId: string; round: number } | null; objective: number | null }>;
}

/** The 2-D front's axes: error against latency. */
const KEYS_2D: readonly ObjectiveKey[] = ['latencyMs', 'error'];

/** What a campaign's analysis is computed under: the baseline, the reference point, the hard limits. */
export interface Setting {
  baseline: ObjectiveValues;
  baselineRunId: string;
  baselineAccuracy: number | null;
  latencyEstimated: boolean;
  reference: ObjectiveValues;
  limits: HardLimits;
  /** the constraints as stored with the analysis (a change means a full recompute) */
  constraints: string;
}

/** The campaign's setting (baseline, reference point, hard limits), or undefined before its baseline is measured. */
export function settingOf(db: Db, campaignId: string): Setting | undefined {
  const c = getCampaign(db, campaignId);
  const baselineRunId = baselineRunOf(db, campaignId);
  if (!c || !baselineRunId) return undefined;
  const b = metricMap(db, baselineRunId, 0);
  if (b.valAccuracy === undefined || b.latencyMs === undefined) return undefined;
  const spec = JSON.parse(c.spec_json) as { constraints?: { maxAccuracyDrop?: number; maxLatencyMs?: number; maxBytes?: number } };
  const drop = spec.constraints?.maxAccuracyDrop ?? 2;
  const limits = { maxLatencyMs: spec.constraints?.maxLatencyMs, maxBytes: spec.constraints?.maxBytes };
  const baseline: ObjectiveValues = { error: 1 - b.valAccuracy, bytes: b.bytes ?? 0, latencyMs: b.latencyMs, energyJ: b.energyJEstimated ?? 0 };
  return {
    baseline,
    baselineRunId,
    baselineAccuracy: b.accuracy ?? null,
    latencyEstimated: b.latencyEstimated === 1,
    reference: referencePoint(baseline, drop),
    limits,
    constraints: JSON.stringify({ maxAccuracyDrop: drop, ...limits }),
  };
}

/** A completed round's candidate from its metrics (flags unset), or undefined when it has no validation error or latency. */
function roundCandidate(
  s: Setting,
  run: { id: string; k: number; weights: Record<string, number> | null },
  round: number,
  m: Record<string, number | undefined>,
  objective: number | null,
): ParetoPoint | undefined {
  if (m.valAccuracy === undefined || m.latencyMs === undefined) return undefined;
  const { energyMeasured, ...values } = objectiveValues(m, m.deployedBytes ?? m.bytes ?? 0, s.baseline.latencyMs, s.baseline.energyJ);
  return {
    runId: run.id,
    k: run.k,
    weights: run.weights,
    round,
    values,
    // like with like: the test accuracy of exactly the deployed weight files
    accuracy: m.deployedAccuracy ?? (m.deployedInt8 === 1 ? m.int8Accuracy : m.accuracy) ?? null,
    objective,
    onFront: false,
    onFront2d: false,
    energyMeasured,
    violates: violations(values, s.reference, s.limits),
    deployedInt8: m.deployedInt8 === 1,
  };
}

function baselineCandidate(s: Setting): ParetoPoint {
  return {
    runId: s.baselineRunId,
    k: 0,
    weights: null,
    round: 0,
    values: s.baseline,
    accuracy: s.baselineAccuracy,
    objective: 1,
    onFront: false,
    onFront2d: false,
    energyMeasured: false,
    violates: violations(s.baseline, s.reference, s.limits),
    deployedInt8: false,
  };
}

/** A run's row for the runs table from its candidates (THE best round: core's bestRound). */
function runRowOf(points: ParetoPoint[]): RunRow | undefined {
  const best = bestRound(points);
  if (!best) return undefined;
  const accs = points.map((p) => p.accuracy).filter((a): a is number => a !== null);
  return {
    runId: best.runId,
    rounds: points.length,
    best,
    bestAccuracy: accs.length ? Math.max(...accs) : null,
    frontRounds: points.filter((p) => p.onFront).length,
  };
}

/**
 * The recommended model for each run's weight vector (core's `recommend` within the hard limits).
 * J(w) is monotone in every objective and the limits are upper bounds, so the lowest feasible J is
 * on the front: passing only the front gives the same answer.
 */
function recommendationsFor(
  s: Setting,
  runs: ReadonlyArray<{ id: string; weights: Record<string, number> }>,
  front: ParetoPoint[],
): ParetoSummary['recommendations'] {
  return runs.map((r) => {
    const best = recommend(front, r.weights as unknown as Weights, s.baseline, s.reference, s.limits);
    return { runId: r.id, weights: r.weights, pick: best ? { runId: best.pick.runId, round: best.pick.round } : null, objective: best?.j ?? null };
  });
}

/**
 * The campaign's full Pareto analysis from its recorded metrics, writing nothing (`prunewise
 * pareto`, benches). Undefined when the campaign is unknown or its baseline is not measured yet.
 * Cost: the exact 4-D hypervolume dominates (minutes at 50 000 candidates).
 */
export function computePareto(db: Db, campaignId: string): ParetoSummary | undefined {
  const s = settingOf(db, campaignId);
  const status = campaignStatus(db, campaignId);
  if (!s || !status) return undefined;
  const points: ParetoPoint[] = [baselineCandidate(s)];
  for (const r of status.runs) {
    for (const rd of r.rounds) {
      if (rd.state !== 'completed') continue;
      const p = roundCandidate(s, { id: r.id, k: r.k, weights: r.weights }, rd.round, rd.metrics, rd.objective);
      if (p) points.push(p);
    }
  }
  const frontList = paretoFront(points);
  const front = new Set(frontList);
  const f2 = new Set(front2d(points));
  for (const p of points) {
    p.onFront = front.has(p);
    p.onFront2d = f2.has(p);
  }
  const recommendations = recommendationsFor(s, status.runs, frontList);
  return {
    campaignId,
    points,
    front: front.size,
    frontDistinct: distinctCount(frontList),
    front2d: f2.size,
    hypervolume: normalisedHypervolume(points, s.reference),
    hypervolumeApprox: false,
    latencyEstimated: s.latencyEstimated,
    reference: s.reference,
    baseline: s.baseline,
    limits: s.limits,
    recommendations,
  };
}

/**
 * The campaign's analysis as stored by the store activity (instant at any size), with the
 * recommendation per run computed from the stored front by core's `recommend`. Falls back to
 * `computePareto` when nothing is stored yet, a full recompute is owed, or the stored analysis was
 * computed under other constraints. Writes nothing: `prunewise pareto` is a read.
 */
export function readPareto(db: Db, campaignId: string): ParetoSummary | undefined {
  const s = settingOf(db, campaignId);
  const stored = readParetoSummary(db, campaignId);
  if (!s || !stored || stored.pendingFull > 0 || stored.constraints !== s.constraints) return computePareto(db, campaignId);
  const points = readParetoPoints(db, campaignId);
  const frontList = points.filter((p) => p.onFront);
  const recommendations = recommendationsFor(s, campaignStatus(db, campaignId)?.runs ?? [], frontList);
  return {
    campaignId,
    points,
    front: stored.front,
    frontDistinct: stored.frontDistinct,
    front2d: stored.front2d,
    hypervolume: stored.hypervolume,
    hypervolumeApprox: stored.hypervolumeApprox,
    latencyEstimated: s.latencyEstimated,
    reference: stored.reference,
    baseline: s.baseline,
    limits: s.limits,
    recommendations,
  };
}

/**
 * THE campaign-level recommendation for a weight vector: over every candidate of the campaign
 * (the stored analysis; core's `recommend` within the hard constraints). The same rule `pareto`
 * and the dashboard apply per run's weights. Undefined when nothing fits or nothing is analysed.
 */
export function recommendedModel(db: Db, campaignId: string, w: Weights): { runId: string; round: number; objective: number } | undefined {
  const s = settingOf(db, campaignId);
  if (!s) return undefined;
  // the stored front when it is current; otherwise one read-only full computation
  const stored = readParetoSummary(db, campaignId);
  const front =
    stored && stored.pendingFull === 0 && stored.constraints === s.constraints
      ? readFront(db, campaignId, 'front')
      : (computePareto(db, campaignId)?.points.filter((x) => x.onFront) ?? []);
  const best = recommend(front, w, s.baseline, s.reference, s.limits);
  return best ? { runId: best.pick.runId, round: best.pick.round, objective: best.j } : undefined;
}

/**
 * The campaign-level recommendation for the weight vectors of its first `limit` runs (the
 * dashboard's "recommended model per weight vector"): core's `recommend` over the stored front,
 * the rule `pareto` and `export --recommended` apply. Empty while the stored analysis is missing or
 * behind (a page never triggers a full computation).
 */
export function recommendedPerWeights(
  db: Db,
  campaignId: string,
  limit = 20,
): Array<{ runId: string; k: number; weights: Record<string, number>; pick: ParetoPoint | null; objective: number | null }> {
  const s = settingOf(db, campaignId);
  const stored = readParetoSummary(db, campaignId);
  if (!s || !stored || stored.pendingFull > 0 || stored.constraints !== s.constraints) return [];
  const front = readFront(db, campaignId, 'front');
  return runWeights(db, campaignId, limit).map((r) => {
    const best = recommend(front, r.weights as unknown as Weights, s.baseline, s.reference, s.limits);
    return { ...r, pick: best?.pick ?? null, objective: best?.j ?? null };
  });
}

/**
 * Recomputes the campaign's full analysis and stores it (replacing the stored one; settles the
 * full recomputes requested before it read). For bulk loads and the full-recompute worker thread;
 * never called on the store activity's own thread for a campaign with completed rounds.
 */
export function refreshPareto(db: Db, campaignId: string): ParetoSummary | undefined {
  // read the owed count and the data in one snapshot: requests made after it stay owed
  const { p, owed } = db.transaction(() => ({ p: computePareto(db, campaignId), owed: readParetoSummary(db, campaignId)?.pendingFull ?? 0 }))();
  if (!p) return undefined;
  const s = settingOf(db, campaignId)!;
  const byRun = new Map<string, ParetoPoint[]>();
  for (const x of p.points) {
    if (x.round === 0) continue; // the baseline has no row in the runs table
    const list = byRun.get(x.runId);
    if (list) list.push(x);
    else byRun.set(x.runId, [x]);
  }
  const rows = [...byRun.values()].map((ps) => runRowOf(ps)!);
  replacePareto(
    db,
    {
      campaignId,
      points: p.points.length,
      front: p.front,
      frontDistinct: p.frontDistinct,
      front2d: p.front2d,
      hypervolume: p.hypervolume,
      hypervolumeApprox: false,
      reference: p.reference,
      constraints: s.constraints,
    },
    p.points,
    rows,
    owed,
  );
  return p;
}

export interface RefreshOptions {
  /**
   * The most non-dominated front points (clipped to the new point's box) for which a contribution
   * is computed exactly; above it, estimated from `samples` quasi-random points and the stored
   * hypervolume is labelled approximate. Default 600 exact, 20 000 samples.
   */
  maxExact?: number;
  samples?: number;
}

export interface RefreshResult {
  /** candidates added to stored analyses in place */
  added: number;
  /** campaigns whose stored analysis needs a full recompute (refreshPareto), not done here */
  full: string[];
}

const sameValues = (a: ObjectiveValues, b: ObjectiveValues) =>
  a.error === b.error && a.bytes === b.bytes && a.latencyMs === b.latencyMs && a.energyJ === b.energyJ;
const samePoint = (a: ParetoPoint, b: ParetoPoint) =>
  sameValues(a.values, b.values) &&
  a.accuracy === b.accuracy &&
  a.objective === b.objective &&
  a.energyMeasured === b.energyMeasured &&
  a.violates.join() === b.violates.join();
/** computePareto's candidate order (baseline, then run k, then round): among equal 2-D points the first is flagged. */
const before = (a: ParetoPoint, b: ParetoPoint) => a.k < b.k || (a.k === b.k && a.round < b.round);

/**
 * Updates the stored analysis after `applyRecord(db, ops)`: each round the batch completed (and
 * the baseline) becomes a stored candidate — its flags, the flags of front points it dominates,
 * the rows of the runs concerned, the counts, and the hypervolume plus its exclusive contribution.
 * Idempotent: a candidate already stored with the same numbers is left alone, so a retried batch
 * changes nothing. A campaign that needs a full recompute is returned in `full` (not recomputed),
 * except when it has no completed round yet (the baseline alone: computed here, it is one point).
 */
export function refreshAfterRecord(db: Db, ops: RecordOp[], opts: RefreshOptions = {}): RefreshResult {
  // the rounds this batch touched, and whether it completed a baseline, per campaign
  const touched = new Map<string, { baseline: boolean; rounds: Map<string, { runId: string; round: number }> }>();
  const runs = new Map<string, ReturnType<typeof runOf>>();
  const runInfo = (runId: string) => {
    if (!runs.has(runId)) runs.set(runId, runOf(db, runId));
    return runs.get(runId);
  };
  for (const op of ops) {
    if (op.op !== 'round' && op.op !== 'stage') continue;
    if (op.op === 'stage' && op.state !== 'completed') continue;
    const run = runInfo(op.runId);
    if (!run) continue;
    let t = touched.get(run.campaignId);
    if (!t) touched.set(run.campaignId, (t = { baseline: false, rounds: new Map() }));
    if (run.kind === 'baseline') t.baseline = true;
    else t.rounds.set(`${op.runId}#${op.round}`, { runId: op.runId, round: op.round });
  }
  const out: RefreshResult = { added: 0, full: [] };
  for (const [campaignId, t] of touched) {
    const s = settingOf(db, campaignId);
    if (!s) continue; // no measured baseline yet: there is no analysis to update
    const stored = readParetoSummary(db, campaignId);
    let needsFull = !stored || stored.pendingFull > 0 || stored.constraints !== s.constraints || !sameValues(stored.reference, s.reference);
    if (!needsFull && t.baseline) {
      const b = readParetoPoint(db, campaignId, s.baselineRunId, 0);
      needsFull = !b || !samePoint(b, baselineCandidate(s));
    }
    const fresh: ParetoPoint[] = [];
    for (const { runId, round } of needsFull ? [] : t.rounds.values()) {
      const rd = roundOf(db, runId, round);
      const run = runInfo(runId)!;
      const p =
        rd?.state === 'completed'
          ? roundCandidate(s, { id: runId, k: run.k, weights: run.weights }, round, metricMap(db, runId, round), rd.objective)
          : undefined;
      const old = readParetoPoint(db, campaignId, runId, round);
      if (old && p && samePoint(old, p)) continue; // a retry: already stored
      if (old) {
        needsFull = true; // its numbers changed, or it stopped being a candidate
        break;
      }
      if (p) fresh.push(p);
    }
    if (needsFull) {
      if (completedRounds(db, campaignId) === 0) refreshPareto(db, campaignId);
      else out.full.push(campaignId);
      continue;
    }
    if (fresh.length === 0) continue;
    db.transaction(() => addCandidates(db, campaignId, s, stored!, fresh, opts))();
    out.added += fresh.length;
  }
  return out;
}

/** Adds new candidates to a campaign's stored analysis, one at a time (inside the caller's transaction). */
function addCandidates(
  db: Db,
  campaignId: string,
  s: Setting,
  stored: NonNullable<ReturnType<typeof readParetoSummary>>,
  fresh: ParetoPoint[],
  opts: RefreshOptions,
): void {
  let front = readFront(db, campaignId, 'front');
  let flagged2d = readFront(db, campaignId, 'front2d');
  const keys = normalisedKeys(s.reference);
  const ones = keys.map(() => 1);
  const norm = (p: ParetoPoint) => normalisedVector(p.values, s.reference, keys);
  let hypervolume = stored.hypervolume;
  let approx = stored.hypervolumeApprox;
  const runsToRow = new Set<string>();
  for (const p of fresh) {
    // hypervolume: what p adds to the front so far (dominated points add nothing, so the front suffices)
    const c = hypervolumeContribution(norm(p), front.map(norm), ones, { maxExact: opts.maxExact ?? 600, samples: opts.samples });
    hypervolume += c.volume;
    approx ||= !c.exact;
    // 4-objective front: if anything dominates p, a front member does (transitivity)
    p.onFront = !front.some((q) => dominates(q.values, p.values));
    if (p.onFront) {
      const off = front.filter((q) => dominates(p.values, q.values));
      setFrontFlag(db, campaignId, 'front', off, false);
      for (const q of off) if (q.round > 0) runsToRow.add(q.runId);
      front = front.filter((q) => !off.includes(q));
      front.push(p);
    }
    // error-vs-latency front: one flagged point per distinct (latency, error), the first in candidate order
    if (!flagged2d.some((q) => dominates(q.values, p.values, KEYS_2D))) {
      const twin = flagged2d.find((q) => q.values.latencyMs === p.values.latencyMs && q.values.error === p.values.error);
      const off = twin ? (before(p, twin) ? [twin] : []) : flagged2d.filter((q) => dominates(p.values, q.values, KEYS_2D));
      p.onFront2d = !twin || off.length > 0;
      setFrontFlag(db, campaignId, 'front2d', off, false);
      flagged2d = flagged2d.filter((q) => !off.includes(q));
      if (p.onFront2d) flagged2d.push(p);
    }
    insertParetoPoint(db, campaignId, p);
    if (p.round > 0) runsToRow.add(p.runId);
  }
  for (const runId of runsToRow) {
    const row = runRowOf(readRunPoints(db, campaignId, runId));
    if (row) putRunRow(db, campaignId, row);
  }
  putParetoSummary(db, {
    campaignId,
    ...countParetoPoints(db, campaignId),
    hypervolume,
    hypervolumeApprox: approx,
    reference: s.reference,
    constraints: s.constraints,
  });
}
