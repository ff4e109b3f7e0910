// Training recipes: what a training run optimises beyond the task's loss, and how fast. Learning-rate
// schedules with warm-up, label smoothing, knowledge distillation from a teacher (soft targets), and a
// growing group-norm sparsity penalty on the prunable groups. train.ts uses them; every piece is a
// pure function of (options, step, weights, data), so training stays deterministic and a resume
// continues bit for bit: nothing here carries state across steps.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { LR_SCHEDULES, type LrScheduleName } from './catalog';
import { gather, type Split } from './data';
import { RULES, type ChannelMap, type Graph } from './graph';
import { rng } from './random';
import { taskLoss, taskOf, type Task } from './task';

export { LR_SCHEDULES, type LrScheduleName };

/** A learning-rate schedule over a training's whole budget of optimizer steps. */
export interface LrSchedule {
  /** constant (default), cosine or one-cycle */
  kind: LrScheduleName;
  /**
   * fraction of the budget (0 ≤ warmup < 1) spent ramping up. constant and cosine: linear from
   * lr/W… to lr over the first ⌈warmup · totalSteps⌉ steps (Goyal et al. 2017); one-cycle: the
   * rising phase's share (pct_start; default 0.3 when 0 or unset)
   */
  warmup?: number;
}

/** One-cycle's constants, as PyTorch's OneCycleLR defaults (div_factor 25, final_div_factor 1e4, pct_start 0.3). */
export const ONE_CYCLE = { divFactor: 25, finalDivFactor: 1e4, pctStart: 0.3 } as const;

/**
 * The learning rate of optimizer step `step` (0-based) of `totalSteps`, for peak rate `lr`:
 * - warm-up (constant, cosine): lr · (step + 1) / W for step < W = ⌈warmup · totalSteps⌉ — the gradual
 *   warm-up of Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour" (2017), §2.2;
 * - constant: lr after the warm-up;
 * - cosine: lr · ½ (1 + cos(π · p)), p = (step − W) / (totalSteps − W), annealed to 0 by the last
 *   step — Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017, Eq. 5
 *   (η_min = 0, one cycle, no restart);
 * - one-cycle: cosine from lr / 25 up to lr over pct_start (= warmup, default 0.3) of the steps, then cosine
 *   down to lr / (25 · 10⁴) — Smith & Topin, "Super-Convergence" (2019), with PyTorch OneCycleLR's
 *   defaults (anneal_strategy "cos"; no momentum cycling: Adam's β₁ stays 0.9).
 * @throws Error for a warm-up outside [0, 1) or an unknown kind
 */
export function learningRateAt(lr: number, schedule: LrSchedule | undefined, step: number, totalSteps: number): number {
  const kind = schedule?.kind ?? 'constant';
  const warmup = schedule?.warmup ?? 0;
  if (!(warmup >= 0 && warmup < 1)) throw new Error(`schedule warmup: ${warmup} is not a fraction in [0, 1)`);
  const total = Math.max(1, totalSteps);
  if (kind === 'one-cycle') {
    const { divFactor, finalDivFactor, pctStart } = ONE_CYCLE;
    const up = Math.max(1, Math.round((warmup > 0 ? warmup : pctStart) * total) - 1);
    const initial = lr / divFactor;
    const final = initial / finalDivFactor;
    const cos = (from: number, to: number, p: number) => to + ((from - to) / 2) * (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, p))));
    if (step <= up) return cos(initial, lr, step / up);
    return cos(lr, final, (step - up) / Math.max(1, total - 1 - up));
  }
  if (kind !== 'constant' && kind !== 'cosine') throw new Error(`schedule: "${kind}" is not one of ${LR_SCHEDULES.join(', ')}`);
  const w = Math.ceil(warmup * total);
  if (step < w) return (lr * (step + 1)) / w;
  if (kind === 'constant') return lr;
  const p = (step - w) / Math.max(1, total - w);
  return (lr / 2) * (1 + Math.cos(Math.PI * Math.min(1, p)));
}

