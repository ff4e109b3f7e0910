// Resumable training: checkpoints as tfjs model folders `step-<8 digits>` under a stage's
// checkpoint folder, each with the whole training state (optimizer moments and step count, data
// position, loss series: ml/train-state.ts) written in the same atomic folder write; a retried
// stage resumes from the newest checkpoint that is whole and verifiable, wherever it is (the
// heartbeat's, the artifact store's, this home's folders: findResume), and continues bit for bit as
// if never interrupted. A folder without its training state is never resumed from.
// The newest `keepCheckpoints` are kept. Each checkpoint is also published to the artifact store
// (a retry on another worker, with no shared disk, resumes from it: the heartbeat carries its
// `<name>@<key>`), and the store's refs of older ones are dropped with their blobs (checkpoint clean-up).
// A kill between writing a checkpoint's folder and storing it whole (the ref written, its blobs or
// manifest not yet) leaves a ref that does not check out: the folder here is resumed from and
// published again (test/checkpoint-kill.test.ts tries a kill before every store write).
import { Context } from '@temporalio/activity';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseRef } from '../blobstore';
import {
  encodeTrainState,
  isWholeCheckpoint,
  loadModel,
  readTrainState,
  saveModel,
  sweepDeadTemps,
  train,
  type Split,
  type TrainOptions,
  type TrainResult,
  type TrainState,
} from '../ml';
import type { Artifacts } from './artifacts';
import { beat } from './stage';
import type { StageProgressDetails } from '../core';

export interface ResumableTrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  keepCheckpoints: number;
  /** the training recipe (ml/recipe.ts): budget in steps, schedule, label smoothing, distillation, sparsity penalty */
  recipe?: Pick<TrainOptions, 'steps' | 'schedule' | 'labelSmoothing' | 'distill' | 'sparsity'>;
}

/**
 * Trains with checkpoints; resumes from the newest whole and verifiable checkpoint (findResume).
 * Heartbeats every batch (the SDK throttles what it sends), so a dead worker is noticed.
 * `start` makes the model when there is nothing to resume from. `ckptDir` is relative to the home.
 */
export async function trainResumable(
  art: Artifacts,
  start: () => Promise<tfl.LayersModel>,
  ckptDir: string,
  opts: ResumableTrainOptions,
  data: Split,
): Promise<{ model: tfl.LayersModel; result: TrainResult }> {
  const ctx = Context.current();
  const details = ctx.info.heartbeatDetails as { step?: number; checkpoint?: string } | undefined;
  const found = await findResume(art, ckptDir, details?.checkpoint, (m) => warn(ctx, m));
  const model = found ? found.model : await start();
  const resume = found?.state;
  let lastCheckpoint = found?.ref;
  if (found && !found.ref) {
    // a whole folder here whose copy in the store is missing or not whole (the worker was killed
    // while publishing it): published again, so a retry elsewhere finds it and the store holds no half ref
    lastCheckpoint = await art.publish(found.name).then(
      (p) => p.ref,
      (e: Error) => (warn(ctx, `checkpoint ${found.name}: publishing it again failed (${e.message}); training goes on from it`), undefined),
    );
  }
  // the store's clean-up as after every checkpoint (a kill may have come before it)
  if (found)
    await dropOlder(art, ckptDir, opts.keepCheckpoints, found.step).catch((e: Error) =>
      warn(ctx, `checkpoint clean-up in ${art.store.description} failed: ${e.message}`),
    );
  let totalSteps: number | undefined;
  const stepsPerEpoch = Math.ceil(data.n / opts.batchSize);
  const steps = opts.recipe?.steps;
  const rate = trainingRate(
    steps !== undefined ? Math.max(1, Math.ceil(steps / stepsPerEpoch)) : opts.epochs,
    opts.batchSize,
    undefined,
    stepsPerEpoch,
    steps !== undefined,
  );
  const result = await train(model, data, {
    epochs: opts.epochs,
    batchSize: opts.batchSize,
    learningRate: opts.learningRate,
    seed: opts.seed,
    ...opts.recipe,
    resume,
    // also within an epoch, so a budget of one epoch or less resumes after a crash too
    checkpointEverySteps: checkpointInterval(stepsPerEpoch),
    onPrepare: (done, total, what) => {
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
      beat(ctx, { step: done, total, what, checkpoint: lastCheckpoint });
    },
    onStep: (step, total, loss) => {
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
      totalSteps = total;
      beat(ctx, { ...rate.progress(step, total, loss), checkpoint: lastCheckpoint });
    },
    onCheckpoint: async (step, _epoch, state) => {
      const rel = path.join(ckptDir, `step-${String(step).padStart(8, '0')}`);
      await saveModel(model, art.abs(rel), encodeTrainState(state));
      lastCheckpoint = (await art.publish(rel)).ref;
      beat(ctx, { ...rate.last(), checkpoint: lastCheckpoint });
      pruneCheckpoints(art.abs(ckptDir), opts.keepCheckpoints);
      await dropOlder(art, ckptDir, opts.keepCheckpoints, step);
    },
  });
  return { model, result };
}

