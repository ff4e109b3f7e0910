// The objectives and the weighted objective J(w) = Σ w_i · f̂_i, each f̂_i normalised to the
// unpruned baseline, so weights mean the same for every model (the baseline scores exactly
// Σ w_i = 1). DESIGN.md "The objective". Adding an objective starts here. Pure arithmetic.
import { latencyOfRound } from './latency';

/** The objective names a weight vector is keyed by. */
export const OBJECTIVES = ['accuracy', 'size', 'latency', 'energy'] as const;
export type ObjectiveName = (typeof OBJECTIVES)[number];

/** A weight vector over the objectives (each 0–1, summing to 1). Also the normalised objective values f̂. */
export type Weights = Record<ObjectiveName, number>;

/** One model's raw objective values, all minimised. */
export interface ObjectiveValues {
  /** top-1 error on the validation split, 0–1 */
  error: number;
  /** bytes of the deployed weight files */
  bytes: number;
  /** latency of one batch of `target.batchSize`, milliseconds */
  latencyMs: number;
  /** joules per inference (one example) */
  energyJ: number;
}

/** The value key of each objective (what `ObjectiveValues` holds for it), in OBJECTIVES order. */
export const VALUE_KEY: Record<ObjectiveName, keyof ObjectiveValues> = { accuracy: 'error', size: 'bytes', latency: 'latencyMs', energy: 'energyJ' };

/** The value keys, in OBJECTIVES order (the axes of the Pareto front). */
export const OBJECTIVE_KEYS = OBJECTIVES.map((o) => VALUE_KEY[o]) as ReadonlyArray<keyof ObjectiveValues>;
export type ObjectiveKey = keyof ObjectiveValues;

/** Weights with every objective at 0. */
export const zeroWeights = (): Weights => ({ accuracy: 0, size: 0, latency: 0, energy: 0 });

const ratio = (x: number, base: number) => (base > 0 ? x / base : 1);

/** f̂: each value divided by the baseline's (1 where the baseline's is 0). */
export function normalisedObjectives(v: ObjectiveValues, baseline: ObjectiveValues): Weights {
  const out = zeroWeights();
  for (const o of OBJECTIVES) out[o] = ratio(v[VALUE_KEY[o]], baseline[VALUE_KEY[o]]);
  return out;
}

/** J(w) of a model: Σ w_i · f̂_i (the baseline scores Σ w_i = 1; lower is better). */
export function objectiveJ(w: Weights, v: ObjectiveValues, baseline: ObjectiveValues): number {
  const f = normalisedObjectives(v, baseline);
  let j = 0;
  for (const o of OBJECTIVES) j += (w[o] ?? 0) * f[o];
  return j;
}

/**
 * A model's objective values from its recorded metrics (see core/metrics.ts for the keys): those of
 * the variant deployed (with `deployedInt8` = 1, the 8-bit variant's validation error and bytes).
 * Latency is THE model latency of core/latency.ts: the baseline median ÷ the paired speedup, where a
 * speedup whose 95 % interval contains 1 counts as 1 ("≈ baseline"); energy from the RAPL ratio to the baseline measured
 * alongside where the worker had the sensor, else the estimate.
 */
export function objectiveValues(
  m: Record<string, number | undefined>,
  deployedBytes: number,
  baselineLatencyMs?: number,
  baselineEnergyJ?: number,
): ObjectiveValues & { energyMeasured: boolean } {
  const latencyMs = latencyOfRound(m, baselineLatencyMs)!;
  const energyMeasured = !!(m.energyJMeasured && m.baselineEnergyJMeasured && baselineEnergyJ);
  const energyJ = energyMeasured ? (baselineEnergyJ! * m.energyJMeasured!) / m.baselineEnergyJMeasured! : (m.energyJEstimated ?? 0);
  // like with like: the error of the variant deployed (8-bit weights when deployedInt8 = 1)
  const valAccuracy = m.deployedInt8 === 1 && m.int8ValAccuracy !== undefined ? m.int8ValAccuracy : m.valAccuracy!;
  return { error: 1 - valAccuracy, bytes: deployedBytes, latencyMs, energyJ, energyMeasured };
}
