// Keras and TFLite out (issue 11 §7), against the real .venv Python: a LeNet-5 trained briefly on
// Fashion-MNIST, pruned by half and fine-tuned (ml functions, no campaign), recorded as a run's round in a real
// SQLite home, exported with `exportModel` as .keras (Keras 3), .h5 (tf-keras), TFLite float32 and
// TFLite full-integer int8; each file is loaded back by Keras / the TFLite interpreter and its
// predictions compared with the tfjs model's, and its accuracy field with what the file predicts.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateSpec } from '../campaign/load';
import { exportModel, type ExportResult } from '../cli/export';
import { resolveHome, type Home } from '../cli/home';
import { openStore } from '../cli/store';
import { CliError } from '../cli/temporal';
import { applyRecord, createCampaign, openDb, type Db } from '../db';
import {
  analyze,
  buildZooModel,
  DeployError,
  exportDeployable,
  initBackend,
  loadDataset,
  planLocal,
  predictDeployables,
  pruneModel,
  saveModel,
  scoreGroups,
  train,
  type Dataset,
} from '../ml';
import { tmpHome } from './helpers';

const RUN = 'kout-20260101-000000-abcd/run-1';
const SHAPE = [28, 28, 1];

let home: Home;
let db: Db;
let ds: Dataset;
let pruned: tfl.LayersModel;
let modelDir: string;
const log = () => undefined;

beforeAll(async () => {
  await initBackend();
  const dir = tmpHome('kout');
  home = resolveHome(dir);
  const spec = validateSpec(
    { name: 'kout', seed: 1, model: 'lenet5', dataset: { name: 'fashion-mnist', trainLimit: 2000, testLimit: 500 }, weights: [{ accuracy: 1 }] },
    'kout.yaml',
    dir,
  );
  ds = loadDataset(spec.dataset, spec.seed);
  const model = buildZooModel('lenet5', 1, SHAPE, 10);
  await train(model, ds.train, { epochs: 2, batchSize: 64, learningRate: 0.002, seed: 1 });
  const graph = analyze(model);
  pruned = await pruneModel(model, planLocal(graph, scoreGroups(model, 'l1', {}, graph), 0.5, { minUnits: 2 }), graph);
  model.dispose();
  await train(pruned, ds.train, { epochs: 1, batchSize: 64, learningRate: 0.001, seed: 2 }); // fine-tune
  const rel = 'artifacts/kout/run-1/round-1/model';
  modelDir = path.join(home.dir, rel);
  await saveModel(pruned, modelDir);
  db = openDb(home.db);
  createCampaign(db, { id: 'kout-20260101-000000-abcd', name: 'kout', spec, specHash: 'x', specFile: 'kout.yaml', seed: 1 });
  applyRecord(db, [
    { op: 'run', campaignId: 'kout-20260101-000000-abcd', runId: RUN, k: 1, kind: 'run', weights: { accuracy: 1 }, state: 'running' },
    { op: 'round', runId: RUN, round: 1, state: 'completed' },
    { op: 'stage', runId: RUN, round: 1, stage: 'finetune', state: 'completed', artifacts: [{ kind: 'model', path: rel, bytes: 0, sha256: 'x' }] },
  ]);
}, 120_000);

afterAll(() => {
  pruned?.dispose();
  db?.close();
});

interface Written {
  r: ExportResult;
  m: Record<string, any>; // prunewise.json
  /** the largest difference between the file's outputs and the tfjs model's on the test split */
  maxDiff: number;
  /** the accuracy of the file's own predictions on the test split (what `accuracy` claims to be) */
  accuracy: number;
  shape: number[];
}
const written: Record<string, Written> = {};

