// Physical removal of channels: rebuild a smaller model (not a mask) from a plan that keeps, per
// group, a list of channel indices. Works on any model ml/graph.ts can analyse.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { analyze, keptPositions, RULES, type Graph, type Slice } from './graph';
import { ModelError } from '../core/errors';

/** The user's model has a structure this step cannot handle (bad input). */
export class PruneError extends ModelError {
  override name = 'PruneError';
}

/** A plan: group name → sorted channel indices to keep. Groups not named keep everything. */
export type KeepPlan = Record<string, number[]>;

/** Keeps the listed indices along one axis (done on the host: small, exact, backend-independent). */
function gather(t: tf.Tensor, idx: number[], axis: number): tf.Tensor {
  const shape = t.shape;
  if (axis < 0) axis += shape.length;
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

function resolvePlan(graph: Graph, keep: KeepPlan): Map<number, Set<number>> {
  const byId = new Map<number, Set<number>>();
  for (const [name, kept] of Object.entries(keep)) {
    const group = graph.groupByName(name);
    if (!group) {
      const blocked = graph.blocked.find((b) => b.name === name);
      throw new PruneError(
        `"${name}" is not a prunable group${blocked ? `: ${blocked.reason}` : ''}: prunable groups are ${graph.groups.map((g) => g.name).join(', ')}`,
      );
    }
    if (kept.length === 0) throw new PruneError(`group "${name}": cannot remove every channel`);
    if (kept.some((i) => !Number.isInteger(i) || i < 0 || i >= group.size)) throw new PruneError(`group "${name}": kept indices must be 0..${group.size - 1}`);
    byId.set(group.id, new Set(kept));
  }
  return byId;
}

/**
 * The smaller architecture a plan leaves, built from the topology alone (fresh weights): every
 * producer of a planned group gets the kept channel count. Surgery and FLOPs estimates share it.
 */
export async function buildPrunedArchitecture(model: tfl.LayersModel, keep: KeepPlan, graph: Graph): Promise<tfl.LayersModel> {
  const topology = model.toJSON(null, false) as { config: { layers: Array<{ name?: string; config: Record<string, unknown> }> } };
  const configs = new Map(topology.config.layers.map((l) => [(l.name ?? l.config.name) as string, l.config]));
  for (const [name, kept] of Object.entries(keep)) {
    for (const p of graph.groupByName(name)!.producers) {
      configs.get(p)![RULES[model.getLayer(p).getClassName()].key!] = kept.length;
    }
  }
  return tfl.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
}

/** Rebuilds the model keeping the planned channels and their weights. The input is not modified. */
export async function pruneModel(model: tfl.LayersModel, keep: KeepPlan, graph = analyze(model)): Promise<tfl.LayersModel> {
  const plan = resolvePlan(graph, keep);
  const sliced = new Map<string, tf.Tensor[]>();
  const created: tf.Tensor[] = [];
  try {
    for (const layer of model.layers) {
      const rule = RULES[layer.getClassName()];
      const inMap = graph.inputMap.get(layer.name);
      if (!rule || !inMap) continue;
      let weights = layer.getWeights();
      const m = multiplierOf(layer);
      const replace = (slices: Slice[] | undefined, idx: number[] | undefined) => {
        if (!slices || !idx) return;
        weights = weights.map((w, k) => {
          const s = slices.find(([wi]) => wi === k);
          if (!s) return w;
          const t = gather(w, s[2] ? expand(idx, m) : idx, s[1]);
          created.push(t);
          return t;
        });
      };
      const inKept = keptPositions(graph, inMap, plan);
      if (inKept.length !== inMap.length) replace(rule.in, inKept);
      const g = graph.producerGroup.get(layer.name);
      const outKept = g === undefined ? undefined : plan.get(graph.root(g));
      if (outKept)
        replace(
          rule.out,
          [...outKept].sort((a, b) => a - b),
        );
      sliced.set(layer.name, weights);
    }
    const pruned = await buildPrunedArchitecture(model, keep, graph);
    for (const layer of model.layers) {
      const ws = sliced.get(layer.name) ?? layer.getWeights();
      if (ws.length) pruned.getLayer(layer.name).setWeights(ws);
    }
    return pruned;
  } finally {
    for (const t of created) t.dispose();
  }
}

/** A depthwise layer's depth_multiplier (1 for every other layer). */
const multiplierOf = (layer: tfl.layers.Layer): number => (layer as unknown as { depthMultiplier?: number }).depthMultiplier ?? 1;

/** Channel indices → the indices of their M consecutive copies (c·M … c·M+M−1): depth_multiplier outputs. */
const expand = (idx: number[], m: number): number[] => (m === 1 ? idx : idx.flatMap((i) => Array.from({ length: m }, (_, j) => i * m + j)));

/**
 * The reference a pruned model must equal: the original with every consumer's input weights
 * zeroed at the removed channels' positions (so those channels contribute nothing downstream).
 * Modifies `model` in place; used by the equivalence tests.
 */
export function silenceRemoved(model: tfl.LayersModel, keep: KeepPlan, graph = analyze(model)): void {
  const plan = resolvePlan(graph, keep);
  for (const layer of model.layers) {
    const rule = RULES[layer.getClassName()];
    const inMap = graph.inputMap.get(layer.name);
    if (!rule || rule.kind !== 'producer' || !inMap) continue;
    const keptIdx = keptPositions(graph, inMap, plan);
    if (keptIdx.length === inMap.length) continue;
    const weights = layer.getWeights().map((w, k) => {
      const s = (rule.silence ?? rule.in ?? []).find(([wi]) => wi === k);
      if (!s) return w;
      const kept = new Set(s[2] ? expand(keptIdx, multiplierOf(layer)) : keptIdx);
      const axis = s[1] < 0 ? s[1] + w.shape.length : s[1];
      const data = (w.dataSync() as Float32Array).slice();
      const inner = w.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      const n = w.shape[axis];
      for (let i = 0; i < data.length; i++) if (!kept.has(Math.floor(i / inner) % n)) data[i] = 0;
      return tf.tensor(data, w.shape);
    });
    layer.setWeights(weights);
  }
}

/** Channels of every prunable group: what shrank shows here. */
export function layerChannels(model: tfl.LayersModel, graph = analyze(model)): Record<string, number> {
  return Object.fromEntries(graph.groups.map((g) => [g.name, g.size]));
}
