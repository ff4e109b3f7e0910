import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { measureJoules, raplDomains } from '../ml/energy-sensor';
import { rooflineEstimate } from '../ml/roofline';
import { rng } from '../ml/random';
import { allocate, trialDeltaJ, type GroupTrial, type Sensitivity } from '../ml/allocate';
import {
  distinctCount,
  dominates,
  front2d,
  hypervolume,
  normalisedHypervolume,
  paretoFront,
  recommend,
  referencePoint,
  violations,
  overLimit,
  type Candidate,
} from '../core';

const c = (runId: string, error: number, bytes: number, latencyMs: number, energyJ = 1): Candidate => ({
  runId,
  round: 1,
  values: { error, bytes, latencyMs, energyJ },
});

describe('hard limits', () => {
  it('a drop of exactly the limit is within it despite float rounding; a drop past it is not', () => {
    const base = { error: 1 - 0.78, latencyMs: 1, bytes: 100, energyJ: 0 };
    const ref = referencePoint(base, 2); // 2 points
    expect(violations({ ...base, error: 1 - 0.76 }, ref)).toEqual([]); // 0.78 − 0.76 = 0.020000000000000018
    expect(violations({ ...base, error: 1 - 0.7599 }, ref)).toEqual(['accuracy drop']);
    expect(overLimit((0.78 - 0.76) * 100, 2)).toBe(false);
    expect(overLimit(2.001, 2)).toBe(true);
  });
});

describe('Pareto front', () => {
  it('dominance is strict: equal points do not dominate each other', () => {
    expect(dominates(c('a', 0.1, 10, 1).values, c('b', 0.1, 10, 2).values)).toBe(true);
    expect(dominates(c('a', 0.1, 10, 1).values, c('b', 0.1, 10, 1).values)).toBe(false);
    expect(dominates(c('a', 0.1, 10, 1).values, c('b', 0.2, 5, 1).values)).toBe(false);
  });

  it('keeps the non-dominated points, with ties and duplicates', () => {
    const pts = [
      c('a', 0.1, 100, 10), // best accuracy
      c('b', 0.2, 50, 5), // trade-off
      c('b2', 0.2, 50, 5), // duplicate of b: kept, counted once
      c('d', 0.2, 60, 5), // dominated by b (worse size, tie elsewhere)
      c('e', 0.3, 20, 8), // smallest
      c('f', 0.3, 20, 9), // dominated by e
      c('g', 0.5, 200, 50), // dominated by everything
    ];
    const front = paretoFront(pts);
    expect(front.map((p) => p.runId)).toEqual(['a', 'b', 'b2', 'e']);
    expect(distinctCount(front)).toBe(3);
  });

  it('2-D front of error vs latency is sorted by latency, one corner per distinct point', () => {
    const pts = [c('a', 0.1, 1, 10), c('b', 0.2, 1, 5), c('b2', 0.2, 9, 5), c('c', 0.15, 1, 12), c('d', 0.4, 1, 2), c('e', 0.4, 1, 3)];
    expect(front2d(pts).map((p) => p.runId)).toEqual(['d', 'b', 'a']);
  });
});

describe('hypervolume', () => {
  it('matches hand computations in 1, 2 and 3 dimensions', () => {
    expect(hypervolume([[0.25], [0.5]], [1])).toBeCloseTo(0.75, 12);
    // two rectangles [0.2,1]×[0.6,1] ∪ [0.5,1]×[0.3,1]: 0.8·0.4 + 0.5·0.7 − 0.5·0.4 = 0.47
    expect(
      hypervolume(
        [
          [0.2, 0.6],
          [0.5, 0.3],
        ],
        [1, 1],
      ),
    ).toBeCloseTo(0.47, 12);
    // a dominated point and a duplicate add nothing
    expect(
      hypervolume(
        [
          [0.2, 0.6],
          [0.5, 0.3],
          [0.6, 0.7],
          [0.5, 0.3],
        ],
        [1, 1],
      ),
    ).toBeCloseTo(0.47, 12);
    // boxes [0.5,1]³ and [0,1]×[0,1]×[0.9,1]: 0.125 + 0.1 − 0.5·0.5·0.1 = 0.2
    expect(
      hypervolume(
        [
          [0.5, 0.5, 0.5],
          [0, 0, 0.9],
        ],
        [1, 1, 1],
      ),
    ).toBeCloseTo(0.2, 12);
  });

  it('points outside the reference box count for nothing', () => {
    expect(
      hypervolume(
        [
          [1.2, 0.1],
          [1, 0.5],
        ],
        [1, 1],
      ),
    ).toBe(0);
    expect(hypervolume([], [1, 1])).toBe(0);
  });

  it('4-D, normalised to the reference: a model at half of every cost and error fills 1/16', () => {
    const base = { error: 0.1, bytes: 1000, latencyMs: 4, energyJ: 2 };
    const ref = referencePoint(base, 0); // no allowed drop: ref = baseline
    expect(normalisedHypervolume([{ runId: 'x', round: 1, values: { error: 0.05, bytes: 500, latencyMs: 2, energyJ: 1 } }], ref)).toBeCloseTo(1 / 16, 12);
    expect(referencePoint(base, 2).error).toBeCloseTo(0.12, 12);
  });
});

