// Training, evaluation and latency measurement. Every loop yields to the event loop between
// batches, so a worker's heartbeats keep flowing while it computes, and never leaks tensors.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Split } from './data';
import { FusedAdam, type GradientShard } from './adam';
import { defaultTrainThreads, releaseReplicas, replicasFor, type Replica } from './parallel';
import { shuffledIndices } from './random';

export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function batchArrays(split: Split, idx: ArrayLike<number> | null, start: number, end: number) {
  const size = split.x.length / split.n;
  const n = end - start;
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = idx ? idx[start + i] : start + i;
    x.set(split.x.subarray(j * size, (j + 1) * size), i * size);
    y[i] = split.y[j];
  }
  return { x, y, n };
}

function batchTensors(split: Split, idx: ArrayLike<number> | null, start: number, end: number, inputShape: number[], classes: number) {
  const { x, y, n } = batchArrays(split, idx, start, end);
  return tf.tidy(() => ({
    xs: tf.tensor(x, [n, ...inputShape]),
    ys: tf.oneHot(tf.tensor1d(y, 'int32'), classes),
  }));
}

/** One example's input shape (the model's input without the batch dimension). */
export function inputShapeOf(model: tfl.LayersModel): number[] {
  return (model.inputs[0].shape as Array<number | null>).slice(1).map((d) => d ?? 1);
}

function classesOf(model: tfl.LayersModel): number {
  const out = model.outputs[0].shape;
  return out[out.length - 1] as number;
}

/** Mean categorical cross-entropy of softmax outputs. */
export function crossEntropy(probs: tf.Tensor, ys: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(ys, tf.log(tf.clipByValue(probs, 1e-7, 1))), -1))) as tf.Scalar);
}

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** resume: optimizer steps already done (from a checkpoint) */
  startStep?: number;
  /** save a checkpoint every this many steps (and at every epoch end) */
  checkpointEverySteps?: number;
  onCheckpoint?: (step: number, epoch: number) => Promise<void>;
  /** called after every batch (heartbeat here); may throw to stop (cancellation) */
  onStep?: (step: number, totalSteps: number, loss: number | null) => void | Promise<void>;
  /**
   * threads for data parallelism on the wasm and cpu backends (default: defaultTrainThreads();
   * native backends thread by themselves and always use 1)
   */
  threads?: number;
}

export interface TrainResult {
  steps: number;
  resumedFromStep: number;
  /** mean training loss per epoch (epochs run in this call) */
  epochLoss: Array<[number, number]>;
  samplesPerSecond: number;
  /** threads that trained (1 = this thread alone) */
  threads: number;
}

/**
 * Trains with Adam in a custom loop (deterministic order per seed and epoch, so a resume from
 * step s continues exactly where the lost attempt was). Optimizer moments restart on resume.
 */
