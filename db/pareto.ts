// The stored Pareto analysis: one `pareto_points` row per candidate model (the baseline and every
// completed round) with its front flags, one `run_rows` row per run (its best round, for the
// runs table), one `pareto` row per campaign (counts, hypervolume). SQL only: what the flags and
// numbers are is computed in analysis/pareto.ts.
import type { Candidate, ObjectiveValues } from '../core';
import type { Db } from './connection';

/** One candidate model as stored: its objective values, front flags and the constraints it breaks. */
export interface ParetoPoint extends Candidate {
  /** the run's k (0: the baseline) */
  k: number;
  weights: Record<string, number> | null;
  /** test accuracy, what users see (decisions use validation error) */
  accuracy: number | null;
  objective: number | null;
  onFront: boolean;
  onFront2d: boolean;
  /** energy measured by RAPL relative to the baseline (scaled to the baseline's estimate), else estimated (horowitz-45nm) */
  energyMeasured: boolean;
  /** the candidate deploys 8-bit weights (stock tfjs uint8): its bytes, accuracy and energy are the 8-bit variant's */
  deployedInt8: boolean;
  /** hard constraints this model breaks (accuracy drop, maxLatencyMs, maxBytes): such a model is never recommended */
  violates: string[];
}

/** A run's row in the runs table: its best round (`best`), best test accuracy over its rounds, front membership. */
export interface RunRow {
  runId: string;
  rounds: number;
  best: ParetoPoint;
  bestAccuracy: number | null;
  frontRounds: number;
}

/** A campaign's stored summary (`pareto` row). */
export interface StoredPareto {
  campaignId: string;
  points: number;
  front: number;
  frontDistinct: number;
  front2d: number;
  /** normalised hypervolume (fraction of the box [0, reference]) */
  hypervolume: number;
  /** true when some contribution to `hypervolume` was estimated (quasi-Monte Carlo), not computed exactly */
  hypervolumeApprox: boolean;
  reference: ObjectiveValues;
  /** the campaign's constraints the flags were computed under (JSON; '' = unknown) */
  constraints: string;
  /** full recomputes requested and not yet stored (> 0: the stored analysis is behind) */
  pendingFull: number;
  updatedAt: string;
}

const now = () => new Date().toISOString();

const POINT_SQL = `SELECT p.run_id AS runId, p.round, r.k, r.weights_json AS weights, p.val_error, p.bytes, p.latency_ms, p.energy_j, p.accuracy,
  p.objective, p.on_front, p.on_front_2d, p.energy_measured, p.violates, p.deployed_int8
  FROM pareto_points p JOIN runs r ON r.id = p.run_id`;

interface PointSqlRow {
  runId: string;
  round: number;
  k: number;
  weights: string | null;
  val_error: number;
  bytes: number;
  latency_ms: number;
  energy_j: number;
  accuracy: number | null;
  objective: number | null;
  on_front: number;
  on_front_2d: number;
  energy_measured: number;
  violates: string;
  deployed_int8: number;
}

const toPoint = (x: PointSqlRow): ParetoPoint => ({
  runId: x.runId,
  round: x.round,
  k: x.k,
  weights: x.weights ? JSON.parse(x.weights) : null,
  values: { error: x.val_error, bytes: x.bytes, latencyMs: x.latency_ms, energyJ: x.energy_j },
  accuracy: x.accuracy,
  objective: x.objective,
  onFront: x.on_front === 1,
  onFront2d: x.on_front_2d === 1,
  energyMeasured: x.energy_measured === 1,
  violates: x.violates ? x.violates.split(', ') : [],
  deployedInt8: x.deployed_int8 === 1,
});

/** Every stored candidate of a campaign, ordered by run k then round (the baseline first). */
export function readParetoPoints(db: Db, campaignId: string): ParetoPoint[] {
  return (db.prepare(`${POINT_SQL} WHERE p.campaign_id = ? ORDER BY r.k, p.round`).all(campaignId) as PointSqlRow[]).map(toPoint);
}

/** One stored candidate, or undefined. */
export function readParetoPoint(db: Db, campaignId: string, runId: string, round: number): ParetoPoint | undefined {
  const x = db.prepare(`${POINT_SQL} WHERE p.campaign_id = ? AND p.run_id = ? AND p.round = ?`).get(campaignId, runId, round) as PointSqlRow | undefined;
  return x && toPoint(x);
}

