// Task queue names: workflows, compute by hardware class, and the SQLite writer.
export const TASK_QUEUES = { workflows: 'campaigns', compute: 'cpu', store: 'store' } as const;
