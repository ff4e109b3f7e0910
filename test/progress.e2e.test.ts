// Progress and liveness against the real dev server, with real worker processes: `run` and
// `worker` print stage starts, ends and training progress; `status` shows progress and ETA from
// the heartbeats; after `kill -9` of the worker the stage shows "worker lost — retrying when a
// worker polls" and status prints the command to start one; every hint is run as printed, from
// another folder, in a shell without PRUNEWISE_HOME / TEMPORAL_ADDRESS / the queue prefix.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { cli, cliEnv, startCli, tmpHome, waitFor, writeSpec, BIN } from './helpers';

/** The commands in backticks of a text. */
const hintsIn = (text: string) => [...text.matchAll(/`((?:[A-Z_]+=\S+ )*prunewise [^`]+)`/g)].map((m) => m[1]);

/** A printed hint run in `cwd` by bash, with `prunewise` on the PATH (what `npm link` gives) and nothing else of ours in the environment. */
function shell(line: string, cwd: string, binDir: string): ChildProcess & { out: () => string; err: () => string } {
  const env: NodeJS.ProcessEnv = { PATH: `${binDir}${path.delimiter}${path.dirname(process.execPath)}${path.delimiter}/usr/bin:/bin`, HOME: process.env.HOME };
  const child = spawn('bash', ['-c', line], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  return Object.assign(child, { out: () => out, err: () => err });
}

const exited = (c: ChildProcess) =>
  new Promise<number>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code, sig) => r(code ?? (sig ? 128 : 1)))));

describe('progress, worker lost, hints that work as printed (real dev server, real workers)', () => {
  const dir = tmpHome('progress');
  const home = path.join(dir, 'state');
  const elsewhere = tmpHome('progress-elsewhere');
  const binDir = tmpHome('progress-bin');
  fs.symlinkSync(BIN, path.join(binDir, 'prunewise'));
  const env = cliEnv(home, inject('temporalAddress'));
  const children: Array<ChildProcess & { err: () => string }> = [];
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') for (const c of children) console.error(`--- ${c.spawnargs.join(' ')}\n${c.err()}`);
  });
  afterAll(() => {
    for (const c of children) {
      if (c.exitCode !== null || c.signalCode !== null || !c.pid) continue;
      try {
        process.kill(-c.pid, 'SIGKILL'); // a hint's shell and the worker it started
      } catch {
        c.kill('SIGKILL'); // not a group leader (started by startCli)
      }
    }
  });

  it('Ctrl-C on run → printed worker command (from another folder) → progress → kill -9 → "worker lost" → printed command → completes; a second run of the file warns', async () => {
    // LeNet-5 on 6 000 MNIST digits, 20 epochs at batch 32: some seconds of baseline training to watch (and to kill)
    const spec = writeSpec(dir, {
      name: 'prog',
      model: 'lenet5',
      dataset: { name: 'mnist', trainLimit: 6000, testLimit: 300 },
      baseline: { epochs: 20, batchSize: 32 },
      pruning: { rounds: 1, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64 },
      target: { batchSize: 16, warmupRuns: 1, latencyRuns: 5, latencyBudgetSeconds: 2 },
      execution: { heartbeatTimeoutSeconds: 5 },
    });
    const run = startCli(env, ['run', spec, '--home', home]);
    children.push(run);
    // run prints stage starts and training progress (not a TTY: lines)
    await waitFor(
      'run printing baseline progress',
      () => /baseline: epoch \d+\/20, batch \d+\/169, \d+ samples\/s, loss [\d.]+, ETA /.test(run.err()),
      120_000,
    );
    expect(run.err()).toMatch(/\d\d:\d\d:\d\d baseline started/);
    const runId = /campaign (\S+) submitted/.exec(run.err())![1];
    // status shows the same, from the heartbeat details in Temporal
    const live = await waitFor('status --json with live baseline progress', async () => {
      const j = JSON.parse((await cli(env, ['status', runId, '--json'])).stdout);
      const b = j.live?.find((l: { stage: string }) => l.stage === 'baseline');
      return b?.state === 'running' && b.progress?.samplesPerSecond ? { j, b } : undefined;
    });
    expect(live.j.version).toBe(2);
    expect(live.b).toMatchObject({ state: 'running', heartbeatTimeoutSeconds: 5, progress: { epochs: 20, batchesPerEpoch: 169 } });
    expect(live.b.etaSeconds).toBeGreaterThanOrEqual(0);
    expect(live.b.heartbeatAgeSeconds).toBeLessThanOrEqual(5);
    await waitFor('status printing the same progress', async () =>
      /\n {2}baseline: epoch \d+\/20, batch \d+\/169, \d+ samples\/s, loss [\d.]+, ETA \d+ s/.test((await cli(env, ['status', runId])).stdout),
    );

    run.kill('SIGINT');
    expect(await exited(run)).toBe(130);
    const stopped = run
      .err()
      .split('\n')
      .find((l) => l.startsWith("stopped this process's worker"))!;
    const [workerCmd, cancelCmd] = hintsIn(stopped);
    expect(workerCmd).toMatch(new RegExp(`^TEMPORAL_ADDRESS=\\S+ PRUNEWISE_TASK_QUEUE_PREFIX=${env.queuePrefix} prunewise worker --home ${home}$`));
    expect(cancelCmd).toMatch(/ prunewise cancel prog-\d{8}-\d{6}-[0-9a-f]{4} --home /);
    const id = /cancel (\S+)/.exec(cancelCmd)![1];

    // the printed worker command, as printed, from another folder: it continues the campaign and says what it does
    const worker = shell(workerCmd, elsewhere, binDir);
    children.push(worker);
    await waitFor(
      'the worker printing baseline progress',
      () => /baseline: epoch \d+\/20, batch \d+\/169, \d+ samples\/s, loss [\d.]+, ETA \d+ s/.test(worker.err()),
      120_000,
    );
    expect(worker.err()).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d ${id} baseline started \\(attempt \\d\\)`));
    // the server has this attempt's training progress (its first heartbeat, sent at once, is graph mode's
    // "training graphs traced 0/1"; Temporal sends the next ones throttled, seconds later)
    await waitFor(
      'the server holding the new attempt’s epoch progress',
      async () => /\n {2}baseline: epoch \d+\/20, batch \d+\/169/.test((await cli(env, ['status', id])).stdout),
      60_000,
      500,
    );
    // kill -9 (at once: the baseline must still be training): the heartbeat stops; status says the worker is lost, then which command starts one
    process.kill(-worker.pid!, 'SIGKILL');
    await exited(worker);
    const lost = await waitFor(
      'status: worker lost and the command to start one',
      async () => {
        const r = await cli(env, ['status', id]);
        // within 90 s of the kill the server still lists the dead worker's poller: the unclaimed retry tells
        return /\nno worker (has taken baseline back for \d+ s|serves campaign)/.test(r.stdout) ? r.stdout : undefined;
      },
      90_000,
      1000,
    );
    expect(lost).toMatch(
      /\n {2}baseline: worker lost — retrying when a worker polls \(no heartbeat for [\d a-z]+, timeout 5 s\); was at epoch \d+\/20, batch \d+\/169; attempt \d/,
    );
    expect(lost).not.toMatch(/baseline: epoch/);
    const j = JSON.parse((await cli(env, ['status', id, '--json'])).stdout);
    expect(j.live.find((l: { stage: string }) => l.stage === 'baseline')).toMatchObject({ state: 'worker-lost' });
    const [again] = hintsIn(lost.split('\n').find((l) => l.startsWith('no worker '))!);
    expect(again).toBe(workerCmd);

    // that command, as printed, from another folder: the campaign completes
    const worker2 = shell(again, elsewhere, binDir);
    children.push(worker2);
    await waitFor('the campaign completed', async () => JSON.parse((await cli(env, ['status', id, '--json'])).stdout).state === 'completed', 180_000, 1000);
    expect(worker2.err()).toMatch(/baseline started \(attempt [2-9]\)/);
    expect(worker2.err()).toMatch(new RegExp(`${id}/run-1 finetune done in \\d+ s`));
    process.kill(-worker2.pid!, 'SIGTERM');
    await exited(worker2);

    // the same file again: a warning naming the earlier campaign; with no worker, the command to start one; hints run as printed
    const second = await cli(env, ['run', spec, '--home', home, '--detach']);
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(
      new RegExp(`note: this file \\(sha256 [0-9a-f]{12}\\) already ran here as ${id} \\(completed\\): this submits an identical campaign`),
    );
    expect(second.stderr).toMatch(/its baseline is trained again \(a finished baseline is not reused\)/);
    const id2 = second.stdout.trim();
    const noWorker = second.stderr.split('\n').find((l) => l.startsWith(`no worker serves campaign ${id2}`))!;
    expect(hintsIn(noWorker)).toEqual([workerCmd]);
    const follow = hintsIn(second.stderr.split('\n').find((l) => l.startsWith('follow it with'))!)[0];
    const st = shell(follow, elsewhere, binDir);
    expect(await exited(st)).toBe(0);
    expect(st.out()).toContain(`campaign ${id2}: `);
    expect(st.out()).toMatch(
      new RegExp(
        `\\nno worker serves campaign ${id2} \\((nothing polls task queue|its task has waited \\d+ s in task queue) ${env.queuePrefix}-campaigns\\): start one with`,
      ),
    );
    // cancel with no worker says what it did (no worker ever started it: it ends at once, in Temporal and SQLite); by prefix
    const cancel = await cli(env, ['cancel', id2.slice(0, -2), '--home', home]);
    expect(cancel.code).toBe(0);
    expect(cancel.stderr).toMatch(new RegExp(`^campaign ${id2} cancelled: cancelled before any worker started it`));
  }, 600_000);
});
