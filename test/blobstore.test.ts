// The artifact store (blobstore/) on both of its backends — a local folder and a real
// S3-compatible server (versitygw, started here) — and checked writes under real faults: a file
// size limit (ulimit -f: the write stops short) and a full device (/dev/full: ENOSPC).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Artifacts } from '../activities/artifacts';
import { ArtifactStore, blobKey, CorruptArtifactError, LocalBackend, S3Backend, s3Location, StoreConfigError } from '../blobstore';
import { classifyIOError, TransientIOError } from '../core';
import { sha256, sweepDeadTemps, writeDirAtomic } from '../ml/files';
import { tmpHome } from './helpers';
import { startS3Server, type S3Server } from './s3-server';

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

function writeModelFolder(dir: string, seed: number, bytes = 40_000): { weights: Buffer } {
  fs.mkdirSync(dir, { recursive: true });
  const weights = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) weights[i] = (i * 31 + seed * 7) & 0xff;
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ format: 'layers-model', seed }));
  fs.writeFileSync(path.join(dir, 'weights.bin'), weights);
  return { weights };
}

const backends: Array<[string, () => { store: ArtifactStore; blobFile: (hex: string) => string }]> = [
  [
    'local folder',
    () => {
      const root = tmpHome('blob-local');
      return { store: new ArtifactStore(new LocalBackend(root)), blobFile: (hex) => path.join(root, ...blobKey(hex).split('/')) };
    },
  ],
  [
    'S3 (versitygw)',
    () => {
      const prefix = `p${Math.random().toString(16).slice(2, 8)}`;
      const store = ArtifactStore.fromEnv('/nonexistent-home', { ...s3.env(prefix) });
      return { store, blobFile: (hex) => path.join(s3.dir, s3.bucket, prefix, ...blobKey(hex).split('/')) };
    },
  ],
];

