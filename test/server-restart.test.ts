// The embedded Temporal dev server stops mid-campaign under `run` and starts again on the same db
// file: `run` waits for it with one line, the campaign continues where it was and completes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverAnswers } from '../cli/temporal';
import { campaignStatus, openDb } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

describe('embedded server restart', () => {
  it('stop the dev server under `run`, start it again on the same db file: run waits (one line) and the campaign completes', async () => {
    const home = tmpHome('restart');
    const env = cliEnv(home); // no TEMPORAL_ADDRESS: the CLI starts and records its own server
    const spec = writeSpec(home, {
      name: 'restart',
      pruning: { rounds: 2, stepRatio: 0.3, finetuneEpochs: 2, batchSize: 64 },
    });
    // `run` works on the campaign in process; the server goes away under it and comes back
    const run = startCli(env, ['run', spec]);
    await waitFor('the campaign to be submitted', () => /campaign \S+ submitted/.test(run.err()), 120_000);
    expect(run.err()).toMatch(/starting the embedded Temporal dev server on 127\.0\.0\.1:\d+/);
    const id = /campaign (\S+) submitted/.exec(run.err())![1];
    const server1 = JSON.parse(fs.readFileSync(path.join(home, 'server.json'), 'utf8'));
    expect(fs.existsSync(path.join(home, 'temporal.db'))).toBe(true);

    const db = openDb(path.join(home, 'prunewise.db'));
    let server2: ReturnType<typeof startCli> | undefined;
    try {
      await waitFor('round 1 fine-tune to start', () => campaignStatus(db, id)?.runs[0]?.rounds[0]?.stages.finetune?.state === 'running', 240_000);
      const stopped = await cli(env, ['server', '--stop']);
      expect(stopped.stderr).toContain(`stopped the Temporal dev server (pid ${server1.pid}`);
      expect(await serverAnswers(server1.address, 500)).toBe(false);
      await new Promise((r) => setTimeout(r, 5000)); // longer than a gRPC call's own retries

      server2 = startCli(env, ['server']); // foreground, same db file, same recorded ports
      await waitFor('the restarted server to answer', () => serverAnswers(server1.address, 500), 60_000);
      const server2Info = JSON.parse(fs.readFileSync(path.join(home, 'server.json'), 'utf8'));
      expect(server2Info.address).toBe(server1.address);
      expect(server2Info.dbFile).toBe(server1.dbFile);
      const code = await new Promise<number | null>((r) => (run.exitCode !== null ? r(run.exitCode) : run.on('exit', (c) => r(c))));
      expect(code).toBe(0); // `run` waited for the server, did not give up
    } finally {
      await stop(run);
      if (server2) await stop(server2);
      await cli(env, ['server', '--stop']);
    }
    // one line while it waited
    const notices = run
      .err()
      .split('\n')
      .filter((l) => l.includes('does not answer'));
    expect(notices.length).toBe(1);
    expect(notices[0]).toMatch(
      new RegExp(
        `^the Temporal server at ${server1.address} does not answer \\(.+\\): waiting for it to come back; \`[^\`]*prunewise server --home ${home}\` starts it again`,
      ),
    );
    const s = campaignStatus(db, id)!;
    expect(s.state).toBe('completed');
    expect(s.runs[0].state).toBe('completed');
    expect(s.runs[0].rounds.map((r) => r.state)).toEqual(['completed', 'completed']);
  }, 600_000);
});
