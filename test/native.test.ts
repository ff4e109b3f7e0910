// Native TensorFlow under tfjs (scripts/setup-native.sh builds @tensorflow/tfjs-node against PyPI's
// tensorflow-cpu wheel). Where the wheel is in .venv, or under CI=true, the default backend chain
// must pick "tensorflow" (no silent fallback to wasm) and train on it; elsewhere the test says so
// by name and checks that the chain fell back saying why.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildZooModel, FusedAdam, initBackend, loadDataset, train, type BackendInfo } from '../ml';
import { NativeAdam } from '../ml/adam';
import { registerWasmKernels } from '../ml/wasm-kernels';

const ROOT = path.join(__dirname, '..');

/** The wheel's C library in the project's .venv (any python3.X). */
function wheelLibrary(): string | undefined {
  const lib = path.join(ROOT, '.venv', 'lib');
  if (!fs.existsSync(lib)) return undefined;
  for (const py of fs.readdirSync(lib)) {
    const so = path.join(lib, py, 'site-packages', 'tensorflow', 'libtensorflow_cc.so.2');
    if (fs.existsSync(so)) return so;
  }
  return undefined;
}

const wheel = wheelLibrary();
const expectNative = process.env.CI === 'true' || wheel !== undefined;
const why = process.env.CI === 'true' ? 'CI=true' : `the wheel is in .venv (${wheel})`;
let info: BackendInfo;

beforeAll(async () => {
  // this file is about the default chain: an outer PRUNEWISE_BACKEND must not pick for it
  delete process.env.PRUNEWISE_BACKEND;
  info = await initBackend();
});

