import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  analyze,
  buildZooModel,
  CRITERIA,
  initBackend,
  layerChannels,
  loadDataset,
  modelCost,
  GLOBAL_OVERSHOOT,
  planForFlops,
  planGlobal,
  planLocal,
  planRound,
  scalePlan,
  pruneModel,
  scheduledReduction,
  scoreGroups,
  silenceRemoved,
  ZOO_NAMES,
  type Dataset,
  type PruningPolicy,
} from '../ml';

let ds: Dataset;
beforeAll(async () => {
  await initBackend();
  ds = loadDataset({ name: 'mnist', validationFraction: 0.1, trainLimit: 600 }, 1);
});

const SHAPE = [28, 28, 1];

function worstRelative(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  const scale = Math.max(...Array.from(b, Math.abs));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1e-6, scale));
  return worst;
}

/** Gives batch norms non-trivial statistics so the equivalence check means something. */
function randomiseBatchNorms(model: tfl.LayersModel, seed: number): void {
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const ws = l.getWeights();
    l.setWeights(
      ws.map((w, k) =>
        k === 3 ? tf.randomUniform(w.shape, 0.5, 2, 'float32', seed + k) : tf.randomNormal(w.shape, k === 0 ? 1 : 0, 0.3, 'float32', seed + k),
      ),
    );
  }
}

describe('coupling graph', () => {
  it('resnet8: a residual add joins the block input and the block output into one group', () => {
    const g = analyze(buildZooModel('resnet8', 1, SHAPE, 10));
    const stem = g.groupByName('stem_conv')!;
    expect(stem.producers).toEqual(['stem_conv', 'b1_conv2']); // identity shortcut: coupled
    expect(stem.followers).toEqual(expect.arrayContaining(['stem_bn', 'b1_bn2']));
    const b2 = g.groups.find((x) => x.producers.includes('b2_proj'))!;
    expect(b2.producers.sort()).toEqual(['b2_conv2', 'b2_proj']);
    expect(g.groupByName('b1_conv1')!.producers).toEqual(['b1_conv1']);
    expect(g.blocked.map((b) => b.name)).toEqual(['out']);
  });

  it('mobilenet: a depthwise conv follows its input channels; the classifier is never pruned', () => {
    const g = analyze(buildZooModel('mobilenet-small', 1, SHAPE, 10));
    expect(g.groupByName('stem_conv')!.followers).toEqual(['stem_bn', 'dw1_depthwise', 'dw1_bn1']);
    expect(g.groups.map((x) => x.name)).toEqual(['stem_conv', 'dw1_pointwise', 'dw2_pointwise', 'dw3_pointwise']);
    expect(g.blocked).toEqual([{ name: 'out', reason: expect.stringMatching(/softmax mixes channels|reaches the model output/) }]);
  });

  it('concatenation lays groups side by side; an unsupported layer leaves its groups unpruned, with the reason', async () => {
    const input = tfl.input({ shape: [8, 8, 2] });
    const a = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'a' }).apply(input) as tfl.SymbolicTensor;
    const b = tfl.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'b' }).apply(input) as tfl.SymbolicTensor;
    const cat = tfl.layers.concatenate({ name: 'cat' }).apply([a, b]) as tfl.SymbolicTensor;
    const c = tfl.layers.conv2d({ filters: 5, kernelSize: 1, name: 'c' }).apply(cat) as tfl.SymbolicTensor;
    const ln = tfl.layers.layerNormalization({ name: 'ln' }).apply(c) as tfl.SymbolicTensor;
    const gap = tfl.layers.globalAveragePooling2d({}).apply(ln) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(gap) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: out });
    const g = analyze(model);
    expect(g.groups.map((x) => x.name)).toEqual(['a', 'b']);
    expect(g.blocked).toContainEqual({ name: 'c', reason: 'layer "ln" (LayerNormalization): normalises across channels: removing one changes every other' });
    const keep = { a: [0, 2], b: [1] };
    const pruned = await pruneModel(model, keep, g);
    expect((pruned.getLayer('c').getWeights()[0].shape as number[])[2]).toBe(3);
    const x = tf.randomNormal([2, 8, 8, 2], 0, 1, 'float32', 3);
    silenceRemoved(model, keep, g);
    expect(worstRelative((pruned.predict(x) as tf.Tensor).dataSync() as Float32Array, (model.predict(x) as tf.Tensor).dataSync() as Float32Array)).toBeLessThan(
      1e-4,
    );
    await expect(pruneModel(model, { c: [0] }, g)).rejects.toThrow(/"c" is not a prunable group: layer "ln" \(LayerNormalization\)/);
  });
});

