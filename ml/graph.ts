// Which channels of a tfjs LayersModel must be pruned together (Torch-Pruning's "groups"), for
// Sequential and functional models alike.
//
// Every tensor's last axis is described by a channel map: position p holds channel i of group g
// (or nothing prunable, e.g. the input image). A producer (Dense, Conv1D/2D/3D, transposed and
// separable convs) opens a group; batch norms, PReLU and depthwise convs follow their input
// channels (a depth_multiplier M repeats each M times); Flatten and Reshape repeat them per
// position; residual adds join their inputs' groups; concatenations on the channel axis lay them
// side by side. The support matrix (ml/support.ts) says, per layer class, how it reads and slices
// channels, what blocks and what is refused: the analysis, the criteria, the surgery and the cost
// model all use it, so a new layer type is one entry there.
import type * as tfl from '@tensorflow/tfjs-layers';
import { ModelError } from '../core/errors';
import { resolveAxis, ruleOf, SUPPORT, unknownClass, type LayerRule, type LayerView, type Slice } from './support';

/** The user's model has a structure this step cannot handle (bad input). */
export class GraphError extends ModelError {
  override name = 'GraphError';
}

/** Per layer class: how it reads and slices channels (the support matrix, ml/support.ts). */
export const RULES: Record<string, LayerRule> = SUPPORT;
export type { LayerRule, Slice };

export interface ChannelRef {
  g: number;
  i: number;
}
export type ChannelMap = Array<ChannelRef | null>;

export interface Group {
  /** the first producer's layer name: how plans and scores refer to the group */
  name: string;
  id: number;
  size: number;
  /** layers whose output channels are this group's (more than one across residual adds) */
  producers: string[];
  /** batch norms and depthwise convs that carry the group's channels */
  followers: string[];
}

export interface Graph {
  groups: Group[];
  /** groups left unpruned (named by their first producer) and layers with weights in no group, with the reason (model output, a layer that blocks, …) */
  blocked: Array<{ name: string; reason: string }>;
  /** the blocked groups themselves (their producers and followers) */
  blockedGroups: Group[];
  /** per layer: the channel map of its (single) input, for slicing input weights */
  inputMap: Map<string, ChannelMap>;
  /** per layer: the channel map of its output (what a consumer's input channels are made of) */
  outputMap: Map<string, ChannelMap>;
  /** per producer layer: its group id (before union; resolve with root()) */
  producerGroup: Map<string, number>;
  root(g: number): number;
  isBlocked(g: number): boolean;
  groupByName(name: string): Group | undefined;
}

/** The channel count on a shape's last axis; 0 when it is not static (nothing there is prunable). */
const lastDim = (shape: Array<number | null>): number => {
  const d = shape[shape.length - 1];
  return typeof d === 'number' ? d : 0;
};

/** One layer's view for the support rules: class, tfjs config, input and output shapes (batch first). */
export function viewOf(layer: tfl.layers.Layer): LayerView {
  const node = layer.inboundNodes[0];
  const out = layer.outputShape as Array<number | null> | Array<Array<number | null>>;
  const config = layer.getConfig() as Record<string, unknown>;
  // tfjs-layers' SeparableConv2D leaves depthMultiplier out of its config (and so out of saved topologies)
  const dm = (layer as unknown as { depthMultiplier?: number }).depthMultiplier;
  if (dm !== undefined && config.depthMultiplier === undefined) config.depthMultiplier = dm;
  return {
    className: layer.getClassName(),
    config,
    inputShapes: node ? node.inputTensors.map((t) => t.shape as Array<number | null>) : [],
    outputShape: (Array.isArray(out[0]) ? out[0] : out) as Array<number | null>,
  };
}

const where = (layer: tfl.layers.Layer) => `layer "${layer.name}" (${layer.getClassName()})`;

