// Read-only queries behind the dashboard. Column names reach SQL only through the allow-lists
// below (never from a request); values are always bound parameters.
import type { Db } from './connection';
import type { StageStatus } from './read';
import { stageIndex, type Stage, type State } from '../core';

const w = (k: string) => `json_extract(r.weights_json, '$.${k}')`;

/** Columns of the runs table that may be sorted and filtered on, and the SQL behind each. */
export const RUN_COLUMNS = {
  run: 'rr.k',
  rounds: 'rr.rounds',
  accuracy: 'rr.accuracy',
  best_accuracy: 'rr.best_accuracy',
  error: 'rr.val_error',
  bytes: 'rr.bytes',
  latency: 'rr.latency_ms',
  energy: 'rr.energy_j',
  objective: 'rr.objective',
  front: 'rr.on_front',
  w_accuracy: w('accuracy'),
  w_size: w('size'),
  w_latency: w('latency'),
  w_energy: w('energy'),
} as const;
export type RunColumn = keyof typeof RUN_COLUMNS;
export const FILTER_OPS = ['<=', '>=', '!=', '=', '<', '>'] as const;
export type FilterOp = (typeof FILTER_OPS)[number];
export type RunFilter = { col: RunColumn; op: FilterOp; value: number } | { col: 'state'; op: '=' | '!='; value: State };

export interface RunQuery {
  sort: RunColumn;
  dir: 'asc' | 'desc';
  filters: RunFilter[];
  /** keyset cursor: the last row of the previous page (its sort value, null sorting last, and k) */
  after?: { value: number | null; k: number };
  limit?: number;
}

export interface RunTableRow {
  runId: string;
  k: number;
  state: State;
  error: string | null;
  weights: Record<string, number>;
  rounds: number;
  bestRound: number | null;
  accuracy: number | null;
  bestAccuracy: number | null;
  valError: number | null;
  bytes: number | null;
  latencyMs: number | null;
  energyJ: number | null;
  energyMeasured: boolean;
  /** the best round deploys 8-bit weights: compare it with the baseline's 8-bit variant */
  deployedInt8: boolean;
  objective: number | null;
  onFront: boolean;
  frontRounds: number;
  rejected: string;
  /** the stage running now ("round 2 finetune"), if any */
  current: string | null;
}

// NULLs (runs without a finished round) sort last in both directions, so the cursor is a number
const NULL_LAST = { asc: 1e308, desc: -1e308 };

function whereOf(q: RunQuery): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  for (const f of q.filters) {
    if (f.col === 'state') {
      parts.push(`r.state ${f.op} ?`);
      params.push(f.value);
    } else {
      parts.push(`${RUN_COLUMNS[f.col]} ${f.op} ?`);
      params.push(f.value);
    }
  }
  return { sql: parts.map((p) => ` AND ${p}`).join(''), params };
}

const SELECT_ROWS = `SELECT r.id AS runId, rr.k AS k, r.state AS state, r.error AS error, r.weights_json AS weights, rr.rounds AS rounds,
  rr.best_round AS bestRound, rr.accuracy AS accuracy, rr.best_accuracy AS bestAccuracy, rr.val_error AS valError, rr.bytes AS bytes,
  rr.latency_ms AS latencyMs, rr.energy_j AS energyJ, rr.energy_measured AS energyMeasured, rr.objective AS objective,
  rr.on_front AS onFront, rr.front_rounds AS frontRounds, rr.rejected AS rejected, rr.deployed_int8 AS deployedInt8`;

function toRow(x: Record<string, unknown>, current: string | null): RunTableRow {
  return {
    ...(x as unknown as RunTableRow),
    weights: x.weights ? JSON.parse(x.weights as string) : {},
    energyMeasured: x.energyMeasured === 1,
    onFront: x.onFront === 1,
    deployedInt8: x.deployedInt8 === 1,
    current,
  };
}