describe('recommendation per weight vector', () => {
  const base = { error: 0.1, bytes: 1000, latencyMs: 10, energyJ: 1 };
  const pts = [c('acc', 0.1, 900, 9), c('small', 0.115, 200, 8), c('fast', 0.118, 600, 3), c('broken', 0.3, 10, 1)];
  const ref = referencePoint(base, 2);
  it('follows the weights and never picks a model past the accuracy constraint', () => {
    expect(recommend(pts, { accuracy: 1, size: 0, latency: 0, energy: 0 }, base, ref)?.pick.runId).toBe('acc');
    expect(recommend(pts, { accuracy: 0.2, size: 0.8, latency: 0, energy: 0 }, base, ref)?.pick.runId).toBe('small');
    expect(recommend(pts, { accuracy: 0.2, size: 0, latency: 0.8, energy: 0 }, base, ref)?.pick.runId).toBe('fast');
  });
  it('hard limits on size and latency reject models from the recommendation', () => {
    const accOnly = { accuracy: 1, size: 0, latency: 0, energy: 0 };
    expect(recommend(pts, accOnly, base, ref, { maxBytes: 700 })?.pick.runId).toBe('small');
    expect(recommend(pts, accOnly, base, ref, { maxBytes: 700, maxLatencyMs: 5 })?.pick.runId).toBe('fast');
    expect(recommend(pts, accOnly, base, ref, { maxLatencyMs: 0.5 })).toBeUndefined();
    expect(violations(pts[3].values, ref, { maxBytes: 5 })).toEqual(['accuracy drop', 'maxBytes']);
  });
});

describe('allocation by ΔJ(w) (hand-made sensitivity)', () => {
  const trial = (group: string, ratio: number, dError: number, dBytes: number, dLatencyMs: number): GroupTrial => ({
    group,
    ratio,
    keep: [0],
    dError,
    dBytes,
    dFlops: 0,
    dLatencyMs,
    dEnergyJ: 0,
  });
  const sens: Sensitivity = {
    current: { error: 0.1, bytes: 1000, flops: 1, latencyMs: 10, energyJ: 1 },
    latencyBatchSize: 32,
    trials: [
      trial('conv', 0.3, 0.02, -50, -3), // fast to drop, few bytes
      trial('conv', 0.6, 0.1, -100, -5),
      trial('fc', 0.3, 0.01, -400, -0.2), // many bytes, no speed
      trial('fc', 0.6, 0.03, -700, -0.4),
    ],
  };
  const base = { error: 0.1, bytes: 1000, latencyMs: 10, energyJ: 1 };
  it('a latency-heavy run cuts the slow group, a size-heavy run the big one', () => {
    const lat = allocate(sens, { accuracy: 0.3, size: 0, latency: 0.7, energy: 0 }, base, 0.7);
    const size = allocate(sens, { accuracy: 0.3, size: 0.7, latency: 0, energy: 0 }, base, 0.7);
    expect(lat.chosen[0].group).toBe('conv');
    expect(size.chosen[0].group).toBe('fc');
    expect(size.chosen.find((c) => c.group === 'fc')!.ratio).toBe(0.6);
    // ΔJ by hand: conv 0.3 for the latency run = 0.3·(0.02·0.3/0.1) + 0.7·(−3/10) = 0.018 − 0.21
    expect(trialDeltaJ(sens.trials[0], { accuracy: 0.3, size: 0, latency: 0.7, energy: 0 }, sens.current, base, 0.7)).toBeCloseTo(-0.192, 12);
  });
  it('an accuracy-only run prunes nothing', () => {
    expect(allocate(sens, { accuracy: 1, size: 0, latency: 0, energy: 0 }, base, 0.7).plan).toEqual({});
  });
});

