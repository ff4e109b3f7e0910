// Determinism of training: the same seed gives bit-identical weights whatever the number of
// threads, and a resume from a checkpoint continues bit for bit (optimizer, data position, loss series).
import { Context } from '@temporalio/activity';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Artifacts } from '../activities/artifacts';
import { checkpointInterval, newestCheckpoint, trainResumable } from '../activities/checkpoints';
import {
  buildZooModel,
  encodeTrainState,
  initBackend,
  loadDataset,
  loadModel,
  readTrainState,
  saveModel,
  stopReplicas,
  subset,
  train,
  type Dataset,
  type Split,
  type TrainOptions,
  type TrainState,
} from '../ml';

let ds: Dataset;
let backend: string;
const first = (n: number): Split =>
  subset(
    ds.train,
    Array.from({ length: n }, (_, i) => i),
  );
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'pw-det-'));

beforeAll(async () => {
  backend = (await initBackend()).name;
  ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 2000, testLimit: 100, validationFraction: 0.1 }, 1);
});
afterAll(() => stopReplicas());

/** Every weight (trainable and batch-norm statistics) as bytes. */
const bytesOf = (m: tfl.LayersModel) => m.getWeights().map((w) => Buffer.from((w.dataSync() as Float32Array).slice().buffer));
function expectSameBytes(a: tfl.LayersModel, b: tfl.LayersModel): void {
  const [x, y] = [bytesOf(a), bytesOf(b)];
  expect(x.length).toBe(y.length);
  x.forEach((buf, i) => expect(buf.equals(y[i]), `weight ${a.getWeights()[i].name} differs`).toBe(true));
}

