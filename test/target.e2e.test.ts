// Hardware targets: a profile is estimated by its roofline (labelled), a device target waits on
// its own queue, shown by `status`, until `prunewise worker --target <name>` measures it there, and
// hardware-adapt times on target.runtime, not on the backend that trained.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { openDb, runDetail } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

// native TensorFlow trains where its wheel is in .venv (scripts/setup-native.sh) or on CI
const EXPECT_NATIVE =
  process.env.CI === 'true' ||
  (fs.existsSync(path.join(__dirname, '..', '.venv', 'lib')) &&
    fs
      .readdirSync(path.join(__dirname, '..', '.venv', 'lib'))
      .some((py) => fs.existsSync(path.join(__dirname, '..', '.venv', 'lib', py, 'site-packages', 'tensorflow', 'libtensorflow_cc.so.2'))));

describe('hardware targets', () => {
  it('a device target waits for its worker (status names the queue); the device worker measures it', async () => {
    const home = tmpHome('target');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, {
      name: 'device',
      target: { name: 'edge-box', measure: 'worker', batchSize: 16, warmupRuns: 1, latencyRuns: 5 },
      constraints: { maxAccuracyDrop: 50 },
    });
    const id = (await cli(env, ['run', spec, '--detach'])).stdout.trim().split('\n').at(-1)!;
    const worker = startCli(env, ['worker']); // everything but the device's queue
    try {
      // the first stage that needs the device: the campaign's latency table (timed where the model will run)
      const waiting = await waitFor('the latency-table stage to wait for the device queue', async () => {
        const s = await cli(env, ['status', id]);
        return (
          /waiting for queue \S*target-edge-box: no worker serves it \(start `TEMPORAL_ADDRESS=\S+ PRUNEWISE_TASK_QUEUE_PREFIX=\S+ prunewise worker --target edge-box --home \S+` on that device\)/.test(
            s.stdout,
          ) && s.stdout
        );
      });
      expect(waiting).toMatch(/on that device\): baseline latency-table/);
      const device = startCli(env, ['worker', '--target', 'edge-box']);
      try {
        await waitFor('the campaign to complete', async () => JSON.parse((await cli(env, ['status', id, '--json'])).stdout).state === 'completed');
      } finally {
        await stop(device);
      }
    } finally {
      await stop(worker);
    }
    const status = JSON.parse((await cli(env, ['status', id, '--json'])).stdout);
    const round = status.runs[0].rounds[0];
    expect(round.stages['hardware-adapt'].taskQueue).toBe(`${env.queuePrefix}-target-edge-box`);
    const db = openDb(path.join(home, 'prunewise.db'));
    expect(runDetail(db, `${id}/baseline`)!.stages.find((s) => s.stage === 'latency-table')).toMatchObject({
      state: 'completed',
      taskQueue: `${env.queuePrefix}-target-edge-box`,
    });
    expect(round.metrics.latencyMs).toBeGreaterThan(0);
    expect(round.metrics.latencyEstimated).toBeUndefined();
    const deployed = JSON.parse(fs.readFileSync(path.join(home, 'artifacts', id, 'run-1', 'round-1', 'deployable', 'prunewise.json'), 'utf8'));
    expect(deployed.latencyMs.measured).toBe(true);
    expect(deployed.target).toBe('edge-box');
  }, 600_000);

  it('a profile target is estimated by its roofline, and says so', async () => {
    const home = tmpHome('profile');
    const env = cliEnv(home, inject('temporalAddress'));
    // a wide accuracy budget: the round must reach hardware-adapt (a rollback, which 2 000 images and
    // thread-timed shard sizes make possible, would leave it without latency metrics)
    const spec = writeSpec(home, { name: 'profile', model: 'lenet5', target: { name: 'raspberry-pi-4', batchSize: 8 }, constraints: { maxAccuracyDrop: 50 } });
    const r = await cli(env, ['run', spec, '--json']);
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout);
    expect(status.baseline.latencyEstimated).toBe(1);
    expect(status.baseline.latencyMsLocal).toBeGreaterThan(0);
    const m = status.runs[0].rounds[0].metrics;
    expect(m.latencyEstimated).toBe(1);
    expect(m.speedup).toBeGreaterThan(1); // a smaller model is estimated faster
    const deployed = JSON.parse(fs.readFileSync(path.join(home, 'artifacts', status.id, 'run-1', 'round-1', 'deployable', 'prunewise.json'), 'utf8'));
    expect(deployed.latencyMs).toMatchObject({ measured: false, model: 'roofline(raspberry-pi-4)' });
    const text = await cli(env, ['status', status.id]);
    expect(text.stdout).toContain('estimated: roofline');
    const pareto = await cli(env, ['pareto', status.id]);
    expect(pareto.stdout).toContain('latency: estimated (roofline of the target profile), not measured');
  }, 600_000);

  it('hardware-adapt measures on target.runtime (a headless Chromium page), whatever trained the model', async () => {
    const home = tmpHome('runtime');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, {
      name: 'runtime',
      target: { runtime: 'chromium-wasm', batchSize: 8, warmupRuns: 1, latencyRuns: 5, latencyBudgetSeconds: 2 },
      constraints: { maxAccuracyDrop: 50 },
    });
    const r = await cli(env, ['run', spec, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout);
    const training = status.backend;
    if (EXPECT_NATIVE) expect(training).toBe('tensorflow');
    const dir = path.join(home, 'artifacts', status.id);
    const deployed = JSON.parse(fs.readFileSync(path.join(dir, 'run-1', 'round-1', 'deployable', 'prunewise.json'), 'utf8'));
    expect(deployed.trainingBackend).toBe(training);
    expect(deployed.runtime).toMatchObject({ runtime: 'chromium-wasm', backend: 'wasm', tfjsVersion: '4.22.0', where: 'headless Chromium page' });
    expect(deployed.runtime.browser).toMatch(/^Chromium \d+/);
    expect(deployed.speedupVsBaseline.runtime).toEqual(deployed.runtime);
    expect(deployed.latencyMs.runtime).toEqual(deployed.runtime);
    expect(status.runs[0].rounds[0].metrics.latencyPairs).toBeGreaterThanOrEqual(5);
    // the baseline's median on the same runtime, and the latency table keyed by it
    const base = JSON.parse(fs.readFileSync(path.join(dir, 'baseline', 'latency.json'), 'utf8'));
    expect(base.runtime).toMatchObject({ runtime: 'chromium-wasm', backend: 'wasm' });
    expect(base.trainingBackend).toBe(training);
    expect(base.metrics.latencyMs).toBe(status.baseline.latencyMs);
    const table = JSON.parse(fs.readFileSync(path.join(dir, 'latency-table.json'), 'utf8'));
    expect(table.runtime).toBe('chromium-wasm');
  }, 600_000);

  it('an unknown target without measure: worker is refused before anything starts', async () => {
    const home = tmpHome('badtarget');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, { name: 'bad', target: { name: 'edge-box' } });
    const r = await cli(env, ['run', spec]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/target\.name: unknown target "edge-box": use local, a profile \(raspberry-pi-4, jetson-nano\), or set measure: worker/);
  });
});
