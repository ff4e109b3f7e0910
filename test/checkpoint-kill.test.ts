// kill -9 during fine-tune, made deterministic: the worker "dies" before each single write or delete
// it makes to the artifact store while checkpointing (a fault hook around a real local store:
// that operation and every later one fail, as nothing more of a killed process happens), then a
// new attempt runs trainResumable — on the same home (the crash test: a new worker beside the old
// one's files), with and without the heartbeat's last checkpoint (the server keeps only throttled
// beats), and on another home that shares only the store. Each kill point is one of the windows
// of `saveModel` → `publish` (holds, ref, blobs, manifest) → `pruneCheckpoints` → `unpin`.
// The resumed train must start from the newest checkpoint that is whole and verifiable wherever it
// is, never from step 0 when one exists, end bit for bit equal to an uninterrupted run, and leave
// the store holding only checkpoints that check out.
import { Context } from '@temporalio/activity';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Artifacts } from '../activities/artifacts';
import { newestCheckpoint, trainResumable } from '../activities/checkpoints';
import { ArtifactStore, LocalBackend, type BlobBackend } from '../blobstore';
import { buildZooModel, initBackend, loadDataset, stopReplicas, subset, type Split } from '../ml';

// a RAM folder where there is one: ~100 attempts each fsync their checkpoints (the same code either way)
const ROOT = fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/pw-ckill-') : fs.mkdtempSync(path.join(os.tmpdir(), 'pw-ckill-'));
const tmp = () => fs.mkdtempSync(path.join(ROOT, 'd-'));

/** The process was killed at this point: nothing after it happens. */
class Killed extends Error {
  override name = 'Killed';
}

/**
 * A real backend whose process "dies" before its `killAt`-th change (put or delete of one object):
 * that change and everything after it throw Killed. Counts the changes it made (`changes`).
 */
class DyingBackend implements BlobBackend {
  changes = 0;
  dead = false;
  constructor(
    readonly inner: BlobBackend,
    readonly killAt = Infinity,
  ) {}
  get description() {
    return this.inner.description;
  }
  private change(): void {
    if (this.dead || this.changes + 1 >= this.killAt) {
      this.dead = true;
      throw new Killed(`killed before change ${this.changes + 1}`);
    }
    this.changes++;
  }
  private read(): void {
    if (this.dead) throw new Killed('dead');
  }
  async check() {
    this.read();
    return this.inner.check();
  }
  async size(key: string) {
    this.read();
    return this.inner.size(key);
  }
  async putFile(key: string, file: string) {
    this.change();
    return this.inner.putFile(key, file);
  }
  async putBytes(key: string, data: Uint8Array | string) {
    this.change();
    return this.inner.putBytes(key, data);
  }
  async getToFile(key: string, file: string) {
    this.read();
    return this.inner.getToFile(key, file);
  }
  async getBytes(key: string) {
    this.read();
    return this.inner.getBytes(key);
  }
  async list(prefix: string) {
    this.read();
    return this.inner.list(prefix);
  }
  async delete(keys: string[]) {
    for (const k of keys) {
      this.change(); // one object at a time: a kill can land between two of a batch
      await this.inner.delete([k]);
    }
  }
}

interface Beat {
  step: number;
  checkpoint?: string;
}

/** A fake activity context (no Temporal server in a unit test): heartbeats and log lines recorded. */
function fakeContext(heartbeatDetails: Beat | undefined): { beats: Beat[]; warnings: string[] } {
  const beats: Beat[] = [];
  const warnings: string[] = [];
  const ctx = {
    info: { heartbeatDetails },
    cancellationSignal: new AbortController().signal,
    heartbeat: (d: Beat) => void beats.push(d),
    log: { warn: (m: string) => void warnings.push(m), info: () => undefined, debug: () => undefined, error: () => undefined },
  };
  vi.spyOn(Context, 'current').mockReturnValue(ctx as unknown as Context);
  return { beats, warnings };
}

const ok = () => true;
const no = () => false;
const bytesOf = (m: tfl.LayersModel) => m.getWeights().map((w) => Buffer.from((w.dataSync() as Float32Array).slice().buffer));

