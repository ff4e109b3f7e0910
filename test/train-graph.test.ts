// Graph mode of training on the native backend (ml/train-graph.ts): each step one TensorFlow graph
// call traced by ml/py/train_graph.py. Real TensorFlow (the .venv wheel, tfjs-node's binding), real
// Python export, real data; under CI=true or where the wheel is installed the backend must be
// `tensorflow` (no silent fallback), elsewhere these tests do not run and say so by name.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  analyze,
  buildZooModel,
  channelNorms,
  evaluate,
  groupPenaltyOf,
  initBackend,
  loadDataset,
  penaltyGradients,
  planLocal,
  pruneModel,
  scoreGroups,
  train,
  type Dataset,
  type Split,
  type TrainOptions,
  type TrainState,
} from '../ml';
import { GRAPH_CACHE_KEEP, GRAPH_MIN_STEPS } from '../ml/train-graph';
import { attentionLayers, attentionMaps } from '../ml/attention';

const ROOT = path.join(__dirname, '..');
const wheel =
  fs.existsSync(path.join(ROOT, '.venv', 'lib')) &&
  fs
    .readdirSync(path.join(ROOT, '.venv', 'lib'))
    .some((py) => fs.existsSync(path.join(ROOT, '.venv', 'lib', py, 'site-packages', 'tensorflow', 'libtensorflow_cc.so.2')));
const expectNative = process.env.CI === 'true' || wheel;
const where = expectNative ? '' : ' (not run: no tensorflow-cpu wheel in .venv and not CI)';

let ds: Dataset;
let cache: string;
const savedEnv = { cache: process.env.PRUNEWISE_GRAPH_CACHE, mode: process.env.PRUNEWISE_TRAIN_GRAPH };

beforeAll(async () => {
  if (!expectNative) return;
  await initBackend('tensorflow');
  expect(tf.getBackend()).toBe('tensorflow');
  // a cache of its own: the first training of each architecture really traces its graph
  cache = fs.mkdtempSync(path.join(os.tmpdir(), 'prunewise-graph-test-'));
  process.env.PRUNEWISE_GRAPH_CACHE = cache;
  // this file's trainings are ~155–310 steps, below GRAPH_MIN_STEPS: graph mode whatever the budget
  // unless a test says otherwise (the auto threshold has its own case in the refusals test)
  process.env.PRUNEWISE_TRAIN_GRAPH = 'on';
  // 2 500 images, 1 % held out: 155 steps an epoch at batch 16
  ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 2500, testLimit: 500, validationFraction: 0.01 }, 1);
}, 60_000);

afterAll(() => {
  if (cache) fs.rmSync(cache, { recursive: true, force: true });
  if (savedEnv.cache === undefined) delete process.env.PRUNEWISE_GRAPH_CACHE;
  else process.env.PRUNEWISE_GRAPH_CACHE = savedEnv.cache;
  if (savedEnv.mode === undefined) delete process.env.PRUNEWISE_TRAIN_GRAPH;
  else process.env.PRUNEWISE_TRAIN_GRAPH = savedEnv.mode;
});

const BASE: TrainOptions = { epochs: 2, batchSize: 16, learningRate: 2e-3, seed: 5 };
const weightsOf = (m: tfl.LayersModel) => m.weights.map((w) => Array.from(w.read().dataSync()));

/** The largest |a − b| / (|b| + 1e-3) over all weights of two models. */
function maxRelativeGap(a: number[][], b: number[][]): number {
  let worst = 0;
  a.forEach((w, k) => w.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - b[k][i]) / (Math.abs(b[k][i]) + 1e-3)))));
  return worst;
}

/** Trains a fresh zoo net (same initial weights for the same seed) under PRUNEWISE_TRAIN_GRAPH=mode. */
async function trainFresh(net: string, mode: 'auto' | 'on' | 'off', opts: Partial<TrainOptions> = {}, modelSeed = 1) {
  process.env.PRUNEWISE_TRAIN_GRAPH = mode;
  try {
    const model = buildZooModel(net, modelSeed, ds.shape, ds.classes);
    const r = await train(model, ds.train, { ...BASE, ...opts });
    return { model, r };
  } finally {
    process.env.PRUNEWISE_TRAIN_GRAPH = 'on';
  }
}

