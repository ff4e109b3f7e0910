// Steering running campaigns: pause / resume / cancel from the CLI, state mirrored in SQLite,
// and a run that continues-as-new between rounds keeps going.
import { Client, Connection } from '@temporalio/client';
import * as path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { campaignStatus, openDb } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

describe('pause, resume, cancel', () => {
  const home = tmpHome('steer');
  const env = cliEnv(home, inject('temporalAddress'));
  const worker = startCli(env, ['worker']);
  afterAll(() => stop(worker));

  it('pause holds the campaign at a stage boundary, resume finishes it; continue-as-new between rounds', async () => {
    const spec = writeSpec(home, {
      name: 'pausable',
      pruning: { rounds: 3, stepRatio: 0.2, finetuneEpochs: 1, batchSize: 64 },
      execution: { heartbeatTimeoutSeconds: 5, roundsPerExecution: 1 },
    });
    const id = (await cli(env, ['run', spec, '--detach'])).stdout.trim().split('\n').at(-1)!;
    const db = openDb(path.join(home, 'prunewise.db'));
    await waitFor('round 1 to start', () => campaignStatus(db, id)?.runs[0]?.rounds.length);
    expect((await cli(env, ['pause', id])).code).toBe(0);
    await waitFor('the run to be paused', () => campaignStatus(db, id)!.runs[0].state === 'paused' && campaignStatus(db, id)!.state === 'paused', 120_000);
    const stagesWhilePaused = () => campaignStatus(db, id)!.runs[0].rounds.flatMap((r) => Object.values(r.stages)).length;
    const n = stagesWhilePaused();
    await new Promise((r) => setTimeout(r, 3000));
    expect(stagesWhilePaused()).toBe(n); // nothing new starts while paused
    expect(
      campaignStatus(db, id)!
        .runs[0].rounds.flatMap((r) => Object.values(r.stages))
        .every((s) => s.state !== 'running'),
    ).toBe(true);

    expect((await cli(env, ['resume', id])).code).toBe(0);
    await waitFor('the campaign to complete', () => campaignStatus(db, id)!.state === 'completed', 300_000, 500);
    const s = campaignStatus(db, id)!;
    expect(s.runs[0].rounds.map((r) => r.state)).toEqual(['completed', 'completed', 'completed']);

    // the run continued as new after each round: three executions of one workflow id
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    const client = new Client({ connection });
    let executions = 0;
    for await (const w of client.workflow.list({ query: `WorkflowId = '${id}/run-1'` })) if (w.workflowId === `${id}/run-1`) executions++;
    await connection.close();
    expect(executions).toBe(3);
  }, 600_000);

  it('cancel ends a running campaign, records it as cancelled, and rm then deletes it', async () => {
    const spec = writeSpec(home, { name: 'cancellable', pruning: { rounds: 3, finetuneEpochs: 3, batchSize: 64 } });
    const id = (await cli(env, ['run', spec, '--detach'])).stdout.trim().split('\n').at(-1)!;
    const db = openDb(path.join(home, 'prunewise.db'));
    await waitFor('run-1 to start', () => campaignStatus(db, id)?.runs.length);
    const rmEarly = await cli(env, ['rm', id]);
    expect(rmEarly.code).toBe(1);
    expect(rmEarly.stderr).toMatch(/is running: cancel it first/);
    expect((await cli(env, ['cancel', id])).code).toBe(0);
    await waitFor('the campaign to be cancelled', () => campaignStatus(db, id)!.state === 'cancelled', 120_000);
    await waitFor('the run to be cancelled', () => campaignStatus(db, id)!.runs[0].state === 'cancelled', 60_000);
    // no stage row of a cancelled campaign stays running
    const open = db.prepare(`SELECT COUNT(*) FROM stages WHERE run_id LIKE ? AND state IN ('running', 'pending', 'paused')`).pluck().get(`${id}/%`);
    expect(open).toBe(0);
    const again = await cli(env, ['cancel', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is cancelled: nothing to cancel/);
    expect((await cli(env, ['rm', id])).code).toBe(0);
    const missing = await cli(env, ['status', id]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/campaign ".*" not found/);
  }, 300_000);
});
