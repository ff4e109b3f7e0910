// Pareto analysis over candidate models (every round of every run, and the unpruned baseline).
// All objectives are minimised: validation error, deployed bytes, latency, energy. Pure arithmetic.
// Also THE rules for "the best round of a run" and "the model to recommend": every reader (export,
// pareto, the dashboard, compare) calls these.
import { OBJECTIVE_KEYS, objectiveJ, type ObjectiveKey, type ObjectiveValues, type Weights } from './objective';

export interface Candidate {
  runId: string;
  round: number;
  values: ObjectiveValues;
}

/** a ≤ b everywhere and < somewhere, on `keys` (minimisation). Equal points do not dominate each other. */
export function dominates(a: ObjectiveValues, b: ObjectiveValues, keys: readonly ObjectiveKey[] = OBJECTIVE_KEYS): boolean {
  let better = false;
  for (const k of keys) {
    if (a[k] > b[k]) return false;
    if (a[k] < b[k]) better = true;
  }
  return better;
}

/**
 * The non-dominated candidates, in input order. Candidates with identical values are all kept
 * (neither dominates the other); `distinctCount` counts them once.
 */
export function paretoFront<T extends Candidate>(points: T[], keys: readonly ObjectiveKey[] = OBJECTIVE_KEYS): T[] {
  // In lexicographic order a dominator always comes before the point it dominates, and if any
  // point dominates p then a front member does (transitivity): so each point is checked against
  // the front found so far only — O(n·front) instead of O(n²), for campaigns of thousands of runs.
  const lex = (a: T, b: T) => {
    for (const k of keys) if (a.values[k] !== b.values[k]) return a.values[k] - b.values[k];
    return 0;
  };
  const order = points.map((_, i) => i).sort((i, j) => lex(points[i], points[j]) || i - j);
  const front: T[] = [];
  const on = new Uint8Array(points.length);
  for (const i of order) {
    const p = points[i];
    if (front.some((q) => dominates(q.values, p.values, keys))) continue;
    front.push(p);
    on[i] = 1;
  }
  return points.filter((_, i) => on[i] === 1);
}

/** How many different objective vectors (on `keys`) a set holds. */
export function distinctCount(points: Candidate[], keys: readonly ObjectiveKey[] = OBJECTIVE_KEYS): number {
  return new Set(points.map((p) => keys.map((k) => p.values[k]).join('|'))).size;
}

/**
 * The 2-D front of `x` against `y` (default: error vs latency), sorted by `x` ascending, one point
 * per distinct (x, y): the corners of the step line a plot draws.
 */
