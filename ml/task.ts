// The task's loss and metric on tensors (the rules are in task-spec.ts). Training (train.ts, every
// training thread), evaluation and the Taylor criterion (importance.ts) all take their loss from
// `taskLoss`, so a logits classifier is trained, scored and ranked with the same softmax
// cross-entropy.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { PASS_THROUGH, resolveTask, type OutputInfo, type Task, type TaskSpec } from './task-spec';

export * from './task-spec';

type AnyLayer = tfl.layers.Layer & { inboundNodes?: Array<{ inboundLayers: tfl.layers.Layer[] }> };

function activationOfLayer(l: tfl.layers.Layer): string {
  if (l.getClassName() === 'Softmax') return 'softmax';
  const a = (l.getConfig() as { activation?: unknown }).activation;
  return typeof a === 'string' ? a : 'linear';
}

/** A loaded model's outputs, as resolveTask reads them (the same rules as outputsOfTopology). */
export function outputsOfModel(model: tfl.LayersModel): OutputInfo[] {
  return model.outputs.map((out) => {
    let l = out.sourceLayer as AnyLayer;
    for (let guard = 0; guard < model.layers.length; guard++) {
      const cls = l.getClassName();
      const passes = PASS_THROUGH.has(cls) || (cls === 'Activation' && activationOfLayer(l) === 'linear');
      const ins = l.inboundNodes?.[0]?.inboundLayers ?? [];
      if (!passes || ins.length !== 1) break;
      l = ins[0] as AnyLayer;
    }
    const shape = (out.shape as Array<number | null>).slice(1);
    // a nested model as the last layer: its own output decides
    const nested = l as unknown as tfl.LayersModel;
    if (Array.isArray(nested.outputs) && Array.isArray(nested.layers)) {
      const inner = outputsOfModel(nested);
      if (inner.length === 1) return { name: out.sourceLayer.name, decidedBy: inner[0].decidedBy, activation: inner[0].activation, shape };
    }
    return { name: out.sourceLayer.name, decidedBy: l.name, activation: activationOfLayer(l), shape };
  });
}

/** The model's task under the campaign's `task` (default classification). @throws ModelError (task-spec.ts resolveTask) */
export function taskOf(model: tfl.LayersModel, spec?: TaskSpec): Task {
  return resolveTask(outputsOfModel(model), spec);
}

/**
 * The task's training targets for a batch: one-hot classes [n, units] (classification) or the float
 * targets [n, units] (regression, multilabel).
 */
export function targetTensor(task: Task, n: number, y: ArrayLike<number>, t?: Float32Array): tf.Tensor2D {
  if (task.type === 'classification') return tf.tidy(() => tf.oneHot(tf.tensor1d(Int32Array.from(y), 'int32'), task.units) as tf.Tensor2D);
  if (!t) throw new Error(`${task.type}: the split has no float targets`);
  return tf.tensor2d(t, [n, task.units]);
}

/**
 * Mean loss of a batch: softmax cross-entropy (classification; from logits with a numerically stable
 * log-softmax, else of the probabilities clipped to [1e-7, 1] as Keras does), mean squared error
 * (regression), mean sigmoid binary cross-entropy over labels (multilabel; from logits:
 * max(z,0) − z·y + log(1 + e^−|z|), else of probabilities clipped to [1e-7, 1 − 1e-7]).
 * `out` and `target`: [n, units].
 */
export function taskLoss(task: Task, out: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    if (task.type === 'regression') return tf.mean(tf.squaredDifference(out, target)) as tf.Scalar;
    if (task.type === 'classification') {
      const logp = task.outputs === 'logits' ? tf.logSoftmax(out) : tf.log(tf.clipByValue(out, 1e-7, 1));
      return tf.neg(tf.mean(tf.sum(tf.mul(target, logp), -1))) as tf.Scalar;
    }
    if (task.outputs === 'logits') {
      const z = out;
      return tf.mean(tf.add(tf.sub(tf.relu(z), tf.mul(z, target)), tf.log1p(tf.exp(tf.neg(tf.abs(z)))))) as tf.Scalar;
    }
    const p = tf.clipByValue(out, 1e-7, 1 - 1e-7);
    return tf.neg(tf.mean(tf.add(tf.mul(target, tf.log(p)), tf.mul(tf.sub(1, target), tf.log(tf.sub(1, p)))))) as tf.Scalar;
  });
}