/** Analyses a model's channel coupling. Never modifies the model. @throws GraphError for a layer called at several places (shared weights) */
export function analyze(model: tfl.LayersModel): Graph {
  const parent: number[] = [];
  const sizes: number[] = [];
  const blockedWhy = new Map<number, string>();
  const producerGroup = new Map<string, number>();
  const followersOf = new Map<number, string[]>();
  const root = (g: number): number => {
    while (parent[g] !== g) {
      parent[g] = parent[parent[g]];
      g = parent[g];
    }
    return g;
  };
  const block = (g: number, why: string) => {
    const r = root(g);
    if (!blockedWhy.has(r)) blockedWhy.set(r, why);
  };
  const union = (a: number, b: number) => {
    const ra = root(a);
    const rb = root(b);
    if (ra === rb) return;
    parent[rb] = ra;
    const why = blockedWhy.get(rb);
    if (why && !blockedWhy.has(ra)) blockedWhy.set(ra, why);
  };
  /** blocks every group on the maps; @returns whether there was one */
  const blockAll = (maps: ChannelMap[], why: string): boolean => {
    let any = false;
    for (const m of maps)
      for (const ref of m)
        if (ref) {
          block(ref.g, why);
          any = true;
        }
    return any;
  };
  const newGroup = (layer: string, n: number): ChannelMap => {
    const g = parent.length;
    parent.push(g);
    sizes.push(n);
    producerGroup.set(layer, g);
    return Array.from({ length: n }, (_, i) => ({ g, i }));
  };

  const out = new Map<string, ChannelMap>();
  const inputMap = new Map<string, ChannelMap>();
  /** layers with weights whose channels are in no group (listed, with the reason) */
  const standalone: Graph['blocked'] = [];
  for (const layer of model.layers) {
    const refusedRule = ruleOf(layer.getClassName());
    if (refusedRule?.support === 'refused') {
      // a refused class (a nested model, a wrapper, …): whatever it reads keeps its channels; nothing of it is pruned
      const why = `${where(layer)}: ${refusedRule.note}`;
      const maps = layer.inboundNodes.flatMap((n) => n.inboundLayers.map((src) => out.get(src.name) ?? []));
      if (!blockAll(maps, why) && layer.countParams() > 0) standalone.push({ name: layer.name, reason: why });
      out.set(layer.name, new Array(lastDim(viewOf(layer).outputShape)).fill(null));
      continue;
    }
    if (layer.inboundNodes.length > 1) {
      throw new GraphError(
        `${where(layer)} is called at ${layer.inboundNodes.length} places (shared weights): shared layers cannot be pruned: give each call its own layer`,
      );
    }
    const node = layer.inboundNodes[0];
    const v = viewOf(layer);
    const cls = v.className;
    const outLen = lastDim(v.outputShape);
    if (!node || cls === 'InputLayer') {
      out.set(layer.name, new Array(outLen).fill(null));
      continue;
    }
    const ins: ChannelMap[] = node.inboundLayers.map((src, k) => out.get(src.name) ?? new Array(lastDim(v.inputShapes[k])).fill(null));
    const rule = ruleOf(cls);
    const several = Array.isArray((layer.outputShape as unknown[])[0]) ? 'has several outputs' : undefined;
    const unsupported = several ?? (rule ? (rule.check?.(v) ?? rule.refuse?.(v)) : unknownClass(cls));
    if (unsupported || !rule) {
      const why = `${where(layer)}: ${unsupported}`;
      const touched = blockAll(ins, why);
      if (rule?.kind === 'producer' && !several) {
        // its own outputs are still a (blocked) group, so consumers downstream read them right
        inputMap.set(layer.name, ins[0]);
        const m = newGroup(layer.name, outLen);
        blockedWhy.set(producerGroup.get(layer.name)!, why);
        out.set(layer.name, m);
      } else {
        if (!touched && layer.countParams() > 0) standalone.push({ name: layer.name, reason: why });
        out.set(layer.name, new Array(outLen).fill(null));
      }
      continue;
    }
    // a concatenation along another axis than the channels' lines its inputs' channels up: joined like Add
    const rank = v.inputShapes[0]?.length ?? 0;
    const kind = rule.kind === 'concat' && resolveAxis(v.config.axis, rank) !== rank - 1 ? 'merge' : rule.kind;
    switch (kind) {
      case 'producer': {
        inputMap.set(layer.name, ins[0]);
        const n = (v.config[rule.key!] as number) ?? outLen;
        const m = newGroup(layer.name, n);
        const why = rule.outputCheck?.(v);
        if (why) blockedWhy.set(producerGroup.get(layer.name)!, `${where(layer)}: ${why}`);
        out.set(layer.name, m);
        break;
      }
      case 'follower': {
        inputMap.set(layer.name, ins[0]);
        let carried = false;
        for (const ref of ins[0]) {
          if (!ref) continue;
          carried = true;
          const list = followersOf.get(ref.g) ?? [];
          if (!list.includes(layer.name)) list.push(layer.name);
          followersOf.set(ref.g, list);
        }
        if (!carried && layer.countParams() > 0)
          standalone.push({ name: layer.name, reason: `${where(layer)}: carries the model input's channels, which are never pruned` });
        // a depthwise conv with depth_multiplier M turns input channel c into outputs c·M … c·M+M−1
        const mult = outLen / Math.max(1, ins[0].length);
        out.set(layer.name, Number.isInteger(mult) && mult > 1 ? ins[0].flatMap((r) => new Array(mult).fill(r)) : ins[0]);
        break;
      }
      case 'pass':
        out.set(layer.name, ins[0]);
        break;
      case 'tile': {
        // Flatten / Reshape keep the flat order: the new last axis holds the old channels repeated
        const c = ins[0].length;
        if (c > 0 && outLen > 0 && outLen % c === 0) {
          const m: ChannelMap = [];
          for (let s = 0; s < outLen / c; s++) m.push(...ins[0]);
          out.set(layer.name, m);
        } else {
          blockAll(ins, `${where(layer)}: reshapes the channel axis (${c} channels into a last axis of ${outLen || 'unknown size'})`);
          out.set(layer.name, new Array(outLen).fill(null));
        }
        break;
      }
      case 'concat':
        out.set(layer.name, ins.flat());
        break;
      case 'merge': {
        const widest = ins.reduce((a, b) => (b.length > a.length ? b : a), ins[0]);
        if (ins.some((m) => m.length !== widest.length)) {
          blockAll(ins, `${where(layer)} broadcasts ${ins.map((m) => m.length).join(' and ')} channels together`);
          out.set(layer.name, new Array(outLen).fill(null));
          break;
        }
        const [first, ...rest] = ins;
        const merged = first.slice();
        for (const other of rest) {
          for (let p = 0; p < first.length; p++) {
            const a = first[p];
            const b = other[p];
            if (a && b && a.i === b.i) union(a.g, b.g);
            else if (a || b) {
              const why = `${where(layer)} joins channels that cannot be pruned together`;
              if (a) block(a.g, why);
              if (b) block(b.g, why);
              merged[p] ??= b;
            }
          }
        }
        out.set(layer.name, merged);
        break;
      }
      case 'block':
      case 'input':
        out.set(layer.name, new Array(outLen).fill(null));
        break;
    }
  }
  // whatever reaches a model output keeps its channels (the classifier's classes, for one)
  for (const o of model.outputs) {
    const m = out.get(o.sourceLayer.name);
    if (m) blockAll([m], `reaches the model output "${o.sourceLayer.name}"`);
  }

  const byRoot = new Map<number, Group>();
  const blocked: Graph['blocked'] = [];
  for (const [name, g] of producerGroup) {
    const r = root(g);
    let group = byRoot.get(r);
    if (!group) {
      group = { name, id: r, size: sizes[r], producers: [], followers: [] };
      byRoot.set(r, group);
    }
    group.producers.push(name);
  }
  for (const [g, list] of followersOf) {
    const group = byRoot.get(root(g));
    if (group) for (const f of list) if (!group.followers.includes(f)) group.followers.push(f);
  }
  const groups: Group[] = [];
  const blockedGroups: Group[] = [];
  for (const [r, group] of byRoot) {
    const why = blockedWhy.get(r);
    if (why) {
      blocked.push({ name: group.name, reason: why });
      blockedGroups.push(group);
    } else groups.push(group);
  }
  blocked.push(...standalone);
  return {
    groups,
    blocked,
    blockedGroups,
    inputMap,
    outputMap: out,
    producerGroup,
    root,
    isBlocked: (g) => blockedWhy.has(root(g)),
    groupByName: (name) => groups.find((g) => g.name === name),
  };
}

