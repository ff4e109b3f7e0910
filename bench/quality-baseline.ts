// bench:quality's converged baselines: each zoo net trained on the whole Fashion-MNIST training split
// (60 000 images) with Adam and a cosine learning-rate schedule (per epoch, after a one-epoch linear
// warm-up), cached under bench/.quality-cache/<net>-<key>/ (gitignored) keyed by the training config, so
// a rerun loads instead of retraining. The schedule is driven from here: train() is called once per
// epoch with that epoch's learning rate, continuing the same Adam state (its moments and step count)
// through `resume`, so the schedule does not restart the optimizer.
import type * as tfl from '@tensorflow/tfjs-layers';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildZooModel, evaluate, loadModel, saveModel, train, type AugmentOptions, type Dataset, type Split, type TrainState } from '../ml';

export interface BaselineConfig {
  net: string;
  epochs: number;
  batchSize: number;
  /** peak learning rate (after warm-up), cosine-decayed to `minLearningRate` at the last epoch */
  learningRate: number;
  minLearningRate: number;
  warmupEpochs: number;
  /** the zoo model's initialiser seed and the data-order seed */
  seed: number;
  /** label smoothing ε of the baseline's training (Szegedy et al. 2016); absent = none (and absent from the cache key) */
  labelSmoothing?: number;
  /** image augmentation of the baseline's training (train()'s `augment`: flips, shifts); absent = none (and absent from the cache key) */
  augment?: AugmentOptions;
}

export const CACHE_DIR = path.join(__dirname, '..', '..', 'bench', '.quality-cache');

/** The learning rate of epoch `e` (0-based): linear warm-up, then cosine from `peak` to `min` (Loshchilov & Hutter 2017, SGDR without restarts). */
export function scheduledRate(e: number, epochs: number, peak: number, min: number, warmup: number): number {
  if (e < warmup) return (peak * (e + 1)) / (warmup + 1);
  const t = epochs - warmup <= 1 ? 1 : (e - warmup) / (epochs - warmup - 1);
  return min + 0.5 * (peak - min) * (1 + Math.cos(Math.PI * t));
}

const STOP = new Error('epoch done');

/**
 * Trains `model` for `epochs` epochs, epoch e at rate lrAt(e), with one continuous Adam state
 * (train() is resumed at each epoch boundary with the next rate). Returns the mean loss per epoch.
 */
export async function trainWithSchedule(
  model: tfl.LayersModel,
  data: Split,
  o: {
    epochs: number;
    batchSize: number;
    seed: number;
    labelSmoothing?: number;
    augment?: AugmentOptions;
    lrAt: (epoch: number) => number;
    onEpoch?: (e: number, loss: number) => void;
  },
): Promise<number[]> {
  let state: TrainState | undefined;
  const losses: number[] = [];
  for (let e = 0; e < o.epochs; e++) {
    const lr = o.lrAt(e);
    try {
      await train(model, data, {
        epochs: o.epochs,
        batchSize: o.batchSize,
        learningRate: lr,
        seed: o.seed,
        labelSmoothing: o.labelSmoothing,
        augment: o.augment,
        resume: state ? { ...state, learningRate: lr } : undefined,
        onCheckpoint: async (_step, epoch, s) => {
          if (epoch !== e) return;
          state = s;
          throw STOP;
        },
      });
    } catch (err) {
      if (err !== STOP) throw err;
    }
    const loss = state!.epochLoss[state!.epochLoss.length - 1]?.[1] ?? NaN;
    losses.push(loss);
    o.onEpoch?.(e, loss);
  }
  return losses;
}

export function baselineKey(c: BaselineConfig, trainN: number): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify({ ...c, dataset: 'fashion-mnist', trainN, v: 1 }))
    .digest('hex')
    .slice(0, 12);
}

export interface Baseline {
  dir: string;
  config: BaselineConfig;
  testAccuracy: number;
  epochLoss: number[];
  trainSeconds: number;
  backend: string;
  cached: boolean;
}

/** The converged baseline for `c`: from the cache, else trained (on the whole `train` split) and cached. */
export async function ensureBaseline(c: BaselineConfig, ds: Dataset, trainSplit: Split, backend: string, log: (s: string) => void): Promise<Baseline> {
  const dir = path.join(CACHE_DIR, `${c.net}-${baselineKey(c, trainSplit.n)}`);
  const meta = path.join(dir, 'baseline.json');
  if (fs.existsSync(meta)) {
    const m = JSON.parse(fs.readFileSync(meta, 'utf8')) as Omit<Baseline, 'dir' | 'cached'>;
    return { ...m, dir, cached: true };
  }
  const model = buildZooModel(c.net, c.seed, ds.shape, ds.classes);
  const t0 = performance.now();
  log(`${c.net}: training the baseline (${c.epochs} epochs × ${trainSplit.n} images, cosine from ${c.learningRate}, key ${baselineKey(c, trainSplit.n)})…`);
  const epochLoss = await trainWithSchedule(model, trainSplit, {
    epochs: c.epochs,
    batchSize: c.batchSize,
    seed: c.seed,
    labelSmoothing: c.labelSmoothing,
    augment: c.augment,
    lrAt: (e) => scheduledRate(e, c.epochs, c.learningRate, c.minLearningRate, c.warmupEpochs),
    onEpoch: (e, loss) => log(`${c.net} epoch ${e + 1}/${c.epochs}: loss ${loss.toFixed(4)} (${((performance.now() - t0) / 60000).toFixed(1)} min)`),
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const testAccuracy = (await evaluate(model, ds.test)).accuracy;
  await saveModel(model, dir);
  model.dispose();
  const m = { config: c, testAccuracy, epochLoss, trainSeconds, backend };
  fs.writeFileSync(meta, JSON.stringify(m, null, 1));
  log(`${c.net}: baseline test accuracy ${(testAccuracy * 100).toFixed(2)} % (${(trainSeconds / 60).toFixed(1)} min)`);
  return { ...m, dir, cached: false };
}

/** A model of a cached baseline. */
export const loadBaseline = (b: Baseline): Promise<tfl.LayersModel> => loadModel(b.dir);
