// Full recomputes of a campaign's Pareto analysis off the store activity's thread: each runs
// refreshPareto in a worker thread with its own SQLite connection, so the store worker's event
// loop keeps turning (a full recompute at 50 000 candidates takes minutes: the exact 4-D
// hypervolume). One at a time per campaign; a request while one runs makes it run once more
// after. Requests are also counted in the database (pareto.pending_full), so a recompute lost to
// a crash is requested again by the next record of that campaign.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { requestFullRecompute, type Db } from '../db';
import { PACKAGE_ROOT } from '../platform/version';

/** Input of the worker thread (analysis/full-refresh-worker.ts). */
export interface FullRefreshJob {
  dbFile: string;
  campaignId: string;
}

function workerScript(): string {
  // compiled next to this file; from TypeScript sources (tests), the build output in dist/
  const here = path.join(__dirname, 'full-refresh-worker.js');
  if (fs.existsSync(here)) return here;
  const built = path.join(PACKAGE_ROOT, 'dist', 'analysis', 'full-refresh-worker.js');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\``);
  return built;
}

export class FullRefresher {
  private readonly running = new Map<string, { again: boolean; done: Promise<void> }>();

  /** `dbFile`: the SQLite file the worker threads open (the same one the caller writes). */
  constructor(private readonly dbFile: string) {}

  /** Owes `campaignId` a full recompute (counted in `db`) and starts one in a worker thread unless one runs. */
  request(db: Db, campaignId: string): void {
    requestFullRecompute(db, campaignId);
    const r = this.running.get(campaignId);
    if (r) r.again = true;
    else this.start(campaignId);
  }

  /** Resolves when no recompute runs (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private start(campaignId: string): void {
    const job: FullRefreshJob = { dbFile: this.dbFile, campaignId };
    const state = { again: false, done: Promise.resolve() };
    state.done = new Promise<void>((resolve) => {
      const w = new Worker(workerScript(), { workerData: job });
      w.on('error', (e) => console.error(`prunewise: full Pareto recompute of ${campaignId} failed (the next record requests it again): ${e.message}`));
      w.on('exit', () => {
        this.running.delete(campaignId);
        if (state.again) this.start(campaignId);
        resolve();
      });
    });
    this.running.set(campaignId, state);
  }
}