/**
 * What keeps a model from being pruned, one line each naming the layer and field (the submit-time
 * check, and the first load of a campaign's model): layers and configurations the support matrix
 * (ml/support.ts) refuses, shared layers, inputs without a static size (the FLOPs, the latency
 * table and the dataset need one), and a model in which no group can be pruned at all. [] = fine.
 */
export function supportProblems(model: tfl.LayersModel): string[] {
  const problems: string[] = [];
  for (const inp of model.inputs) {
    const s = inp.shape as Array<number | null>;
    if (s.slice(1).some((d) => d === null))
      problems.push(
        `input "${inp.sourceLayer.name}": shape [${s
          .slice(1)
          .map((d) => d ?? 'None')
          .join(', ')}] has None dimensions: give the Input a fixed size (e.g. keras.Input((28, 28, 1)))`,
      );
  }
  for (const layer of model.layers) {
    const refusedRule = ruleOf(layer.getClassName());
    if (refusedRule?.support === 'refused') {
      problems.push(`${where(layer)}: ${refusedRule.note}`);
      continue;
    }
    if (layer.inboundNodes.length > 1) {
      problems.push(
        `${where(layer)}: called at ${layer.inboundNodes.length} places (shared weights): shared layers cannot be pruned: give each call its own layer`,
      );
      continue;
    }
    if (!layer.inboundNodes[0]) continue;
    const v = viewOf(layer);
    const rule = ruleOf(v.className);
    const why = rule ? rule.refuse?.(v) : unknownClass(v.className);
    if (why) problems.push(`${where(layer)}: ${why}`);
    else if (Array.isArray((layer.outputShape as unknown[])[0])) problems.push(`${where(layer)}: has several outputs: not supported`);
  }
  if (problems.length) return problems;
  const g = analyze(model);
  if (g.groups.length === 0) {
    problems.push(
      `model: nothing can be pruned: ${g.blocked.length ? g.blocked.map((b) => `${b.name}: ${b.reason}`).join('; ') : 'it has no layer with output channels (Dense, Conv…)'}`,
    );
  }
  return problems;
}

