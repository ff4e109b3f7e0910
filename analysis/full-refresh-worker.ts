// Worker-thread entry of FullRefresher: one full recompute of one campaign, with its own connection.
import { workerData } from 'node:worker_threads';
import { openDb } from '../db';
import { refreshPareto } from './pareto';
import type { FullRefreshJob } from './full-refresh';

const job = workerData as FullRefreshJob;
const db = openDb(job.dbFile);
try {
  refreshPareto(db, job.campaignId);
} finally {
  db.close();
}