describe('training is bit-identical on 1, 2 or 3 threads', () => {
  // batch 96 = 3 logical shards of 32: three threads all compute
  const cases: Array<[string, number, number, number]> = [
    ['lenet5', 512, 64, 2],
    ['resnet8', 200, 96, 1], // batch norm; 200 = 2 full batches and a short one of 8
  ];
  for (const [net, n, batchSize, epochs] of cases) {
    it(`${net}: same weights (bytes), same loss series`, async () => {
      const data = first(n);
      const opts: TrainOptions = { epochs, batchSize, learningRate: 2e-3, seed: 3 };
      const models: tfl.LayersModel[] = [];
      const losses: Array<Array<[number, number]>> = [];
      for (const threads of [1, 2, 3]) {
        const m = buildZooModel(net, 4, [28, 28, 1], 10);
        const r = await train(m, data, { ...opts, threads });
        // no more threads than logical shards per batch (ceil(batch / 32))
        expect(r.threads).toBe(backend === 'wasm' || backend === 'cpu' ? Math.min(threads, Math.ceil(batchSize / 32)) : 1);
        models.push(m);
        losses.push(r.epochLoss);
      }
      const untrained = buildZooModel(net, 4, [28, 28, 1], 10);
      expect(bytesOf(models[0]).some((b, i) => !b.equals(bytesOf(untrained)[i]))).toBe(true); // it trained
      expectSameBytes(models[0], models[1]);
      expectSameBytes(models[0], models[2]);
      expect(losses[1]).toEqual(losses[0]);
      expect(losses[2]).toEqual(losses[0]);
      if (net === 'resnet8') {
        const mean = models[0].weights.find((w) => w.name.includes('moving_mean'))!;
        expect(Math.max(...(mean.read().dataSync() as Float32Array).map(Math.abs))).toBeGreaterThan(1e-3); // statistics moved
      }
      [...models, untrained].forEach((m) => m.dispose());
    });
  }

  it('dropout masks are seeded per step and shard, not per thread', async () => {
    const mk = () =>
      tfl.sequential({
        layers: [
          tfl.layers.flatten({ inputShape: [28, 28, 1] }),
          tfl.layers.dense({ units: 32, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
          tfl.layers.dropout({ rate: 0.5 }),
          tfl.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
        ],
      });
    const [a, b] = [mk(), mk()];
    const data = first(256);
    const ra = await train(a, data, { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 9, threads: 1 });
    const rb = await train(b, data, { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 9, threads: 2 });
    expectSameBytes(a, b);
    expect(rb.epochLoss).toEqual(ra.epochLoss);
    // the layer's own (unset) seed is left as it was
    expect((a.layers[2] as unknown as { seed?: number }).seed).toBeUndefined();
    [a, b].forEach((m) => m.dispose());
  });
});

describe('a resumed train continues bit for bit', () => {
  it('train(): checkpoint inside epoch 1 and at its end, new model loaded from the folder, same weights and full loss series', async () => {
    const data = first(320); // 5 steps per epoch
    const opts: TrainOptions = { epochs: 2, batchSize: 64, learningRate: 2e-3, seed: 7 };
    const whole = buildZooModel('mobilenet-small', 2, [28, 28, 1], 10);
    const dir = tmp();
    const saved: number[] = [];
    const full = await train(whole, data, {
      ...opts,
      checkpointEverySteps: 3,
      onCheckpoint: async (step, _epoch, state) => {
        saved.push(step);
        await saveModel(whole, path.join(dir, `step-${step}`), encodeTrainState(state));
      },
    });
    expect(saved).toEqual([3, 5, 6, 9, 10]);
    expect(full.epochLoss.map(([e]) => e)).toEqual([1, 2]);
    // per-batch loss: 10 steps ≤ MAX_BATCH_LOSS_POINTS, so one point per batch, keyed by its step
    expect(full.batchLoss.map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(full.batchLoss.slice(0, 5).reduce((a, [, l]) => a + l, 0) / 5).toBeCloseTo(full.epochLoss[0][1], 6);
    for (const k of [3, 5, 6]) {
      const resumedModel = await loadModel(path.join(dir, `step-${k}`));
      const state: TrainState = readTrainState(path.join(dir, `step-${k}`));
      expect(state.step).toBe(k);
      const r = await train(resumedModel, data, { ...opts, resume: state });
      expect(r.resumedFromStep).toBe(k);
      expect(r.steps).toBe(10);
      expectSameBytes(resumedModel, whole);
      expect(r.epochLoss).toEqual(full.epochLoss); // the first epoch's point is kept
      expect(r.batchLoss).toEqual(full.batchLoss); // and the batches' before the resume
      resumedModel.dispose();
    }
    // a state for another training is refused, not silently used
    await expect(train(whole, data, { ...opts, seed: 8, resume: readTrainState(path.join(dir, 'step-5')) })).rejects.toThrow(/training state to resume/);
    whole.dispose();
  });

  it('trainResumable (the stage path): a worker stopped after the epoch-1 checkpoint, a new attempt resumes it; equal to an uninterrupted run; tensors flat', async () => {
    const home = tmp();
    const art = new Artifacts(home);
    const data = first(256); // 4 steps per epoch
    const opts = { epochs: 2, batchSize: 64, learningRate: 2e-3, seed: 11, keepCheckpoints: 2 };
    const start = async () => buildZooModel('lenet5', 6, [28, 28, 1], 10);
    /** a fake activity context: heartbeats recorded; abort when a heartbeat reports `stopAt` */
    const fakeContext = (heartbeatDetails: unknown, stopAt?: number) => {
      const abort = new AbortController();
      const beats: Array<{ step: number; checkpoint?: string }> = [];
      const ctx = {
        info: { heartbeatDetails },
        cancellationSignal: abort.signal,
        heartbeat: (d: { step: number; checkpoint?: string }) => {
          beats.push(d);
          if (d.step === stopAt) abort.abort(new Error('worker killed'));
        },
      };
      vi.spyOn(Context, 'current').mockReturnValue(ctx as unknown as Context);
      return beats;
    };
    try {
      fakeContext(undefined);
      const uninterrupted = await trainResumable(art, start, 'a/checkpoints', opts, data);

      const keepOne = { ...opts, keepCheckpoints: 1 }; // what is kept does not change what is trained
      const beats = fakeContext(undefined, 6); // killed in epoch 2, after the step-4 checkpoint
      await expect(trainResumable(art, start, 'b/checkpoints', keepOne, data)).rejects.toThrow(/worker killed/);
      const last = beats.at(-1)!;
      // the heartbeat carries the checkpoint's name and its key in the artifact store
      expect(last.checkpoint).toMatch(/^b\/checkpoints\/step-00000004@sha256:[0-9a-f]{64}$/);
      expect(newestCheckpoint(art.abs('b/checkpoints'))?.step).toBe(4);

      // the retry runs on another worker, with its own home: it fetches the checkpoint from the store
      fakeContext(last);
      const other = new Artifacts(tmp(), art.store);
      const n0 = tf.memory().numTensors;
      const resumed = await trainResumable(other, () => Promise.reject(new Error('must resume, not start over')), 'b/checkpoints', keepOne, data);
      expect(resumed.result.resumedFromStep).toBe(4);
      // checkpoint clean-up: the store keeps the newest one only; the older one's ref and blobs are gone
      expect((await art.store.refs('b/checkpoints/')).map((r) => r.name)).toEqual(['b/checkpoints/step-00000008']);
      expect(await art.store.resolve('b/checkpoints/step-00000004')).toBeUndefined();
      expectSameBytes(resumed.model, uninterrupted.model);
      expect(resumed.result.epochLoss).toEqual(uninterrupted.result.epochLoss);
      expect(resumed.result.batchLoss).toEqual(uninterrupted.result.batchLoss);
      expect(resumed.result.epochLoss).toHaveLength(2);
      resumed.model.dispose();
      expect(tf.memory().numTensors).toBe(n0); // training left nothing behind; the loaded model's tensors went with it
      uninterrupted.model.dispose();
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('trainResumable checkpoints within an epoch too (every checkpointInterval steps): a one-epoch budget killed midway resumes, not from step 0', async () => {
    const home = tmp();
    const art = new Artifacts(home);
    const data = first(60 * 8); // 60 steps of 8: checkpoints at 25, 50 and 60 (the epoch's end)
    expect(checkpointInterval(60)).toBe(25);
    const opts = { epochs: 1, batchSize: 8, learningRate: 2e-3, seed: 12, keepCheckpoints: 2 };
    const start = async () => buildZooModel('lenet5', 6, [28, 28, 1], 10);
    const abort = new AbortController();
    const ctx = (details: unknown, stopAt?: number) => ({
      info: { heartbeatDetails: details },
      cancellationSignal: abort.signal,
      heartbeat: (d: { step: number }) => {
        if (d.step === stopAt) abort.abort(new Error('worker killed'));
      },
    });
    try {
      vi.spyOn(Context, 'current').mockReturnValue(ctx(undefined, 30) as unknown as Context);
      await expect(trainResumable(art, start, 'c/checkpoints', opts, data)).rejects.toThrow(/worker killed/);
      expect(newestCheckpoint(art.abs('c/checkpoints'))?.step).toBe(25);
      const fresh = new AbortController();
      vi.spyOn(Context, 'current').mockReturnValue({ ...ctx(undefined), cancellationSignal: fresh.signal } as unknown as Context);
      const resumed = await trainResumable(art, () => Promise.reject(new Error('must resume, not start over')), 'c/checkpoints', opts, data);
      expect(resumed.result.resumedFromStep).toBe(25);
      expect(resumed.result.steps).toBe(60);
      resumed.model.dispose();
    } finally {
      vi.restoreAllMocks();
    }
  });

  it(`trainResumable with a whole recipe (budget in steps, one-cycle, label smoothing, distillation, growing sparsity penalty): killed and resumed on another worker equals an uninterrupted run`, async () => {
    const home = tmp();
    const art = new Artifacts(home);
    const data = first(256); // 4 steps per epoch; a budget of 7 steps ends inside epoch 2
    const teacher = buildZooModel('lenet5', 8, [28, 28, 1], 10);
    const recipe = {
      steps: 7,
      schedule: { kind: 'one-cycle' as const, warmup: 0.3 },
      labelSmoothing: 0.1,
      distill: { teacher, weight: 0.6, temperature: 3 },
      sparsity: { strength: 0.5, growth: 0.5 },
    };
    const opts = { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 13, keepCheckpoints: 2, recipe };
    const start = async () => buildZooModel('lenet5', 6, [28, 28, 1], 10);
    const fake = (heartbeatDetails: unknown, stopAt?: number) => {
      const abort = new AbortController();
      const beats: Array<{ step: number; checkpoint?: string; what?: string }> = [];
      vi.spyOn(Context, 'current').mockReturnValue({
        info: { heartbeatDetails },
        cancellationSignal: abort.signal,
        heartbeat: (d: { step: number; checkpoint?: string; what?: string }) => {
          beats.push(d);
          if (d.step === stopAt && !d.what) abort.abort(new Error('worker killed'));
        },
      } as unknown as Context);
      return beats;
    };
    try {
      const first0 = fake(undefined);
      const uninterrupted = await trainResumable(art, start, 'r/a', opts, data);
      expect(uninterrupted.result.steps).toBe(7);
      expect(first0.some((b) => b.what === 'teacher logits')).toBe(true); // the teacher's pass heartbeats too
      const beats = fake(undefined, 6);
      await expect(trainResumable(art, start, 'r/b', opts, data)).rejects.toThrow(/worker killed/);
      fake(beats.at(-1));
      const resumed = await trainResumable(new Artifacts(tmp(), art.store), () => Promise.reject(new Error('must resume')), 'r/b', opts, data);
      expect(resumed.result.resumedFromStep).toBe(4);
      expectSameBytes(resumed.model, uninterrupted.model);
      expect(resumed.result.batchLoss).toEqual(uninterrupted.result.batchLoss);
      // the plain recipe trains other weights: the recipe was applied
      fake(undefined);
      const plain = await trainResumable(art, start, 'r/c', { ...opts, recipe: { steps: 7 } }, data);
      expect(bytesOf(plain.model).some((b, i) => !b.equals(bytesOf(uninterrupted.model)[i]))).toBe(true);
      [resumed.model, uninterrupted.model, plain.model, teacher].forEach((m) => m.dispose());
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('a checkpoint folder without its training state is not resumed from', async () => {
    const dir = tmp();
    const m = buildZooModel('lenet5', 1, [28, 28, 1], 10);
    await saveModel(m, path.join(dir, 'step-00000008')); // weights only, as older versions wrote
    let state: TrainState | undefined;
    await train(m, first(256), { epochs: 1, batchSize: 64, learningRate: 1e-3, seed: 1, threads: 1, onCheckpoint: async (_s, _e, st) => void (state = st) });
    expect(state!.step).toBe(4);
    await saveModel(m, path.join(dir, 'step-00000004'), encodeTrainState(state!));
    expect(newestCheckpoint(dir)).toEqual({ name: 'step-00000004', step: 4 });
    // a corrupt state is passed over by the stage path: it starts from the model, not from that checkpoint
    fs.writeFileSync(path.join(dir, 'step-00000004', 'optimizer.bin'), 'torn');
    const art = new Artifacts(dir);
    vi.spyOn(Context, 'current').mockReturnValue({
      info: {},
      cancellationSignal: new AbortController().signal,
      heartbeat: () => undefined,
    } as unknown as Context);
    try {
      let started = false;
      const r = await trainResumable(
        art,
        async () => ((started = true), buildZooModel('lenet5', 1, [28, 28, 1], 10)),
        '.',
        { epochs: 1, batchSize: 64, learningRate: 1e-3, seed: 1, keepCheckpoints: 5 },
        first(64),
      );
      expect(started).toBe(true);
      expect(r.result.resumedFromStep).toBe(0);
      r.model.dispose();
    } finally {
      vi.restoreAllMocks();
    }
    m.dispose();
  });
});
