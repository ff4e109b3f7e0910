// The paired speedup estimator on synthetic timings (no clock: the budget reads a counter), and the
// one latency rule of core/latency.ts: baseline median ÷ r, "≈ baseline" when the interval holds 1.
import { describe, expect, it } from 'vitest';
import { describeSpeedup, latencyOfRound, modelLatencyMs, objectiveJ, objectiveValues, speedupOf } from '../core';
import { meanDifference, measurePairedSpeedup, PairedSpeedup, tQuantile975 } from '../ml/speedup';

/** Deterministic noise: a seeded LCG, multiplicative log-normal-ish jitter of `sigma`. */
function jitter(seed: number, sigma: number) {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return () => {
    // Box–Muller
    const z = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
    return Math.exp(sigma * z);
  };
}

/** A synthetic pair timer: the baseline takes `base` ms, the candidate `base / r`, both with a shared drift and their own noise. */
function synthetic(r: number, sigma: number, seed = 1, base = 2) {
  const noise = jitter(seed, sigma);
  return async (i: number): Promise<[number, number]> => {
    const drift = 1 + 0.3 * Math.sin(i / 7); // the machine slows and speeds up: both members of a pair see it
    return [base * drift * noise(), (base / r) * drift * noise()];
  };
}

const counterClock = () => {
  let t = 0;
  return { now: () => t, tick: (ms: number) => (t += ms) };
};

describe('paired speedup estimator', () => {
  it('Student t quantiles: table and series', () => {
    expect(tQuantile975(1)).toBeCloseTo(12.706, 3);
    expect(tQuantile975(10)).toBeCloseTo(2.228, 3);
    expect(tQuantile975(60)).toBeCloseTo(2.0003, 3);
    expect(tQuantile975(1000)).toBeCloseTo(1.9623, 3);
  });

  it('the interval shrinks with pairs and holds the true r', async () => {
    const timer = synthetic(1.5, 0.08, 3);
    const acc = new PairedSpeedup();
    const widths: number[] = [];
    for (let i = 0; i < 400; i++) {
      const [b, c] = await timer(i);
      acc.add(b, c);
      if ([10, 50, 100, 400].includes(acc.pairs)) widths.push(acc.estimate().halfWidth);
    }
    for (let i = 1; i < widths.length; i++) expect(widths[i]).toBeLessThan(widths[i - 1]);
    const e = acc.estimate();
    expect(e.low).toBeLessThan(1.5);
    expect(e.high).toBeGreaterThan(1.5);
    expect(e.r).toBeCloseTo(1.5, 1);
    // ~1/√n: 40× the pairs, about a sixth of the width
    expect(widths[3] / widths[0]).toBeLessThan(0.3);
  });

  it('stops at the CI target, not before the minimum pairs, and by budget when the target is out of reach', async () => {
    const clock = counterClock();
    const timer = synthetic(1.3, 0.1, 5);
    const tick = async (i: number) => {
      clock.tick(4); // each pair "takes" 4 ms of the counter
      return timer(i);
    };
    const byCi = await measurePairedSpeedup(tick, { ci: 0.05, budgetMs: 1e9, minPairs: 10, now: clock.now });
    expect(byCi.stoppedBy).toBe('ci');
    expect(byCi.halfWidth).toBeLessThanOrEqual(0.05);
    expect(byCi.pairs).toBeGreaterThanOrEqual(10);
    expect(byCi.baselineTimes).toHaveLength(byCi.pairs);
    // one pair fewer would not have reached it: stopped at the first pair that did
    const acc = new PairedSpeedup();
    for (let i = 0; i < byCi.pairs - 1; i++) acc.add(byCi.baselineTimes[i], byCi.candidateTimes[i]);
    expect(acc.pairs < 10 || acc.estimate().halfWidth > 0.05).toBe(true);

    const min = await measurePairedSpeedup(synthetic(1.3, 0.001, 6), { ci: 0.5, budgetMs: 1e9, minPairs: 25, now: () => 0 });
    expect(min.pairs).toBe(25);

    const budget = counterClock();
    const noisy = synthetic(1.3, 0.5, 7);
    const byBudget = await measurePairedSpeedup(
      async (i) => {
        budget.tick(10);
        return noisy(i);
      },
      { ci: 0.001, budgetMs: 1000, minPairs: 5, now: budget.now },
    );
    expect(byBudget.stoppedBy).toBe('budget');
    expect(byBudget.pairs).toBe(100);
    expect(byBudget.halfWidth).toBeGreaterThan(0.001);
  });

  it('an identical model: the interval contains 1 → "≈ baseline" → latency = the baseline median, and J uses 1.0', async () => {
    const p = await measurePairedSpeedup(synthetic(1, 0.05, 11), { ci: 0.02, budgetMs: 1e9, minPairs: 10, now: () => 0 });
    expect(p.low).toBeLessThanOrEqual(1);
    expect(p.high).toBeGreaterThanOrEqual(1);
    expect(p.r).not.toBe(1); // noise: the point estimate alone would call it faster or slower
    const m = { speedup: p.r, speedupLow: p.low, speedupHigh: p.high, latencyPairs: p.pairs, valAccuracy: 0.9 };
    const s = speedupOf(m)!;
    expect(s).toMatchObject({ value: 1, approxBaseline: true, estimated: false, measured: p.r });
    expect(describeSpeedup(s)).toMatch(/^≈ baseline: speedup \d\.\d\d× \[\d\.\d\d, \d\.\d\d\], \d+ pairs$/);
    expect(latencyOfRound(m, 0.66)).toBe(0.66);

    const base = objectiveValues({ valAccuracy: 0.9, latencyMs: 0.66 }, 1000);
    const v = objectiveValues(m, 1000, 0.66);
    expect(v.latencyMs).toBe(0.66);
    expect(objectiveJ({ accuracy: 0, size: 0, latency: 1, energy: 0 }, v, base)).toBe(1);
  });

  it('a clear speedup counts as measured: latency = baseline median ÷ r, one function', () => {
    const m = { speedup: 1.5, speedupLow: 1.45, speedupHigh: 1.55, latencyPairs: 40, latencyMs: 0.44, valAccuracy: 0.9 };
    expect(speedupOf(m)!.value).toBe(1.5);
    expect(latencyOfRound(m, 0.66)).toBe(modelLatencyMs(0.66, 1.5));
    expect(objectiveValues(m, 1, 0.66).latencyMs).toBe(0.66 / 1.5);
    expect(describeSpeedup(speedupOf(m)!)).toBe('speedup 1.50× [1.45, 1.55], 40 pairs');
    // a roofline estimate: no interval, labelled, never "≈ baseline"
    const est = speedupOf({ speedup: 1.001, latencyEstimated: 1 })!;
    expect(est).toMatchObject({ value: 1.001, approxBaseline: false, estimated: true });
    expect(describeSpeedup(est)).toContain('estimated');
  });
});