/** Knowledge distillation from a teacher model (classification only). */
export interface DistillOptions {
  /** the teacher (e.g. the unpruned baseline): same input and classes as the student; only ever run in inference mode, on the main thread */
  teacher: tfl.LayersModel;
  /** α in [0, 1]: the soft term's share of the loss (1 − α: the hard labels') */
  weight: number;
  /** T > 0: the softmax temperature of both soft distributions */
  temperature: number;
  /**
   * β ≥ 0 of attention transfer (ml/attention.ts; Zagoruyko & Komodakis, ICLR 2017: 1 000): the loss adds β/2 · Σ mean((Q_s − Q_t)²)
   * over the layers before each pooling. Graph mode only (ml/train-graph.ts), with `weight` > 0. Default 0: none. Not a campaign
   * field: in bench:quality's seventh ablation it gave nothing on vgg-small (β 100) or cost accuracy (β 1 000), seed 1 each.
   */
  attention?: number;
}

/** The loss terms a shard's gradient computation needs (sent to every training thread): plain numbers. */
export interface ShardLoss {
  /** ε in [0, 1): label smoothing (classification) */
  labelSmoothing: number;
  /** α in [0, 1]: distillation weight; 0 = no distillation */
  distillWeight: number;
  /** T > 0 */
  temperature: number;
}

export const PLAIN_LOSS: ShardLoss = { labelSmoothing: 0, distillWeight: 0, temperature: 1 };

/** Log-probabilities up to a constant per row ("logits") of a classifier's output [n, K]: the output itself, or log p for probabilities. */
function logitsOf(task: Task, out: tf.Tensor): tf.Tensor {
  return task.outputs === 'logits' ? out : tf.log(tf.clipByValue(out, 1e-7, 1));
}

/**
 * The training loss of a shard (inside the caller's tidy): the task's loss (ml/task.ts taskLoss) on
 * targets smoothed as y·(1 − ε) + ε / K (label smoothing: Szegedy et al., "Rethinking the Inception
 * Architecture for Computer Vision", CVPR 2016, §7), and with distillation
 *   (1 − α) · L_hard + α · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)),
 * averaged over the shard's examples — Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
 * Network" (2015), §2: soft targets at temperature T, the soft term scaled by T² so its gradients keep
 * their size as T changes. z_s: the student's logits (log-probabilities when it outputs probabilities),
 * z_t: `teacherLogits` [n, K] (the same rule). `out`, `target`: [n, K].
 */
export function recipeLoss(task: Task, out: tf.Tensor, target: tf.Tensor, loss: ShardLoss, teacherLogits?: tf.Tensor): tf.Scalar {
  const eps = loss.labelSmoothing;
  const smooth = eps > 0 && task.type === 'classification' ? tf.add(tf.mul(target, 1 - eps), eps / task.units) : target;
  const hard = taskLoss(task, out, smooth);
  if (!(loss.distillWeight > 0) || !teacherLogits || task.type !== 'classification') return hard;
  const T = loss.temperature;
  const p = tf.softmax(tf.div(teacherLogits, T));
  const logP = tf.logSoftmax(tf.div(teacherLogits, T));
  const logQ = tf.logSoftmax(tf.div(logitsOf(task, out), T));
  const kl = tf.mean(tf.sum(tf.mul(p, tf.sub(logP, logQ)), -1));
  return tf.add(tf.mul(hard, 1 - loss.distillWeight), tf.mul(kl, loss.distillWeight * T * T)) as tf.Scalar;
}