/**
 * Layers the training backend cannot train: on `wasm`, the composed depthwise gradients
 * (ml/wasm-kernels.ts) cover undilated depthwise convolutions only. One line each naming the layer, field and fix.
 */
export function trainingProblems(model: tfl.LayersModel, backend: string): string[] {
  if (backend !== 'wasm') return [];
  const out: string[] = [];
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    if (cls !== 'DepthwiseConv2D' && cls !== 'SeparableConv2D') continue;
    const c = layer.getConfig() as { dilationRate?: number | number[] };
    if (([] as number[]).concat(c.dilationRate ?? 1).some((x) => x !== 1))
      out.push(
        `${where(layer)}: dilation_rate ${JSON.stringify(c.dilationRate)}: the wasm backend cannot train a dilated depthwise convolution: run the worker with the tensorflow backend (PRUNEWISE_BACKEND=tensorflow)`,
      );
  }
  return out;
}

/** The blocked groups and layers as lines for people: `<group>: <reason>`. */
export const blockedLines = (g: Graph): string[] => g.blocked.map((b) => `${b.name}: ${b.reason}`);

/** Positions of a channel map that survive a plan (group id → kept channel indices). */
export function keptPositions(graph: Graph, map: ChannelMap, keep: Map<number, Set<number>>): number[] {
  const out: number[] = [];
  for (let p = 0; p < map.length; p++) {
    const ref = map[p];
    const k = ref ? keep.get(graph.root(ref.g)) : undefined;
    if (!ref || !k || k.has(ref.i)) out.push(p);
  }
  return out;
}
