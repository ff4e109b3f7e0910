// Width search (ml/search.ts, issue 13): adaptive batch norm, the candidates' FLOPs, the plans that
// walk to the chosen widths, and determinism — on the zoo's vgg-small with its initial weights and
// synthetic images (what is asserted holds for any weights).
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adaptBatchNorm,
  analyze,
  buildZooModel,
  initBackend,
  modelCost,
  planForFlops,
  planForFlopsTowards,
  planRound,
  planTowards,
  pruneModel,
  type PruningPolicy,
  scoreGroups,
  searchWidths,
  type Split,
} from '../ml';

beforeAll(async () => {
  await initBackend();
});

/** n synthetic 28×28 images (a shifted pattern per class, scaled so batch norm's statistics move away from 0 and 1). */
function images(n: number, seed: number): Split {
  const x = new Float32Array(n * 784);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = (i * 7 + seed) % 10;
    for (let p = 0; p < 784; p++) x[i * 784 + p] = 3 * Math.sin((p + 13 * y[i]) / (5 + y[i])) + ((i * 31 + p * seed) % 11) / 5;
  }
  return { n, x, y };
}

/** The zoo's vgg-small with its initial weights (seeded), its groups and the criterion's scores. */
function vggSmall(seed: number, criterion: 'l1' | 'l2') {
  const model = buildZooModel('vgg-small', seed, [28, 28, 1], 10);
  const graph = analyze(model);
  return { model, graph, scores: scoreGroups(model, criterion, { seed: 1 }, graph) };
}

const OPTS = { minUnits: 2, maxRatio: 0.9, roundTo: 4, roundToAdaptive: true };