/** One page of the runs table (keyset pagination), with the filtered total. */
export function runsPage(db: Db, campaignId: string, q: RunQuery): { rows: RunTableRow[]; total: number; next: { value: number | null; k: number } | null } {
  const limit = q.limit ?? 50;
  const where = whereOf(q);
  const sortExpr = `IFNULL(${RUN_COLUMNS[q.sort]}, ${NULL_LAST[q.dir]})`;
  const cmp = q.dir === 'asc' ? '>' : '<';
  const order = q.dir === 'asc' ? 'ASC' : 'DESC';
  const keyset = q.after ? ` AND (${sortExpr} ${cmp} ? OR (${sortExpr} = ? AND rr.k ${cmp} ?))` : '';
  const afterValue = q.after ? (q.after.value ?? NULL_LAST[q.dir]) : null;
  const from = `FROM run_rows rr JOIN runs r ON r.id = rr.run_id WHERE rr.campaign_id = ?`;
  const raw = db
    .prepare(`${SELECT_ROWS}, ${sortExpr} AS sortValue ${from}${where.sql}${keyset} ORDER BY ${sortExpr} ${order}, rr.k ${order} LIMIT ?`)
    .all(campaignId, ...where.params, ...(q.after ? [afterValue, afterValue, q.after.k] : []), limit + 1) as Array<Record<string, unknown>>;
  const total = (db.prepare(`SELECT COUNT(*) AS n ${from}${where.sql}`).get(campaignId, ...where.params) as { n: number }).n;
  const more = raw.length > limit;
  const pageRows = raw.slice(0, limit);
  const currentQ = db.prepare(`SELECT round, stage FROM stages WHERE run_id = ? AND state = 'running' ORDER BY updated_at DESC LIMIT 1`);
  const rows = pageRows.map((x) => {
    const cur = x.state === 'running' ? (currentQ.get(x.runId) as { round: number; stage: string } | undefined) : undefined;
    return toRow(x, cur ? `round ${cur.round} ${cur.stage}` : null);
  });
  const last = pageRows[pageRows.length - 1];
  const sv = last?.sortValue as number | undefined;
  return { rows, total, next: more && last ? { value: sv === NULL_LAST[q.dir] ? null : (sv ?? null), k: last.k as number } : null };
}

/** Every row of the filtered view in its order (CSV / JSON export). */
export function runsAll(db: Db, campaignId: string, q: Omit<RunQuery, 'after' | 'limit'>): RunTableRow[] {
  const where = whereOf({ ...q });
  const sortExpr = `IFNULL(${RUN_COLUMNS[q.sort]}, ${NULL_LAST[q.dir]})`;
  const order = q.dir === 'asc' ? 'ASC' : 'DESC';
  return (
    db
      .prepare(
        `${SELECT_ROWS} FROM run_rows rr JOIN runs r ON r.id = rr.run_id WHERE rr.campaign_id = ?${where.sql} ORDER BY ${sortExpr} ${order}, rr.k ${order}`,
      )
      .all(campaignId, ...where.params) as Array<Record<string, unknown>>
  ).map((x) => toRow(x, null));
}

export interface BaselineRow {
  runId: string;
  accuracy: number | null;
  valError: number;
  bytes: number;
  latencyMs: number;
  energyJ: number;
  params: number | null;
  flops: number | null;
  latencyEstimated: boolean;
  /** whether the baseline is on the campaign's Pareto front (a pruned model may dominate it) */
  onFront: boolean;
  /** the baseline's 8-bit variant (stock tfjs uint8): what 8-bit candidates are compared with; null for campaigns before it was measured */
  int8: { accuracy: number; bytes: number; energyJ: number } | null;
}

export function baselineOf(db: Db, campaignId: string): BaselineRow | undefined {
  const p = db
    .prepare(
      `SELECT p.run_id AS runId, p.accuracy, p.val_error AS valError, p.bytes, p.latency_ms AS latencyMs, p.energy_j AS energyJ, p.on_front AS onFront
       FROM pareto_points p JOIN runs r ON r.id = p.run_id WHERE p.campaign_id = ? AND r.kind = 'baseline'`,
    )
    .get(campaignId) as (Omit<BaselineRow, 'params' | 'flops' | 'latencyEstimated' | 'int8' | 'onFront'> & { onFront: number }) | undefined;
  if (!p) return undefined;
  const m = metricMap(db, p.runId, 0);
  const int8 =
    m.int8Accuracy !== undefined && m.int8Bytes !== undefined && m.energyJEstimatedInt8 !== undefined
      ? { accuracy: m.int8Accuracy, bytes: m.int8Bytes, energyJ: m.energyJEstimatedInt8 }
      : null;
  return { ...p, onFront: p.onFront === 1, params: m.params ?? null, flops: m.flops ?? null, latencyEstimated: m.latencyEstimated === 1, int8 };
}