/** @throws Error (one line) when distillation or label smoothing is asked of a task that is not classification, or values are out of range */
export function checkRecipe(task: Task, o: { labelSmoothing?: number; distill?: { weight: number; temperature: number } }): void {
  const not = (what: string, field: string) => new Error(`${field}: ${what} needs a classification task (this model's task is ${task.type}): remove ${field}`);
  if (o.labelSmoothing !== undefined && o.labelSmoothing !== 0) {
    if (!(o.labelSmoothing > 0 && o.labelSmoothing < 1)) throw new Error(`labelSmoothing: ${o.labelSmoothing} is not in [0, 1)`);
    if (task.type !== 'classification') throw not('label smoothing', 'labelSmoothing');
  }
  if (o.distill && o.distill.weight !== 0) {
    if (!(o.distill.weight > 0 && o.distill.weight <= 1)) throw new Error(`distill.weight: ${o.distill.weight} is not in [0, 1]`);
    if (!(o.distill.temperature > 0)) throw new Error(`distill.temperature: ${o.distill.temperature} must be greater than 0`);
    if (task.type !== 'classification') throw not('distillation', 'distill');
  }
}

/**
 * Data augmentation of image batches during training: each example flipped left–right with probability ½
 * (`flip`) and translated by whole pixels, dx and dy each uniform in [−shift, shift], the uncovered border
 * filled with 0 — the "random crop after padding" and "horizontal flip" of Krizhevsky et al., "ImageNet
 * Classification with Deep Convolutional Neural Networks" (NeurIPS 2012) and He et al., "Deep Residual
 * Learning" (CVPR 2016, §4.2: 4-pixel shifts on CIFAR-10). With distillation the teacher scores the same
 * augmented image as the student ("consistent teaching": Beyer et al., "Knowledge Distillation: A Good
 * Teacher is Patient and Consistent", CVPR 2022), so its logits are computed per batch, not cached.
 * Measured in bench:quality (2026-12-06, 10 epochs of fine-tuning, flips and shift 2): −0.6 point on LeNet-5 and −0.4
 * on vgg-small against the same recipe without it (Fashion-MNIST's test images are centred), so no campaign field uses it.
 */
export interface AugmentOptions {
  /** flip each image left–right with probability ½ (only where the classes are mirror-symmetric: clothes, not digits) */
  flip: boolean;
  /** the largest translation in pixels, per axis (0 = none) */
  shift: number;
}

/** @throws Error (one line) when augmentation is asked of a model whose input is not an image [H, W, C], or values are out of range */
export function checkAugment(inputShape: number[], a: AugmentOptions | undefined): void {
  if (!a) return;
  if (inputShape.length !== 3)
    throw new Error(`augment: the model's input [${inputShape.join(', ')}] is not an image [height, width, channels]: remove augment`);
  if (typeof a.flip !== 'boolean') throw new Error(`augment.flip: ${JSON.stringify(a.flip)} is not true or false`);
  const most = Math.min(inputShape[0], inputShape[1]) - 1;
  if (a.shift === undefined) throw new Error(`augment.shift: missing: give the largest shift in whole pixels, 0 to ${most} (0 = none)`);
  if (!(Number.isInteger(a.shift) && a.shift >= 0 && a.shift <= most))
    throw new Error(`augment.shift: ${a.shift} is not a whole number of pixels in [0, ${most}]`);
}

/**
 * Augments `n` images [n, H, W, C] (row-major, NHWC) in place as `a` says, with random draws from `seed`
 * alone (the same seed: the same images). @returns x
 */
export function augmentImages(x: Float32Array, n: number, shape: number[], a: AugmentOptions, seed: number): Float32Array {
  const [H, W, C] = shape;
  const per = H * W * C;
  const src = new Float32Array(per);
  const r = rng(seed);
  for (let i = 0; i < n; i++) {
    const flip = a.flip && r() < 0.5;
    const dx = a.shift > 0 ? Math.floor(r() * (2 * a.shift + 1)) - a.shift : 0;
    const dy = a.shift > 0 ? Math.floor(r() * (2 * a.shift + 1)) - a.shift : 0;
    if (!flip && dx === 0 && dy === 0) continue;
    const img = x.subarray(i * per, (i + 1) * per);
    src.set(img);
    for (let h = 0; h < H; h++) {
      const sh = h - dy;
      for (let w = 0; w < W; w++) {
        const o = (h * W + w) * C;
        let sw = w - dx;
        if (flip && sw >= 0 && sw < W) sw = W - 1 - sw;
        if (sh < 0 || sh >= H || sw < 0 || sw >= W) img.fill(0, o, o + C);
        else for (let c = 0; c < C; c++) img[o + c] = src[(sh * W + sw) * C + c];
      }
    }
  }
  return x;
}

