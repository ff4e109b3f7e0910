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
    const xp = run('PadV2', { x }, { paddings: [[0, 0], [top, bottom + extraBottom], [left, right + extraRight], [0, 0]], constantValue: 0 });
    const xt = run('Transpose', { x: xp }, { perm: [3, 1, 2, 0] });
    const dyt = run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
    const conv = run('Conv2D', { x: xt, filter: dyt }, {
      strides: [1, 1],
      pad: 'valid',
      dataFormat: 'NHWC',
      dilations: [info.strideHeight, info.strideWidth],
    });
    const sliced = run('Slice', { x: conv }, { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] });
    const out = kernel('Transpose')({ inputs: { x: sliced }, backend, attrs: { perm: [1, 2, 0, 3] } }) as tf.TensorInfo;
    return out;
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

let registered = false;

/** Registers the composed kernels on the wasm backend (idempotent). */
export function registerWasmKernels(): void {
  if (registered || tf.getKernel('Conv2DBackpropFilter', 'wasm')) return;
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilterWasm as never });
  registered = true;
}
