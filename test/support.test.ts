// Every layer accounted for (issue 11 §2) and right costs (§6): the support matrix (ml/support.ts)
// on the cases of ../shared/cases (copied into test/fixtures/cases: 02 batch-norm axis lists, 08
// separable/depthwise, 10 Conv1D) and on our own variants of each class, with hand-counted MACs.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCampaignFile } from '../campaign/load';
import {
  analyze,
  blockedLines,
  initBackend,
  layerMacs,
  loadModel,
  modelCost,
  planLocal,
  planRound,
  pruneModel,
  saveInt8,
  scoreGroups,
  silenceRemoved,
  SUPPORT,
  supportProblems,
  topologyProblems,
  trainingProblems,
  type Graph,
} from '../ml';
import { formatStatus } from '../cli/progress';
import type { CampaignStatus } from '../db';

const CASES = path.join(__dirname, 'fixtures', 'cases');

beforeAll(async () => {
  await initBackend();
});

const data = (t: tf.Tensor) => t.dataSync() as Float32Array;
function worstRelative(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  const scale = Math.max(1e-6, ...Array.from(b, Math.abs));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
}

/** Gives batch norms non-trivial statistics so equivalence checks mean something. */
function randomiseBatchNorms(model: tfl.LayersModel, seed: number): void {
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    l.setWeights(
      l
        .getWeights()
        .map((w, k) =>
          k === l.getWeights().length - 1 ? tf.randomUniform(w.shape, 0.5, 2, 'float32', seed + k) : tf.randomNormal(w.shape, 0, 0.3, 'float32', seed + k),
        ),
    );
  }
}

/** Prunes half of every group (l1) and checks the pruned model equals the original with the removed channels silenced. */
async function prunesExactly(
  model: tfl.LayersModel,
  inputShape: number[],
  ratio = 0.5,
): Promise<{ graph: Graph; pruned: tfl.LayersModel; keep: Record<string, number[]> }> {
  const graph = analyze(model);
  const keep = planLocal(graph, scoreGroups(model, 'l1', { seed: 1 }, graph), ratio, { minUnits: 1 });
  expect(Object.keys(keep).length).toBeGreaterThan(0);
  const pruned = await pruneModel(model, keep, graph);
  const x = tf.randomUniform([3, ...inputShape], 0, 1, 'float32', 7);
  const a = data(pruned.predict(x) as tf.Tensor);
  silenceRemoved(model, keep, graph);
  const b = data(model.predict(x) as tf.Tensor);
  expect(worstRelative(a, b)).toBeLessThan(1e-4);
  return { graph, pruned, keep };
}

/** Every layer with weights is in a group (prunable or blocked-and-listed) or listed as blocked itself. */
function everyWeightedLayerAccountedFor(model: tfl.LayersModel, graph: Graph): void {
  const members = new Set([...graph.groups, ...graph.blockedGroups].flatMap((g) => [...g.producers, ...g.followers]));
  const listed = new Set(graph.blocked.map((b) => b.name));
  for (const g of graph.blockedGroups) expect(listed.has(g.name)).toBe(true);
  for (const l of model.layers)
    if (l.countParams() > 0) expect(members.has(l.name) || listed.has(l.name), `layer ${l.name} (${l.getClassName()}) is unaccounted for`).toBe(true);
}

/** A model rebuilt from its own topology with one layer's config fields replaced (what a converter writes). */
async function withConfig(model: tfl.LayersModel, layer: string, patch: Record<string, unknown>): Promise<tfl.LayersModel> {
  const topology = model.toJSON(null, false) as { config: { layers: Array<{ config: Record<string, unknown> }> } };
  Object.assign(topology.config.layers.find((l) => l.config.name === layer)!.config, patch);
  const m = await tfl.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
  m.setWeights(model.getWeights());
  return m;
}

