// Training, evaluation and latency measurement. Every loop yields to the event loop between
// batches, so a worker's heartbeats keep flowing while it computes, and never leaks tensors.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { gather, type Split } from './data';
import { FusedAdam, NativeAdam, setValues } from './adam';
import { sha256 } from './files';
import { defaultTrainThreads, releaseReplicas, replicasFor, type Replica, type ToReplica } from './parallel';
import { rng, shuffledIndices } from './random';
import { addBatch, emptySums, scoreOf, targetTensor, taskOf, type Task } from './task';
import type { RecipeKey, TrainState } from './train-state';
import { analyze } from './graph';
import { attentionMaps, checkAttention, type AttentionLayer } from './attention';
import { GRAPH_MIN_STEPS, GraphRefused, GraphTrainer, graphModeRefusal, trainGraphFor, type GraphStepScalars } from './train-graph';
import {
  checkRecipe,
  checkTeacher,
  groupPenaltyOf,
  learningRateAt,
  penaltyGradients,
  penaltyStrengthAt,
  PLAIN_LOSS,
  augmentImages,
  checkAugment,
  teacherLogitsOf,
  type AugmentOptions,
  recipeLoss,
  teacherLogits,
  type DistillOptions,
  type GroupPenalty,
  type LrSchedule,
  type ShardLoss,
  type SparsityOptions,
} from './recipe';

export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One example's input shape (the model's input without the batch dimension). */
export function inputShapeOf(model: tfl.LayersModel): number[] {
  return (model.inputs[0].shape as Array<number | null>).slice(1).map((d) => d ?? 1);
}

/** Mean categorical cross-entropy of softmax outputs (the classification loss on probabilities; ml/task.ts taskLoss covers every task). */
export function crossEntropy(probs: tf.Tensor, ys: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(ys, tf.log(tf.clipByValue(probs, 1e-7, 1))), -1))) as tf.Scalar);
}

/**
 * Examples per logical shard: a batch is cut into ceil(batch / TRAIN_SHARD_SIZE) shards, the unit
 * of work of a training thread and of batch-norm statistics (batch 64: 2 shards of 32; 256: 8).
 */
export const TRAIN_SHARD_SIZE = 32;

/** At most this many points in a training's per-batch loss series (`batchLoss`: each the mean over a group of consecutive batches). */
export const MAX_BATCH_LOSS_POINTS = 200;

export interface TrainOptions {
  /** the budget in passes over the data (unused when `steps` is set) */
  epochs: number;
  /** the budget in optimizer steps (batches) instead: training stops after this many steps, mid-epoch if need be */
  steps?: number;
  batchSize: number;
  /** Adam's (peak) learning rate */
  learningRate: number;
  seed: number;
  /** the learning rate per step over the budget (ml/recipe.ts learningRateAt); default constant, no warm-up */
  schedule?: LrSchedule;
  /** label smoothing ε in [0, 1) (classification only; ml/recipe.ts recipeLoss); default 0 */
  labelSmoothing?: number;
  /**
   * knowledge distillation (classification only; ml/recipe.ts recipeLoss): the teacher runs on this thread only, in
   * inference mode; its logits go to the training threads with each shard. Computed once for the whole split up front
   * when the budget covers an epoch (and n × classes ≤ 2^26), else per shard.
   */
  distill?: DistillOptions;
  /** the growing group-norm sparsity penalty on the prunable groups (ml/recipe.ts SparsityOptions); default none */
  sparsity?: SparsityOptions;
  /**
   * image augmentation of every batch (ml/recipe.ts AugmentOptions: left–right flips, shifts of whole pixels), drawn from
   * (seed, step) alone; with `distill` the teacher scores the augmented batch (its logits are then never cached). Image
   * inputs [H, W, C] only. Default none.
   */
  augment?: AugmentOptions;
  /** told of work before the first step (the teacher's logits over the split): heartbeat here */
  onPrepare?: (done: number, total: number, what: string) => void | Promise<void>;
  /**
   * resume from a checkpoint's whole training state (optimizer, position, loss series): the run
   * continues bit for bit as if never interrupted. Overrides startStep.
   */
  resume?: TrainState;
  /** resume with weights only: optimizer steps already done; the optimizer's moments restart (prefer `resume`) */
  startStep?: number;
  /** save a checkpoint every this many steps (and at every epoch end) */
  checkpointEverySteps?: number;
  /** `state` is the whole training state after `step`, to be stored with the weights */
  onCheckpoint?: (step: number, epoch: number, state: TrainState) => Promise<void>;
  /** called after every batch (heartbeat here); may throw to stop (cancellation) */
  onStep?: (step: number, totalSteps: number, loss: number | null) => void | Promise<void>;
  /**
   * threads for data parallelism on the wasm and cpu backends (default: defaultTrainThreads();
   * native backends thread by themselves and always use 1). The result does not depend on it.
   */
  threads?: number;
  /** examples per logical shard (default TRAIN_SHARD_SIZE); the result depends on it, not on the threads */
  shardSize?: number;
}

