// The model's own task and loss (issue 11 §3): logits detected from the graph and trained with
// softmax cross-entropy on logits (case 05), regression and multilabel losses and metrics, the
// same loss in training, evaluation and the Taylor criterion, and outputs refused with the fix.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  analyze,
  evaluate,
  initBackend,
  loadDataset,
  loadModel,
  outputsOfTopology,
  planLocal,
  pruneModel,
  resolveTask,
  scoreGroups,
  taskLoss,
  taskOf,
  train,
  type Dataset,
  type Split,
  type Task,
} from '../ml';

const CASES = path.join(__dirname, 'fixtures', 'cases');
const json = (p: string) => JSON.parse(fs.readFileSync(path.join(CASES, p), 'utf8'));

beforeAll(async () => {
  await initBackend();
});

describe('what the output holds, read from the graph', () => {
  it('case 05: a last Dense without softmax is logits; its softmax control is probabilities (model.json and loaded model agree)', async () => {
    const logits = resolveTask(outputsOfTopology(json('05/model/model.json'))!);
    expect(logits).toMatchObject({ type: 'classification', outputs: 'logits', output: 'logits', units: 10 });
    expect(resolveTask(outputsOfTopology(json('05/control-softmax/model.json'))!)).toMatchObject({ outputs: 'probabilities' });
    const m = await loadModel(path.join(CASES, '05/model'));
    expect(taskOf(m)).toMatchObject({ outputs: 'logits', units: 10 });
    m.dispose();
  });

  it('walks back through Dropout / Flatten / linear Activation, and reads a Softmax layer and Keras 3 single outputs', () => {
    const seq = (layers: object[]) => ({ modelTopology: { class_name: 'Sequential', config: { name: 's', layers } } });
    const dense = (name: string, activation: string, units = 10) => ({ class_name: 'Dense', config: { name, units, activation } });
    expect(resolveTask(outputsOfTopology(seq([dense('fc', 'softmax'), { class_name: 'Dropout', config: { name: 'drop', rate: 0.5 } }]))!)).toMatchObject({
      outputs: 'probabilities',
    });
    const softmaxLayer = seq([dense('fc', 'linear'), { class_name: 'Softmax', config: { name: 'sm' } }]);
    expect(outputsOfTopology(softmaxLayer)![0]).toMatchObject({ name: 'sm', decidedBy: 'sm', activation: 'softmax' });
    const act = seq([dense('fc', 'linear'), { class_name: 'Activation', config: { name: 'a', activation: 'linear' } }]);
    expect(resolveTask(outputsOfTopology(act)!)).toMatchObject({ outputs: 'logits' });
    // Keras 3: output_layers is one [name, 0, 0], inbound nodes as {args, kwargs}
    const k3 = {
      modelTopology: {
        model_config: {
          class_name: 'Functional',
          config: {
            layers: [
              { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_shape: [null, 4] } },
              {
                class_name: 'Dense',
                name: 'head',
                config: { name: 'head', units: 3, activation: 'linear' },
                inbound_nodes: [{ args: [{ config: { keras_history: ['in', 0, 0] } }] }],
              },
              { class_name: 'Dropout', name: 'd', config: { name: 'd' }, inbound_nodes: [{ args: [{ config: { keras_history: ['head', 0, 0] } }] }] },
            ],
            input_layers: ['in', 0, 0],
            output_layers: ['d', 0, 0],
          },
        },
      },
    };
    expect(resolveTask(outputsOfTopology(k3)!)).toMatchObject({ outputs: 'logits', output: 'd' });
  });

  it('a nested model as the last layer: its own last activation decides (model.json and loaded model agree)', async () => {
    const inner = tfl.sequential({
      name: 'head',
      layers: [tfl.layers.dense({ inputShape: [4], units: 3, name: 'h1' }), tfl.layers.activation({ activation: 'softmax', name: 'sm' })],
    });
    const input = tfl.input({ shape: [5] });
    const outer = tfl.model({ inputs: input, outputs: inner.apply(tfl.layers.dense({ units: 4, name: 'body' }).apply(input)) as tfl.SymbolicTensor });
    expect(taskOf(outer)).toMatchObject({ outputs: 'probabilities', units: 3 });
    // the topology as model.json holds it
    const topology = { modelTopology: JSON.parse(JSON.stringify(outer.toJSON(null, false))) };
    expect(resolveTask(outputsOfTopology(topology)!)).toMatchObject({ outputs: 'probabilities', how: expect.stringMatching(/"sm"/) });
  });

  it('case 06: two outputs are refused naming both; activations that do not fit the task are refused with the fix', () => {
    expect(() => resolveTask(outputsOfTopology(json('06/model/model.json'))!)).toThrow(/model: 2 outputs \("main", "aux"\).*keras\.Model/);
    const out = (activation: string, units = 10) => [{ name: 'out', decidedBy: 'out', activation, shape: [units] }];
    expect(() => resolveTask(out('relu'))).toThrow(/activation "relu", neither softmax \(probabilities\) nor linear \(logits\): set task\.outputs/);
    expect(resolveTask(out('relu'), { type: 'classification', outputs: 'logits' })).toMatchObject({
      outputs: 'logits',
      how: expect.stringMatching(/task\.outputs/),
    });
    expect(() => resolveTask(out('softmax'), { type: 'classification', outputs: 'logits' })).toThrow(/outputs probabilities, not logits/);
    expect(() => resolveTask(out('sigmoid', 1))).toThrow(/1 unit.*task: multilabel/);
    expect(() => resolveTask(out('softmax'), { type: 'regression' })).toThrow(/softmax.*regression/);
    expect(() => resolveTask(out('softmax'), { type: 'multilabel' })).toThrow(/independent sigmoids/);
    expect(resolveTask(out('sigmoid'), { type: 'multilabel' })).toMatchObject({ outputs: 'probabilities' });
    expect(resolveTask(out('linear'), { type: 'multilabel' })).toMatchObject({ outputs: 'logits' });
    expect(() => resolveTask([{ name: 'seg', decidedBy: 'seg', activation: 'softmax', shape: [8, 8, 3] }])).toThrow(/output "seg" has shape \[8, 8, 3\]/);
  });
});

