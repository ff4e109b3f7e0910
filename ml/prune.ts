// Structured pruning of Sequential tfjs models: find which layers' channels are coupled, score
// units/filters, and rebuild a physically smaller model (not a mask) with the kept weights.
//
// One registry keyed by layer class says how each layer reads and slices its channels; the
// coupling walk, the importance criteria and the surgery all use it, so a new layer type is one
// entry. (Residual adds, concatenations and depthwise convolutions need the functional-graph
// walk of the pruning-engine issue; until then such models get a clear error.)
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { rng } from './random';

export class PruneError extends Error {
  override name = 'PruneError';
}

interface LayerRule {
  /** produces channels it owns (units/filters) that can be removed */
  producer?: { key: 'units' | 'filters'; outAxis: number; inAxis: number };
  /** carries channels through unchanged (index i in → index i out) */
  passThrough?: boolean;
  /** one weight row per channel along axis 0 of every weight (batch norm) */
  perChannel?: boolean;
  /** channels-last flatten: channel c becomes units s·C + c for every spatial position s */
  flatten?: boolean;
}

const RULES: Record<string, LayerRule> = {
  Dense: { producer: { key: 'units', outAxis: 1, inAxis: 0 } },
  Conv2D: { producer: { key: 'filters', outAxis: 3, inAxis: 2 } },
  BatchNormalization: { perChannel: true },
  Activation: { passThrough: true },
  ReLU: { passThrough: true },
  Dropout: { passThrough: true },
  MaxPooling2D: { passThrough: true },
  AveragePooling2D: { passThrough: true },
  ZeroPadding2D: { passThrough: true },
  Flatten: { flatten: true },
};

export interface PrunableGroup {
  /** index in model.layers of the layer whose outputs are removed */
  producer: number;
  name: string;
  units: number;
}

function assertSequential(model: tfl.LayersModel): void {
  if (!(model instanceof tfl.Sequential)) {
    throw new PruneError(`model "${model.name}": only Sequential models can be pruned for now (functional graphs with residual adds or concatenations come with the pruning-engine work)`);
  }
  for (const l of model.layers) {
    if (!RULES[l.getClassName()]) {
      throw new PruneError(`layer "${l.name}" (${l.getClassName()}): this layer type is not supported for pruning yet: supported are ${Object.keys(RULES).join(', ')}`);
    }
  }
}

/** Producers whose outputs feed another producer: every one but the last (the classifier). */
export function prunableGroups(model: tfl.LayersModel): PrunableGroup[] {
  assertSequential(model);
  const producers = model.layers.map((l, i) => ({ l, i })).filter(({ l }) => RULES[l.getClassName()].producer);
  return producers.slice(0, -1).map(({ l, i }) => ({
    producer: i,
    name: l.name,
    units: (l.getConfig() as Record<string, number>)[RULES[l.getClassName()].producer!.key],
  }));
}

export type Criterion = 'l1' | 'l2' | 'random';

/** Importance of each output unit/filter of each group (higher = more important). */
export function scoreGroups(model: tfl.LayersModel, criterion: Criterion, seed: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const random = rng(seed);
  for (const g of prunableGroups(model)) {
    const layer = model.layers[g.producer];
    const kernel = layer.getWeights()[0];
    if (criterion === 'random') {
      out[g.name] = Array.from({ length: g.units }, () => random());
      continue;
    }
    out[g.name] = tf.tidy(() => {
      const rows = tf.reshape(kernel, [-1, g.units]); // units are the last axis of dense and conv kernels
      const s = criterion === 'l1' ? tf.sum(tf.abs(rows), 0) : tf.sqrt(tf.sum(tf.square(rows), 0));
      return Array.from(s.dataSync());
    });
  }
  return out;
}

/** Keeps the highest-scoring units of each group: removes `ratio` of them, never below minUnits. */
export function planUniform(scores: Record<string, number[]>, ratio: number, minUnits: number): Record<string, number[]> {
  const keep: Record<string, number[]> = {};
  for (const [name, s] of Object.entries(scores)) {
    const nKeep = Math.min(s.length, Math.max(minUnits, s.length - Math.floor(s.length * ratio)));
    const order = s.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v || a.i - b.i);
    keep[name] = order
      .slice(0, nKeep)
      .map((o) => o.i)
      .sort((a, b) => a - b);
  }
  return keep;
}

/** Keeps the listed indices along one axis (done on the host: small, exact, backend-independent). */
function gather(t: tf.Tensor, idx: number[], axis: number): tf.Tensor {
  const shape = t.shape;
  const src = t.dataSync() as Float32Array;
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = shape[axis];
  const out = new Float32Array(outer * idx.length * inner);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const i of idx) {
      const from = (a * n + i) * inner;
      out.set(src.subarray(from, from + inner), o);
      o += inner;
    }
  }
  return tf.tensor(out, [...shape.slice(0, axis), idx.length, ...shape.slice(axis + 1)]);
}

/**
 * Rebuilds a smaller model keeping, for each pruned layer (by name), the listed output units.
 * Layers not named keep all their units. The input model is not modified.
 */
export async function pruneModel(model: tfl.LayersModel, keep: Record<string, number[]>): Promise<tfl.LayersModel> {
  assertSequential(model);
  const groupNames = new Set(prunableGroups(model).map((g) => g.name));
  for (const name of Object.keys(keep)) {
    if (!groupNames.has(name)) throw new PruneError(`layer "${name}" is not a prunable group of model "${model.name}"`);
  }
  const topology = model.toJSON(null, false) as { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } };
  const newWeights: tf.Tensor[][] = [];
  // channel index list flowing forward from the last pruned producer (undefined = nothing pruned)
  let flowing: number[] | undefined;
  try {
    model.layers.forEach((layer, i) => {
      const rule = RULES[layer.getClassName()];
      let weights = layer.getWeights();
      if (rule.producer) {
        if (flowing) weights = [gather(weights[0], flowing, rule.producer.inAxis), ...weights.slice(1)];
        const kept = keep[layer.name];
        if (kept) {
          if (kept.length === 0) throw new PruneError(`layer "${layer.name}": cannot remove every unit`);
          const inSliced = weights[0];
          weights = [gather(inSliced, kept, rule.producer.outAxis), ...weights.slice(1).map((b) => gather(b, kept, 0))];
          if (flowing) inSliced.dispose(); // an intermediate, not the layer's variable
          topology.config.layers[i].config[rule.producer.key] = kept.length;
        }
        flowing = kept;
      } else if (rule.perChannel && flowing) {
        weights = weights.map((w) => gather(w, flowing!, 0));
      } else if (rule.flatten && flowing) {
        const shape = (layer.input as tfl.SymbolicTensor).shape as number[]; // [null, h, w, c] or [null, c]
        const channels = shape[shape.length - 1];
        const spatial = shape.slice(1, -1).reduce((a, b) => a * b, 1);
        const expanded: number[] = [];
        for (let s = 0; s < spatial; s++) for (const c of flowing) expanded.push(s * channels + c);
        flowing = expanded;
      }
      newWeights.push(weights);
    });
    const pruned = await tfl.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
    pruned.layers.forEach((l, i) => l.setWeights(newWeights[i]));
    return pruned;
  } finally {
    const original = new Set(model.layers.flatMap((l) => l.getWeights()));
    for (const ws of newWeights) for (const w of ws) if (!original.has(w)) w.dispose();
  }
}

/** Channels of every prunable layer: what shrank shows here. */
export function layerWidths(model: tfl.LayersModel): Record<string, number> {
  return Object.fromEntries(prunableGroups(model).map((g) => [g.name, g.units]));
}