describe('case 02: batch-norm axis written as a list or a positive index', () => {
  it('the tf-keras CNN ("axis": [3]) prunes exactly like its axis -1 control, and nothing but the classifier is blocked', async () => {
    const model = await loadModel(path.join(CASES, '02-tfkeras-batchnorm-axis', 'model'));
    const control = await loadModel(path.join(CASES, '02-tfkeras-batchnorm-axis', 'control-model'));
    expect(supportProblems(model)).toEqual([]);
    const g = analyze(model);
    const gc = analyze(control);
    expect(g.groups).toEqual(gc.groups);
    expect(g.groups.map((x) => [x.name, x.size, x.followers])).toEqual([
      ['conv1', 16, ['bn1']],
      ['conv2', 32, ['bn2']],
    ]);
    expect(g.blocked.map((b) => b.name)).toEqual(['out']);
    const keep = planLocal(g, scoreGroups(model, 'l1', { seed: 1 }, g), 0.5, { minUnits: 4 });
    expect(keep).toEqual(planLocal(gc, scoreGroups(control, 'l1', { seed: 1 }, gc), 0.5, { minUnits: 4 }));
    const a = await pruneModel(model, keep, g);
    const b = await pruneModel(control, keep, gc);
    expect(a.getWeights().map((w) => w.shape)).toEqual(b.getWeights().map((w) => w.shape));
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 3);
    expect(Array.from(data(a.predict(x) as tf.Tensor))).toEqual(Array.from(data(b.predict(x) as tf.Tensor)));
    expect(modelCost(a).flops).toBe(modelCost(b).flops);
    expect(modelCost(a).flops).toBeLessThan(modelCost(model).flops / 2);
  });

  it('our variant: a Dense-BN MLP with "axis": [1] on 2-D prunes exactly like -1; a batch norm over a spatial axis is refused naming the layer and field', async () => {
    const input = tfl.input({ shape: [6] });
    let x = tfl.layers.dense({ units: 8, useBias: false, name: 'fc1' }).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers.batchNormalization({ name: 'bn1' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.reLU({ name: 'relu1' }).apply(x) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'out' }).apply(x) as tfl.SymbolicTensor;
    const control = tfl.model({ inputs: input, outputs: out });
    randomiseBatchNorms(control, 5);
    for (const axis of [[1], 1]) {
      const model = await withConfig(control, 'bn1', { axis });
      expect(supportProblems(model)).toEqual([]);
      const g = analyze(model);
      expect(g.groups).toEqual(analyze(control).groups);
      expect(g.groupByName('fc1')!.followers).toEqual(['bn1']);
      await prunesExactly(model, [6]);
    }

    const img = tfl.input({ shape: [5, 5, 2] });
    const c = tfl.layers.conv2d({ filters: 4, kernelSize: 3, name: 'conv' }).apply(img) as tfl.SymbolicTensor;
    const bn = tfl.layers.batchNormalization({ axis: 1, name: 'bn_h' }).apply(c) as tfl.SymbolicTensor;
    const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(bn) as tfl.SymbolicTensor;
    const wrong = tfl.model({ inputs: img, outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(gap) as tfl.SymbolicTensor });
    expect(supportProblems(wrong)).toEqual([expect.stringMatching(/^layer "bn_h" \(BatchNormalization\): axis 1: on a rank-4 input is not its channel axis/)]);
    expect(analyze(wrong).blocked.map((b) => b.name)).toContain('conv');
  });
});

