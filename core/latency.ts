// What a model's latency IS, in one place: the campaign's one baseline median (for its target and
// runtime) divided by the model's paired speedup r against the baseline. A measured r comes with a
// 95 % interval; an interval containing 1 means "≈ baseline" and counts as r = 1 everywhere (J,
// recommendations, status, pareto, the dashboard, the deployable manifest). A roofline estimate
// (target profile) has no interval and is labelled estimated. Pure arithmetic.

/** The speedup metrics of a round (keys of core/metrics.ts). */
export interface SpeedupMetrics {
  speedup?: number;
  speedupLow?: number;
  speedupHigh?: number;
  latencyPairs?: number;
  latencyEstimated?: number;
  [key: string]: number | undefined;
}

export interface Speedup {
  /** the r every number uses: 1 when the interval contains 1, else the measured (or estimated) r */
  value: number;
  /** the point estimate as recorded */
  measured: number;
  /** 95 % interval of r (measured only) */
  low?: number;
  high?: number;
  /** timed pairs behind the interval */
  pairs?: number;
  /** the interval contains 1: indistinguishable from the baseline */
  approxBaseline: boolean;
  /** a roofline estimate for a target profile, not a measurement */
  estimated: boolean;
}

/** Whether a speedup interval contains 1 (the model is indistinguishable from the baseline). */
export const containsOne = (low: number | undefined, high: number | undefined): boolean => low !== undefined && high !== undefined && low <= 1 && 1 <= high;

/** The round's speedup as every number uses it, or undefined when none was recorded. */
export function speedupOf(m: SpeedupMetrics): Speedup | undefined {
  if (!m.speedup || !Number.isFinite(m.speedup)) return undefined;
  const estimated = m.latencyEstimated === 1;
  const approxBaseline = !estimated && containsOne(m.speedupLow, m.speedupHigh);
  return {
    value: approxBaseline ? 1 : m.speedup,
    measured: m.speedup,
    low: m.speedupLow,
    high: m.speedupHigh,
    pairs: m.latencyPairs,
    approxBaseline,
    estimated,
  };
}

/** THE model latency: the campaign's baseline median ÷ the speedup r (the value of `speedupOf`). */
export const modelLatencyMs = (baselineLatencyMs: number, r: number): number => baselineLatencyMs / r;

/**
 * A round's latency from its metrics and the baseline's median: baseline ÷ r when a speedup was
 * recorded, else the recorded `latencyMs` (the baseline itself, or a round without hardware-adapt).
 */
export function latencyOfRound(m: SpeedupMetrics & { latencyMs?: number }, baselineLatencyMs: number | undefined): number | undefined {
  const s = speedupOf(m);
  return s && baselineLatencyMs ? modelLatencyMs(baselineLatencyMs, s.value) : m.latencyMs;
}

/** "speedup 1.50× [1.45, 1.55], 40 pairs", "≈ baseline: speedup 1.02× [0.98, 1.06], 40 pairs" or "speedup 1.52×, estimated: roofline". */
export function describeSpeedup(s: Speedup): string {
  if (s.estimated) return `speedup ${s.measured.toFixed(2)}×, estimated: roofline`;
  const ci = s.low !== undefined && s.high !== undefined ? ` [${s.low.toFixed(2)}, ${s.high.toFixed(2)}]` : '';
  const pairs = s.pairs ? `, ${s.pairs} pairs` : '';
  return `${s.approxBaseline ? '≈ baseline: ' : ''}speedup ${s.measured.toFixed(2)}×${ci}${pairs}`;
}