export interface TrainResult {
  steps: number;
  resumedFromStep: number;
  /** mean training loss per epoch (the recipe's whole loss, attention transfer's term included): every epoch so far, also those before a resume with `resume` */
  epochLoss: Array<[number, number]>;
  /**
   * training loss per batch, bounded: [the last step of a group of ceil(totalSteps / MAX_BATCH_LOSS_POINTS)
   * consecutive batches, their mean loss]; every group so far, also those before a resume with `resume`
   */
  batchLoss: Array<[number, number]>;
  samplesPerSecond: number;
  /** threads that trained (1 = this thread alone) */
  threads: number;
  /** the learning rate of the last step taken */
  lastLearningRate: number;
  /**
   * how the steps ran: `graph` — each step one TensorFlow graph call (native backend, ml/train-graph.ts);
   * `eager` — op by op through tfjs (every backend); the two give different numbers for the same seed
   */
  mode: 'graph' | 'eager';
  /** eager: why not graph mode (ml/train-graph.ts graphModeRefusal) */
  eagerBecause?: string;
}

/** What a recipe changes about a training, in the form a checkpoint records and a resume must match (defaults left out). */
export function recipeKeyOf(opts: TrainOptions, totalSteps: number): RecipeKey {
  const key: RecipeKey = {};
  const schedule = opts.schedule ?? { kind: 'constant' };
  if (schedule.kind !== 'constant' || (schedule.warmup ?? 0) > 0) key.schedule = { kind: schedule.kind, warmup: schedule.warmup ?? 0 };
  if (key.schedule || opts.steps !== undefined) key.totalSteps = totalSteps;
  if (opts.labelSmoothing) key.labelSmoothing = opts.labelSmoothing;
  if (opts.distill && opts.distill.weight > 0)
    key.distill = {
      weight: opts.distill.weight,
      temperature: opts.distill.temperature,
      ...(opts.distill.attention ? { attention: opts.distill.attention } : {}),
    };
  if (opts.augment && (opts.augment.flip || opts.augment.shift > 0)) key.augment = { flip: opts.augment.flip, shift: opts.augment.shift };
  if (opts.sparsity && (opts.sparsity.strength > 0 || opts.sparsity.growth > 0))
    key.sparsity = {
      strength: opts.sparsity.strength,
      growth: opts.sparsity.growth,
      alpha: opts.sparsity.alpha ?? 4,
      ...(opts.sparsity.protect?.length ? { protect: [...opts.sparsity.protect].sort() } : {}),
    };
  return key;
}

/** A fingerprint of a split's labels: a resume must continue on the same data. */
function labelsFingerprint(data: Split): string {
  return sha256(data.y.subarray(0, data.n)).slice(0, 16);
}

/**
 * Trains with Adam in a custom loop. Reproducible: the data order is a function of (seed, epoch);
 * every batch is cut into fixed logical shards of about `shardSize` examples whose gradients are summed in shard order,
 * whichever thread computed them; dropout masks are seeded per (seed, step, shard). So the same
 * seed gives bit-identical weights on 1, 2 or more threads, and a resume with `resume` continues
 * bit for bit.
 */
