// Which channels of a tfjs LayersModel must be pruned together (Torch-Pruning's "groups"), for
// Sequential and functional models alike.
//
// Every tensor's last axis is described by a channel map: position p holds channel i of group g
// (or nothing prunable, e.g. the input image). A producer (Dense, Conv2D, SeparableConv2D) opens
// a group; batch norm and depthwise convs follow their input channels; flatten repeats them per
// spatial position; residual adds join their inputs' groups; concatenations lay them side by
// side. One registry (RULES) says, per layer class, how it reads and slices channels: the
// analysis, the importance criteria and the surgery all use it, so a new layer type is one entry.
import type * as tfl from '@tensorflow/tfjs-layers';
import { ModelError } from '../core/errors';

/** The user's model has a structure this step cannot handle (bad input). */
export class GraphError extends ModelError {
  override name = 'GraphError';
}

/** [weight index, axis]: which weight tensors are sliced along which axis. */
type Slice = [number, number];

export interface LayerRule {
  kind: 'producer' | 'follower' | 'pass' | 'flatten' | 'merge' | 'concat';
  /** producer: config key holding the output channel count */
  key?: 'units' | 'filters';
  /** producer: slices by the group's kept output channels */
  out?: Slice[];
  /** producer/follower: slices by the kept positions of the input's channel map */
  in?: Slice[];
  /** why a layer of this class cannot be pruned through (blocks its input and output channels) */
  check?: (config: Record<string, unknown>) => string | undefined;
  /** why a producer's own output channels cannot be pruned (its inputs still can) */
  outputCheck?: (config: Record<string, unknown>) => string | undefined;
}

const depthMultiplierOne = (c: Record<string, unknown>) =>
  (c.depth_multiplier ?? 1) === 1 ? undefined : `depth_multiplier ${c.depth_multiplier} (only 1 is supported)`;
const lastAxis = (c: Record<string, unknown>) =>
  c.axis === undefined || c.axis === -1 || c.axis === 3 ? undefined : `axis ${c.axis} (only the channel axis is supported)`;
const noSoftmax = (c: Record<string, unknown>) => (c.activation === 'softmax' ? 'softmax mixes channels' : undefined);

export const RULES: Record<string, LayerRule> = {
  Dense: {
    kind: 'producer',
    key: 'units',
    out: [
      [0, 1],
      [1, 0],
    ],
    in: [[0, 0]],
    outputCheck: noSoftmax,
  },
  Conv2D: {
    kind: 'producer',
    key: 'filters',
    out: [
      [0, 3],
      [1, 0],
    ],
    in: [[0, 2]],
    outputCheck: noSoftmax,
  },
  // weights: depthwise [kh, kw, C, 1], pointwise [1, 1, C, F], bias [F]
  SeparableConv2D: {
    kind: 'producer',
    key: 'filters',
    out: [
      [1, 3],
      [2, 0],
    ],
    in: [
      [0, 2],
      [1, 2],
    ],
    check: depthMultiplierOne,
    outputCheck: noSoftmax,
  },
  // weights: depthwise [kh, kw, C, 1], bias [C]
  DepthwiseConv2D: {
    kind: 'follower',
    in: [
      [0, 2],
      [1, 0],
    ],
    check: depthMultiplierOne,
  },
  BatchNormalization: {
    kind: 'follower',
    in: [
      [0, 0],
      [1, 0],
      [2, 0],
      [3, 0],
    ],
    check: lastAxis,
  },
  Activation: { kind: 'pass', check: noSoftmax },
  ReLU: { kind: 'pass' },
  LeakyReLU: { kind: 'pass' },
  ELU: { kind: 'pass' },
  Dropout: { kind: 'pass' },
  SpatialDropout1D: { kind: 'pass' },
  GaussianNoise: { kind: 'pass' },
  GaussianDropout: { kind: 'pass' },
  MaxPooling2D: { kind: 'pass' },
  AveragePooling2D: { kind: 'pass' },
  GlobalAveragePooling2D: { kind: 'pass' },
  GlobalMaxPooling2D: { kind: 'pass' },
  ZeroPadding2D: { kind: 'pass' },
  Cropping2D: { kind: 'pass' },
  UpSampling2D: { kind: 'pass' },
  Flatten: { kind: 'flatten' },
  Add: { kind: 'merge' },
  Average: { kind: 'merge' },
  Maximum: { kind: 'merge' },
  Minimum: { kind: 'merge' },
  Multiply: { kind: 'merge' },
  Concatenate: { kind: 'concat', check: lastAxis },
};

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
  /** groups left unpruned, with the reason (model output, unsupported layer, …) */
  blocked: Array<{ name: string; reason: string }>;
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

