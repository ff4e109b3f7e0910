// Weight-driven allocation through the CLI: runs that weigh latency or size prune different layers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { CampaignInput } from '../campaign/schema';
import { cli, cliEnv, tmpHome, writeSpec } from './helpers';

/** A LeNet-5 campaign on 3 000 Fashion-MNIST images through `prunewise run --json`: its home and status. */
async function runLenet5(name: string, overrides: Partial<CampaignInput>) {
  const home = tmpHome(name);
  const env = cliEnv(home, inject('temporalAddress'));
  const spec = writeSpec(home, { name, model: 'lenet5', dataset: { name: 'fashion-mnist', trainLimit: 3000, testLimit: 500 }, ...overrides });
  const r = await cli(env, ['run', spec, '--json']);
  expect(r.code).toBe(0);
  return { home, status: JSON.parse(r.stdout) };
}

describe('weight-driven allocation', () => {
  it('a latency-heavy and a size-heavy run of LeNet-5 end with different architectures, each from its own ΔJ(w)', async () => {
    const { home, status } = await runLenet5('alloc', {
      weights: [
        { accuracy: 0.3, size: 0, latency: 0.7, energy: 0 },
        { accuracy: 0.3, size: 0.7, latency: 0, energy: 0 },
      ],
      constraints: { maxAccuracyDrop: 15 },
      pruning: { rounds: 1, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64, sensitivitySamples: 300 },
      target: { batchSize: 32, warmupRuns: 1, latencyRuns: 10 },
    });
    const [latencyRun, sizeRun] = status.runs as Array<{ id: string; rounds: Array<{ metrics: Record<string, number> }> }>;
    const widths = (m: Record<string, number>) => Object.fromEntries(Object.entries(m).filter(([k]) => k.startsWith('channels.')));
    for (const run of [latencyRun, sizeRun]) {
      expect(run.rounds[0].metrics.allocatedGroups).toBeGreaterThanOrEqual(1);
      expect(run.rounds[0].metrics.estimatedDeltaJ).toBeLessThan(0);
      const alloc = JSON.parse(fs.readFileSync(path.join(home, 'artifacts', run.id, 'round-1', 'allocation.json'), 'utf8'));
      expect(alloc.chosen.length).toBe(run.rounds[0].metrics.allocatedGroups);
      for (const c of alloc.chosen) expect(c.deltaJ).toBeLessThan(0);
    }
    expect(widths(latencyRun.rounds[0].metrics)).not.toEqual(widths(sizeRun.rounds[0].metrics));
    // size-heavy goes for the parameters (LeNet-5's are mostly in fc1): fewer bytes left
    expect(sizeRun.rounds[0].metrics.params).toBeLessThan(latencyRun.rounds[0].metrics.params);
  }, 600_000);

  it('allocation: sensitivity spends a FLOPs schedule where the measured error rises least, and records why', async () => {
    const { home, status } = await runLenet5('alloc-flops', {
      constraints: { maxAccuracyDrop: 30 },
      pruning: {
        rounds: 1,
        schedule: 'linear',
        targetFlopsReduction: 0.5,
        allocation: 'sensitivity',
        finetuneEpochs: 1,
        batchSize: 64,
        sensitivitySamples: 300,
      },
      target: { batchSize: 32, warmupRuns: 1, latencyRuns: 5 },
    });
    expect(status.recipe.pruning).toMatchObject({ allocation: 'sensitivity' });
    expect(status.recipe.pruning.summary).toMatch(/FLOPs allocated by measured sensitivity/);
    const run = status.runs[0] as { id: string; rounds: Array<{ metrics: Record<string, number> }> };
    const m = run.rounds[0].metrics;
    expect(1 - m.flops / status.baseline.flops).toBeGreaterThanOrEqual(0.48);
    const alloc = JSON.parse(fs.readFileSync(path.join(home, 'artifacts', run.id, 'round-1', 'allocation.json'), 'utf8'));
    expect(alloc.allocation).toBe('sensitivity');
    expect(alloc.chosen.length).toBe(m.allocatedGroups);
    expect(alloc.chosen.length).toBeGreaterThanOrEqual(1);
    expect(alloc.reached).toBe(true);
    expect(alloc.sensitivitySamples).toBe(300); // 10 % of 3 000 held out for validation
    expect(alloc.reductionOfBaselineAfter).toBeGreaterThanOrEqual(alloc.scheduleReductionOfBaseline - 1e-9);
    expect(alloc.flopsFractionRemoved).toBeGreaterThanOrEqual(alloc.flopsFractionToRemove);
    // not the same ratio everywhere: the chosen trials differ in ratio or not every group is cut
    const ratios = new Set(alloc.chosen.map((c: { ratio: number }) => c.ratio));
    expect(ratios.size > 1 || alloc.chosen.length < 4).toBe(true);
  }, 600_000);

  it('allocation: search walks the rounds to widths searched once on the baseline, and records them', async () => {
    const { home, status } = await runLenet5('alloc-search', {
      constraints: { maxAccuracyDrop: 30 },
      pruning: {
        rounds: 2,
        schedule: 'linear',
        targetFlopsReduction: 0.5,
        allocation: 'search',
        searchCandidates: 8,
        finetuneEpochs: 1,
        batchSize: 64,
        sensitivitySamples: 300,
      },
      target: { batchSize: 32, warmupRuns: 1, latencyRuns: 5 },
    });
    expect(status.recipe.pruning).toMatchObject({ allocation: 'search' });
    expect(status.recipe.pruning.summary).toMatch(/widths searched on the baseline/);
    const run = status.runs[0] as { id: string; rounds: Array<{ metrics: Record<string, number> }> };
    expect(run.rounds.length).toBe(2);
    const allocs = [1, 2].map((r) => JSON.parse(fs.readFileSync(path.join(home, 'artifacts', run.id, `round-${r}`, 'allocation.json'), 'utf8')));
    // one search, the same widths in both rounds; the first round goes part of the way, the last the whole way
    expect(allocs[0].allocation).toBe('search');
    expect(allocs[1].widths).toEqual(allocs[0].widths);
    expect(allocs[0].candidates).toBeGreaterThan(1);
    expect(allocs[0].stepTowardsWidths).toBeLessThan(1);
    expect(allocs[1].stepTowardsWidths).toBe(1);
    expect(allocs[0].searchFlopsFraction).toBeGreaterThanOrEqual(0.5);
    const last = run.rounds[1].metrics;
    for (const [group, width] of Object.entries(allocs[0].widths as Record<string, number>)) expect(last[`channels.${group}`]).toBe(width);
    expect(1 - last.flops / status.baseline.flops).toBeCloseTo(allocs[0].widthsFlopsRemoved, 6);
    expect(allocs[0].widthsFlopsRemoved).toBeGreaterThanOrEqual(allocs[0].searchFlopsFraction);
    const first = run.rounds[0].metrics;
    expect(1 - first.flops / status.baseline.flops).toBeGreaterThanOrEqual(allocs[0].searchFlopsFraction / 2 - 1e-9);
    expect(1 - first.flops / status.baseline.flops).toBeLessThan(allocs[0].searchFlopsFraction);
    // searched once, by the first round's prune stage; the second read it (from the artifact store)
    expect(first.widthSearchReused).toBe(0);
    expect(last.widthSearchReused).toBe(1);
    const campaignDir = path.join(home, 'artifacts', status.id, 'baseline');
    expect(fs.readdirSync(campaignDir).filter((f) => f.startsWith('width-search-')).length).toBe(1);
    expect(allocs[0].searchReached).toBe(true);
  }, 600_000);
});
