// The embedded Temporal dev server stops mid-campaign and starts again on the same db file:
// the campaign continues where it was and completes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverAnswers } from '../cli/temporal';
import { campaignStatus, openDb } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

describe('embedded server restart', () => {
  it('stop the dev server mid-campaign, start it again on the same db file: the campaign completes', async () => {
    const home = tmpHome('restart');
    const env = cliEnv(home); // no TEMPORAL_ADDRESS: the CLI starts and records its own server
    const spec = writeSpec(home, {
      name: 'restart',
      pruning: { rounds: 2, stepRatio: 0.3, finetuneEpochs: 2, batchSize: 64 },
    });
    const submitted = await cli(env, ['run', spec, '--detach']);
    expect(submitted.code).toBe(0);
    expect(submitted.stderr).toMatch(/starting the embedded Temporal dev server on 127\.0\.0\.1:\d+/);
    const id = submitted.stdout.trim().split('\n').at(-1)!;
    const server1 = JSON.parse(fs.readFileSync(path.join(home, 'server.json'), 'utf8'));
    expect(fs.existsSync(path.join(home, 'temporal.db'))).toBe(true);

    let worker = startCli(env, ['worker']);
    const db = openDb(path.join(home, 'prunewise.db'));
    let server2: ReturnType<typeof startCli> | undefined;
    try {
      await waitFor('round 1 fine-tune to start', () => campaignStatus(db, id)?.runs[0]?.rounds[0]?.stages.finetune?.state === 'running', 240_000);
      const stopped = await cli(env, ['server', '--stop']);
      expect(stopped.stderr).toContain(`stopped the Temporal dev server (pid ${server1.pid}`);
      expect(await serverAnswers(server1.address, 500)).toBe(false);

      server2 = startCli(env, ['server']); // foreground, same db file, same recorded ports
      await waitFor('the restarted server to answer', () => serverAnswers(server1.address, 500), 60_000);
      const server2Info = JSON.parse(fs.readFileSync(path.join(home, 'server.json'), 'utf8'));
      expect(server2Info.address).toBe(server1.address);
      expect(server2Info.dbFile).toBe(server1.dbFile);
      if (worker.exitCode !== null) worker = startCli(env, ['worker']);
      await waitFor('the campaign to complete', () => campaignStatus(db, id)!.state === 'completed', 300_000, 500);
    } finally {
      await stop(worker);
      if (server2) await stop(server2);
      await cli(env, ['server', '--stop']);
    }
    const s = campaignStatus(db, id)!;
    expect(s.runs[0].state).toBe('completed');
    expect(s.runs[0].rounds.map((r) => r.state)).toEqual(['completed', 'completed']);
  }, 600_000);
});
