// Training on the native `tensorflow` backend with TensorFlow's own fused training ops where tfjs
// composes many small ones. Measured per training step at batch 64 (scripts and numbers in
// bench/results-train.txt): tfjs's ReLU gradient is dy·step(x), and tfjs-node builds step from
// IsNan, Greater, two Fills and two Selects over the whole activation (vgg-small: ~30 % of a step);
// tfjs-layers' training-mode batch norm is moments + batchNorm, ~40 kernels per layer forward and
// backward. Here:
//   - the Relu gradient is TensorFlow's ReluGrad (one op, what TensorFlow's own gradient is);
//   - Step(x) with alpha 0 (the fused conv/dense ReLU gradient) is Sign(Relu(x)): two ops, the
//     same values as tfjs's Step, NaN included;
//   - BatchNormalization in training mode runs FusedBatchNormV3 (is_training) forward and
//     FusedBatchNormGradV3 backward: one op each way (Ioffe & Szegedy 2015, TensorFlow's kernels).
// Everything here acts only while the backend is `tensorflow`: the wasm and cpu backends run
// exactly as before (their kernels, their gradients, tfjs-layers' own batch norm).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** The parts of tfjs-node's NodeJSKernelBackend used here (its public op-execution entry). */
interface NodeBackend {
  binding: { TF_ATTR_TYPE: number; TF_ATTR_FLOAT: number; TF_ATTR_STRING: number; TF_ATTR_BOOL: number; TF_ATTR_INT: number; TF_FLOAT: number };
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: tf.Tensor[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: OpAttr[], inputs: tf.Tensor[], numOutputs: number): tf.Tensor[];
}
interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}

const onNative = () => tf.getBackend() === 'tensorflow';
const nodeBackend = () => tf.backend() as unknown as NodeBackend;
const floatT = (b: NodeBackend, name = 'T'): OpAttr => ({ name, type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_FLOAT });

/** The Relu gradient on the native backend: ReluGrad(dy, x) = dy where x > 0, else 0. */
function reluGradient(): void {
  const original = tf.getGradient('Relu');
  if (!original) throw new Error('tfjs has no Relu gradient to wrap');
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      if (!onNative() || (dy as tf.Tensor).dtype !== 'float32') return original.gradFunc(dy, saved, attrs);
      const [x] = saved;
      return { x: () => nodeBackend().executeSingleOutput('ReluGrad', [floatT(nodeBackend())], [dy as tf.Tensor, x]) };
    },
  });
}

/** Step with alpha 0 on the native backend: Sign(Relu(x)) (1 where x > 0, 0 elsewhere, NaN stays NaN). */
function stepKernel(): void {
  const original = tf.getKernel('Step', 'tensorflow');
  if (!original) throw new Error('the tensorflow backend has no Step kernel to wrap');
  tf.unregisterKernel('Step', 'tensorflow');
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.Tensor;
      if ((args.attrs as { alpha?: number }).alpha !== 0 || x.dtype !== 'float32') return original.kernelFunc(args);
      const b = args.backend as unknown as NodeBackend;
      const r = b.executeSingleOutput('Relu', [floatT(b)], [x]);
      try {
        return b.executeSingleOutput('Sign', [floatT(b)], [r]);
      } finally {
        r.dispose();
      }
    },
  });
}

type Pair = [number, number];
const pair = (v: number | Pair): Pair => (typeof v === 'number' ? [v, v] : v);

/** Attributes of TensorFlow's oneDNN max pooling ops (`_kernel` selects the oneDNN kernel, as TensorFlow's own eager rewrite does). */
function mklPoolAttrs(b: NodeBackend, filterSize: Pair, strides: Pair, pad: 'valid' | 'same'): OpAttr[] {
  return [
    floatT(b),
    { name: 'ksize', type: b.binding.TF_ATTR_INT, value: [1, filterSize[0], filterSize[1], 1] },
    { name: 'strides', type: b.binding.TF_ATTR_INT, value: [1, strides[0], strides[1], 1] },
    { name: 'padding', type: b.binding.TF_ATTR_STRING, value: pad.toUpperCase() },
    { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'workspace_enabled', type: b.binding.TF_ATTR_BOOL, value: true },
    { name: '_kernel', type: b.binding.TF_ATTR_STRING, value: 'MklNameChangeOp' },
  ];
}

