// Training, evaluation and latency measurement. Every loop yields to the event loop between
// batches, so a worker's heartbeats keep flowing while it computes, and never leaks tensors.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Split } from './data';
import { shuffledIndices } from './random';

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function batchTensors(split: Split, idx: ArrayLike<number> | null, start: number, end: number, inputShape: number[], classes: number) {
  const size = split.x.length / split.n;
  const n = end - start;
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = idx ? idx[start + i] : start + i;
    x.set(split.x.subarray(j * size, (j + 1) * size), i * size);
    y[i] = split.y[j];
  }
  return tf.tidy(() => ({
    xs: tf.tensor(x, [n, ...inputShape]),
    ys: tf.oneHot(tf.tensor1d(y, 'int32'), classes),
  }));
}

function inputShapeOf(model: tfl.LayersModel): number[] {
  return (model.inputs[0].shape as Array<number | null>).slice(1).map((d) => d ?? 1);
}

function classesOf(model: tfl.LayersModel): number {
  const out = model.outputs[0].shape;
  return out[out.length - 1] as number;
}

/** Mean categorical cross-entropy of softmax outputs. */
function crossEntropy(probs: tf.Tensor, ys: tf.Tensor): tf.Scalar {
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
}

export interface TrainResult {
  steps: number;
  resumedFromStep: number;
  /** mean training loss per epoch (epochs run in this call) */
  epochLoss: Array<[number, number]>;
  samplesPerSecond: number;
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
  const optimizer = tf.train.adam(opts.learningRate);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
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
        const { xs, ys } = batchTensors(data, order, start, end, inputShape, classes);
        const lossT = optimizer.minimize(() => crossEntropy(model.apply(xs, { training: true }) as tf.Tensor, ys), true, vars);
        const loss = lossT ? (await lossT.data())[0] : null;
        tf.dispose([xs, ys, lossT!]);
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
    optimizer.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { steps: step, resumedFromStep: startStep, epochLoss, samplesPerSecond: seconds > 0 ? samples / seconds : 0 };
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

export interface LatencyResult {
  medianMs: number;
  p90Ms: number;
  batchSize: number;
  runs: number;
}

/** Latency of one forward pass at `batchSize`: median of `runs` after `warmup` untimed runs. */
export async function measureLatency(model: tfl.LayersModel, batchSize: number, warmup: number, runs: number): Promise<LatencyResult> {
  const x = tf.randomUniform([batchSize, ...inputShapeOf(model)], 0, 1, 'float32', 7);
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = performance.now();
      const y = model.predict(x) as tf.Tensor;
      await y.data(); // forces the computation to finish on async backends
      const dt = performance.now() - t0;
      y.dispose();
      if (i >= warmup) times.push(dt);
      await yieldToEventLoop();
    }
  } finally {
    x.dispose();
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  return { medianMs: at(0.5), p90Ms: at(0.9), batchSize, runs };
}

/**
 * Latency of several models measured side by side: each round times every model once, in turn,
 * so drift on a shared machine (frequency, neighbours) hits all of them alike; medians per model.
 */
export async function measureLatencyInterleaved(models: tfl.LayersModel[], batchSize: number, warmup: number, runs: number): Promise<LatencyResult[]> {
  const xs = models.map((m) => tf.randomUniform([batchSize, ...inputShapeOf(m)], 0, 1, 'float32', 7));
  const times: number[][] = models.map(() => []);
  try {
    for (let i = 0; i < warmup + runs; i++) {
      for (let k = 0; k < models.length; k++) {
        const t0 = performance.now();
        const y = models[k].predict(xs[k]) as tf.Tensor;
        await y.data();
        const dt = performance.now() - t0;
        y.dispose();
        if (i >= warmup) times[k].push(dt);
      }
      await yieldToEventLoop();
    }
  } finally {
    tf.dispose(xs);
  }
  return times.map((t) => {
    t.sort((a, b) => a - b);
    const at = (q: number) => t[Math.min(t.length - 1, Math.floor(q * t.length))];
    return { medianMs: at(0.5), p90Ms: at(0.9), batchSize, runs };
  });
}
