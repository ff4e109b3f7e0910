// The SQLite connection: open a file (WAL, busy timeout, foreign keys) and bring its schema up to date.
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MIGRATIONS } from './migrations';

export type Db = Database.Database;

/**
 * Opens (creating folders and the file if needed) the SQLite database at `file` and applies any
 * pending migrations. WAL mode: readers never block the one writer; a writer waits up to 10 s for
 * another connection's write lock.
 */
export function openDb(file: string): Db {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

/**
 * Opens an existing database for reading only (`status`, `ls`, `pareto`, `export` reads): SQLite
 * refuses any write on this connection. A database of an older prunewise whose schema needs a
 * migration is migrated first through a short read-write connection (the one write a read allows:
 * without it nothing can be read). @throws when the file does not exist
 */
export function openDbReadOnly(file: string): Db {
  let db = new Database(file, { readonly: true, fileMustExist: true });
  if ((db.pragma('user_version', { simple: true }) as number) < MIGRATIONS.length) {
    db.close();
    openDb(file).close();
    db = new Database(file, { readonly: true, fileMustExist: true });
  }
  db.pragma('busy_timeout = 10000');
  return db;
}

/** Applies the migrations not yet run (PRAGMA user_version counts them), each in its own transaction. */
export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
