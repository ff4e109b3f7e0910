// THE support matrix: for every Keras / tfjs-layers layer class, what pruning does with it —
// `pruned` (its output channels open a prunable group), `passes` (channels go through it, its
// per-channel weights sliced along), `blocks` (the groups it touches keep every channel, with the
// reason) or `refused` (the model is refused at submit, with the reason). One table: the coupling
// graph (ml/graph.ts), the surgery (ml/prune.ts), the criteria, the cost model (ml/cost.ts), the
// per-channel int8 axis (ml/models.ts) and the README's matrix all read it. A class missing here
// is refused, never ignored. Channels are on the last axis (channels_last) throughout.
//
// Config keys are tfjs-layers' (camelCase: `depthMultiplier`, `dataFormat`), as `layer.getConfig()`
// returns them; the raw Keras topology (snake_case) is checked by `topologyProblems`.

/** [weight index, axis, expanded]: a weight sliced along `axis`; `expanded`: indices i → i·M … i·M+M−1 (M = depthMultiplier). */
export type Slice = [number, number] | [number, number, true];

export type Support = 'pruned' | 'passes' | 'blocks' | 'refused';

/** What a rule's checks see of one layer (one call of it). */
export interface LayerView {
  className: string;
  config: Record<string, unknown>;
  /** full shapes (batch first) of its inputs and of its output */
  inputShapes: Array<Array<number | null>>;
  outputShape: Array<number | null>;
}

export interface LayerRule {
  /** for the README's matrix */
  support: Support;
  /** how channels go through, for the graph: producer opens a group; follower carries its input's (weights sliced); pass carries them
   *  (no weights); tile repeats them (Flatten, Reshape); merge joins same-position channels; concat lays them side by side;
   *  block keeps every channel it touches */
  kind: 'producer' | 'follower' | 'pass' | 'tile' | 'merge' | 'concat' | 'block' | 'input';
  /** producer: config key holding the output channel count (the same word in the Keras topology) */
  key?: 'units' | 'filters';
  /** producer: slices by the group's kept output channels; the FIRST is the kernel whose axis holds the output channels (criteria use it) */
  out?: Slice[];
  /** producer/follower: slices by the kept positions of the input's channel map */
  in?: Slice[];
  /** producer: the input slices zeroed to silence removed input channels (equivalence tests; default `in`) */
  silence?: Slice[];
  /** why a layer of this class, so configured, cannot be pruned through (blocks its input and output channels) */
  check?: (v: LayerView) => string | undefined;
  /** why a producer's own output channels cannot be pruned (its inputs still can) */
  outputCheck?: (v: LayerView) => string | undefined;
  /** why the model is refused at submit (a field that changes which axis carries channels, …): "<field> <value>: <why and fix>" */
  refuse?: (v: LayerView) => string | undefined;
  /** one line for the README: what happens, and when it blocks */
  note: string;
}

const rankOf = (v: LayerView) => v.inputShapes[0]?.length ?? 0;

/** An axis config (number, or a one-element list as tf-keras writes it) resolved to a non-negative index on a tensor of `rank`; undefined if several. */
export function resolveAxis(axis: unknown, rank: number): number | undefined {
  const list = Array.isArray(axis) ? axis : [axis ?? -1];
  if (list.length !== 1 || typeof list[0] !== 'number') return undefined;
  const a = list[0] as number;
  return a < 0 ? a + rank : a;
}

const channelAxisOnly = (v: LayerView) => {
  const rank = rankOf(v);
  const a = resolveAxis(v.config.axis, rank);
  return a === rank - 1 ? undefined : `axis ${JSON.stringify(v.config.axis)} on a rank-${rank} input is not its channel axis (${rank - 1} or -1)`;
};
const noSoftmax = (v: LayerView) => (v.config.activation === 'softmax' ? 'softmax mixes channels' : undefined);
const channelsFirst = (v: LayerView) =>
  v.config.dataFormat === 'channelsFirst' || v.config.dataFormat === 'channels_first'
    ? 'data_format channels_first: prunewise prunes channels_last models only: rebuild the model with data_format="channels_last" (the default)'
    : undefined;
const both =
  (...fs: Array<(v: LayerView) => string | undefined>) =>
  (v: LayerView) => {
    for (const f of fs) {
      const why = f(v);
      if (why) return why;
    }
    return undefined;
  };

const pass = (note: string, extra: Partial<LayerRule> = {}): LayerRule => ({ support: 'passes', kind: 'pass', refuse: channelsFirst, note, ...extra });
const blocks = (note: string, extra: Partial<LayerRule> = {}): LayerRule => ({ support: 'blocks', kind: 'block', check: () => note, note, ...extra });
const refused = (why: string): LayerRule => ({ support: 'refused', kind: 'block', check: () => why, refuse: () => why, note: why });

