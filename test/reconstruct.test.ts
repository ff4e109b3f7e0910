// Least-squares reconstruction after pruning (ml/reconstruct.ts): a removed channel that duplicates a kept one is
// recovered exactly by the next layer's refit; otherwise the refit lowers the consumer's output error.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyze, initBackend, pruneModel } from '../ml';
import { reconstruct } from '../ml/reconstruct';

beforeAll(async () => {
  await initBackend();
});

/** conv1 (4 filters, 3×3 same) → relu → conv2 (5 filters, 3×3 valid, bias) → relu → flatten → dense (3) */
function net(seed: number): tfl.LayersModel {
  const input = tfl.input({ shape: [8, 8, 2] });
  const init = (s: number) => tfl.initializers.glorotNormal({ seed: seed * 10 + s });
  let x = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: init(1) }).apply(input);
  x = tfl.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'valid', activation: 'relu', name: 'conv2', kernelInitializer: init(2) }).apply(x);
  x = tfl.layers.flatten().apply(x);
  const out = tfl.layers.dense({ units: 3, name: 'out', kernelInitializer: init(3) }).apply(x) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

const images = (n: number, seed: number) => tf.randomNormal([n, 8, 8, 2], 0, 1, 'float32', seed);
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
const conv2Out = (m: tfl.LayersModel, x: tf.Tensor) =>
  tfl.model({ inputs: m.inputs, outputs: m.getLayer('conv2').output as tfl.SymbolicTensor }).predict(x) as tf.Tensor;

describe('least-squares reconstruction of pruned consumers', () => {
  it('a removed channel that duplicates a kept one: the refit next layer reproduces the unpruned output (plain pruning does not)', async () => {
    const m = net(1);
    // conv1's filter 3 := filter 0, so channel 3 carries exactly what channel 0 does
    const [k, b] = m.getLayer('conv1').getWeights();
    const kd = k.arraySync() as number[][][][];
    for (const row of kd) for (const col of row) for (const ci of col) ci[3] = ci[0];
    const bd = b.arraySync() as number[];
    bd[3] = bd[0];
    m.getLayer('conv1').setWeights([tf.tensor(kd), tf.tensor(bd)]);
    const graph = analyze(m);
    const plan = { [graph.groups.find((g) => g.producers.includes('conv1'))!.name]: [0, 1, 2] };
    const x = images(64, 2);
    const plain = await pruneModel(m, plan, graph);
    const fitted = await pruneModel(m, plan, graph);
    const layers = await reconstruct(m, fitted, plan, { images: x, ridge: 1e-9 }, graph);
    expect(layers.map((l) => l.layer)).toEqual(['conv2']);
    const want = conv2Out(m, x);
    expect(maxDiff(conv2Out(plain, x), want)).toBeGreaterThan(0.05);
    expect(maxDiff(conv2Out(fitted, x), want)).toBeLessThan(1e-3);
    expect(layers[0].before).toBeGreaterThan(0.01);
    expect(layers[0].after).toBeLessThan(1e-6);
    // on images it was not fitted on too, and through to the output
    const y = images(16, 3);
    expect(maxDiff(fitted.predict(y) as tf.Tensor, m.predict(y) as tf.Tensor)).toBeLessThan(1e-3);
  });

  it('pruning both convolutions: each consumer is refitted in order (conv2 on conv1’s kept channels, out on conv2’s), and each error falls', async () => {
    const m = net(2);
    const graph = analyze(m);
    const byProducer = (l: string) => graph.groups.find((g) => g.producers.includes(l))!.name;
    const plan = { [byProducer('conv1')]: [0, 2], [byProducer('conv2')]: [1, 3, 4] };
    const fitted = await pruneModel(m, plan, graph);
    const layers = await reconstruct(m, fitted, plan, { images: images(128, 4) }, graph);
    expect(layers.map((l) => l.layer)).toEqual(['conv2', 'out']);
    for (const l of layers) expect(l.after).toBeLessThan(l.before);
    // a layer with more unknowns than allowed is left as pruned and said so; the others are still refitted
    const capped = await pruneModel(m, plan, graph);
    const outBefore = capped.getLayer('out').getWeights()[0].dataSync().slice();
    const some = await reconstruct(m, capped, plan, { images: images(128, 4), maxUnknowns: 20 }, graph);
    expect(some.map((l) => [l.layer, l.skipped ?? 'refitted'])).toEqual([
      ['conv2', 'refitted'],
      ['out', '28 unknowns per output channel, more than 20'],
    ]);
    expect(capped.getLayer('out').getWeights()[0].dataSync()).toEqual(outBefore);
    // the shapes stay the pruned ones
    expect(fitted.getLayer('conv2').getWeights()[0].shape).toEqual([3, 3, 2, 3]);
    expect(fitted.getLayer('out').getWeights()[0].shape).toEqual([3 * 3 * 3, 3]);
  });

  it('yields to the event loop while it works (a stage’s heartbeat timer keeps firing)', async () => {
    const m = net(3);
    const graph = analyze(m);
    const plan = { [graph.groups.find((g) => g.producers.includes('conv1'))!.name]: [1, 3] };
    const fitted = await pruneModel(m, plan, graph);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      // a small patch budget: one image per batch, so many batches
      await reconstruct(m, fitted, plan, { images: images(64, 5), maxPatchFloats: 9 * 2 * 9 }, graph);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });
});
