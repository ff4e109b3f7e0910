// kill -9 a worker in the middle of fine-tuning: a new worker finishes the campaign, fine-tuning
// resumes from its checkpoint (not from step 0), and no row is written twice.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { campaignStatus, countRows, openDb } from '../db';
import { ROUND_STAGES as STAGES } from '../core';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

describe('crash recovery', () => {
  it('kill -9 of the worker during fine-tune: a new worker completes the campaign from the checkpoint, no duplicate rows', async () => {
    const home = tmpHome('crash');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, {
      name: 'crash',
      dataset: { name: 'mnist', trainLimit: 6000, testLimit: 500 },
      baseline: { epochs: 1, batchSize: 64 },
      pruning: { rounds: 1, stepRatio: 0.3, finetuneEpochs: 4, batchSize: 64 },
      execution: { heartbeatTimeoutSeconds: 4, keepCheckpoints: 2 },
    });
    const submitted = await cli(env, ['run', spec, '--detach']);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim().split('\n').at(-1)!;
    expect(id).toMatch(/^crash-\d{8}-\d{6}-[0-9a-f]{4}$/);

    const first = startCli(env, ['worker']);
    const ckptDir = path.join(home, 'artifacts', id, 'run-1', 'round-1', 'finetune-checkpoints');
    // wait for fine-tune to have written at least one checkpoint, then kill the worker hard
    await waitFor('a fine-tune checkpoint', () => fs.existsSync(ckptDir) && fs.readdirSync(ckptDir).some((f) => /^step-\d+$/.test(f)), 240_000);
    await stop(first, 'SIGKILL');
    const db = openDb(path.join(home, 'prunewise.db'));
    const before = campaignStatus(db, id)!;
    expect(before.runs[0].rounds[0].stages.finetune.state).toBe('running');

    const second = startCli(env, ['worker']);
    try {
      await waitFor('the campaign to complete', () => campaignStatus(db, id)!.state === 'completed', 240_000, 500);
    } finally {
      await stop(second);
    }
    const after = campaignStatus(db, id)!;
    const ft = after.runs[0].rounds[0].stages.finetune;
    expect(ft.state).toBe('completed');
    expect(ft.attempts).toBeGreaterThanOrEqual(2);
    expect(ft.resumedFromStep).toBeGreaterThan(0); // continued from a checkpoint, not from step 0
    const steps = Math.ceil((6000 * 0.9) / 64) * 4;
    expect(ft.resumedFromStep).toBeLessThan(steps);
    for (const s of STAGES) expect(after.runs[0].rounds[0].stages[s].state).toBe('completed');

    // exactly one row per campaign/run/round/stage; events keyed, so none twice
    const counts = countRows(db, id);
    expect(counts.runs).toBe(2);
    expect(counts.rounds).toBe(1);
    expect(counts.stages).toBe(2 + STAGES.length); // the baseline's two (baseline, latency-table) and the round's six
    const keys = db.prepare(`SELECT message FROM events WHERE campaign_id = ?`).all(id) as Array<{ message: string }>;
    expect(new Set(keys.map((k) => k.message)).size).toBe(keys.length);
    // the keep-checkpoint policy: a completed run keeps none of its fine-tune checkpoints (the campaign none of the baseline's)
    expect(fs.existsSync(ckptDir)).toBe(false);
    expect(fs.existsSync(path.join(home, 'artifacts', id, 'baseline', 'checkpoints'))).toBe(false);
    expect(second.err()).not.toMatch(/Error/);
  }, 600_000);

  it('SIGTERM to `prunewise run` (as `timeout` or a service manager sends it) mid-baseline: its worker stops, it exits 143 with the hint to continue', async () => {
    const home = tmpHome('sigterm');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, { name: 'sigterm', baseline: { epochs: 20, batchSize: 64 } });
    const run = startCli(env, ['run', spec]);
    await waitFor('the baseline to start', () => /baseline started/.test(run.err()), 120_000);
    const code = new Promise<number | null>((r) => run.once('exit', (c) => r(c)));
    run.kill('SIGTERM');
    const exitCode = await Promise.race([code, new Promise<'hangs'>((r) => setTimeout(() => r('hangs'), 60_000))]);
    if (exitCode === 'hangs') await stop(run, 'SIGKILL');
    expect(exitCode).toBe(143);
    expect(run.err()).toMatch(/stopped this process's worker; campaign sigterm-\S+ is not lost: .*prunewise worker/);
  }, 240_000);
});
