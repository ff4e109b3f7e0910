// Least-squares reconstruction after channel removal: each consumer whose input lost channels gets the
// weights that best reproduce the unpruned model's output from what the pruned model still feeds it
// (He, Zhang & Sun, "Channel Pruning for Accelerating Very Deep Neural Networks", ICCV 2017, §3.2's
// linear least squares; Luo et al., "ThiNet", ICCV 2017, §3.3). Layers are refitted in graph order, each
// on the pruned model's inputs after the layers before it were refitted, so errors do not accumulate.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { analyze, type Graph } from './graph';
import { gather, type Split } from './data';
import type { KeepPlan } from './prune';
import { inputShapeOf } from './train';

export interface ReconstructOptions {
  /** images the fits are computed on, [n, ...input shape] (a few hundred training images) */
  images: tf.Tensor;
  /** at most this many floats in one batch's patch matrix (rows × kh·kw·C; default 2²⁴ = 64 MB): sets each layer's images per pass */
  maxPatchFloats?: number;
  /** layers with more unknowns per output channel (kh·kw·C_in + 1) are left as pruned (default MAX_RECONSTRUCT_UNKNOWNS) */
  maxUnknowns?: number;
  /** ridge strength relative to the mean diagonal of PᵀP, pulling towards the plainly pruned weights (default 1e-3) */
  ridge?: number;
}

export interface ReconstructedLayer {
  layer: string;
  /** why the layer was left as pruned (too many unknowns); its errors are then NaN */
  skipped?: string;
  /** relative squared error ‖PW − Y‖² / ‖Y‖² of the plainly pruned weights and of the refitted ones, on the fit images */
  before: number;
  after: number;
}

interface Op {
  kind: 'conv' | 'dense';
  kh: number;
  kw: number;
  strides: [number, number];
  padding: 'same' | 'valid';
}

/** The layer's linear operation when it is one this step refits (Conv2D with dilation 1, Dense on 2-D input), else undefined. */
function opOf(layer: tfl.layers.Layer): Op | undefined {
  const c = layer.getConfig() as Record<string, unknown>;
  const cls = layer.getClassName();
  if (cls === 'Dense')
    return (layer.input as tfl.SymbolicTensor).shape.length === 2 ? { kind: 'dense', kh: 1, kw: 1, strides: [1, 1], padding: 'valid' } : undefined;
  if (cls !== 'Conv2D') return undefined;
  const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [v[0], v[1] ?? v[0]] : [v as number, v as number]);
  const dil = pair(c.dilationRate ?? 1);
  if (dil[0] !== 1 || dil[1] !== 1 || (c.dataFormat ?? 'channelsLast') !== 'channelsLast') return undefined;
  const [kh, kw] = pair(c.kernelSize);
  return { kind: 'conv', kh, kw, strides: pair(c.strides ?? 1), padding: c.padding === 'same' ? 'same' : 'valid' };
}

/** Rows of input patches, [positions, kh·kw·C] in the kernel's (h, w, c) order: a Conv2D is then patches × kernel.reshape([-1, cout]). */
function patches(x: tf.Tensor4D, op: Op): tf.Tensor2D {
  return tf.tidy(() => {
    if (op.kind === 'dense') return x.reshape([x.shape[0], -1]) as tf.Tensor2D;
    const [, h, w, c] = x.shape;
    const [sh, sw] = op.strides;
    const outH = op.padding === 'same' ? Math.ceil(h / sh) : Math.floor((h - op.kh) / sh) + 1;
    const outW = op.padding === 'same' ? Math.ceil(w / sw) : Math.floor((w - op.kw) / sw) + 1;
    let xp = x;
    if (op.padding === 'same') {
      // TensorFlow's SAME padding: the total split with the extra one after
      const ph = Math.max((outH - 1) * sh + op.kh - h, 0);
      const pw = Math.max((outW - 1) * sw + op.kw - w, 0);
      xp = tf.pad(x, [
        [0, 0],
        [Math.floor(ph / 2), ph - Math.floor(ph / 2)],
        [Math.floor(pw / 2), pw - Math.floor(pw / 2)],
        [0, 0],
      ]);
    }
    const parts: tf.Tensor[] = [];
    for (let i = 0; i < op.kh; i++)
      for (let j = 0; j < op.kw; j++)
        parts.push(tf.stridedSlice(xp, [0, i, j, 0], [xp.shape[0], i + (outH - 1) * sh + 1, j + (outW - 1) * sw + 1, c], [1, sh, sw, 1]));
    return tf.concat(parts, 3).reshape([-1, op.kh * op.kw * c]) as tf.Tensor2D;
  });
}

