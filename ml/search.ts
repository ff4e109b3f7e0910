// Width search: which channel count each group should end at, chosen by scoring whole candidate
// sub-networks rather than one group at a time (ml/allocate.ts). After EagleEye (Li et al., "EagleEye:
// Fast Sub-net Evaluation for Efficient Neural Network Pruning", ECCV 2020): random layer-wise
// pruning ratios under the FLOPs constraint, each candidate pruned from the current weights by the
// round's importance scores, its batch-norm statistics re-estimated on training images ("adaptive
// batch norm": without it the accuracy of an unfine-tuned candidate barely predicts the fine-tuned
// one), then scored by accuracy on other training images. The best candidate's widths are where the
// rounds go; each round takes the same fraction of the remaining way to them (planTowards).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Split } from './data';
import { gather } from './data';
import { modelCost } from './cost';
import type { Graph } from './graph';
import { isProtected, keepCount, plannedFlops, planForFlops, smallestPlanRemoving, topIndices, type PlanOptions } from './plan';
import { pruneModel, type KeepPlan } from './prune';
import { rng } from './random';
import { evaluate, inputShapeOf, yieldToEventLoop } from './train';

export interface WidthSearchOptions {
  /** fraction of the model's FLOPs to remove (0–1); candidates remove at least this and at least what the local uniform plan removes */
  fraction: number;
  /** random candidates scored besides the local uniform plan (EagleEye draws 1 000 on ImageNet; tens suffice for small nets) */
  candidates: number;
  /** seeds the candidates' ratios (same seed, same candidates) */
  seed: number;
  plan: PlanOptions;
  /** images whose statistics become each candidate's batch-norm moving mean and variance */
  bnSplit: Split;
  /** images each candidate is scored on (training images: never the test split) */
  evalSplit: Split;
  /** a candidate may remove up to this much more than the target (0–1; default 0.01): the rest are redrawn */
  tolerance?: number;
  /** called after each candidate drawn and each scored (progress, heartbeats) */
  onProgress?: (phase: 'draw' | 'score', done: number, total: number) => void | Promise<void>;
}

export interface WidthCandidate {
  /** channels each group keeps, by group name (groups absent keep all) */
  widths: Record<string, number>;
  flopsRemoved: number;
  /** accuracy (0–1) on evalSplit after adaptive batch norm, no fine-tuning */
  accuracy: number;
  /** the local uniform plan (candidate 0) */
  uniform: boolean;
}

export interface WidthSearchResult {
  best: WidthCandidate;
  /** every candidate scored, in the order drawn (the uniform plan first) */
  candidates: WidthCandidate[];
  /** the FLOPs fraction candidates had to remove (the target, or more where the uniform plan's rounding overshoots) */
  fraction: number;
  /**
   * false when the caps (maxRatio, minUnits, protected groups) keep even the uniform plan short of the target: then no random
   * draw reaches it either and the result is the uniform plan, removing less than asked
   */
  reached: boolean;
}

const widthsOf = (graph: Graph, plan: KeepPlan): Record<string, number> =>
  Object.fromEntries(graph.groups.map((g) => [g.name, plan[g.name]?.length ?? g.size]));

/**
 * Sets every batch norm's moving mean and variance to the statistics of its input over `data` (inference mode, layer
 * after layer, so each sees the ones before it already re-estimated): "adaptive batch norm", EagleEye §3.2. The
 * variance is the population variance over the batch and spatial positions, as a batch norm's moving average estimates it.
 * Models whose batch norms normalise an axis other than the last are left as they are for those layers.
 */
