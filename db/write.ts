// Writes of the record contract: every write is idempotent, keyed by campaign / run / round /
// stage, so a retried activity never duplicates a row. Writing never analyses: the Pareto
// analysis is analysis/'s job (the store activity calls it after applyRecord).
import type { Db } from './connection';
import type { RecordOp } from './types';

const now = () => new Date().toISOString();

/** An artifact's name without the `@sha256:<hex>` of a ref (rows hold the name and the key apart). */
const nameOf = (p: string): string => (p.includes('@sha256:') ? p.slice(0, p.lastIndexOf('@sha256:')) : p);
const keyOf = (p: string): string | null => (p.includes('@sha256:') ? p.slice(p.lastIndexOf('@sha256:') + 1) : null);

export interface NewCampaign {
  id: string;
  name: string;
  spec: unknown;
  specHash: string;
  specFile: string;
  seed: number;
}

/** Inserts a campaign in state `pending`; a second call with the same id changes nothing. */
export function createCampaign(db: Db, c: NewCampaign): void {
  db.prepare(
    `INSERT INTO campaigns (id, name, state, spec_json, spec_hash, spec_file, seed, created_at, updated_at)
     VALUES (@id, @name, 'pending', @spec, @specHash, @specFile, @seed, @at, @at)
     ON CONFLICT(id) DO NOTHING`,
  ).run({ ...c, spec: JSON.stringify(c.spec), at: now() });
}

/**
 * Applies a batch of state changes in one transaction (the `record` activity calls this).
 * Idempotent: the same batch twice leaves the same rows. Updates no analysis (see analysis/pareto).
 */
export function applyRecord(db: Db, ops: RecordOp[]): void {
  db.transaction(() => {
    for (const op of ops) applyOne(db, op);
  })();
}

function applyOne(db: Db, op: RecordOp): void {
  const at = now();
  switch (op.op) {
    case 'campaign':
      db.prepare(`UPDATE campaigns SET state = ?, error = ?, updated_at = ? WHERE id = ?`).run(op.state, op.error ?? null, at, op.campaignId);
      if (op.state === 'cancelled' || op.state === 'failed') closeOpenRows(db, op.campaignId, null, at);
      return;
    case 'env':
      db.prepare(`UPDATE campaigns SET backend = ?, tfjs_version = ?, prunewise_version = ?, updated_at = ? WHERE id = ?`).run(
        op.backend,
        op.tfjsVersion,
        op.prunewiseVersion,
        at,
        op.campaignId,
      );
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
      if (op.state === 'cancelled' || op.state === 'failed') closeOpenRows(db, op.campaignId, op.runId, at);
      if (op.kind === 'run') {
        db.prepare(`INSERT INTO run_rows (campaign_id, run_id, k) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`).run(op.campaignId, op.runId, op.k);
      }
      return;
    case 'latency-table':
      db.prepare(`UPDATE campaigns SET latency_table_sha256 = ?, updated_at = ? WHERE id = ?`).run(op.artifact.sha256, at, op.campaignId);
      db.prepare(
        `INSERT INTO artifacts (run_id, round, stage, kind, path, bytes, sha256, key, created_at) VALUES (?, 0, 'latency-table', ?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id, round, stage, kind) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, sha256 = excluded.sha256, key = excluded.key`,
      ).run(op.runId, op.artifact.kind, nameOf(op.artifact.path), op.artifact.bytes, op.artifact.sha256, op.artifact.key ?? keyOf(op.artifact.path), at);
      return;
    case 'round':
      db.prepare(
        `INSERT INTO rounds (run_id, round, state, objective, note, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id, round) DO UPDATE SET state = excluded.state,
           objective = COALESCE(excluded.objective, rounds.objective), note = COALESCE(excluded.note, rounds.note), updated_at = excluded.updated_at`,
      ).run(op.runId, op.round, op.state, op.objective ?? null, op.note ?? null, at);
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
        `INSERT INTO artifacts (run_id, round, stage, kind, path, bytes, sha256, key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id, round, stage, kind) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, sha256 = excluded.sha256, key = excluded.key`,
      );
      for (const a of op.artifacts ?? []) putArtifact.run(op.runId, op.round, op.stage, a.kind, nameOf(a.path), a.bytes, a.sha256, a.key ?? keyOf(a.path), at);
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

const OPEN = `('pending', 'running', 'paused')`;

/**
 * A run (or, with runId null, every run of a campaign) ended cancelled or failed: its stages and
 * rounds still open (`running`, `pending`, `paused`) can no longer finish, so they become
 * `cancelled`; with runId null its open runs too. Stages that ended keep their state.
 */
function closeOpenRows(db: Db, campaignId: string, runId: string | null, at: string): void {
  const runs = runId ? `(?)` : `(SELECT id FROM runs WHERE campaign_id = ?)`;
  const key = runId ?? campaignId;
  db.prepare(`UPDATE stages SET state = 'cancelled', updated_at = ? WHERE state IN ${OPEN} AND run_id IN ${runs}`).run(at, key);
  db.prepare(`UPDATE rounds SET state = 'cancelled', updated_at = ? WHERE state IN ${OPEN} AND run_id IN ${runs}`).run(at, key);
  if (!runId) db.prepare(`UPDATE runs SET state = 'cancelled', updated_at = ? WHERE state IN ${OPEN} AND campaign_id = ?`).run(at, campaignId);
}

/**
 * Ends a campaign no workflow will end any more (`prunewise cancel` / `rm` reconciling SQLite with
 * Temporal): the campaign takes `state` with `reason` as its error, its open runs, rounds and stages
 * become cancelled, and an event says why. Idempotent; a campaign already ended is left alone.
 * @returns false when the campaign is unknown or had already ended
 */
export function endCampaign(db: Db, id: string, state: 'cancelled' | 'failed', reason: string): boolean {
  return db.transaction(() => {
    const at = now();
    const r = db.prepare(`UPDATE campaigns SET state = ?, error = ?, updated_at = ? WHERE id = ? AND state IN ${OPEN}`).run(state, reason, at, id);
    if (r.changes === 0) return false;
    closeOpenRows(db, id, null, at);
    db.prepare(`INSERT INTO events (event_key, campaign_id, kind, message, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(event_key) DO NOTHING`).run(
      `${id}/reconciled`,
      id,
      state,
      `campaign ${state}: ${reason}`,
      at,
    );
    return true;
  })();
}

/** Deletes every row of a campaign (files are the caller's job). */
export function deleteCampaign(db: Db, id: string): void {
  db.transaction(() => {
    db.prepare(`DELETE FROM events WHERE campaign_id = ?`).run(id);
    db.prepare(`DELETE FROM campaigns WHERE id = ?`).run(id); // runs, rounds, stages, metrics, artifacts cascade
  })();
}