export async function train(model: tfl.LayersModel, data: Split, opts: TrainOptions): Promise<TrainResult> {
  const inputShape = inputShapeOf(model);
  const task = taskOf(model, data.task);
  // on the native backend TensorFlow spreads each op over the cores itself and no replica threads run:
  // the whole batch is one shard (fewer op dispatches; measured ~1.5–2× faster). The result depends on
  // the shard size, so it is identical for the same backend, whatever the cores or threads.
  const shardSize = opts.shardSize ?? (tf.getBackend() === 'tensorflow' ? opts.batchSize : TRAIN_SHARD_SIZE);
  if (!Number.isInteger(shardSize) || shardSize < 1) throw new Error(`shardSize: ${shardSize} is not a whole number ≥ 1`);
  const shardsPerBatch = Math.ceil(opts.batchSize / shardSize);
  const stepsPerEpoch = Math.ceil(data.n / opts.batchSize);
  if (opts.steps !== undefined && !(Number.isInteger(opts.steps) && opts.steps >= 0)) throw new Error(`steps: ${opts.steps} is not a whole number ≥ 0`);
  const totalSteps = opts.steps ?? stepsPerEpoch * opts.epochs;
  const epochs = Math.ceil(totalSteps / stepsPerEpoch);
  checkRecipe(task, opts);
  checkAugment(inputShape, opts.augment);
  const recipe = recipeKeyOf(opts, totalSteps);
  const loss: ShardLoss = {
    labelSmoothing: recipe.labelSmoothing ?? 0,
    distillWeight: recipe.distill?.weight ?? 0,
    temperature: recipe.distill?.temperature ?? 1,
  };
  const labels = labelsFingerprint(data);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const backend = tf.getBackend();
  // graph mode (native backend, big enough budgets): the whole step is one TensorFlow graph call
  let eagerBecause = graphModeRefusal(model, { totalSteps, shardsPerBatch });
  // the sparsity penalty's maps: applied between steps on the eager paths, inside the step in graph mode
  const penalty = recipe.sparsity && opts.sparsity ? groupPenaltyOf(model, vars, opts.sparsity.graph ?? analyze(model), opts.sparsity) : undefined;
  const startStep = Math.min(opts.resume?.step ?? opts.startStep ?? 0, totalSteps);
  // tracing takes seconds in a child Python: it runs while the teacher's logits are computed here
  // attention transfer (graph mode only): the layers whose maps the student learns from the teacher's
  const beta = opts.distill?.attention ?? 0;
  if (!(beta >= 0)) throw new Error(`distill.attention: ${beta} must be a number ≥ 0`);
  if (beta > 0 && !recipe.distill)
    throw new Error(`distill.attention: attention transfer comes with distillation: set distill.weight above 0, or attention to 0`);
  const attention = recipe.distill?.attention ? checkAttention(model, opts.distill!.teacher) : [];
  // refused before the teacher's logits are computed when graph mode is ruled out already (again below if tracing refuses)
  if (attention.length > 0 && eagerBecause !== null) throw attentionNeedsGraph(eagerBecause);
  const tracing = eagerBecause === null ? trainGraphFor(model, task, attention, penalty) : undefined;
  tracing?.catch(() => {}); // awaited below; a failure before then (the teacher's) must not leave it unhandled
  // the teacher's logits: the whole split once (a fixed cut, so a resume gets the same values), else per shard
  let teacher: StepContext['teacher'];
  if (recipe.distill && opts.distill) {
    const t = opts.distill.teacher;
    checkTeacher(t, task, data);
    // augmented batches are new images every step: the teacher scores each (consistent teaching), nothing is cached
    if (!recipe.augment && totalSteps * opts.batchSize >= data.n && data.n * task.units <= 2 ** 26 && startStep < totalSteps) {
      const cache = new Float32Array(data.n * task.units);
      const chunk = 4096;
      for (let s = 0; s < data.n; s += chunk) {
        cache.set(teacherLogits(t, task, data, null, s, Math.min(data.n, s + chunk)), s * task.units);
        await opts.onPrepare?.(Math.min(data.n, s + chunk), data.n, 'teacher logits');
        await yieldToEventLoop();
      }
      teacher = { cache };
    } else teacher = { model: t };
  }
  let graph: GraphTrainer | undefined;
  if (tracing) {
    try {
      const beat = () => opts.onPrepare?.(0, 1, GRAPH_PREPARE);
      await beat();
      const dir = await whileBeating(tracing, beat);
      graph = await GraphTrainer.open(dir, model, task, opts.resume?.optimizer);
      await opts.onPrepare?.(1, 1, GRAPH_PREPARE);
    } catch (e) {
      if (!(e instanceof GraphRefused)) throw e;
      eagerBecause = e.message;
    }
  }
  if (attention.length > 0 && !graph) throw attentionNeedsGraph(eagerBecause);
  // native eager, one shard per batch: gradients stay in TensorFlow, Adam is TensorFlow's op (nativeStep)
  const native = backend === 'tensorflow' && shardsPerBatch === 1;
  const optimizer = graph ? undefined : native ? new NativeAdam(vars, opts.learningRate) : new FusedAdam(vars, opts.learningRate);
  /** Adam's step count in graph mode (the moments live in the graph's session) */
  let adamSteps = 0;
  const epochLoss: Array<[number, number]> = [];
  let lossSum = 0;
  let lossCount = 0;
  const batchLoss: Array<[number, number]> = [];
  const groupSteps = Math.max(1, Math.ceil(totalSteps / MAX_BATCH_LOSS_POINTS));
  let batchSum = 0;
  let batchCount = 0;
  if (opts.resume) {
    const r = opts.resume;
    const want = { seed: opts.seed, batchSize: opts.batchSize, learningRate: opts.learningRate, shardSize, n: data.n, labels, recipe };
    const got = {
      seed: r.seed,
      batchSize: r.batchSize,
      learningRate: r.learningRate,
      shardSize: r.shardSize,
      n: r.n,
      labels: r.labels,
      recipe: r.recipe ?? {},
    };
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      graph?.dispose();
      throw new Error(`the training state to resume was saved for ${JSON.stringify(got)}, this training is ${JSON.stringify(want)}`);
    }
    if (optimizer) optimizer.restore(r.optimizer);
    else adamSteps = r.optimizer.t;
    epochLoss.push(...r.epochLoss.map(([e, l]) => [e, l] as [number, number]));
    lossSum = r.lossSum;
    lossCount = r.lossCount;
    batchLoss.push(...(r.batchLoss ?? []).map(([e, l]) => [e, l] as [number, number]));
    batchSum = r.batchSum ?? 0;
    batchCount = r.batchCount ?? 0;
  }
  const threads = backend === 'wasm' || backend === 'cpu' ? Math.min(opts.threads ?? defaultTrainThreads(), shardsPerBatch) : 1;
  let replicas: Replica[] = [];
  try {
    replicas = threads > 1 ? await replicasFor(model, threads - 1, backend) : [];
  } catch (e) {
    if (optimizer instanceof NativeAdam) optimizer.dispose();
    graph?.dispose();
    throw e;
  }
  const ctx: StepContext = {
    model,
    vars,
    optimizer,
    replicas,
    data,
    inputShape,
    task,
    shardSize,
    seed: opts.seed,
    layers: randomLayersOf(model),
    loss,
    teacher,
    penalty,
    stepsPerEpoch,
    augment: recipe.augment,
    ...(attention.length > 0 ? { attention: { layers: attention, teacher: opts.distill!.teacher, scale: recipe.distill!.attention! / 2 } } : {}),
  };
  const state = (step: number): TrainState => ({
    step,
    seed: opts.seed,
    batchSize: opts.batchSize,
    learningRate: opts.learningRate,
    shardSize,
    n: data.n,
    labels,
    recipe,
    epochLoss: epochLoss.map(([e, l]) => [e, l] as [number, number]),
    lossSum,
    lossCount,
    batchLoss: batchLoss.map(([e, l]) => [e, l] as [number, number]),
    batchSum,
    batchCount,
    // graph mode: the session's weights are copied into the model here, before the checkpoint saves it
    optimizer: optimizer ? optimizer.state() : graph!.pull(adamSteps),
  });
  const t0 = performance.now();
  let samples = 0;
  let step = startStep;
  let lr = opts.learningRate;
  try {
    for (let epoch = Math.floor(startStep / stepsPerEpoch); epoch < epochs && step < totalSteps; epoch++) {
      const order = shuffledIndices(data.n, opts.seed * 1000 + epoch);
      for (let b = step - epoch * stepsPerEpoch; b < stepsPerEpoch && step < totalSteps; b++) {
        const start = b * opts.batchSize;
        const end = Math.min(data.n, start + opts.batchSize);
        lr = learningRateAt(opts.learningRate, opts.schedule, step, totalSteps);
        if (optimizer) optimizer.learningRate = lr;
        const loss = graph
          ? graphStep(ctx, graph, order, start, end, step, {
              lr,
              t: ++adamSteps,
              labelSmoothing: ctx.loss.labelSmoothing,
              distillWeight: ctx.loss.distillWeight,
              temperature: ctx.loss.temperature,
              dropoutSeed: Math.floor(shardSeed(ctx.seed, step, 0)),
              attentionScale: ctx.attention?.scale,
              ...(ctx.penalty ? { sparsity: { lambda: penaltyStrengthAt(ctx.penalty, step, ctx.stepsPerEpoch), alpha: ctx.penalty.alpha } } : {}),
            })
          : optimizer instanceof NativeAdam
            ? nativeStep(ctx, optimizer, order, start, end, step)
            : await shardedStep(ctx, order, start, end, step);
        lossSum += loss;
        lossCount++;
        batchSum += loss;
        batchCount++;
        samples += end - start;
        step++;
        if (step % groupSteps === 0 || step === totalSteps) {
          batchLoss.push([step, batchSum / batchCount]);
          batchSum = 0;
          batchCount = 0;
        }
        await opts.onStep?.(step, totalSteps, loss);
        // the last step of an epoch, or of a budget in steps that ends mid-epoch
        const epochEnd = b === stepsPerEpoch - 1 || step === totalSteps;
        if (epochEnd) {
          if (lossCount > 0) epochLoss.push([epoch + 1, lossSum / lossCount]);
          lossSum = 0;
          lossCount = 0;
        }
        if (opts.onCheckpoint && (epochEnd || (opts.checkpointEverySteps && step % opts.checkpointEverySteps === 0))) {
          await opts.onCheckpoint(step, epoch, state(step));
        }
        await yieldToEventLoop();
      }
    }
  } finally {
    releaseReplicas(replicas);
    if (optimizer instanceof NativeAdam) optimizer.dispose();
    if (graph) {
      // the model takes the weights of the last step taken (as eager training leaves them), then the session goes
      try {
        graph.pull(adamSteps);
      } finally {
        graph.dispose();
      }
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    steps: step,
    resumedFromStep: startStep,
    epochLoss,
    batchLoss,
    samplesPerSecond: seconds > 0 ? samples / seconds : 0,
    threads,
    lastLearningRate: step > 0 ? learningRateAt(opts.learningRate, opts.schedule, step - 1, totalSteps) : lr,
    mode: graph ? 'graph' : 'eager',
    ...(graph ? {} : { eagerBecause: eagerBecause ?? undefined }),
  };
}