describe.each(backends)('the artifact store on a %s', (_name, make) => {
  it('content-addressed trees: written once, checked out verified, reference-counted, deleted when no ref holds them', async () => {
    const { store, blobFile } = make();
    const home = tmpHome('blob-home');
    const a = path.join(home, 'artifacts/c1/run-1/round-1/finetuned');
    const { weights } = writeModelFolder(a, 1);
    const p1 = await store.publish('artifacts/c1/run-1/round-1/finetuned', a);
    expect(p1.key).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(p1.ref).toBe(`artifacts/c1/run-1/round-1/finetuned@${p1.key}`);
    expect(p1.tree.files.map((f) => f.name).sort()).toEqual(['model.json', 'weights.bin']);
    const wHex = sha256(weights);
    expect(fs.existsSync(blobFile(wHex))).toBe(true);

    // the same bytes under another name (another campaign): one blob, two refs; the blob is not written again
    const b = path.join(home, 'artifacts/c2/baseline/model');
    writeModelFolder(b, 1);
    const before = fs.statSync(blobFile(wHex)).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    const p2 = await store.publish('artifacts/c2/baseline/model', b);
    expect(p2.key).toBe(p1.key);
    expect(await store.refCount(wHex)).toBe(2);
    expect(fs.statSync(blobFile(wHex)).mtimeMs).toBe(before);
    expect((await store.refCounts()).get(wHex)).toBe(2);
    expect(await store.resolve('artifacts/c2/baseline/model')).toBe(p1.key);

    // another worker's home: checked out from the store, byte for byte
    const other = tmpHome('blob-other');
    const there = path.join(other, 'artifacts/c1/run-1/round-1/finetuned');
    await store.checkout(p1.key, there);
    expect(fs.readFileSync(path.join(there, 'weights.bin')).equals(weights)).toBe(true);

    // a damaged copy (truncated like a full disk leaves it) is fetched again, not trusted
    fs.truncateSync(path.join(there, 'weights.bin'), 1000);
    await store.checkout(p1.key, there);
    expect(fs.readFileSync(path.join(there, 'weights.bin')).equals(weights)).toBe(true);

    // a damaged blob in the store fails the check with a retryable error, and nothing is put in place
    const good = fs.readFileSync(blobFile(wHex));
    fs.writeFileSync(blobFile(wHex), good.subarray(0, 1000));
    const fresh = path.join(tmpHome('blob-fresh'), 'artifacts/x');
    const err = await store.checkout(p1.key, fresh).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptArtifactError);
    expect(err).toBeInstanceOf(TransientIOError);
    expect((err as Error).message).toMatch(/weights\.bin .* fails its check \(1000 of 40000 bytes/);
    expect(fs.existsSync(fresh)).toBe(false);
    expect(fs.readdirSync(path.dirname(fresh))).toEqual([]); // no temporary leftovers
    // publishing the same artifact again (the stage re-made it) repairs the blob: written whole, then checked
    await store.publish('artifacts/c1/run-1/round-1/finetuned', a);
    await store.checkout(p1.key, fresh);
    expect(fs.readFileSync(path.join(fresh, 'weights.bin')).equals(weights)).toBe(true);

    // one file as an artifact
    const f = path.join(home, 'artifacts/c1/run-1/round-1/scores.json');
    fs.writeFileSync(f, '{"scores":{}}');
    const pf = await store.publish('artifacts/c1/run-1/round-1/scores.json', f);
    const fOut = path.join(other, 'artifacts/c1/run-1/round-1/scores.json');
    await store.checkout(pf.key, fOut);
    expect(fs.readFileSync(fOut, 'utf8')).toBe('{"scores":{}}');

    // rm of c1: its refs go; the weights blob stays (c2 holds it), the scores blob goes
    const gone = await store.unpin(['artifacts/c1/']);
    expect(gone.refs).toBe(2);
    expect(fs.existsSync(blobFile(wHex))).toBe(true);
    expect(fs.existsSync(blobFile(pf.tree.files[0].sha256))).toBe(false);
    expect((await store.refCounts()).get(wHex)).toBe(1);
    // rm of c2: nothing holds the weights any more
    const gone2 = await store.unpin(['artifacts/c2/']);
    expect(gone2.blobs).toBeGreaterThanOrEqual(3); // manifest, model.json, weights.bin
    expect(fs.existsSync(blobFile(wHex))).toBe(false);
    expect(await store.resolve('artifacts/c2/baseline/model')).toBeUndefined();
    expect(await store.refCounts()).toEqual(new Map());
    expect(await store.backend.list('')).toEqual([]); // no ref, hold or blob left behind
  });

  it("a worker's Artifacts: a truncated copy of the baseline in the home is re-fetched and loads, a name from an old history resolves through its ref", async () => {
    const { store } = make();
    const home = tmpHome('blob-art');
    const art = new Artifacts(home, store);
    const name = 'artifacts/c9/baseline/model';
    const { weights } = writeModelFolder(art.abs(name), 3);
    const p = await art.publish(name);
    fs.truncateSync(path.join(art.abs(name), 'weights.bin'), 10);
    expect(await art.local(p.ref)).toBe(art.abs(name));
    expect(fs.readFileSync(path.join(art.abs(name), 'weights.bin')).equals(weights)).toBe(true);
    // a bare name (a workflow started before the store) on a worker without the files
    const other = new Artifacts(tmpHome('blob-art2'), store);
    expect(await other.local(name)).toBe(other.abs(name));
    expect(fs.readFileSync(path.join(other.abs(name), 'weights.bin')).equals(weights)).toBe(true);
    // nowhere at all: a retryable ArtifactError naming it
    await expect(other.local('artifacts/c9/run-1/round-1/pruned')).rejects.toThrow(
      /artifact artifacts\/c9\/run-1\/round-1\/pruned is neither in the artifact store/,
    );
  });
});