/** dx of max pooling through oneDNN: the forward again for its workspace (where each max came from), then the backward. */
function mklMaxPoolGrad(dy: tf.Tensor, x: tf.Tensor, y: tf.Tensor, filterSize: Pair, strides: Pair, pad: 'valid' | 'same'): tf.Tensor {
  const b = nodeBackend();
  const attrs = mklPoolAttrs(b, filterSize, strides, pad);
  const [y2, workspace] = b.executeMultipleOutputs('_MklNativeMaxPool', attrs, [x], 2);
  try {
    return b.executeSingleOutput('_MklNativeMaxPoolGrad', attrs, [x, y, dy, workspace]);
  } finally {
    tf.dispose([y2, workspace]);
  }
}

/**
 * Whether the oneDNN max-pool gradient gives exactly TensorFlow's MaxPoolGrad here (ties from ReLU zeros
 * included, overlapping and padded windows), on small fixed inputs: a TensorFlow build without it, or
 * one that differs, keeps the stock gradient.
 */
function mklMaxPoolGradMatches(): boolean {
  const b = nodeBackend();
  try {
    return tf.tidy(() => {
      const values = Array.from({ length: 2 * 7 * 7 * 3 }, (_, i) => Math.max(0, Math.sin(i * 12.9898) * 3 - 1));
      const x = tf.tensor4d(values, [2, 7, 7, 3]);
      for (const [f, s, pad] of [
        [2, 2, 'valid'],
        [2, 2, 'same'],
        [3, 1, 'same'],
        [3, 2, 'valid'],
      ] as Array<[number, number, 'valid' | 'same']>) {
        const y = tf.maxPool(x, f, s, pad);
        const dy = tf.tensor4d(
          Array.from({ length: y.size }, (_, i) => ((i * 7919) % 13) - 6),
          y.shape,
        );
        const want = (tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: f, strides: s, pad }) as tf.Tensor).dataSync();
        const got = mklMaxPoolGrad(dy, x, y, [f, f], [s, s], pad).dataSync();
        if (got.length !== want.length || got.some((v, i) => v !== want[i])) return false;
      }
      return true;
    });
  } catch {
    return false;
  }
}

/** The MaxPool gradient on the native backend: TensorFlow's oneDNN kernels (~4× faster than its stock MaxPoolGrad here), when they give the same result. */
function maxPoolGradient(): void {
  const original = tf.getGradient('MaxPool');
  if (!original) throw new Error('tfjs has no MaxPool gradient to wrap');
  if (!mklMaxPoolGradMatches()) return;
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const [x, y] = saved;
      const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as {
        filterSize: number | Pair;
        strides: number | Pair;
        pad: unknown;
        dimRoundingMode?: string;
      };
      if (!onNative() || x.dtype !== 'float32' || x.rank !== 4 || dimRoundingMode != null || (pad !== 'valid' && pad !== 'same'))
        return original.gradFunc(dy, saved, attrs);
      return { x: () => mklMaxPoolGrad(dy as tf.Tensor, x, y, pair(filterSize), pair(strides), pad) };
    },
  });
}

/**
 * Training-mode batch norm of x [n, h, w, c] (NHWC) with TensorFlow's fused op: y, and the batch's
 * mean and biased variance per channel [c] (what tfjs-layers' moments give). The gradient with
 * respect to x, gamma and beta is FusedBatchNormGradV3 (through the batch statistics, as training needs).
 */