export interface CampaignOverview {
  /** hypervolumeApprox: the hypervolume holds an estimated contribution (show it as ≈) */
  pareto: { points: number; front: number; frontDistinct: number; front2d: number; hypervolume: number; hypervolumeApprox: boolean; updatedAt: string } | null;
  /** best accuracy over every candidate; least bytes / latency / energy among candidates within the hard constraints */
  best: {
    accuracy: number | null;
    valError: number | null;
    bytes: number | null;
    latencyMs: number | null;
    energyJ: number | null;
    /** whether the model with the best accuracy / least bytes / least energy deploys 8-bit weights (compare it with the 8-bit baseline) */
    accuracyInt8: boolean;
    bytesInt8: boolean;
    energyInt8: boolean;
  };
  runStates: Record<string, number>;
  runs: number;
  running: Array<{ runId: string; k: number; round: number; stage: string; taskQueue: string | null; attempts: number | null; since: string }>;
  events: Array<{ seq: number; runId: string | null; kind: string; message: string; at: string }>;
  lastUpdate: string | null;
}

/** The campaign's summary; `activity` adds the stages running now and the latest events (campaign pages only). */
export function campaignOverview(db: Db, campaignId: string, opts: { activity?: boolean } = {}): CampaignOverview {
  const row = db
    .prepare(
      `SELECT points, front, front_distinct AS frontDistinct, front_2d AS front2d, hypervolume, hypervolume_approx AS hypervolumeApprox, updated_at AS updatedAt FROM pareto WHERE campaign_id = ?`,
    )
    .get(campaignId) as (Omit<NonNullable<CampaignOverview['pareto']>, 'hypervolumeApprox'> & { hypervolumeApprox: number }) | undefined;
  const pareto = row && { ...row, hypervolumeApprox: row.hypervolumeApprox === 1 };
  const variantOf = (order: string, where = '') =>
    `(SELECT deployed_int8 FROM pareto_points WHERE campaign_id = @id AND round > 0${where} ORDER BY ${order} LIMIT 1)`;
  const b = db
    .prepare(
      `SELECT MAX(accuracy) AS accuracy, MIN(val_error) AS valError,
         MIN(CASE WHEN violates = '' THEN bytes END) AS bytes, MIN(CASE WHEN violates = '' THEN latency_ms END) AS latencyMs,
         MIN(CASE WHEN violates = '' THEN energy_j END) AS energyJ,
         ${variantOf('accuracy DESC')} AS accuracyInt8, ${variantOf('bytes', " AND violates = ''")} AS bytesInt8,
         ${variantOf('energy_j', " AND violates = ''")} AS energyInt8
       FROM pareto_points WHERE campaign_id = @id AND round > 0`,
    )
    .get({ id: campaignId }) as Omit<CampaignOverview['best'], 'accuracyInt8' | 'bytesInt8' | 'energyInt8'> &
    Record<'accuracyInt8' | 'bytesInt8' | 'energyInt8', number | null>;
  const best = { ...b, accuracyInt8: b.accuracyInt8 === 1, bytesInt8: b.bytesInt8 === 1, energyInt8: b.energyInt8 === 1 };
  const runStates: Record<string, number> = {};
  let runs = 0;
  for (const s of db.prepare(`SELECT state, COUNT(*) AS n FROM runs WHERE campaign_id = ? AND kind = 'run' GROUP BY state`).all(campaignId) as Array<{
    state: string;
    n: number;
  }>) {
    runStates[s.state] = s.n;
    runs += s.n;
  }
  const running = !opts.activity
    ? []
    : (db
        .prepare(
          `SELECT s.run_id AS runId, r.k AS k, s.round, s.stage, s.task_queue AS taskQueue, s.attempts, s.started_at AS since
       FROM runs r JOIN stages s ON s.run_id = r.id WHERE r.campaign_id = ? AND r.state = 'running' AND s.state = 'running' ORDER BY r.k LIMIT 50`,
        )
        .all(campaignId) as CampaignOverview['running']);
  const events = !opts.activity
    ? []
    : (db
        .prepare(`SELECT rowid AS seq, run_id AS runId, kind, message, at FROM events WHERE campaign_id = ? ORDER BY rowid DESC LIMIT 15`)
        .all(campaignId) as CampaignOverview['events']);
  const lastUpdate = (
    db
      .prepare(
        `SELECT MAX(t) AS t FROM (SELECT updated_at AS t FROM campaigns WHERE id = @id UNION ALL SELECT updated_at FROM pareto WHERE campaign_id = @id
         UNION ALL SELECT MAX(at) FROM events WHERE campaign_id = @id)`,
      )
      .get({ id: campaignId }) as { t: string | null }
  ).t;
  return { pareto: pareto ?? null, best, runStates, runs, running, events, lastUpdate };
}

