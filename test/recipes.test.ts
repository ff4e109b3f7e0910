// Training recipes (ml/recipe.ts) on the wasm backend with data-parallel threads: learning-rate
// schedules, label smoothing, distillation from a teacher, the growing group-norm sparsity penalty,
// the budget in steps — each checked against a hand computation, bit-identical on 1 and 2 threads,
// and resumed bit for bit.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  analyze,
  augmentImages,
  buildZooModel,
  channelNorms,
  encodeTrainState,
  evaluate,
  groupPenaltyOf,
  initBackend,
  learningRateAt,
  loadDataset,
  loadModel,
  ONE_CYCLE,
  penaltyGradients,
  readTrainState,
  recipeLoss,
  saveModel,
  stopReplicas,
  subset,
  teacherLogits,
  train,
  type Dataset,
  type Split,
  type Task,
  type TrainOptions,
} from '../ml';

let ds: Dataset;
let backend: string;
const first = (n: number): Split =>
  subset(
    ds.train,
    Array.from({ length: n }, (_, i) => i),
  );
const bytesOf = (m: tfl.LayersModel) => m.getWeights().map((w) => Buffer.from((w.dataSync() as Float32Array).slice().buffer));
function expectSameBytes(a: tfl.LayersModel, b: tfl.LayersModel): void {
  const [x, y] = [bytesOf(a), bytesOf(b)];
  x.forEach((buf, i) => expect(buf.equals(y[i]), `weight ${a.getWeights()[i].name} differs`).toBe(true));
}
const classification = (outputs: 'logits' | 'probabilities', units = 3): Task => ({ type: 'classification', outputs, output: 'out', units, how: 'test' });

beforeAll(async () => {
  // the training threads exist on wasm (native TensorFlow threads by itself): the recipes must give the same loss in every thread
  backend = (await initBackend('wasm')).name;
  ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 1200, testLimit: 300, validationFraction: 0.1 }, 1);
});
afterAll(() => stopReplicas());

describe('learning-rate schedules', () => {
  it('constant and cosine with a linear warm-up, one-cycle with PyTorch OneCycleLR constants', () => {
    const lr = 0.01;
    expect(learningRateAt(lr, undefined, 7, 100)).toBe(lr);
    // warm-up 10 % of 100 steps: lr·1/10, …, lr·10/10, then the schedule
    expect(learningRateAt(lr, { kind: 'constant', warmup: 0.1 }, 0, 100)).toBeCloseTo(lr / 10, 12);
    expect(learningRateAt(lr, { kind: 'constant', warmup: 0.1 }, 9, 100)).toBeCloseTo(lr, 12);
    expect(learningRateAt(lr, { kind: 'constant', warmup: 0.1 }, 50, 100)).toBe(lr);
    // cosine: lr at the first step after warm-up, lr/2 halfway through what remains, → 0 at the end
    expect(learningRateAt(lr, { kind: 'cosine' }, 0, 100)).toBeCloseTo(lr, 12);
    expect(learningRateAt(lr, { kind: 'cosine' }, 50, 100)).toBeCloseTo(lr / 2, 12);
    expect(learningRateAt(lr, { kind: 'cosine', warmup: 0.1 }, 10, 100)).toBeCloseTo(lr, 12);
    expect(learningRateAt(lr, { kind: 'cosine', warmup: 0.1 }, 55, 100)).toBeCloseTo(lr / 2, 12);
    expect(learningRateAt(lr, { kind: 'cosine' }, 99, 100)).toBeLessThan(lr * 0.001);
    // one-cycle: lr/25 → lr at 30 % of the steps → lr/(25·10⁴)
    const oc = (s: number) => learningRateAt(lr, { kind: 'one-cycle' }, s, 100);
    expect(oc(0)).toBeCloseTo(lr / ONE_CYCLE.divFactor, 12);
    expect(oc(29)).toBeCloseTo(lr, 12);
    expect(oc(99)).toBeCloseTo(lr / ONE_CYCLE.divFactor / ONE_CYCLE.finalDivFactor, 12);
    expect(oc(10)).toBeGreaterThan(oc(5));
    expect(oc(60)).toBeLessThan(oc(40));
    expect(() => learningRateAt(lr, { kind: 'cosine', warmup: 1 }, 0, 10)).toThrow(/warmup: 1 is not a fraction/);
  });
});

