// The measuring policy: how a model's latency and energy on the campaign's target are obtained,
// and what each number is (measured, and where; or estimated, by which model). A candidate's
// latency is the campaign's baseline median ÷ its paired speedup (core/latency.ts): the speedup is
// timed in interleaved pairs with the baseline on the campaign's deployment runtime (ml/runtime.ts:
// a child Node process or a headless Chromium page, never the backend that trained the model; the
// estimator, ml/speedup.ts, runs here) until its 95 % interval is narrow enough or the time budget
// runs out; the baseline's median is timed on the same runtime; a roofline ESTIMATE for a target profile
// (ml/roofline.ts); and the RAPL energy sensor where the worker has one.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as os from 'node:os';
import { describeSpeedup, modelLatencyMs, speedupOf } from '../core/latency';
import { estimateEnergyJoules, modelCost, type ModelCost } from './cost';
import { measureJoules, raplDomains, type RaplDomain } from './energy-sensor';
import { rooflineEstimate, TARGET_PROFILES } from './roofline';
import type { RuntimeInfo, RuntimeSession } from './runtime';
import { measurePairedSpeedup, quantile } from './speedup';
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
  /** the baseline's median is of this many runs; a candidate's speedup takes at least this many pairs */
  latencyRuns: number;
  /** stop timing pairs once the 95 % half-width of log(speedup) is at most this (default 0.05) */
  speedupCi?: number;
  /** ... or once this many seconds of pairs have been timed (default 20) */
  latencyBudgetSeconds?: number;
}

/** Defaults of the paired measurement (the campaign schema's defaults). */
export const SPEEDUP_CI_DEFAULT = 0.05;
export const LATENCY_BUDGET_SECONDS_DEFAULT = 20;

/**
 * Times the session's baseline and candidate in interleaved pairs (ABBA: the order flips every pair,
 * inside the runtime) until the speedup's 95 % interval of log r has a half-width ≤ `t.speedupCi` or
 * `t.latencyBudgetSeconds` run out (after at least `t.latencyRuns` pairs). `onPair` is called after
 * each pair (heartbeats). The estimator and its budget clock are this process's; the times are the runtime's.
 */
export async function measureSpeedup(session: Pick<RuntimeSession, 'warmup' | 'pair'>, t: TargetSpec, onPair?: (pairs: number) => void) {
  await session.warmup(t.warmupRuns);
  return measurePairedSpeedup(
    async (i) => {
      const pair = await session.pair(i);
      onPair?.(i + 1);
      await yieldToEventLoop();
      return pair;
    },
    {
      ci: t.speedupCi ?? SPEEDUP_CI_DEFAULT,
      budgetMs: 1000 * (t.latencyBudgetSeconds ?? LATENCY_BUDGET_SECONDS_DEFAULT),
      minPairs: Math.max(5, t.latencyRuns),
      now: () => performance.now(),
    },
  );
}

/** Where a target's latency comes from: this worker, a roofline estimate, or a worker on the device. */
export type MeasureHow = 'local' | 'estimate' | 'worker';

/**
 * The baseline's latency and energy on the target (metrics keys of core/metrics.ts), its latency the
 * median of `t.latencyRuns` runs after warm-up on the session's runtime (the session holds the
 * baseline only). For a profile target the latency is a roofline estimate (latencyEstimated = 1)
 * and the runtime's measurement is kept apart as latencyMsLocal.
 */
export async function measureBaseline(
  model: tfl.LayersModel,
  t: TargetSpec,
  how: MeasureHow,
  session: Pick<RuntimeSession, 'warmup' | 'times'>,
): Promise<Record<string, number>> {
  const cost = modelCost(model);
  await session.warmup(t.warmupRuns);
  const times = await session.times(t.latencyRuns);
  const lat = { medianMs: quantile(times, 0.5), p90Ms: quantile(times, 0.9) };
  if (how === 'estimate') {
    const est = rooflineEstimate(cost, TARGET_PROFILES[t.name], t.batchSize);
    return { latencyBatchSize: t.batchSize, latencyMs: est.latencyMs, latencyEstimated: 1, latencyMsLocal: lat.medianMs, energyJEstimated: est.energyJ };
  }
  return { latencyBatchSize: t.batchSize, latencyMs: lat.medianMs, latencyP90Ms: lat.p90Ms, energyJEstimated: estimateEnergyJoules(cost) };
}

export interface CandidateMeasurement {
  /** metrics keys of core/metrics.ts: latencyMs (THE model latency), latencyMsRaw, speedup, speedupLow/High, latencyPairs, … */
  metrics: Record<string, number>;
  /** what each number is, for the deployable's prunewise.json */
  manifest: { latencyMs: object; speedupVsBaseline: object; energyJoulesPerInference: object };
  /** the runtime the latency was measured on (absent for an estimate) */
  runtime?: RuntimeInfo;
}