// the four exports, then the written files' outputs on the whole test split in one Python run
beforeAll(async () => {
  const cases = {
    keras3: { format: 'keras', out: 'export-keras' },
    tfkeras: { format: 'keras', family: 'tf-keras', out: 'export-h5' },
    tflite: { format: 'tflite', out: 'export-tflite' },
    int8: { format: 'tflite-int8', out: 'export-int8' },
  } as const;
  const results: Array<[string, ExportResult]> = [];
  for (const [key, c] of Object.entries(cases)) {
    const out = path.join(home.dir, c.out);
    results.push([
      key,
      await exportModel(home, db, openStore(home), RUN, { round: 1, format: c.format, family: 'family' in c ? c.family : undefined, out, log }),
    ]);
  }
  const ours = tf.tidy(() => pruned.predict(tf.tensor(ds.test.x, [ds.test.n, ...SHAPE])) as tf.Tensor).dataSync() as Float32Array;
  const theirs = await predictDeployables(
    results.map(([, r]) => r.file!),
    ds.test.x,
    SHAPE,
  );
  for (const [i, [key, r]] of results.entries()) {
    const t = theirs[i];
    const k = t.shape[1];
    let right = 0;
    let maxDiff = 0;
    for (let j = 0; j < ds.test.n; j++) {
      const row = t.values.subarray(j * k, (j + 1) * k);
      if (row.indexOf(Math.max(...row)) === ds.test.y[j]) right++;
      for (let c = 0; c < k; c++) maxDiff = Math.max(maxDiff, Math.abs(row[c] - ours[j * k + c]));
    }
    written[key] = { r, m: JSON.parse(fs.readFileSync(path.join(r.out, 'prunewise.json'), 'utf8')), maxDiff, accuracy: right / ds.test.n, shape: t.shape };
  }
}, 300_000);

describe('export --format keras', () => {
  it('Keras 3 (.keras): loads in the pinned Keras, predicts what the tfjs model does (1e-4), accuracy of exactly that file', () => {
    const { r, m, maxDiff, accuracy, shape } = written.keras3;
    expect(r.file).toBe(path.join(r.out, 'model.keras'));
    expect(r.measuredBy).toMatch(/^keras 3\.\d+\.\d+ keras\.models\.load_model$/);
    expect(shape).toEqual([500, 10]);
    expect(maxDiff).toBeLessThan(1e-4);
    expect(m).toMatchObject({ format: 'keras', family: 'keras3', file: 'model.keras', accuracy: { measured: true, split: 'test', examples: 500 } });
    expect(m.accuracy.value).toBe(accuracy);
    expect(r.accuracy).toBeGreaterThan(0.4); // trained: far above chance (0.1)
    expect(Math.abs(r.accuracy - r.float32Accuracy)).toBeLessThanOrEqual(0.004);
    expect(m.versions).toMatchObject({ tensorflow: '2.21.0', keras: expect.stringMatching(/^3\./) });
  });

  it('tf-keras (.h5): loads in the pinned tf-keras, predicts what the tfjs model does (1e-4)', () => {
    const { r, m, maxDiff, accuracy } = written.tfkeras;
    expect(r.file).toBe(path.join(r.out, 'model.h5'));
    expect(r.measuredBy).toMatch(/^tf_keras 2\.21\.0/);
    expect(maxDiff).toBeLessThan(1e-4);
    expect(m).toMatchObject({ family: 'tf-keras', accuracy: { value: accuracy, on: 'exactly this file' } });
  });
});

