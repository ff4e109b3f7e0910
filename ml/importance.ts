// Importance of every channel of every prunable group (higher = more important). A group's score
// sums its members' (all producers coupled by residual adds), so coupled layers decide together.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { gather, type Split } from './data';
import { targetTensor, taskLoss, taskOf } from './task';
import { analyze, RULES, type Graph, type Group } from './graph';
import { rng } from './random';
import { channelNorms, groupPenaltyOf } from './recipe';

export { CRITERIA, type Criterion } from './catalog';
import type { Criterion } from './catalog';
import { ModelError } from '../core/errors';

/** The user's model has a structure this step cannot handle (bad input). */
export class ImportanceError extends ModelError {
  override name = 'ImportanceError';
}

/** Which weight of a producer holds its output channels, and on which axis (the support matrix's first `out` slice). */
function outputKernelOf(layer: tfl.layers.Layer): { index: number; axis: number } {
  const [index, axis] = RULES[layer.getClassName()].out![0];
  return { index, axis };
}

/** Rows = output channels (on `axis`), columns = that channel's incoming weights. */
function channelRows(kernel: tf.Tensor, axis: number): Float32Array[] {
  const n = kernel.shape[axis];
  const inner = kernel.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const data = kernel.dataSync() as Float32Array;
  const per = data.length / n;
  const rows = Array.from({ length: n }, () => new Float32Array(per));
  const fill = new Int32Array(n);
  for (let i = 0; i < data.length; i++) {
    const c = Math.floor(i / inner) % n;
    rows[c][fill[c]++] = data[i];
  }
  return rows;
}

/**
 * L1 / L2 norm of each filter (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017).
 * FPGM: distance of each filter to all others; filters near the geometric median are redundant
 * (He et al., "Filter Pruning via Geometric Median", CVPR 2019).
 */
function weightScores(rows: Float32Array[], criterion: 'l1' | 'l2' | 'fpgm'): number[] {
  if (criterion === 'l1') return rows.map((r) => r.reduce((a, v) => a + Math.abs(v), 0));
  if (criterion === 'l2') return rows.map((r) => Math.sqrt(r.reduce((a, v) => a + v * v, 0)));
  return rows.map((r, j) => {
    let sum = 0;
    for (let k = 0; k < rows.length; k++) {
      if (k === j) continue;
      let d = 0;
      for (let i = 0; i < r.length; i++) d += (r[i] - rows[k][i]) ** 2;
      sum += Math.sqrt(d);
    }
    return sum;
  });
}

/** |γ| of the batch norms carrying the group (Liu et al., "Network Slimming", ICCV 2017). */
function bnScores(model: tfl.LayersModel, group: Group): number[] {
  const bns = group.followers.map((f) => model.getLayer(f)).filter((l) => l.getClassName() === 'BatchNormalization');
  const out = new Array(group.size).fill(0);
  for (const bn of bns) {
    const cfg = bn.getConfig() as { scale?: boolean };
    if (cfg.scale === false) throw new ImportanceError(`criterion "bn": batch norm "${bn.name}" has no scale (γ)`);
    const gamma = bn.getWeights()[0].dataSync();
    if (gamma.length !== group.size) continue; // carries a concatenation: not this group's channels alone
    for (let i = 0; i < group.size; i++) out[i] += Math.abs(gamma[i]);
  }
  return out;
}

/**
 * First-order Taylor on the weights (Molchanov et al., "Importance Estimation for Neural Network
 * Pruning", CVPR 2019): per channel, (Σ over its weights of w · ∂L/∂w)², summed over batches; L is
 * the task's loss (ml/task.ts), the one training uses.
 */