/** The teacher's logits [n·K] for a batch of inputs already gathered (and augmented) `x` [n, …inputShape]. */
export function teacherLogitsOf(teacher: tfl.LayersModel, task: Task, x: Float32Array, n: number): Float32Array {
  const shape = (teacher.inputs[0].shape as Array<number | null>).slice(1).map((d) => d ?? 1);
  const z = tf.tidy(() => logitsOf(task, teacher.apply(tf.tensor(x, [n, ...shape]), { training: false }) as tf.Tensor));
  try {
    return (z.dataSync() as Float32Array).slice();
  } finally {
    z.dispose();
  }
}

/** Examples per teacher forward pass. */
const TEACHER_BATCH = 256;

/**
 * The teacher's logits (log-probabilities when it outputs probabilities) for examples [start, end) of
 * `order` (or the split's own order when null), [n·K] row-major, computed in inference mode in
 * batches of at most TEACHER_BATCH in a fixed cut (so the values are a function of the examples and
 * the cut only). @throws Error when the teacher is not a classifier with the student's classes
 */
export function teacherLogits(teacher: tfl.LayersModel, task: Task, data: Split, order: ArrayLike<number> | null, start: number, end: number): Float32Array {
  const out = new Float32Array((end - start) * task.units);
  for (let s = start; s < end; s += TEACHER_BATCH) {
    const b = gather(data, order, s, Math.min(end, s + TEACHER_BATCH), task.units);
    out.set(teacherLogitsOf(teacher, task, b.x, b.n), (s - start) * task.units);
  }
  return out;
}

/** Checks the teacher can teach this student: a classifier with the same classes. @returns the teacher's task */
export function checkTeacher(teacher: tfl.LayersModel, student: Task, data: Split): Task {
  const t = taskOf(teacher, data.task);
  if (t.type !== 'classification' || t.units !== student.units)
    throw new Error(
      `distill: the teacher (output "${t.output}": ${t.type}, ${t.units} units) must be a classifier with the student's ${student.units} classes`,
    );
  return t;
}

/**
 * A growing group-norm sparsity penalty on the prunable groups. Per channel k of group g its coupled
 * parameters W_{g,k} are every slice pruning would remove with it (ml/prune.ts: the producers' output
 * kernels and biases, the followers' per-channel weights — batch-norm γ and β, depthwise kernels — and
 * the consumers' input slices); trainable weights only. The penalty R = ½ λ(t) Σ_g Σ_k γ_{g,k} ‖W_{g,k}‖²
 * (γ held fixed) has the gradient ∂R/∂w = λ(t) · γ_{g,k} · w for w ∈ W_{g,k} (summed over the channels an
 * element belongs to: a consumer's kernel element is in one of its input channels and one of its output
 * channels). Training applies it decoupled from Adam's step, as AdamW does weight decay (Loshchilov &
 * Hutter, "Decoupled Weight Decay Regularization", ICLR 2019): w ← w − η_t · ∂R/∂w at the step's
 * starting weights, η_t the step's learning rate — added to Adam's gradient instead, the per-parameter
 * normalisation would turn any dominant penalty into the same ±η step for every channel and erase γ.
 * With
 *   γ_{g,k} = 2^(α · (n_max − n_k) / (n_max − n_min))   (n_k = ‖W_{g,k}‖₂; 1 when the group's norms are all equal)
 * — DepGraph's group-level sparse training, Fang et al., "DepGraph: Towards Any Structural Pruning",
 * CVPR 2023, §3.3 (stronger on the group's weaker channels, so what pruning removes carries little;
 * α = 4 and the added-gradient form as in Torch-Pruning's GroupNormPruner.regularize) — and a strength
 * that grows with training,
 *   λ(t) = strength + growth · t / stepsPerEpoch
 * — the growing regularisation of Wang et al., "Neural Pruning via Growing Regularization", ICLR 2021
 * (GReg: λ raised by δλ every K_u iterations; here continuously, `growth` per epoch). Memoryless: a
 * function of the weights and the step, so a resume needs nothing more than the checkpoint's weights.
 */