describe('the loss of each task', () => {
  const cls = (outputs: Task['outputs'], type: Task['type'] = 'classification'): Task => ({ type, outputs, output: 'o', units: 3, how: '' });
  it('softmax cross-entropy on logits equals it on the softmax of the same logits; BCE on logits equals it on sigmoids; MSE', () => {
    const z = tf.tensor2d([
      [2, -1, 0.5],
      [-3, 4, 1],
    ]);
    const y = tf.tensor2d([
      [1, 0, 0],
      [0, 0, 1],
    ]);
    const onLogits = taskLoss(cls('logits'), z, y).dataSync()[0];
    const onProbs = taskLoss(cls('probabilities'), tf.softmax(z), y).dataSync()[0];
    expect(onLogits).toBeCloseTo(onProbs, 5);
    // by hand: −mean(log softmax(z)[y])
    const ls = (row: number[], k: number) => row[k] - Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
    expect(onLogits).toBeCloseTo(-(ls([2, -1, 0.5], 0) + ls([-3, 4, 1], 2)) / 2, 5);
    // the old loss, on logits as if they were probabilities, is far off (case 05 reported 0.075 for a true 0.44)
    expect(Math.abs(taskLoss(cls('probabilities'), z, y).dataSync()[0] - onLogits)).toBeGreaterThan(0.5);
    const bceLogits = taskLoss(cls('logits', 'multilabel'), z, y).dataSync()[0];
    expect(bceLogits).toBeCloseTo(taskLoss(cls('probabilities', 'multilabel'), tf.sigmoid(z), y).dataSync()[0], 5);
    expect(taskLoss(cls('values', 'regression'), z, y).dataSync()[0]).toBeCloseTo((1 + 1 + 0.25 + 9 + 16 + 0) / 6, 5);
  });
});

/** One round of case 05's campaign, at the ml level: l1 scores, 20 % of each group pruned, one fine-tune epoch, test accuracy. */
async function oneRound(dir: string, ds: Dataset, seed: number): Promise<{ before: number; after: number; loss: number }> {
  const model = await loadModel(dir);
  const before = (await evaluate(model, ds.test)).accuracy;
  const graph = analyze(model);
  const pruned = await pruneModel(model, planLocal(graph, scoreGroups(model, 'l1', { seed }, graph), 0.2, { minUnits: 4 }), graph);
  await train(pruned, ds.train, { epochs: 1, batchSize: 128, learningRate: 0.0005, seed: seed + 1 });
  const r = await evaluate(pruned, ds.test);
  model.dispose();
  pruned.dispose();
  return { before, after: r.accuracy, loss: r.loss };
}