export async function adaptBatchNorm(model: tfl.LayersModel, data: Split, batchSize = 256): Promise<number> {
  const bns = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
  const shape = inputShapeOf(model);
  let adapted = 0;
  for (const bn of bns) {
    const axis = (bn.getConfig() as { axis?: number }).axis ?? -1;
    const input = bn.input as tfl.SymbolicTensor;
    if (Array.isArray(input) || (axis !== -1 && axis !== input.shape.length - 1)) continue;
    const probe = tfl.model({ inputs: model.inputs, outputs: input });
    const c = input.shape[input.shape.length - 1] as number;
    const sum = new Float64Array(c);
    const sq = new Float64Array(c);
    let count = 0;
    for (let start = 0; start < data.n; start += batchSize) {
      const b = gather(data, null, start, Math.min(data.n, start + batchSize));
      const [s1, s2] = tf.tidy(() => {
        const x = probe.apply(tf.tensor(b.x, [b.n, ...shape]), { training: false }) as tf.Tensor;
        const flat = x.reshape([-1, c]);
        count += flat.shape[0];
        return [flat.sum(0), flat.square().sum(0)];
      });
      const [a1, a2] = [s1.dataSync(), s2.dataSync()];
      tf.dispose([s1, s2]);
      await yieldToEventLoop();
      for (let i = 0; i < c; i++) {
        sum[i] += a1[i];
        sq[i] += a2[i];
      }
    }
    const mean = new Float32Array(c);
    const variance = new Float32Array(c);
    for (let i = 0; i < c; i++) {
      mean[i] = sum[i] / count;
      variance[i] = Math.max(0, sq[i] / count - (sum[i] / count) ** 2);
    }
    // names may carry a suffix where tfjs made them unique (bn1/moving_mean_3): the last path part's stem decides
    const stem = (v: tfl.LayerVariable) => v.originalName.split('/').at(-1)!.replace(/_\d+$/, '');
    const mm = bn.weights.find((v) => stem(v) === 'moving_mean');
    const mv = bn.weights.find((v) => stem(v) === 'moving_variance');
    if (!mm || !mv) throw new Error(`adaptive batch norm: layer ${bn.name} has no moving_mean / moving_variance`);
    tf.tidy(() => {
      (mm.read() as tf.Variable).assign(tf.tensor(mean, [c]));
      (mv.read() as tf.Variable).assign(tf.tensor(variance, [c]));
    });
    adapted++;
  }
  return adapted;
}

/**
 * The plan that takes each group `s` (0–1) of the way from its current size to `widths[group]` (the
 * channel count it should end at), rounding as PlanOptions says, keeping the highest `scores`. s = 1
 * gives exactly `widths` (the rounding is not applied to them: they were drawn rounded).
 */
export function planTowards(graph: Graph, scores: Record<string, number[]>, widths: Record<string, number>, s: number, o: PlanOptions): KeepPlan {
  const plan: KeepPlan = {};
  for (const g of graph.groups) {
    const target = widths[g.name];
    if (target === undefined || target >= g.size || isProtected(graph, g.name, o)) continue;
    const n = s >= 1 ? target : Math.max(target, keepCount(g.size, Math.floor((g.size - target) * s), { ...o, maxRatio: 1 }));
    if (n < g.size) plan[g.name] = topIndices(scores[g.name], n);
  }
  return plan;
}

/**
 * The smallest step towards `widths` (planTowards' s, by bisection) that removes at least `fraction` of the model's
 * FLOPs; s = 1 when even the whole way removes less (the last round: the widths themselves).
 */
export async function planForFlopsTowards(
  model: tfl.LayersModel,
  graph: Graph,
  scores: Record<string, number[]>,
  widths: Record<string, number>,
  fraction: number,
  o: PlanOptions,
): Promise<{ plan: KeepPlan; flopsRemoved: number; step: number }> {
  const base = modelCost(model).flops || 1;
  const removed = async (p: KeepPlan) => 1 - (await plannedFlops(model, graph, p)) / base;
  const full = planTowards(graph, scores, widths, 1, o);
  const top = { plan: full, flopsRemoved: await removed(full) };
  if (top.flopsRemoved <= fraction) return { ...top, step: 1 };
  const b = await smallestPlanRemoving((x) => planTowards(graph, scores, widths, x, o), removed, 1, top, fraction, 14);
  return { plan: b.plan, flopsRemoved: b.flopsRemoved, step: b.x };
}

/**
 * A round's plan towards `widths`: the last round (`last`) the whole way, any other just far enough for `goal` (a fraction
 * of the current model's FLOPs; planForFlopsTowards). `step`: how far (0–1) it goes.
 */
export async function planRoundTowards(
  model: tfl.LayersModel,
  graph: Graph,
  scores: Record<string, number[]>,
  widths: Record<string, number>,
  goal: number,
  last: boolean,
  o: PlanOptions,
): Promise<{ plan: KeepPlan; step: number }> {
  if (last) return { plan: planTowards(graph, scores, widths, 1, o), step: 1 };
  const { plan, step } = await planForFlopsTowards(model, graph, scores, widths, Math.max(0, goal), o);
  return { plan, step };
}