describe('export --format tflite / tflite-int8', () => {
  it('float32: the interpreter predicts what the tfjs model does; accuracy measured with the interpreter on the file', () => {
    const { r, m, maxDiff, accuracy } = written.tflite;
    expect(r.file).toBe(path.join(r.out, 'model.tflite'));
    expect(r.measuredBy).toMatch(/^tf\.lite\.Interpreter \(TensorFlow 2\.21\.0\), XNNPACK applied$/);
    expect(r.bytes).toBe(fs.statSync(r.file!).size);
    expect(maxDiff).toBeLessThan(1e-4);
    expect(m.accuracy.value).toBe(accuracy);
    expect(m.input).toEqual({ dtype: 'float32', quantization: [0, 0] });
    expect(Math.abs(r.accuracy - r.float32Accuracy)).toBeLessThanOrEqual(0.004);
  });

  it('int8: full-integer (int8 in and out), calibrated on the validation split, ~4× smaller, accuracy of the int8 file', () => {
    const { r, m, maxDiff, accuracy } = written.int8;
    expect(r.file).toBe(path.join(r.out, 'model-int8.tflite'));
    expect(m.input.dtype).toBe('int8');
    expect(m.output.dtype).toBe('int8');
    expect(m.calibration).toMatchObject({ examples: Math.min(500, ds.val.n), split: 'validation' });
    expect(r.bytes).toBeLessThan(written.tflite.r.bytes * 0.4);
    // its own predictions (inputs quantized, outputs dequantized): close to float, not equal
    expect(maxDiff).toBeGreaterThan(0);
    expect(maxDiff).toBeLessThan(0.15);
    expect(m.accuracy.value).toBe(accuracy);
    expect(Math.abs(r.accuracy - written.tflite.r.accuracy)).toBeLessThan(0.03);
    console.log(
      `lenet5 pruned, ${ds.test.n} test images: tfjs float32 ${r.float32Accuracy}, .keras ${written.keras3.r.accuracy}, .h5 ${written.tfkeras.r.accuracy}, tflite ${written.tflite.r.accuracy} (${written.tflite.r.bytes} B), tflite-int8 ${r.accuracy} (${r.bytes} B)`,
    );
  });
});

describe('layer classes', () => {
  it('a functional net of 18 layer classes (separable, depthwise, transposed, Conv1D, LayerNormalization, …): Keras 3 and TFLite predict as tfjs (1e-4)', async () => {
    const L = tfl.layers;
    const inp = tfl.input({ shape: SHAPE, name: 'img' });
    let x = L.zeroPadding2d({ padding: 2, name: 'pad' }).apply(inp) as tfl.SymbolicTensor;
    x = L.conv2d({ filters: 8, kernelSize: 3, strides: 2, name: 'c1' }).apply(x) as tfl.SymbolicTensor; // 15×15×8
    x = L.batchNormalization({ name: 'bn1' }).apply(x) as tfl.SymbolicTensor;
    x = L.reLU({ maxValue: 6, name: 'relu6' }).apply(x) as tfl.SymbolicTensor;
    const a = L.separableConv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'sep' }).apply(x) as tfl.SymbolicTensor;
    const b = L.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw' }).apply(x) as tfl.SymbolicTensor;
    x = L.add({ name: 'add' }).apply([a, b]) as tfl.SymbolicTensor;
    x = L.conv2dTranspose({ filters: 4, kernelSize: 2, strides: 2, name: 'tconv' }).apply(x) as tfl.SymbolicTensor; // 30×30×4
    const up = L.upSampling2d({ size: [2, 2], name: 'up' }).apply(L.conv2d({ filters: 4, kernelSize: 1, name: 'c2' }).apply(a)) as tfl.SymbolicTensor;
    x = L.concatenate({ name: 'cat' }).apply([x, up]) as tfl.SymbolicTensor;
    x = L.averagePooling2d({ poolSize: 2, name: 'avg' }).apply(x) as tfl.SymbolicTensor; // 15×15×8
    x = L.layerNormalization({ name: 'ln' }).apply(x) as tfl.SymbolicTensor;
    x = L.activation({ activation: 'elu', name: 'elu' }).apply(x) as tfl.SymbolicTensor;
    let c = L.reshape({ targetShape: [225, 8], name: 'rs' }).apply(x) as tfl.SymbolicTensor;
    c = L.conv1d({ filters: 6, kernelSize: 3, name: 'c1d' }).apply(c) as tfl.SymbolicTensor;
    c = L.globalMaxPooling1d({ name: 'gmp' }).apply(c) as tfl.SymbolicTensor;
    const g = L.globalAveragePooling2d({ name: 'gap' }).apply(x) as tfl.SymbolicTensor;
    let h = L.concatenate({ name: 'cat2' }).apply([c, g]) as tfl.SymbolicTensor;
    h = L.dropout({ rate: 0.1, name: 'drop' }).apply(h) as tfl.SymbolicTensor;
    h = L.dense({ units: 10, activation: 'softmax', name: 'out' }).apply(h) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: inp, outputs: h, name: 'many' });
    const dir = path.join(home.dir, 'many');
    await saveModel(model, dir);
    const n = 16;
    const xs = ds.test.x.slice(0, n * 28 * 28);
    const ours = tf.tidy(() => model.predict(tf.tensor(xs, [n, ...SHAPE])) as tf.Tensor).dataSync();
    model.dispose();
    const files = [path.join(home.dir, 'many.keras'), path.join(home.dir, 'many.tflite')];
    await exportDeployable(dir, files[0], { format: 'keras', family: 'keras3', shape: SHAPE });
    await exportDeployable(dir, files[1], { format: 'tflite', shape: SHAPE });
    for (const { values } of await predictDeployables(files, xs, SHAPE)) {
      expect(values.length).toBe(ours.length);
      expect(values.reduce((m, v, i) => Math.max(m, Math.abs(v - ours[i])), 0)).toBeLessThan(1e-4);
    }
  }, 120_000);
});

