// Task queue names: workflows, compute by hardware class, and the SQLite writer. A prefix
// (env PRUNEWISE_TASK_QUEUE_PREFIX, read by the CLI) keeps several homes apart on one cluster.
export interface TaskQueues {
  workflows: string;
  compute: string;
  store: string;
}

export function taskQueues(prefix?: string): TaskQueues {
  const p = prefix ? `${prefix}-` : '';
  return { workflows: `${p}campaigns`, compute: `${p}cpu`, store: `${p}store` };
}

/** The queue a device's worker serves (`prunewise worker --target <name>`): hardware-adapt runs there. */
export function targetQueue(queues: TaskQueues, target: string): string {
  return `${queues.compute.slice(0, -'cpu'.length)}target-${target}`;
}
