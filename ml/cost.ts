// What a model costs: exact parameter counts, FLOPs, weight bytes, and an energy *estimate*.
import type * as tfl from '@tensorflow/tfjs-layers';

export interface LayerCost {
  name: string;
  className: string;
  params: number;
  macs: number;
  /** output activations per example */
  outputs: number;
}

export interface ModelCost {
  params: number;
  /** 2 × multiply-accumulates per example */
  flops: number;
  macs: number;
  /** float32 weight bytes (4 per parameter) */
  bytes: number;
  layers: LayerCost[];
}

const prod = (xs: Array<number | null>) => xs.reduce<number>((a, b) => a * (b ?? 1), 1);

/**
 * Multiply-accumulates of one layer per example, counted from its weight shapes and its input and
 * output shapes (batch first, channels last; spatial sizes must be static — ml/graph.ts
 * `supportProblems` refuses inputs with None dimensions):
 * - Dense: kernel [in, out], applied at every position of an N-D input: in·out·Π(other input axes)
 * - Conv1D/2D/3D: kernel [k…, in/groups, out] at every output position: Π(kernel)·Π(output spatial)
 *   (dilation and padding only change the output size; grouped kernels are already in/groups wide)
 * - DepthwiseConv2D: kernel [kh, kw, C, M]: kh·kw·C·M·Π(output spatial)
 * - SeparableConv2D: its depthwise kernel as above plus the pointwise [1, 1, C·M, F]: (kh·kw·C·M + C·M·F)·Π(output spatial)
 * - Conv2DTranspose/3D: kernel [k…, out, in] scattered from every INPUT position: Π(kernel)·Π(input spatial)
 * - LSTM/GRU/SimpleRNN: per time step the input kernel [in, g·u] and the recurrent kernel [u, g·u]: T·(in + u)·g·u
 * Everything else is 0: element-wise layers (batch norm, PReLU, activations, pooling, adds) are
 * not multiply-accumulates of weights — the convention of THOP and fvcore for conv nets, under
 * which e.g. MobileNet V1 is 569 M MACs (Howard et al. 2017, table 8). Biases are not counted.
 */
export function layerMacs(l: tfl.layers.Layer): number {
  const cls = l.getClassName();
  const node = l.inboundNodes[0];
  if (!node) return 0;
  const ws = l.weights.map((w) => w.shape as number[]);
  const inShape = node.inputTensors[0].shape as Array<number | null>;
  const outShape = (Array.isArray((l.outputShape as unknown[])[0]) ? (l.outputShape as unknown[])[0] : l.outputShape) as Array<number | null>;
  const spatial = (s: Array<number | null>) => prod(s.slice(1, -1));
  switch (cls) {
    case 'Dense':
      return prod(ws[0]) * spatial(inShape);
    case 'Conv1D':
    case 'Conv2D':
    case 'Conv3D':
    case 'DepthwiseConv2D':
      return prod(ws[0]) * spatial(outShape);
    case 'SeparableConv2D':
      return (prod(ws[0]) + prod(ws[1])) * spatial(outShape);
    case 'Conv2DTranspose':
    case 'Conv3DTranspose':
      return prod(ws[0]) * spatial(inShape);
    case 'LSTM':
    case 'GRU':
    case 'SimpleRNN':
      return (inShape[1] ?? 1) * (prod(ws[0]) + prod(ws[1]));
    default:
      return 0;
  }
}

/** What a model costs per example: parameters, MACs (layerMacs), FLOPs = 2 × MACs, float32 bytes. */
export function modelCost(model: tfl.LayersModel): ModelCost {
  const layers: LayerCost[] = model.layers.map((l) => {
    const out = (Array.isArray((l.outputShape as unknown[])[0]) ? (l.outputShape as unknown[])[0] : l.outputShape) as Array<number | null>;
    return { name: l.name, className: l.getClassName(), params: l.countParams(), macs: layerMacs(l), outputs: prod(out.slice(1)) };
  });
  const params = layers.reduce((a, l) => a + l.params, 0);
  const macs = layers.reduce((a, l) => a + l.macs, 0);
  return { params, macs, flops: 2 * macs, bytes: 4 * params, layers };
}

/**
 * Energy model "horowitz-45nm" (M. Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm):
 * fp32 multiply 3.7 pJ + add 0.9 pJ per MAC; int8 multiply 0.2 pJ + add 0.03 pJ; DRAM 640 pJ per
 * 32-bit access (160 pJ/byte) for weights read once per inference; 8 KB SRAM ~10 pJ per 64-bit
 * access (1.25 pJ/byte) for activations written and read once. An ESTIMATE, labelled as such.
 */
export const ENERGY_MODEL = {
  name: 'horowitz-45nm',
  pjPerMac: { float32: 4.6, int8: 0.23 },
  pjPerDramByte: 160,
  pjPerSramByte: 1.25,
} as const;

export function estimateEnergyJoules(cost: ModelCost, dtype: 'float32' | 'int8' = 'float32'): number {
  const weightBytes = dtype === 'int8' ? cost.params : cost.bytes;
  const activationBytes = 2 * 4 * cost.layers.reduce((a, l) => a + l.outputs, 0);
  const pj = cost.macs * ENERGY_MODEL.pjPerMac[dtype] + weightBytes * ENERGY_MODEL.pjPerDramByte + activationBytes * ENERGY_MODEL.pjPerSramByte;
  return pj * 1e-12;
}
