// The only code that writes SQL. Callers get typed functions; every write is idempotent,
// keyed by campaign / run / round / stage, so a retried activity never duplicates a row.
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MIGRATIONS } from './migrations';
import { objectiveValues, type ObjectiveValues, type Weights } from '../core';
import { distinctCount, front2d, normalisedHypervolume, paretoFront, recommend, referencePoint, violations, type Candidate } from '../core';
import { stageIndex, type Stage, type State } from '../core';
import type { RecordOp } from './types';

export * from './types';
export * from './views';

export type Db = Database.Database;

export function openDb(file: string): Db {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

const now = () => new Date().toISOString();

export interface NewCampaign {
  id: string;
  name: string;
  spec: unknown;
  specHash: string;
  specFile: string;
  seed: number;
}

export function createCampaign(db: Db, c: NewCampaign): void {
  db.prepare(
    `INSERT INTO campaigns (id, name, state, spec_json, spec_hash, spec_file, seed, created_at, updated_at)
     VALUES (@id, @name, 'pending', @spec, @specHash, @specFile, @seed, @at, @at)
     ON CONFLICT(id) DO NOTHING`,
  ).run({ ...c, spec: JSON.stringify(c.spec), at: now() });
}

/** Applies a batch of state changes in one transaction (the `record` activity calls this). */
export function applyRecord(db: Db, ops: RecordOp[], opts: { refreshPareto?: boolean } = {}): void {
  db.transaction(() => {
    for (const op of ops) applyOne(db, op);
  })();
  if (opts.refreshPareto === false) return; // bulk loads refresh once at the end
  // a new candidate model: recompute the campaign's Pareto analysis
  const campaigns = new Set<string>();
  for (const op of ops) {
    const runId = op.op === 'round' && op.state === 'completed' ? op.runId : op.op === 'stage' && op.stage === 'baseline' && op.state === 'completed' ? op.runId : null;
    if (!runId) continue;
    const row = db.prepare(`SELECT campaign_id FROM runs WHERE id = ?`).get(runId) as { campaign_id: string } | undefined;
    if (row) campaigns.add(row.campaign_id);
  }
  for (const id of campaigns) refreshPareto(db, id);
}

function applyOne(db: Db, op: RecordOp): void {
  const at = now();
  switch (op.op) {
    case 'campaign':
      db.prepare(`UPDATE campaigns SET state = ?, error = ?, updated_at = ? WHERE id = ?`).run(
        op.state,
        op.error ?? null,
        at,
        op.campaignId,
      );
      return;
    case 'env':
      db.prepare(
        `UPDATE campaigns SET backend = ?, tfjs_version = ?, prunewise_version = ?, updated_at = ? WHERE id = ?`,
      ).run(op.backend, op.tfjsVersion, op.prunewiseVersion, at, op.campaignId);
      return;
    case 'run':
      db.prepare(
        `INSERT INTO runs (id, campaign_id, k, kind, weights_json, state, error, created_at, updated_at)
         VALUES (@runId, @campaignId, @k, @kind, @weights, @state, @error, @at, @at)
         ON CONFLICT(id) DO UPDATE SET state = excluded.state, error = excluded.error, updated_at = excluded.updated_at`,
      ).run({
        runId: op.runId,
        campaignId: op.campaignId,
        k: op.k,
        kind: op.kind,
        weights: op.weights ? JSON.stringify(op.weights) : null,
        state: op.state,
        error: op.error ?? null,
        at,
      });
      if (op.kind === 'run') {
        db.prepare(`INSERT INTO run_rows (campaign_id, run_id, k) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`).run(op.campaignId, op.runId, op.k);
      }
      return;
    case 'round':
      db.prepare(
        `INSERT INTO rounds (run_id, round, state, objective, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(run_id, round) DO UPDATE SET state = excluded.state,
           objective = COALESCE(excluded.objective, rounds.objective), updated_at = excluded.updated_at`,
      ).run(op.runId, op.round, op.state, op.objective ?? null, at);
      return;
    case 'stage': {
      db.prepare(
        `INSERT INTO stages (run_id, round, stage, state, attempts, ms, resumed_from_step, task_queue, error, started_at, updated_at)
         VALUES (@runId, @round, @stage, @state, @attempts, @ms, @resumed, @queue, @error, @at, @at)
         ON CONFLICT(run_id, round, stage) DO UPDATE SET
           state = excluded.state,
           attempts = COALESCE(excluded.attempts, stages.attempts),
           ms = COALESCE(excluded.ms, stages.ms),
           resumed_from_step = COALESCE(excluded.resumed_from_step, stages.resumed_from_step),
           task_queue = COALESCE(excluded.task_queue, stages.task_queue),
           error = excluded.error,
           updated_at = excluded.updated_at`,
      ).run({
        runId: op.runId,
        round: op.round,
        stage: op.stage,
        state: op.state,
        attempts: op.attempts ?? null,
        ms: op.ms ?? null,
        resumed: op.resumedFromStep ?? null,
        queue: op.taskQueue ?? null,
        error: op.error ?? null,
        at,
      });
      const putMetric = db.prepare(
        `INSERT INTO metrics (run_id, round, stage, key, step, value) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id, round, stage, key, step) DO UPDATE SET value = excluded.value`,
      );
      for (const [key, value] of Object.entries(op.metrics ?? {})) {
        if (Number.isFinite(value)) putMetric.run(op.runId, op.round, op.stage, key, 0, value);
      }
      for (const [key, points] of Object.entries(op.series ?? {})) {
        for (const [step, value] of points) {
          if (Number.isFinite(value)) putMetric.run(op.runId, op.round, op.stage, key, step, value);
        }
      }
      const putArtifact = db.prepare(
        `INSERT INTO artifacts (run_id, round, stage, kind, path, bytes, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id, round, stage, kind) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, sha256 = excluded.sha256`,
      );
      for (const a of op.artifacts ?? []) putArtifact.run(op.runId, op.round, op.stage, a.kind, a.path, a.bytes, a.sha256, at);
      return;
    }
    case 'event':
      db.prepare(
        `INSERT INTO events (event_key, campaign_id, run_id, round, stage, kind, message, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event_key) DO NOTHING`,
      ).run(op.key, op.campaignId, op.runId ?? null, op.round ?? null, op.stage ?? null, op.kind, op.message, at);
      return;
  }
}

// ---------------------------------------------------------------- reads

export interface CampaignRow {
  id: string;
  name: string;
  state: State;
  spec_json: string;
  spec_hash: string;
  spec_file: string;
  seed: number;
  backend: string | null;
  tfjs_version: string | null;
  prunewise_version: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

export function listCampaigns(db: Db): CampaignRow[] {
  return db.prepare(`SELECT * FROM campaigns ORDER BY created_at DESC, id`).all() as CampaignRow[];
}

export function getCampaign(db: Db, id: string): CampaignRow | undefined {
  return db.prepare(`SELECT * FROM campaigns WHERE id = ?`).get(id) as CampaignRow | undefined;
}

export interface EventRow {
  seq: number;
  event_key: string;
  campaign_id: string;
  run_id: string | null;
  round: number | null;
  stage: string | null;
  kind: string;
  message: string;
  at: string;
}

export function eventsSince(db: Db, campaignId: string, afterSeq: number): EventRow[] {
  return db
    .prepare(`SELECT rowid AS seq, * FROM events WHERE campaign_id = ? AND rowid > ? ORDER BY rowid`)
    .all(campaignId, afterSeq) as EventRow[];
}

export interface StageStatus {
  state: State;
  attempts: number | null;
  ms: number | null;
  resumedFromStep: number | null;
  taskQueue: string | null;
  error: string | null;
}

export interface RoundMetrics {
  accuracy?: number;
  params?: number;
  flops?: number;
  bytes?: number;
  latencyMs?: number;
  [key: string]: number | undefined;
}

export interface CampaignStatus {
  id: string;
  name: string;
  state: State;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  seed: number;
  specHash: string;
  backend: string | null;
  tfjsVersion: string | null;
  prunewiseVersion: string | null;
  baseline: RoundMetrics | null;
  /** the baseline step (train or load, then measure): state, attempts, time */
  baselineStage: StageStatus | null;
  runs: Array<{
    id: string;
    k: number;
    weights: Record<string, number>;
    state: State;
    error: string | null;
    rounds: Array<{
      round: number;
      state: State;
      objective: number | null;
      stages: Record<string, StageStatus>;
      metrics: RoundMetrics;
    }>;
  }>;
}

/** Per-round metrics shown to users: what the round ended with (later stages override earlier). */

interface StageRow {
  round: number;
  stage: string;
  state: State;
  attempts: number | null;
  ms: number | null;
  resumed_from_step: number | null;
  task_queue: string | null;
  error: string | null;
}

const toStageStatus = (s: StageRow): StageStatus => ({
  state: s.state,
  attempts: s.attempts,
  ms: s.ms,
  resumedFromStep: s.resumed_from_step,
  taskQueue: s.task_queue,
  error: s.error,
});

export function campaignStatus(db: Db, id: string): CampaignStatus | undefined {
  const c = getCampaign(db, id);
  if (!c) return undefined;
  const runs = db.prepare(`SELECT * FROM runs WHERE campaign_id = ? ORDER BY k`).all(id) as Array<{
    id: string;
    k: number;
    kind: string;
    weights_json: string | null;
    state: State;
    error: string | null;
  }>;
  const roundsQ = db.prepare(`SELECT * FROM rounds WHERE run_id = ? ORDER BY round`);
  const stagesQ = db.prepare(`SELECT * FROM stages WHERE run_id = ? ORDER BY round`);
  const metricsQ = db.prepare(`SELECT round, stage, key, value FROM metrics WHERE run_id = ? AND step = 0`);

  const metricsByRound = (runId: string) => {
    const rows = metricsQ.all(runId) as Array<{ round: number; stage: Stage; key: string; value: number }>;
    rows.sort((a, b) => stageIndex(a.stage) - stageIndex(b.stage));
    const out = new Map<number, RoundMetrics>();
    for (const r of rows) {
      const m = out.get(r.round) ?? {};
      m[r.key] = r.value;
      out.set(r.round, m);
    }
    return out;
  };

  const stageRows = (runId: string) =>
    (stagesQ.all(runId) as StageRow[]).sort((a, b) => a.round - b.round || stageIndex(a.stage) - stageIndex(b.stage));

  let baseline: RoundMetrics | null = null;
  let baselineStage: StageStatus | null = null;
  const outRuns: CampaignStatus['runs'] = [];
  for (const r of runs) {
    const metrics = metricsByRound(r.id);
    if (r.kind === 'baseline') {
      baseline = metrics.get(0) ?? null;
      const st = stageRows(r.id)[0];
      if (st) baselineStage = toStageStatus(st);
      continue;
    }
    const rounds = new Map<number, CampaignStatus['runs'][number]['rounds'][number]>();
    for (const rd of roundsQ.all(r.id) as Array<{ round: number; state: State; objective: number | null }>) {
      rounds.set(rd.round, { round: rd.round, state: rd.state, objective: rd.objective, stages: {}, metrics: metrics.get(rd.round) ?? {} });
    }
    for (const s of stageRows(r.id)) {
      let rd = rounds.get(s.round);
      if (!rd) {
        rd = { round: s.round, state: 'running', objective: null, stages: {}, metrics: metrics.get(s.round) ?? {} };
        rounds.set(s.round, rd);
      }
      rd.stages[s.stage] = toStageStatus(s); // rows come in stage order, so keys do too
    }
    outRuns.push({
      id: r.id,
      k: r.k,
      weights: r.weights_json ? JSON.parse(r.weights_json) : {},
      state: r.state,
      error: r.error,
      rounds: [...rounds.values()].sort((a, b) => a.round - b.round),
    });
  }
  return {
    id: c.id,
    name: c.name,
    state: c.state,
    error: c.error,
    createdAt: c.created_at,
    updatedAt: c.updated_at,
    seed: c.seed,
    specHash: c.spec_hash,
    backend: c.backend,
    tfjsVersion: c.tfjs_version,
    prunewiseVersion: c.prunewise_version,
    baseline,
    baselineStage,
    runs: outRuns,
  };
}

export function countRows(db: Db, campaignId: string): Record<string, number> {
  const one = (sql: string) => (db.prepare(sql).get(campaignId) as { n: number }).n;
  return {
    runs: one(`SELECT COUNT(*) n FROM runs WHERE campaign_id = ?`),
    rounds: one(`SELECT COUNT(*) n FROM rounds JOIN runs ON runs.id = rounds.run_id WHERE runs.campaign_id = ?`),
    stages: one(`SELECT COUNT(*) n FROM stages JOIN runs ON runs.id = stages.run_id WHERE runs.campaign_id = ?`),
    metrics: one(`SELECT COUNT(*) n FROM metrics JOIN runs ON runs.id = metrics.run_id WHERE runs.campaign_id = ?`),
    artifacts: one(`SELECT COUNT(*) n FROM artifacts JOIN runs ON runs.id = artifacts.run_id WHERE runs.campaign_id = ?`),
    events: one(`SELECT COUNT(*) n FROM events WHERE campaign_id = ?`),
  };
}

/** Deletes every row of a campaign (files are the caller's job). */
export function deleteCampaign(db: Db, id: string): void {
  db.transaction(() => {
    db.prepare(`DELETE FROM events WHERE campaign_id = ?`).run(id);
    db.prepare(`DELETE FROM campaigns WHERE id = ?`).run(id); // runs, rounds, stages, metrics, artifacts cascade
  })();
}

/** Stages running now (for live progress lines). */
export function runningStages(db: Db, campaignId: string): Array<{ run_id: string; round: number; stage: string; updated_at: string; task_queue: string | null }> {
  return db
    .prepare(
      `SELECT s.run_id, s.round, s.stage, s.updated_at, s.task_queue FROM stages s JOIN runs r ON r.id = s.run_id
       WHERE r.campaign_id = ? AND s.state = 'running' ORDER BY s.run_id`,
    )
    .all(campaignId) as never;
}

// ---------------------------------------------------------------- Pareto analysis

export interface ParetoPoint extends Candidate {
  k: number;
  weights: Record<string, number> | null;
  /** test accuracy, what users see (decisions use validation error) */
  accuracy: number | null;
  objective: number | null;
  onFront: boolean;
  onFront2d: boolean;
  /** energy measured by RAPL relative to the baseline (scaled to the baseline's estimate), else estimated (horowitz-45nm) */
  energyMeasured: boolean;
  /** hard constraints this model breaks (accuracy drop, maxLatencyMs, maxBytes): such a model is never recommended */
  violates: string[];
}

export interface ParetoSummary {
  campaignId: string;
  points: ParetoPoint[];
  front: number;
  frontDistinct: number;
  front2d: number;
  hypervolume: number;
  /** latencies are roofline estimates for a target profile, not measurements */
  latencyEstimated: boolean;
  reference: ObjectiveValues;
  baseline: ObjectiveValues;
  /** per run: the recommended model for its weight vector (lowest J(w) within the accuracy constraint) */
  recommendations: Array<{ runId: string; weights: Record<string, number>; pick: { runId: string; round: number } | null; objective: number | null }>;
}

/**
 * Recomputes the campaign's Pareto analysis from its recorded metrics and stores it (points with
 * front flags, and the summary). Candidates: the baseline and every completed round of every run.
 */
export function refreshPareto(db: Db, campaignId: string): ParetoSummary | undefined {
  const p = computePareto(db, campaignId);
  if (p) storePareto(db, p);
  return p;
}

/** The campaign's Pareto analysis from its recorded metrics, without writing anything (readers, GETs). */
export function computePareto(db: Db, campaignId: string): ParetoSummary | undefined {
  const s = campaignStatus(db, campaignId);
  const c = getCampaign(db, campaignId);
  if (!s || !c || !s.baseline || s.baseline.valAccuracy === undefined || s.baseline.latencyMs === undefined) return undefined;
  const spec = JSON.parse(c.spec_json) as { constraints?: { maxAccuracyDrop?: number; maxLatencyMs?: number; maxBytes?: number } };
  const limits = { maxLatencyMs: spec.constraints?.maxLatencyMs, maxBytes: spec.constraints?.maxBytes };
  const b = s.baseline;
  const baseline: ObjectiveValues = { error: 1 - b.valAccuracy!, bytes: b.bytes ?? 0, latencyMs: b.latencyMs!, energyJ: b.energyJEstimated ?? 0 };
  const reference = referencePoint(baseline, spec.constraints?.maxAccuracyDrop ?? 2);
  const baselineRun = db.prepare(`SELECT id FROM runs WHERE campaign_id = ? AND kind = 'baseline'`).get(campaignId) as { id: string } | undefined;
  const points: ParetoPoint[] = [];
  const point = (runId: string, k: number, weights: Record<string, number> | null, round: number, values: ObjectiveValues, accuracy: number | null, objective: number | null): ParetoPoint => ({
    runId, k, weights, round, values, accuracy, objective, onFront: false, onFront2d: false, energyMeasured: false, violates: [],
  });
  if (baselineRun) points.push(point(baselineRun.id, 0, null, 0, baseline, b.accuracy ?? null, 1));
  for (const r of s.runs) {
    for (const rd of r.rounds) {
      const m = rd.metrics;
      if (rd.state !== 'completed' || m.valAccuracy === undefined || m.latencyMs === undefined) continue;
      const { energyMeasured, ...values } = objectiveValues(m, m.deployedBytes ?? m.bytes ?? 0, baseline.latencyMs, baseline.energyJ);
      points.push({ ...point(r.id, r.k, r.weights, rd.round, values, m.accuracy ?? null, rd.objective), energyMeasured });
    }
  }
  for (const p of points) p.violates = violations(p.values, reference, limits);
  const frontList = paretoFront(points);
  const front = new Set(frontList);
  const f2 = new Set(front2d(points));
  for (const p of points) {
    p.onFront = front.has(p);
    p.onFront2d = f2.has(p);
  }
  const hv = normalisedHypervolume(points, reference);
  const recommendations = s.runs.map((r) => {
    // J(w) is monotone in every objective and the limits are upper bounds, so the lowest feasible J is on the front
    const best = recommend(frontList, r.weights as unknown as Weights, baseline, reference, limits);
    return { runId: r.id, weights: r.weights, pick: best ? { runId: best.pick.runId, round: best.pick.round } : null, objective: best?.j ?? null };
  });
  return { campaignId, points, front: front.size, frontDistinct: distinctCount([...front]), front2d: f2.size, hypervolume: hv, latencyEstimated: b.latencyEstimated === 1, reference, baseline, recommendations };
}

function storePareto(db: Db, p: ParetoSummary): void {
  const { campaignId, points } = p;
  const at = now();
  db.transaction(() => {
    db.prepare(`DELETE FROM pareto_points WHERE campaign_id = ?`).run(campaignId);
    const put = db.prepare(
      `INSERT INTO pareto_points (campaign_id, run_id, round, val_error, accuracy, bytes, latency_ms, energy_j, energy_measured, objective, on_front, on_front_2d, violates)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const p of points) {
      put.run(campaignId, p.runId, p.round, p.values.error, p.accuracy, p.values.bytes, p.values.latencyMs, p.values.energyJ, p.energyMeasured ? 1 : 0, p.objective, p.onFront ? 1 : 0, p.onFront2d ? 1 : 0, p.violates.join(', '));
    }
    // one row per run for the runs table: its best round (lowest J among rounds within the hard
    // constraints, else lowest J), best accuracy over its rounds, and whether any round is on the front
    const byRun = new Map<string, ParetoPoint[]>();
    for (const p of points) {
      if (p.round === 0) continue;
      const list = byRun.get(p.runId);
      if (list) list.push(p);
      else byRun.set(p.runId, [p]);
    }
    const putRow = db.prepare(
      `INSERT INTO run_rows (campaign_id, run_id, k, rounds, best_round, accuracy, best_accuracy, val_error, bytes, latency_ms, energy_j, energy_measured, objective, on_front, front_rounds, rejected)
       VALUES (@c, @runId, @k, @rounds, @bestRound, @accuracy, @bestAccuracy, @error, @bytes, @latency, @energy, @measured, @objective, @onFront, @frontRounds, @rejected)
       ON CONFLICT(campaign_id, run_id) DO UPDATE SET rounds = excluded.rounds, best_round = excluded.best_round, accuracy = excluded.accuracy,
         best_accuracy = excluded.best_accuracy, val_error = excluded.val_error, bytes = excluded.bytes, latency_ms = excluded.latency_ms,
         energy_j = excluded.energy_j, energy_measured = excluded.energy_measured, objective = excluded.objective, on_front = excluded.on_front,
         front_rounds = excluded.front_rounds, rejected = excluded.rejected`,
    );
    const jOf = (p: ParetoPoint) => p.objective ?? Infinity;
    for (const [runId, ps] of byRun) {
      const ok = ps.filter((p) => p.violates.length === 0);
      const best = (ok.length ? ok : ps).reduce((a, b) => (jOf(b) < jOf(a) || (jOf(b) === jOf(a) && b.round < a.round) ? b : a));
      const accs = ps.map((p) => p.accuracy).filter((a): a is number => a !== null);
      const frontRounds = ps.filter((p) => p.onFront).length;
      putRow.run({
        c: campaignId, runId, k: best.k, rounds: ps.length, bestRound: best.round, accuracy: best.accuracy, bestAccuracy: accs.length ? Math.max(...accs) : null,
        error: best.values.error, bytes: best.values.bytes, latency: best.values.latencyMs, energy: best.values.energyJ, measured: best.energyMeasured ? 1 : 0,
        objective: best.objective, onFront: frontRounds > 0 ? 1 : 0, frontRounds, rejected: best.violates.join(', '),
      });
    }
    db.prepare(
      `INSERT INTO pareto (campaign_id, points, front, front_distinct, front_2d, hypervolume, reference_json, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(campaign_id) DO UPDATE SET points = excluded.points, front = excluded.front, front_distinct = excluded.front_distinct,
         front_2d = excluded.front_2d, hypervolume = excluded.hypervolume, reference_json = excluded.reference_json, updated_at = excluded.updated_at`,
    ).run(campaignId, points.length, p.front, p.frontDistinct, p.front2d, p.hypervolume, JSON.stringify(p.reference), at);
  })();
}