const conv = (rank: number): LayerRule => ({
  support: 'pruned',
  kind: 'producer',
  key: 'filters',
  // kernel [k…, in, out], bias [out]
  out: [
    [0, rank + 1],
    [1, 0],
  ],
  in: [[0, rank]],
  outputCheck: noSoftmax,
  refuse: channelsFirst,
  note: `filters pruned (kernel [k${rank > 1 ? '…' : ''}, in, out]); dilation and strides only change the cost; a softmax activation keeps its filters`,
});
const convTranspose = (rank: number): LayerRule => ({
  support: 'pruned',
  kind: 'producer',
  key: 'filters',
  // kernel [k…, out, in], bias [out]
  out: [
    [0, rank],
    [1, 0],
  ],
  in: [[0, rank + 1]],
  outputCheck: noSoftmax,
  refuse: channelsFirst,
  note: 'filters pruned (kernel [k…, out, in]: output channels on axis −2)',
});
const recurrent = (gates: number, name: string): LayerRule => ({
  support: 'blocks',
  kind: 'producer',
  key: 'units',
  // kernel [in, gates·units]: its input channels can still be pruned
  in: [[0, 0]],
  outputCheck: () => `${name} units are not pruned (the ${gates} gate${gates > 1 ? 's' : ''} and the recurrent kernel couple them)`,
  refuse: (v) => (v.config.returnState ? 'return_state true: a layer with several outputs is not supported: drop return_state' : undefined),
  note: `its units keep every channel (${gates} gate${gates > 1 ? 's' : ''} and the recurrent kernel couple them); the channels feeding it are pruned`,
});

/**
 * The matrix. tfjs-layers 4.22's layer classes plus the Keras classes it cannot load (refused
 * before that, so the reason is ours, not a tfjs stack).
 */
