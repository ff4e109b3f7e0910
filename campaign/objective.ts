// The weighted objective J(w) = Σ w_i · f̂_i, each f̂_i normalised to the unpruned baseline, so
// weights mean the same for every model (the baseline scores exactly Σ w_i = 1). Pure arithmetic:
// the workflow imports it, so it must stay free of I/O.

export interface ObjectiveValues {
  /** top-1 error on the validation split, 0–1 */
  error: number;
  /** bytes of the deployed weight files */
  bytes: number;
  latencyMs: number;
  energyJ: number;
}

export interface ObjectiveWeights {
  accuracy: number;
  size: number;
  latency: number;
  energy: number;
}

const ratio = (x: number, base: number) => (base > 0 ? x / base : 1);

export function normalisedObjectives(v: ObjectiveValues, baseline: ObjectiveValues): ObjectiveWeights {
  return {
    accuracy: ratio(v.error, baseline.error),
    size: ratio(v.bytes, baseline.bytes),
    latency: ratio(v.latencyMs, baseline.latencyMs),
    energy: ratio(v.energyJ, baseline.energyJ),
  };
}

export function objectiveJ(w: ObjectiveWeights, v: ObjectiveValues, baseline: ObjectiveValues): number {
  const f = normalisedObjectives(v, baseline);
  return w.accuracy * f.accuracy + w.size * f.size + w.latency * f.latency + w.energy * f.energy;
}

/**
 * A round's objective values from its recorded metrics. Latency relative to the baseline comes
 * from the speedup timed side by side with the baseline (drift cancels) when the stage measured
 * one; energy from the RAPL ratio to the baseline measured alongside where the worker had the
 * sensor, else the estimate.
 */
export function objectiveValues(m: Record<string, number | undefined>, deployedBytes: number, baselineLatencyMs?: number, baselineEnergyJ?: number): ObjectiveValues & { energyMeasured: boolean } {
  const latencyMs = m.speedup && baselineLatencyMs ? baselineLatencyMs / m.speedup : m.latencyMs!;
  const energyMeasured = !!(m.energyJMeasured && m.baselineEnergyJMeasured && baselineEnergyJ);
  const energyJ = energyMeasured ? (baselineEnergyJ! * m.energyJMeasured!) / m.baselineEnergyJMeasured! : (m.energyJEstimated ?? 0);
  return { error: 1 - m.valAccuracy!, bytes: deployedBytes, latencyMs, energyJ, energyMeasured };
}