/** The stored candidates flagged on the 4-objective front (`front`) or the error-vs-latency front (`front2d`). */
export function readFront(db: Db, campaignId: string, which: 'front' | 'front2d'): ParetoPoint[] {
  const col = which === 'front' ? 'p.on_front' : 'p.on_front_2d';
  return (db.prepare(`${POINT_SQL} WHERE p.campaign_id = ? AND ${col} = 1`).all(campaignId) as PointSqlRow[]).map(toPoint);
}

/** A run's stored candidates, by round. */
export function readRunPoints(db: Db, campaignId: string, runId: string): ParetoPoint[] {
  return (db.prepare(`${POINT_SQL} WHERE p.campaign_id = ? AND p.run_id = ? ORDER BY p.round`).all(campaignId, runId) as PointSqlRow[]).map(toPoint);
}

/** A campaign's stored summary, or undefined before its first analysis. */
export function readParetoSummary(db: Db, campaignId: string): StoredPareto | undefined {
  const x = db
    .prepare(
      `SELECT campaign_id AS campaignId, points, front, front_distinct AS frontDistinct, front_2d AS front2d, hypervolume, hypervolume_approx AS approx,
         reference_json AS reference, constraints_json AS constraints, pending_full AS pendingFull, updated_at AS updatedAt FROM pareto WHERE campaign_id = ?`,
    )
    .get(campaignId) as (Omit<StoredPareto, 'reference' | 'hypervolumeApprox'> & { reference: string; approx: number }) | undefined;
  if (!x) return undefined;
  const { approx, reference, ...rest } = x;
  return { ...rest, reference: JSON.parse(reference), hypervolumeApprox: approx === 1 };
}

/** The counts a summary holds, counted from the stored flags. */
export function countParetoPoints(db: Db, campaignId: string): { points: number; front: number; frontDistinct: number; front2d: number } {
  const one = (sql: string) => (db.prepare(sql).get(campaignId) as { n: number }).n;
  return {
    points: one(`SELECT COUNT(*) n FROM pareto_points WHERE campaign_id = ?`),
    front: one(`SELECT COUNT(*) n FROM pareto_points WHERE campaign_id = ? AND on_front = 1`),
    frontDistinct: one(
      `SELECT COUNT(*) n FROM (SELECT DISTINCT val_error, bytes, latency_ms, energy_j FROM pareto_points WHERE campaign_id = ? AND on_front = 1)`,
    ),
    front2d: one(`SELECT COUNT(*) n FROM pareto_points WHERE campaign_id = ? AND on_front_2d = 1`),
  };
}

