// The `record` activity (task queue `store`): the only activity that opens the SQLite file.
// Served only by a worker on the host that owns the database, so no remote worker touches it,
// and idempotent (keyed by campaign/run/round/stage), so a retry never duplicates a row.
// After the write, the stored Pareto analysis is updated in place for the candidates the batch
// completed (analysis/refreshAfterRecord); a full recompute, when one is owed, runs in a worker
// thread (analysis/FullRefresher) so this thread never blocks on it.
import { refreshAfterRecord, FullRefresher } from '../analysis';
import { applyRecord, openDb, type Db, type RecordOp } from '../db';

/** `opts.full`: the refresher for full recomputes (tests pass one to await it); one per dbFile by default. */
export function createStoreActivities(dbFile: string, opts: { full?: FullRefresher } = {}) {
  let db: Db | undefined;
  const full = opts.full ?? new FullRefresher(dbFile);
  return {
    async record(ops: RecordOp[]): Promise<void> {
      db ??= openDb(dbFile);
      applyRecord(db, ops);
      for (const campaignId of refreshAfterRecord(db, ops).full) full.request(db, campaignId);
    },
  };
}

export type StoreActivities = ReturnType<typeof createStoreActivities>;