export const SUPPORT: Record<string, LayerRule> = {
  InputLayer: { support: 'passes', kind: 'input', note: "the model input: its channels are the data's, never pruned" },
  // producers
  Dense: {
    support: 'pruned',
    kind: 'producer',
    key: 'units',
    out: [
      [0, 1],
      [1, 0],
    ],
    in: [[0, 0]],
    outputCheck: noSoftmax,
    note: 'units pruned; on an N-D input it acts on the last axis (cost × the other axes); a softmax activation keeps its units',
  },
  Conv1D: conv(1),
  Conv2D: conv(2),
  Conv3D: conv(3),
  Conv2DTranspose: convTranspose(2),
  Conv3DTranspose: convTranspose(3),
  // weights: depthwise [kh, kw, C, M], pointwise [1, 1, C·M, F], bias [F]
  SeparableConv2D: {
    support: 'pruned',
    kind: 'producer',
    key: 'filters',
    out: [
      [1, 3],
      [2, 0],
    ],
    in: [
      [0, 2],
      [1, 2, true],
    ],
    silence: [[1, 2, true]],
    outputCheck: noSoftmax,
    refuse: both(channelsFirst, (v) =>
      ((v.config.depthMultiplier as number | undefined) ?? 1) !== 1
        ? `depth_multiplier ${v.config.depthMultiplier}: tfjs-layers 4.22 does not save a SeparableConv2D's depth_multiplier (its saved model would not load): use depth_multiplier=1, or a DepthwiseConv2D (any multiplier) followed by a 1×1 Conv2D`
        : undefined,
    ),
    note: 'filters pruned (pointwise kernel); its input channels prune the depthwise kernel too; depth_multiplier ≠ 1 is refused (tfjs-layers does not save it)',
  },
  // weights: depthwise [kh, kw, C, M], bias [C·M]; output channel c·M + m reads input channel c
  DepthwiseConv2D: {
    support: 'passes',
    kind: 'follower',
    in: [
      [0, 2],
      [1, 0, true],
    ],
    refuse: channelsFirst,
    note: 'carries its input channels (depth_multiplier M: each input channel becomes M output channels, pruned together)',
  },
  BatchNormalization: {
    support: 'passes',
    kind: 'follower',
    in: [
      [0, 0],
      [1, 0],
      [2, 0],
      [3, 0],
    ],
    check: channelAxisOnly,
    refuse: (v) => {
      const why = channelAxisOnly(v);
      return why ? `axis ${JSON.stringify(v.config.axis)}: ${why.replace(/^axis \S+ /, '')}: normalise the channel axis (axis=-1)` : undefined;
    },
    note: 'carries its input channels (γ, β, moving mean and variance sliced); axis may be −1, the last index or a one-element list ([3] on 4-D, [1] on 2-D); any other axis is refused',
  },
  PReLU: {
    support: 'passes',
    kind: 'follower',
    in: [[0, -1]],
    check: (v) => {
      const shared = (v.config.sharedAxes as number[] | null | undefined) ?? [];
      const rank = rankOf(v);
      return shared.some((a) => a === rank - 1 || a === -1) ? 'shared_axes includes the channel axis (one α for every channel)' : undefined;
    },
    note: 'carries its input channels (α sliced on its last axis); shared_axes over the channel axis blocks',
  },
  LayerNormalization: blocks('normalises across channels: removing one changes every other'),
  LSTM: recurrent(4, 'LSTM'),
  GRU: recurrent(3, 'GRU'),
  SimpleRNN: recurrent(1, 'SimpleRNN'),
  Embedding: blocks('embedding widths are not pruned (its output channels are kept)'),
  // channels pass through unchanged
  Activation: pass('passes; a softmax activation blocks (it mixes channels)', { check: noSoftmax }),
  ReLU: pass('passes'),
  LeakyReLU: pass('passes'),
  ELU: pass('passes'),
  ThresholdedReLU: pass('passes'),
  Softmax: pass('passes unless it normalises the channel axis (the default), which blocks', {
    check: (v) => (resolveAxis(v.config.axis, rankOf(v)) === rankOf(v) - 1 ? 'softmax mixes channels' : undefined),
  }),
  Dropout: pass('passes'),
  AlphaDropout: pass('passes'),
  SpatialDropout1D: pass('passes'),
  GaussianNoise: pass('passes'),
  GaussianDropout: pass('passes'),
  Rescaling: pass('passes (scale and offset are scalars in tfjs)'),
  Resizing: pass('passes'),
  CenterCrop: pass('passes'),
  RandomWidth: pass('passes'),
  RandomHeight: pass('passes'),
  MaxPooling1D: pass('passes'),
  MaxPooling2D: pass('passes'),
  MaxPooling3D: pass('passes'),
  AveragePooling1D: pass('passes'),
  AveragePooling2D: pass('passes'),
  AveragePooling3D: pass('passes'),
  GlobalAveragePooling1D: pass('passes'),
  GlobalAveragePooling2D: pass('passes'),
  GlobalMaxPooling1D: pass('passes'),
  GlobalMaxPooling2D: pass('passes'),
  ZeroPadding2D: pass('passes'),
  Cropping2D: pass('passes'),
  UpSampling2D: pass('passes'),
  RepeatVector: pass('passes ([B, C] → [B, n, C])'),
  Permute: pass('passes when the channel axis stays last; blocks otherwise', {
    check: (v) => {
      const dims = v.config.dims as number[];
      return dims[dims.length - 1] === dims.length ? undefined : `dims ${JSON.stringify(dims)} move the channel axis`;
    },
  }),
  Flatten: { support: 'passes', kind: 'tile', refuse: channelsFirst, note: 'passes: each channel repeated per spatial position' },
  Reshape: {
    support: 'passes',
    kind: 'tile',
    note: 'passes when the new last axis is a multiple of the channels (channels repeated); blocks a reshape that splits the channel axis',
  },
  Add: { support: 'passes', kind: 'merge', note: 'joins its inputs into one group (residual connections)' },
  Average: { support: 'passes', kind: 'merge', note: 'joins its inputs into one group' },
  Maximum: { support: 'passes', kind: 'merge', note: 'joins its inputs into one group' },
  Minimum: { support: 'passes', kind: 'merge', note: 'joins its inputs into one group' },
  Multiply: { support: 'passes', kind: 'merge', note: 'joins its inputs into one group (a broadcast [B, 1, 1, 1] gate blocks)' },
  Concatenate: {
    support: 'passes',
    kind: 'concat',
    note: 'on the channel axis lays its inputs’ groups side by side; on another axis joins them like Add',
  },
  // blocks: the model runs, these layers keep the channels they touch
  Masking: blocks('the mask reads every channel'),
  CategoryEncoding: blocks('encodes ids: its channels are categories'),
  // refused at submit
  Dot: refused('Dot is not supported (its cost and channel mapping are not modelled)'),
  Bidirectional: refused('Bidirectional wrappers are not supported'),
  TimeDistributed: refused('TimeDistributed wrappers are not supported'),
  ConvLSTM2D: refused('ConvLSTM2D is not supported'),
  RNN: refused('generic RNN cells are not supported (LSTM, GRU and SimpleRNN are)'),
  Sequential: refused('a nested model is not supported: flatten it into one model (its layers directly in the outer model)'),
  Functional: refused('a nested model is not supported: flatten it into one model (its layers directly in the outer model)'),
  Model: refused('a nested model is not supported: flatten it into one model (its layers directly in the outer model)'),
  MultiHeadAttention: refused('attention layers are not supported'),
  EinsumDense: refused('EinsumDense is not supported'),
  // Keras classes tfjs-layers 4.22 cannot load (named here so the refusal says so)
  Lambda: refused('Lambda layers hold Python code, which tfjs cannot run: replace it with a built-in layer'),
  DepthwiseConv1D: refused('tfjs-layers 4.22 has no DepthwiseConv1D'),
  SeparableConv1D: refused('tfjs-layers 4.22 has no SeparableConv1D'),
  Conv1DTranspose: refused('tfjs-layers 4.22 has no Conv1DTranspose'),
  GroupNormalization: refused('tfjs-layers 4.22 has no GroupNormalization'),
  UnitNormalization: refused('tfjs-layers 4.22 has no UnitNormalization'),
  ZeroPadding1D: refused('tfjs-layers 4.22 has no ZeroPadding1D'),
  Cropping1D: refused('tfjs-layers 4.22 has no Cropping1D'),
  UpSampling1D: refused('tfjs-layers 4.22 has no UpSampling1D'),
  SpatialDropout2D: refused('tfjs-layers 4.22 has no SpatialDropout2D'),
  GlobalAveragePooling3D: refused('tfjs-layers 4.22 has no GlobalAveragePooling3D'),
  GlobalMaxPooling3D: refused('tfjs-layers 4.22 has no GlobalMaxPooling3D'),
  Subtract: refused('tfjs-layers 4.22 has no Subtract: use Add with the second input negated (e.g. a Rescaling(-1))'),
};