describe('S3 settings', () => {
  it('PRUNEWISE_ARTIFACTS and the AWS variables: path-style by default with an endpoint; a wrong key fails with one line that never shows the secret', async () => {
    expect(s3Location('s3://bucket-a/some/prefix/', { AWS_ENDPOINT_URL_S3: 'http://x:1' })).toEqual({
      bucket: 'bucket-a',
      prefix: 'some/prefix',
      endpoint: 'http://x:1',
      region: 'us-east-1',
      pathStyle: true,
    });
    expect(s3Location('s3://bucket-a', { PRUNEWISE_S3_PATH_STYLE: 'false', AWS_REGION: 'eu-west-1' })).toMatchObject({ pathStyle: false, region: 'eu-west-1' });
    expect(() => s3Location('s3://B/x')).toThrow(/PRUNEWISE_ARTIFACTS: "s3:\/\/B\/x" is not s3:\/\/<bucket>\/<prefix>/);

    const wrong = 'WRONG-secret-0123456789';
    const env = { ...s3.env('p'), AWS_SECRET_ACCESS_KEY: wrong };
    {
      const store = ArtifactStore.fromEnv('/x', env);
      expect(store.description).toBe(`s3://${s3.bucket}/p at ${s3.endpoint}`);
      const e = await store.backend.check().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(StoreConfigError);
      expect((e as Error).message).toMatch(/access refused .*check AWS_ACCESS_KEY_ID \/ AWS_SECRET_ACCESS_KEY/);
      expect((e as Error).message).not.toContain(wrong);
      const missing = new S3Backend(s3Location('s3://no-such-bucket-here/p', s3.env('p')), s3.env('p'));
      await expect(missing.check()).rejects.toThrow(/the bucket does not exist: create it or fix PRUNEWISE_ARTIFACTS/);
    }
  });
});