export async function train(model: tfl.LayersModel, data: Split, opts: TrainOptions): Promise<TrainResult> {
  const inputShape = inputShapeOf(model);
  const classes = classesOf(model);
  const stepsPerEpoch = Math.ceil(data.n / opts.batchSize);
  const totalSteps = stepsPerEpoch * opts.epochs;
  const startStep = Math.min(opts.startStep ?? 0, totalSteps);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = new FusedAdam(vars, opts.learningRate);
  const backend = tf.getBackend();
  const threads = backend === 'wasm' || backend === 'cpu' ? (opts.threads ?? defaultTrainThreads()) : 1;
  const replicas = threads > 1 ? await replicasFor(model, threads - 1, backend) : [];
  // each thread's share of a batch, adapted to the threads' measured speeds
  const balance = { shares: [] as number[] };
  const epochLoss: Array<[number, number]> = [];
  const t0 = performance.now();
  let samples = 0;
  let step = startStep;
  try {
    for (let epoch = Math.floor(startStep / stepsPerEpoch); epoch < opts.epochs; epoch++) {
      const order = shuffledIndices(data.n, opts.seed * 1000 + epoch);
      let lossSum = 0;
      let lossCount = 0;
      for (let b = step - epoch * stepsPerEpoch; b < stepsPerEpoch; b++) {
        const start = b * opts.batchSize;
        const end = Math.min(data.n, start + opts.batchSize);
        const loss = await dataParallelStep(model, vars, optimizer, replicas, data, order, start, end, inputShape, classes, balance);
        if (loss !== null) {
          lossSum += loss;
          lossCount++;
        }
        samples += end - start;
        step++;
        await opts.onStep?.(step, totalSteps, loss);
        const epochEnd = b === stepsPerEpoch - 1;
        if (opts.onCheckpoint && (epochEnd || (opts.checkpointEverySteps && step % opts.checkpointEverySteps === 0))) {
          await opts.onCheckpoint(step, epoch);
        }
        await yieldToEventLoop();
      }
      if (lossCount > 0) epochLoss.push([epoch + 1, lossSum / lossCount]);
    }
  } finally {
    releaseReplicas(replicas);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { steps: step, resumedFromStep: startStep, epochLoss, samplesPerSecond: seconds > 0 ? samples / seconds : 0, threads };
}

/**
 * One training step: shards [start, end) of `order` over this thread and the replicas (none: the
 * whole batch here) and applies the size-weighted mean of the shards' gradients, which is the
 * full-batch gradient. Returns the loss. Shard sizes follow the threads' measured speeds, so
 * the split (and with it the float summation order and per-shard batch-norm statistics) can
 * differ between runs; the gradient is the same full-batch mean up to rounding.
 */
async function dataParallelStep(
  model: tfl.LayersModel,
  vars: tf.Variable[],
  optimizer: FusedAdam,
  replicas: Replica[],
  data: Split,
  order: Uint32Array | number[],
  start: number,
  end: number,
  inputShape: number[],
  classes: number,
  balance: { shares: number[] },
): Promise<number> {
  const t0 = performance.now();
  const n = end - start;
  const parts = replicas.length + 1;
  if (balance.shares.length !== parts) balance.shares = Array.from({ length: parts }, () => 1 / parts);
  const bounds = [start];
  for (let k = 0, acc = 0; k < parts; k++) {
    acc += balance.shares[k];
    bounds.push(k === parts - 1 ? end : Math.min(end, Math.max(bounds[k] + 1, start + Math.round(acc * n))));
  }
  const sizes = bounds.slice(1).map((b, k) => b - bounds[k]);
  const weights = replicas.length > 0 ? vars.map((v) => v.dataSync() as Float32Array) : [];
  // replicas start first, so they compute while this thread does its own shard
  const pending = replicas.map((r, k) => {
    const { x, y, n: m } = batchArrays(data, order, bounds[k + 1], bounds[k + 2]);
    return r.call({ type: 'step', weights, x, y, n: m, inputShape, classes });
  });
  const own = shardGradients(model, vars, batchArrays(data, order, bounds[0], bounds[1]), inputShape, classes);
  const shards: GradientShard[] = [{ grads: own.grads, weight: sizes[0] }];
  let loss = own.loss * sizes[0];
  const ownMs = performance.now() - t0;
  const replies = await Promise.all(pending);
  replies.forEach((r, k) => {
    if (r.type !== 'grads') throw new Error(`training thread replied ${r.type}`);
    shards.push({ grads: r.grads, weight: sizes[k + 1] });
    loss += r.loss * sizes[k + 1];
  });
  optimizer.apply(shards);
  if (replies.length > 0) {
    // balance: shares proportional to each thread's measured speed (samples per ms), smoothed
    const speeds = [sizes[0] / Math.max(ownMs, 1e-3), ...replies.map((r, k) => sizes[k + 1] / Math.max((r as { ms: number }).ms, 1e-3))];
    const sum = speeds.reduce((a, b) => a + b, 0);
    balance.shares = balance.shares.map((sh, k) => 0.9 * sh + (0.1 * speeds[k]) / sum);
  }
  return loss / n;
}

/**
 * Loss and gradients (one array per variable, in order, each in its own buffer) of one shard:
 * the computation the main thread and every replica thread do per step.
 */
export function shardGradients(
  model: tfl.LayersModel,
  vars: tf.Variable[],
  shard: { x: Float32Array; y: Int32Array; n: number },
  inputShape: number[],
  classes: number,
): { grads: Float32Array[]; loss: number } {
  const { value, grads } = tf.tidy(() => {
    const xs = tf.tensor(shard.x, [shard.n, ...inputShape]);
    const ys = tf.oneHot(tf.tensor1d(shard.y, 'int32'), classes);
    return tf.variableGrads(() => crossEntropy(model.apply(xs, { training: true }) as tf.Tensor, ys), vars);
  });
  // own buffers only: a view into shared memory must never be transferred to a thread (it would be detached)
  const out = vars.map((v) => {
    const g = grads[v.name].dataSync() as Float32Array;
    return g.byteOffset === 0 && g.byteLength === g.buffer.byteLength ? g : g.slice();
  });
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { grads: out, loss };
}

export interface EvalResult {
  accuracy: number;
  loss: number;
  n: number;
}

export async function evaluate(model: tfl.LayersModel, data: Split, batchSize = 256): Promise<EvalResult> {
  const inputShape = inputShapeOf(model);
  const classes = classesOf(model);
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < data.n; start += batchSize) {
    const end = Math.min(data.n, start + batchSize);
    const { xs, ys } = batchTensors(data, null, start, end, inputShape, classes);
    const [c, l] = tf.tidy(() => {
      const probs = model.predict(xs) as tf.Tensor;
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(probs, -1), tf.argMax(ys, -1)), 'float32'));
      return [hits, tf.mul(crossEntropy(probs, ys), end - start)];
    });
    correct += (await c.data())[0];
    lossSum += (await l.data())[0];
    tf.dispose([xs, ys, c, l]);
    await yieldToEventLoop();
  }
  return { accuracy: correct / data.n, loss: lossSum / data.n, n: data.n };
}

/**
 * One inference forward pass, as a deployment would run it: model.apply in inference mode (not
 * predict(), whose batching loop adds ~1.3 ms of slicing and bookkeeping per call on LeNet-5).
 */
/** Inference (training: false) on a batch, inside tf.tidy. */
export function forward(model: tfl.LayersModel, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => model.apply(x, { training: false }) as tf.Tensor);
}
