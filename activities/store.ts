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
import { refreshAfterRecord, FullRefresher } from '../analysis';
import { parseRunId } from '../core';
import { applyRecord, checkpointDb, getCampaign, homeId, openDb, type Db, type RecordOp } from '../db';

/** A record for a campaign this database does not hold: the batch belongs to another home. Retryable. */
export class NotOwnerError extends Error {
  override name = 'NotOwner';
}

const campaignOf = (op: RecordOp): string | undefined => ('campaignId' in op ? op.campaignId : parseRunId(op.runId)?.campaignId);
const ENDED = new Set(['completed', 'failed', 'cancelled']);

/** `opts.full`: the refresher for full recomputes (tests pass one to await it); one per dbFile by default. */
export function createStoreActivities(dbFile: string, opts: { full?: FullRefresher; log?: (s: string) => void } = {}) {
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
      if (ops.some((op) => op.op === 'campaign' && ENDED.has(op.state))) checkpointDb(db);
    },
  };
}

export type StoreActivities = ReturnType<typeof createStoreActivities>;
