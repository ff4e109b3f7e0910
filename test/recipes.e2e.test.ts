// A campaign with a whole fine-tuning recipe, end to end through the real CLI and Temporal: the
// budget in batches (the last round's its own), a cosine schedule with warm-up, label smoothing, distillation from the run's
// baseline, the sparsity penalty on the baseline's training and the first round, and least-squares reconstruction
// after each round's pruning. `status` (text and
// --json) and each deployable's prunewise.json state the recipe each round used.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { isMetricKey } from '../core';
import { cli, cliEnv, tmpHome, writeSpec } from './helpers';

describe('fine-tuning recipes in a campaign', () => {
  it('runs distillation, schedule, smoothing, the sparsity penalty and reconstruction per round, and says so in status and prunewise.json', async () => {
    const home = tmpHome('recipe');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, {
      name: 'recipe',
      model: 'lenet5',
      constraints: { maxAccuracyDrop: 50 }, // every round reaches hardware-adapt
      pruning: {
        rounds: 2,
        stepRatio: 0.3,
        batchSize: 64,
        allocation: 'uniform',
        reconstruct: 256,
        finetune: { batches: 12, lastRound: { batches: 20 }, schedule: 'cosine', warmup: 0.1, labelSmoothing: 0.1, distill: { weight: 0.5, temperature: 4 } },
        sparsity: { strength: 0.5, growth: 1, baseline: true },
      },
    });
    const r = await cli(env, ['run', spec, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout);
    expect(status.recipe.finetune).toEqual({
      batches: 12,
      learningRate: 0.0005,
      schedule: 'cosine',
      warmup: 0.1,
      labelSmoothing: 0.1,
      distill: { weight: 0.5, temperature: 4, teacher: 'baseline' },
      lastRound: { batches: 20 },
    });
    expect(status.recipe.sparsity).toEqual({ strength: 0.5, growth: 1, alpha: 4, rounds: 1, baseline: true });
    const rounds = status.runs[0].rounds;
    expect(rounds.map((rd: { metrics: { finetuneSteps?: number } }) => rd.metrics.finetuneSteps)).toEqual([12, 20]); // the budget in batches; the last round's own
    // reconstruction: the prune stage refits the consumers of pruned channels and says how much closer they come
    for (const rd of rounds as Array<{ metrics: Record<string, number> }>) {
      expect(rd.metrics.reconstructedLayers).toBeGreaterThan(0);
      expect(rd.metrics.reconstructErrorAfter).toBeLessThan(rd.metrics.reconstructErrorBefore);
    }
    // every metric the rounds recorded is one core/metrics.ts names (the new stage metrics too)
    expect((rounds as Array<{ metrics: Record<string, number> }>).flatMap((rd) => Object.keys(rd.metrics)).filter((k) => !isMetricKey(k))).toEqual([]);
    const deployed = (round: number) =>
      JSON.parse(fs.readFileSync(path.join(home, 'artifacts', status.id, 'run-1', `round-${round}`, 'deployable', 'prunewise.json'), 'utf8'));
    expect(deployed(1).finetune).toMatchObject({ batches: 12, schedule: 'cosine', distill: { weight: 0.5 }, sparsity: { strength: 0.5, growth: 1, alpha: 4 } });
    expect(deployed(2).finetune.sparsity).toBeNull(); // the last round recovers without the penalty
    expect(deployed(2).finetune.summary).toBe('20 batches, lr 0.0005 cosine (warm-up 10 %), label smoothing 0.1, distillation from the baseline (α 0.5, T 4)');
    // the exported model (what users ship) says the same as its deployable
    const out = path.join(home, '..', `export-${path.basename(home)}`);
    const exported = await cli(env, ['export', `${status.id}/run-1`, '--round', '2', '--out', out]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'prunewise.json'), 'utf8')).finetune).toEqual(deployed(2).finetune);
    const text = await cli(env, ['status', status.id]);
    expect(text.stdout).toContain(
      'fine-tuning: 12 batches per round, the last round 20 batches, lr 0.0005 cosine (warm-up 10 %), label smoothing 0.1, distillation from the baseline (α 0.5, T 4); sparsity penalty λ 0.5 + 1/epoch (α 4) on the baseline and round 1',
    );
  }, 600_000);
});