/** An activity's log line at WARN (`PRUNEWISE_LOG_LEVEL=WARN` shows it); a context without a logger (unit tests' fakes) says nothing. */
function warn(ctx: Context, message: string): void {
  (ctx as { log?: { warn(m: string): void } }).log?.warn(message);
}

/**
 * The store's copies of a stage's checkpoints up to step `upTo` (also those another worker wrote): the
 * newest `keep` stay, the others' refs are dropped and their blobs deleted unless another ref holds them.
 * Pending refs (a publish killed midway) up to `upTo` are dropped too. Later steps (an earlier attempt's,
 * whole or not) are left: this attempt writes them again when it gets there.
 */
async function dropOlder(art: Artifacts, ckptDir: string, keep: number, upTo: number): Promise<void> {
  const refs = (await art.store.refs(`${ckptDir}/`)).filter((r) => CHECKPOINT_NAME.test(r.name) && Number(CHECKPOINT_NAME.exec(r.name)![2]) <= upTo);
  // the newest whole ones stay; a pending one (a publish killed midway) never takes a whole one's place
  const kept = new Set(
    refs
      .filter((r) => !r.pending)
      .map((r) => r.name)
      .sort()
      .reverse()
      .slice(0, keep),
  );
  const old = refs.map((r) => r.name).filter((n) => !kept.has(n));
  if (old.length) await art.store.unpin(old);
}

const CHECKPOINT_NAME = /(^|\/)step-(\d+)$/;

/** Where a resume found its checkpoint: the model (loaded), its training state, its name, and its ref when the store holds it whole. */
export interface FoundCheckpoint {
  model: tfl.LayersModel;
  state: TrainState;
  /** home-relative, `<ckptDir>/step-<8 digits>` */
  name: string;
  step: number;
  /** `<name>@<key>` when the store holds this checkpoint whole (not pending); undefined when only this home's folder (or a checkout of a pending ref) is */
  ref?: string;
}

/**
 * The newest checkpoint of a stage that is whole and verifiable, wherever it is: the heartbeat's
 * (`<name>@<key>`, fetched from the store when another worker wrote it), the store's refs under
 * `ckptDir`, and this home's whole folders (model and training state, written by one checked atomic
 * write), newest step first whatever the source. For one step the store's copy is tried first
 * (checked out verified: a local file that fails its sha256 is fetched again); this home's folder as
 * it is comes next, so a kill between writing a checkpoint and storing it whole (a ref whose blobs or
 * manifest never arrived) costs nothing. A candidate is taken only if its training state reads and its
 * model loads; every one passed over is said through `warn`, with the reason.
 * @returns undefined when there is none (training starts from the stage's model)
 * @throws what listing the store's refs throws (TransientIOError: the store is away; retried)
 */