describe(`graph mode of training on the native backend${where}`, () => {
  it.runIf(expectNative)(
    'the graph cache keeps the most recently used graphs: a new trace deletes the oldest beyond GRAPH_CACHE_KEEP',
    async () => {
      // 40 stale entries (old modification times), then one real trace
      for (let i = 0; i < 40; i++) {
        const d = path.join(cache, i.toString(16).padStart(32, '0'));
        fs.mkdirSync(d, { recursive: true });
        fs.writeFileSync(path.join(d, 'saved_model.pb'), 'stale');
        const t = new Date(Date.now() - (i + 1) * 86_400_000);
        fs.utimesSync(d, t, t);
      }
      const { model, r } = await trainFresh('mobilenet-small', 'on');
      expect(r.mode).toBe('graph');
      const graphs = fs.readdirSync(cache).filter((n) => /^[0-9a-f]{32}$/.test(n));
      expect(graphs.length).toBe(GRAPH_CACHE_KEEP);
      // the newest stale ones stay, the oldest went
      expect(graphs).toContain('0'.repeat(32));
      expect(graphs).not.toContain((39).toString(16).padStart(32, '0'));
      model.dispose();
    },
    120_000,
  );

  it.runIf(expectNative)(
    'LeNet-5 trains in graph mode: the loss falls, it classifies, the same seed gives bit-identical weights, no tensors leak',
    async () => {
      const a = await trainFresh('lenet5', 'on');
      const tensors = tf.memory().numTensors;
      const b = await trainFresh('lenet5', 'on');
      expect(a.r.mode).toBe('graph');
      expect(a.r.eagerBecause).toBeUndefined();
      expect(a.r.steps).toBe(2 * Math.ceil(ds.train.n / 16));
      expect(a.r.epochLoss[1][1]).toBeLessThan(a.r.epochLoss[0][1]);
      expect((await evaluate(a.model, ds.test)).accuracy).toBeGreaterThan(0.6);
      expect(weightsOf(b.model)).toEqual(weightsOf(a.model));
      expect(b.r.batchLoss).toEqual(a.r.batchLoss);
      // b's model is the only new thing alive
      expect(tf.memory().numTensors - tensors).toBe(b.model.weights.length);
      a.model.dispose();
      b.model.dispose();
    },
    120_000,
  );

  it.runIf(expectNative)(
    "graph and eager compute the same recipe: a batch-norm net with label smoothing, distillation and a cosine schedule follows the same loss, and batch norm's moving averages move alike",
    async () => {
      const teacher = buildZooModel('vgg-small', 9, ds.shape, ds.classes);
      const recipe: Partial<TrainOptions> = {
        labelSmoothing: 0.1,
        distill: { teacher, weight: 0.7, temperature: 4 },
        schedule: { kind: 'cosine', warmup: 0.1 },
      };
      const g = await trainFresh('vgg-small', 'on', recipe);
      const e = await trainFresh('vgg-small', 'off', recipe);
      expect(g.r.mode).toBe('graph');
      expect(e.r.mode).toBe('eager');
      expect(e.r.eagerBecause).toBe('PRUNEWISE_TRAIN_GRAPH=off');
      // two computation orders of one formula: close, not equal (a wrong term — ε, α, T², momentum — is off by far more)
      g.r.epochLoss.forEach(([, l], i) => expect(Math.abs(l - e.r.epochLoss[i][1]) / e.r.epochLoss[i][1]).toBeLessThan(0.03));
      const first = (r: typeof g.r) => r.batchLoss[0][1];
      expect(Math.abs(first(g.r) - first(e.r)) / first(e.r)).toBeLessThan(0.01);
      const movingMean = (m: tfl.LayersModel) => Array.from(m.getLayer('bn1').getWeights()[2].dataSync());
      const [gm, em] = [movingMean(g.model), movingMean(e.model)];
      const spread = Math.max(...em.map(Math.abs));
      gm.forEach((x, i) => expect(Math.abs(x - em[i])).toBeLessThan(0.1 * spread));
      const [ga, ea] = await Promise.all([evaluate(g.model, ds.test), evaluate(e.model, ds.test)]);
      expect(Math.abs(ga.accuracy - ea.accuracy)).toBeLessThan(0.06);
      [teacher, g.model, e.model].forEach((m) => m.dispose());
    },
    240_000,
  );

  it.runIf(expectNative)(
    'augmentation with distillation trains in graph mode: the same augmented batches and teacher logits as eager (the loss follows), bit-identical for the same seed',
    async () => {
      const teacher = buildZooModel('lenet5', 9, ds.shape, ds.classes);
      const recipe: Partial<TrainOptions> = { augment: { flip: true, shift: 2 }, distill: { teacher, weight: 0.7, temperature: 4 } };
      const g = await trainFresh('lenet5', 'on', recipe);
      const g2 = await trainFresh('lenet5', 'on', recipe);
      const e = await trainFresh('lenet5', 'off', recipe);
      const plain = await trainFresh('lenet5', 'on', { distill: recipe.distill });
      expect(g.r.mode).toBe('graph');
      expect(weightsOf(g2.model)).toEqual(weightsOf(g.model));
      g.r.epochLoss.forEach(([, l], i) => expect(Math.abs(l - e.r.epochLoss[i][1]) / e.r.epochLoss[i][1]).toBeLessThan(0.03));
      // augmented images are harder to fit than the plain ones: a higher training loss in the second epoch
      expect(g.r.epochLoss[1][1]).toBeGreaterThan(plain.r.epochLoss[1][1]);
      [teacher, g.model, g2.model, e.model, plain.model].forEach((m) => m.dispose());
    },
    240_000,
  );

  it.runIf(expectNative)(
    "attention transfer trains in graph mode: a pruned vgg-small's maps move towards its teacher's, bit-identical for the same seed; eager refuses in one line",
    async () => {
      // the teacher: vgg-small trained 2 epochs; the student: the teacher pruned to half its channels in every group
      const { model: teacher } = await trainFresh('vgg-small', 'on', {}, 9);
      const layers = attentionLayers(teacher);
      expect(layers).toEqual([
        { name: 'relu2', size: 28 * 28 },
        { name: 'relu4', size: 14 * 14 },
        { name: 'relu5', size: 7 * 7 },
      ]);
      const graph = analyze(teacher);
      const student = async () => pruneModel(teacher, planLocal(graph, scoreGroups(teacher, 'l1', { seed: 1 }, graph), 0.5, { minUnits: 2 }), graph);
      const x = ds.test.x.subarray(0, 256 * 784);
      /** mean over examples of Σ_layers mean((Q_s − Q_t)²): the attention-transfer term without β */
      const gap = (m: tfl.LayersModel) => {
        const [s, t] = [attentionMaps(m, layers, x, 256), attentionMaps(teacher, layers, x, 256)];
        let sum = 0;
        for (let i = 0; i < s.length; i++) sum += (s[i] - t[i]) ** 2;
        return sum / 256 / (28 * 28 + 14 * 14 + 7 * 7);
      };
      const run = async (attention: number, mode: 'on' | 'off' = 'on') => {
        const m = await student();
        process.env.PRUNEWISE_TRAIN_GRAPH = mode;
        try {
          const r = await train(m, ds.train, { ...BASE, epochs: 1, distill: { teacher, weight: 0.7, temperature: 4, attention } });
          return { m, r };
        } finally {
          process.env.PRUNEWISE_TRAIN_GRAPH = 'on';
        }
      };
      const before = gap(await student());
      const kd = await run(0);
      const at = await run(1000);
      const at2 = await run(1000);
      expect(at.r.mode).toBe('graph');
      // the term is learned: its gap ends well below plain distillation's (which does not see the maps)
      expect(gap(at.m)).toBeLessThan(0.7 * gap(kd.m));
      expect(gap(at.m)).toBeLessThan(before);
      expect(weightsOf(at2.m)).toEqual(weightsOf(at.m));
      expect((await evaluate(at.m, ds.test)).accuracy).toBeGreaterThan(0.5);
      await expect(run(1000, 'off')).rejects.toThrow(
        /^distill\.attention: attention transfer trains in graph mode only, and this training runs eagerly \(PRUNEWISE_TRAIN_GRAPH=off\)/,
      );
      await expect(train(await student(), ds.train, { ...BASE, epochs: 1, distill: { teacher, weight: 0, temperature: 4, attention: 1000 } })).rejects.toThrow(
        /^distill\.attention: attention transfer comes with distillation/,
      );
      [teacher, kd.m, at.m, at2.m].forEach((m) => m.dispose());
    },
    300_000,
  );

  it.runIf(expectNative)(
    'a logits classifier trains in graph mode with the loss from logits (as eager does)',
    async () => {
      const build = () =>
        tfl.sequential({
          layers: [
            tfl.layers.flatten({ inputShape: ds.shape }),
            tfl.layers.dense({ units: 32, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }),
            tfl.layers.dense({ units: ds.classes, kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }),
          ],
        });
      const runs: Array<{ mode: string; loss: number }> = [];
      for (const mode of ['on', 'off'] as const) {
        process.env.PRUNEWISE_TRAIN_GRAPH = mode;
        const m = build();
        const r = await train(m, ds.train, BASE);
        runs.push({ mode: r.mode, loss: r.epochLoss[1][1] });
        m.dispose();
      }
      process.env.PRUNEWISE_TRAIN_GRAPH = 'on';
      expect(runs.map((r) => r.mode)).toEqual(['graph', 'eager']);
      expect(Math.abs(runs[0].loss - runs[1].loss) / runs[1].loss).toBeLessThan(0.03);
    },
    120_000,
  );

  it.runIf(expectNative)(
    'regression and multilabel (from logits and from probabilities) follow the eager loss in graph mode',
    async () => {
      let seed = 7;
      const r = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
      const split = (n: number, k: number, f: (x: number[]) => number[], task: Split['task']): Split => {
        const x = new Float32Array(n * 6);
        const t = new Float32Array(n * k);
        for (let i = 0; i < n; i++) {
          const xi = Array.from({ length: 6 }, r);
          x.set(xi, i * 6);
          t.set(f(xi), i * k);
        }
        return { x, y: new Uint8Array(n), t, n, task };
      };
      const cases = [
        { task: { type: 'regression' as const }, k: 2, act: 'linear' as const, f: (x: number[]) => [2 * x[0] - x[1], x[3] * x[4]] },
        { task: { type: 'multilabel' as const }, k: 3, act: 'linear' as const, f: (x: number[]) => [+(x[0] > 0.5), +(x[1] + x[2] > 1), +(x[3] < 0.3)] },
        { task: { type: 'multilabel' as const }, k: 3, act: 'sigmoid' as const, f: (x: number[]) => [+(x[0] > 0.5), +(x[1] + x[2] > 1), +(x[3] < 0.3)] },
      ];
      for (const c of cases) {
        const data = split(1600, c.k, c.f, c.task);
        const losses: Record<string, number[]> = {};
        for (const mode of ['on', 'off'] as const) {
          process.env.PRUNEWISE_TRAIN_GRAPH = mode;
          const m = tfl.sequential({
            layers: [
              tfl.layers.dense({ inputShape: [6], units: 16, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
              tfl.layers.dense({ units: c.k, activation: c.act, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
            ],
          });
          const res = await train(m, data, { epochs: 3, batchSize: 16, learningRate: 0.01, seed: 1 });
          expect(res.mode).toBe(mode === 'on' ? 'graph' : 'eager');
          losses[mode] = res.epochLoss.map(([, l]) => l);
          m.dispose();
        }
        process.env.PRUNEWISE_TRAIN_GRAPH = 'on';
        expect(losses.on[2]).toBeLessThan(losses.on[0]);
        losses.on.forEach((l, i) => expect(Math.abs(l - losses.off[i]) / losses.off[i], `${c.task.type} ${c.act} epoch ${i + 1}`).toBeLessThan(0.03));
      }
    },
    300_000, // six traces and trainings: 120 s was too short beside two benchmarks on 2 cores
  );

  it.runIf(expectNative)(
    'a resume from a mid-training checkpoint continues bit for bit in graph mode',
    async () => {
      const whole = await trainFresh('lenet5', 'on', { seed: 8 });
      let saved: { state: TrainState; weights: Float32Array[] } | undefined;
      const cut = buildZooModel('lenet5', 1, ds.shape, ds.classes);
      await train(cut, ds.train, {
        ...BASE,
        seed: 8,
        checkpointEverySteps: 100,
        onCheckpoint: async (step, _epoch, state) => {
          // graph mode copies the session's weights into the model before a checkpoint: what is saved is this step's
          if (step === 200) saved = { state, weights: cut.weights.map((w) => (w.read().dataSync() as Float32Array).slice()) };
        },
      });
      expect(saved).toBeDefined();
      expect(weightsOf(cut)).toEqual(weightsOf(whole.model));
      const resumed = buildZooModel('lenet5', 1, ds.shape, ds.classes);
      resumed.weights.forEach((w, k) => w.write(tf.tensor(saved!.weights[k], w.shape)));
      const r = await train(resumed, ds.train, { ...BASE, seed: 8, resume: saved!.state });
      expect(r.mode).toBe('graph');
      expect(r.resumedFromStep).toBe(200);
      expect(weightsOf(resumed)).toEqual(weightsOf(whole.model));
      expect(r.epochLoss).toEqual(whole.r.epochLoss);
      [whole.model, cut, resumed].forEach((m) => m.dispose());
    },
    120_000,
  );

  it.runIf(expectNative)(
    'Dropout and SpatialDropout1D train in graph mode: masks drawn per step from the seed (same seed, same weights; a resume draws the same masks), the loss near eager’s',
    async () => {
      const build = (rate: number) =>
        tfl.sequential({
          layers: [
            tfl.layers.reshape({ inputShape: ds.shape, targetShape: [28, 28] }),
            tfl.layers.conv1d({ filters: 16, kernelSize: 3, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
            tfl.layers.spatialDropout1d({ rate }),
            tfl.layers.flatten(),
            tfl.layers.dropout({ rate }),
            tfl.layers.dense({ units: ds.classes, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
          ],
        });
      const run = async (rate: number, mode: 'on' | 'off' = 'on') => {
        process.env.PRUNEWISE_TRAIN_GRAPH = mode;
        const m = build(rate);
        const r = await train(m, ds.train, BASE);
        process.env.PRUNEWISE_TRAIN_GRAPH = 'on';
        return { m, r, w: weightsOf(m) };
      };
      const a = await run(0.4);
      const b = await run(0.4);
      const none = await run(0);
      const eager = await run(0.4, 'off');
      expect([a.r.mode, none.r.mode, eager.r.mode]).toEqual(['graph', 'graph', 'eager']);
      expect(b.w).toEqual(a.w);
      // the masks act: without them the weights differ and the training loss is lower
      expect(none.w).not.toEqual(a.w);
      expect(none.r.epochLoss[1][1]).toBeLessThan(a.r.epochLoss[1][1]);
      // other masks than tfjs's, the same rate: the loss stays close
      a.r.epochLoss.forEach(([, l], i) => expect(Math.abs(l - eager.r.epochLoss[i][1]) / eager.r.epochLoss[i][1]).toBeLessThan(0.05));
      // resume from step 200: the same masks after it
      let saved: { state: TrainState; weights: Float32Array[] } | undefined;
      const cut = build(0.4);
      await train(cut, ds.train, {
        ...BASE,
        checkpointEverySteps: 100,
        onCheckpoint: async (step, _e, state) => {
          if (step === 200) saved = { state, weights: cut.weights.map((w) => (w.read().dataSync() as Float32Array).slice()) };
        },
      });
      const resumed = build(0.4);
      resumed.weights.forEach((w, k) => w.write(tf.tensor(saved!.weights[k], w.shape)));
      const r = await train(resumed, ds.train, { ...BASE, resume: saved!.state });
      expect(r.mode).toBe('graph');
      expect(weightsOf(resumed)).toEqual(a.w);
      [a.m, b.m, none.m, eager.m, cut, resumed].forEach((m) => m.dispose());
    },
    300_000, // six traces and trainings: 120 s was too short beside two benchmarks on 2 cores
  );

  it.runIf(expectNative)(
    'two trainings of one architecture at once keep their own variables',
    async () => {
      // one topology (so one cached graph), two training seeds
      const alone = [await trainFresh('lenet5', 'on', { seed: 11 }, 2), await trainFresh('lenet5', 'on', { seed: 12 }, 2)];
      expect(weightsOf(alone[0].model)).not.toEqual(weightsOf(alone[1].model));
      const models = [buildZooModel('lenet5', 2, ds.shape, ds.classes), buildZooModel('lenet5', 2, ds.shape, ds.classes)];
      // the second starts while the first is mid-way (its graph loaded, its variables live)
      let started: () => void = () => {};
      const midway = new Promise<void>((resolve) => (started = resolve));
      const first = train(models[0], ds.train, { ...BASE, seed: 11, onStep: (s) => void (s === 20 && started()) });
      const second = midway.then(() => train(models[1], ds.train, { ...BASE, seed: 12 }));
      const rs = await Promise.all([first, second]);
      expect(rs.map((r) => r.mode)).toEqual(['graph', 'graph']);
      models.forEach((m, i) => expect(weightsOf(m)).toEqual(weightsOf(alone[i].model)));
      [...models, ...alone.map((a) => a.model)].forEach((m) => m.dispose());
    },
    120_000,
  );

  it.runIf(expectNative)(
    'the group-norm sparsity penalty trains in graph mode: one step decays each weight by lr·λ·γ·w as the eager step does, the same seed gives the same bytes, training leaves weak channels carrying less, a resume continues bit for bit',
    async () => {
      // no dropout: the penalty's part of a step is the difference with and without it (batch norm's γ and β are the first
      // group's followers; the biases start non-zero so that a wrongly mapped bias would show)
      const bias = (seed: number) => tfl.initializers.randomUniform({ minval: -0.2, maxval: 0.2, seed });
      const build = () =>
        tfl.sequential({
          layers: [
            tfl.layers.conv2d({
              inputShape: ds.shape,
              filters: 6,
              kernelSize: 5,
              kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
              biasInitializer: bias(11),
            }),
            tfl.layers.batchNormalization({ gammaInitializer: tfl.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: 12 }) }),
            tfl.layers.activation({ activation: 'relu' }),
            tfl.layers.maxPooling2d({ poolSize: 2 }),
            tfl.layers.conv2d({
              filters: 8,
              kernelSize: 3,
              activation: 'relu',
              kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
              biasInitializer: bias(13),
            }),
            tfl.layers.flatten(),
            tfl.layers.dense({ units: ds.classes, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }),
          ],
        });
      const sparsity = { strength: 10, growth: 0, alpha: 4 };
      const oneStep = { epochs: 1, steps: 1, batchSize: 16, learningRate: 2e-3, seed: 5 };
      const after: Record<string, number[][]> = {};
      const firstLoss: Record<string, number> = {};
      let expected: number[][] = [];
      try {
        for (const [name, mode, sp] of [
          ['graph', 'on', sparsity],
          ['graphAgain', 'on', sparsity],
          ['graphPlain', 'on', undefined],
          ['eager', 'off', sparsity],
          ['eagerPlain', 'off', undefined],
        ] as const) {
          process.env.PRUNEWISE_TRAIN_GRAPH = mode;
          const m = build();
          if (name === 'graph') {
            // the decay the penalty's formula gives at the starting weights (ml/recipe.ts), times the step's rate
            const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
            const p = groupPenaltyOf(m, vars, analyze(m), sparsity);
            const d = penaltyGradients(
              p,
              vars.map((v) => v.dataSync() as Float32Array),
              0,
              Math.ceil(ds.train.n / 16),
            );
            const all = m.weights.map((w) => w.read() as tf.Variable);
            expected = all.map((v) => {
              const k = vars.indexOf(v);
              return Array.from(d[k] ?? new Float32Array(v.size), (x) => -oneStep.learningRate * x);
            });
            // the biases and batch norm's γ and β are penalised too
            expect(p.channelOf[vars.indexOf(m.layers[0].weights[1].read() as tf.Variable)].length).toBe(1);
            expect(p.channelOf[vars.indexOf(m.layers[1].weights[0].read() as tf.Variable)].length).toBe(1);
          }
          const r = await train(m, ds.train, { ...oneStep, ...(sp ? { sparsity: sp } : {}) });
          expect(r.mode, name).toBe(mode === 'on' ? 'graph' : 'eager');
          after[name] = weightsOf(m);
          firstLoss[name] = r.batchLoss[0][1];
          m.dispose();
        }
      } finally {
        process.env.PRUNEWISE_TRAIN_GRAPH = 'on';
      }
      // the step's forward pass saw the weights before the decay (the decay comes after Adam's step)
      expect(Math.abs(firstLoss.graph - firstLoss.graphPlain) / firstLoss.graphPlain).toBeLessThan(1e-5);
      expect(after.graphAgain).toEqual(after.graph);
      const diff = (a: number[][], b: number[][]) => a.map((w, k) => w.map((x, i) => x - b[k][i]));
      const worst = (a: number[][], b: number[][]) => Math.max(...a.flatMap((w, k) => w.map((x, i) => Math.abs(x - b[k][i]))));
      const scale = Math.max(...expected.flat().map(Math.abs));
      expect(scale).toBeGreaterThan(1e-3); // the penalty moves weights by much more than float32 rounding
      // graph mode's decay (with − without the penalty) is the formula's, and the eager path's
      expect(worst(diff(after.graph, after.graphPlain), expected) / scale).toBeLessThan(1e-3);
      expect(worst(diff(after.graph, after.graphPlain), diff(after.eager, after.eagerPlain)) / scale).toBeLessThan(1e-3);
      // an epoch with a growing penalty: the weakest half of each group carries less than without it
      const weakShare = (m: tfl.LayersModel) => {
        const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
        const graph = analyze(m);
        const norms = Array.from(
          channelNorms(
            groupPenaltyOf(m, vars, graph, { strength: 0, growth: 0 }),
            vars.map((v) => v.dataSync() as Float32Array),
          ),
        );
        let o = 0;
        return graph.groups.map((g) => {
          const sorted = norms.slice(o, (o += g.size)).sort((a, b) => a - b);
          return sorted.slice(0, sorted.length >> 1).reduce((a, b) => a + b, 0) / sorted.reduce((a, b) => a + b, 0);
        });
      };
      const plain = await trainFresh('lenet5', 'on', { epochs: 1 });
      // 155 steps: the weakest channel loses up to lr·λ·2⁴ ≈ 1.6–3 % of itself per step, the strongest 0.1–0.2 %
      const sparse = await trainFresh('lenet5', 'on', { epochs: 1, sparsity: { strength: 0.5, growth: 0.5 } });
      expect(sparse.r.mode).toBe('graph');
      const [s, q] = [weakShare(sparse.model), weakShare(plain.model)];
      s.forEach((share, g) => expect(share, `group ${g}`).toBeLessThan(q[g] * 0.9));
      expect((await evaluate(sparse.model, ds.test)).accuracy).toBeGreaterThan(0.5);
      // λ(t) grows with the step number: a resume from a mid-training checkpoint continues bit for bit
      const grow = { sparsity: { strength: 0.5, growth: 0.5 }, seed: 8 };
      const whole = await trainFresh('lenet5', 'on', grow);
      let saved: { state: TrainState; weights: Float32Array[] } | undefined;
      const cut = buildZooModel('lenet5', 1, ds.shape, ds.classes);
      await train(cut, ds.train, {
        ...BASE,
        ...grow,
        checkpointEverySteps: 100,
        onCheckpoint: async (step, _epoch, state) => {
          if (step === 200) saved = { state, weights: cut.weights.map((w) => (w.read().dataSync() as Float32Array).slice()) };
        },
      });
      const resumed = buildZooModel('lenet5', 1, ds.shape, ds.classes);
      resumed.weights.forEach((w, k) => w.write(tf.tensor(saved!.weights[k], w.shape)));
      const rr = await train(resumed, ds.train, { ...BASE, ...grow, resume: saved!.state });
      expect(rr.mode).toBe('graph');
      expect(rr.resumedFromStep).toBe(200);
      expect(weightsOf(resumed)).toEqual(weightsOf(whole.model));
      [plain.model, sparse.model, whole.model, cut, resumed].forEach((m) => m.dispose());
    },
    240_000,
  );

  it.runIf(expectNative)(
    'trains eagerly, saying why, when graph mode does not apply: a short budget under auto, a GaussianNoise layer, a topology tf-keras cannot build, no Python to trace with, PRUNEWISE_TRAIN_GRAPH=off; on traces whatever the budget',
    async () => {
      const short = await trainFresh('lenet5', 'auto', { epochs: 1 });
      expect(short.r.mode).toBe('eager');
      expect(short.r.eagerBecause).toBe(`${Math.ceil(ds.train.n / 16)} steps (graph mode from ${GRAPH_MIN_STEPS}, or PRUNEWISE_TRAIN_GRAPH=on)`);
      const shortOn = await trainFresh('lenet5', 'on', { epochs: 1 });
      expect(shortOn.r.mode).toBe('graph');
      const off = await trainFresh('lenet5', 'off');
      expect(off.r.eagerBecause).toBe('PRUNEWISE_TRAIN_GRAPH=off');
      const noisy = tfl.sequential({
        layers: [
          tfl.layers.flatten({ inputShape: ds.shape }),
          tfl.layers.gaussianNoise({ stddev: 0.1, name: 'noise' }),
          tfl.layers.dense({ units: ds.classes, activation: 'softmax' }),
        ],
      });
      const d = await train(noisy, ds.train, BASE);
      expect(d.mode).toBe('eager');
      expect(d.eagerBecause).toBe('layer noise (GaussianNoise) draws random numbers in training');
      // a topology tf-keras cannot build (a class it does not know): the exporter says so, training goes on eagerly
      const odd = buildZooModel('lenet5', 1, ds.shape, ds.classes);
      const toJSON = odd.toJSON.bind(odd);
      odd.toJSON = ((...a: Parameters<typeof toJSON>) => {
        const j = toJSON(...a) as { config: { layers: Array<{ class_name: string }> } };
        j.config.layers[1].class_name = 'NoSuchLayer';
        return j;
      }) as typeof odd.toJSON;
      const refused = await train(odd, ds.train, BASE);
      expect(refused.mode).toBe('eager');
      expect(refused.eagerBecause).toMatch(/^tf-keras cannot build the model: .*NoSuchLayer/);
      odd.dispose();
      // no Python with TensorFlow to trace with (an architecture not traced yet): eager, saying so
      const savedPython = process.env.PRUNEWISE_TF_PYTHON;
      process.env.PRUNEWISE_TF_PYTHON = path.join(cache, 'no-such-python');
      const untraced = tfl.sequential({
        layers: [
          tfl.layers.flatten({ inputShape: ds.shape }),
          tfl.layers.dense({ units: 7, activation: 'relu' }),
          tfl.layers.dense({ units: ds.classes, activation: 'softmax' }),
        ],
      });
      try {
        const nopy = await train(untraced, ds.train, { ...BASE, epochs: 1 });
        expect(nopy.mode).toBe('eager');
        expect(nopy.eagerBecause).toMatch(/^cannot trace the graph: no Python at .*no-such-python/);
      } finally {
        if (savedPython === undefined) delete process.env.PRUNEWISE_TF_PYTHON;
        else process.env.PRUNEWISE_TF_PYTHON = savedPython;
      }
      process.env.PRUNEWISE_TRAIN_GRAPH = 'fast';
      await expect(train(noisy, ds.train, BASE)).rejects.toThrow('PRUNEWISE_TRAIN_GRAPH: "fast" is not auto, on or off: unset it (auto) or give one of those');
      process.env.PRUNEWISE_TRAIN_GRAPH = 'on';
      [short.model, shortOn.model, off.model, noisy, untraced].forEach((m) => m.dispose());
    },
    120_000,
  );
});