export function fusedBatchNormTraining(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
): { y: tf.Tensor4D; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const b = nodeBackend();
  const common = [
    floatT(b),
    floatT(b, 'U'),
    { name: 'epsilon', type: b.binding.TF_ATTR_FLOAT, value: epsilon },
    { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'is_training', type: b.binding.TF_ATTR_BOOL, value: true },
  ];
  let stats: [tf.Tensor1D, tf.Tensor1D] | undefined;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xs, scale, offset, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const empty = tf.tensor1d([]);
    // outputs: y, batch mean, batch variance (Bessel-corrected), reserve 1 (mean), reserve 2 (biased variance), reserve 3
    const [y, , , r1, r2, r3] = b.executeMultipleOutputs(
      'FusedBatchNormV3',
      [...common, { name: 'exponential_avg_factor', type: b.binding.TF_ATTR_FLOAT, value: 1 }],
      [xs, scale, offset, empty, empty],
      6,
    );
    save([xs, scale, r1, r2, r3]);
    // kept past customGrad's tidy; the caller disposes them
    stats = [tf.keep(tf.clone(r1)) as tf.Tensor1D, tf.keep(tf.clone(r2)) as tf.Tensor1D];
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sScale, s1, s2, s3] = saved;
        const [dx, dScale, dOffset] = nodeBackend().executeMultipleOutputs('FusedBatchNormGradV3', common, [dy, sx, sScale, s1, s2, s3], 5);
        return [dx, dScale, dOffset];
      },
    };
  });
  const y = op(x, gamma, beta) as tf.Tensor4D;
  const [mean, variance] = stats!;
  return { y, mean, variance };
}

type BatchNormLayer = tfl.layers.Layer & {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: tfl.LayerVariable | null;
  beta: tfl.LayerVariable | null;
  movingMean: tfl.LayerVariable;
  movingVariance: tfl.LayerVariable;
};

/**
 * tfjs-layers' BatchNormalization.call, training mode, on the native backend: the fused op, then the
 * moving averages as tfjs-layers updates them (x ← x − (x − value)·(1 − momentum), value = the
 * batch's mean and biased variance). Other cases (inference, other backends, ranks other than 2
 * and 4, a normalised axis other than the last, no center or scale) run tfjs-layers' own call.
 */
function batchNormTraining(): void {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap['BatchNormalization'];
  if (!entry) throw new Error('tfjs-layers has no BatchNormalization class registered');
  const proto = (entry[0] as unknown as { prototype: { call: (inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor } }).prototype;
  if ((proto.call as { nativeFused?: boolean }).nativeFused) return;
  const original = proto.call;
  const patched = function (this: BatchNormLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const rank = x.rank as number;
    const axis = this.axis >= 0 ? this.axis : this.axis + rank;
    if (!kwargs['training'] || !onNative() || (Array.isArray(inputs) && inputs.length !== 1) || (rank !== 4 && rank !== 2) || axis !== rank - 1)
      return original.call(this, inputs, kwargs);
    if (!this.center || !this.scale || !this.gamma || !this.beta || x.dtype !== 'float32') return original.call(this, inputs, kwargs);
    return tf.tidy(() => {
      const x4 = (rank === 4 ? x : tf.reshape(x, [x.shape[0] as number, 1, 1, x.shape[1] as number])) as tf.Tensor4D;
      const { y, mean, variance } = fusedBatchNormTraining(x4, this.gamma!.read() as tf.Tensor1D, this.beta!.read() as tf.Tensor1D, this.epsilon);
      const decay = 1 - this.momentum;
      for (const [v, value] of [
        [this.movingMean, mean],
        [this.movingVariance, variance],
      ] as const) {
        const orig = v.read();
        v.write(tf.sub(orig, tf.mul(tf.sub(orig, value), decay)));
      }
      tf.dispose([mean, variance]);
      return rank === 4 ? y : tf.reshape(y, x.shape);
    });
  };
  (patched as { nativeFused?: boolean }).nativeFused = true;
  proto.call = patched;
}

let registered = false;

/** Registers the fused training paths for the native backend (idempotent; called when `tensorflow` is chosen). */
export function registerNativeKernels(): void {
  if (registered) return;
  reluGradient();
  stepKernel();
  batchNormTraining();
  maxPoolGradient();
  registered = true;
}