/** Every candidate model of a campaign as compact arrays, fields in POINT_FIELDS order (CSV rows). */
export const POINT_FIELDS = ['k', 'round', 'error', 'accuracy', 'bytes', 'latencyMs', 'energyJ', 'onFront', 'energyMeasured'] as const;
const POINTS_SQL = `SELECT r.k AS k, p.round AS round, p.val_error, p.accuracy, p.bytes, p.latency_ms, p.energy_j, p.on_front, p.energy_measured
  FROM pareto_points p JOIN runs r ON r.id = p.run_id WHERE p.campaign_id = ? ORDER BY r.k, p.round`;
export function tradeoffPoints(db: Db, campaignId: string): unknown[][] {
  return db.prepare(POINTS_SQL).raw().all(campaignId) as unknown[][];
}

/**
 * The same, as one JSON text built inside SQLite (json_group_array), for the trade-off endpoint:
 * at 50 000 candidates this avoids materialising 50 000 JS arrays only to stringify them again.
 */
export function tradeoffJson(db: Db, campaignId: string): { points: string; weights: string } {
  const points = db
    .prepare(`SELECT json_group_array(json_array(k, round, val_error, accuracy, bytes, latency_ms, energy_j, on_front, energy_measured)) FROM (${POINTS_SQL})`)
    .pluck()
    .get(campaignId) as string;
  const weights = db
    .prepare(`SELECT json_group_object(k, json(weights_json)) FROM runs WHERE campaign_id = ? AND kind = 'run' AND weights_json IS NOT NULL`)
    .pluck()
    .get(campaignId) as string;
  return { points, weights };
}

/** A round's step-0 metrics, later stages overriding earlier ones (what the round ended with). */
export function metricMap(db: Db, runId: string, round: number): Record<string, number> {
  const rows = db.prepare(`SELECT stage, key, value FROM metrics WHERE run_id = ? AND round = ? AND step = 0`).all(runId, round) as Array<{
    stage: Stage;
    key: string;
    value: number;
  }>;
  rows.sort((a, b) => stageIndex(a.stage) - stageIndex(b.stage));
  const out: Record<string, number> = {};
  for (const r of rows) out[r.key] = r.value;
  return out;
}

export interface RunDetail {
  runId: string;
  campaignId: string;
  campaignName: string;
  k: number;
  kind: string;
  state: State;
  error: string | null;
  weights: Record<string, number>;
  createdAt: string;
  updatedAt: string;
  /** the run's best round, as in the runs table (lowest J within the hard constraints) */
  bestRound: number | null;
  rounds: Array<{
    round: number;
    state: State;
    objective: number | null;
    metrics: Record<string, number>;
    point: {
      valError: number;
      accuracy: number | null;
      bytes: number;
      latencyMs: number;
      energyJ: number;
      onFront: boolean;
      violates: string;
      deployedInt8: boolean;
    } | null;
  }>;
  stages: Array<StageStatus & { round: number; stage: string; startedAt: string; updatedAt: string }>;
  series: Array<{ round: number; stage: string; key: string; points: Array<[number, number]> }>;
  channels: Array<{ layer: string; before: number; after: Record<number, number> }>;
  events: Array<{ kind: string; message: string; at: string; round: number | null; stage: string | null }>;
  artifacts: Array<{ round: number; stage: string; kind: string; path: string; bytes: number; sha256: string; createdAt: string }>;
}