/** Lets timers (the activity's heartbeat) run between long stretches of host-side arithmetic. */
const yieldToEvents = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Counts host-side multiply-adds and yields to the event loop every 2·10⁷ of them. */
function yielder(): (ops: number) => Promise<void> {
  let work = 0;
  return async (ops) => {
    work += ops;
    if (work > 2e7) {
      work = 0;
      await yieldToEvents();
    }
  };
}

/**
 * Solves (A + λI) X = B + λ X0 by Cholesky in float64; A [k, k] symmetric positive semi-definite, B and X0 [k, m].
 * Yields to the event loop every few million multiply-adds, so a long solve never starves the heartbeat.
 */
async function ridgeSolve(a: Float64Array, b: Float64Array, x0: Float64Array, k: number, m: number, lambda: number): Promise<Float64Array> {
  const l = new Float64Array(k * k);
  const tick = yielder();
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * k + j] + (i === j ? lambda : 0);
      for (let p = 0; p < j; p++) s -= l[i * k + p] * l[j * k + p];
      l[i * k + j] = i === j ? Math.sqrt(Math.max(s, 1e-30)) : s / l[j * k + j];
    }
    await tick(i * i);
  }
  const x = new Float64Array(k * m);
  const y = new Float64Array(k);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < k; i++) {
      let s = b[i * m + c] + lambda * x0[i * m + c];
      for (let p = 0; p < i; p++) s -= l[i * k + p] * y[p];
      y[i] = s / l[i * k + i];
    }
    for (let i = k - 1; i >= 0; i--) {
      let s = y[i];
      for (let p = i + 1; p < k; p++) s -= l[p * k + i] * x[p * m + c];
      x[i * m + c] = s / l[i * k + i];
    }
    await tick(k * k);
  }
  return x;
}

/** The original output channels a pruned producer kept (sorted), or all of them. */
function keptOutputs(graph: Graph, keep: KeepPlan, layer: string, cout: number): number[] {
  const g = graph.producerGroup.get(layer);
  const group = g === undefined ? undefined : graph.groups.find((x) => x.id === graph.root(g));
  const kept = group ? keep[group.name] : undefined;
  return kept ? [...kept].sort((p, q) => p - q) : Array.from({ length: cout }, (_, i) => i);
}

/** The largest refit this step solves (unknowns per output channel, kh·kw·C_in + 1): above it a layer is left as pruned. */
export const MAX_RECONSTRUCT_UNKNOWNS = 4097;

/**
 * Refits, in place, the weights of every Conv2D (dilation 1, channels last) and Dense on 2-D input of `pruned` whose input
 * lost channels, by ridge least squares against `original`'s output of the same layer before its activation, on
 * `opts.images` [n, ...input shape]: W = argmin ‖P·W − Y‖² + λ‖W − W₀‖², P the pruned model's input patches (a ones column
 * for the bias), Y the original output for the output channels `keep` kept, W₀ the plainly pruned weights, λ = ridge × the
 * mean of PᵀP's diagonal (He, Zhang & Sun, ICCV 2017, §3.2). PᵀP and PᵀY are summed on the backend in float32, the
 * system solved by Cholesky in float64. `pruned` is `original` pruned by `keep` (ml/prune.ts pruneModel); `graph` is
 * analyze(original). Layers are refitted in graph order, each on the pruned model's activations with the earlier layers
 * already refitted. Other layer kinds, and layers with more than `maxUnknowns` unknowns, are left as pruned
 * (`skipped`). Yields to the event loop between batches and during solves (a stage's heartbeat keeps beating).
 * Returns each refitted layer's relative error ‖PW − Y‖² / ‖Y‖² on the fit images, before and after.
 */