describe('errors: one line naming the step, the layer and the fix', () => {
  it('a layer the loader cannot read is named', async () => {
    const bad = path.join(home.dir, 'bad-model');
    fs.cpSync(modelDir, bad, { recursive: true });
    const json = JSON.parse(fs.readFileSync(path.join(bad, 'model.json'), 'utf8'));
    const layer = (json.modelTopology.model_config ?? json.modelTopology).config.layers.find((l: { config: { name: string } }) => l.config.name === 'fc2');
    layer.class_name = 'NoSuchLayer';
    fs.writeFileSync(path.join(bad, 'model.json'), JSON.stringify(json));
    const e = await exportDeployable(bad, path.join(home.dir, 'bad.tflite'), { format: 'tflite', shape: SHAPE }).catch((x) => x);
    expect(e).toBeInstanceOf(DeployError);
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(/^export --format tflite: read the tfjs model with tensorflowjs failed on layer "fc2" \(NoSuchLayer\): .*NoSuchLayer/);
    expect(fs.existsSync(path.join(home.dir, 'bad.tflite'))).toBe(false);
  }, 60_000);

  it("a layer TFLite's converter refuses is named (found from the op the converter names)", async () => {
    const L = tfl.layers;
    const m = tfl.sequential({
      layers: [L.reshape({ inputShape: SHAPE, targetShape: [28, 28], name: 'rows' }), L.lstm({ units: 8, name: 'seq' }), L.dense({ units: 10, name: 'out' })],
    });
    const dir = path.join(home.dir, 'lstm');
    await saveModel(m, dir);
    m.dispose();
    const e = await exportDeployable(dir, path.join(home.dir, 'lstm.tflite'), { format: 'tflite', shape: SHAPE }).catch((x) => x);
    expect(e).toBeInstanceOf(DeployError);
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(
      /^export --format tflite: convert to TFLite failed on layer "seq" \(LSTM\): 'tf\.\w+' op .*: TFLite's converter cannot take this model/,
    );
  }, 120_000);

  it('a missing .venv Python: the step and the fix, at export and when a campaign asks for target.runtime tflite', async () => {
    const saved = process.env.PRUNEWISE_TF_PYTHON;
    process.env.PRUNEWISE_TF_PYTHON = path.join(home.dir, 'no-such-python');
    try {
      const e = await exportModel(home, db, openStore(home), RUN, { round: 1, format: 'tflite', out: path.join(home.dir, 'export-x'), log }).catch((x) => x);
      expect(e).toBeInstanceOf(CliError);
      expect(e.message).toMatch(/^export --format tflite: no Python at \S+no-such-python: run `npm run setup` .*PRUNEWISE_TF_PYTHON at a Python that has them$/);
      expect(() =>
        validateSpec({ name: 'k', model: 'mlp', dataset: { name: 'mnist' }, weights: [{ accuracy: 1 }], target: { runtime: 'tflite' } }, 'k.yaml', home.dir),
      ).toThrow(/^k\.yaml: target\.runtime: tflite needs TensorFlow's Python on this machine: no Python at \S+: run `npm run setup`/);
    } finally {
      if (saved === undefined) delete process.env.PRUNEWISE_TF_PYTHON;
      else process.env.PRUNEWISE_TF_PYTHON = saved;
    }
  });
});