describe('surgery', () => {
  for (const name of ZOO_NAMES) {
    it(`${name}: the pruned model equals the original with the removed channels silenced downstream (1e-4 relative)`, async () => {
      const model = buildZooModel(name, 3, SHAPE, 10);
      randomiseBatchNorms(model, 11);
      const graph = analyze(model);
      expect(graph.groups.length).toBeGreaterThan(0);
      const keep = planLocal(graph, scoreGroups(model, 'random', { seed: 5 }, graph), 0.5, { minUnits: 1 });
      const pruned = await pruneModel(model, keep, graph);
      const before = modelCost(model);
      const after = modelCost(pruned);
      expect(after.params).toBeLessThan(before.params * 0.7);
      expect(after.flops).toBeLessThan(before.flops * 0.7);
      const widths = layerChannels(pruned);
      for (const [group, kept] of Object.entries(keep)) expect(widths[group]).toBe(kept.length);

      const x = tf.randomUniform([8, ...SHAPE], 0, 1, 'float32', 5);
      const a = (pruned.predict(x) as tf.Tensor).dataSync() as Float32Array;
      silenceRemoved(model, keep, graph);
      const b = (model.predict(x) as tf.Tensor).dataSync() as Float32Array;
      expect(worstRelative(a, b)).toBeLessThan(1e-4);
      pruned.dispose();
      model.dispose();
      x.dispose();
    });
  }
});

