// Attention transfer (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017): the student
// is taught where the teacher's feature maps are active, not only what its output says. A layer's spatial
// attention map is Q = mean over channels of a² ([H·W] per example), normalised to unit L2 norm, so a pruned
// layer with fewer channels still has a map of the teacher's size. The loss adds β/2 · Σ_layers mean((Q_s − Q_t)²)
// (the paper's `at_loss`, β = 1 000 in its CIFAR experiments), over the layers that feed a pooling layer or a Flatten.
// Nets that downsample with strided convolutions instead (ResNet- and MobileNet-style) get only their last map, the one
// before global pooling.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** A layer whose output [n, H, W, C] is matched, in the model's order. */
export interface AttentionLayer {
  name: string;
  /** H·W: the map's length per example */
  size: number;
}

const DOWNSAMPLE = new Set(['MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten']);
/** Passed over towards the map before them: in training they mask the student's map, which the teacher's never is. */
const DROPOUT = new Set(['Dropout', 'SpatialDropout2D']);

interface NodeLike {
  inboundLayers: tfl.layers.Layer[];
}

/**
 * The layers attention transfer matches: each one whose rank-4 output feeds a pooling layer or a Flatten, through
 * dropout if any (the last feature map before each pooling, as the paper takes each residual group's output), in the
 * model's order.
 * Nested models are not looked into. @returns [] when the model has none (no image features).
 */
export function attentionLayers(model: tfl.LayersModel): AttentionLayer[] {
  const names = new Set<string>();
  for (const l of model.layers) {
    if (!DOWNSAMPLE.has(l.getClassName())) continue;
    const node = (l as unknown as { inboundNodes: NodeLike[] }).inboundNodes[0];
    // a pooling layer feeding a Flatten is not a feature map of its own: the map before it is matched
    for (let p of node?.inboundLayers ?? []) {
      while (DROPOUT.has(p.getClassName())) {
        const before = (p as unknown as { inboundNodes: NodeLike[] }).inboundNodes[0]?.inboundLayers[0];
        if (!before) break;
        p = before;
      }
      if (!DOWNSAMPLE.has(p.getClassName()) && !DROPOUT.has(p.getClassName())) names.add(p.name);
    }
  }
  const out: AttentionLayer[] = [];
  for (const l of model.layers) {
    if (!names.has(l.name)) continue;
    const shape = l.outputShape as Array<number | null>;
    if (!Array.isArray(shape) || shape.length !== 4 || shape[1] === null || shape[2] === null) continue;
    out.push({ name: l.name, size: shape[1] * shape[2] });
  }
  return out;
}

/**
 * Checks the student can be taught by the teacher's maps: the same layers (by name) at the same resolutions.
 * @throws Error naming the first layer that differs, or saying the model has no feature maps to match
 */
export function checkAttention(student: tfl.LayersModel, teacher: tfl.LayersModel): AttentionLayer[] {
  const s = attentionLayers(student);
  if (s.length === 0)
    throw new Error('distill.attention: the model has no feature map [H, W, C] before a pooling layer or Flatten to match: set distill.attention to 0');
  const t = new Map(attentionLayers(teacher).map((l) => [l.name, l.size]));
  for (const l of s)
    if (t.get(l.name) !== l.size)
      throw new Error(`distill.attention: layer ${l.name} (${l.size} positions) has no match of that size in the teacher: set distill.attention to 0`);
  return s;
}

const extractors = new WeakMap<tfl.LayersModel, { key: string; model: tfl.LayersModel }>();

/** The teacher's normalised attention maps [n · Σ size] (examples in order, each layer's map in turn), in inference mode. */
export function attentionMaps(teacher: tfl.LayersModel, layers: AttentionLayer[], x: Float32Array, n: number): Float32Array {
  const key = layers.map((l) => l.name).join('\n');
  let e = extractors.get(teacher);
  if (!e || e.key !== key) {
    e = { key, model: tfl.model({ inputs: teacher.inputs, outputs: layers.map((l) => teacher.getLayer(l.name).output as tfl.SymbolicTensor) }) };
    extractors.set(teacher, e);
  }
  const model = e.model;
  const shape = (teacher.inputs[0].shape as Array<number | null>).slice(1).map((d) => d ?? 1);
  const q = tf.tidy(() => {
    const outs = model.apply(tf.tensor(x, [n, ...shape]), { training: false }) as tf.Tensor | tf.Tensor[];
    const maps = (Array.isArray(outs) ? outs : [outs]).map((a) => normalisedMap(a as tf.Tensor4D));
    return maps.length === 1 ? maps[0] : tf.concat(maps, 1);
  });
  try {
    return (q.dataSync() as Float32Array).slice();
  } finally {
    q.dispose();
  }
}

/** Q = mean_c(a²) flattened to [n, H·W], each row divided by its L2 norm (ε 1e-12, as torch's F.normalize). */
export function normalisedMap(a: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const m = tf.reshape(tf.mean(tf.square(a), -1), [a.shape[0], -1]) as tf.Tensor2D;
    return tf.div(m, tf.maximum(tf.norm(m, 2, 1, true), 1e-12));
  });
}