export function runDetail(db: Db, runId: string): RunDetail | undefined {
  const r = db
    .prepare(
      `SELECT r.id, r.campaign_id, c.name, r.k, r.kind, r.state, r.error, r.weights_json, r.created_at, r.updated_at, rr.best_round
       FROM runs r JOIN campaigns c ON c.id = r.campaign_id LEFT JOIN run_rows rr ON rr.run_id = r.id WHERE r.id = ?`,
    )
    .get(runId) as
    | {
        id: string;
        campaign_id: string;
        name: string;
        k: number;
        kind: string;
        state: State;
        error: string | null;
        weights_json: string | null;
        created_at: string;
        updated_at: string;
        best_round: number | null;
      }
    | undefined;
  if (!r) return undefined;
  const roundRows =
    r.kind === 'baseline'
      ? [{ round: 0, state: r.state, objective: null }]
      : (db.prepare(`SELECT round, state, objective FROM rounds WHERE run_id = ? ORDER BY round`).all(runId) as Array<{
          round: number;
          state: State;
          objective: number | null;
        }>);
  const pointQ = db.prepare(
    `SELECT val_error AS valError, accuracy, bytes, latency_ms AS latencyMs, energy_j AS energyJ, on_front AS onFront, violates, deployed_int8 AS deployedInt8
     FROM pareto_points WHERE run_id = ? AND round = ?`,
  );
  const rounds = roundRows.map((rd) => {
    const p = pointQ.get(runId, rd.round) as
      (Omit<NonNullable<RunDetail['rounds'][number]['point']>, 'onFront' | 'deployedInt8'> & { onFront: number; deployedInt8: number }) | undefined;
    return { ...rd, metrics: metricMap(db, runId, rd.round), point: p ? { ...p, onFront: p.onFront === 1, deployedInt8: p.deployedInt8 === 1 } : null };
  });
  const stages = (
    db
      .prepare(
        `SELECT round, stage, state, attempts, ms, resumed_from_step AS resumedFromStep, task_queue AS taskQueue, error, started_at AS startedAt, updated_at AS updatedAt
         FROM stages WHERE run_id = ?`,
      )
      .all(runId) as RunDetail['stages']
  ).sort((a, b) => a.round - b.round || stageIndex(a.stage) - stageIndex(b.stage));
  const seriesRows = db
    .prepare(
      `SELECT round, stage, key, step, value FROM metrics WHERE run_id = ? AND (round, stage, key) IN
         (SELECT round, stage, key FROM metrics WHERE run_id = ? AND step > 0) ORDER BY round, stage, key, step`,
    )
    .all(runId, runId) as Array<{ round: number; stage: string; key: string; step: number; value: number }>;
  const series: RunDetail['series'] = [];
  for (const s of seriesRows) {
    let cur = series[series.length - 1];
    if (!cur || cur.round !== s.round || cur.stage !== s.stage || cur.key !== s.key) {
      cur = { round: s.round, stage: s.stage, key: s.key, points: [] };
      series.push(cur);
    }
    cur.points.push([s.step, s.value]);
  }
  // per-layer widths: the campaign's baseline (before) and each round's pruned model (after)
  const baselineRun = db.prepare(`SELECT id FROM runs WHERE campaign_id = ? AND kind = 'baseline'`).get(r.campaign_id) as { id: string } | undefined;
  const before = baselineRun ? metricMap(db, baselineRun.id, 0) : {};
  const channels: RunDetail['channels'] = Object.entries(before)
    .filter(([key]) => key.startsWith('channels.'))
    .map(([key, v]) => ({ layer: key.slice('channels.'.length), before: v, after: {} }));
  for (const rd of rounds) {
    for (const ch of channels) {
      const v = rd.metrics[`channels.${ch.layer}`];
      if (v !== undefined && rd.round > 0) ch.after[rd.round] = v;
    }
  }
  const events = db.prepare(`SELECT kind, message, at, round, stage FROM events WHERE run_id = ? ORDER BY rowid`).all(runId) as RunDetail['events'];
  const artifacts = db
    .prepare(`SELECT round, stage, kind, path, bytes, sha256, created_at AS createdAt FROM artifacts WHERE run_id = ? ORDER BY round, stage, kind`)
    .all(runId) as RunDetail['artifacts'];
  return {
    runId: r.id,
    campaignId: r.campaign_id,
    campaignName: r.name,
    k: r.k,
    kind: r.kind,
    state: r.state,
    error: r.error,
    weights: r.weights_json ? JSON.parse(r.weights_json) : {},
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    bestRound: r.best_round ?? null,
    rounds,
    stages,
    series,
    channels,
    events,
    artifacts,
  };
}