describe('width search', () => {
  it('adaptive batch norm sets each moving mean and variance to the statistics of the layer input over the images', async () => {
    const model = buildZooModel('vgg-small', 3, [28, 28, 1], 10);
    const data = images(96, 2);
    expect(await adaptBatchNorm(model, data, 40)).toBe(5);
    // bn2's input, computed directly with bn1 already adapted: its per-channel mean and population variance
    const probe = tf.tidy(() => {
      const xs = tf.tensor(data.x!, [data.n, 28, 28, 1]);
      let h = xs;
      for (const name of ['conv1', 'bn1', 'relu1', 'conv2']) h = model.getLayer(name).apply(h, { training: false }) as tf.Tensor;
      const { mean, variance } = tf.moments(h.reshape([-1, 16]), 0);
      return [mean.arraySync() as number[], variance.arraySync() as number[]];
    });
    const [, , mm, mv] = model.getLayer('bn2').getWeights();
    const got = [Array.from(mm.dataSync()), Array.from(mv.dataSync())];
    for (let c = 0; c < 16; c++) {
      expect(got[0][c]).toBeCloseTo(probe[0][c], 3);
      expect(got[1][c]).toBeCloseTo(probe[1][c], 2);
    }
    // not the initial statistics (0 and 1)
    expect(got[1].some((v) => Math.abs(v - 1) > 0.05)).toBe(true);
    model.dispose();
  });

  it('draws candidates at the target FLOPs, scores the uniform plan first, and gives the same result for the same seed', async () => {
    const { model, graph, scores } = vggSmall(4, 'l2');
    const o = { fraction: 0.6, candidates: 6, seed: 5, plan: OPTS, bnSplit: images(64, 3), evalSplit: images(64, 4) };
    const a = await searchWidths(model, graph, scores, o);
    const b = await searchWidths(model, graph, scores, o);
    expect(a.candidates).toEqual(b.candidates);
    expect(a.candidates[0].uniform).toBe(true);
    expect(a.candidates.slice(1).every((c) => !c.uniform)).toBe(true);
    expect(a.candidates.length).toBeGreaterThan(3);
    const uniform = await planForFlops(model, graph, scores, 0.6, 'local', OPTS);
    expect(a.fraction).toBeCloseTo(Math.max(0.6, uniform.flopsRemoved), 10);
    for (const c of a.candidates) {
      expect(c.flopsRemoved).toBeGreaterThanOrEqual(a.fraction);
      expect(c.flopsRemoved).toBeLessThanOrEqual(a.fraction + 0.01 + 1e-9);
    }
    // distinct allocations, the best the highest-scoring
    expect(new Set(a.candidates.map((c) => JSON.stringify(c.widths))).size).toBe(a.candidates.length);
    expect(a.best.accuracy).toBe(Math.max(...a.candidates.map((c) => c.accuracy)));
    expect(a.reached).toBe(true);
    // a target the caps do not allow (maxRatio 0.9 everywhere removes less): the uniform plan alone, and said so
    const far = await searchWidths(model, graph, scores, { ...o, fraction: 0.999 });
    expect(far.reached).toBe(false);
    expect(far.candidates.length).toBe(1);
    expect(far.best.uniform).toBe(true);
    expect(far.best.flopsRemoved).toBeLessThan(0.999);
    // another seed, other candidates
    const c = await searchWidths(model, graph, scores, { ...o, seed: 6 });
    expect(c.candidates.slice(1).map((x) => x.widths)).not.toEqual(a.candidates.slice(1).map((x) => x.widths));
    model.dispose();
  });

  it('walks to the chosen widths: a step removes at least the round goal, the whole way gives them exactly', async () => {
    const { model, graph, scores } = vggSmall(5, 'l1');
    const widths = { conv1: 10, conv2: 6, conv3: 28, conv4: 8, conv5: 56, fc1: 64 };
    const whole = planTowards(graph, scores, widths, 1, OPTS);
    expect(Object.fromEntries(Object.entries(whole).map(([g, k]) => [g, k.length]))).toEqual(widths);
    const base = modelCost(model).flops;
    const step = await planForFlopsTowards(model, graph, scores, widths, 0.2, OPTS);
    expect(step.step).toBeLessThan(1);
    expect(step.flopsRemoved).toBeGreaterThanOrEqual(0.2);
    const pruned = await pruneModel(model, step.plan, graph);
    expect(1 - modelCost(pruned).flops / base).toBeCloseTo(step.flopsRemoved, 10);
    // never below the target widths, and each group at most as wide as before
    for (const g of graph.groups) {
      const n = step.plan[g.name]?.length ?? g.size;
      expect(n).toBeGreaterThanOrEqual(widths[g.name as keyof typeof widths]);
      expect(n).toBeLessThanOrEqual(g.size);
    }
    pruned.dispose();
    model.dispose();
  });

  it('a round of allocation search: the last goes the whole way; a retry after rollback records what it really keeps', async () => {
    const { model, graph, scores } = vggSmall(7, 'l1');
    const search = await searchWidths(model, graph, scores, {
      fraction: 0.5,
      candidates: 4,
      seed: 3,
      plan: OPTS,
      bnSplit: images(32, 1),
      evalSplit: images(32, 2),
    });
    const policy: PruningPolicy = {
      criterion: 'l1',
      scope: 'local',
      schedule: 'linear',
      stepRatio: 0.2,
      targetFlopsReduction: 0.5,
      rounds: 2,
      minUnits: 2,
      maxLayerRatio: 0.9,
      roundTo: 4,
      protect: [],
      allocation: 'search',
      expectedRecovery: 0.7,
      sensitivitySamples: 100,
    };
    const base = modelCost(model).flops;
    const ctx = { model, graph, scores, search, baselineFlops: async () => base };
    const kept = (plan: Record<string, number[]>) => Object.fromEntries(graph.groups.map((g) => [g.name, plan[g.name]?.length ?? g.size]));
    const last = await planRound(policy, { ...ctx, round: 2 });
    expect(kept(last.plan)).toEqual(search.best.widths);
    expect((last.allocation as { stepTowardsWidths: number }).stepTowardsWidths).toBe(1);
    const first = await planRound(policy, { ...ctx, round: 1 });
    expect((first.allocation as { stepTowardsWidths: number }).stepTowardsWidths).toBeLessThan(1);
    const retry = await planRound(policy, { ...ctx, round: 2, ratioScale: 0.5 });
    const a = retry.allocation as { ratioScale: number; keptAfterRollback: Record<string, number>; widths: Record<string, number> };
    expect(a.ratioScale).toBe(0.5);
    expect(a.keptAfterRollback).toEqual(kept(retry.plan));
    expect(a.keptAfterRollback).not.toEqual(a.widths);
    model.dispose();
  });

  it('refuses a fraction outside (0, 1) or a negative candidate count, naming it', async () => {
    const { model, graph, scores } = vggSmall(6, 'l1');
    const o = { fraction: 0.5, candidates: 2, seed: 1, plan: OPTS, bnSplit: images(8, 1), evalSplit: images(8, 2) };
    await expect(searchWidths(model, graph, scores, { ...o, fraction: 1.2 })).rejects.toThrow(/fraction 1.2 must be in \(0, 1\)/);
    await expect(searchWidths(model, graph, scores, { ...o, candidates: -1 })).rejects.toThrow(/candidates -1 must be an integer/);
    model.dispose();
  });
});