describe('checked writes', () => {
  it('a write cut short (file size limit) throws a retryable error naming the folder, and leaves neither a model nor a temporary folder', () => {
    const dir = tmpHome('short-write');
    const script = `
      const { writeDirAtomic } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'ml', 'files.js'))});
      try {
        writeDirAtomic(${JSON.stringify(path.join(dir, 'model'))}, { 'model.json': '{}', 'weights.bin': Buffer.alloc(721320, 7) });
        console.log(JSON.stringify({ ok: true }));
      } catch (e) {
        console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message }));
      }`;
    // ulimit -f 672 (KiB): the weights stop at 688 128 of 721 320 bytes, as the full disk of the issue did;
    // SIGXFSZ ignored so the write returns short / EFBIG instead of killing the process
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 672; exec "${process.execPath}" -e "$0"`, script], { encoding: 'utf8' });
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.ok).toBeUndefined();
    expect(out.name).toBe('TransientIOError');
    expect(out.code).toBe('EFBIG');
    expect(out.message).toContain(`writing ${path.join(dir, 'model')}: file size limit reached (EFBIG)`);
    expect(fs.readdirSync(dir)).toEqual([]); // no half-written model, no temporary folder
  });

  it("a temporary folder left by a writer killed mid-write is removed by the next write into that folder; a live writer's is kept", () => {
    const dir = tmpHome('killed-write');
    // the writer is killed (-9, by itself: no clean-up can run) at its first fsync, in the middle of the folder's files
    const script = `
      const fs = require('node:fs');
      fs.fsyncSync = () => process.kill(process.pid, 'SIGKILL');
      const { writeDirAtomic } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'ml', 'files.js'))});
      writeDirAtomic(${JSON.stringify(path.join(dir, 'step-00000010'))}, { 'model.json': '{}', 'weights.bin': Buffer.alloc(721320, 7) });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.signal).toBe('SIGKILL');
    const left = fs.readdirSync(dir);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^step-00000010\.tmp-\d+-[0-9a-f]{8}$/);
    const live = `step-00000020.tmp-${process.pid}-0123abcd`; // this process is writing it
    fs.mkdirSync(path.join(dir, live));
    writeDirAtomic(path.join(dir, 'step-00000030'), { 'model.json': '{}', 'weights.bin': Buffer.alloc(16, 1) });
    expect(fs.readdirSync(dir).sort()).toEqual([live, 'step-00000030']);
  });

  it('a publish killed before its last write leaves a pending ref: not resolved, not read, dropped by unpin with its holds and blobs', async () => {
    const root = tmpHome('blob-pending');
    /** the process dies at the second write of a ref (the first marks it pending; the second would make it whole) */
    class DiesAtWholeRef extends LocalBackend {
      refWrites = 0;
      override async putBytes(key: string, data: Uint8Array | string): Promise<void> {
        if (key.startsWith('refs/') && ++this.refWrites === 2) throw new Error('killed');
        return super.putBytes(key, data);
      }
    }
    const home = tmpHome('blob-pending-home');
    const a = path.join(home, 'artifacts/c1/run-1/round-1/finetune-checkpoints/step-00000003');
    writeModelFolder(a, 3);
    const name = 'artifacts/c1/run-1/round-1/finetune-checkpoints/step-00000003';
    await expect(new ArtifactStore(new DiesAtWholeRef(root)).publish(name, a)).rejects.toThrow(/killed/);
    const store = new ArtifactStore(new LocalBackend(root));
    expect(await store.resolve(name)).toBeUndefined();
    const [r] = await store.refs('artifacts/c1/');
    expect(r).toMatchObject({ name, pending: true });
    // an Artifacts reader by name: not from the store (its tree may not be whole), the home's own file instead
    expect(await new Artifacts(home, store).local(name)).toBe(a);
    expect((await store.unpin(['artifacts/c1/'])).refs).toBe(1);
    expect([...(await store.backend.list('holds/')), ...(await store.backend.list('blobs/')), ...(await store.backend.list('refs/'))]).toEqual([]);
    // published again in full: whole, and resolved
    const p = await store.publish(name, a);
    expect(await store.resolve(name)).toBe(p.key);
    expect((await store.refs('artifacts/c1/'))[0].pending).toBe(false);
  });

  it('a writer killed between moving the previous version aside and renaming the new one in: the previous, whole version is put back, not deleted', () => {
    const dir = tmpHome('killed-replace');
    const ckpt = path.join(dir, 'step-00000010');
    writeDirAtomic(ckpt, { 'model.json': '{"v":1}', 'weights.bin': Buffer.alloc(64, 1) });
    // the second rename (the new folder into place) is where the writer dies (-9, by itself)
    const script = `
      const fs = require('node:fs');
      const rename = fs.renameSync;
      let n = 0;
      fs.renameSync = (a, b) => (++n === 2 ? process.kill(process.pid, 'SIGKILL') : rename(a, b));
      const { writeDirAtomic } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'ml', 'files.js'))});
      writeDirAtomic(${JSON.stringify(ckpt)}, { 'model.json': '{"v":2}', 'weights.bin': Buffer.alloc(64, 2) });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.signal).toBe('SIGKILL');
    const left = fs.readdirSync(dir).sort();
    expect(left).toHaveLength(2);
    expect(left[0]).toMatch(/^step-00000010\.old-\d+-[0-9a-f]{8}$/);
    expect(left[1]).toMatch(/^step-00000010\.tmp-\d+-[0-9a-f]{8}$/);
    expect(sweepDeadTemps(dir).sort()).toEqual(left);
    expect(fs.readdirSync(dir)).toEqual(['step-00000010']);
    expect(fs.readFileSync(path.join(ckpt, 'model.json'), 'utf8')).toBe('{"v":1}');
    expect(fs.readFileSync(path.join(ckpt, 'weights.bin')).equals(Buffer.alloc(64, 1))).toBe(true);
  });

  it('ENOSPC and EIO are transient with a message saying what is full; other errors are left alone', () => {
    let enospc: unknown;
    try {
      fs.writeFileSync('/dev/full', Buffer.alloc(10));
    } catch (e) {
      enospc = e;
    }
    expect((enospc as { code: string }).code).toBe('ENOSPC');
    const t = classifyIOError(enospc, 'writing /data/home/artifacts/c/run-1/round-1/pruned');
    expect(t).toBeInstanceOf(TransientIOError);
    expect((t as Error).message).toBe(
      'writing /data/home/artifacts/c/run-1/round-1/pruned: no space left on the device (ENOSPC): free space or fix the disk; the stage is retried',
    );
    const enoent = Object.assign(new Error('x'), { code: 'ENOENT' });
    expect(classifyIOError(enoent, 'w')).toBe(enoent);
    expect(classifyIOError(Object.assign(new Error('x'), { code: 'EIO' }), 'w')).toBeInstanceOf(TransientIOError);
  });
});