export async function findResume(
  art: Artifacts,
  ckptDir: string,
  heartbeatRef: string | undefined,
  warn: (message: string) => void,
): Promise<FoundCheckpoint | undefined> {
  interface Candidate {
    step: number;
    name: string;
    /** `<name>@<key>` (heartbeat, store) or undefined: this home's folder as it is */
    ref?: string;
    from: string;
  }
  const candidates: Candidate[] = [];
  const add = (ref: string | undefined, from: string) => {
    const name = ref === undefined ? undefined : parseRef(ref).name;
    const m = name === undefined ? null : CHECKPOINT_NAME.exec(name);
    if (!m || !name) return;
    if (candidates.some((c) => c.ref === ref && ref !== name)) return; // the same key twice
    candidates.push({ step: Number(m[2]), name, ref: ref === name ? undefined : ref, from });
  };
  sweepDeadTemps(art.abs(ckptDir)); // a checkpoint a killed writer had moved aside is put back first
  if (heartbeatRef) add(heartbeatRef, "the heartbeat's");
  // a pending ref (its publish, or its clean-up, was killed midway) is tried too: its checkout verifies every file against the key
  const pending = new Set<string>();
  for (const r of await art.store.refs(`${ckptDir}/`)) {
    add(`${r.name}@${r.key}`, r.pending ? "the store's (pending)" : "the store's");
    if (r.pending) pending.add(`${r.name}@${r.key}`);
  }
  for (const c of wholeCheckpoints(art.abs(ckptDir))) add(path.join(ckptDir, c.name), "this home's folder");
  // newest first; for one step a verified copy (a key) before the folder as it is
  candidates.sort((a, b) => b.step - a.step || Number(a.ref === undefined) - Number(b.ref === undefined));
  for (const c of candidates) {
    let model: tfl.LayersModel | undefined;
    try {
      const dir = c.ref ? await art.local(c.ref) : art.abs(c.name); // a ref: checked out, verified against its key
      if (!isWholeCheckpoint(dir)) throw new Error(`${dir} lacks the model's or the training state's files`);
      const state = readTrainState(dir);
      model = await loadModel(dir);
      if (state.step !== c.step) throw new Error(`its training state is at step ${state.step}`);
      // from a pending ref: no ref handed on (the caller publishes the checkout again, whole)
      return { model, state, name: c.name, step: c.step, ref: c.ref && !pending.has(c.ref) ? c.ref : undefined };
    } catch (e) {
      model?.dispose();
      warn(`checkpoint ${c.name} (${c.from}${c.ref ? ` ${parseRef(c.ref).key}` : ''}) passed over: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return undefined;
}

/** Checkpoints per epoch besides the one at its end (each a model folder published to the artifact store). */
export const CHECKPOINTS_PER_EPOCH = 4;
/** Steps between checkpoints within an epoch: a quarter epoch (CHECKPOINTS_PER_EPOCH), at least MIN_CHECKPOINT_STEPS. */
export const MIN_CHECKPOINT_STEPS = 25;
export function checkpointInterval(stepsPerEpoch: number): number {
  return Math.max(MIN_CHECKPOINT_STEPS, Math.ceil(stepsPerEpoch / CHECKPOINTS_PER_EPOCH));
}

/**
 * Progress details of a training stage (core/progress StageProgressDetails): epoch and batch in
 * progress (a budget in batches: the step of that budget, "step 5/12"), throughput over this attempt (wall clock, from its second step on: the first one
 * compiles kernels) and the seconds the remaining steps need at that rate.
 */
export function trainingRate(
  epochs: number,
  batchSize: number,
  now: () => number = () => performance.now(),
  stepsPerEpoch?: number,
  /** the budget was given in batches (finetune.batches): progress counts batches of that budget, not epochs */
  byBatches = false,
) {
  let first: { step: number; t: number } | undefined;
  let latest: StageProgressDetails = {};
  return {
    progress(step: number, total: number, loss: number | null): StageProgressDetails {
      const t = now();
      const perEpoch = stepsPerEpoch ?? Math.max(1, Math.round(total / Math.max(1, epochs)));
      if (!first) first = { step, t };
      const s = (t - first.t) / 1000;
      const samplesPerSecond = step > first.step && s > 0 ? ((step - first.step) * batchSize) / s : undefined;
      latest = {
        step,
        total,
        ...(byBatches
          ? {}
          : { epoch: Math.min(epochs, Math.floor((step - 1) / perEpoch) + 1), epochs, batch: ((step - 1) % perEpoch) + 1, batchesPerEpoch: perEpoch }),
        ...(samplesPerSecond
          ? { samplesPerSecond: Math.round(samplesPerSecond * 10) / 10, secondsLeft: Math.round(((total - step) * batchSize) / samplesPerSecond) }
          : {}),
        ...(loss !== null && Number.isFinite(loss) ? { loss } : {}),
      };
      return latest;
    },
    last: (): StageProgressDetails => latest,
  };
}

/** The newest whole checkpoint (model and training state) in `dir` (absolute), if any. */
export function newestCheckpoint(dir: string): { name: string; step: number } | undefined {
  return wholeCheckpoints(dir)[0];
}

/** The whole checkpoints (model and training state) in `dir` (absolute), newest first. */
export function wholeCheckpoints(dir: string): Array<{ name: string; step: number }> {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
    .filter((e) => e.m && isWholeCheckpoint(path.join(dir, e.name)))
    .map((e) => ({ name: e.name, step: Number(e.m![1]) }))
    .sort((a, b) => b.step - a.step);
}

/**
 * Keeps the newest `keep` checkpoints and removes leftovers of interrupted writes by processes that are
 * gone (ml/files sweepDeadTemps: a live writer's are left, a whole folder moved aside is put back); returns the checkpoints removed.
 */
export function pruneCheckpoints(dir: string, keep: number): string[] {
  sweepDeadTemps(dir);
  const steps = fs
    .readdirSync(dir)
    .filter((n) => /^step-\d+$/.test(n))
    .sort()
    .reverse();
  for (const old of steps.slice(keep)) fs.rmSync(path.join(dir, old), { recursive: true, force: true });
  return steps.slice(keep);
}
