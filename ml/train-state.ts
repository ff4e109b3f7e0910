// The training state a checkpoint carries next to its tfjs model folder, so a resumed train
// continues bit for bit: the optimizer (Adam's step count and moments), the data-order position
// (seed, step; the epoch's permutation is a function of both) and the loss series so far.
// Two files: `training-state.json` and `optimizer.bin` (the moments, float32 little-endian,
// per variable m then v), written in the same atomic folder write as model.json and weights.bin.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AdamState } from './adam';

export const TRAIN_STATE_FILE = 'training-state.json';
export const OPTIMIZER_FILE = 'optimizer.bin';

/**
 * What a training's recipe (ml/recipe.ts) changes, as train.ts recipeKeyOf records it: only what differs from
 * the plain recipe (constant rate, no smoothing, no distillation, no penalty) — {} for a plain training and
 * for checkpoints written before recipes existed. A resume must have the same key.
 */
export interface RecipeKey {
  /** the budget in steps, when the rates depend on it (a schedule) or it was given in steps */
  totalSteps?: number;
  schedule?: { kind: string; warmup: number };
  labelSmoothing?: number;
  distill?: { weight: number; temperature: number; attention?: number };
  sparsity?: { strength: number; growth: number; alpha: number; protect?: string[] };
  augment?: { flip: boolean; shift: number };
}

export interface TrainState {
  /** optimizer steps done */
  step: number;
  /** what the data order and the run depend on: a resume with other values would not continue the same run */
  seed: number;
  batchSize: number;
  learningRate: number;
  shardSize: number;
  /** the recipe (absent in older checkpoints: the plain one) */
  recipe?: RecipeKey;
  /** examples in the training split, and a fingerprint of their labels */
  n: number;
  labels: string;
  /** mean loss of every finished epoch, and the current epoch's running sum and count */
  epochLoss: Array<[number, number]>;
  lossSum: number;
  lossCount: number;
  /** mean loss per group of consecutive batches so far ([last step of the group, mean]) and the open group's sum and count (absent in older checkpoints) */
  batchLoss?: Array<[number, number]>;
  batchSum?: number;
  batchCount?: number;
  optimizer: AdamState;
}

/** The two files of a state (name → contents), for writeDirAtomic next to the model's files. */
export function encodeTrainState(s: TrainState): Record<string, string | Uint8Array> {
  const sizes = s.optimizer.m.map((a) => a.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  const bin = new Float32Array(2 * total);
  let o = 0;
  s.optimizer.m.forEach((m, k) => {
    bin.set(m, o);
    bin.set(s.optimizer.v[k], o + m.length);
    o += 2 * m.length;
  });
  const { optimizer, ...rest } = s;
  const json = { format: 'prunewise-training-state', version: 1, ...rest, optimizer: { t: optimizer.t, sizes } };
  return { [TRAIN_STATE_FILE]: JSON.stringify(json), [OPTIMIZER_FILE]: new Uint8Array(bin.buffer) };
}

/** Reads a state back from the two files' contents. @throws Error when they do not fit together */
export function decodeTrainState(json: string, bin: Uint8Array): TrainState {
  const j = JSON.parse(json) as Omit<TrainState, 'optimizer'> & { format: string; version: number; optimizer: { t: number; sizes: number[] } };
  if (j.format !== 'prunewise-training-state' || j.version !== 1) throw new Error(`not a prunewise training state (version 1)`);
  const total = j.optimizer.sizes.reduce((a, b) => a + b, 0);
  if (bin.byteLength !== 8 * total) throw new Error(`${OPTIMIZER_FILE} holds ${bin.byteLength} bytes, the state describes ${8 * total}`);
  const all = new Float32Array(bin.slice().buffer);
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  let o = 0;
  for (const size of j.optimizer.sizes) {
    m.push(all.slice(o, o + size));
    v.push(all.slice(o + size, o + 2 * size));
    o += 2 * size;
  }
  const { format: _f, version: _v, optimizer, ...rest } = j;
  return { ...rest, optimizer: { t: optimizer.t, m, v } };
}

/** Whether a checkpoint folder is whole: the model's files and the training state's. */
export function isWholeCheckpoint(dir: string): boolean {
  return ['model.json', 'weights.bin', TRAIN_STATE_FILE, OPTIMIZER_FILE].every((f) => fs.existsSync(path.join(dir, f)));
}

/** Reads a checkpoint folder's training state. @throws Error when it is missing or does not fit together */
export function readTrainState(dir: string): TrainState {
  return decodeTrainState(fs.readFileSync(path.join(dir, TRAIN_STATE_FILE), 'utf8'), fs.readFileSync(path.join(dir, OPTIMIZER_FILE)));
}