let data: Split;
beforeAll(async () => {
  await initBackend();
  const ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 400, testLimit: 50, validationFraction: 0.1 }, 1);
  data = subset(
    ds.train,
    Array.from({ length: 192 }, (_, i) => i),
  ); // 3 steps per epoch at batch 64
});
afterAll(() => {
  stopReplicas();
  fs.rmSync(ROOT, { recursive: true, force: true });
});

const CKPT = 'artifacts/c/run-1/round-1/finetune-checkpoints';
// 3 epochs: checkpoints after steps 3, 6 and 9; one kept (so every checkpoint after the first drops the one before)
const OPTS = { epochs: 3, batchSize: 64, learningRate: 2e-3, seed: 5, keepCheckpoints: 1 };
const start = async () => buildZooModel('mlp', 4, [28, 28, 1], 10);

describe('kill -9 at every artifact-store write of checkpointing: the retry resumes from the newest whole checkpoint (deterministic fault hook)', () => {
  it('same home (with and without the heartbeat), or another home sharing only the store: never step 0 when a checkpoint exists, bit for bit', async () => {
    try {
      // the uninterrupted run; how many store changes the first two checkpoints take (those of the
      // third are the second's again, with nothing left to train after them)
      fakeContext(undefined);
      const whole = await trainResumable(new Artifacts(tmp()), start, CKPT, OPTS, data);
      const reference = bytesOf(whole.model);
      whole.model.dispose();
      const counting = new DyingBackend(new LocalBackend(tmp()));
      (await trainResumable(new Artifacts(tmp(), new ArtifactStore(counting)), start, CKPT, { ...OPTS, epochs: 2 }, data)).model.dispose();
      const total = counting.changes;
      expect(total).toBeGreaterThan(20);

      const failures: string[] = [];
      let killsAfterAFolder = 0;
      for (let killAt = 1; killAt <= total + 1; killAt++) {
        // the first attempt, killed before its killAt-th change to the store (total + 1: after the second checkpoint's clean-up)
        const root = tmp();
        const home = tmp();
        const dying = new DyingBackend(new LocalBackend(root), killAt);
        const first = fakeContext(undefined);
        const attempt = trainResumable(new Artifacts(home, new ArtifactStore(dying)), start, CKPT, OPTS, data);
        await expect(attempt).rejects.toThrow(/killed before change/);
        const onDisk = newestCheckpoint(path.join(home, CKPT));
        if (onDisk) killsAfterAFolder++;
        const lastBeat = first.beats.filter((b) => b.checkpoint).at(-1);
        // what a retry can find: the newest step whose store copy checks out; on the same home also the newest whole folder
        const probeStore = new ArtifactStore(new LocalBackend(root));
        const verifiable: number[] = [];
        for (const r of await probeStore.refs(`${CKPT}/`)) {
          if (await probeStore.checkout(r.key, path.join(tmp(), 'probe')).then(ok, no)) verifiable.push(Number(/step-(\d+)$/.exec(r.name)![1]));
        }

        for (const retry of ['same home, heartbeat', 'same home, no heartbeat', 'other home, heartbeat'] as const) {
          // the new worker: a fresh process over a copy of what the killed one left (store objects, and its home or an empty one)
          const storeCopy = tmp();
          fs.cpSync(root, storeCopy, { recursive: true });
          const store = new ArtifactStore(new LocalBackend(storeCopy));
          const otherHome = retry.startsWith('other');
          const homeCopy = tmp();
          if (!otherHome) fs.cpSync(home, homeCopy, { recursive: true });
          const ctx = fakeContext(retry.endsWith('no heartbeat') ? undefined : lastBeat);
          const expected = Math.max(0, ...verifiable, ...(otherHome ? [] : [onDisk?.step ?? 0]));
          const r = await trainResumable(new Artifacts(homeCopy, store), start, CKPT, OPTS, data);
          const same = bytesOf(r.model).every((b, i) => b.equals(reference[i]));
          r.model.dispose();
          const refs = await store.refs(`${CKPT}/`);
          const good = await Promise.all(refs.map((x) => store.checkout(x.key, path.join(tmp(), 'probe')).then(ok, no)));
          const what = `kill before store change ${killAt}/${total}, ${retry} (folder on disk: ${onDisk?.name ?? 'none'}, heartbeat: ${lastBeat?.checkpoint ?? 'none'})`;
          if (r.result.resumedFromStep !== expected) failures.push(`${what}: resumed from step ${r.result.resumedFromStep}, expected ${expected}`);
          // a checkpoint passed over is said, with its reason
          const beatStep = Number(/step-(\d+)@/.exec(lastBeat?.checkpoint ?? '')?.[1] ?? 0);
          if (
            !retry.endsWith('no heartbeat') &&
            r.result.resumedFromStep < beatStep &&
            !ctx.warnings.some((w) => w.includes(`step-${String(beatStep).padStart(8, '0')}`))
          )
            failures.push(`${what}: the heartbeat's checkpoint was passed over without a word`);
          if (!same) failures.push(`${what}: weights differ from the uninterrupted run`);
          if (refs.map((x) => x.name).join() !== `${CKPT}/step-00000009` || !good.every(Boolean))
            failures.push(`${what}: the store holds ${refs.map((x) => x.name).join(', ')} (whole: ${good.join(', ')}), not just the last checkpoint, whole`);
          // and nothing leaks: the run's clean-up (unpin of the folder) leaves no hold and no blob behind
          await store.unpin([`${CKPT}/`]);
          const left = [...(await store.backend.list('holds/')), ...(await store.backend.list('blobs/')), ...(await store.backend.list('refs/'))];
          if (left.length) failures.push(`${what}: after the clean-up the store still has ${left.map((o) => o.key).join(', ')}`);
        }
      }
      expect(killsAfterAFolder).toBeGreaterThan(0);
      expect(failures).toEqual([]);
    } finally {
      vi.restoreAllMocks();
    }
  }, 600_000);

  it('a checkpoint whose store copy fails its check (its manifest gone, as an older version could leave it) is resumed from the whole folder here, published again, and the reason logged', async () => {
    try {
      fakeContext(undefined);
      const whole = await trainResumable(new Artifacts(tmp()), start, CKPT, OPTS, data);
      const reference = bytesOf(whole.model);
      whole.model.dispose();
      const root = tmp();
      const home = tmp();
      const counting = new DyingBackend(new LocalBackend(root));
      fakeContext(undefined);
      (await trainResumable(new Artifacts(home, new ArtifactStore(counting)), start, CKPT, { ...OPTS, epochs: 2 }, data)).model.dispose();
      const store = new ArtifactStore(new LocalBackend(root));
      const [six] = await store.refs(`${CKPT}/`);
      expect(six.name).toBe(`${CKPT}/step-00000006`);
      fs.rmSync(path.join(root, 'blobs', 'sha256', six.key.slice(7, 9), six.key.slice(7)));
      await expect(store.checkout(six.key, path.join(tmp(), 'probe'))).rejects.toThrow(/not in the store/);

      const ctx = fakeContext({ step: 6, checkpoint: `${six.name}@${six.key}` });
      const fresh = new ArtifactStore(new LocalBackend(root));
      const r = await trainResumable(new Artifacts(home, fresh), () => Promise.reject(new Error('must resume, not start over')), CKPT, OPTS, data);
      expect(r.result.resumedFromStep).toBe(6);
      expect(bytesOf(r.model).every((b, i) => b.equals(reference[i]))).toBe(true);
      r.model.dispose();
      expect(ctx.warnings.join('\n')).toMatch(/step-00000006 \(the heartbeat's sha256:[0-9a-f]{64}\) passed over: .*not in the store/);
      // published again before training went on: the heartbeat named a copy that checks out
      expect(ctx.beats.find((b) => b.step === 7)?.checkpoint).toBe(`${six.name}@${six.key}`);
      const refs = await fresh.refs(`${CKPT}/`);
      expect(refs.map((x) => x.name)).toEqual([`${CKPT}/step-00000009`]);
      await fresh.checkout(refs[0].key, path.join(tmp(), 'probe'));
    } finally {
      vi.restoreAllMocks();
    }
  });
});
