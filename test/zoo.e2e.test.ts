// Every zoo model prunes through the campaign CLI (different criteria, scopes and schedules),
// and the result is physically smaller.
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { campaignStatus, openDb } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

const CASES = [
  { model: 'lenet5', pruning: { criterion: 'taylor', scope: 'local', schedule: 'per-round', stepRatio: 0.4 } },
  { model: 'vgg-small', pruning: { criterion: 'bn', scope: 'global', schedule: 'one-shot', targetFlopsReduction: 0.5 } },
  { model: 'resnet8', pruning: { criterion: 'fpgm', scope: 'local', schedule: 'linear', targetFlopsReduction: 0.4, roundTo: 4 } },
  { model: 'mobilenet-small', pruning: { criterion: 'l2', scope: 'global', schedule: 'agp', targetFlopsReduction: 0.5 } },
] as const;

describe('every zoo model through the campaign CLI', () => {
  it('lenet5, vgg-small, resnet8 and mobilenet-small campaigns complete with smaller models', async () => {
    const home = tmpHome('zoo');
    const env = cliEnv(home, inject('temporalAddress'));
    const ids: string[] = [];
    for (const c of CASES) {
      const spec = writeSpec(home, {
        name: c.model,
        model: c.model,
        dataset: { name: 'mnist', trainLimit: 500, testLimit: 200 },
        baseline: { epochs: 1, batchSize: 32 },
        pruning: { rounds: 2, finetuneEpochs: 1, batchSize: 32, minUnits: 2, ...c.pruning },
        constraints: { maxAccuracyDrop: 100 },
        target: { batchSize: 8, warmupRuns: 1, latencyRuns: 3 },
      });
      const r = await cli(env, ['run', spec, '--detach']);
      expect(r.code).toBe(0);
      ids.push(r.stdout.trim().split('\n').at(-1)!);
    }
    const worker = startCli(env, ['worker']);
    const db = openDb(path.join(home, 'prunewise.db'));
    try {
      await waitFor('all zoo campaigns to finish', () => ids.every((id) => ['completed', 'failed'].includes(campaignStatus(db, id)!.state)), 540_000, 1000);
    } finally {
      await stop(worker);
    }
    for (const [k, id] of ids.entries()) {
      const s = campaignStatus(db, id)!;
      expect({ model: CASES[k].model, state: s.state, error: s.error }).toEqual({ model: CASES[k].model, state: 'completed', error: null });
      const last = s.runs[0].rounds.at(-1)!;
      expect(last.metrics.flops!).toBeLessThan(s.baseline!.flops!);
      expect(last.metrics.params!).toBeLessThan(s.baseline!.params!);
      // which layers shrank is recorded per round
      expect(Object.keys(last.metrics).some((key) => key.startsWith('channels.'))).toBe(true);
      if (CASES[k].pruning.schedule !== 'per-round') {
        const removed = 1 - last.metrics.flops! / s.baseline!.flops!;
        expect(removed).toBeGreaterThanOrEqual(CASES[k].pruning.targetFlopsReduction! - 0.02);
      }
    }
  }, 600_000);
});
