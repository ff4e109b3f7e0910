// Least-squares reconstruction after channel removal: each consumer whose input lost channels gets the
// weights that best reproduce the unpruned model's output from what the pruned model still feeds it
// (He, Zhang & Sun, "Channel Pruning for Accelerating Very Deep Neural Networks", ICCV 2017, §3.2's
// linear least squares; Luo et al., "ThiNet", ICCV 2017, §3.3). Layers are refitted in graph order, each
// on the pruned model's inputs after the layers before it were refitted, so errors do not accumulate.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { analyze, type Graph } from './graph';
import type { KeepPlan } from './prune';

export interface ReconstructOptions {
  /** images the fits are computed on, [n, ...input shape] (a few hundred training images) */
  images: tf.Tensor;
  /** at most this many floats in one batch's patch matrix (rows × kh·kw·C; default 2²⁴ = 64 MB): sets each layer's images per pass */
  maxPatchFloats?: number;
  /** ridge strength relative to the mean diagonal of PᵀP, pulling towards the plainly pruned weights (default 1e-3) */
  ridge?: number;
}

export interface ReconstructedLayer {
  layer: string;
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

/** Solves (A + λI) X = B + λ X0 by Cholesky in float64; A [k, k] symmetric positive semi-definite, B and X0 [k, m]. */
function ridgeSolve(a: Float64Array, b: Float64Array, x0: Float64Array, k: number, m: number, lambda: number): Float64Array {
  const l = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * k + j] + (i === j ? lambda : 0);
      for (let p = 0; p < j; p++) s -= l[i * k + p] * l[j * k + p];
      l[i * k + j] = i === j ? Math.sqrt(Math.max(s, 1e-30)) : s / l[j * k + j];
    }
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

/**
 * Refits, in place, the weights of every Conv2D / Dense of `pruned` whose input lost channels, by least squares against
 * `original`'s output of the same layer (before its activation), on `opts.images`. `pruned` is `original` pruned by `keep`
 * (ml/prune.ts pruneModel); `graph` is analyze(original). Layers of other kinds, and convolutions with dilation, are left
 * as pruned. Returns each refitted layer's relative error before and after.
 */
export function reconstruct(
  original: tfl.LayersModel,
  pruned: tfl.LayersModel,
  keep: KeepPlan,
  opts: ReconstructOptions,
  graph: Graph = analyze(original),
): ReconstructedLayer[] {
  const maxFloats = opts.maxPatchFloats ?? 2 ** 24;
  const ridge = opts.ridge ?? 1e-3;
  const n = opts.images.shape[0];
  const out: ReconstructedLayer[] = [];
  for (const layer of pruned.layers) {
    const op = opOf(layer);
    if (!op) continue;
    const orig = original.getLayer(layer.name);
    const [kernel, bias] = layer.getWeights();
    const [oKernel, oBias] = orig.getWeights();
    const cin = kernel.shape[kernel.shape.length - 2];
    if (cin === oKernel.shape[oKernel.shape.length - 2]) continue; // its input lost nothing
    const cout = kernel.shape[kernel.shape.length - 1];
    const kept = keptOutputs(graph, keep, layer.name, oKernel.shape[oKernel.shape.length - 1]);
    const hasBias = bias !== undefined;
    const k = op.kh * op.kw * cin + (hasBias ? 1 : 0);
    const outShape = layer.outputShape as number[];
    const rowsPerImage = op.kind === 'conv' ? outShape[1] * outShape[2] : 1;
    const bs = Math.max(1, Math.min(256, Math.floor(maxFloats / (rowsPerImage * k))));
    const inP = tfl.model({ inputs: pruned.inputs, outputs: layer.input as tfl.SymbolicTensor });
    const inO = tfl.model({ inputs: original.inputs, outputs: orig.input as tfl.SymbolicTensor });
    const w0 = tf.tidy(() => {
      const w = kernel.reshape([-1, cout]);
      return hasBias ? tf.concat([w, bias.reshape([1, cout])], 0) : w;
    });
    let ata = tf.zeros([k, k]);
    let aty = tf.zeros([k, cout]);
    let yy = 0;
    for (let s = 0; s < n; s += bs) {
      const [pa, py, e] = tf.tidy(() => {
        const x = opts.images.slice(s, Math.min(bs, n - s));
        let p = patches(inP.predict(x) as tf.Tensor4D, op);
        if (hasBias) p = tf.concat([p, tf.ones([p.shape[0], 1])], 1);
        const po = patches(inO.predict(x) as tf.Tensor4D, { ...op });
        let y = tf.matMul(po, oKernel.reshape([-1, oKernel.shape[oKernel.shape.length - 1]]));
        if (oBias) y = tf.add(y, oBias.reshape([1, -1]));
        y = tf.gather(y, kept, 1);
        return [tf.matMul(p, p, true, false), tf.matMul(p, y, true, false), tf.sum(tf.square(y))];
      });
      const a2 = tf.add(ata, pa);
      const b2 = tf.add(aty, py);
      ata.dispose();
      aty.dispose();
      ata = a2;
      aty = b2;
      yy += (e.dataSync() as Float32Array)[0];
      tf.dispose([pa, py, e]);
    }
    const A = Float64Array.from(ata.dataSync() as Float32Array);
    const B = Float64Array.from(aty.dataSync() as Float32Array);
    const X0 = Float64Array.from(w0.dataSync() as Float32Array);
    tf.dispose([ata, aty, w0]);
    let trace = 0;
    for (let i = 0; i < k; i++) trace += A[i * k + i];
    const x = ridgeSolve(A, B, X0, k, cout, (ridge * trace) / k);
    // ‖PW − Y‖² = WᵀAW − 2WᵀB + ‖Y‖², summed over the output columns
    const err = (w: Float64Array) => {
      let e = yy;
      for (let c = 0; c < cout; c++)
        for (let i = 0; i < k; i++) {
          let aw = 0;
          for (let j = 0; j < k; j++) aw += A[i * k + j] * w[j * cout + c];
          e += w[i * cout + c] * (aw - 2 * B[i * cout + c]);
        }
      return e / Math.max(yy, 1e-30);
    };
    out.push({ layer: layer.name, before: err(X0), after: err(x) });
    const wk = Float32Array.from(x.subarray(0, (k - (hasBias ? 1 : 0)) * cout));
    const next = [tf.tensor(wk, kernel.shape)];
    if (hasBias) next.push(tf.tensor(Float32Array.from(x.subarray((k - 1) * cout)), bias.shape));
    layer.setWeights([...next, ...layer.getWeights().slice(next.length)]);
    tf.dispose(next);
  }
  return out;
}