describe('native TensorFlow backend (tfjs-node on the tensorflow-cpu wheel)', () => {
  it.runIf(expectNative)(`the default chain picks tensorflow, on the PyPI wheel (${why})`, () => {
    expect(info.name, `skipped: ${info.skipped.join('; ')}`).toBe('tensorflow');
    expect(tf.getBackend()).toBe('tensorflow');
    expect(info.library).toMatch(/^tensorflow-cpu \d+\.\d+\.\d+ \(PyPI wheel\)$/);
    // only the CUDA build may have been tried before it
    expect(info.skipped.every((s) => s.startsWith('tensorflow-gpu:'))).toBe(true);
  });

  it.runIf(expectNative)('our composed wasm kernels stay on wasm: the tensorflow kernels are its own', () => {
    const before = new Map(tf.getKernelsForBackend('tensorflow').map((k) => [k.kernelName, k.kernelFunc]));
    expect(before.get('Conv2DBackpropFilter')).toBeDefined();
    expect(before.get('MaxPoolGrad')).toBeDefined();
    registerWasmKernels(); // as a wasm user in the same process would
    const after = tf.getKernelsForBackend('tensorflow');
    expect(after.length).toBe(before.size);
    for (const k of after) expect(k.kernelFunc, k.kernelName).toBe(before.get(k.kernelName));
  });

  it.runIf(expectNative)('trains LeNet-5 with train(): the loss falls, tensors stay flat across calls', async () => {
    const ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 640, testLimit: 64, validationFraction: 0.01 }, 1);
    const model = buildZooModel('lenet5', 1, ds.shape, ds.classes);
    const opts = { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 3 };
    const first = await train(model, ds.train, opts);
    const tensorsAfterFirst = tf.memory().numTensors;
    const second = await train(model, ds.train, { ...opts, seed: 4 });
    const tensorsAfterSecond = tf.memory().numTensors;
    expect(tf.getBackend()).toBe('tensorflow');
    expect(first.threads).toBe(1); // libtensorflow threads by itself
    expect(first.steps).toBe(Math.ceil(ds.train.n / 64));
    const [l1, l2] = [first.epochLoss[0][1], second.epochLoss[0][1]];
    expect(Number.isFinite(l1) && Number.isFinite(l2)).toBe(true);
    expect(l2).toBeLessThan(l1);
    expect(l1).toBeLessThan(Math.log(10) * 1.2); // starts near chance (ln 10), not diverging
    expect(tensorsAfterSecond).toBe(tensorsAfterFirst);
    model.dispose();
  });

  it.runIf(expectNative)(
    "TensorFlow's fused training ops (ReluGrad, fused batch norm, oneDNN max-pool gradient) give tfjs's own gradients and batch-norm statistics, which the cpu backend still computes",
    async () => {
      const init = (i: number) => tfl.initializers.glorotUniform({ seed: 70 + i });
      const model = tfl.sequential({
        layers: [
          tfl.layers.conv2d({ inputShape: [12, 12, 3], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
          tfl.layers.batchNormalization({ momentum: 0.9 }),
          tfl.layers.reLU(),
          tfl.layers.maxPooling2d({ poolSize: 2 }),
          tfl.layers.conv2d({ filters: 6, kernelSize: 3, useBias: false, kernelInitializer: init(2) }),
          tfl.layers.batchNormalization({ momentum: 0 }),
          tfl.layers.reLU(),
          tfl.layers.maxPooling2d({ poolSize: 3, strides: 1, padding: 'same' }),
          tfl.layers.flatten(),
          tfl.layers.dense({ units: 16, kernelInitializer: init(3) }),
          tfl.layers.batchNormalization(),
          tfl.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(4) }),
        ],
      });
      const x = tf.tensor4d(
        Array.from({ length: 8 * 12 * 12 * 3 }, (_, i) => Math.sin(i * 0.37) * 2),
        [8, 12, 12, 3],
      );
      const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const moving = model.weights.filter((w) => /moving/.test(w.originalName)).map((w) => w.read() as tf.Variable);
      const start = moving.map((v) => v.dataSync().slice() as Float32Array);
      const step = async () => {
        moving.forEach((v, i) => v.assign(tf.tensor(start[i], v.shape)));
        let out: { loss: number; grads: Float32Array[] } | undefined;
        const before = tf.memory().numTensors;
        const profile = await tf.profile(() => {
          const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, vars);
          out = { loss: value.dataSync()[0], grads: vars.map((v) => grads[v.name].dataSync().slice() as Float32Array) };
          tf.dispose([value, ...Object.values(grads)]);
        });
        expect(tf.memory().numTensors).toBe(before); // nothing leaks
        return { ...out!, stats: moving.map((v) => v.dataSync().slice() as Float32Array), kernels: new Set(profile.kernels.map((k) => k.name)) };
      };
      const native = await step();
      // momentum 0 (what train() does per shard) leaves exactly the batch's mean and biased variance
      const h = tf.tidy(() => model.layers.slice(0, 5).reduce((t, l) => l.apply(t, { training: true }) as tf.Tensor, x as tf.Tensor));
      const { mean, variance } = tf.moments(h, [0, 1, 2]);
      const [m0, v0] = [native.stats[2], native.stats[3]]; // the second batch norm's, momentum 0
      await tf.setBackend('cpu');
      const cpu = await step();
      await tf.setBackend('tensorflow');
      expect(tf.getBackend()).toBe('tensorflow');
      // the stock compositions ran on cpu, not on tensorflow
      for (const k of ['Step', 'MaxPoolGrad', 'Mean']) {
        expect(cpu.kernels.has(k), `cpu ran ${k}`).toBe(true);
        expect(native.kernels.has(k), `tensorflow ran ${k}`).toBe(false);
      }
      const close = (a: Float32Array, b: Float32Array, what: string) => {
        const scale = Math.max(1e-3, ...Array.from(b, Math.abs));
        const worst = Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
        expect(worst / scale, what).toBeLessThan(2e-4);
      };
      expect(Math.abs(native.loss - cpu.loss)).toBeLessThan(1e-5);
      native.grads.forEach((g, i) => close(g, cpu.grads[i], `gradient of ${vars[i].name}`));
      native.stats.forEach((s, i) => close(s, cpu.stats[i], `${moving[i].name}`));
      close(m0, mean.dataSync() as Float32Array, 'batch mean');
      close(v0, variance.dataSync() as Float32Array, 'batch variance (biased)');
      tf.dispose([x, y, h, mean, variance]);
      model.dispose();
    },
  );

  it.runIf(expectNative)(
    "the native step trains on the recipe's loss: distilling from a teacher with the student's own weights starts near 0, not near ln 10",
    async () => {
      const ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 640, testLimit: 64, validationFraction: 0.01 }, 1);
      const [student, teacher, control] = [1, 1, 1].map((seed) => buildZooModel('lenet5', seed, ds.shape, ds.classes));
      const opts = { epochs: 1, steps: 1, batchSize: 64, learningRate: 2e-3, seed: 3 };
      const distilled = await train(student, ds.train, { ...opts, distill: { teacher, weight: 1, temperature: 1 } });
      const plain = await train(control, ds.train, opts);
      expect(tf.getBackend()).toBe('tensorflow');
      expect(distilled.epochLoss[0][1]).toBeLessThan(0.05); // KL between (nearly) the same outputs
      expect(plain.epochLoss[0][1]).toBeGreaterThan(1.5); // cross-entropy near chance
      [student, teacher, control].forEach((m) => m.dispose());
    },
  );

  it.runIf(expectNative)(
    "NativeAdam (TensorFlow's ResourceApplyAdam) takes FusedAdam's steps, also with a per-step learning rate, shares its state format and resumes from it; frees its variables",
    () => {
      const before = tf.memory().numTensors;
      const shapes = [[3, 4], [4], [2, 2, 3]];
      const start = shapes.map((s, k) => Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i + k * 10)));
      const gradsAt = (step: number) => shapes.map((s, k) => Float32Array.from(start[k], (_, i) => Math.cos(i * 0.7 + step + k) * (k + 1)));
      const make = () => shapes.map((s, k) => tf.tidy(() => tf.variable(tf.tensor(start[k], s))));
      const [a, b] = [make(), make()];
      const fused = new FusedAdam(a, 0.01);
      const nat = new NativeAdam(b, 0.01);
      for (let step = 0; step < 6; step++) {
        // a schedule sets the rate per step (ml/recipe.ts learningRateAt): both take it
        fused.learningRate = nat.learningRate = 0.01 * (1 + Math.cos((Math.PI * step) / 6)) * 0.5 + 0.001;
        fused.apply([{ grads: gradsAt(step), weight: 1 }]);
        tf.tidy(() => nat.apply(gradsAt(step).map((g, k) => tf.tensor(g, shapes[k]))));
      }
      const close = (x: Float32Array, y: Float32Array, what: string) =>
        x.forEach((v, i) => expect(Math.abs(v - y[i]), `${what}[${i}]`).toBeLessThan(1e-6 + 1e-5 * Math.abs(y[i])));
      a.forEach((v, k) => close(b[k].dataSync() as Float32Array, v.dataSync() as Float32Array, `weight ${k}`));
      const [sf, sn] = [fused.state(), nat.state()];
      expect(sn.t).toBe(6);
      sf.m.forEach((m, k) => (close(sn.m[k], m, `m ${k}`), close(sn.v[k], sf.v[k], `v ${k}`)));
      // a resume from FusedAdam's state continues as FusedAdam does
      const c = make();
      c.forEach((v, k) => v.assign(a[k]));
      const resumed = new NativeAdam(c, 0.01);
      resumed.restore(sf);
      fused.learningRate = 0.01;
      fused.apply([{ grads: gradsAt(6), weight: 1 }]);
      tf.tidy(() => resumed.apply(gradsAt(6).map((g, k) => tf.tensor(g, shapes[k]))));
      a.forEach((v, k) => close(c[k].dataSync() as Float32Array, v.dataSync() as Float32Array, `resumed weight ${k}`));
      expect(() => resumed.restore({ t: 1, m: [new Float32Array(2)], v: [new Float32Array(2)] })).toThrow(/does not fit/);
      nat.dispose();
      resumed.dispose();
      tf.dispose([...a, ...b, ...c]);
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it.runIf(!expectNative)(
    'NOT TESTED HERE: no tensorflow-cpu wheel in .venv and not CI (scripts/setup-native.sh adds it); checks the chain fell back past tensorflow saying why',
    () => {
      expect(['wasm', 'cpu']).toContain(info.name);
      const reason = info.skipped.find((s) => s.startsWith('tensorflow:'));
      expect(reason, `skipped: ${info.skipped.join('; ')}`).toBeDefined();
      expect(info.library).toBeUndefined();
    },
  );
});
