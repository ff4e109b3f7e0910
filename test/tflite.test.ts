// Keras and TFLite out (issue 11 §7), against the real .venv Python: a LeNet-5 trained briefly on
// Fashion-MNIST, pruned by half and fine-tuned (ml functions, no campaign), recorded as a run's round in a real
// SQLite home, exported with `exportModel` as .keras (Keras 3), .h5 (tf-keras), TFLite float32 and
// TFLite full-integer int8; each file is loaded back by Keras / the TFLite interpreter and its
// predictions compared with the tfjs model's, and its accuracy field with what the file predicts.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateSpec } from '../campaign/load';
import { exportModel, type ExportResult } from '../cli/export';
import { resolveHome, type Home } from '../cli/home';
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
  predictDeployable,
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

/**
 * The written file's outputs on the whole test split (one Python run), against the tfjs model's:
 * the largest difference, and the accuracy of the file's own predictions (what `accuracy` claims to be).
 */
async function compare(file: string): Promise<{ maxDiff: number; accuracy: number; shape: number[] }> {
  const ours = tf.tidy(() => pruned.predict(tf.tensor(ds.test.x, [ds.test.n, ...SHAPE])) as tf.Tensor).dataSync() as Float32Array;
  const theirs = await predictDeployable(file, ds.test.x, SHAPE);
  const k = theirs.shape[1];
  let right = 0;
  let maxDiff = 0;
  for (let i = 0; i < ds.test.n; i++) {
    const row = theirs.values.subarray(i * k, (i + 1) * k);
    if (row.indexOf(Math.max(...row)) === ds.test.y[i]) right++;
    for (let j = 0; j < k; j++) maxDiff = Math.max(maxDiff, Math.abs(row[j] - ours[i * k + j]));
  }
  return { maxDiff, accuracy: right / ds.test.n, shape: theirs.shape };
}

function manifest(out: string) {
  return JSON.parse(fs.readFileSync(path.join(out, 'prunewise.json'), 'utf8'));
}

describe('export --format keras', () => {
  it('Keras 3 (.keras): loads in the pinned Keras, predicts what the tfjs model does (1e-4), accuracy of exactly that file', async () => {
    const out = path.join(home.dir, 'export-keras');
    const r = await exportModel(home, db, RUN, { round: 1, format: 'keras', out, log });
    expect(r.file).toBe(path.join(out, 'model.keras'));
    expect(r.measuredBy).toMatch(/^keras 3\.\d+\.\d+ keras\.models\.load_model$/);
    const p = await compare(r.file!);
    expect(p.shape).toEqual([500, 10]);
    expect(p.maxDiff).toBeLessThan(1e-4);
    const m = manifest(out);
    expect(m).toMatchObject({ format: 'keras', family: 'keras3', file: 'model.keras', accuracy: { measured: true, split: 'test', examples: 500 } });
    expect(m.accuracy.value).toBe(p.accuracy);
    expect(r.accuracy).toBeGreaterThan(0.4); // trained: far above chance (0.1)
    expect(Math.abs(r.accuracy - r.float32Accuracy)).toBeLessThanOrEqual(0.004);
    expect(m.versions).toMatchObject({ tensorflow: '2.21.0', keras: expect.stringMatching(/^3\./) });
  }, 120_000);

  it('tf-keras (.h5): loads in the pinned tf-keras, predicts what the tfjs model does (1e-4)', async () => {
    const out = path.join(home.dir, 'export-h5');
    const r = await exportModel(home, db, RUN, { round: 1, format: 'keras', family: 'tf-keras', out, log });
    expect(r.file).toBe(path.join(out, 'model.h5'));
    expect(r.measuredBy).toMatch(/^tf_keras 2\.21\.0/);
    const p = await compare(r.file!);
    expect(p.maxDiff).toBeLessThan(1e-4);
    expect(manifest(out)).toMatchObject({ family: 'tf-keras', accuracy: { value: p.accuracy, on: 'exactly this file' } });
  }, 120_000);
});

describe('export --format tflite / tflite-int8', () => {
  let float: ExportResult;
  it('float32: the interpreter predicts what the tfjs model does; accuracy measured with the interpreter on the file', async () => {
    const out = path.join(home.dir, 'export-tflite');
    float = await exportModel(home, db, RUN, { round: 1, format: 'tflite', out, log });
    expect(float.file).toBe(path.join(out, 'model.tflite'));
    expect(float.measuredBy).toMatch(/^tf\.lite\.Interpreter \(TensorFlow 2\.21\.0\), XNNPACK applied$/);
    expect(float.bytes).toBe(fs.statSync(float.file!).size);
    const p = await compare(float.file!);
    expect(p.maxDiff).toBeLessThan(1e-4);
    const m = manifest(out);
    expect(m.accuracy.value).toBe(p.accuracy);
    expect(m.input).toEqual({ dtype: 'float32', quantization: [0, 0] });
    expect(Math.abs(float.accuracy - float.float32Accuracy)).toBeLessThanOrEqual(0.004);
  }, 120_000);

  it('int8: full-integer (int8 in and out), calibrated on the validation split, ~4× smaller, accuracy of the int8 file', async () => {
    const out = path.join(home.dir, 'export-int8');
    const r = await exportModel(home, db, RUN, { round: 1, format: 'tflite-int8', out, log });
    expect(r.file).toBe(path.join(out, 'model-int8.tflite'));
    const m = manifest(out);
    expect(m.input.dtype).toBe('int8');
    expect(m.output.dtype).toBe('int8');
    expect(m.calibration).toMatchObject({ examples: Math.min(500, ds.val.n), split: 'validation' });
    expect(r.bytes).toBeLessThan(float.bytes * 0.4);
    // its own predictions (inputs quantized, outputs dequantized): close to float, not equal
    const p = await compare(r.file!);
    expect(p.maxDiff).toBeGreaterThan(0);
    expect(p.maxDiff).toBeLessThan(0.15);
    expect(m.accuracy.value).toBe(p.accuracy);
    expect(Math.abs(r.accuracy - float.accuracy)).toBeLessThan(0.03);
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

  it('a missing .venv Python: the step and the fix, at export and when a campaign asks for target.runtime tflite', async () => {
    const saved = process.env.PRUNEWISE_TF_PYTHON;
    process.env.PRUNEWISE_TF_PYTHON = path.join(home.dir, 'no-such-python');
    try {
      const e = await exportModel(home, db, RUN, { round: 1, format: 'tflite', out: path.join(home.dir, 'export-x'), log }).catch((x) => x);
      expect(e).toBeInstanceOf(CliError);
      expect(e.message).toMatch(/^export --format tflite: no Python at \S+no-such-python: run `npm run setup` .*PRUNEWISE_TF_PYTHON$/);
      expect(() =>
        validateSpec({ name: 'k', model: 'mlp', dataset: { name: 'mnist' }, weights: [{ accuracy: 1 }], target: { runtime: 'tflite' } }, 'k.yaml', home.dir),
      ).toThrow(/^k\.yaml: target\.runtime: tflite needs TensorFlow's Python on this machine: no Python at \S+: run `npm run setup`/);
    } finally {
      if (saved === undefined) delete process.env.PRUNEWISE_TF_PYTHON;
      else process.env.PRUNEWISE_TF_PYTHON = saved;
    }
  });
});
