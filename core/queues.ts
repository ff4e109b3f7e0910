// Task queue names, one name per queue: `campaigns` (workflows), `cpu` (compute stages),
// `store-<home id>` (the SQLite writer: one queue per database, named after its identity, so only
// the home that owns a database records into it), `gpu` (the training stages of campaigns with
// execution.trainOn: gpu, served only by `prunewise worker --gpu`), and `target-<device>`
// (hardware-adapt measured on a device). A prefix (env PRUNEWISE_TASK_QUEUE_PREFIX, read by the CLI)
// keeps separate pools of workers apart on one cluster: the key of each queue is its name without
// the prefix. Campaigns submitted before the database had an identity carry the shared `store`.

export const QUEUE_NAMES = ['campaigns', 'cpu', 'store', 'gpu'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** The queue names with the prefix applied, keyed by their unprefixed names. */
export type TaskQueues = Record<QueueName, string>;

/**
 * The queue names with `prefix`; `homeId` (db/read.ts homeId) names the store queue of that home's
 * database (`store-<home id>`), without it the shared legacy `store` queue.
 */
export function taskQueues(prefix?: string, homeId?: string): TaskQueues {
  const p = prefix ? `${prefix}-` : '';
  return { campaigns: `${p}campaigns`, cpu: `${p}cpu`, store: `${p}store${homeId ? `-${homeId}` : ''}`, gpu: `${p}gpu` };
}

/**
 * Workflow inputs written before the queues had one name each carried `{ workflows, compute, store }`,
 * and those written before the gpu queue had no `gpu`: campaigns in flight keep working (pure: safe
 * to call in a workflow).
 */
export function normaliseQueues(q: TaskQueues | Omit<TaskQueues, 'gpu'> | { workflows: string; compute: string; store: string }): TaskQueues {
  const named: Omit<TaskQueues, 'gpu'> & { gpu?: string } = 'cpu' in q ? q : { campaigns: q.workflows, cpu: q.compute, store: q.store };
  return { ...named, gpu: named.gpu ?? `${named.cpu.slice(0, -'cpu'.length)}gpu` };
}

/** The queue a device's worker serves (`prunewise worker --target <name>`): hardware-adapt runs there. */
export function targetQueue(queues: TaskQueues, target: string): string {
  return `${queues.cpu.slice(0, -'cpu'.length)}target-${target}`;
}