/** Attention transfer's refusal of an eager training (one line: why eager, and the two fixes). */
function attentionNeedsGraph(eagerBecause: string | null): Error {
  return new Error(
    `distill.attention: attention transfer trains in graph mode only, and this training runs eagerly (${eagerBecause}): train on the tensorflow backend with PRUNEWISE_TRAIN_GRAPH=on (auto: from ${GRAPH_MIN_STEPS} steps), or set distill.attention to 0`,
  );
}

/** What `onPrepare` counts while graph mode traces and loads its graph: 0 of 1 graphs traced, then 1 of 1 (`status`: "training graphs traced 0/1"). */
export const GRAPH_PREPARE = 'training graphs traced';

/** `work`, calling `beat` every `everyMs` until it settles; a beat that throws (cancellation) ends the wait with its error. */
async function whileBeating<T>(work: Promise<T>, beat: () => unknown, everyMs = 1000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const beats = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      Promise.resolve()
        .then(beat)
        .catch((e: unknown) => reject(e));
    }, everyMs);
  });
  try {
    return await Promise.race([work, beats]);
  } finally {
    clearInterval(timer);
  }
}

/** The layers whose training-mode forward pass has state or randomness: batch norm, dropout. */
export interface RandomLayers {
  /** batch-norm layers (nested models included), in a fixed order */
  batchNorms: Array<{ layer: { momentum: number }; mean: tf.Variable; variance: tf.Variable }>;
  /** layers with a `seed` their training-mode call uses (Dropout, SpatialDropout1D) */
  dropouts: Array<{ seed?: number }>;
}