export async function reconstruct(
  original: tfl.LayersModel,
  pruned: tfl.LayersModel,
  keep: KeepPlan,
  opts: ReconstructOptions,
  graph: Graph = analyze(original),
): Promise<ReconstructedLayer[]> {
  const maxFloats = opts.maxPatchFloats ?? 2 ** 24;
  const ridge = opts.ridge ?? 1e-3;
  const maxUnknowns = opts.maxUnknowns ?? MAX_RECONSTRUCT_UNKNOWNS;
  const n = opts.images.shape[0];
  const out: ReconstructedLayer[] = [];
  for (const layer of pruned.layers) {
    const op = opOf(layer);
    if (!op) continue;
    const orig = original.getLayer(layer.name);
    const [kernel, bias] = layer.getWeights();
    const [oKernel, oBias] = orig.getWeights();
    const cin = kernel.shape[kernel.shape.length - 2];
    const oCout = oKernel.shape[oKernel.shape.length - 1];
    if (cin === oKernel.shape[oKernel.shape.length - 2]) continue; // its input lost nothing
    const cout = kernel.shape[kernel.shape.length - 1];
    const kept = keptOutputs(graph, keep, layer.name, oCout);
    const hasBias = bias !== undefined;
    const kp = op.kh * op.kw * cin; // patch columns
    const k = kp + (hasBias ? 1 : 0);
    if (k > maxUnknowns) {
      out.push({ layer: layer.name, before: NaN, after: NaN, skipped: `${k} unknowns per output channel, more than ${maxUnknowns}` });
      continue;
    }
    const outShape = layer.outputShape as number[];
    const rowsPerImage = op.kind === 'conv' ? outShape[1] * outShape[2] : 1;
    // the patch matrix of a batch stays within maxFloats (its kh·kw slices and their concatenation hold about twice that)
    const bs = Math.max(1, Math.min(256, Math.floor(maxFloats / (rowsPerImage * kp))));
    const inP = tfl.model({ inputs: pruned.inputs, outputs: layer.input as tfl.SymbolicTensor });
    const inO = tfl.model({ inputs: original.inputs, outputs: orig.input as tfl.SymbolicTensor });
    const w0 = tf.tidy(() => {
      const w = kernel.reshape([-1, cout]);
      return hasBias ? tf.concat([w, bias.reshape([1, cout])], 0) : w;
    });
    // sums over the fit images: PᵀP, PᵀY, and (bias) the column sums of P and Y and the row count
    let ptp = tf.zeros([kp, kp]);
    let pty = tf.zeros([kp, cout]);
    let sp = tf.zeros([kp]);
    let sy = tf.zeros([cout]);
    let rows = 0;
    let yy = 0;
    const add = (acc: tf.Tensor, x: tf.Tensor) => {
      const next = tf.add(acc, x);
      acc.dispose();
      return next;
    };
    for (let s = 0; s < n; s += bs) {
      const [a, b, cp, cy, e, r] = tf.tidy(() => {
        const x = opts.images.slice(s, Math.min(bs, n - s));
        const p = patches(inP.predict(x) as tf.Tensor4D, op);
        const xo = inO.predict(x) as tf.Tensor;
        let y: tf.Tensor =
          op.kind === 'conv'
            ? tf.conv2d(xo as tf.Tensor4D, oKernel as tf.Tensor4D, op.strides, op.padding).reshape([-1, oCout])
            : tf.matMul(xo as tf.Tensor2D, oKernel as tf.Tensor2D);
        if (oBias) y = tf.add(y, oBias.reshape([1, -1]));
        y = tf.gather(y, kept, 1);
        return [tf.matMul(p, p, true, false), tf.matMul(p, y, true, false), tf.sum(p, 0), tf.sum(y, 0), tf.sum(tf.square(y)), tf.scalar(p.shape[0])];
      });
      ptp = add(ptp, a);
      pty = add(pty, b);
      sp = add(sp, cp);
      sy = add(sy, cy);
      yy += (e.dataSync() as Float32Array)[0];
      rows += (r.dataSync() as Float32Array)[0];
      tf.dispose([a, b, cp, cy, e, r]);
      await yieldToEvents();
    }
    // the bordered system of [P 1]: A = [[PᵀP, Pᵀ1], [1ᵀP, rows]], B = [[PᵀY], [1ᵀY]]
    const PtP = ptp.dataSync() as Float32Array;
    const PtY = pty.dataSync() as Float32Array;
    const SP = sp.dataSync() as Float32Array;
    const SY = sy.dataSync() as Float32Array;
    const A = new Float64Array(k * k);
    const B = new Float64Array(k * cout);
    for (let i = 0; i < kp; i++) {
      for (let j = 0; j < kp; j++) A[i * k + j] = PtP[i * kp + j];
      for (let c = 0; c < cout; c++) B[i * cout + c] = PtY[i * cout + c];
    }
    if (hasBias) {
      for (let i = 0; i < kp; i++) A[i * k + kp] = A[kp * k + i] = SP[i];
      A[kp * k + kp] = rows;
      for (let c = 0; c < cout; c++) B[kp * cout + c] = SY[c];
    }
    const X0 = Float64Array.from(w0.dataSync() as Float32Array);
    tf.dispose([ptp, pty, sp, sy, w0]);
    let trace = 0;
    for (let i = 0; i < k; i++) trace += A[i * k + i];
    const x = await ridgeSolve(A, B, X0, k, cout, (ridge * trace) / k);
    // ‖PW − Y‖² = Σ_columns (wᵀAw − 2wᵀb) + ‖Y‖² (0 at the least; PᵀP summed in float32 can round it below)
    const err = async (w: Float64Array) => {
      const tick = yielder();
      let e = yy;
      for (let c = 0; c < cout; c++) {
        for (let i = 0; i < k; i++) {
          let aw = 0;
          for (let j = 0; j < k; j++) aw += A[i * k + j] * w[j * cout + c];
          e += w[i * cout + c] * (aw - 2 * B[i * cout + c]);
        }
        await tick(k * k);
      }
      return Math.max(0, e) / Math.max(yy, 1e-30);
    };
    out.push({ layer: layer.name, before: await err(X0), after: await err(x) });
    const next = [tf.tensor(Float32Array.from(x.subarray(0, kp * cout)), kernel.shape)];
    if (hasBias) next.push(tf.tensor(Float32Array.from(x.subarray(kp * cout)), bias.shape));
    layer.setWeights([...next, ...layer.getWeights().slice(next.length)]);
    tf.dispose(next);
  }
  return out;
}

/**
 * reconstruct() on the examples `idx` of `split` (their inputs copied into one tensor, [idx.length, ...the model's input
 * shape], freed after): what the prune stage and the benches call.
 */
export async function reconstructOnSplit(
  original: tfl.LayersModel,
  pruned: tfl.LayersModel,
  keep: KeepPlan,
  split: Split,
  idx: ArrayLike<number>,
  graph: Graph = analyze(original),
): Promise<ReconstructedLayer[]> {
  const batch = gather(split, idx, 0, idx.length);
  const images = tf.tensor(batch.x, [batch.n, ...inputShapeOf(original)]);
  try {
    return await reconstruct(original, pruned, keep, { images }, graph);
  } finally {
    images.dispose();
  }
}
