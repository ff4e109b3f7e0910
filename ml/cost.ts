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

export function modelCost(model: tfl.LayersModel): ModelCost {
  const layers: LayerCost[] = model.layers.map((l) => {
    const out = l.outputShape as Array<number | null>;
    const outputs = prod(out.slice(1));
    const params = l.countParams();
    let macs = 0;
    const cls = l.getClassName();
    if (cls === 'Dense') {
      const inShape = (l.input as tfl.SymbolicTensor).shape as number[];
      macs = inShape[inShape.length - 1] * (out[out.length - 1] as number);
    } else if (cls === 'Conv2D') {
      const kernel = l.getWeights()[0].shape; // [kh, kw, in, out]
      macs = prod(kernel) * prod(out.slice(1, 3));
    }
    return { name: l.name, className: cls, params, macs, outputs };
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