describe('case 05: a logits classifier is fine-tuned like its softmax control', () => {
  it('after one round (prune 20 %, one fine-tune epoch, seed 42) it lands within 1 point of the control, and its loss is the true one', async () => {
    // the case's campaign data: Fashion-MNIST, trainLimit 2000, testLimit 1000
    const ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 2000, testLimit: 1000, validationFraction: 0.1 }, 42);
    const logits = await oneRound(path.join(CASES, '05/model'), ds, 42);
    const control = await oneRound(path.join(CASES, '05/control-softmax'), ds, 42);
    // loaded: the same weights, the same accuracy (85.0 % in Keras)
    expect(logits.before).toBeCloseTo(control.before, 6);
    expect(logits.before).toBeGreaterThan(0.84);
    // the wrong loss took it from 85.0 % to 73.4 %
    expect(Math.abs(logits.after - control.after) * 100).toBeLessThanOrEqual(1);
    expect(logits.after).toBeGreaterThan(logits.before - 0.02);
    expect(logits.loss).toBeCloseTo(control.loss, 2);
    expect(logits.loss).toBeGreaterThan(0.25);
  });

  it('the Taylor criterion ranks a logits model exactly as its softmax control', async () => {
    const ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 600, testLimit: 100, validationFraction: 0.2 }, 42);
    const scores = async (dir: string) => {
      const m = await loadModel(dir);
      const s = scoreGroups(m, 'taylor', { seed: 1, calibration: ds.val, calibrationBatches: 2, batchSize: 64 });
      m.dispose();
      return s;
    };
    const a = await scores(path.join(CASES, '05/model'));
    const b = await scores(path.join(CASES, '05/control-softmax'));
    expect(Object.keys(a)).toEqual(Object.keys(b));
    for (const g of Object.keys(a)) {
      const scale = Math.max(...b[g].map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      a[g].forEach((v, i) => expect(Math.abs(v - b[g][i])).toBeLessThanOrEqual(1e-3 * scale));
    }
  });
});

/** A split of synthetic examples: x uniform in 0..1, targets from `f`. */
function synthetic(n: number, d: number, k: number, f: (x: Float32Array) => number[], seed: number, task: Split['task']): Split {
  let s = seed;
  const r = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const x = new Float32Array(n * d);
  const t = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) x[i * d + j] = r();
    t.set(f(x.subarray(i * d, (i + 1) * d)), i * k);
  }
  return { x, y: new Uint8Array(n), t, n, task };
}

describe('regression and multilabel train with their own loss and metric', () => {
  it('regression: MSE falls, R² on held-out data is high, MAE reported', async () => {
    const f = (x: Float32Array) => [2 * x[0] - x[1] + 0.5 * x[2], x[3] * x[4]];
    const tr = synthetic(800, 6, 2, f, 1, { type: 'regression' });
    const te = synthetic(200, 6, 2, f, 2, { type: 'regression' });
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [6], units: 16, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
        tfl.layers.dense({ units: 2, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    expect(() => taskOf(m)).not.toThrow(); // linear: a classifier's logits by default …
    expect(taskOf(m, { type: 'regression' })).toMatchObject({ type: 'regression', outputs: 'values', units: 2 });
    const before = await evaluate(m, te);
    const r = await train(m, tr, { epochs: 40, batchSize: 32, learningRate: 0.01, seed: 1, threads: 1 });
    const after = await evaluate(m, te);
    expect(r.epochLoss.at(-1)![1]).toBeLessThan(r.epochLoss[0][1] / 3);
    expect(after.loss).toBeLessThan(before.loss / 5);
    expect(after.accuracy).toBeGreaterThan(0.8); // R²
    expect(after.mae).toBeGreaterThan(0);
    expect(after.mae).toBeLessThan(before.mae!);
  });

  it('multilabel: per-label accuracy rises; logits and sigmoid outputs train to the same loss', async () => {
    const f = (x: Float32Array) => [x[0] > 0.5 ? 1 : 0, x[1] + x[2] > 1 ? 1 : 0, x[3] < 0.3 ? 1 : 0];
    const tr = synthetic(1000, 5, 3, f, 3, { type: 'multilabel' });
    const te = synthetic(300, 5, 3, f, 4, { type: 'multilabel' });
    const make = (activation: 'sigmoid' | 'linear') =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({ inputShape: [5], units: 16, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }) }),
          tfl.layers.dense({ units: 3, activation, kernelInitializer: tfl.initializers.glorotUniform({ seed: 6 }) }),
        ],
      });
    const results: number[] = [];
    for (const act of ['sigmoid', 'linear'] as const) {
      const m = make(act);
      expect(taskOf(m, { type: 'multilabel' }).outputs).toBe(act === 'sigmoid' ? 'probabilities' : 'logits');
      const before = await evaluate(m, te);
      await train(m, tr, { epochs: 30, batchSize: 32, learningRate: 0.01, seed: 1, threads: 1 });
      const after = await evaluate(m, te);
      expect(after.accuracy).toBeGreaterThan(Math.max(0.85, before.accuracy));
      results.push(after.loss);
    }
    expect(results[0]).toBeCloseTo(results[1], 3);
  });
});
