// The SQLite connection: open a file (WAL, busy timeout, foreign keys) and bring its schema up to date.
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MIGRATIONS } from './migrations';

export type Db = Database.Database;

/**
 * Opens (creating folders and the file if needed) the SQLite database at `file` and applies any
 * pending migrations. WAL mode: readers never block the one writer; a writer waits up to 10 s for
 * another connection's write lock (env PRUNEWISE_DB_BUSY_TIMEOUT_MS, for drills).
 */
export function openDb(file: string): Db {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  // the busy timeout first: switching a new file to WAL takes a lock another process may hold
  // PRUNEWISE_DB_BUSY_TIMEOUT_MS: for fault drills (a locked database fails each write attempt fast)
  db.pragma(`busy_timeout = ${Number(process.env.PRUNEWISE_DB_BUSY_TIMEOUT_MS) || 10000}`);
  db.pragma('journal_mode = WAL');
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

/**
 * Applies the migrations not yet run (PRAGMA user_version counts them), each in its own
 * `BEGIN IMMEDIATE` transaction that re-reads the version under the write lock: processes that open
 * a new home at the same moment (a worker and `run`) apply each migration once and never fail with
 * "table … already exists".
 */
export function migrate(db: Db): void {
  const step = db.transaction((): boolean => {
    const v = db.pragma('user_version', { simple: true }) as number;
    if (v >= MIGRATIONS.length) return false;
    db.exec(MIGRATIONS[v]);
    db.pragma(`user_version = ${v + 1}`);
    return true;
  });
  // up to date (every open but the first): no write lock taken, so read-only paths never wait for a writer
  if ((db.pragma('user_version', { simple: true }) as number) >= MIGRATIONS.length) return;
  while (step.immediate()) {
    /* next migration */
  }
}

/**
 * `PRAGMA quick_check` (https://sqlite.org/pragma.html#pragma_quick_check): the structure of every
 * page and index, without comparing index contents to rows (O(N), no sorting). Returns [] when the
 * file is whole, else up to `max` lines of what SQLite found. A file SQLite cannot even read as a
 * database (SQLITE_NOTADB, SQLITE_CORRUPT at open) is returned as its one error line too.
 */
export function quickCheck(db: Db, max = 5): string[] {
  try {
    const rows = db.pragma(`quick_check(${max})`) as Array<{ quick_check: string }>;
    // one line each: SQLite prefixes the first with "*** in database main ***" and a newline
    const lines = rows.map((r) => r.quick_check.replace(/^\*\*\* in database \w+ \*\*\*\s*/, '').replace(/\s*\n\s*/g, ' '));
    return lines.length === 1 && lines[0] === 'ok' ? [] : lines;
  } catch (e) {
    return [(e as Error).message];
  }
}

/** The one line a damaged database is reported with (the CLI exits 1 with it; the dashboard shows it on every page). */
export function damagedLine(file: string, problems: string[]): string {
  return `${file} is damaged (PRAGMA quick_check: ${problems[0]}${problems.length > 1 ? ` …and ${problems.length - 1} more` : ''}): restore a copy made by \`prunewise backup\`, or move it aside to start a new home`;
}

/** True for the errors SQLite raises on a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB and their extended codes). */
export function isCorruptError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code);
}

/**
 * Moves every page of the write-ahead log into the database file and empties the log
 * (`PRAGMA wal_checkpoint(TRUNCATE)`), so the `.db` file alone holds every committed row. Waits
 * (busy timeout) for readers on older snapshots; returns false when one still blocked it.
 */
export function checkpointDb(db: Db): boolean {
  const [r] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
  return r.busy === 0;
}

/**
 * An online copy of the database (SQLite's backup API through better-sqlite3: a consistent
 * snapshot while workers keep writing) into `file`, which must not exist yet.
 * @throws Error when `file` exists (never overwritten)
 */
export async function backupDb(db: Db, file: string): Promise<{ bytes: number; pages: number }> {
  if (fs.existsSync(file)) throw new Error(`${file} exists: give a new file name (a backup never overwrites)`);
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const r = await db.backup(tmp);
    const copy = new Database(tmp);
    try {
      copy.pragma('journal_mode = DELETE'); // one self-contained file
      const bad = quickCheck(copy);
      if (bad.length) throw new Error(`the copy fails PRAGMA quick_check: ${bad[0]}`);
    } finally {
      copy.close();
    }
    const fd = fs.openSync(tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.linkSync(tmp, file); // EEXIST rather than overwrite a file made meanwhile
    fs.rmSync(tmp);
    return { bytes: fs.statSync(file).size, pages: r.totalPages };
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
