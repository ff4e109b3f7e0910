// The measuring policy: how a model's latency and energy on the campaign's target are obtained,
// and what each number is (measured, and where; or estimated, by which model). Timed side by side
// with the baseline on this worker (drift cancels in the ratio), a roofline ESTIMATE for a target
// profile (ml/roofline.ts), and the RAPL energy sensor where the worker has one.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as os from 'node:os';
import { estimateEnergyJoules, modelCost, type ModelCost } from './cost';
import { measureJoules, raplDomains, type RaplDomain } from './energy-sensor';
import { rooflineEstimate, TARGET_PROFILES } from './roofline';
import { forward, inputShapeOf, yieldToEventLoop } from './train';

export interface LatencyResult {
  medianMs: number;
  p90Ms: number;
  batchSize: number;
  runs: number;
}

/** Latency of one forward pass at `batchSize`: median of `runs` after `warmup` untimed runs. */
export async function measureLatency(model: tfl.LayersModel, batchSize: number, warmup: number, runs: number): Promise<LatencyResult> {
  const x = tf.randomUniform([batchSize, ...inputShapeOf(model)], 0, 1, 'float32', 7);
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = performance.now();
      const y = forward(model, x);
      await y.data(); // forces the computation to finish on async backends
      const dt = performance.now() - t0;
      y.dispose();
      if (i >= warmup) times.push(dt);
      await yieldToEventLoop();
    }
  } finally {
    x.dispose();
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  return { medianMs: at(0.5), p90Ms: at(0.9), batchSize, runs };
}

/**
 * Latency of several models measured side by side: each round times every model once, in turn,
 * so drift on a shared machine (frequency, neighbours) hits all of them alike; medians per model.
 */
export async function measureLatencyInterleaved(models: tfl.LayersModel[], batchSize: number, warmup: number, runs: number): Promise<LatencyResult[]> {
  const xs = models.map((m) => tf.randomUniform([batchSize, ...inputShapeOf(m)], 0, 1, 'float32', 7));
  const times: number[][] = models.map(() => []);
  try {
    for (let i = 0; i < warmup + runs; i++) {
      for (let k = 0; k < models.length; k++) {
        const t0 = performance.now();
        const y = forward(models[k], xs[k]);
        await y.data();
        const dt = performance.now() - t0;
        y.dispose();
        if (i >= warmup) times[k].push(dt);
      }
      await yieldToEventLoop();
    }
  } finally {
    tf.dispose(xs);
  }
  return times.map((t) => {
    t.sort((a, b) => a - b);
    const at = (q: number) => t[Math.min(t.length - 1, Math.floor(q * t.length))];
    return { medianMs: at(0.5), p90Ms: at(0.9), batchSize, runs };
  });
}

/** Joules per example measured by the RAPL sensor over `runs` forward passes at `batchSize`. */
export async function measureEnergyPerExample(model: tfl.LayersModel, batchSize: number, runs: number, domains: RaplDomain[]): Promise<number> {
  const x = tf.randomUniform([batchSize, ...inputShapeOf(model)], 0, 1, 'float32', 7);
  try {
    const joules = await measureJoules(domains, async () => {
      for (let i = 0; i < runs; i++) {
        const y = forward(model, x);
        await y.data();
        y.dispose();
      }
    });
    return joules / (runs * batchSize);
  } finally {
    x.dispose();
  }
}

/** The campaign file's `target` section, as the measuring policy reads it. */
export interface TargetSpec {
  name: string;
  batchSize: number;
  warmupRuns: number;
  latencyRuns: number;
}

/** Where a target's latency comes from: this worker, a roofline estimate, or a worker on the device. */
export type MeasureHow = 'local' | 'estimate' | 'worker';

/**
 * The baseline's latency and energy on the target (metrics keys of core/metrics.ts). For a profile
 * target the latency is a roofline estimate (latencyEstimated = 1) and this worker's measurement is
 * kept apart as latencyMsLocal.
 */
