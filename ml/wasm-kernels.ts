// Gradient kernels the wasm backend lacks, composed from kernels it has, so conv nets train on
// wasm instead of pure JS. Verified against the cpu backend in test/wasm-kernels.test.ts.
//
// Conv2DBackpropFilter: dW[i,j,ci,co] = Σ_b Σ_{h,w} xpad[b, h·s + i, w·s + j, ci] · dy[b,h,w,co]
// is itself a convolution: treat the input channels as the batch and the batch as channels,
// convolve the padded input [Ci, Hp, Wp, B] with dy as a filter [Ho, Wo, B, Co] at dilation = stride,
// keep the first kh × kw outputs and move the axes back to [kh, kw, Ci, Co].
import * as tf from '@tensorflow/tfjs-core';

type KernelFn = (args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }) => tf.TensorInfo | tf.TensorInfo[];

function kernel(name: string): KernelFn {
  const k = tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`wasm backend has no ${name} kernel to compose from`);
  return k.kernelFunc as unknown as KernelFn;
}

function conv2DBackpropFilterWasm(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const backend = args.backend;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as unknown as {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm: NCHW is not supported');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  const [kh, kw, ci, co] = filterShape;
  const temps: tf.TensorInfo[] = [];
  const run = (name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap) => {
    const out = kernel(name)({ inputs, backend, attrs }) as tf.TensorInfo;
    temps.push(out);
    return out;
  };
  try {
    const { top, bottom, left, right } = info.padInfo;
    // enough rows/cols that the output covers kh × kw even where 'same' padding rounds down
    const needH = (info.outHeight - 1) * info.strideHeight + kh;
    const needW = (info.outWidth - 1) * info.strideWidth + kw;
    const extraBottom = Math.max(0, needH - (x.shape[1] + top + bottom));
    const extraRight = Math.max(0, needW - (x.shape[2] + left + right));
    const xp = run(
      'PadV2',
      { x },
      {
        paddings: [
          [0, 0],
          [top, bottom + extraBottom],
          [left, right + extraRight],
          [0, 0],
        ],
        constantValue: 0,
      },
    );
    const xt = run('Transpose', { x: xp }, { perm: [3, 1, 2, 0] });
    const dyt = run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
    const conv = run(
      'Conv2D',
      { x: xt, filter: dyt },
      {
        strides: [1, 1],
        pad: 'valid',
        dataFormat: 'NHWC',
        dilations: [info.strideHeight, info.strideWidth],
      },
    );
    const sliced = run('Slice', { x: conv }, { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] });
    const out = kernel('Transpose')({ inputs: { x: sliced }, backend, attrs: { perm: [1, 2, 0, 3] } }) as tf.TensorInfo;
    return out;
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

type Args = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };

/** Runs wasm kernels, remembering intermediates so they are freed whatever happens. */
function composer(backend: tf.KernelBackend) {
  const temps: tf.TensorInfo[] = [];
  return {
    run(name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap, keep = false): tf.TensorInfo {
      const out = kernel(name)({ inputs, backend, attrs }) as tf.TensorInfo;
      if (!keep) temps.push(out);
      return out;
    },
    constant(values: Float32Array, shape: number[]): tf.TensorInfo {
      const t = { dataId: backend.write(values, shape, 'float32'), shape, dtype: 'float32' as const };
      temps.push(t);
      return t;
    },
    free(): void {
      for (const t of temps) backend.disposeData(t.dataId);
    },
  };
}

interface DepthwiseAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number;
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** The composed depthwise gradients cover undilated convolutions, any channel multiplier (ml/graph.ts trainingProblems refuses dilated ones at once). */
function assertPlainDepthwise(kernelName: string, dilations: DepthwiseAttrs['dilations']): void {
  const d = typeof dilations === 'number' ? [dilations, dilations] : (dilations ?? [1, 1]);
  if (d[0] !== 1 || d[1] !== 1) throw new Error(`${kernelName} on wasm: dilated depthwise convolutions are not supported`);
}

/**
 * DepthwiseConv2dNativeBackpropFilter: dW[i,j,c] = Σ_b Σ_{h,w} xpad[b, h·s+i, w·s+j, c] · dy[b,h,w,c].
 * Folding the batch into the channels ([1, Hp, Wp, B·C]) makes it one depthwise convolution with
 * dy as the filter ([Ho, Wo, B·C, 1]) at dilation = stride; then sum over the batch. A channel
 * multiplier M (filter [kh, kw, C, M], output channel c·M + m reads input channel c) is the same
 * with each input channel repeated M times (C·M channels of multiplier 1), reshaped back to [kh, kw, C, M].
 */
function depthwiseBackpropFilterWasm(args: Args): tf.TensorInfo {
  const { dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  let { x } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dilations, dimRoundingMode, filterShape } = args.attrs as unknown as DepthwiseAttrs & { filterShape: [number, number, number, number] };
  assertPlainDepthwise('DepthwiseConv2dNativeBackpropFilter', dilations);
  const [kh, kw, c0, m] = filterShape;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, true);
  const [b, h, w] = x.shape;
  const c = c0 * m;
  const k = composer(args.backend);
  try {
    if (m > 1) {
      const x5 = k.run('Reshape', { x }, { shape: [b, h, w, c0, 1] });
      const rep = k.run('Multiply', { a: x5, b: k.constant(new Float32Array(m).fill(1), [m]) }, {}); // [B, H, W, C, M]
      x = k.run('Reshape', { x: rep }, { shape: [b, h, w, c] });
    }
    const { top, bottom, left, right } = info.padInfo;
    const extraH = Math.max(0, (info.outHeight - 1) * info.strideHeight + kh - (h + top + bottom));
    const extraW = Math.max(0, (info.outWidth - 1) * info.strideWidth + kw - (w + left + right));
    const xp = k.run(
      'PadV2',
      { x },
      {
        paddings: [
          [0, 0],
          [top, bottom + extraH],
          [left, right + extraW],
          [0, 0],
        ],
        constantValue: 0,
      },
    );
    const hp = xp.shape[1];
    const wp = xp.shape[2];
    const xt = k.run('Transpose', { x: xp }, { perm: [1, 2, 0, 3] }); // [Hp, Wp, B, C]
    const xr = k.run('Reshape', { x: xt }, { shape: [1, hp, wp, b * c] });
    const dyt = k.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }); // [Ho, Wo, B, C]
    const dyr = k.run('Reshape', { x: dyt }, { shape: [info.outHeight, info.outWidth, b * c, 1] });
    const conv = k.run('DepthwiseConv2dNative', { x: xr, filter: dyr }, { strides: [1, 1], pad: 'valid', dilations: [info.strideHeight, info.strideWidth] });
    const sliced = k.run('Slice', { x: conv }, { begin: [0, 0, 0, 0], size: [1, kh, kw, b * c] });
    const perBatch = k.run('Reshape', { x: sliced }, { shape: [kh, kw, b, c] });
    const summed = k.run('Sum', { x: perBatch }, { axis: [2], keepDims: false });
    return k.run('Reshape', { x: summed }, { shape: [kh, kw, c0, m] }, true);
  } finally {
    k.free();
  }
}

