// Starts workers: `campaigns` (workflows), `cpu` (compute activities) and `store` (the SQLite
// writer, served only where the database file lives). One process can serve all three.
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createComputeActivities, createStoreActivities } from '../activities';
import { QUEUE_NAMES, targetQueue, taskQueues, type QueueName, type TaskQueues } from '../core';
import { PACKAGE_ROOT } from '../platform/version';
import type { Home } from './home';
import { CliError } from './temporal';

export type { QueueName };
export const ALL_QUEUES: QueueName[] = [...QUEUE_NAMES];

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
  queues: QueueName[];
  concurrency: number;
  device?: string;
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
        activities: createComputeActivities(opts.home.dir),
        maxConcurrentActivityTaskExecutions: 1,
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
          activities: createComputeActivities(opts.home.dir),
          // tfjs computes on this thread: more than one stage at a time only interleaves them
          maxConcurrentActivityTaskExecutions: opts.concurrency,
        }),
      );
    } else {
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
