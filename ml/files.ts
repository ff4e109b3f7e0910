// Checked, atomic artifact writes: a file or folder is written under a temporary name, every
// file written in full (short writes continued), fsync'd, read back and compared with what was
// meant (size and sha256) and only then renamed into place, with the folder fsync'd after. A
// crash, a full disk or a short write never leaves a half-written model where a reader (or a
// retry) looks; the temporary leftovers are removed on the way out, and those of a writer killed
// mid-write (no way out ran) by the next write into the same folder once that process is gone. Disk faults (ENOSPC, EIO, …)
// are thrown as core/errors TransientIOError, naming the folder that is full: retried, never bad input.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { classifyIOError } from '../core/errors';

/** Writes all of `data` to `fd` (continuing short writes). @throws the OS error */
function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.byteLength) {
    const n = fs.writeSync(fd, data, off, data.byteLength - off);
    if (n <= 0) throw Object.assign(new Error(`short write: ${off} of ${data.byteLength} bytes`), { code: 'EIO' });
    off += n;
  }
}

/** fsync of a folder (its entries: a rename is durable only then); best effort where folders cannot be opened. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on a folder: the file contents are fsync'd already
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Writes one file in full, fsyncs it and checks it: size and sha256 read back equal what was meant.
 * @throws TransientIOError on a full disk or an I/O error; Error when the read-back differs
 */
export function writeFileChecked(file: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const fd = fs.openSync(file, 'w');
  try {
    writeAll(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const back = fs.readFileSync(file);
  if (back.byteLength !== bytes.byteLength || sha256(back) !== sha256(bytes)) {
    throw Object.assign(new Error(`${file}: read back ${back.byteLength} of ${bytes.byteLength} bytes, or other bytes than written`), { code: 'EIO' });
  }
}

const tmpName = (p: string, tag = 'tmp') => `${p}.${tag}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
const TEMP_NAME = /\.(tmp|old)-(\d+)-[0-9a-f]{8}$/;

/** Whether a process of this machine with that id runs (EPERM: it runs, as another user). */
function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/**
 * Removes the temporary files and folders (`<name>.tmp-<pid>-<hex>`, `<name>.old-<pid>-<hex>`) that a
 * writer killed mid-write (kill -9, power loss: no clean-up ran) left in `dir`, when that process is
 * gone. An `.old-` one whose `<name>` is missing is put back instead: the writer was killed between
 * moving the previous version aside and renaming the new one in, and the previous one is whole.
 * Pids are this machine's: call it on a home's own folders, never on a folder other machines
 * share. Best effort (a folder that cannot be read is left alone). @returns the names removed or put back
 */
export function sweepDeadTemps(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || processAlive(Number(m[2]))) continue;
    const original = path.join(dir, name.slice(0, m.index));
    if (m[1] === 'old' && !fs.existsSync(original)) fs.renameSync(path.join(dir, name), original);
    else fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Writes a folder of files atomically (see the top of this file); first removes what a writer killed
 * mid-write left beside it (sweepDeadTemps). @throws TransientIOError on a full disk or an I/O error
 */
export function writeDirAtomic(dir: string, files: Record<string, Uint8Array | string>): void {
  const tmp = tmpName(dir);
  try {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    sweepDeadTemps(path.dirname(dir));
    fs.mkdirSync(tmp);
    for (const [name, data] of Object.entries(files)) writeFileChecked(path.join(tmp, name), data);
    fsyncDir(tmp);
    if (fs.existsSync(dir)) {
      // a retry replaces what an earlier attempt wrote; move it aside first (rename is atomic)
      const old = tmpName(dir, 'old');
      fs.renameSync(dir, old);
      fs.renameSync(tmp, dir);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, dir);
    }
    fsyncDir(path.dirname(dir));
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw classifyIOError(e, `writing ${dir}`);
  }
}

/** Writes one file atomically (as writeDirAtomic). @throws TransientIOError on a full disk or an I/O error */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = tmpName(file);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    sweepDeadTemps(path.dirname(file));
    writeFileChecked(tmp, data);
    fs.renameSync(tmp, file);
    fsyncDir(path.dirname(file));
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw classifyIOError(e, `writing ${file}`);
  }
}

export function sha256(data: Uint8Array | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}