/** The rule of a class (undefined: not in the matrix, which refuses it). */
export const ruleOf = (className: string): LayerRule | undefined => (Object.prototype.hasOwnProperty.call(SUPPORT, className) ? SUPPORT[className] : undefined);

/** The reason a class not in the matrix is refused. */
export const unknownClass = (className: string) => `layer class ${className} is not in prunewise's support matrix (README: "Every layer accounted for")`;

/**
 * Which axis of a layer's weight holds its output channels: where per-channel int8 scales go.
 * Dense / Conv kernels [.., in, out]: the last; depthwise kernels [kh, kw, C, M]: axis 2 (the
 * channel axis; M multiplies it); transposed-conv kernels [k…, out, in]: the one before last.
 */
export function outputChannelAxis(className: string, weightName: string, rank: number): number {
  if (/depthwise_kernel$/.test(weightName)) return rank - 2;
  if (/Transpose$/.test(className) && /kernel$/.test(weightName)) return rank - 2;
  return rank - 1;
}

/**
 * Problems of a raw Keras topology (model.json's `modelTopology`, snake_case) that tfjs-layers would
 * drop, mis-read or fail on while loading, so they must be refused before, with our reason: classes
 * the matrix refuses (Lambda, Keras classes tfjs-layers 4.22 lacks, nested models), grouped
 * convolutions (`groups` > 1: tfjs-layers has none and would fail on the kernel's shape) and channels_first.
 * One line each: `layer "<name>" (<class>): <field> <value>: <why and fix>`.
 */
export function topologyProblems(topology: unknown): string[] {
  const out: string[] = [];
  const visit = (layers: unknown) => {
    if (!Array.isArray(layers)) return;
    for (const l of layers as Array<{ class_name?: string; config?: Record<string, unknown> }>) {
      const c = l.config ?? {};
      const where = `layer "${String(c.name ?? '?')}" (${l.class_name})`;
      const rule = ruleOf(String(l.class_name));
      if (rule?.support === 'refused') out.push(`${where}: ${rule.note}`);
      if (typeof c.groups === 'number' && c.groups !== 1)
        out.push(`${where}: groups ${c.groups}: grouped convolutions are not supported (tfjs-layers has none): use groups=1 or split the layer`);
      if (c.data_format === 'channels_first')
        out.push(
          `${where}: data_format channels_first: prunewise prunes channels_last models only: rebuild the model with data_format="channels_last" (the default)`,
        );
      if (c.layers) visit(c.layers);
    }
  };
  const t = topology as { model_config?: { config?: { layers?: unknown } }; config?: { layers?: unknown } } | undefined;
  visit(t?.model_config?.config?.layers ?? t?.config?.layers);
  return out;
}