/** Whether an artifact with this home-relative path is recorded (downloads serve recorded files only). */
export function isRecordedArtifact(db: Db, relPath: string): boolean {
  return !!recordedArtifactOf(db, relPath);
}

/** The recorded artifact a home-relative file path belongs to (the artifact itself, or a file in its folder): its name and store key (null before the store). */
export function recordedArtifactOf(db: Db, relPath: string): { path: string; key: string | null } | undefined {
  return db
    .prepare(`SELECT path, key FROM artifacts WHERE path = @p OR substr(@p, 1, length(path) + 1) = path || '/' ORDER BY key IS NULL LIMIT 1`)
    .get({ p: relPath }) as { path: string; key: string | null } | undefined;
}

/** Recorded artifacts without a store key (homes from before the store), for the home's migration. */
export function artifactsWithoutKey(db: Db): Array<{ runId: string; round: number; stage: string; kind: string; path: string }> {
  return db.prepare(`SELECT run_id AS runId, round, stage, kind, path FROM artifacts WHERE key IS NULL ORDER BY path`).all() as Array<{
    runId: string;
    round: number;
    stage: string;
    kind: string;
    path: string;
  }>;
}

/** Sets the store key of recorded artifacts by name (the home's migration; the writer is the CLI that owns the home). */
export function setArtifactKey(db: Db, path: string, key: string): void {
  db.prepare(`UPDATE artifacts SET key = ? WHERE path = ? AND key IS NULL`).run(key, path);
}

/** Changes whenever another connection (a worker's record activity) commits to the database. */
export function dataVersion(db: Db): number {
  return db.pragma('data_version', { simple: true }) as number;
}

// ---------------------------------------------------------------- export

export interface RunRef {
  id: string;
  campaignId: string;
  kind: 'baseline' | 'run';
  /** the campaign's spec as stored at submit */
  specJson: string;
  /** the run's best round as stored by the Pareto analysis (core/pareto bestRound), null before one completes */
  bestRound: number | null;
}

/** What `prunewise export` needs of a run: its campaign, kind, spec and stored best round. */
export function runRef(db: Db, runId: string): RunRef | undefined {
  return db
    .prepare(
      `SELECT r.id, r.campaign_id AS campaignId, r.kind, c.spec_json AS specJson, rr.best_round AS bestRound
       FROM runs r JOIN campaigns c ON c.id = r.campaign_id LEFT JOIN run_rows rr ON rr.run_id = r.id WHERE r.id = ?`,
    )
    .get(runId) as RunRef | undefined;
}

/**
 * The model one stage of a round wrote, if recorded: `<name>@<key>` (name relative to the home; key
 * in the artifact store), or the bare name for rows from before the store.
 */
export function modelArtifactPath(db: Db, runId: string, round: number, stage: Stage, kind = 'model'): string | undefined {
  const row = db.prepare(`SELECT path, key FROM artifacts WHERE run_id = ? AND round = ? AND stage = ? AND kind = ?`).get(runId, round, stage, kind) as
    { path: string; key: string | null } | undefined;
  return row && (row.key ? `${row.path}@${row.key}` : row.path);
}