/** Sums over a split that give the task's metric (see scoreOf). */
export interface MetricSums {
  n: number;
  lossSum: number;
  /** classification: correct top-1; multilabel: correct labels */
  hits: number;
  /** regression: Σ|e| and Σe² over all units; Σt and Σt² per unit */
  absErr: number;
  sqErr: number;
  tSum: number[];
  tSqSum: number[];
}

export const emptySums = (): MetricSums => ({ n: 0, lossSum: 0, hits: 0, absErr: 0, sqErr: 0, tSum: [], tSqSum: [] });

/** Adds one batch's outputs [n, units] and targets to the sums. */
export async function addBatch(task: Task, sums: MetricSums, out: tf.Tensor, target: tf.Tensor): Promise<void> {
  const n = out.shape[0];
  const parts = tf.tidy(() => {
    const loss = tf.mul(taskLoss(task, out, target), n);
    if (task.type === 'classification') return [loss, tf.sum(tf.cast(tf.equal(tf.argMax(out, -1), tf.argMax(target, -1)), 'float32'))];
    if (task.type === 'multilabel') {
      const predicted = task.outputs === 'logits' ? tf.greater(out, 0) : tf.greater(out, 0.5);
      return [loss, tf.sum(tf.cast(tf.equal(tf.cast(predicted, 'float32'), tf.round(target)), 'float32'))];
    }
    const e = tf.sub(out, target);
    return [loss, tf.scalar(0), tf.sum(tf.abs(e)), tf.sum(tf.square(e)), tf.sum(target, 0), tf.sum(tf.square(target), 0)];
  });
  const v = await Promise.all(parts.map(async (t) => Array.from(await t.data())));
  tf.dispose(parts);
  sums.n += n;
  sums.lossSum += v[0][0];
  sums.hits += v[1][0];
  if (task.type === 'regression') {
    sums.absErr += v[2][0];
    sums.sqErr += v[3][0];
    v[4].forEach((x, u) => (sums.tSum[u] = (sums.tSum[u] ?? 0) + x));
    v[5].forEach((x, u) => (sums.tSqSum[u] = (sums.tSqSum[u] ?? 0) + x));
  }
}

/**
 * The task's score, higher is better, reported as `accuracy`: top-1 accuracy (classification),
 * per-label accuracy (multilabel), R² = 1 − SS_res / SS_tot with SS_tot summed over units about
 * each unit's own mean (regression, scikit-learn's "variance_weighted"; can be negative; 0 when the
 * targets have no variance and the error is not 0). Also the mean loss and, for
 * regression, the mean absolute error per unit.
 */
export function scoreOf(task: Task, s: MetricSums): { accuracy: number; loss: number; mae?: number } {
  const loss = s.n > 0 ? s.lossSum / s.n : 0;
  if (task.type === 'classification') return { accuracy: s.n > 0 ? s.hits / s.n : 0, loss };
  const cells = s.n * Math.max(1, task.units);
  if (task.type === 'multilabel') return { accuracy: cells > 0 ? s.hits / cells : 0, loss };
  let ssTot = 0;
  s.tSum.forEach((t, u) => (ssTot += s.tSqSum[u] - (t * t) / s.n));
  const r2 = ssTot > 0 ? 1 - s.sqErr / ssTot : s.sqErr === 0 ? 1 : 0;
  return { accuracy: r2, loss, mae: cells > 0 ? s.absErr / cells : 0 };
}
