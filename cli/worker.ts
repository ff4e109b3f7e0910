// Starts workers: `campaigns` (workflows), `cpu` (compute activities) and `store-<home id>` (the
// SQLite writer of this home's database: the queue is named after the database's identity, so a
// worker of another home never records this one's campaigns). One process can serve all three.
// `gpu` (the training stages of campaigns with execution.trainOn: gpu) is served only with --gpu, on
// the CUDA build.
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createComputeActivities, createStoreActivities } from '../activities';
import { QUEUE_NAMES, targetQueue, taskQueues, type QueueName, type TaskQueues } from '../core';
import { hasLegacyStoreCampaigns, homeId, openDb } from '../db';
import { initBackend, nativeBuildInstalled, type BackendInfo } from '../ml';
import { graphModeSetting } from '../ml/train-graph';
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

/**
 * The environment a compute worker reads in every training stage (PRUNEWISE_TRAIN_GRAPH), checked
 * before anything starts: a bad value would otherwise fail each training stage on every attempt,
 * whatever the backend. @throws CliError naming the variable and the values it takes
 */
export function checkWorkerEnv(): void {
  try {
    graphModeSetting();
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/**
 * The queue names this process uses without a home's identity: `campaigns`, `cpu`, `gpu` (and the
 * legacy shared `store`). PRUNEWISE_TASK_QUEUE_PREFIX keeps separate pools of workers apart on one
 * cluster; a home's store queue is `homeQueues(home).store`.
 */
export const QUEUES: TaskQueues = taskQueues(process.env.PRUNEWISE_TASK_QUEUE_PREFIX);

/** JSON.stringify replacer: an Error's own fields are not enumerable (it would print `"error":{}`): name and first line. */
function errorsAsText(_key: string, value: unknown): unknown {
  return value instanceof Error ? `${value.name}: ${value.message.split('\n')[0]}` : value;
}

/** The queues of the home's database (created when missing): its store queue is `store-<home id>`. */
export function homeQueues(home: Home): TaskQueues & { homeId: string; legacyStore: boolean } {
  const db = openDb(home.db);
  try {
    const id = homeId(db);
    return { ...taskQueues(process.env.PRUNEWISE_TASK_QUEUE_PREFIX, id), homeId: id, legacyStore: hasLegacyStoreCampaigns(db) };
  } finally {
    db.close();
  }
}

let runtimeInstalled = false;
export function installRuntime(): void {
  if (runtimeInstalled) return;
  // quiet by default; shutdown on SIGINT/SIGTERM lets running activities hand back cleanly
  // (one Worker per queue by design: the "nothing registered here" notices are expected, so dropped)
  // the SDK's warnings (a completion for an activity that timed out meanwhile, with its task token …)
  // say nothing a user can act on: off unless PRUNEWISE_LOG_LEVEL asks (TRACE, DEBUG, INFO, WARN, ERROR)
  const asked = process.env.PRUNEWISE_LOG_LEVEL?.toUpperCase();
  const level = (['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'].includes(asked ?? '') ? asked : 'ERROR') as 'ERROR';
  const logger = new DefaultLogger(level, (entry) => {
    if (/^No (activities|workflows) registered/.test(entry.message)) return;
    if (!asked && /task ?token|taskToken/i.test(`${entry.message} ${entry.meta ? JSON.stringify(entry.meta) : ''}`)) return;
    process.stderr.write(
      `${new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString()} [${entry.level}] ${entry.message}${entry.meta ? ` ${JSON.stringify(entry.meta, errorsAsText)}` : ''}\n`,
    );
  });
  Runtime.install({
    logger,
    shutdownSignals: ['SIGINT', 'SIGTERM'],
    // the Rust core's own log lines follow the same level (forwarded through the logger above)
    telemetryOptions: { logging: { filter: { core: level, other: 'ERROR' }, forward: {} } },
  });
  runtimeInstalled = true;
}

export function workflowBundlePath(): string {
  const p = path.join(PACKAGE_ROOT, 'dist', 'workflow-bundle.js');
  if (!fs.existsSync(p)) throw new CliError(`${p} is missing: run \`npm run build\` first`);
  return p;
}

export interface WorkerSet {
  workers: Worker[];
  /** the task queues served */
  names: string[];
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
  checkWorkerEnv();
  installRuntime();
  // heartbeats reach the server at most every 2 s (the SDK's default throttle is 80 % of the
  // heartbeat timeout: 24 s with the default 30 s), so `status` shows progress within a stage that is current
  const common = {
    connection: opts.connection,
    namespace: opts.namespace,
    maxHeartbeatThrottleInterval: '2 seconds',
    defaultHeartbeatThrottleInterval: '2 seconds',
  };
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
      // this home's database only: its own queue, plus the shared legacy queue while campaigns submitted to it are unfinished
      const own = homeQueues(opts.home);
      const activities = createStoreActivities(opts.home.db, { store: opts.store });
      for (const taskQueue of [own.store, ...(own.legacyStore ? [QUEUES.store] : [])]) {
        workers.push(await Worker.create({ ...common, taskQueue, activities, maxConcurrentActivityTaskExecutions: 8 }));
      }
    }
  }
  return {
    workers,
    names: workers.map((w) => w.options.taskQueue),
    run: async () => {
      await Promise.all(workers.map((w) => w.run()));
    },
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