export function front2d<T extends Candidate>(points: T[], x: ObjectiveKey = 'latencyMs', y: ObjectiveKey = 'error'): T[] {
  const front = paretoFront(points, [x, y]);
  const seen = new Set<string>();
  return front
    .slice()
    .sort((a, b) => a.values[x] - b.values[x] || a.values[y] - b.values[y])
    .filter((p) => {
      const key = `${p.values[x]}|${p.values[y]}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
}

/**
 * Hypervolume dominated by `points` and bounded by the reference point `ref` (minimisation),
 * exact, by slicing one dimension at a time (fine for the few objectives and hundreds of points
 * of a campaign). Points not strictly better than `ref` in every dimension add nothing.
 */
export function hypervolume(points: number[][], ref: number[]): number {
  const inside = points.filter((p) => p.every((v, i) => v < ref[i]));
  return hv(nonDominated(inside, ref.length), ref, ref.length);
}

/**
 * The points not dominated on their first `d` coordinates (dominated points add no volume). The
 * same lexicographic sweep as paretoFront, written out on plain arrays: sharing one generic sweep
 * with a callback made the 4-D hypervolume of 50 000 candidates ~1.8× slower (23 s → 43 s).
 */
function nonDominated(points: number[][], d: number): number[][] {
  const sorted = points.slice().sort((a, b) => {
    for (let i = 0; i < d; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return 0;
  });
  const out: number[][] = [];
  for (const p of sorted) {
    const covered = out.some((q) => {
      for (let i = 0; i < d; i++) if (q[i] > p[i]) return false;
      return true; // q ≤ p everywhere (equal points count once)
    });
    if (!covered) out.push(p);
  }
  return out;
}

function hv(points: number[][], ref: number[], d: number): number {
  if (points.length === 0) return 0;
  if (d === 1) return ref[0] - Math.min(...points.map((p) => p[0]));
  const k = d - 1;
  const sorted = points.slice().sort((a, b) => a[k] - b[k]);
  let volume = 0;
  for (let i = 0; i < sorted.length; i++) {
    const next = i + 1 < sorted.length ? sorted[i + 1][k] : ref[k];
    const depth = next - sorted[i][k];
    if (depth > 0) volume += depth * hv(k >= 2 ? nonDominated(sorted.slice(0, i + 1), k) : sorted.slice(0, i + 1), ref, k);
  }
  return volume;
}

/** The campaign's reference point: baseline costs, and baseline error plus the allowed accuracy drop (points). */
export function referencePoint(baseline: ObjectiveValues, maxAccuracyDropPoints: number): ObjectiveValues {
  return { ...baseline, error: baseline.error + maxAccuracyDropPoints / 100 };
}

/**
 * Hypervolume of the candidates with every objective divided by the reference's, so the result is
 * a unitless fraction of the box [0, ref] (1 would be a free, perfect model).
 */
export function normalisedHypervolume(points: Candidate[], ref: ObjectiveValues, keys: readonly ObjectiveKey[] = OBJECTIVE_KEYS): number {
  const use = normalisedKeys(ref, keys);
  return hypervolume(
    points.map((p) => normalisedVector(p.values, ref, use)),
    use.map(() => 1),
  );
}

/** The objectives a normalised hypervolume uses: those whose reference value is positive. */
export function normalisedKeys(ref: ObjectiveValues, keys: readonly ObjectiveKey[] = OBJECTIVE_KEYS): ObjectiveKey[] {
  return keys.filter((k) => ref[k] > 0);
}

/** A candidate's values on `keys`, each divided by the reference's (the reference is then all 1s). */
export function normalisedVector(v: ObjectiveValues, ref: ObjectiveValues, keys: readonly ObjectiveKey[]): number[] {
  return keys.map((k) => v[k] / ref[k]);
}

/**
 * The hypervolume `p` adds to a set already holding `others` (all minimised, bounded by `ref`):
 * the volume of the box [p, ref] minus the hypervolume of `others` clipped to that box, so
 * hypervolume(others ∪ {p}) = hypervolume(others) + volume. `others` may hold dominated points
 * and points outside `ref` (they add nothing); passing only the non-dominated ones is faster.
 * Exact by slicing while at most `maxExact` clipped points are non-dominated; beyond that an
 * estimate from `samples` quasi-random points (Halton sequence, deterministic: same inputs, same
 * answer), with `exact: false`.
 */
export function hypervolumeContribution(
  p: number[],
  others: number[][],
  ref: number[],
  opts: { maxExact?: number; samples?: number } = {},
): { volume: number; exact: boolean } {
  const d = ref.length;
  if (!p.every((v, i) => v < ref[i])) return { volume: 0, exact: true };
  let box = 1;
  for (let i = 0; i < d; i++) box *= ref[i] - p[i];
  const clipped: number[][] = [];
  for (const q of others) {
    if (!q.every((v, i) => v < ref[i])) continue;
    const c = q.map((v, i) => Math.max(v, p[i]));
    if (c.every((v, i) => v === p[i])) return { volume: 0, exact: true }; // q ≤ p: p adds nothing
    clipped.push(c);
  }
  const front = nonDominated(clipped, d);
  if (front.length <= (opts.maxExact ?? Infinity)) return { volume: box - hv(front, ref, d), exact: true };
  const n = opts.samples ?? 20_000;
  const bases = [2, 3, 5, 7, 11, 13, 17, 19].slice(0, d);
  const s = new Array<number>(d);
  let free = 0;
  for (let j = 1; j <= n; j++) {
    for (let i = 0; i < d; i++) s[i] = p[i] + halton(j, bases[i]) * (ref[i] - p[i]);
    const covered = front.some((q) => {
      for (let i = 0; i < d; i++) if (q[i] > s[i]) return false;
      return true;
    });
    if (!covered) free++;
  }
  return { volume: (box * free) / n, exact: false };
}

/** The j-th element of the van der Corput sequence in `base` (one coordinate of a Halton point), in [0, 1). */
function halton(j: number, base: number): number {
  let f = 1;
  let r = 0;
  while (j > 0) {
    f /= base;
    r += f * (j % base);
    j = Math.floor(j / base);
  }
  return r;
}

/** The campaign's hard limits besides the accuracy drop (which the reference point carries). */
export interface HardLimits {
  maxLatencyMs?: number;
  maxBytes?: number;
}

/**
 * How far past a limit a value may lie and still count as at it: float rounding of a difference
 * (0.78 − 0.76 = 0.020000000000000018) must not tip a drop of exactly the limit over it.
 */
export const LIMIT_TOLERANCE = 1e-9;

/** Whether `value` is over `limit` by more than float rounding (LIMIT_TOLERANCE, relative to the limit's size). */
export function overLimit(value: number, limit: number): boolean {
  return value > limit + LIMIT_TOLERANCE * Math.max(1, Math.abs(limit));
}

/** Why a candidate breaks the campaign's hard constraints (none: it may be recommended). */
export function violations(v: ObjectiveValues, ref: ObjectiveValues, limits: HardLimits = {}): string[] {
  const out: string[] = [];
  if (overLimit(v.error, ref.error)) out.push('accuracy drop');
  if (limits.maxLatencyMs !== undefined && v.latencyMs > limits.maxLatencyMs) out.push('maxLatencyMs');
  if (limits.maxBytes !== undefined && v.bytes > limits.maxBytes) out.push('maxBytes');
  return out;
}

/**
 * The model to recommend for weights `w`: the candidate with the lowest J(w) among those within the
 * hard constraints (accuracy drop, and maxLatencyMs / maxBytes when set); ties go to the earlier one.
 * J is monotone in every objective and the limits are upper bounds, so passing only the front
 * gives the same answer faster.
 */
export function recommend<T extends Candidate>(
  points: T[],
  w: Weights,
  baseline: ObjectiveValues,
  ref: ObjectiveValues,
  limits: HardLimits = {},
): { pick: T; j: number } | undefined {
  let best: { pick: T; j: number } | undefined;
  for (const p of points) {
    if (violations(p.values, ref, limits).length > 0) continue;
    const j = objectiveJ(w, p.values, baseline);
    if (!best || j < best.j) best = { pick: p, j };
  }
  return best;
}

/**
 * THE best round of a run: the lowest J(w) among its rounds within the hard constraints, else the
 * lowest J(w) of all; ties go to the earlier round. Rounds without an objective (not completed)
 * never win. Undefined when `rounds` is empty.
 */
export function bestRound<T extends { round: number; objective: number | null; violates: readonly string[] }>(rounds: readonly T[]): T | undefined {
  const jOf = (p: T) => p.objective ?? Infinity;
  const ok = rounds.filter((p) => p.violates.length === 0);
  const pool = ok.length ? ok : rounds;
  let best: T | undefined;
  for (const p of pool) if (!best || jOf(p) < jOf(best) || (jOf(p) === jOf(best) && p.round < best.round)) best = p;
  return best;
}
