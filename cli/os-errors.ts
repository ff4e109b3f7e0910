// OS, SQLite and socket errors as one line that says what is wrong and what to do, instead of a
// Node stack ("ENOTDIR: not a directory, mkdir '/x/.prunewise/artifacts'").

const OS_WORDS: Record<string, string> = {
  ENOTDIR: 'a part of this path is a file, not a folder: give a folder',
  EEXIST: 'exists and is not a folder: give a folder',
  EACCES: 'permission denied: give a path you may write to, or fix its permissions',
  EPERM: 'operation not permitted: give a path you may write to, or fix its permissions',
  ENOENT: 'not found: check the path',
  EISDIR: 'is a folder where a file was expected',
  ENOSPC: 'the disk is full: free space and run the command again',
  EROFS: 'the file system is read-only: give a writable --home',
  EMFILE: 'too many open files: raise the limit (ulimit -n) and run again',
  EADDRINUSE: 'the port is already in use: pick another port',
  EADDRNOTAVAIL: 'this address is not one of this machine: give one of its addresses',
  ECONNREFUSED: 'nothing listens there: start the server or fix the address',
  ENOTFOUND: 'the host name does not resolve: fix the address',
  ERR_SOCKET_BAD_PORT: 'not a valid port (0–65535)',
};

const SQLITE_WORDS: Record<string, string> = {
  SQLITE_CANTOPEN: 'cannot open the database file: check that --home is a folder you may write to',
  SQLITE_READONLY: 'the database is read-only here: give a writable --home',
  SQLITE_NOTADB: 'is not a prunewise database (not SQLite): give the --home of a campaign run',
  SQLITE_CORRUPT: 'the database file is damaged: restore it from a backup',
  SQLITE_FULL: 'the disk is full: free space and run again',
  SQLITE_BUSY: 'the database is busy (another prunewise writes): try again',
};

/** One line for an OS / SQLite / socket error, or undefined when `e` is none of them. */
export function oneLineOsError(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException & { code?: string; dest?: string; address?: string; port?: number };
  if (!err || typeof err !== 'object' || typeof err.code !== 'string') return undefined;
  const code = err.code;
  if (code.startsWith('SQLITE_')) {
    const words = SQLITE_WORDS[code] ?? SQLITE_WORDS[code.replace(/_[A-Z]+$/, '')];
    return `SQLite ${code}: ${words ?? err.message}`;
  }
  if (code === 'ERR_SOCKET_BAD_PORT') return `${err.message.split('.')[0]}: ${OS_WORDS[code]}`;
  const words = OS_WORDS[code];
  if (!words) return undefined;
  const where = err.path ? `${err.path}${err.dest ? ` → ${err.dest}` : ''}` : err.address ? `${err.address}${err.port ? `:${err.port}` : ''}` : undefined;
  return `${where ? `${where}: ` : ''}${words} (${code}${err.syscall ? ` in ${err.syscall}` : ''})`;
}
