// The `record` activity (task queue `store`): the only activity that opens the SQLite file.
// Served only by a worker on the host that owns the database, so no remote worker touches it,
// and idempotent (keyed by campaign/run/round/stage), so a retry never duplicates a row.
import { applyRecord, openDb, type Db, type RecordOp } from '../db';

export function createStoreActivities(dbFile: string) {
  let db: Db | undefined;
  return {
    async record(ops: RecordOp[]): Promise<void> {
      db ??= openDb(dbFile);
      applyRecord(db, ops);
    },
  };
}

export type StoreActivities = ReturnType<typeof createStoreActivities>;