export async function measureBaseline(model: tfl.LayersModel, t: TargetSpec, how: MeasureHow): Promise<Record<string, number>> {
  const cost = modelCost(model);
  const lat = await measureLatency(model, t.batchSize, t.warmupRuns, t.latencyRuns);
  if (how === 'estimate') {
    const est = rooflineEstimate(cost, TARGET_PROFILES[t.name], t.batchSize);
    return { latencyBatchSize: t.batchSize, latencyMs: est.latencyMs, latencyEstimated: 1, latencyMsLocal: lat.medianMs, energyJEstimated: est.energyJ };
  }
  return { latencyBatchSize: t.batchSize, latencyMs: lat.medianMs, latencyP90Ms: lat.p90Ms, energyJEstimated: estimateEnergyJoules(cost) };
}

export interface CandidateMeasurement {
  /** metrics keys of core/metrics.ts: latencyMs, latencyP90Ms, latencyBatchSize, speedup, energyJEstimated, … */
  metrics: Record<string, number>;
  /** what each number is, for the deployable's prunewise.json */
  manifest: { latencyMs: object; speedupVsBaseline: object; energyJoulesPerInference: object };
}

/**
 * A candidate's latency, speedup against the baseline and energy on the target. `int8`: the
 * deployed weights are int8 (1 byte per parameter in the roofline's memory traffic and the energy
 * model). `backend`: the tfjs backend timing here (recorded with measured numbers).
 */
export async function measureCandidate(
  model: tfl.LayersModel,
  baseline: tfl.LayersModel,
  t: TargetSpec,
  how: MeasureHow,
  int8: boolean,
  backend: string,
): Promise<CandidateMeasurement> {
  const cost: ModelCost = modelCost(model);
  const profile = TARGET_PROFILES[t.name];
  let lat: { medianMs: number; p90Ms: number };
  let speedup: number;
  let energyJ = estimateEnergyJoules(cost, int8 ? 'int8' : 'float32');
  let energyModel = 'horowitz-45nm';
  const extra: Record<string, number> = {};
  if (how === 'estimate') {
    // no device here: roofline estimates for the profile, for the model and the baseline alike
    const est = rooflineEstimate(cost, profile, t.batchSize, int8 ? 1 : 4);
    const estBase = rooflineEstimate(modelCost(baseline), profile, t.batchSize);
    lat = { medianMs: est.latencyMs, p90Ms: est.latencyMs };
    speedup = estBase.latencyMs / est.latencyMs;
    energyJ = est.energyJ;
    energyModel = `roofline(${profile.name})`;
    extra.latencyEstimated = 1;
    extra.memoryBoundLayers = est.memoryBoundLayers.length;
  } else {
    // timed side by side with the baseline, alternating, so machine drift cancels in the ratio
    const [latBase, measured] = await measureLatencyInterleaved([baseline, model], t.batchSize, t.warmupRuns, t.latencyRuns);
    lat = measured;
    speedup = latBase.medianMs / measured.medianMs;
    if (profile) extra.latencyMsRoofline = rooflineEstimate(cost, profile, t.batchSize, int8 ? 1 : 4).latencyMs;
    // a sensor where one exists: RAPL package energy, model and baseline alike (their ratio is what J uses)
    const domains = raplDomains();
    if (domains.length > 0) {
      extra.energyJMeasured = await measureEnergyPerExample(model, t.batchSize, t.latencyRuns, domains);
      extra.baselineEnergyJMeasured = await measureEnergyPerExample(baseline, t.batchSize, t.latencyRuns, domains);
    }
  }
  const host = os.hostname();
  return {
    metrics: { latencyMs: lat.medianMs, latencyP90Ms: lat.p90Ms, latencyBatchSize: t.batchSize, speedup, energyJEstimated: energyJ, ...extra },
    manifest: {
      latencyMs:
        how === 'estimate'
          ? { value: lat.medianMs, measured: false, model: energyModel, batchSize: t.batchSize, profile }
          : { value: lat.medianMs, measured: true, backend, host, batchSize: t.batchSize, runs: t.latencyRuns },
      speedupVsBaseline:
        how === 'estimate'
          ? { value: speedup, measured: false, model: energyModel }
          : { value: speedup, measured: true, backend, note: 'timed side by side with the unpruned model' },
      energyJoulesPerInference:
        extra.energyJMeasured !== undefined
          ? {
              value: extra.energyJMeasured,
              measured: true,
              sensor: 'rapl (CPU package, includes idle power)',
              host,
              estimate: { value: energyJ, model: energyModel },
            }
          : { value: energyJ, measured: false, model: energyModel },
    },
  };
}