export interface SparsityOptions {
  /** λ at step 0 (≥ 0) */
  strength: number;
  /** added to λ per epoch of steps (≥ 0) */
  growth: number;
  /** α ≥ 0: how much more the group's weaker channels are pushed (default 4; 0 = the same for every channel) */
  alpha?: number;
  /** the graph of the model being trained (default analyze(model)); its prunable groups are penalised */
  graph?: Graph;
  /** layer names whose groups are left alone (a campaign's pruning.protect: never removed, so never pushed) */
  protect?: string[];
}

/** The per-channel index of every element of the trainable variables the penalty touches. */
export interface GroupPenalty {
  /**
   * per variable (train order): maps from each element to its channel's id in 0..channels−1, or −1 — one map for the
   * channels the layer reads (input slices) and one for those it produces (output slices), as a consumer's kernel element
   * belongs to both; [] = untouched variable
   */
  channelOf: Int32Array[][];
  /**
   * the same maps compactly, for graph mode (ml/py/train_graph.py builds channelOf from them): per variable, each marking
   * in order — the slot, the axis and, per index along that axis, the channel id or −1 (a later marking of a slot wins
   * where its id is ≥ 0)
   */
  slices: Array<Array<{ slot: 'in' | 'out'; axis: number; chan: Int32Array }>>;
  /** per channel id: its group's index (groups in graph order) */
  groupOf: Int32Array;
  channels: number;
  groups: number;
  strength: number;
  growth: number;
  alpha: number;
}

/**
 * Maps the model's prunable groups onto its trainable variables (`vars`, train order) for the penalty.
 * @throws Error when a strength or growth is negative or not finite
 */
export function groupPenaltyOf(model: tfl.LayersModel, vars: tf.Variable[], graph: Graph, o: SparsityOptions): GroupPenalty {
  for (const [k, v] of [
    ['strength', o.strength],
    ['growth', o.growth],
    ['alpha', o.alpha ?? 4],
  ] as const)
    if (!(Number.isFinite(v) && v >= 0)) throw new Error(`sparsity.${k}: ${v} must be a number ≥ 0`);
  const protect = new Set(o.protect ?? []);
  const groups = graph.groups.filter((g) => ![...g.producers, ...g.followers].some((l) => protect.has(l)));
  const groupIndex = new Map(groups.map((g, j) => [graph.root(g.id), j]));
  const base: number[] = [];
  let channels = 0;
  for (const g of groups) {
    base.push(channels);
    channels += g.size;
  }
  const groupOf = new Int32Array(channels);
  groups.forEach((g, j) => groupOf.fill(j, base[j], base[j] + g.size));
  const channelOfRef = (ref: { g: number; i: number } | null): number => {
    if (!ref) return -1;
    const j = groupIndex.get(graph.root(ref.g));
    return j === undefined ? -1 : base[j] + ref.i;
  };
  const varIndex = new Map(vars.map((v, k) => [v, k]));
  const channelOf: Int32Array[][] = vars.map(() => []);
  const slices: GroupPenalty['slices'] = vars.map(() => []);
  const maps = new Map<string, Int32Array>();
  const mark = (w: tf.Variable, axis: number, slot: 'in' | 'out', chanAt: (q: number) => number) => {
    const k = varIndex.get(w);
    if (k === undefined) return; // not trainable (moving statistics)
    const shape = w.shape;
    const a = axis < 0 ? axis + shape.length : axis;
    const inner = shape.slice(a + 1).reduce((x, y) => x * y, 1);
    const n = shape[a];
    let map = maps.get(`${k}/${slot}`);
    if (!map) {
      map = new Int32Array(w.size).fill(-1);
      maps.set(`${k}/${slot}`, map);
      channelOf[k].push(map);
    }
    const chan = Int32Array.from({ length: n }, (_, q) => chanAt(q));
    slices[k].push({ slot, axis: a, chan });
    for (let i = 0; i < map.length; i++) {
      const c = chan[Math.floor(i / inner) % n];
      if (c >= 0) map[i] = c;
    }
  };
  for (const layer of model.layers) {
    const rule = RULES[layer.getClassName()];
    const inMap: ChannelMap | undefined = graph.inputMap.get(layer.name);
    if (!rule || !inMap) continue;
    const weights = layer.weights.map((w) => w.read() as tf.Variable);
    const m = (layer as unknown as { depthMultiplier?: number }).depthMultiplier ?? 1;
    // input slices: the channels this layer reads (a follower's own per-channel weights, a consumer's input rows)
    for (const [wi, axis, expanded] of rule.in ?? []) {
      if (weights[wi]) mark(weights[wi], axis, 'in', (q) => channelOfRef(inMap[expanded ? Math.floor(q / m) : q] ?? null));
    }
    const g = graph.producerGroup.get(layer.name);
    const j = g === undefined ? undefined : groupIndex.get(graph.root(g));
    if (j !== undefined)
      for (const [wi, axis] of rule.out ?? []) {
        if (weights[wi]) mark(weights[wi], axis, 'out', (q) => base[j] + q);
      }
  }
  return { channelOf, slices, groupOf, channels, groups: groups.length, strength: o.strength, growth: o.growth, alpha: o.alpha ?? 4 };
}