const insertPointSql = `INSERT INTO pareto_points (campaign_id, run_id, round, val_error, accuracy, bytes, latency_ms, energy_j, energy_measured, objective, on_front, on_front_2d, violates, deployed_int8)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const pointParams = (campaignId: string, p: ParetoPoint) => [
  campaignId,
  p.runId,
  p.round,
  p.values.error,
  p.accuracy,
  p.values.bytes,
  p.values.latencyMs,
  p.values.energyJ,
  p.energyMeasured ? 1 : 0,
  p.objective,
  p.onFront ? 1 : 0,
  p.onFront2d ? 1 : 0,
  p.violates.join(', '),
  p.deployedInt8 ? 1 : 0,
];

/** Inserts one candidate (its key must be new). */
export function insertParetoPoint(db: Db, campaignId: string, p: ParetoPoint): void {
  db.prepare(insertPointSql).run(...pointParams(campaignId, p));
}

/** Sets the 4-objective (`front`) or error-vs-latency (`front2d`) flag of stored candidates. */
export function setFrontFlag(
  db: Db,
  campaignId: string,
  which: 'front' | 'front2d',
  points: ReadonlyArray<{ runId: string; round: number }>,
  on: boolean,
): void {
  const q = db.prepare(`UPDATE pareto_points SET ${which === 'front' ? 'on_front' : 'on_front_2d'} = ? WHERE campaign_id = ? AND run_id = ? AND round = ?`);
  for (const p of points) q.run(on ? 1 : 0, campaignId, p.runId, p.round);
}

/** Writes a run's row in the runs table (created by the `run` record op; inserted here if missing). */
export function putRunRow(db: Db, campaignId: string, row: RunRow): void {
  const b = row.best;
  db.prepare(
    `INSERT INTO run_rows (campaign_id, run_id, k, rounds, best_round, accuracy, best_accuracy, val_error, bytes, latency_ms, energy_j, energy_measured, objective, on_front, front_rounds, rejected, deployed_int8)
     VALUES (@c, @runId, @k, @rounds, @bestRound, @accuracy, @bestAccuracy, @error, @bytes, @latency, @energy, @measured, @objective, @onFront, @frontRounds, @rejected, @int8)
     ON CONFLICT(campaign_id, run_id) DO UPDATE SET rounds = excluded.rounds, best_round = excluded.best_round, accuracy = excluded.accuracy,
       best_accuracy = excluded.best_accuracy, val_error = excluded.val_error, bytes = excluded.bytes, latency_ms = excluded.latency_ms,
       energy_j = excluded.energy_j, energy_measured = excluded.energy_measured, objective = excluded.objective, on_front = excluded.on_front,
       front_rounds = excluded.front_rounds, rejected = excluded.rejected, deployed_int8 = excluded.deployed_int8`,
  ).run({
    c: campaignId,
    runId: row.runId,
    k: b.k,
    rounds: row.rounds,
    bestRound: b.round,
    accuracy: b.accuracy,
    bestAccuracy: row.bestAccuracy,
    error: b.values.error,
    bytes: b.values.bytes,
    latency: b.values.latencyMs,
    energy: b.values.energyJ,
    measured: b.energyMeasured ? 1 : 0,
    objective: b.objective,
    onFront: row.frontRounds > 0 ? 1 : 0,
    frontRounds: row.frontRounds,
    rejected: b.violates.join(', '),
    int8: b.deployedInt8 ? 1 : 0,
  });
}

/**
 * Writes a campaign's summary. `settle`: how many requested full recomputes this write answers
 * (pending_full drops by that much, never below 0); otherwise pending_full is kept.
 */
export function putParetoSummary(db: Db, s: Omit<StoredPareto, 'pendingFull' | 'updatedAt'>, settle = 0): void {
  db.prepare(
    `INSERT INTO pareto (campaign_id, points, front, front_distinct, front_2d, hypervolume, hypervolume_approx, reference_json, constraints_json, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT(campaign_id) DO UPDATE SET points = excluded.points, front = excluded.front, front_distinct = excluded.front_distinct,
       front_2d = excluded.front_2d, hypervolume = excluded.hypervolume, hypervolume_approx = excluded.hypervolume_approx,
       reference_json = excluded.reference_json, constraints_json = excluded.constraints_json, updated_at = excluded.updated_at,
       pending_full = MAX(0, pending_full - ?)`,
  ).run(
    s.campaignId,
    s.points,
    s.front,
    s.frontDistinct,
    s.front2d,
    s.hypervolume,
    s.hypervolumeApprox ? 1 : 0,
    JSON.stringify(s.reference),
    s.constraints,
    now(),
    settle,
  );
}

/** Replaces a campaign's whole stored analysis in one transaction (a full recompute). */
export function replacePareto(db: Db, summary: Omit<StoredPareto, 'pendingFull' | 'updatedAt'>, points: ParetoPoint[], runRows: RunRow[], settle = 0): void {
  const c = summary.campaignId;
  db.transaction(() => {
    db.prepare(`DELETE FROM pareto_points WHERE campaign_id = ?`).run(c);
    const put = db.prepare(insertPointSql);
    for (const p of points) put.run(...pointParams(c, p));
    for (const r of runRows) putRunRow(db, c, r);
    putParetoSummary(db, summary, settle);
  })();
}

/** Records that a full recompute is owed (the stored analysis is behind until one settles it). No-op before the first analysis. */
export function requestFullRecompute(db: Db, campaignId: string): void {
  db.prepare(`UPDATE pareto SET pending_full = pending_full + 1 WHERE campaign_id = ?`).run(campaignId);
}