describe("meanDifference (Welch): one method's accuracies over seeds against another's", () => {
  it('equal variances: df = na + nb − 2 and the t interval', () => {
    // s² = 1 in both, se = √(1/3 + 1/3), df = (2/3)² / (2 · (1/3)² / 2) = 4, t = 2.776
    const d = meanDifference([1, 2, 3], [4, 5, 6]);
    expect(d.difference).toBeCloseTo(-3, 12);
    expect(d.df).toBeCloseTo(4, 12);
    expect(d.low).toBeCloseTo(-3 - 2.776 * Math.sqrt(2 / 3), 3);
    expect(d.high).toBeCloseTo(-3 + 2.776 * Math.sqrt(2 / 3), 3);
    expect(d.aheadBeyondSpreads).toBe(false);
  });

  it('unequal variances and sizes: Welch–Satterthwaite df, rounded down for t', () => {
    // a: mean 10.75, s² 2.25 (n 4); b: mean 8.5, s² 0.5 (n 2); df = 0.8125² / (0.5625²/3 + 0.25²/1) = 3.930 → t(3) = 3.182
    const d = meanDifference([10, 10, 10, 13], [8, 9]);
    expect(d.difference).toBeCloseTo(2.25, 12);
    expect(d.df).toBeCloseTo(3.9302, 3);
    expect(d.high - d.difference).toBeCloseTo(3.182 * Math.sqrt(0.8125), 3);
    expect([d.spreadA, d.spreadB]).toEqual([3, 1]);
    // ahead by 2.25, but a's own spread is 3
    expect(d.aheadBeyondSpreads).toBe(false);
  });

  it('ahead by more than both spreads', () => {
    const d = meanDifference([0.931, 0.932, 0.933], [0.92, 0.921, 0.923]);
    expect(d.aheadBeyondSpreads).toBe(true);
    expect(d.low).toBeGreaterThan(0);
    // the same lead with a wider rival is not
    expect(meanDifference([0.931, 0.932, 0.933], [0.91, 0.921, 0.932]).aheadBeyondSpreads).toBe(false);
  });

  it('edge cases: no variance, one value, bad input', () => {
    expect(meanDifference([2, 2], [1, 1])).toMatchObject({ difference: 1, low: 1, high: 1, aheadBeyondSpreads: true });
    const one = meanDifference([2], [1, 1.5]);
    expect([one.low, one.high]).toEqual([-Infinity, Infinity]);
    // one seed each: both spreads 0, so no lead is "beyond the spread"
    expect(meanDifference([0.9], [0.8]).aheadBeyondSpreads).toBe(false);
    // a lead equal to the spread in the data is no lead, whatever the float error of ×100 (0.9297 − 0.9287 ≠ 0.001 exactly)
    const pts = (xs: number[]) => xs.map((x) => x * 100);
    expect(meanDifference(pts([0.9287, 0.9297]), pts([0.9282, 0.9282])).aheadBeyondSpreads).toBe(false);
    expect(meanDifference(pts([0.929, 0.93]), pts([0.9285, 0.9285])).aheadBeyondSpreads).toBe(false);
    expect(() => meanDifference([], [1])).toThrow(/sample a must hold finite numbers/);
    expect(() => meanDifference([1], [NaN])).toThrow(/sample b/);
  });
});