/** λ(t) of the penalty (see SparsityOptions). */
export function penaltyStrengthAt(p: Pick<GroupPenalty, 'strength' | 'growth'>, step: number, stepsPerEpoch: number): number {
  return p.strength + (p.growth * step) / Math.max(1, stepsPerEpoch);
}

/** The per-channel L2 norms ‖W_{g,k}‖₂ (channel ids as in `p`) of the current weights (one array per variable, train order). */
export function channelNorms(p: GroupPenalty, weights: ArrayLike<number>[]): Float64Array {
  const sq = new Float64Array(p.channels);
  p.channelOf.forEach((ms, k) => {
    const w = weights[k];
    for (const map of ms) for (let i = 0; i < map.length; i++) if (map[i] >= 0) sq[map[i]] += w[i] * w[i];
  });
  for (let c = 0; c < sq.length; c++) sq[c] = Math.sqrt(sq[c]);
  return sq;
}

/**
 * The penalty's gradient at `step` for the current weights: one array per variable (train order),
 * null where the penalty does not touch it. All-null when λ(step) = 0.
 */
export function penaltyGradients(p: GroupPenalty, weights: ArrayLike<number>[], step: number, stepsPerEpoch: number): Array<Float32Array | null> {
  const lambda = penaltyStrengthAt(p, step, stepsPerEpoch);
  if (!(lambda > 0)) return weights.map(() => null);
  const norms = channelNorms(p, weights);
  const lo = new Float64Array(p.groups).fill(Infinity);
  const hi = new Float64Array(p.groups).fill(-Infinity);
  for (let c = 0; c < p.channels; c++) {
    const g = p.groupOf[c];
    if (norms[c] < lo[g]) lo[g] = norms[c];
    if (norms[c] > hi[g]) hi[g] = norms[c];
  }
  const scale = new Float64Array(p.channels);
  for (let c = 0; c < p.channels; c++) {
    const g = p.groupOf[c];
    const span = hi[g] - lo[g];
    scale[c] = lambda * (span > 0 ? 2 ** ((p.alpha * (hi[g] - norms[c])) / span) : 1);
  }
  return p.channelOf.map((ms, k) => {
    if (ms.length === 0) return null;
    const w = weights[k];
    const out = new Float32Array(w.length);
    for (const map of ms) for (let i = 0; i < map.length; i++) if (map[i] >= 0) out[i] += scale[map[i]] * w[i];
    return out;
  });
}
