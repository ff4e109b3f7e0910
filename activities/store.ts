// The `record` activity (task queue `store-<home id>`): the only activity that opens the SQLite file.
// Served only by a worker of the home that owns the database (the queue is named after the
// database's identity, core/queues.ts storeQueue), and it refuses a batch for a campaign its
// database does not hold (a retryable failure: the owner's worker records it), so no other home
// ever takes a campaign's results. Idempotent (keyed by campaign/run/round/stage), so a retry never
// duplicates a row. After the write, the stored Pareto analysis is updated in place for the
// candidates the batch completed (analysis/refreshAfterRecord); a full recompute, when one is owed,
// runs in a worker thread (analysis/FullRefresher) so this thread never blocks on it. When a
// campaign ends, the write-ahead log is checkpointed into the database file (TRUNCATE), so
// prunewise.db alone holds the results.
//
// The keep-checkpoint policy: while a training stage runs, its newest `execution.keepCheckpoints`
// checkpoints are kept (activities/checkpoints.ts; a retried attempt resumes from them). A completed
// stage never runs again, so when a run completes its fine-tune checkpoints are deleted, and when the
// campaign completes the baseline's too. Failed and cancelled runs keep theirs (for a look at what
// happened) until `prunewise rm`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { refreshAfterRecord, FullRefresher } from '../analysis';
import { ARTIFACTS_DIR, baselineDir, parseRunId } from '../core';
import type { ArtifactStore } from '../blobstore';
import { applyRecord, checkpointDb, getCampaign, homeId, openDb, type Db, type RecordOp } from '../db';

/** A record for a campaign this database does not hold: the batch belongs to another home. Retryable. */
export class NotOwnerError extends Error {
  override name = 'NotOwner';
}

const campaignOf = (op: RecordOp): string | undefined => ('campaignId' in op ? op.campaignId : parseRunId(op.runId)?.campaignId);
const ENDED = new Set(['completed', 'failed', 'cancelled']);

/** `opts.full`: the refresher for full recomputes (tests pass one to await it); one per dbFile by default. */
export function createStoreActivities(dbFile: string, opts: { full?: FullRefresher; log?: (s: string) => void; store?: ArtifactStore } = {}) {
  let db: Db | undefined;
  const full = opts.full ?? new FullRefresher(dbFile);
  const refused = new Set<string>();
  return {
    async record(ops: RecordOp[]): Promise<void> {
      db ??= openDb(dbFile);
      for (const id of new Set(ops.map(campaignOf))) {
        if (id && getCampaign(db, id)) continue;
        const msg = `store: campaign ${id} is not in ${dbFile} (home id ${homeId(db)}): this worker does not own its database; the worker of the home that submitted it records it`;
        if (id && !refused.has(id)) (opts.log ?? ((s: string) => process.stderr.write(`${s}\n`)))(`refused a record: ${msg}`);
        if (id) refused.add(id);
        throw new NotOwnerError(msg);
      }
      applyRecord(db, ops);
      for (const campaignId of refreshAfterRecord(db, ops).full) full.request(db, campaignId);
      dropCheckpoints(path.dirname(dbFile), ops);
      if (opts.store) await dropStoredCheckpoints(opts.store, ops);
      if (ops.some((op) => op.op === 'campaign' && ENDED.has(op.state))) checkpointDb(db);
    },
  };
}

/**
 * The keep-checkpoint policy at the end of a run (its fine-tune checkpoints) and of a campaign (the
 * baseline's): the training state of stages that completed is deleted (`home`: the home folder).
 * @returns the folders removed (relative to the home)
 */
export function dropCheckpoints(home: string, ops: RecordOp[]): string[] {
  const gone: string[] = [];
  const rm = (rel: string) => {
    if (!fs.existsSync(path.join(home, rel))) return;
    fs.rmSync(path.join(home, rel), { recursive: true, force: true });
    gone.push(rel);
  };
  for (const op of ops) {
    if (op.op === 'run' && op.kind === 'run' && op.state === 'completed') {
      const runDir = path.join(home, ARTIFACTS_DIR, op.runId);
      if (!fs.existsSync(runDir)) continue;
      for (const r of fs.readdirSync(runDir).filter((n) => /^round-\d+$/.test(n))) rm(path.join(ARTIFACTS_DIR, op.runId, r, 'finetune-checkpoints'));
    } else if (op.op === 'campaign' && op.state === 'completed') {
      rm(path.join(baselineDir(op.campaignId), 'checkpoints'));
    }
  }
  return gone;
}

/**
 * The same keep-checkpoint policy in the artifact store: the refs of a completed run's fine-tune
 * checkpoints and of a completed campaign's baseline checkpoints are dropped (blobs no other ref holds
 * are deleted), wherever the workers that wrote them ran.
 */
export async function dropStoredCheckpoints(store: ArtifactStore, ops: RecordOp[]): Promise<void> {
  const names: string[] = [];
  for (const op of ops) {
    if (op.op === 'run' && op.kind === 'run' && op.state === 'completed')
      names.push(...(await store.refs(`${ARTIFACTS_DIR}/${op.runId}/`)).map((r) => r.name).filter((n) => /\/finetune-checkpoints\//.test(n)));
    else if (op.op === 'campaign' && op.state === 'completed') names.push(`${baselineDir(op.campaignId)}/checkpoints/`);
  }
  if (names.length) await store.unpin(names);
}

export type StoreActivities = ReturnType<typeof createStoreActivities>;