describe('roofline estimate (hand computation)', () => {
  it('each layer takes the slower of compute and memory, plus its overhead', () => {
    const profile = {
      name: 'toy',
      description: '',
      flopsPerSecond: 1e9,
      bytesPerSecond: 1e8,
      overheadPerLayerS: 1e-5,
      joulesPerFlop: 1e-9,
      joulesPerByte: 1e-8,
      source: 'made up',
    };
    const cost = {
      params: 1000,
      flops: 2e6,
      macs: 1e6,
      bytes: 4000,
      layers: [
        { name: 'conv', className: 'Conv2D', params: 100, macs: 1e6, outputs: 1000 }, // compute: 2e6·2/1e9 = 4 ms; memory: (400 + 8000·2)/1e8 = 0.164 ms
        { name: 'fc', className: 'Dense', params: 900, macs: 900, outputs: 10 }, // compute: 3.6 µs; memory: (3600 + 160)/1e8 = 37.6 µs
      ],
    };
    const est = rooflineEstimate(cost, profile, 2);
    expect(est.latencyMs).toBeCloseTo((4e-3 + 1e-5 + 37.6e-6 + 1e-5) * 1000, 9);
    expect(est.memoryBoundLayers).toEqual(['fc']);
    // energy per example: (flops·J/flop + bytes·J/byte) / batch
    expect(est.energyJ).toBeCloseTo(((4e6 + 3600) * 1e-9 + (16400 + 3760) * 1e-8) / 2, 12);
  });
});

describe('RAPL energy sensor (fake powercap files: this VM has no RAPL)', () => {
  it('sums package domains, handles a wrapped counter, and ignores subzones', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-rapl-'));
    const domain = (n: string, uj: number, max: number) => {
      fs.mkdirSync(path.join(root, n));
      fs.writeFileSync(path.join(root, n, 'energy_uj'), String(uj));
      fs.writeFileSync(path.join(root, n, 'max_energy_range_uj'), String(max));
      fs.writeFileSync(path.join(root, n, 'name'), `package-${n.slice(-1)}`);
    };
    domain('intel-rapl:0', 1_000_000, 10_000_000);
    domain('intel-rapl:1', 9_500_000, 10_000_000);
    domain('intel-rapl:0:0', 5, 10); // a core subzone: not a package
    const domains = raplDomains(root);
    expect(domains.map((d) => d.name)).toEqual(['package-0', 'package-1']);
    const joules = await measureJoules(domains, async () => {
      fs.writeFileSync(path.join(root, 'intel-rapl:0', 'energy_uj'), '3500000'); // +2.5 J
      fs.writeFileSync(path.join(root, 'intel-rapl:1', 'energy_uj'), '500000'); // wrapped: +1.0 J
    });
    expect(joules).toBeCloseTo(3.5, 9);
    expect(raplDomains(path.join(root, 'nonexistent'))).toEqual([]);
  });
});

describe('Pareto front and hypervolume at campaign scale', () => {
  const rand = rng(11);
  const pts = Array.from({ length: 600 }, (_, i) => ({
    runId: `r${i}`,
    round: 1,
    // coarse values so ties and duplicates occur
    values: { error: Math.round(rand() * 20) / 20, bytes: Math.round(rand() * 20), latencyMs: Math.round(rand() * 20) / 4, energyJ: Math.round(rand() * 10) },
  }));

  it('the sorted front equals the brute-force definition, duplicates kept, input order kept', () => {
    const brute = pts.filter((p) => !pts.some((q) => q !== p && dominates(q.values, p.values)));
    expect(paretoFront(pts)).toEqual(brute);
    const keys = ['latencyMs', 'error'] as const;
    expect(paretoFront(pts, keys)).toEqual(pts.filter((p) => !pts.some((q) => q !== p && dominates(q.values, p.values, keys))));
  });

  it('hypervolume after dropping dominated points equals the volume counted on a grid', () => {
    const small = pts.slice(0, 60).map((p) => [p.values.error, p.values.bytes / 20, p.values.latencyMs / 5]);
    const ref = [1, 1, 1];
    // every grid cell of side 1/20 (coordinates are multiples of 1/20): dominated if some point is ≤ its lower corner
    let cells = 0;
    for (let a = 0; a < 20; a++)
      for (let b = 0; b < 20; b++)
        for (let c = 0; c < 20; c++) {
          if (small.some((p) => p[0] <= a / 20 && p[1] <= b / 20 && p[2] <= c / 20 && p.every((v, i) => v < ref[i]))) cells++;
        }
    expect(hypervolume(small, ref)).toBeCloseTo(cells / 8000, 10);
  });
});