function lastDim(shape: Array<number | null>): number {
  const d = shape[shape.length - 1];
  if (typeof d !== 'number') throw new GraphError(`a tensor of shape [${shape.join(', ')}] has no static channel count`);
  return d;
}

/** Analyses a model's channel coupling. Never modifies the model. */
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
  const blockAll = (maps: ChannelMap[], why: string) => {
    for (const m of maps) for (const ref of m) if (ref) block(ref.g, why);
  };

  const out = new Map<string, ChannelMap>();
  const inputMap = new Map<string, ChannelMap>();
  const names = new Set(model.layers.map((l) => l.name));
  for (const layer of model.layers) {
    if (layer.inboundNodes.length !== 1) {
      throw new GraphError(`layer "${layer.name}" is used ${layer.inboundNodes.length} times: shared layers cannot be pruned`);
    }
    const node = layer.inboundNodes[0];
    const ins: ChannelMap[] = node.inboundLayers.map((src, k) => {
      if (names.has(src.name) && out.has(src.name)) return out.get(src.name)!;
      return new Array(lastDim(node.inputTensors[k].shape)).fill(null); // a model input: not prunable
    });
    const cls = layer.getClassName();
    const config = layer.getConfig() as Record<string, unknown>;
    const rule = RULES[cls];
    const unsupported = rule ? rule.check?.(config) : `layer class ${cls} is not supported`;
    const outShape = layer.outputShape as Array<number | null>;
    if (unsupported) {
      blockAll(ins, `layer "${layer.name}" (${cls}): ${unsupported}`);
      if (rule?.kind === 'producer') {
        // its own outputs are still a (blocked) group, so consumers downstream read them right
        const g = parent.length;
        parent.push(g);
        sizes.push(lastDim(outShape));
        producerGroup.set(layer.name, g);
        blockedWhy.set(g, `layer "${layer.name}" (${cls}): ${unsupported}`);
        inputMap.set(layer.name, ins[0]);
        out.set(
          layer.name,
          Array.from({ length: lastDim(outShape) }, (_, i) => ({ g, i })),
        );
      } else {
        out.set(layer.name, new Array(lastDim(outShape)).fill(null));
      }
      continue;
    }
    switch (rule!.kind) {
      case 'producer': {
        inputMap.set(layer.name, ins[0]);
        const n = config[rule!.key!] as number;
        const g = parent.length;
        parent.push(g);
        sizes.push(n);
        producerGroup.set(layer.name, g);
        const why = rule!.outputCheck?.(config);
        if (why) blockedWhy.set(g, `layer "${layer.name}" (${cls}): ${why}`);
        out.set(
          layer.name,
          Array.from({ length: n }, (_, i) => ({ g, i })),
        );
        break;
      }
      case 'follower':
        inputMap.set(layer.name, ins[0]);
        for (const ref of ins[0]) {
          if (!ref) continue;
          const list = followersOf.get(ref.g) ?? [];
          if (!list.includes(layer.name)) list.push(layer.name);
          followersOf.set(ref.g, list);
        }
        out.set(layer.name, ins[0]);
        break;
      case 'pass':
        out.set(layer.name, ins[0]);
        break;
      case 'flatten': {
        const inShape = node.inputTensors[0].shape;
        const spatial = inShape.slice(1, -1).reduce<number>((a, b) => a * (b ?? 1), 1);
        const m: ChannelMap = [];
        for (let s = 0; s < spatial; s++) m.push(...ins[0]);
        out.set(layer.name, m);
        break;
      }
      case 'merge': {
        const [first, ...rest] = ins;
        for (const other of rest) {
          if (other.length !== first.length) throw new GraphError(`layer "${layer.name}" (${cls}) merges ${first.length} and ${other.length} channels`);
          for (let p = 0; p < first.length; p++) {
            const a = first[p];
            const b = other[p];
            if (a && b && a.i === b.i) union(a.g, b.g);
            else if (a || b) {
              const why = `layer "${layer.name}" (${cls}) joins channels that cannot be pruned together`;
              if (a) block(a.g, why);
              if (b) block(b.g, why);
            }
          }
        }
        out.set(layer.name, first);
        break;
      }
      case 'concat':
        out.set(layer.name, ins.flat());
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
  for (const [r, group] of byRoot) {
    const why = blockedWhy.get(r);
    if (why) blocked.push({ name: group.name, reason: why });
    else groups.push(group);
  }
  return {
    groups,
    blocked,
    inputMap,
    outputMap: out,
    producerGroup,
    root,
    isBlocked: (g) => blockedWhy.has(root(g)),
    groupByName: (name) => groups.find((g) => g.name === name),
  };
}

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