/**
 * DepthwiseConv2dNativeBackpropInput: a depthwise conv is a full conv with a block-diagonal
 * filter (W[i,j,c,m] at [i, j, c, c·M + m] of [kh, kw, C, C·M]), whose input gradient wasm has.
 */
function depthwiseBackpropInputWasm(args: Args): tf.TensorInfo {
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, dilations, dimRoundingMode, inputShape } = args.attrs as unknown as DepthwiseAttrs & { inputShape: [number, number, number, number] };
  const [kh, kw, c, m] = filter.shape;
  assertPlainDepthwise('DepthwiseConv2dNativeBackpropInput', dilations);
  const k = composer(args.backend);
  try {
    const eye = new Float32Array(c * c);
    for (let i = 0; i < c; i++) eye[i * c + i] = 1;
    const f5 = k.run('Reshape', { x: filter }, { shape: [kh, kw, c, 1, m] });
    const blocks = k.run('Multiply', { a: f5, b: k.constant(eye, [c, c, 1]) }, {}); // [kh, kw, C, 1, M] × [C, C, 1] → [kh, kw, C, C, M]
    const diag = k.run('Reshape', { x: blocks }, { shape: [kh, kw, c, c * m] });
    const attrs = { strides, pad, dataFormat: 'NHWC', inputShape, ...(dimRoundingMode ? { dimRoundingMode } : {}) };
    return k.run('Conv2DBackpropInput', { dy, filter: diag }, attrs as tf.NamedAttrMap, true);
  } finally {
    k.free();
  }
}

/**
 * Conv2DBackpropInput at stride 1: wasm's own kernel is a naive loop; the same result is a
 * convolution of dy, padded by kh-1-pad, with the filter flipped in space and its channel axes
 * swapped. Other strides go to the original kernel.
 */
function conv2DBackpropInputFast(original: KernelFn) {
  return (args: Args): tf.TensorInfo => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as unknown as {
      strides: [number, number] | number;
      pad: 'valid' | 'same' | number;
      dataFormat: 'NHWC' | 'NCHW';
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
      inputShape: [number, number, number, number];
    };
    const info = tf.backend_util.computeConv2DInfo(
      inputShape,
      filter.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    if (dataFormat === 'NCHW' || info.strideHeight !== 1 || info.strideWidth !== 1) return original(args) as tf.TensorInfo;
    const [kh, kw] = filter.shape;
    const { top, left } = info.padInfo;
    const [, h, w] = inputShape;
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    const padBottom = h + kh - 1 - info.outHeight - padTop;
    const padRight = w + kw - 1 - info.outWidth - padLeft;
    if (Math.min(padTop, padLeft, padBottom, padRight) < 0) return original(args) as tf.TensorInfo;
    const k = composer(args.backend);
    try {
      const dyp = k.run(
        'PadV2',
        { x: dy },
        {
          paddings: [
            [0, 0],
            [padTop, padBottom],
            [padLeft, padRight],
            [0, 0],
          ],
          constantValue: 0,
        },
      );
      const flipped = k.run('Reverse', { x: filter }, { dims: [0, 1] });
      const swapped = k.run('Transpose', { x: flipped }, { perm: [0, 1, 3, 2] });
      return k.run('Conv2D', { x: dyp, filter: swapped }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] }, true);
    } finally {
      k.free();
    }
  };
}

