// `prunewise worker --gpu` as a user starts it. These machines have no GPU and no CUDA build of
// tfjs-node: the refusal is what is tested for real; serving the gpu queue is tested only with the
// FOR-TESTS-ONLY override PRUNEWISE_GPU_WORKER_BACKEND (the GPU is mocked by a CPU backend).
// Routing of the training stages to the gpu queue: test/workflows.test.ts (stubbed activities).
import { Connection } from '@temporalio/client';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NO_CUDA_BUILD } from '../cli/worker';
import { nativeBuildInstalled } from '../ml/backend';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

const cudaBuild = nativeBuildInstalled('tensorflow-gpu');
// the CPU backend that stands in for the GPU: native TensorFlow where it is built, else wasm
const MOCK_BACKEND = nativeBuildInstalled('tensorflow') ? 'tensorflow' : 'wasm';

let connection: Connection;
beforeAll(async () => {
  delete process.env.PRUNEWISE_GPU_WORKER_BACKEND;
  connection = await Connection.connect({ address: inject('temporalAddress') });
});
afterAll(async () => {
  await connection?.close();
});

const pollers = async (queue: string) =>
  (await connection.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: queue, kind: 1 }, taskQueueType: 2 })).pollers ?? [];

describe('prunewise worker --gpu', () => {
  it.runIf(!cudaBuild)('no CUDA build here (no GPU): fails with the one line, before anything starts (no home, no server)', async () => {
    const home = path.join(tmpHome('gpu'), 'not-created');
    const env = cliEnv(home, inject('temporalAddress'));
    const r = await cli(env, ['worker', '--gpu'], 60_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`prunewise: ${NO_CUDA_BUILD}\n`);
    expect(fs.existsSync(home)).toBe(false);
  });

  it('the gpu queue is not among the default queues, and --queues gpu points at --gpu', async () => {
    const env = cliEnv(tmpHome('gpu'), inject('temporalAddress'));
    const r = await cli(env, ['worker', '--queues', 'cpu,gpu'], 60_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/the gpu queue is served with --gpu/);
  });

  it(`GPU absent, mocked for tests only (PRUNEWISE_GPU_WORKER_BACKEND=${MOCK_BACKEND}): the worker polls the gpu queue and only it, and says it is not on CUDA`, async () => {
    const env = cliEnv(tmpHome('gpu'), inject('temporalAddress'));
    process.env.PRUNEWISE_GPU_WORKER_BACKEND = MOCK_BACKEND; // startCli passes process.env on
    const child = startCli(env, ['worker', '--gpu']);
    delete process.env.PRUNEWISE_GPU_WORKER_BACKEND;
    try {
      await waitFor('a poller on the gpu queue', async () => (await pollers(`${env.queuePrefix}-gpu`)).length > 0, 120_000);
      expect(await pollers(`${env.queuePrefix}-cpu`)).toEqual([]);
      expect(await pollers(`${env.queuePrefix}-store`)).toEqual([]);
      expect(child.err()).toContain(`PRUNEWISE_GPU_WORKER_BACKEND=${MOCK_BACKEND} (for tests only): the gpu queue is served on ${MOCK_BACKEND}, not on CUDA`);
      expect(child.err()).toMatch(new RegExp(`serving ${env.queuePrefix}-gpu on `));
    } finally {
      await stop(child, 'SIGINT');
    }
  });

  it(`a trainOn: gpu campaign end to end, GPU absent and mocked for tests only (PRUNEWISE_GPU_WORKER_BACKEND=${MOCK_BACKEND}): the baseline waits, status names the gpu queue, then a mocked gpu worker trains baseline and finetune`, async () => {
    const home = tmpHome('gpu-e2e');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, { name: 'gpu', execution: { heartbeatTimeoutSeconds: 5, trainOn: 'gpu' }, constraints: { maxAccuracyDrop: 50 } });
    const submitted = await cli(env, ['run', spec, '--detach']);
    expect(submitted.stderr).toContain(`execution.trainOn: gpu: baseline and finetune run on queue ${env.queuePrefix}-gpu`);
    const id = submitted.stdout.trim().split('\n').at(-1)!;
    const worker = startCli(env, ['worker']); // campaigns, cpu, store: never gpu
    try {
      const waiting = await waitFor('the baseline to wait for the gpu queue', async () => {
        const s = await cli(env, ['status', id]);
        return (
          // the printed command carries the endpoint environment and the home (it works pasted anywhere)
          s.stdout.includes(
            `waiting for queue ${env.queuePrefix}-gpu: no worker serves it (start \`TEMPORAL_ADDRESS=${env.temporalAddress} PRUNEWISE_TASK_QUEUE_PREFIX=${env.queuePrefix} prunewise worker --gpu --home ${home}\` on a machine with CUDA)`,
          ) && s.stdout
        );
      });
      expect(waiting).not.toContain(`waiting for queue ${env.queuePrefix}-cpu`);
      process.env.PRUNEWISE_GPU_WORKER_BACKEND = MOCK_BACKEND;
      const gpu = startCli(env, ['worker', '--gpu']);
      delete process.env.PRUNEWISE_GPU_WORKER_BACKEND;
      try {
        await waitFor('the campaign to end', async () => ['completed', 'failed'].includes(JSON.parse((await cli(env, ['status', id, '--json'])).stdout).state));
      } finally {
        await stop(gpu);
      }
    } finally {
      await stop(worker);
    }
    const status = JSON.parse((await cli(env, ['status', id, '--json'])).stdout);
    expect(status.state).toBe('completed');
    expect(status.backend).toBe(MOCK_BACKEND); // the baseline ran on the (mocked) gpu worker
    const stages = status.runs[0].rounds[0].stages;
    expect(stages.finetune.taskQueue).toBe(`${env.queuePrefix}-gpu`);
    for (const name of ['score', 'prune', 'validate']) expect(stages[name].taskQueue, name).toBe(`${env.queuePrefix}-cpu`);
    expect((await cli(env, ['status', id])).stdout).toMatch(new RegExp(`finetune ✓ on ${env.queuePrefix}-gpu`));
  }, 600_000);
});