/** Finds a model's batch-norm and seeded dropout layers (in nested models too). */
export function randomLayersOf(model: tfl.LayersModel): RandomLayers {
  const out: RandomLayers = { batchNorms: [], dropouts: [] };
  const visit = (layers: tfl.layers.Layer[]) => {
    for (const l of layers) {
      const any = l as unknown as {
        layers?: tfl.layers.Layer[];
        movingMean?: { read(): tf.Tensor };
        movingVariance?: { read(): tf.Tensor };
        momentum: number;
        seed?: number;
      };
      const cls = l.getClassName();
      if (any.layers) visit(any.layers);
      else if (cls === 'BatchNormalization' && any.movingMean && any.movingVariance)
        out.batchNorms.push({ layer: any, mean: any.movingMean.read() as tf.Variable, variance: any.movingVariance.read() as tf.Variable });
      else if (cls === 'Dropout' || cls === 'SpatialDropout1D') out.dropouts.push(any);
    }
  };
  visit(model.layers);
  return out;
}

interface StepContext {
  model: tfl.LayersModel;
  vars: tf.Variable[];
  /** none in graph mode (Adam runs in the graph) */
  optimizer: FusedAdam | NativeAdam | undefined;
  replicas: Replica[];
  data: Split;
  inputShape: number[];
  task: Task;
  shardSize: number;
  seed: number;
  layers: RandomLayers;
  /** the recipe's loss terms (every thread computes the same loss) */
  loss: ShardLoss;
  /** distillation: the teacher's logits for the whole split (by example index), or the teacher to run per shard */
  teacher?: { cache: Float32Array } | { model: tfl.LayersModel };
  penalty?: GroupPenalty;
  stepsPerEpoch: number;
  /** augmentation of every batch (none when absent) */
  augment?: AugmentOptions;
  /** attention transfer (graph mode only): the matched layers, the teacher, β/2 */
  attention?: { layers: AttentionLayer[]; teacher: tfl.LayersModel; scale: number };
}

/** One step's batch: examples [start, end) of `order`, augmented when the recipe says so, with the teacher's logits when distilling. */
interface StepBatch {
  x: Float32Array;
  y: Int32Array;
  t?: Float32Array;
  n: number;
  /** the teacher's logits [n·K] (distillation), else undefined */
  s?: Float32Array;
  /** the teacher's attention maps [n · Σ H·W] (attention transfer), else undefined */
  a?: Float32Array;
}

/** The augmentation seed of one step: a function of the training seed and the step only. */
const augmentSeed = (seed: number, step: number) => (Math.imul(seed + 1, 0x27d4eb2d) ^ Math.imul(step + 1, 0x165667b1)) >>> 0;

function stepBatch(ctx: StepContext, order: ArrayLike<number>, start: number, end: number, step: number): StepBatch {
  const b = gather(ctx.data, order, start, end, ctx.task.units);
  if (ctx.augment) augmentImages(b.x, b.n, ctx.inputShape, ctx.augment, augmentSeed(ctx.seed, step));
  const a = ctx.attention ? attentionMaps(ctx.attention.teacher, ctx.attention.layers, b.x, b.n) : undefined;
  return { ...b, s: batchTeacherLogits(ctx, b.x, order, start, end), a };
}

/** Examples [from, to) of a batch (copies: a shard's buffers may be transferred to a training thread). */
function sliceBatch(b: StepBatch, from: number, to: number): StepBatch {
  const per = b.x.length / b.n;
  const k = b.t ? b.t.length / b.n : 0;
  const kk = b.s ? b.s.length / b.n : 0;
  return {
    x: b.x.slice(from * per, to * per),
    y: b.y.slice(from, to),
    t: b.t?.slice(from * k, to * k),
    s: b.s?.slice(from * kk, to * kk),
    n: to - from,
  };
}

/** The dropout seed of one shard of one step: a function of the training seed only, never of the thread. */
function shardSeed(seed: number, step: number, shard: number): number {
  return rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b) ^ Math.imul(shard + 1, 0xc2b2ae35)) >>> 0)() * 2 ** 31;
}