/** BatchMatMul with transposes is several times slower on wasm than transposing first, then multiplying. */
function batchMatMulFast(original: KernelFn) {
  return (args: Args): tf.TensorInfo => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return original(args) as tf.TensorInfo;
    const k = composer(args.backend);
    const swapLast = (t: tf.TensorInfo) => {
      const perm = t.shape.map((_, i) => i);
      [perm[perm.length - 1], perm[perm.length - 2]] = [perm[perm.length - 2], perm[perm.length - 1]];
      return k.run('Transpose', { x: t }, { perm });
    };
    try {
      return original({
        inputs: { a: transposeA ? swapLast(a) : a, b: transposeB ? swapLast(b) : b },
        backend: args.backend,
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      }) as tf.TensorInfo;
    } finally {
      k.free();
    }
  };
}

/**
 * Tile used as a broadcast (every repeated axis has size 1) is an Add onto zeros, which wasm does
 * with SIMD; its own Tile is a slow element loop (it dominated batch-norm training).
 */
function tileFast(original: KernelFn) {
  return (args: Args): tf.TensorInfo => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { reps } = args.attrs as unknown as { reps: number[] };
    if (x.dtype !== 'float32' || !reps.every((r, i) => r === 1 || x.shape[i] === 1)) return original(args) as tf.TensorInfo;
    const shape = x.shape.map((d, i) => d * reps[i]);
    const k = composer(args.backend);
    try {
      const zeros = k.run('Fill', {}, { shape, value: 0, dtype: 'float32' });
      return k.run('Add', { a: x, b: zeros }, {}, true);
    } finally {
      k.free();
    }
  };
}

interface HeapBackend extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

/**
 * MaxPoolGrad as a JS loop over the wasm heap: wasm's own kernel took ~5 ms for LeNet-5's first
 * pooling layer at batch 32 (the largest single cost of a training step). Each output routes its
 * gradient to the first maximum of its window in row-major order (the cpu backend's rule);
 * overlapping windows accumulate.
 */
function maxPoolGradHeap(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const backend = args.backend as HeapBackend;
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as {
    filterSize: [number, number] | number;
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
  const dx = backend.makeOutput(input.shape, 'float32');
  // views after the allocation (the heap may have grown)
  const out = backend.typedArrayFromHeap(dx);
  const x = backend.typedArrayFromHeap(input);
  const g = backend.typedArrayFromHeap(dy);
  out.fill(0);
  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const xb = b * inHeight * inWidth * C;
    for (let oh = 0; oh < outHeight; oh++) {
      const h0 = oh * strideHeight - top;
      const hs = Math.max(0, h0);
      const he = Math.min(inHeight, h0 + filterHeight);
      for (let ow = 0; ow < outWidth; ow++) {
        const w0 = ow * strideWidth - left;
        const ws = Math.max(0, w0);
        const we = Math.min(inWidth, w0 + filterWidth);
        for (let c = 0; c < C; c++, o++) {
          let best = -Infinity;
          let at = -1;
          for (let h = hs; h < he; h++) {
            for (let w = ws; w < we; w++) {
              const i = xb + (h * inWidth + w) * C + c;
              const v = x[i];
              if (v > best || at < 0) {
                best = v;
                at = i;
              }
            }
          }
          if (at >= 0) out[at] += g[o];
        }
      }
    }
  }
  return dx;
}

let registered = false;

/** Registers the composed kernels on the wasm backend (idempotent; never replaces a real kernel). */
export function registerWasmKernels(): void {
  if (registered) return;
  const add = (kernelName: string, kernelFunc: (a: Args) => tf.TensorInfo) => {
    if (!tf.getKernel(kernelName, 'wasm')) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as never });
  };
  add('Conv2DBackpropFilter', conv2DBackpropFilterWasm);
  add('DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilterWasm);
  add('DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInputWasm);
  if (tf.getKernel('MaxPoolGrad', 'wasm')) tf.unregisterKernel('MaxPoolGrad', 'wasm');
  tf.registerKernel({ kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: maxPoolGradHeap as never });
  // faster compositions in place of two slow wasm kernels (the originals still serve other cases)
  for (const [name, wrap] of [
    ['Conv2DBackpropInput', conv2DBackpropInputFast],
    ['BatchMatMul', batchMatMulFast],
    ['Tile', tileFast],
  ] as const) {
    const original = tf.getKernel(name, 'wasm');
    if (!original) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...original, kernelFunc: wrap(original.kernelFunc as unknown as KernelFn) as never });
  }
  registered = true;
}