function taylorScores(model: tfl.LayersModel, graph: Graph, data: Split, batches: number, batchSize: number): Record<string, number[]> {
  const inputShape = (model.inputs[0].shape as Array<number | null>).slice(1).map((d) => d ?? 1);
  // the loss training uses (the campaign's task; softmax cross-entropy on logits for a classifier without a softmax)
  const task = taskOf(model, data.task);
  const producers = graph.groups.flatMap((g) => g.producers.map((p) => ({ g, layer: model.getLayer(p) })));
  const kernels = producers.map(({ layer }) => outputKernelOf(layer));
  const vars = producers.map(({ layer }, k) => layer.weights[kernels[k].index].read() as tf.Variable);
  const acc = producers.map(({ g }) => new Float64Array(g.size));
  for (let b = 0; b < batches; b++) {
    const start = (b * batchSize) % Math.max(1, data.n - batchSize);
    const n = Math.min(batchSize, data.n - start);
    const batch = gather(data, null, start, start + n, task.units);
    tf.tidy(() => {
      const xs = tf.tensor(batch.x, [n, ...inputShape]);
      const ys = targetTensor(task, n, batch.y, batch.t);
      const { grads } = tf.variableGrads(() => taskLoss(task, model.apply(xs, { training: false }) as tf.Tensor, ys), vars);
      vars.forEach((v, k) => {
        const axis = kernels[k].axis;
        let contrib = tf.mul(v, grads[v.name]);
        if (axis !== v.shape.length - 1) contrib = tf.transpose(contrib, [...v.shape.keys()].filter((d) => d !== axis).concat(axis)); // channels last
        const per = tf.sum(tf.reshape(contrib, [-1, v.shape[axis]]), 0).dataSync();
        for (let i = 0; i < per.length; i++) acc[k][i] += per[i] * per[i];
      });
    });
  }
  const out: Record<string, number[]> = {};
  producers.forEach(({ g }, k) => {
    const s = (out[g.name] ??= new Array(g.size).fill(0));
    for (let i = 0; i < g.size; i++) s[i] += acc[k][i];
  });
  return out;
}

function sumOverProducers(model: tfl.LayersModel, g: Group, criterion: 'l1' | 'l2' | 'fpgm'): number[] {
  const s = new Array(g.size).fill(0);
  for (const p of g.producers) {
    const layer = model.getLayer(p);
    const { index, axis } = outputKernelOf(layer);
    const per = weightScores(channelRows(layer.getWeights()[index], axis), criterion);
    for (let i = 0; i < g.size; i++) s[i] += per[i];
  }
  return s;
}

export interface ScoreOptions {
  /** told about every choice the criterion made on its own (e.g. bn on a group without batch norm) */
  onNote?: (note: string) => void;
  seed: number;
  /** calibration data for "taylor" (a few batches of the validation split) */
  calibration?: Split;
  calibrationBatches?: number;
  batchSize?: number;
}

/** Scores every prunable group's channels by one criterion. */
export function scoreGroups(model: tfl.LayersModel, criterion: Criterion, opts: ScoreOptions, graph: Graph = analyze(model)): Record<string, number[]> {
  if (criterion === 'taylor') {
    if (!opts.calibration) throw new ImportanceError('criterion "taylor" needs calibration data');
    return taylorScores(model, graph, opts.calibration, opts.calibrationBatches ?? 8, opts.batchSize ?? 64);
  }
  if (criterion === 'group-norm') return groupNormScores(model, graph);
  const random = rng(opts.seed);
  const out: Record<string, number[]> = {};
  for (const g of graph.groups) {
    if (criterion === 'random') {
      out[g.name] = Array.from({ length: g.size }, () => random());
    } else if (criterion === 'bn' && g.followers.some((f) => model.getLayer(f).getClassName() === 'BatchNormalization')) {
      out[g.name] = bnScores(model, g);
    } else if (criterion === 'bn') {
      // a group with no batch norm (e.g. a dense head) has no γ: ranked by L1 instead, and said so
      opts.onNote?.(`criterion "bn": group "${g.name}" has no batch norm; ranked by l1`);
      out[g.name] = sumOverProducers(model, g, 'l1');
    } else {
      out[g.name] = sumOverProducers(model, g, criterion);
    }
  }
  return out;
}

/**
 * The group norm ‖W_{g,k}‖₂ of each channel: the L2 norm over every slice pruning would remove with
 * it — the producers' output kernels and biases, the followers' per-channel weights, the consumers'
 * input slices (trainable weights; the same W_{g,k} the sparsity penalty of ml/recipe.ts pushes
 * down). DepGraph's group-level importance (Fang et al., "DepGraph: Towards Any Structural Pruning",
 * CVPR 2023, §3.3; Torch-Pruning's GroupNormImportance with p = 2): with the penalty on, the
 * channels it weakened are the ones this criterion removes.
 */
function groupNormScores(model: tfl.LayersModel, graph: Graph): Record<string, number[]> {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const p = groupPenaltyOf(model, vars, graph, { strength: 0, growth: 0 });
  const norms = channelNorms(
    p,
    vars.map((v) => v.dataSync()),
  );
  const out: Record<string, number[]> = {};
  let base = 0;
  for (const g of graph.groups) {
    out[g.name] = Array.from(norms.subarray(base, base + g.size));
    base += g.size;
  }
  return out;
}