/**
 * Draws `candidates` random width allocations that remove `fraction` of the FLOPs (each group's ratio proportional to a
 * uniform draw, scaled by bisection to the target, capped by maxRatio, rounded), scores each and the local uniform plan
 * by adaptive-batch-norm accuracy, and returns the best (ties: the earlier; the uniform plan comes first).
 * Costs per candidate one pruned copy, one pass over bnSplit per batch norm and one over evalSplit; yields to the event loop
 * between candidates and batches (the stage's heartbeats and the CLI's timers keep running).
 * @throws Error when candidates < 0 or fraction is outside (0, 1)
 */
export async function searchWidths(model: tfl.LayersModel, graph: Graph, scores: Record<string, number[]>, o: WidthSearchOptions): Promise<WidthSearchResult> {
  if (!(Number.isInteger(o.candidates) && o.candidates >= 0)) throw new Error(`width search: candidates ${o.candidates} must be an integer ≥ 0`);
  if (!(o.fraction > 0 && o.fraction < 1)) throw new Error(`width search: fraction ${o.fraction} must be in (0, 1)`);
  const tolerance = o.tolerance ?? 0.01;
  const uniform = await planForFlops(model, graph, scores, o.fraction, 'local', o.plan);
  const fraction = Math.max(o.fraction, uniform.flopsRemoved);
  const base = modelCost(model).flops || 1;
  const removed = async (p: KeepPlan) => 1 - (await plannedFlops(model, graph, p)) / base;
  const open = graph.groups.filter((g) => !isProtected(graph, g.name, o.plan));
  const cap = o.plan.maxRatio ?? 0.9;
  const draw = rng(o.seed);
  const planOf = (u: number[], x: number): KeepPlan => {
    const plan: KeepPlan = {};
    open.forEach((g, j) => {
      const n = keepCount(g.size, Math.floor(g.size * Math.min(cap, x * u[j])), o.plan);
      if (n < g.size) plan[g.name] = topIndices(scores[g.name], n);
    });
    return plan;
  };
  const plans: Array<{ plan: KeepPlan; flopsRemoved: number; uniform: boolean }> = [{ ...uniform, uniform: true }];
  const seen = new Set([JSON.stringify(widthsOf(graph, uniform.plan))]);
  for (let tries = 0; plans.length < o.candidates + 1 && tries < 20 * (o.candidates + 1); tries++) {
    // each draw builds a dozen architectures without a macrotask in between: let timers and heartbeats run, rejected draws too
    await yieldToEventLoop();
    await o.onProgress?.('draw', plans.length, o.candidates + 1);
    const u = open.map(() => 0.05 + 0.95 * draw());
    const hi = cap / Math.min(...u);
    const most = planOf(u, hi);
    const top = { plan: most, flopsRemoved: await removed(most) };
    if (top.flopsRemoved < fraction) continue; // the caps stop this draw short of the target
    const found = await smallestPlanRemoving((x) => planOf(u, x), removed, hi, top, fraction, 12);
    if (found.flopsRemoved > fraction + tolerance) continue;
    const key = JSON.stringify(widthsOf(graph, found.plan));
    if (seen.has(key)) continue;
    seen.add(key);
    plans.push({ plan: found.plan, flopsRemoved: found.flopsRemoved, uniform: false });
  }
  const candidates: WidthCandidate[] = [];
  for (const p of plans) {
    const pruned = await pruneModel(model, p.plan, graph);
    try {
      await adaptBatchNorm(pruned, o.bnSplit);
      const accuracy = (await evaluate(pruned, o.evalSplit)).accuracy;
      candidates.push({ widths: widthsOf(graph, p.plan), flopsRemoved: p.flopsRemoved, accuracy, uniform: p.uniform });
    } finally {
      pruned.dispose();
    }
    await o.onProgress?.('score', candidates.length, plans.length);
  }
  const best = candidates.reduce((a, c) => (c.accuracy > a.accuracy ? c : a), candidates[0]);
  return { best, candidates, fraction, reached: uniform.flopsRemoved >= o.fraction };
}