/**
 * One training step over the batch [start, end) of `order`: the batch is cut into
 * ceil(n / shardSize) fixed logical shards (sizes differ by at most one example); the threads (this one and the replicas)
 * take shards as they become free; the shards' gradients are then summed in shard order weighted
 * by their sizes (the batch mean) and applied once. Batch norm normalises each shard with its own
 * statistics (ghost batch norm); its moving averages take one update per step from the whole
 * batch's mean and variance, combined from the shards' in shard order. Nothing here depends on
 * which thread computed which shard. Returns the batch's mean loss.
 */
async function shardedStep(ctx: StepContext, order: ArrayLike<number>, start: number, end: number, step: number): Promise<number> {
  const { replicas, data, inputShape, task } = ctx;
  const n = end - start;
  const count = Math.ceil(n / ctx.shardSize);
  const bounds = Array.from({ length: count + 1 }, (_, k) => start + Math.floor((k * n) / count));
  const results: ShardResult[] = new Array(count);
  const batch = stepBatch(ctx, order, start, end, step);
  const shard = (k: number) => sliceBatch(batch, bounds[k] - start, bounds[k + 1] - start);
  let next = 0;
  let stop = false;
  let replicaError: Error | undefined;
  const take = () => (!stop && next < count ? next++ : -1);
  const weights = replicas.length > 0 ? ctx.vars.map((v) => v.dataSync() as Float32Array) : [];
  // replicas take their first shard now, so they compute while this thread does its own. A replica's
  // failure is caught here at once (never an unhandled rejection, which would end the process) and
  // rethrown below: the step, and so the activity, fails; the process goes on.
  const pending = replicas.map(async (r) => {
    try {
      let first = true;
      for (let k = take(); k >= 0; k = take()) {
        const { x, y, t, s, n: m } = shard(k);
        const msg: ToReplica = {
          type: 'step',
          weights: first ? weights : undefined,
          x,
          y,
          t,
          s,
          n: m,
          inputShape,
          task,
          loss: ctx.loss,
          dropoutSeed: shardSeed(ctx.seed, step, k),
        };
        first = false;
        const transfer = [x.buffer as ArrayBuffer, y.buffer as ArrayBuffer, ...(t ? [t.buffer as ArrayBuffer] : []), ...(s ? [s.buffer as ArrayBuffer] : [])];
        const reply = await r.call(msg, transfer);
        if (reply.type !== 'grads') throw new Error(`training thread replied ${reply.type}`);
        results[k] = reply;
      }
    } catch (e) {
      stop = true;
      replicaError ??= e instanceof Error ? e : new Error(String(e));
    }
  });
  const saved = ctx.layers.batchNorms.map((b) => [b.mean.dataSync().slice() as Float32Array, b.variance.dataSync().slice() as Float32Array]);
  const restore = () => ctx.layers.batchNorms.forEach((b, j) => (setValues(b.mean, saved[j][0]), setValues(b.variance, saved[j][1])));
  try {
    for (let k = take(); k >= 0; k = take()) {
      results[k] = shardGradients(ctx.model, ctx.vars, shard(k), inputShape, task, ctx.layers, shardSeed(ctx.seed, step, k), ctx.loss);
      // lets finished replicas take the next shard before this thread does
      if (replicas.length > 0) await yieldToEventLoop();
    }
  } catch (e) {
    stop = true;
    restore();
    throw e;
  } finally {
    await Promise.all(pending);
  }
  if (replicaError) {
    restore();
    throw replicaError;
  }
  const decay = sparsityDecay(ctx, step);
  (ctx.optimizer as FusedAdam).apply(results.map((r, k) => ({ grads: r.grads, weight: bounds[k + 1] - bounds[k] })));
  applyDecay(ctx, decay);
  updateMovingStatistics(ctx.layers, saved, results, bounds);
  let loss = 0;
  results.forEach((r, k) => (loss += r.loss * (bounds[k + 1] - bounds[k])));
  return loss / n;
}

/**
 * The teacher's logits [n·K] for the batch (examples [start, end) of `order`, inputs `x` as gathered and augmented),
 * when distilling: looked up in the whole split's cache by example index, or computed from `x` (never cached when augmenting).
 */
function batchTeacherLogits(ctx: StepContext, x: Float32Array, order: ArrayLike<number>, start: number, end: number): Float32Array | undefined {
  const t = ctx.teacher;
  if (!t) return undefined;
  if ('model' in t) return teacherLogitsOf(t.model, ctx.task, x, end - start);
  const k = ctx.task.units;
  const out = new Float32Array((end - start) * k);
  for (let i = start; i < end; i++) out.set(t.cache.subarray(order[i] * k, (order[i] + 1) * k), (i - start) * k);
  return out;
}

/**
 * One training step on the native backend, the whole batch [start, end) of `order` one shard: the
 * gradients stay TensorFlow tensors and go straight to NativeAdam (nothing is copied into JavaScript
 * but the loss); batch norm updates its moving averages itself, once, from the batch's mean and
 * biased variance with tfjs-layers' formula (what updateMovingStatistics does for one shard, in
 * float32). Dropout masks are seeded as shardGradients seeds shard 0. Returns the batch's mean loss.
 */