describe('case 08: separable and depthwise convolutions', () => {
  const dir = path.join(CASES, '08-separable-depthwise');

  it('FLOPs 1 261 152 before (hand-counted), 611 820 after the campaign’s pruning (one-shot, half the FLOPs, l1, local)', async () => {
    const { spec } = loadCampaignFile(path.join(dir, 'campaign.yaml'));
    const model = await loadModel(spec.model);
    // 28×28 'same' convs; sep2 has stride 2 (14×14); biases are not counted
    const hand = {
      stem: 28 * 28 * 3 * 3 * 1 * 8,
      sep1: 28 * 28 * (3 * 3 * 8 + 8 * 16),
      dw_m1: 28 * 28 * 3 * 3 * 16,
      pw: 28 * 28 * 16 * 16,
      sep2: 14 * 14 * (3 * 3 * 16 + 16 * 24),
      out: 24 * 10,
    };
    const cost = modelCost(model);
    expect(Object.fromEntries(cost.layers.filter((l) => l.macs > 0).map((l) => [l.name, l.macs]))).toEqual(hand);
    expect(cost.flops).toBe(1_261_152);
    expect(supportProblems(model)).toEqual([]);

    const graph = analyze(model);
    expect(graph.groups.map((g) => [g.name, g.size, g.followers])).toEqual([
      ['stem', 8, []],
      ['sep1', 16, ['dw_m1']],
      ['pw', 16, []],
      ['sep2', 24, []],
    ]);
    const scores = scoreGroups(model, spec.pruning.criterion, { seed: spec.seed * 7919 + 1 }, graph);
    const decided = await planRound(spec.pruning, { model, graph, scores, round: 1, baselineFlops: async () => cost.flops });
    const pruned = await pruneModel(model, decided.plan, graph);
    expect(Object.fromEntries(Object.entries(decided.plan).map(([k, v]) => [k, v.length]))).toEqual({ stem: 5, sep1: 10, pw: 10, sep2: 15 });
    expect(modelCost(pruned).flops).toBe(611_820);
    expect(modelCost(pruned).flops).toBe(
      2 * (28 * 28 * 9 * 5 + 28 * 28 * (9 * 5 + 5 * 10) + 28 * 28 * 9 * 10 + 28 * 28 * 10 * 10 + 14 * 14 * (9 * 10 + 10 * 15) + 15 * 10),
    );
  });

  it('depth_multiplier 2 is handled: each input channel’s two outputs go together, FLOPs hand-counted, the pruned model equals the silenced original', async () => {
    const model = await loadModel(path.join(dir, 'model-dm2'));
    expect(supportProblems(model)).toEqual([]);
    expect(modelCost(model).macs).toBe(
      28 * 28 * 9 * 8 + 28 * 28 * (9 * 8 + 8 * 16) + 28 * 28 * 9 * 16 * 2 + 28 * 28 * 32 * 16 + 14 * 14 * (9 * 16 + 16 * 24) + 240,
    );
    randomiseBatchNorms(model, 3);
    const { graph, pruned, keep } = await prunesExactly(model, [28, 28, 1]);
    expect(graph.groupByName('sep1')!.followers).toEqual(['bn1', 'dw_m2']);
    const dw = pruned.getLayer('dw_m2').getWeights();
    expect(dw[0].shape).toEqual([3, 3, keep.sep1.length, 2]);
    expect(dw[1].shape).toEqual([keep.sep1.length * 2]);
    expect(pruned.getLayer('pw').getWeights()[0].shape).toEqual([1, 1, keep.sep1.length * 2, keep.pw.length]);
    everyWeightedLayerAccountedFor(model, graph);
    // the wasm backend trains any multiplier (test/wasm-kernels.test.ts), not a dilated depthwise conv: refused at once there, naming the layer
    expect(trainingProblems(model, 'wasm')).toEqual([]);
    const dilated = tfl.sequential({
      layers: [
        tfl.layers.depthwiseConv2d({ inputShape: [7, 7, 2], kernelSize: 3, dilationRate: 2, name: 'dw_d2' }),
        tfl.layers.flatten({}),
        tfl.layers.dense({ units: 2 }),
      ],
    });
    expect(trainingProblems(dilated, 'wasm')).toEqual([
      expect.stringMatching(/^layer "dw_d2" \(DepthwiseConv2D\): dilation_rate \[2,2\]: the wasm backend cannot train/),
    ]);
    expect(trainingProblems(model, 'tensorflow')).toEqual([]);
  });

  it('our variant: depth_multiplier 3 on a depthwise conv between a separable and a dilated conv prunes exactly; per-channel int8 puts a depthwise kernel’s scales on axis 2', async () => {
    const input = tfl.input({ shape: [9, 9, 2] });
    let x = tfl.layers.conv2d({ filters: 4, kernelSize: 1, name: 'stem' }).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers.separableConv2d({ filters: 2, kernelSize: 3, padding: 'same', name: 'sep' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 3, padding: 'same', name: 'dw' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.conv2d({ filters: 5, kernelSize: 3, dilationRate: 2, name: 'dil' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(x) as tfl.SymbolicTensor });
    // dilated 3×3 at rate 2 covers 5×5: 9 → 5 outputs per side; the depthwise conv makes 2 × 3 channels
    expect(modelCost(model).layers.map((l) => l.macs)).toEqual([0, 81 * 2 * 4, 81 * (9 * 4 + 4 * 2), 81 * 9 * 2 * 3, 25 * 9 * 6 * 5, 0, 5 * 2]);
    expect(supportProblems(model)).toEqual([]);
    const { pruned, keep } = await prunesExactly(model, [9, 9, 2]);
    expect(keep.sep).toHaveLength(1);
    expect(pruned.getLayer('dw').getWeights()[0].shape).toEqual([3, 3, 1, 3]);
    expect(pruned.getLayer('dil').getWeights()[0].shape).toEqual([3, 3, 3, keep.dil.length]);

    // a separable conv's depth_multiplier is lost when tfjs-layers saves it: refused at once, naming the layer and field
    const sepM = tfl.sequential({
      layers: [
        tfl.layers.separableConv2d({ inputShape: [5, 5, 2], filters: 3, kernelSize: 3, depthMultiplier: 2, name: 'sep_m2' }),
        tfl.layers.flatten({}),
        tfl.layers.dense({ units: 2 }),
      ],
    });
    expect(supportProblems(sepM)).toEqual([expect.stringMatching(/^layer "sep_m2" \(SeparableConv2D\): depth_multiplier 2: tfjs-layers 4.22 does not save/)]);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-int8-'));
    try {
      saveInt8(model, dir);
      const specs = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).weightsManifest[0].weights as Array<{
        name: string;
        shape: number[];
        prunewise?: { axis: number; scales: number[] };
      }>;
      const axes = Object.fromEntries(specs.filter((s) => s.prunewise).map((s) => [s.name, [s.prunewise!.axis, s.prunewise!.scales.length]]));
      expect(axes).toEqual({
        'stem/kernel': [3, 4],
        'sep/depthwise_kernel': [2, 4],
        'sep/pointwise_kernel': [3, 2],
        'dw/depthwise_kernel': [2, 2],
        'dil/kernel': [3, 5],
        'out/kernel': [1, 2],
      });
      // each depthwise channel gets its own scale: its largest weight maps to ±127 exactly
      const back = await loadModel(dir);
      const w = model.getLayer('dw').getWeights()[0].arraySync() as number[][][][];
      const q = back.getLayer('dw').getWeights()[0].arraySync() as number[][][][];
      for (let c = 0; c < 2; c++) {
        const vals = w.flatMap((r) => r.flatMap((col) => col[c]));
        const maxAbs = Math.max(...vals.map(Math.abs));
        const qv = q.flatMap((r) => r.flatMap((col) => col[c]));
        for (let i = 0; i < vals.length; i++) expect(Math.abs(qv[i] - vals[i])).toBeLessThanOrEqual(maxAbs / 127 / 2 + 1e-7);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('case 10: Conv1D', () => {
  it('is a prunable group (not ignored), FLOPs 70 208 hand-counted, and prunes exactly', async () => {
    const model = await loadModel(path.join(CASES, '10-conv1d', 'model'));
    expect(supportProblems(model)).toEqual([]);
    // Conv1D(16, 3) over 28 rows of 28 features: 26 positions × 3 × 28 × 16; Dense 16 → 10
    expect(modelCost(model).flops).toBe(2 * (26 * 3 * 28 * 16 + 16 * 10));
    expect(modelCost(model).flops).toBe(70_208);
    const { graph, pruned, keep } = await prunesExactly(model, [28, 28]);
    expect(graph.groups.map((g) => [g.name, g.size])).toEqual([['c1d', 16]]);
    expect(keep.c1d).toHaveLength(8);
    expect(modelCost(pruned).flops).toBe(2 * (26 * 3 * 28 * 8 + 8 * 10));
    everyWeightedLayerAccountedFor(model, graph);
  });
});

describe('every layer accounted for: our variants of each class', () => {
  it('Dense on a 3-D input (per row) is a group and costs in·out per row; PReLU carries its channels; Flatten repeats them', async () => {
    const input = tfl.input({ shape: [5, 7] });
    let x = tfl.layers.dense({ units: 4, name: 'row_fc' }).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers
      .prelu({ name: 'prelu', alphaInitializer: tfl.initializers.randomUniform({ minval: 0.1, maxval: 0.5, seed: 2 }) })
      .apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.flatten({ name: 'flatten' }).apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 3, activation: 'softmax', name: 'out' }).apply(x) as tfl.SymbolicTensor });
    expect(modelCost(model).macs).toBe(5 * 7 * 4 + 5 * 4 * 3);
    expect(analyze(model).groupByName('row_fc')!.followers).toEqual(['prelu']);
    const { pruned, keep } = await prunesExactly(model, [5, 7]);
    expect(modelCost(pruned).macs).toBe(5 * 7 * keep.row_fc.length + 5 * keep.row_fc.length * 3);
    expect(pruned.getLayer('prelu').getWeights()[0].shape).toEqual([5, keep.row_fc.length]);
  });

  it('Conv2DTranspose is a group (output channels on kernel axis 2) and costs k·k·in·out per input position', async () => {
    const input = tfl.input({ shape: [6, 6, 3] });
    let x = tfl.layers.conv2dTranspose({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'up' }).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers.conv2d({ filters: 5, kernelSize: 1, name: 'pw' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(x) as tfl.SymbolicTensor });
    expect(layerMacs(model.getLayer('up'))).toBe(6 * 6 * 3 * 3 * 3 * 4);
    expect(layerMacs(model.getLayer('pw'))).toBe(12 * 12 * 4 * 5);
    const { pruned, keep } = await prunesExactly(model, [6, 6, 3]);
    expect(pruned.getLayer('up').getWeights()[0].shape).toEqual([3, 3, keep.up.length, 3]);
    // scored by its own output channels (axis 2), not its inputs
    const scores = scoreGroups(model, 'l1', { seed: 1 });
    expect(scores.up).toHaveLength(4);
  });

  it('Conv3D is a group; LSTM keeps its units (blocked, with the reason) while the Dense feeding it is pruned; its MACs are T·(in + u)·4u', async () => {
    const v = tfl.input({ shape: [4, 5, 5, 2] });
    let y = tfl.layers.conv3d({ filters: 3, kernelSize: 3, name: 'c3d' }).apply(v) as tfl.SymbolicTensor;
    y = tfl.layers.flatten({ name: 'flat3' }).apply(y) as tfl.SymbolicTensor;
    const vol = tfl.model({ inputs: v, outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(y) as tfl.SymbolicTensor });
    expect(layerMacs(vol.getLayer('c3d'))).toBe(2 * 3 * 3 * 27 * 2 * 3);
    await prunesExactly(vol, [4, 5, 5, 2]);

    const input = tfl.input({ shape: [5, 3] });
    let x = tfl.layers.dense({ units: 4, name: 'd' }).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers.lstm({ units: 6, name: 'lstm' }).apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(x) as tfl.SymbolicTensor });
    expect(layerMacs(model.getLayer('lstm'))).toBe(5 * (4 + 6) * 4 * 6);
    const g = analyze(model);
    expect(g.groups.map((x) => x.name)).toEqual(['d']);
    expect(g.blocked).toContainEqual({ name: 'lstm', reason: expect.stringMatching(/^layer "lstm" \(LSTM\): LSTM units are not pruned/) });
    everyWeightedLayerAccountedFor(model, g);
    const { pruned, keep } = await prunesExactly(model, [5, 3]);
    expect(pruned.getLayer('lstm').getWeights()[0].shape).toEqual([keep.d.length, 24]);
  });

  it('a concatenation along a spatial axis joins its inputs like Add; a Reshape that splits channels blocks, with the reason', async () => {
    const input = tfl.input({ shape: [4, 4, 2] });
    const a = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'a' }).apply(input) as tfl.SymbolicTensor;
    const b = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'b' }).apply(input) as tfl.SymbolicTensor;
    const cat = tfl.layers.concatenate({ axis: 1, name: 'rows' }).apply([a, b]) as tfl.SymbolicTensor;
    const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(cat) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(gap) as tfl.SymbolicTensor });
    expect(analyze(model).groups.map((g) => g.producers)).toEqual([['a', 'b']]);
    await prunesExactly(model, [4, 4, 2]);

    const i2 = tfl.input({ shape: [3, 3, 1] });
    let x = tfl.layers.conv2d({ filters: 4, kernelSize: 1, name: 'c' }).apply(i2) as tfl.SymbolicTensor;
    x = tfl.layers.reshape({ targetShape: [3, 3, 2, 2], name: 'split' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.flatten({ name: 'flat' }).apply(x) as tfl.SymbolicTensor;
    const m2 = tfl.model({ inputs: i2, outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(x) as tfl.SymbolicTensor });
    expect(analyze(m2).blocked).toContainEqual({ name: 'c', reason: 'layer "split" (Reshape): reshapes the channel axis (4 channels into a last axis of 2)' });
  });

  it('refused at submit, one line naming the layer and field: channels_first, None spatial sizes, shared layers, nested models, grouped convs in the topology', async () => {
    const cf = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [1, 8, 8], filters: 4, kernelSize: 3, dataFormat: 'channelsFirst', name: 'conv_cf' }),
        tfl.layers.flatten({ name: 'flat' }),
        tfl.layers.dense({ units: 2, name: 'out' }),
      ],
    });
    expect(supportProblems(cf)).toEqual([expect.stringMatching(/^layer "conv_cf" \(Conv2D\): data_format channels_first: .*channels_last/)]);

    const any = tfl.input({ shape: [null, null, 1] });
    const c = tfl.layers.conv2d({ filters: 4, kernelSize: 3, name: 'conv' }).apply(any) as tfl.SymbolicTensor;
    const fcn = tfl.model({
      inputs: any,
      outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(tfl.layers.globalAveragePooling2d({}).apply(c)) as tfl.SymbolicTensor,
    });
    expect(supportProblems(fcn)).toEqual([expect.stringMatching(/^input "\w+": shape \[None, None, 1\] has None dimensions: give the Input a fixed size/)]);

    const inp = tfl.input({ shape: [6, 6, 1] });
    const shared = tfl.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', name: 'shared' });
    const s1 = shared.apply(inp) as tfl.SymbolicTensor;
    const s2 = shared.apply(tfl.layers.cropping2D({ cropping: 0 }).apply(inp)) as tfl.SymbolicTensor;
    const add = tfl.layers.add({}).apply([s1, s2]) as tfl.SymbolicTensor;
    const sm = tfl.model({
      inputs: inp,
      outputs: tfl.layers.dense({ units: 2 }).apply(tfl.layers.globalAveragePooling2d({}).apply(add)) as tfl.SymbolicTensor,
    });
    expect(supportProblems(sm)).toEqual([expect.stringMatching(/^layer "shared" \(Conv2D\): called at 2 places \(shared weights\)/)]);

    const inner = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 3, name: 'inner_fc' })], name: 'inner' });
    const i3 = tfl.input({ shape: [4] });
    const nested = tfl.model({ inputs: i3, outputs: tfl.layers.dense({ units: 2 }).apply(inner.apply(i3)) as tfl.SymbolicTensor });
    expect(supportProblems(nested)).toEqual([expect.stringMatching(/^layer "inner" \(Sequential\): a nested model is not supported/)]);

    const topology = JSON.parse(fs.readFileSync(path.join(CASES, '08-separable-depthwise', 'model', 'model.json'), 'utf8')).modelTopology;
    expect(topologyProblems(topology)).toEqual([]);
    topology.model_config.config.layers[5].config.groups = 2; // pw
    expect(topologyProblems(topology)).toEqual([expect.stringMatching(/^layer "pw" \(Conv2D\): groups 2: grouped convolutions are not supported/)]);
    topology.model_config.config.layers[6].class_name = 'Lambda'; // relu2
    expect(topologyProblems(topology)[1]).toMatch(/^layer "relu2" \(Lambda\): Lambda layers hold Python code, which tfjs cannot run/);
  });

  it('a model in which nothing can be pruned says so, with every reason', () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.flatten({ inputShape: [4, 4, 1] }),
        tfl.layers.layerNormalization({ name: 'ln' }),
        tfl.layers.dense({ units: 3, activation: 'softmax', name: 'out' }),
      ],
    });
    const problems = supportProblems(m);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^model: nothing can be pruned: out: layer "out" \(Dense\): softmax mixes channels; ln: layer "ln" \(LayerNormalization\): normalises across channels/,
    );
  });

  it('every zoo-style layer with weights is in a group or listed; blocked lines name group and reason', async () => {
    const m = await loadModel(path.join(CASES, '02-tfkeras-batchnorm-axis', 'model'));
    const g = analyze(m);
    everyWeightedLayerAccountedFor(m, g);
    expect(blockedLines(g)).toEqual(['out: layer "out" (Dense): softmax mixes channels']);
  });
});