describe('the recipe loss', () => {
  it('label smoothing: cross-entropy against y·(1 − ε) + ε/K (hand computed)', () => {
    const z = [2, 0.5, -1];
    const logp = z.map((v) => v - Math.log(z.reduce((a, x) => a + Math.exp(x), 0)));
    const eps = 0.1;
    const target = [1, 0, 0].map((y) => y * (1 - eps) + eps / 3);
    const want = -target.reduce((a, t, k) => a + t * logp[k], 0);
    const got = tf.tidy(
      () =>
        recipeLoss(classification('logits'), tf.tensor2d([z]), tf.tensor2d([[1, 0, 0]]), {
          labelSmoothing: eps,
          distillWeight: 0,
          temperature: 1,
        }).dataSync()[0],
    );
    expect(got).toBeCloseTo(want, 5);
  });

  it('distillation: (1 − α)·CE + α·T²·KL(teacher ‖ student) at temperature T (hand computed), the same on a softmax output', () => {
    const zs = [1, 0, -1];
    const zt = [0.2, 1.5, -0.3];
    const T = 3;
    const alpha = 0.7;
    const sm = (z: number[]) => {
      const e = z.map((v) => Math.exp(v));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    };
    const q = sm(zs.map((v) => v / T));
    const p = sm(zt.map((v) => v / T));
    const kl = p.reduce((a, pk, k) => a + pk * Math.log(pk / q[k]), 0);
    const ce = -Math.log(sm(zs)[0]);
    const want = (1 - alpha) * ce + alpha * T * T * kl;
    const loss = { labelSmoothing: 0, distillWeight: alpha, temperature: T };
    const got = tf.tidy(() => recipeLoss(classification('logits'), tf.tensor2d([zs]), tf.tensor2d([[1, 0, 0]]), loss, tf.tensor2d([zt])).dataSync()[0]);
    expect(got).toBeCloseTo(want, 5);
    // a student that outputs probabilities: its log-probabilities are its logits up to a constant, so the same loss
    const gotProbs = tf.tidy(
      () => recipeLoss(classification('probabilities'), tf.tensor2d([sm(zs)]), tf.tensor2d([[1, 0, 0]]), loss, tf.tensor2d([zt])).dataSync()[0],
    );
    expect(gotProbs).toBeCloseTo(want, 5);
    // a student equal to its teacher: the soft term is 0
    const same = tf.tidy(
      () => recipeLoss(classification('logits'), tf.tensor2d([zt]), tf.tensor2d([[1, 0, 0]]), { ...loss, distillWeight: 1 }, tf.tensor2d([zt])).dataSync()[0],
    );
    expect(same).toBeCloseTo(0, 6);
  });

  it('distillation and label smoothing are refused for a regression model, in one line naming the field', async () => {
    const m = tfl.sequential({ layers: [tfl.layers.flatten({ inputShape: [28, 28, 1] }), tfl.layers.dense({ units: 10 })] });
    const data = { ...first(64), task: { type: 'regression' as const } };
    const base = { epochs: 1, batchSize: 32, learningRate: 1e-3, seed: 1 };
    await expect(train(m, { ...data, t: new Float32Array(640) }, { ...base, labelSmoothing: 0.1 })).rejects.toThrow(
      /^labelSmoothing: label smoothing needs a classification task \(this model's task is regression\): remove labelSmoothing$/,
    );
    await expect(train(m, { ...data, t: new Float32Array(640) }, { ...base, distill: { teacher: m, weight: 0.5, temperature: 4 } })).rejects.toThrow(
      /^distill: distillation needs a classification task/,
    );
    m.dispose();
  });
});

describe('the group-norm sparsity penalty', () => {
  it("maps each group's coupled parameters (producer kernel and bias, the consumer's input rows through Flatten) and pushes weak channels 2^α harder", () => {
    const model = buildZooModel('lenet5', 1, [28, 28, 1], 10);
    const graph = analyze(model);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const p = groupPenaltyOf(model, vars, graph, { strength: 1e-3, growth: 0, alpha: 4 });
    expect(p.groups).toBe(graph.groups.length);
    expect(p.channels).toBe(graph.groups.reduce((a, g) => a + g.size, 0));
    // the first conv's channel 2 by hand: its kernel column, its bias, and the second conv's input slice
    const g0 = graph.groups[0];
    const conv = model.getLayer(g0.producers[0]);
    const [k, b] = conv.getWeights().map((w) => w.arraySync() as never);
    const consumer = model.layers.find((l) => graph.inputMap.get(l.name)?.[0]?.g === g0.id && l.name !== conv.name && l.countParams() > 0)!;
    const k2 = consumer.getWeights()[0].arraySync() as number[][][][];
    let sq = (b as number[])[2] ** 2;
    for (const row of k as number[][][][]) for (const col of row) for (const ch of col) sq += ch[2] ** 2;
    for (const row of k2) for (const col of row) for (const out of col[2]) sq += out ** 2;
    const weights = vars.map((v) => v.dataSync() as Float32Array);
    const norms = channelNorms(p, weights);
    expect(norms[2]).toBeCloseTo(Math.sqrt(sq), 4);
    // the gradient: λ·γ·w, γ = 2^α for the group's weakest channel and 1 for its strongest
    const grads = penaltyGradients(p, weights, 0, 10);
    const own = norms.slice(0, g0.size);
    const weakest = own.indexOf(Math.min(...own));
    const strongest = own.indexOf(Math.max(...own));
    // conv1's kernel element c (first tap) belongs to channel c only (its input is the image, never pruned)
    const kernel = vars.indexOf(conv.weights[0].read() as tf.Variable);
    expect(grads[kernel]![weakest] / weights[kernel][weakest]).toBeCloseTo(1e-3 * 16, 8);
    expect(grads[kernel]![strongest] / weights[kernel][strongest]).toBeCloseTo(1e-3, 8);
    // conv2's kernel elements are in one input and one output channel: both terms
    const k2i = vars.indexOf(consumer.weights[0].read() as tf.Variable);
    const p2 = groupPenaltyOf(model, vars, graph, { strength: 1, growth: 0, alpha: 0 });
    expect(penaltyGradients(p2, weights, 0, 10)[k2i]![0] / weights[k2i][0]).toBeCloseTo(2, 6);
    // the output layer's bias (its classes are never pruned) is untouched
    expect(grads[vars.length - 1]).toBeNull();
    // λ grows by `growth` per epoch of steps
    const growing = groupPenaltyOf(model, vars, graph, { strength: 1e-3, growth: 2e-3 });
    const later = penaltyGradients(growing, weights, 20, 10);
    expect(later[kernel]![strongest] / weights[kernel][strongest]).toBeCloseTo(5e-3, 8);
    expect(penaltyGradients({ ...p, strength: 0 }, weights, 5, 10).every((g) => g === null)).toBe(true);
    model.dispose();
  });

  it('training with it leaves the weak channels of each group carrying less than plain training does', async () => {
    const data = first(512);
    const opts: TrainOptions = { epochs: 2, batchSize: 64, learningRate: 2e-3, seed: 5 };
    const plain = buildZooModel('lenet5', 3, [28, 28, 1], 10);
    const sparse = buildZooModel('lenet5', 3, [28, 28, 1], 10);
    await train(plain, data, opts);
    // decoupled from Adam (w ← w − η·λ·γ·w): a weak channel loses up to 2⁴·η·λ of itself per step
    await train(sparse, data, { ...opts, sparsity: { strength: 5, growth: 5 } });
    // the share of a group's norm its weakest half carries
    const weakShare = (m: tfl.LayersModel) => {
      const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
      const graph = analyze(m);
      const p = groupPenaltyOf(m, vars, graph, { strength: 0, growth: 0 });
      const norms = Array.from(
        channelNorms(
          p,
          vars.map((v) => v.dataSync() as Float32Array),
        ),
      );
      let o = 0;
      return graph.groups.map((g) => {
        const sorted = norms.slice(o, (o += g.size)).sort((a, b) => a - b);
        return sorted.slice(0, sorted.length >> 1).reduce((a, b) => a + b, 0) / sorted.reduce((a, b) => a + b, 0);
      });
    };
    const [s, q] = [weakShare(sparse), weakShare(plain)];
    s.forEach((share, g) => expect(share, `group ${g}`).toBeLessThan(q[g] * 0.9));
    [plain, sparse].forEach((m) => m.dispose());
  });
});

describe('recipes train deterministically', () => {
  const full = (teacher: tfl.LayersModel): Partial<TrainOptions> => ({
    schedule: { kind: 'cosine', warmup: 0.2 },
    labelSmoothing: 0.1,
    distill: { teacher, weight: 0.5, temperature: 4 },
    sparsity: { strength: 1e-3, growth: 1e-3 },
  });

  it('the whole recipe gives the same bytes on 1 and 2 threads (teacher logits sent with each shard), per-shard and cached teacher alike', async () => {
    const teacher = buildZooModel('lenet5', 9, [28, 28, 1], 10);
    await train(teacher, first(512), { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 1 });
    const data = first(320);
    // 2 epochs: the teacher's logits cached for the split; 3 steps (< an epoch): computed per shard
    for (const budget of [{ epochs: 2 }, { epochs: 1, steps: 3 }]) {
      const models: tfl.LayersModel[] = [];
      const losses: Array<Array<[number, number]>> = [];
      for (const threads of [1, 2]) {
        const m = buildZooModel('lenet5', 4, [28, 28, 1], 10);
        const r = await train(m, data, { ...budget, batchSize: 64, learningRate: 2e-3, seed: 3, threads, ...full(teacher) });
        expect(r.threads).toBe(threads);
        expect(r.steps).toBe(budget.steps ?? 10);
        models.push(m);
        losses.push(r.batchLoss);
      }
      expectSameBytes(models[0], models[1]);
      expect(losses[1]).toEqual(losses[0]);
      models.forEach((m) => m.dispose());
    }
    // the teacher changes the result (it is really used), and the recipe loss differs from the plain one
    const a = buildZooModel('lenet5', 4, [28, 28, 1], 10);
    const b = buildZooModel('lenet5', 4, [28, 28, 1], 10);
    const ra = await train(a, data, { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 3, distill: { teacher, weight: 0.9, temperature: 4 } });
    const rb = await train(b, data, { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 3 });
    expect(ra.epochLoss[0][1]).not.toBeCloseTo(rb.epochLoss[0][1], 3);
    // the per-shard teacher path computes exactly the cached values for the same examples
    const task = { type: 'classification' as const, outputs: 'probabilities' as const, output: 'x', units: 10, how: '' };
    const whole = teacherLogits(teacher, task, data, null, 0, 320);
    const some = teacherLogits(teacher, task, data, [5, 17, 300], 0, 3);
    expect(Array.from(some.subarray(10, 20))).toEqual(Array.from(whole.subarray(170, 180)));
    [a, b, teacher].forEach((m) => m.dispose());
  });

  it('a budget in steps ends mid-epoch, and a resume with the whole recipe continues bit for bit; another recipe is refused', async () => {
    const teacher = buildZooModel('lenet5', 9, [28, 28, 1], 10);
    const data = first(320); // 5 steps per epoch
    const opts: TrainOptions = { epochs: 1, steps: 8, batchSize: 64, learningRate: 2e-3, seed: 7, ...full(teacher) };
    const whole = buildZooModel('lenet5', 2, [28, 28, 1], 10);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-recipe-'));
    const saved: number[] = [];
    const done = await train(whole, data, {
      ...opts,
      checkpointEverySteps: 3,
      onCheckpoint: async (step, _e, state) => {
        saved.push(step);
        await saveModel(whole, path.join(dir, `step-${step}`), encodeTrainState(state));
      },
    });
    expect(done.steps).toBe(8);
    expect(saved).toEqual([3, 5, 6, 8]);
    expect(done.epochLoss.map(([e]) => e)).toEqual([1, 2]);
    expect(done.lastLearningRate).toBeLessThan(2e-3 * 0.1); // cosine, nearly annealed
    const state = readTrainState(path.join(dir, 'step-6'));
    expect(state.recipe).toEqual({
      totalSteps: 8,
      schedule: { kind: 'cosine', warmup: 0.2 },
      labelSmoothing: 0.1,
      distill: { weight: 0.5, temperature: 4 },
      sparsity: { strength: 1e-3, growth: 1e-3, alpha: 4 },
    });
    for (const k of [3, 6]) {
      const m = await loadModel(path.join(dir, `step-${k}`));
      const r = await train(m, data, { ...opts, threads: 2, resume: readTrainState(path.join(dir, `step-${k}`)) });
      expect(r.resumedFromStep).toBe(k);
      expectSameBytes(m, whole);
      expect(r.epochLoss).toEqual(done.epochLoss);
      expect(r.batchLoss).toEqual(done.batchLoss);
      m.dispose();
    }
    for (const other of [{ labelSmoothing: 0.2 }, { steps: 9 }, { schedule: { kind: 'one-cycle' as const } }, { sparsity: undefined }]) {
      await expect(train(whole, data, { ...opts, ...other, resume: state })).rejects.toThrow(/training state to resume/);
    }
    // a checkpoint of a plain training (or one written before recipes) resumes a plain training only
    const plainState = { ...state, recipe: undefined };
    await expect(train(whole, data, { ...opts, resume: plainState })).rejects.toThrow(/training state to resume/);
    [whole, teacher].forEach((m) => m.dispose());
  });

  it('distilling from a good teacher trains a small budget past chance and leaks no tensors', async () => {
    const teacher = buildZooModel('lenet5', 9, [28, 28, 1], 10);
    await train(teacher, first(1000), { epochs: 2, batchSize: 64, learningRate: 2e-3, seed: 1 });
    const student = buildZooModel('lenet5', 4, [28, 28, 1], 10);
    const n0 = tf.memory().numTensors;
    await train(student, first(1000), {
      epochs: 1,
      batchSize: 64,
      learningRate: 2e-3,
      seed: 2,
      distill: { teacher, weight: 0.5, temperature: 4 },
      labelSmoothing: 0.1,
    });
    expect(tf.memory().numTensors).toBe(n0);
    expect((await evaluate(student, ds.test)).accuracy).toBeGreaterThan(0.4);
    expect(backend).toBe('wasm');
    [teacher, student].forEach((m) => m.dispose());
  });
});

describe('augmentation (flips, shifts) during training', () => {
  it('shifts by whole pixels with zeros filling in and flips left–right (hand computed); the same seed gives the same images', () => {
    // one 3×3 image, 1 channel, values 1..9 row-major
    const img = () => Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // over many seeds: every shift in [−1, 1]² and both flips occur, and each output is one of the 18 hand-computed images
    const want = new Set<string>();
    for (const flip of [false, true])
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const o: number[] = [];
          for (let h = 0; h < 3; h++)
            for (let w = 0; w < 3; w++) {
              const sh = h - dy;
              let sw = w - dx;
              const inside = sh >= 0 && sh < 3 && sw >= 0 && sw < 3;
              if (flip) sw = 2 - sw;
              o.push(inside ? sh * 3 + sw + 1 : 0);
            }
          want.add(o.join(','));
        }
    expect(want.size).toBe(18);
    const seen = new Set<string>();
    for (let seed = 0; seed < 400; seed++) {
      const out = augmentImages(img(), 1, [3, 3, 1], { flip: true, shift: 1 }, seed).join(',');
      expect(want.has(out), out).toBe(true);
      seen.add(out);
    }
    expect(seen.size).toBe(18);
    // a right shift by one (dx = 1, dy = 0) of the unflipped image, found by its draw, is exactly [0 1 2; 0 4 5; 0 7 8]
    expect(seen.has('0,1,2,0,4,5,0,7,8')).toBe(true);
    // flip only: the mirror image or the image itself; shift 0 without flip: unchanged
    const flips = new Set(Array.from({ length: 50 }, (_, s) => augmentImages(img(), 1, [3, 3, 1], { flip: true, shift: 0 }, s).join(',')));
    expect(flips).toEqual(new Set(['1,2,3,4,5,6,7,8,9', '3,2,1,6,5,4,9,8,7']));
    expect(Array.from(augmentImages(img(), 1, [3, 3, 1], { flip: false, shift: 0 }, 5))).toEqual(Array.from(img()));
    // several examples and channels: the same seed, the same batch; channels move together
    const batch = () => Float32Array.from({ length: 4 * 5 * 5 * 2 }, (_, i) => i % 7);
    const a = augmentImages(batch(), 4, [5, 5, 2], { flip: true, shift: 2 }, 11);
    expect(Array.from(augmentImages(batch(), 4, [5, 5, 2], { flip: true, shift: 2 }, 11))).toEqual(Array.from(a));
    expect(Array.from(augmentImages(batch(), 4, [5, 5, 2], { flip: true, shift: 2 }, 12))).not.toEqual(Array.from(a));
  });

  it('trains the same bytes on 1 and 2 threads with the teacher scoring the augmented batch, resumes bit for bit, and is refused for a non-image input', async () => {
    const teacher = buildZooModel('lenet5', 9, [28, 28, 1], 10);
    await train(teacher, first(512), { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 1 });
    const data = first(320);
    const opts: TrainOptions = {
      epochs: 2,
      batchSize: 64,
      learningRate: 2e-3,
      seed: 3,
      augment: { flip: true, shift: 2 },
      distill: { teacher, weight: 0.7, temperature: 4 },
    };
    const models: tfl.LayersModel[] = [];
    const losses: Array<Array<[number, number]>> = [];
    for (const threads of [1, 2]) {
      const m = buildZooModel('lenet5', 4, [28, 28, 1], 10);
      const r = await train(m, data, { ...opts, threads });
      models.push(m);
      losses.push(r.batchLoss);
    }
    expectSameBytes(models[0], models[1]);
    expect(losses[1]).toEqual(losses[0]);
    // augmentation changes the result (it is really applied)
    const plain = buildZooModel('lenet5', 4, [28, 28, 1], 10);
    const rp = await train(plain, data, { ...opts, augment: undefined });
    expect(rp.batchLoss).not.toEqual(losses[0]);
    // resume from a checkpoint mid-run: the same bytes; a resume without the augmentation is refused
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-augment-'));
    const whole = buildZooModel('lenet5', 4, [28, 28, 1], 10);
    await train(whole, data, {
      ...opts,
      checkpointEverySteps: 3,
      onCheckpoint: async (step, _e, state) => {
        if (step === 3) await saveModel(whole, path.join(dir, 'step-3'), encodeTrainState(state));
      },
    });
    expectSameBytes(whole, models[0]);
    const state = readTrainState(path.join(dir, 'step-3'));
    expect(state.recipe?.augment).toEqual({ flip: true, shift: 2 });
    const resumed = await loadModel(path.join(dir, 'step-3'));
    await train(resumed, data, { ...opts, resume: state });
    expectSameBytes(resumed, whole);
    await expect(train(resumed, data, { ...opts, augment: undefined, resume: state })).rejects.toThrow(/training state to resume/);
    // a model whose input is not an image [H, W, C]: one line naming the field
    const flat = tfl.sequential({ layers: [tfl.layers.dense({ units: 10, inputShape: [784], activation: 'softmax' })] });
    const flatData: Split = { ...data, x: data.x, n: data.n };
    await expect(train(flat, flatData, { ...opts, distill: undefined })).rejects.toThrow(/^augment: the model's input \[784\] is not an image/);
    await expect(train(buildZooModel('lenet5', 4, [28, 28, 1], 10), data, { ...opts, augment: { flip: false, shift: 28 } })).rejects.toThrow(
      /^augment\.shift: 28 is not a whole number of pixels in \[0, 27\]/,
    );
    // from plain JavaScript: a flip that is not a boolean, a missing shift
    const m = buildZooModel('lenet5', 4, [28, 28, 1], 10);
    const bad = (augment: unknown) => train(m, data, { ...opts, augment: augment as TrainOptions['augment'] });
    await expect(bad({ flip: 'yes', shift: 2 })).rejects.toThrow(/^augment\.flip: "yes" is not true or false$/);
    await expect(bad({ flip: true })).rejects.toThrow(/^augment\.shift: missing: give the largest shift in whole pixels, 0 to 27/);
    m.dispose();
    [...models, plain, whole, resumed, teacher, flat].forEach((m) => m.dispose());
  });
});
