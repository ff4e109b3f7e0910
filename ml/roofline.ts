// Target profiles and roofline ESTIMATES (Williams, Waterman & Patterson, "Roofline", CACM 2009):
// each layer takes max(FLOPs / peak compute, bytes moved / memory bandwidth) plus a fixed per-layer
// overhead. Every number here is an estimate for hardware we do not have, labelled as such; a
// worker started on the device (`prunewise worker --target <name>`) measures for real instead.
import type { ModelCost } from './cost';

export interface TargetProfile {
  name: string;
  description: string;
  /** sustained float32 FLOP/s a tuned kernel reaches (not the datasheet peak) */
  flopsPerSecond: number;
  /** sustained DRAM bandwidth, bytes/s */
  bytesPerSecond: number;
  /** fixed cost per layer per call (dispatch, kernel launch), seconds */
  overheadPerLayerS: number;
  /** board power at full load ÷ the rates above: coarse upper bounds of joules per FLOP / per DRAM byte */
  joulesPerFlop: number;
  joulesPerByte: number;
  source: string;
}

export const TARGET_PROFILES: Record<string, TargetProfile> = {
  'raspberry-pi-4': {
    name: 'raspberry-pi-4',
    description: 'Raspberry Pi 4 Model B, 4× Cortex-A72 @ 1.5 GHz, LPDDR4-3200',
    flopsPerSecond: 13.5e9,
    bytesPerSecond: 4.5e9,
    overheadPerLayerS: 50e-6,
    joulesPerFlop: 6.4 / 13.5e9,
    joulesPerByte: 6.4 / 4.5e9 / 10,
    source: 'HPL ~13.5 GFLOP/s and STREAM ~4.5 GB/s as published for the Pi 4; 6.4 W board power under load (Raspberry Pi product brief)',
  },
  'jetson-nano': {
    name: 'jetson-nano',
    description: 'NVIDIA Jetson Nano, 128-core Maxwell GPU, LPDDR4 25.6 GB/s',
    flopsPerSecond: 236e9 * 0.5,
    bytesPerSecond: 25.6e9 * 0.7,
    overheadPerLayerS: 30e-6,
    joulesPerFlop: 10 / (236e9 * 0.5),
    joulesPerByte: 10 / (25.6e9 * 0.7) / 10,
    source: 'NVIDIA Jetson Nano datasheet: 472 GFLOP/s fp16 (236 fp32), 25.6 GB/s; 10 W mode; assumed 50 % / 70 % of peak sustained',
  },
};

export interface RooflineEstimate {
  latencyMs: number;
  energyJ: number;
  /** layers bound by memory rather than compute */
  memoryBoundLayers: string[];
  profile: string;
}

/**
 * Estimated latency of one batch and energy of one example on `profile`. Bytes moved per layer:
 * the weights once per batch, and the output activations written and read once per example.
 */
export function rooflineEstimate(cost: ModelCost, profile: TargetProfile, batchSize: number, weightBytesPerParam = 4): RooflineEstimate {
  let seconds = 0;
  let joules = 0;
  const memoryBound: string[] = [];
  for (const l of cost.layers) {
    const flops = 2 * l.macs * batchSize;
    const bytes = l.params * weightBytesPerParam + 2 * 4 * l.outputs * batchSize;
    const tc = flops / profile.flopsPerSecond;
    const tm = bytes / profile.bytesPerSecond;
    if (tm > tc && l.macs > 0) memoryBound.push(l.name);
    seconds += Math.max(tc, tm) + profile.overheadPerLayerS;
    joules += flops * profile.joulesPerFlop + bytes * profile.joulesPerByte;
  }
  return { latencyMs: seconds * 1000, energyJ: joules / batchSize, memoryBoundLayers: memoryBound, profile: profile.name };
}
