// The paired speedup estimator (no tfjs, no clock of its own): a candidate and the baseline are
// timed in pairs, interleaved, and each pair gives d = log(t_baseline / t_candidate). r = exp(mean d)
// with a 95 % interval exp(mean d ± t·se), se = sd / √n, t the Student-t quantile with n − 1
// degrees of freedom (exact table to 30, a series beyond). Pairs cancel slow drift of the machine
// (frequency, neighbours) because both members of a pair see the same moment.

/** Two-sided 97.5 % Student-t quantiles for 1–30 degrees of freedom. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069,
  2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom (Cornish–Fisher series above 30: error < 1e-3). */
export function tQuantile975(df: number): number {
  if (df < 1) return Infinity;
  if (df <= 30) return T975[Math.floor(df) - 1];
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df);
}

export interface SpeedupEstimate {
  /** exp(mean log-ratio): > 1 means the candidate is faster */
  r: number;
  low: number;
  high: number;
  /** half-width of the 95 % interval of log r */
  halfWidth: number;
  pairs: number;
}

/** Accumulates paired timings (Welford, in log space). */
export class PairedSpeedup {
  private n = 0;
  private mean = 0;
  private m2 = 0;

  /** One pair: the baseline's and the candidate's time of the same moment (any unit, both the same). */
  add(baselineMs: number, candidateMs: number): void {
    const d = Math.log(Math.max(baselineMs, 1e-9) / Math.max(candidateMs, 1e-9));
    this.n++;
    const delta = d - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (d - this.mean);
  }

  get pairs(): number {
    return this.n;
  }

  /** r and its 95 % interval (infinitely wide below 2 pairs). */
  estimate(): SpeedupEstimate {
    const r = Math.exp(this.mean);
    if (this.n < 2) return { r, low: 0, high: Infinity, halfWidth: Infinity, pairs: this.n };
    const se = Math.sqrt(this.m2 / (this.n - 1) / this.n);
    const h = tQuantile975(this.n - 1) * se;
    return { r, low: Math.exp(this.mean - h), high: Math.exp(this.mean + h), halfWidth: h, pairs: this.n };
  }
}

export interface PairedOptions {
  /** stop once the 95 % half-width of log r is at most this (campaign `target.speedupCi`) */
  ci: number;
  /** stop when this much time (ms, of `now`) has passed, whatever the interval */
  budgetMs: number;
  /** never stop before this many pairs */
  minPairs: number;
  /** never time more than this many pairs */
  maxPairs?: number;
  /** the clock the budget is read from (ms) */
  now: () => number;
}

export interface PairedResult extends SpeedupEstimate {
  /** why timing stopped */
  stoppedBy: 'ci' | 'budget' | 'maxPairs';
  baselineTimes: number[];
  candidateTimes: number[];
}

/**
 * Times pairs until the interval is narrow enough or the budget runs out. `timePair(i)` times one
 * pair and returns [baseline ms, candidate ms]; the caller alternates the order inside a pair (ABBA)
 * so neither model always runs first.
 */
export async function measurePairedSpeedup(timePair: (i: number) => Promise<[number, number]>, o: PairedOptions): Promise<PairedResult> {
  const acc = new PairedSpeedup();
  const baselineTimes: number[] = [];
  const candidateTimes: number[] = [];
  const t0 = o.now();
  const maxPairs = o.maxPairs ?? 100_000;
  for (;;) {
    const [b, c] = await timePair(acc.pairs);
    acc.add(b, c);
    baselineTimes.push(b);
    candidateTimes.push(c);
    const e = acc.estimate();
    if (acc.pairs < Math.max(2, o.minPairs)) continue;
    const stoppedBy = e.halfWidth <= o.ci ? 'ci' : o.now() - t0 >= o.budgetMs ? 'budget' : acc.pairs >= maxPairs ? 'maxPairs' : undefined;
    if (stoppedBy) return { ...e, stoppedBy, baselineTimes, candidateTimes };
  }
}

/** The q-quantile of `xs` (nearest rank on a sorted copy). */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** Two samples' means compared (e.g. one method's test accuracies over seeds against another's). */
export interface MeanDifference {
  /** mean(a) − mean(b), in the samples' unit */
  difference: number;
  /** its 95 % interval by Welch's t (unequal variances); [difference, difference] when neither sample varies; ±Infinity below 2 values in a sample (null in JSON) */
  low: number;
  high: number;
  /** Welch–Satterthwaite degrees of freedom (NaN — null in JSON — when neither sample varies or one has fewer than 2 values) */
  df: number;
  /** each sample's spread, max − min */
  spreadA: number;
  spreadB: number;
  /**
   * a is ahead of b by more than both spreads: difference > max(spreadA, spreadB) (issue 13's "by more than the seed
   * spread"), beyond a 1e-9 tolerance so that a tie in the data is no lead; false when a sample has one value (no spread)
   */
  aheadBeyondSpreads: boolean;
}

/**
 * mean(a) − mean(b) with its 95 % interval by Welch's t-test (Welch, "The generalization of 'Student's' problem when
 * several different population variances are involved", Biometrika 1947): se = √(s²a/na + s²b/nb), df by the
 * Welch–Satterthwaite formula, t = tQuantile975(df) (df rounded down, so the interval errs wide). Sample variances are
 * unbiased (n − 1). No p-value: the interval says the same at 5 % (it excludes 0 or not).
 * @throws Error when a sample is empty or holds a value that is not finite
 */
export function meanDifference(a: number[], b: number[]): MeanDifference {
  for (const [name, xs] of [
    ['a', a],
    ['b', b],
  ] as const)
    if (xs.length === 0 || xs.some((x) => !Number.isFinite(x)))
      throw new Error(`meanDifference: sample ${name} must hold finite numbers (it has ${xs.length})`);
  const stats = (xs: number[]) => {
    const m = xs.reduce((s, x) => s + x, 0) / xs.length;
    const v = xs.length > 1 ? xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1) : NaN;
    return { m, v, n: xs.length, spread: Math.max(...xs) - Math.min(...xs) };
  };
  const A = stats(a);
  const B = stats(b);
  const difference = A.m - B.m;
  // accuracies in points carry float error (92.97 − 92.87 ≠ 0.10 exactly): a lead must clear the spread by more than that
  const ahead = A.n >= 2 && B.n >= 2 && difference > Math.max(A.spread, B.spread) + 1e-9;
  const base = { difference, spreadA: A.spread, spreadB: B.spread, aheadBeyondSpreads: ahead };
  if (A.n < 2 || B.n < 2) return { ...base, low: -Infinity, high: Infinity, df: NaN };
  const qa = A.v / A.n;
  const qb = B.v / B.n;
  const se = Math.sqrt(qa + qb);
  if (se === 0) return { ...base, low: difference, high: difference, df: NaN };
  const df = (qa + qb) ** 2 / (qa ** 2 / (A.n - 1) + qb ** 2 / (B.n - 1));
  const h = tQuantile975(Math.max(1, df)) * se;
  return { ...base, low: difference - h, high: difference + h, df };
}