function nativeStep(ctx: StepContext, optimizer: NativeAdam, order: ArrayLike<number>, start: number, end: number, step: number): number {
  const { inputShape, task, layers } = ctx;
  const batch = stepBatch(ctx, order, start, end, step);
  const seeds = layers.dropouts.map((d) => d.seed);
  // the moving averages as they were (clones share the data): put back if the step fails
  const saved = layers.batchNorms.map((b) => [tf.clone(b.mean), tf.clone(b.variance)]);
  let value: tf.Scalar | undefined;
  let grads: tf.NamedTensorMap = {};
  try {
    const dropoutSeed = shardSeed(ctx.seed, step, 0);
    layers.dropouts.forEach((d, i) => (d.seed = (dropoutSeed + i * 7919) % 2 ** 31));
    ({ value, grads } = tf.tidy(() => {
      const xs = tf.tensor(batch.x, [batch.n, ...inputShape]);
      const ys = targetTensor(task, batch.n, batch.y, batch.t);
      const soft = batch.s ? tf.tensor2d(batch.s, [batch.n, task.units]) : undefined;
      return tf.variableGrads(() => recipeLoss(task, ctx.model.apply(xs, { training: true }) as tf.Tensor, ys, ctx.loss, soft), ctx.vars);
    }));
    const loss = value.dataSync()[0];
    const decay = sparsityDecay(ctx, step);
    optimizer.apply(ctx.vars.map((v) => grads[v.name]));
    applyDecay(ctx, decay);
    return loss;
  } catch (e) {
    layers.batchNorms.forEach((b, j) => (b.mean.assign(saved[j][0]), b.variance.assign(saved[j][1])));
    throw e;
  } finally {
    layers.dropouts.forEach((d, i) => (d.seed = seeds[i]));
    tf.dispose([...(value ? [value] : []), ...Object.values(grads), ...saved.flat()]);
  }
}

/**
 * One training step in graph mode (ml/train-graph.ts): the batch [start, end) of `order`, its targets and
 * (distilling) the teacher's logits go to the graph; forward, loss, gradients, Adam and batch norm's moving
 * averages run in one TensorFlow call. Returns the batch's mean loss.
 */
function graphStep(ctx: StepContext, graph: GraphTrainer, order: ArrayLike<number>, start: number, end: number, step: number, s: GraphStepScalars): number {
  const { inputShape, task } = ctx;
  const batch = stepBatch(ctx, order, start, end, step);
  const soft = batch.s ? tf.tensor2d(batch.s, [batch.n, task.units]) : undefined;
  const maps = batch.a ? tf.tensor2d(batch.a, [batch.n, batch.a.length / batch.n]) : undefined;
  const inputs = [
    tf.tensor(batch.x, [batch.n, ...inputShape]),
    tf.tidy(() => tf.cast(targetTensor(task, batch.n, batch.y, batch.t), 'float32')),
    ...(soft ? [soft] : []),
    ...(maps ? [maps] : []),
  ];
  try {
    return graph.step(inputs[0], inputs[1], soft, s, maps);
  } finally {
    tf.dispose(inputs);
  }
}

/** The sparsity penalty's decay for this step, from the weights before it (none without a penalty; ml/recipe.ts penaltyGradients). */
function sparsityDecay(ctx: StepContext, step: number): Array<Float32Array | null> {
  if (!ctx.penalty) return [];
  return penaltyGradients(
    ctx.penalty,
    ctx.vars.map((v) => v.dataSync() as Float32Array),
    step,
    ctx.stepsPerEpoch,
  );
}

/** Applies the decay after the optimizer's step (decoupled from Adam's step, AdamW-style: ml/recipe.ts), telling the optimizer. */
function applyDecay(ctx: StepContext, decay: Array<Float32Array | null>): void {
  decay.forEach((d, k) => {
    if (!d) return;
    const w = (ctx.vars[k].dataSync() as Float32Array).slice();
    const lr = ctx.optimizer!.learningRate;
    for (let i = 0; i < w.length; i++) w[i] -= lr * d[i];
    setValues(ctx.vars[k], w);
    ctx.optimizer!.weightsChanged(k);
  });
}

/** What one shard gives: gradients, mean loss, and per batch-norm layer its batch mean and variance. */
export interface ShardResult {
  grads: Float32Array[];
  loss: number;
  /** per batch-norm layer in RandomLayers order: mean, then variance */
  stats: Float32Array[];
}

/**
 * Moving averages as tfjs's BatchNormalization updates them (x ← x − (x − value)·(1 − momentum)),
 * once per step, with value = the whole batch's mean and (biased) variance combined from the
 * shards' in shard order.
 */
