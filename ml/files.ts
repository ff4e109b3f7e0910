// Atomic artifact writes: a folder is written under a temporary name and renamed into place,
// so a crash mid-write never leaves a half-written model where a reader (or a retry) looks.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export function writeDirAtomic(dir: string, files: Record<string, Uint8Array | string>): void {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  fs.mkdirSync(tmp);
  for (const [name, data] of Object.entries(files)) {
    const fd = fs.openSync(path.join(tmp, name), 'w');
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }
  if (fs.existsSync(dir)) {
    // a retry replaces what an earlier attempt wrote; move it aside first (rename is atomic)
    const old = `${dir}.old-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    fs.renameSync(dir, old);
    fs.renameSync(tmp, dir);
    fs.rmSync(old, { recursive: true, force: true });
  } else {
    fs.renameSync(tmp, dir);
  }
}

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export function sha256(data: Uint8Array | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}
