// Starts workers: `campaigns` (workflows), `cpu` (compute activities) and `store` (the SQLite
// writer, served only where the database file lives). One process can serve all three. `gpu` (the
// training stages of campaigns with execution.trainOn: gpu) is served only with --gpu, on the CUDA build.
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createComputeActivities, createStoreActivities } from '../activities';
import { QUEUE_NAMES, targetQueue, taskQueues, type QueueName, type TaskQueues } from '../core';
import { initBackend, nativeBuildInstalled, type BackendInfo } from '../ml';
import { PACKAGE_ROOT } from '../platform/version';
import type { ArtifactStore } from '../blobstore';
import type { Home } from './home';
import { CliError } from './temporal';

export type { QueueName };
/** The queues a worker serves by default (`run` serves them in process): every one but gpu, which needs --gpu. */
export const ALL_QUEUES: QueueName[] = QUEUE_NAMES.filter((q) => q !== 'gpu');

export const NO_CUDA_BUILD = '--gpu: the CUDA build of tfjs-node is not installed here (scripts/setup-native.sh installs it where nvidia-smi answers)';

/**
 * `worker --gpu` starts only on the tensorflow-gpu backend (PRUNEWISE_BACKEND=tensorflow-gpu semantics:
 * an error, never a fallback). FOR TESTS ONLY: PRUNEWISE_GPU_WORKER_BACKEND=<backend> (e.g. tensorflow)
 * lets it serve the gpu queue on that backend on a machine without CUDA; it says so on stderr.
 */
export async function requireGpuBackend(log: (s: string) => void): Promise<BackendInfo> {
  const mock = process.env.PRUNEWISE_GPU_WORKER_BACKEND;
  if (mock) {
    log(`--gpu: PRUNEWISE_GPU_WORKER_BACKEND=${mock} (for tests only): the gpu queue is served on ${mock}, not on CUDA`);
    return initBackend(mock).catch((e: Error) => {
      throw new CliError(`--gpu: PRUNEWISE_GPU_WORKER_BACKEND=${mock} does not start: ${e.message.split('\n')[0]}`);
    });
  }
  if (!nativeBuildInstalled('tensorflow-gpu')) throw new CliError(NO_CUDA_BUILD);
  return initBackend('tensorflow-gpu').catch((e: Error) => {
    throw new CliError(`--gpu: the CUDA build of tfjs-node is installed but does not start here: ${e.message.split('\n')[0]}`);
  });
}

/** The queue names this process uses (PRUNEWISE_TASK_QUEUE_PREFIX keeps homes apart on one cluster). */
export const QUEUES: TaskQueues = taskQueues(process.env.PRUNEWISE_TASK_QUEUE_PREFIX);

let runtimeInstalled = false;
export function installRuntime(): void {
  if (runtimeInstalled) return;
  // quiet by default; shutdown on SIGINT/SIGTERM lets running activities hand back cleanly
  // (one Worker per queue by design: the "nothing registered here" notices are expected, so dropped)
  const logger = new DefaultLogger((process.env.PRUNEWISE_LOG_LEVEL as 'WARN') ?? 'WARN', (entry) => {
    if (/^No (activities|workflows) registered/.test(entry.message)) return;
    process.stderr.write(
      `${new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString()} [${entry.level}] ${entry.message}${entry.meta ? ` ${JSON.stringify(entry.meta)}` : ''}\n`,
    );
  });
  Runtime.install({ logger, shutdownSignals: ['SIGINT', 'SIGTERM'] });
  runtimeInstalled = true;
}

export function workflowBundlePath(): string {
  const p = path.join(PACKAGE_ROOT, 'dist', 'workflow-bundle.js');
  if (!fs.existsSync(p)) throw new CliError(`${p} is missing: run \`npm run build\` first`);
  return p;
}

export interface WorkerSet {
  workers: Worker[];
  run(): Promise<void>;
  shutdown(): void;
}

export async function createWorkers(opts: {
  connection: NativeConnection;
  namespace: string;
  home: Home;
  /** the artifact store (blobstore/): compute and device workers fetch and publish through it */
  store: ArtifactStore;
  queues: QueueName[];
  concurrency: number;
  device?: string;
  /** serve the gpu queue too (the caller checked the backend: requireGpuBackend) */
  gpu?: boolean;
}): Promise<WorkerSet> {
  installRuntime();
  const common = { connection: opts.connection, namespace: opts.namespace };
  const workers: Worker[] = [];
  if (opts.device) {
    // a device's worker: measures the hardware-adapt stage of campaigns that target it
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: targetQueue(QUEUES, opts.device),
        activities: createComputeActivities(opts.home.dir, opts.store),
        maxConcurrentActivityTaskExecutions: 1,
      }),
    );
  }
  if (opts.gpu) {
    // the training stages of campaigns with execution.trainOn: gpu
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: QUEUES.gpu,
        activities: createComputeActivities(opts.home.dir, opts.store),
        maxConcurrentActivityTaskExecutions: opts.concurrency,
      }),
    );
  }
  for (const q of opts.queues) {
    if (q === 'campaigns') {
      workers.push(
        await Worker.create({ ...common, taskQueue: QUEUES.campaigns, workflowBundle: { codePath: workflowBundlePath() }, maxCachedWorkflows: 200 }),
      );
    } else if (q === 'cpu') {
      workers.push(
        await Worker.create({
          ...common,
          taskQueue: QUEUES.cpu,
          activities: createComputeActivities(opts.home.dir, opts.store),
          // tfjs computes on this thread: more than one stage at a time only interleaves them
          maxConcurrentActivityTaskExecutions: opts.concurrency,
        }),
      );
    } else if (q === 'store') {
      workers.push(
        await Worker.create({ ...common, taskQueue: QUEUES.store, activities: createStoreActivities(opts.home.db), maxConcurrentActivityTaskExecutions: 8 }),
      );
    }
  }
  return {
    workers,
    run: async () => {
      await Promise.all(workers.map((w) => w.run()));
    },
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