function updateMovingStatistics(layers: RandomLayers, saved: Float32Array[][], results: ShardResult[], bounds: number[]): void {
  const n = bounds[bounds.length - 1] - bounds[0];
  const w = results.map((_, k) => (bounds[k + 1] - bounds[k]) / n);
  layers.batchNorms.forEach((b, j) => {
    const [mean0, var0] = saved[j];
    const decay = 1 - b.layer.momentum;
    const mean = new Float32Array(mean0.length);
    const variance = new Float32Array(var0.length);
    for (let c = 0; c < mean0.length; c++) {
      let mu = 0;
      for (let s = 0; s < results.length; s++) mu += w[s] * results[s].stats[2 * j][c];
      let va = 0;
      for (let s = 0; s < results.length; s++) {
        const d = results[s].stats[2 * j][c] - mu;
        va += w[s] * (results[s].stats[2 * j + 1][c] + d * d);
      }
      mean[c] = mean0[c] - (mean0[c] - mu) * decay;
      variance[c] = var0[c] - (var0[c] - va) * decay;
    }
    setValues(b.mean, mean);
    setValues(b.variance, variance);
  });
}

/**
 * Loss, gradients (one array per variable, in order, each in its own buffer) and batch-norm
 * statistics of one shard: the computation the main thread and every replica thread do. The loss is
 * the recipe's (ml/recipe.ts recipeLoss: the task's loss, label smoothing, distillation against the
 * teacher's logits `shard.s` [n·classes]); the plain task loss by default. Dropout
 * layers draw their masks from `dropoutSeed`. Batch-norm moving averages are left holding this
 * shard's statistics (the caller restores them).
 */
export function shardGradients(
  model: tfl.LayersModel,
  vars: tf.Variable[],
  shard: { x: Float32Array; y: Int32Array; t?: Float32Array; s?: Float32Array; n: number },
  inputShape: number[],
  task: Task,
  layers: RandomLayers,
  dropoutSeed: number,
  recipe: ShardLoss = PLAIN_LOSS,
): ShardResult {
  // momentum 0 over zeroed moving averages: the forward pass leaves exactly this shard's mean and variance in them
  const momenta = layers.batchNorms.map((b) => b.layer.momentum);
  const seeds = layers.dropouts.map((d) => d.seed);
  let value: tf.Scalar;
  let grads: tf.NamedTensorMap;
  try {
    for (const b of layers.batchNorms) {
      b.layer.momentum = 0;
      tf.tidy(() => {
        b.mean.assign(tf.zerosLike(b.mean));
        b.variance.assign(tf.zerosLike(b.variance));
      });
    }
    layers.dropouts.forEach((d, i) => (d.seed = (dropoutSeed + i * 7919) % 2 ** 31));
    ({ value, grads } = tf.tidy(() => {
      const xs = tf.tensor(shard.x, [shard.n, ...inputShape]);
      const ys = targetTensor(task, shard.n, shard.y, shard.t);
      const soft = shard.s ? tf.tensor2d(shard.s, [shard.n, task.units]) : undefined;
      return tf.variableGrads(() => recipeLoss(task, model.apply(xs, { training: true }) as tf.Tensor, ys, recipe, soft), vars);
    }));
  } finally {
    layers.batchNorms.forEach((b, j) => (b.layer.momentum = momenta[j]));
    layers.dropouts.forEach((d, i) => (d.seed = seeds[i]));
  }
  // own buffers only: a view into shared memory must never be transferred to a thread (it would be detached)
  const own = (t: tf.Tensor) => {
    const g = t.dataSync() as Float32Array;
    return g.byteOffset === 0 && g.byteLength === g.buffer.byteLength ? g : g.slice();
  };
  const out = vars.map((v) => own(grads[v.name]));
  const stats = layers.batchNorms.flatMap((b) => [b.mean.dataSync().slice() as Float32Array, b.variance.dataSync().slice() as Float32Array]);
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { grads: out, loss, stats };
}

export interface EvalResult {
  /** the task's score (ml/task.ts scoreOf): top-1 accuracy, per-label accuracy (multilabel) or R² (regression) */
  accuracy: number;
  /** mean of the task's loss (the one training uses) */
  loss: number;
  /** regression: mean absolute error per output unit */
  mae?: number;
  n: number;
}

/** Scores a model on a split with its task's loss and metric (ml/task.ts), batch by batch. */
export async function evaluate(model: tfl.LayersModel, data: Split, batchSize = 256): Promise<EvalResult> {
  const inputShape = inputShapeOf(model);
  const task = taskOf(model, data.task);
  const sums = emptySums();
  for (let start = 0; start < data.n; start += batchSize) {
    const end = Math.min(data.n, start + batchSize);
    const b = gather(data, null, start, end, task.units);
    const xs = tf.tensor(b.x, [b.n, ...inputShape]);
    const ys = targetTensor(task, b.n, b.y, b.t);
    const out = tf.tidy(() => model.predict(xs) as tf.Tensor);
    try {
      await addBatch(task, sums, out, ys);
    } finally {
      tf.dispose([xs, ys, out]);
    }
    await yieldToEventLoop();
  }
  return { ...scoreOf(task, sums), n: data.n };
}

/**
 * One inference forward pass, as a deployment would run it: model.apply in inference mode (not
 * predict(), whose batching loop adds ~1.3 ms of slicing and bookkeeping per call on LeNet-5).
 */
/** Inference (training: false) on a batch, inside tf.tidy. */
export function forward(model: tfl.LayersModel, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => model.apply(x, { training: false }) as tf.Tensor);
}