/**
 * A candidate's speedup against the baseline, its latency (the campaign's baseline median
 * `baselineLatencyMs` ÷ the speedup, core/latency.ts) and energy on the target. `int8`: the deployed
 * weights are 8-bit (1 byte per parameter in the roofline's memory traffic and the energy model).
 * `open`: opens the campaign's deployment runtime with both models loaded (ml/runtime.ts; not called
 * for an estimate); its RuntimeInfo is recorded with the latency and the speedup. Without
 * `baselineLatencyMs` (a stage scheduled by an older workflow) the baseline's median of the paired
 * runs stands in.
 */
export async function measureCandidate(
  model: tfl.LayersModel,
  baseline: tfl.LayersModel,
  t: TargetSpec,
  how: MeasureHow,
  int8: boolean,
  open: () => Promise<RuntimeSession>,
  baselineLatencyMs?: number,
  onPair?: (pairs: number) => void,
): Promise<CandidateMeasurement> {
  const cost: ModelCost = modelCost(model);
  const profile = TARGET_PROFILES[t.name];
  let energyJ = estimateEnergyJoules(cost, int8 ? 'int8' : 'float32');
  let energyModel = 'horowitz-45nm';
  const host = os.hostname();
  if (how === 'estimate') {
    // no device here: roofline estimates for the profile, for the model and the baseline alike
    const est = rooflineEstimate(cost, profile, t.batchSize, int8 ? 1 : 4);
    const estBase = rooflineEstimate(modelCost(baseline), profile, t.batchSize);
    const speedup = estBase.latencyMs / est.latencyMs;
    const metrics: Record<string, number> = { speedup, latencyEstimated: 1, latencyBatchSize: t.batchSize };
    const latencyMs = modelLatencyMs(baselineLatencyMs ?? estBase.latencyMs, speedupOf(metrics)!.value);
    energyJ = est.energyJ;
    energyModel = `roofline(${profile.name})`;
    return {
      metrics: { ...metrics, latencyMs, energyJEstimated: energyJ, memoryBoundLayers: est.memoryBoundLayers.length },
      manifest: {
        latencyMs: { value: latencyMs, measured: false, estimated: true, model: energyModel, batchSize: t.batchSize, profile },
        speedupVsBaseline: { value: speedup, measured: false, estimated: true, model: energyModel, note: 'estimated: no interval' },
        energyJoulesPerInference: { value: energyJ, measured: false, model: energyModel },
      },
    };
  }
  // timed in interleaved pairs with the baseline, so machine drift cancels in each pair's ratio
  const session = await open();
  let p: Awaited<ReturnType<typeof measureSpeedup>>;
  let runtime: RuntimeInfo;
  try {
    p = await measureSpeedup(session, t, onPair);
    runtime = session.info;
  } finally {
    await session.close();
  }
  const speedupMetrics = { speedup: p.r, speedupLow: p.low, speedupHigh: p.high, latencyPairs: p.pairs };
  const s = speedupOf(speedupMetrics)!;
  const baseMs = baselineLatencyMs ?? quantile(p.baselineTimes, 0.5);
  const latencyMs = modelLatencyMs(baseMs, s.value);
  const extra: Record<string, number> = {};
  if (profile) extra.latencyMsRoofline = rooflineEstimate(cost, profile, t.batchSize, int8 ? 1 : 4).latencyMs;
  // a sensor where one exists: RAPL package energy, model and baseline alike (their ratio is what J
  // uses), in this process (on its backend, not the runtime: the manifest says so)
  const domains = raplDomains();
  if (domains.length > 0) {
    extra.energyJMeasured = await measureEnergyPerExample(model, t.batchSize, t.latencyRuns, domains);
    extra.baselineEnergyJMeasured = await measureEnergyPerExample(baseline, t.batchSize, t.latencyRuns, domains);
  }
  return {
    runtime,
    metrics: {
      latencyMs,
      latencyMsRaw: quantile(p.candidateTimes, 0.5),
      latencyP90Ms: quantile(p.candidateTimes, 0.9),
      latencyBatchSize: t.batchSize,
      ...speedupMetrics,
      energyJEstimated: energyJ,
      ...extra,
    },
    manifest: {
      latencyMs: {
        value: latencyMs,
        measured: true,
        what: "the campaign's baseline median ÷ the paired speedup (a speedup whose interval contains 1 counts as 1)",
        baselineMedianMs: baseMs,
        runtime,
        host,
        batchSize: t.batchSize,
      },
      speedupVsBaseline: {
        value: p.r,
        low: p.low,
        high: p.high,
        interval: '95 %, Student t over the paired log-ratios log(t_baseline / t_model)',
        pairs: p.pairs,
        stoppedBy: p.stoppedBy,
        approxBaseline: s.approxBaseline,
        usedAs: s.value,
        shown: describeSpeedup(s),
        measured: true,
        runtime,
        note: 'timed in interleaved pairs with the unpruned model (the order flips every pair) on the deployment runtime, not the training backend',
      },
      energyJoulesPerInference:
        extra.energyJMeasured !== undefined
          ? {
              value: extra.energyJMeasured,
              measured: true,
              sensor: 'rapl (CPU package, includes idle power)',
              host,
              on: `this worker's tfjs backend ${tf.getBackend()} (not the deployment runtime)`,
              estimate: { value: energyJ, model: energyModel },
            }
          : { value: energyJ, measured: false, model: energyModel },
    },
  };
}