describe('the support matrix', () => {
  it('the README lists every class of the matrix with its support, and admitted classes with weights have a cost rule', () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const missing = Object.entries(SUPPORT)
      .filter(([cls, rule]) => !new RegExp(`^\\| \`${cls}\` \\| ${rule.support} \\|`, 'm').test(readme))
      .map(([cls, rule]) => `${cls} (${rule.support})`);
    expect(missing).toEqual([]);
  });

  it('status prints the prunable groups and what pruning leaves whole, and says plainly when nothing can be pruned', () => {
    const s = {
      id: 'c1',
      name: 'x',
      state: 'completed',
      error: null,
      seed: 1,
      specHash: 'abc',
      backend: 'tensorflow',
      tfjsVersion: '4.22.0',
      prunewiseVersion: '0',
      baseline: { accuracy: 0.9, params: 10, flops: 20, bytes: 40, latencyMs: 1, groups: 2, blockedGroups: 1 },
      baselineStage: null,
      blocked: ['out: layer "out" (Dense): softmax mixes channels'],
      runs: [],
    } as unknown as CampaignStatus;
    expect(formatStatus(s)).toContain('  pruning: 2 prunable groups, 1 left whole:\n    out: layer "out" (Dense): softmax mixes channels');
    expect(formatStatus({ ...s, baseline: { ...s.baseline!, groups: 0 } })).toContain('pruning: NOTHING can be pruned');
    const round = (channelsRemoved: number, more: object = {}) => ({
      round: 1,
      state: 'completed',
      objective: 1,
      stages: {},
      metrics: { accuracy: 0.9, flops: 20, channelsRemoved, ...more },
    });
    const withRound = (n: number, more?: object) =>
      formatStatus({
        ...s,
        runs: [{ id: 'c1/run-1', k: 1, weights: { accuracy: 1 }, state: 'completed', error: null, rounds: [round(n, more)] }],
      } as CampaignStatus);
    expect(withRound(0)).toContain('round 1 completed (NOTHING pruned: see "pruning" above)');
    expect(withRound(3)).not.toContain('NOTHING');
    // a FLOPs schedule whose earlier rounds went past this round's goal
    expect(withRound(0, { flopsFractionToRemove: -0.007 })).toContain(
      'round 1 completed (NOTHING pruned: earlier rounds already removed what the FLOPs schedule asks by this round)',
    );
    expect(withRound(0, { flopsFractionToRemove: 0.1 })).toContain('(NOTHING pruned: see "pruning" above)');
  });
});
