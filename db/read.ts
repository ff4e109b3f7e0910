// Reads of the recorded state: campaigns, runs, rounds, stages, events (the dashboard's views are
// in views.ts, the stored Pareto analysis in pareto.ts).
import type { Db } from './connection';
import { stageIndex, type Stage, type State } from '../core';

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
  /** sha256 of the campaign's frozen latency table (migration 5), null before one is recorded */
  latency_table_sha256?: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

/** Every campaign, newest first. */
export function listCampaigns(db: Db): CampaignRow[] {
  return db.prepare(`SELECT * FROM campaigns ORDER BY created_at DESC, id`).all() as CampaignRow[];
}

/** One campaign's row, or undefined. */
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

/** A campaign's events recorded after sequence number `afterSeq` (0: all), oldest first. */
export function eventsSince(db: Db, campaignId: string, afterSeq: number): EventRow[] {
  return db.prepare(`SELECT rowid AS seq, * FROM events WHERE campaign_id = ? AND rowid > ? ORDER BY rowid`).all(campaignId, afterSeq) as EventRow[];
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

/**
 * The version of the `status --json` contract (CampaignStatus + the CLI's `live` and `eta`): 2 = with this
 * field, `live`, `eta`, `blocked`, artifacts in the content-addressed store; output without it is version 1. A field's meaning never changes within a version.
 */
export const STATUS_JSON_VERSION = 2;

export interface CampaignStatus {
  /** STATUS_JSON_VERSION */
  version: number;
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
  /** the key (sha256) of the latency table allocation predicted from, when there is one */
  latencyTableSha256: string | null;
  baseline: RoundMetrics | null;
  /** the baseline step (train or load, then measure): state, attempts, time */
  baselineStage: StageStatus | null;
  /** what pruning leaves whole and why, one line each `<group or layer>: <reason>` (the baseline's `blocked` event); [] when nothing is or before the baseline */
  blocked: string[];
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
      /** why the round ended so, when it says (e.g. "rolled back (drop 3.10 pts > limit 2)") */
      note?: string;
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

/** The baseline's `blocked` event, split back into its lines (`<n> prunable groups; left whole: a: why; b: why`). */
function blockedOf(db: Db, campaignId: string): string[] {
  const row = db.prepare(`SELECT message FROM events WHERE campaign_id = ? AND kind = 'blocked' ORDER BY rowid DESC LIMIT 1`).get(campaignId) as
    { message: string } | undefined;
  const list = row?.message.split('left whole: ')[1];
  return list ? list.split('; ') : [];
}

/** A campaign with its runs, rounds, stages and each round's final metrics; undefined if unknown. */
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

  const stageRows = (runId: string) => (stagesQ.all(runId) as StageRow[]).sort((a, b) => a.round - b.round || stageIndex(a.stage) - stageIndex(b.stage));

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
    for (const rd of roundsQ.all(r.id) as Array<{ round: number; state: State; objective: number | null; note: string | null }>) {
      rounds.set(rd.round, {
        round: rd.round,
        state: rd.state,
        objective: rd.objective,
        ...(rd.note ? { note: rd.note } : {}),
        stages: {},
        metrics: metrics.get(rd.round) ?? {},
      });
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
    version: STATUS_JSON_VERSION,
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
    latencyTableSha256: c.latency_table_sha256 ?? null,
    baseline,
    baselineStage,
    blocked: blockedOf(db, id),
    runs: outRuns,
  };
}

/** How many rows a campaign has in each table (tests of idempotency). */
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

/** Stages running now (for live progress lines). */
export function runningStages(
  db: Db,
  campaignId: string,
): Array<{ run_id: string; round: number; stage: string; updated_at: string; task_queue: string | null }> {
  return db
    .prepare(
      `SELECT s.run_id, s.round, s.stage, s.updated_at, s.task_queue FROM stages s JOIN runs r ON r.id = s.run_id
       WHERE r.campaign_id = ? AND s.state = 'running' ORDER BY s.run_id`,
    )
    .all(campaignId) as never;
}

/** The run `runId`: its campaign, k (0 for the baseline), kind and weights (null for the baseline); undefined if unknown. */
export function runOf(db: Db, runId: string): { campaignId: string; k: number; kind: 'baseline' | 'run'; weights: Record<string, number> | null } | undefined {
  const r = db.prepare(`SELECT campaign_id, k, kind, weights_json FROM runs WHERE id = ?`).get(runId) as
    { campaign_id: string; k: number; kind: 'baseline' | 'run'; weights_json: string | null } | undefined;
  return r && { campaignId: r.campaign_id, k: r.k, kind: r.kind, weights: r.weights_json ? JSON.parse(r.weights_json) : null };
}

/** One round's state and J(w) (null until it completes); undefined if not recorded. */
export function roundOf(db: Db, runId: string, round: number): { state: State; objective: number | null } | undefined {
  return db.prepare(`SELECT state, objective FROM rounds WHERE run_id = ? AND round = ?`).get(runId, round) as
    { state: State; objective: number | null } | undefined;
}

/** How many rounds of a campaign's runs have completed. */
export function completedRounds(db: Db, campaignId: string): number {
  return (
    db
      .prepare(`SELECT COUNT(*) AS n FROM rounds JOIN runs ON runs.id = rounds.run_id WHERE runs.campaign_id = ? AND rounds.state = 'completed'`)
      .get(campaignId) as { n: number }
  ).n;
}

/** The id of a campaign's baseline run, if recorded. */
export function baselineRunOf(db: Db, campaignId: string): string | undefined {
  return (db.prepare(`SELECT id FROM runs WHERE campaign_id = ? AND kind = 'baseline'`).get(campaignId) as { id: string } | undefined)?.id;
}

/** The first `limit` runs of a campaign (by k) with their weight vectors: light, for pages. */
export function runWeights(db: Db, campaignId: string, limit: number): Array<{ runId: string; k: number; weights: Record<string, number> }> {
  return (
    db.prepare(`SELECT id, k, weights_json FROM runs WHERE campaign_id = ? AND kind = 'run' ORDER BY k LIMIT ?`).all(campaignId, limit) as Array<{
      id: string;
      k: number;
      weights_json: string | null;
    }>
  ).map((r) => ({ runId: r.id, k: r.k, weights: r.weights_json ? JSON.parse(r.weights_json) : {} }));
}

/** The database's identity (migration 9): the random id the store task queue is named after. */
export function homeId(db: Db): string {
  return (db.prepare(`SELECT id FROM home`).get() as { id: string }).id;
}

/**
 * Unfinished campaigns created before the database had an identity: they were submitted with the
 * shared `store` queue, which the owner's worker keeps serving for them.
 */
export function hasLegacyStoreCampaigns(db: Db): boolean {
  return !!db.prepare(`SELECT 1 FROM campaigns WHERE state IN ('pending', 'running', 'paused') AND created_at < (SELECT created_at FROM home) LIMIT 1`).get();
}

/** How many campaigns the database holds. */
export function campaignCount(db: Db): number {
  return (db.prepare(`SELECT COUNT(*) AS n FROM campaigns`).get() as { n: number }).n;
}
