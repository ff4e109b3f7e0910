// Resumable training: checkpoints as tfjs model folders `step-<8 digits>` under a stage's
// checkpoint folder, each with the whole training state (optimizer moments and step count, data
// position, loss series: ml/train-state.ts) written in the same atomic folder write; a retried
// stage resumes from the heartbeat's checkpoint, else the newest whole one on disk, and continues
// bit for bit as if never interrupted. A folder without its training state is never resumed from.
// The newest `keepCheckpoints` are kept.
import { Context } from '@temporalio/activity';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeTrainState, isWholeCheckpoint, readTrainState, saveModel, train, type Split, type TrainResult, type TrainState } from '../ml';
import type { Artifacts } from './artifacts';
import { beat } from './stage';
import type { StageProgressDetails } from '../core';

export interface ResumableTrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  keepCheckpoints: number;
}

/**
 * Trains with checkpoints; resumes from the heartbeat's checkpoint or the newest one on disk.
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
  // the heartbeat's checkpoint, else the newest whole one on disk; one whose state cannot be read is passed over
  const candidates = [
    ...(details?.checkpoint && isWholeCheckpoint(art.abs(details.checkpoint)) ? [details.checkpoint] : []),
    ...wholeCheckpoints(art.abs(ckptDir)).map((c) => path.join(ckptDir, c.name)),
  ];
  let resumeFrom: { dir: string } | undefined;
  let resume: TrainState | undefined;
  for (const dir of candidates) {
    try {
      resume = readTrainState(art.abs(dir));
      resumeFrom = { dir };
      break;
    } catch {
      // unreadable training state: try the next older checkpoint
    }
  }
  const model = resumeFrom ? await art.loadModel(resumeFrom.dir) : await start();
  let lastCheckpoint = resumeFrom?.dir;
  let totalSteps: number | undefined;
  const rate = trainingRate(opts.epochs, opts.batchSize);
  const result = await train(model, data, {
    epochs: opts.epochs,
    batchSize: opts.batchSize,
    learningRate: opts.learningRate,
    seed: opts.seed,
    resume,
    onStep: (step, total, loss) => {
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
      totalSteps = total;
      beat(ctx, { ...rate.progress(step, total, loss), checkpoint: lastCheckpoint });
    },
    onCheckpoint: async (step, _epoch, state) => {
      const rel = path.join(ckptDir, `step-${String(step).padStart(8, '0')}`);
      await saveModel(model, art.abs(rel), encodeTrainState(state));
      lastCheckpoint = rel;
      beat(ctx, { ...rate.last(), checkpoint: rel });
      pruneCheckpoints(art.abs(ckptDir), opts.keepCheckpoints);
    },
  });
  return { model, result };
}

/**
 * Progress details of a training stage (core/progress StageProgressDetails): epoch and batch in
 * progress, throughput over this attempt (wall clock, from its second step on: the first one
 * compiles kernels) and the seconds the remaining steps need at that rate.
 */
export function trainingRate(epochs: number, batchSize: number, now: () => number = () => performance.now()) {
  let first: { step: number; t: number } | undefined;
  let latest: StageProgressDetails = {};
  return {
    progress(step: number, total: number, loss: number | null): StageProgressDetails {
      const t = now();
      const perEpoch = Math.max(1, Math.round(total / Math.max(1, epochs)));
      if (!first) first = { step, t };
      const s = (t - first.t) / 1000;
      const samplesPerSecond = step > first.step && s > 0 ? ((step - first.step) * batchSize) / s : undefined;
      latest = {
        step,
        total,
        epoch: Math.min(epochs, Math.floor((step - 1) / perEpoch) + 1),
        epochs,
        batch: ((step - 1) % perEpoch) + 1,
        batchesPerEpoch: perEpoch,
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

/** Keeps the newest `keep` checkpoints and removes leftovers of interrupted writes. */
export function pruneCheckpoints(dir: string, keep: number): void {
  const entries = fs.readdirSync(dir);
  const steps = entries
    .filter((n) => /^step-\d+$/.test(n))
    .sort()
    .reverse();
  for (const old of steps.slice(keep)) fs.rmSync(path.join(dir, old), { recursive: true, force: true });
  for (const tmp of entries.filter((n) => /\.(tmp|old)-\d+-/.test(n))) {
    const pid = Number(/-(\d+)-/.exec(tmp)![1]);
    if (pid !== process.pid) fs.rmSync(path.join(dir, tmp), { recursive: true, force: true });
  }
}