describe('importance criteria and plans', () => {
  for (const criterion of CRITERIA) {
    it(`${criterion}: scores every channel of every group of a model with batch norms`, () => {
      const model = buildZooModel('vgg-small', 2, SHAPE, 10);
      randomiseBatchNorms(model, 3);
      const graph = analyze(model);
      const s = scoreGroups(model, criterion, { seed: 1, calibration: ds.val, calibrationBatches: 2, batchSize: 16 }, graph);
      for (const g of graph.groups) {
        expect(s[g.name]).toHaveLength(g.size);
        expect(s[g.name].every(Number.isFinite)).toBe(true);
        expect(new Set(s[g.name]).size).toBeGreaterThan(1);
      }
    });
  }

  it('l1 ranks a filter of zeros last and a large filter first', () => {
    const model = buildZooModel('lenet5', 1, SHAPE, 10);
    const [k, b] = model.getLayer('conv1').getWeights();
    const data = k.dataSync().slice();
    for (let i = 0; i < data.length; i++) if (i % 6 === 2) data[i] = 0;
    for (let i = 0; i < data.length; i++) if (i % 6 === 4) data[i] = 5;
    model.getLayer('conv1').setWeights([tf.tensor(data, k.shape), b]);
    const s = scoreGroups(model, 'l1', { seed: 1 })['conv1'];
    expect(s.indexOf(Math.min(...s))).toBe(2);
    expect(s.indexOf(Math.max(...s))).toBe(4);
  });

  it('fpgm ranks a filter duplicated many times (near the geometric median) below an outlier', () => {
    const model = buildZooModel('lenet5', 1, SHAPE, 10);
    const [k, b] = model.getLayer('conv1').getWeights();
    const data = k.dataSync().slice();
    for (let i = 0; i < data.length; i++) data[i] = i % 6 === 5 ? 3 : 0.1;
    model.getLayer('conv1').setWeights([tf.tensor(data, k.shape), b]);
    const s = scoreGroups(model, 'fpgm', { seed: 1 })['conv1'];
    expect(Math.max(...s)).toBe(s[5]);
  });

  it('group-norm ranks by the whole group: a channel whose own filter is large but whose next-layer rows are zero ranks below one with a small filter and large rows', () => {
    const model = buildZooModel('lenet5', 1, SHAPE, 10);
    const set = (layer: string, fn: (i: number, v: number) => number) => {
      const [k, ...rest] = model.getLayer(layer).getWeights();
      const data = k.dataSync().slice();
      for (let i = 0; i < data.length; i++) data[i] = fn(i, data[i]);
      model.getLayer(layer).setWeights([tf.tensor(data, k.shape), ...rest]);
    };
    // conv1's kernel [5, 5, 1, 6]: channel = i % 6; conv2's [5, 5, 6, 16]: input channel = floor(i / 16) % 6
    set('conv1', (i, v) => (i % 6 === 1 ? 2 : i % 6 === 3 ? 0.01 : v));
    set('conv2', (i, v) => (Math.floor(i / 16) % 6 === 1 ? 0 : Math.floor(i / 16) % 6 === 3 ? 1 : v));
    const l1 = scoreGroups(model, 'l1', { seed: 1 })['conv1'];
    expect(l1[1]).toBeGreaterThan(l1[3]);
    const g = scoreGroups(model, 'group-norm', { seed: 1 })['conv1'];
    expect(g[3]).toBeGreaterThan(g[1]);
    // channel 1: its conv1 filter (25 weights of 2) and bias, nothing from conv2
    const bias = model.getLayer('conv1').getWeights()[1].dataSync()[1];
    expect(g[1]).toBeCloseTo(Math.sqrt(25 * 4 + bias * bias), 4);
  });

  it('local plans honour minUnits, roundTo, per-group caps and protected layers; global plans rank across groups', () => {
    const model = buildZooModel('vgg-small', 1, SHAPE, 10);
    const graph = analyze(model);
    const scores = scoreGroups(model, 'l2', { seed: 1 }, graph);
    const local = planLocal(graph, scores, 0.5, { minUnits: 4, roundTo: 8, protect: ['conv5'] });
    expect(local.conv5).toBeUndefined();
    for (const kept of Object.values(local)) expect(kept.length % 8).toBe(0);
    expect(local.conv1).toHaveLength(8);
    const capped = planLocal(graph, scores, 0.95, { minUnits: 1, maxRatio: 0.5 });
    expect(capped.conv3).toHaveLength(16);
    const global = planGlobal(graph, scores, 40, { minUnits: 1 });
    const removed = graph.groups.reduce((a, g) => a + g.size - (global[g.name]?.length ?? g.size), 0);
    expect(removed).toBe(40);
    expect(new Set(Object.values(global).map((k) => k.length)).size).toBeGreaterThan(1); // not uniform
  });

  it('a retried round removes half of what its plan removed: the best-scored removed channels come back first, roundTo kept', () => {
    const model = buildZooModel('vgg-small', 1, SHAPE, 10);
    const graph = analyze(model);
    const scores = scoreGroups(model, 'l2', { seed: 1 }, graph);
    const plan = planGlobal(graph, scores, 40, { minUnits: 1 });
    const half = scalePlan(graph, scores, plan, 0.5, { minUnits: 1 });
    for (const [name, keep] of Object.entries(plan)) {
      const size = graph.groupByName(name)!.size;
      const removed = size - keep.length;
      const kept = half[name] ?? [...Array(size).keys()];
      expect(size - kept.length).toBe(Math.floor(removed / 2));
      expect(keep.every((i) => kept.includes(i))).toBe(true); // only adds channels back
      const back = kept.filter((i) => !keep.includes(i));
      const stillOut = [...Array(size).keys()].filter((i) => !kept.includes(i));
      if (back.length && stillOut.length)
        expect(Math.min(...back.map((i) => scores[name][i]))).toBeGreaterThanOrEqual(Math.max(...stillOut.map((i) => scores[name][i])));
    }
    expect(scalePlan(graph, scores, plan, 1, { minUnits: 1 })).toBe(plan);
    const rounded = scalePlan(graph, scores, planLocal(graph, scores, 0.5, { minUnits: 4, roundTo: 8 }), 0.5, { minUnits: 4, roundTo: 8 });
    for (const kept of Object.values(rounded)) expect(kept.length % 8).toBe(0);
  });

  it('a global plan lands within its overshoot of the FLOPs target although one LeNet-5 conv1 channel is a bigger step; a schedule lands in its last round, earlier rounds stop short of the target', async () => {
    // roundTo auto's options, group-norm scores: the smallest ranking prefix reaching 0.2–0.7 overshot by 1.9–13 points
    const model = buildZooModel('lenet5', 1, SHAPE, 10);
    const graph = analyze(model);
    const scores = scoreGroups(model, 'group-norm', { seed: 1 }, graph);
    const o = { minUnits: 2, roundTo: 8, roundToAdaptive: true, maxRatio: 0.95 };
    const base = modelCost(model).flops;
    for (const f of [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]) {
      const { plan, flopsRemoved } = await planForFlops(model, graph, scores, f, 'global', o);
      expect(flopsRemoved).toBeGreaterThanOrEqual(f);
      expect(flopsRemoved).toBeLessThanOrEqual(f + GLOBAL_OVERSHOOT);
      const pruned = await pruneModel(model, plan, graph);
      expect(1 - modelCost(pruned).flops / base).toBeCloseTo(flopsRemoved, 6);
      pruned.dispose();
    }
    const loose = await planForFlops(model, graph, scores, 0.2, 'global', o, 0.05); // another tolerance is honoured
    expect(loose.flopsRemoved).toBeGreaterThanOrEqual(0.2);
    expect(loose.flopsRemoved).toBeLessThanOrEqual(0.25);
    expect((await planForFlops(model, graph, scores, 0.2, 'global', o, Infinity)).flopsRemoved).toBeGreaterThan(0.25);
    expect(await planForFlops(model, graph, scores, -0.2, 'global', o)).toEqual({ plan: {}, flopsRemoved: 0 });
    // a schedule lands in its last round only: an earlier one keeps the plain prefix (overshoot taken off by later rounds)
    const policy: PruningPolicy = {
      criterion: 'group-norm',
      scope: 'global',
      schedule: 'linear',
      stepRatio: 0.2,
      targetFlopsReduction: 0.5,
      rounds: 5,
      minUnits: 2,
      maxLayerRatio: 0.95,
      roundTo: 'auto',
      protect: [],
      expectedRecovery: 0.7,
      sensitivitySamples: 100,
    };
    const removedBy = async (plan: Record<string, number[]>) => {
      const m = await pruneModel(model, plan, graph);
      const r = 1 - modelCost(m).flops / base;
      m.dispose();
      return r;
    };
    const ctx = { model, graph, scores, baselineFlops: async () => base };
    const round1 = await planRound(policy, { ...ctx, round: 1 });
    expect(round1.metrics.flopsFractionToRemove).toBeCloseTo(0.1, 9); // recorded: status says why a round whose goal is ≤ 0 prunes nothing
    const first = await removedBy(round1.plan);
    expect(first).toBeCloseTo((await planForFlops(model, graph, scores, 0.1, 'global', o, Infinity)).flopsRemoved, 9);
    expect(first).toBeGreaterThan(0.1 + GLOBAL_OVERSHOOT);
    const last = await removedBy((await planRound(policy, { ...ctx, round: 1, scheduleRound: 5 })).plan);
    expect(last).toBeGreaterThanOrEqual(0.5);
    expect(last).toBeLessThanOrEqual(0.5 + GLOBAL_OVERSHOOT);
    // ... but never past the schedule's target: round 1 of 3 towards 0.15 (goal 0.05), where the prefix takes a conv1 channel
    const short = { ...policy, targetFlopsReduction: 0.15, rounds: 3 };
    expect((await planForFlops(model, graph, scores, 0.05, 'global', o, Infinity)).flopsRemoved).toBeGreaterThan(0.15 + GLOBAL_OVERSHOOT);
    const early = await removedBy((await planRound(short, { ...ctx, round: 1 })).plan);
    expect(early).toBeGreaterThanOrEqual(0.05);
    expect(early).toBeLessThanOrEqual(0.15 + GLOBAL_OVERSHOOT);
    model.dispose();
  });

  it('planForFlops reaches a FLOPs target (local and global) and schedules follow their curves', async () => {
    const model = buildZooModel('resnet8', 1, SHAPE, 10);
    const graph = analyze(model);
    const scores = scoreGroups(model, 'l1', { seed: 1 }, graph);
    for (const scope of ['local', 'global'] as const) {
      const { plan, flopsRemoved } = await planForFlops(model, graph, scores, 0.5, scope, { minUnits: 2 });
      expect(flopsRemoved).toBeGreaterThanOrEqual(0.5);
      expect(flopsRemoved).toBeLessThan(0.6);
      const pruned = await pruneModel(model, plan, graph);
      expect(1 - modelCost(pruned).flops / modelCost(model).flops).toBeCloseTo(flopsRemoved, 6);
      pruned.dispose();
    }
    expect([1, 2, 3].map((r) => scheduledReduction('linear', 0.6, r, 3))).toEqual([0.2, 0.4, 0.6].map((v) => expect.closeTo(v, 9)));
    expect(scheduledReduction('one-shot', 0.6, 1, 3)).toBe(0.6);
    const agp = [1, 2, 3].map((r) => scheduledReduction('agp', 0.6, r, 3));
    expect(agp[0]).toBeGreaterThan(0.4); // cubic: most of it early
    expect(agp[2]).toBeCloseTo(0.6, 9);
  });
});
