// Native TensorFlow under tfjs (scripts/setup-native.sh builds @tensorflow/tfjs-node against PyPI's
// tensorflow-cpu wheel). Where the wheel is in .venv, or under CI=true, the default backend chain
// must pick "tensorflow" (no silent fallback to wasm) and train on it; elsewhere the test says so
// by name and checks that the chain fell back saying why.
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildZooModel, initBackend, loadDataset, train, type BackendInfo } from '../ml';
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
