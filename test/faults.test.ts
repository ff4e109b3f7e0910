// Faults end in a clear state: one owner of each database (a second home's store worker refuses a
// campaign it does not hold; its store queue is another one), `cancel` / `rm` reconcile SQLite with
// Temporal, a damaged database is reported (CLI: one line, exit 1; dashboard: an error page on every
// page), `backup` makes one whole file, `export --out` never writes into a non-empty folder or the
// home's artifacts. Real SQLite files, the real CLI and the shared real Temporal dev server.
import { Client, Connection } from '@temporalio/client';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { createStoreActivities, NotOwnerError } from '../activities/store';
import { checkOutDir } from '../cli/export';
import { resolveHome } from '../cli/home';
import { applyRecord, campaignStatus, createCampaign, homeId, openDb, type Db } from '../db';
import { cli, cliEnv, serveDashboard, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

const openRows = (db: Db, id: string) =>
  db.prepare(`SELECT COUNT(*) FROM stages WHERE run_id LIKE ? AND state IN ('running', 'pending', 'paused')`).pluck().get(`${id}/%`) as number;

/** A campaign in SQLite that says `running` with a stage running, as if a workflow drove it (it never ran in Temporal). */
function fakeRunning(db: Db, id: string): void {
  createCampaign(db, { id, name: 'ghost', spec: {}, specHash: 'h', specFile: 'ghost.yaml', seed: 1 });
  applyRecord(db, [
    { op: 'campaign', campaignId: id, state: 'running' },
    { op: 'run', campaignId: id, runId: `${id}/baseline`, k: 0, kind: 'baseline', weights: null, state: 'running' },
    { op: 'stage', runId: `${id}/baseline`, round: 0, stage: 'baseline', state: 'running', taskQueue: 'x-cpu' },
  ]);
}

describe('one owner of each database', () => {
  it('each database has its own identity; the store activity of another home refuses a campaign it does not hold and writes nothing', async () => {
    const a = tmpHome('owner-a');
    const b = tmpHome('owner-b');
    const dbA = openDb(path.join(a, 'prunewise.db'));
    const dbB = openDb(path.join(b, 'prunewise.db'));
    expect(homeId(dbA)).toMatch(/^[0-9a-f]{12}$/);
    expect(homeId(dbA)).not.toBe(homeId(dbB));
    expect(homeId(openDb(path.join(a, 'prunewise.db')))).toBe(homeId(dbA)); // stable across opens
    createCampaign(dbA, { id: 'mine', name: 'mine', spec: {}, specHash: 'h', specFile: 'f', seed: 1 });
    const ops = [
      { op: 'campaign' as const, campaignId: 'mine', state: 'completed' as const },
      { op: 'event' as const, campaignId: 'mine', key: 'mine/completed', kind: 'completed', message: 'done' },
      { op: 'stage' as const, runId: 'mine/baseline', round: 0, stage: 'baseline' as const, state: 'completed' as const },
    ];
    const logs: string[] = [];
    const storeB = createStoreActivities(path.join(b, 'prunewise.db'), { log: (s) => logs.push(s) });
    await expect(storeB.record(ops)).rejects.toThrow(NotOwnerError);
    await expect(storeB.record(ops)).rejects.toThrow(/campaign mine is not in .*prunewise\.db \(home id [0-9a-f]{12}\): this worker does not own its database/);
    expect(logs).toHaveLength(1); // one line per refused campaign, not one per attempt
    expect(dbB.prepare(`SELECT COUNT(*) FROM events`).pluck().get()).toBe(0);
    // a stage op alone names its campaign through the run id
    await expect(storeB.record([ops[2]])).rejects.toThrow(NotOwnerError);
    await createStoreActivities(path.join(a, 'prunewise.db')).record(ops.slice(0, 2));
    expect(campaignStatus(dbA, 'mine')!.state).toBe('completed');
    // the campaign ended: the write-ahead log was checkpointed into the .db file
    expect(fs.statSync(path.join(a, 'prunewise.db-wal')).size).toBe(0);
  });

  it('a second home serving store on the same server and prefix never records the campaign; compute on it does, the owner records', async () => {
    const a = tmpHome('home-a');
    const b = tmpHome('home-b');
    const envA = cliEnv(a, inject('temporalAddress'));
    const envB = { ...cliEnv(b, inject('temporalAddress')), queuePrefix: envA.queuePrefix }; // same cluster, same prefix
    const workerB = startCli(envB, ['worker']); // campaigns, cpu and its own store
    let workerA: ReturnType<typeof startCli> | undefined;
    try {
      await waitFor('worker B to poll', () => /serving .*store-[0-9a-f]{12}/.test(workerB.err()), 60_000);
      const id = (
        await cli(envA, ['run', writeSpec(a, { name: 'owned', pruning: { rounds: 1, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64 } }), '--detach'])
      ).stdout
        .trim()
        .split('\n')
        .at(-1)!;
      const dbA = openDb(path.join(a, 'prunewise.db'));
      // B runs the workflow and the baseline, but nothing reaches A's database until a worker of A serves its store queue
      await new Promise((r) => setTimeout(r, 4000));
      expect(campaignStatus(dbA, id)!.state).toBe('pending');
      const st = await cli(envA, ['status', id]);
      expect(st.stdout).toMatch(
        new RegExp(
          `waiting for queue ${envA.queuePrefix}-store-${homeId(dbA)}: no worker of this home records results \\(start \`[^\`]*prunewise worker --home ${a}\`\\)`,
        ),
      );
      workerA = startCli(envA, ['worker', '--queues', 'store']);
      await waitFor('the campaign to complete in A', () => campaignStatus(dbA, id)!.state === 'completed', 240_000, 500);
      const dbB = openDb(path.join(b, 'prunewise.db'));
      expect(dbB.prepare(`SELECT COUNT(*) FROM campaigns`).pluck().get()).toBe(0);
      expect(dbB.prepare(`SELECT COUNT(*) FROM events`).pluck().get()).toBe(0);
      expect(campaignStatus(dbA, id)!.runs[0].rounds[0].stages.finetune.state).toBe('completed');
    } finally {
      await stop(workerB);
      if (workerA) await stop(workerA);
    }
  }, 300_000);
});

describe('cancel and rm reconcile SQLite with Temporal', () => {
  const home = tmpHome('reconcile');
  const env = cliEnv(home, inject('temporalAddress'));

  it('a campaign no worker ever started: status says what it waits for; cancel ends it (Temporal and SQLite) with the reason', async () => {
    const id = (await cli(env, ['run', writeSpec(home, { name: 'unstarted' }), '--detach'])).stdout.trim().split('\n').at(-1)!;
    const db = openDb(path.join(home, 'prunewise.db'));
    expect(campaignStatus(db, id)!.state).toBe('pending');
    const st = await cli(env, ['status', id]);
    expect(st.stdout).toMatch(
      new RegExp(
        `no worker serves campaign ${id} \\((nothing polls task queue|its task has waited \\d+ s in task queue) ${env.queuePrefix}-campaigns\\): start one with \`[^\`]*prunewise worker --home ${home}\``,
      ),
    );
    const c = await cli(env, ['cancel', id]);
    expect(c.code).toBe(0);
    expect(c.stderr.trim()).toBe(`campaign ${id} cancelled: cancelled before any worker started it (no worker served ${env.queuePrefix}-campaigns)`);
    expect(campaignStatus(db, id)).toMatchObject({ state: 'cancelled', error: expect.stringContaining('before any worker started it') });
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    expect((await new Client({ connection }).workflow.getHandle(id).describe()).status.name).toBe('TERMINATED');
    await connection.close();
    expect((await cli(env, ['rm', id])).code).toBe(0);
  }, 120_000);

  it('a campaign Temporal does not know: status reports the mismatch with the fix, cancel records it cancelled, its stage rows end', async () => {
    const db = openDb(path.join(home, 'prunewise.db'));
    fakeRunning(db, 'ghost-1');
    const st = await cli(env, ['status', 'ghost-1']);
    expect(st.stderr).toBe('');
    expect(st.code).toBe(0);
    expect(st.stdout).toContain(
      `mismatch: this database says running, but the Temporal server at ${inject('temporalAddress')} does not know workflow ghost-1: \`TEMPORAL_ADDRESS=${inject('temporalAddress')} PRUNEWISE_TASK_QUEUE_PREFIX=${env.queuePrefix} prunewise cancel ghost-1 --home ${home}\` records it as cancelled`,
    );
    expect(campaignStatus(db, 'ghost-1')!.state).toBe('running'); // status only reports
    const c = await cli(env, ['cancel', 'ghost-1']);
    expect(c.code).toBe(0);
    expect(c.stderr).toMatch(/^campaign ghost-1 cancelled: the Temporal server at \S+ does not know workflow ghost-1/);
    const s = campaignStatus(db, 'ghost-1')!;
    expect(s.state).toBe('cancelled');
    expect(s.error).toContain('does not know workflow ghost-1');
    expect(openRows(db, 'ghost-1')).toBe(0);
    expect(s.baselineStage!.state).toBe('cancelled');
  }, 60_000);

  it('rm of a campaign Temporal does not know records why, then deletes it', async () => {
    const db = openDb(path.join(home, 'prunewise.db'));
    fakeRunning(db, 'ghost-2');
    const r = await cli(env, ['rm', 'ghost-2']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('campaign ghost-2 recorded as cancelled: the Temporal server at');
    expect(r.stderr).toContain('removed campaign ghost-2');
    expect(campaignStatus(db, 'ghost-2')).toBeUndefined();
  }, 60_000);

  it('a run cancelled or failed closes its open stage and round rows (the workflow records no stage end when cancelled)', () => {
    const db = openDb(path.join(tmpHome('rows'), 'p.db'));
    fakeRunning(db, 'c');
    applyRecord(db, [
      { op: 'run', campaignId: 'c', runId: 'c/run-1', k: 1, kind: 'run', weights: { accuracy: 1 }, state: 'running' },
      { op: 'round', runId: 'c/run-1', round: 1, state: 'running' },
      { op: 'stage', runId: 'c/run-1', round: 1, stage: 'score', state: 'completed' },
      { op: 'stage', runId: 'c/run-1', round: 1, stage: 'prune', state: 'running' },
    ]);
    applyRecord(db, [{ op: 'run', campaignId: 'c', runId: 'c/run-1', k: 1, kind: 'run', weights: { accuracy: 1 }, state: 'cancelled' }]);
    const s = campaignStatus(db, 'c')!;
    expect(s.runs[0].rounds[0]).toMatchObject({ state: 'cancelled', stages: { score: { state: 'completed' }, prune: { state: 'cancelled' } } });
    expect(s.baselineStage!.state).toBe('running'); // another run: untouched
    applyRecord(db, [{ op: 'campaign', campaignId: 'c', state: 'cancelled' }]);
    expect(openRows(db, 'c')).toBe(0);
    expect(campaignStatus(db, 'c')!.runs.map((r) => r.state)).toEqual(['cancelled']);
  });
});

describe('a damaged database is reported, not answered with nothing', () => {
  /** A home whose database has a garbage last page (as after a torn write). */
  function damagedHome(at: { page?: number } = {}): string {
    const home = tmpHome('damaged');
    const file = path.join(home, 'prunewise.db');
    const db = openDb(file);
    for (let i = 0; i < 40; i++) {
      createCampaign(db, { id: `c-${i}`, name: 'c', spec: { pad: 'x'.repeat(400) }, specHash: 'h', specFile: 'f', seed: 1 });
      applyRecord(db, [{ op: 'event', campaignId: `c-${i}`, key: `k${i}`, kind: 'x', message: 'm'.repeat(300) }]);
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, at.page === undefined ? size - 4096 : at.page * 4096);
    fs.closeSync(fd);
    return home;
  }

  it('status, ls and pareto exit 1 with one line naming the file and the fix', async () => {
    const home = damagedHome();
    const env = cliEnv(home, inject('temporalAddress'));
    // a page of a table's tree: quick_check names the tree and page (SQLite's report spans lines), still one line here
    const middle = damagedHome({ page: 4 });
    const m = await cli(cliEnv(middle, inject('temporalAddress')), ['ls']);
    expect(m.code).toBe(1);
    expect(m.stderr.trim().split('\n')).toHaveLength(1);
    expect(m.stderr).toMatch(/is damaged \(PRAGMA quick_check: (Tree \d+ page \d+: btreeInitPage\(\) returns error code 11|database disk image is malformed)/);
    for (const args of [['status', 'c-1'], ['ls'], ['pareto', 'c-1'], ['backup', path.join(home, 'copy.db')]]) {
      const r = await cli(env, args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([
        `prunewise: ${path.join(home, 'prunewise.db')} is damaged (PRAGMA quick_check: database disk image is malformed): restore a copy made by \`prunewise backup\`, or move it aside to start a new home`,
      ]);
    }
  }, 60_000);

  it('the dashboard answers every page with an error page saying so (503), never a 500', async () => {
    const home = damagedHome();
    const db = openDb(path.join(home, 'prunewise.db'));
    const d = await serveDashboard(db, { homeDir: home });
    try {
      for (const p of ['/', '/campaigns/c-1', '/campaigns/c-1/runs', '/campaigns/c-1/runs.csv', '/campaigns/c-1/tradeoff', '/campaigns/c-1/parallel']) {
        const r = await fetch(d.base + p);
        expect(r.status, p).toBe(503);
        expect(await r.text(), p).toContain('is damaged (PRAGMA quick_check: database disk image is malformed)');
      }
    } finally {
      await d.close();
    }
  });
});

describe('results you can copy', () => {
  it('backup writes one whole, checked file while the database has unmerged log pages; never overwrites', async () => {
    const home = tmpHome('backup');
    const db = openDb(path.join(home, 'prunewise.db'));
    fakeRunning(db, 'b-1');
    expect(fs.statSync(path.join(home, 'prunewise.db-wal')).size).toBeGreaterThan(0); // the rows are in the log so far
    const env = cliEnv(home, inject('temporalAddress'));
    const out = path.join(home, 'copies', 'results.db');
    const r = await cli(env, ['backup', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^backed up .*prunewise\\.db to ${out}: \\d+ bytes, 1 campaign\\(s\\), quick_check ok`));
    expect(fs.existsSync(`${out}-wal`)).toBe(false);
    const copy = openDb(out);
    expect(campaignStatus(copy, 'b-1')!.baselineStage!.state).toBe('running');
    expect(homeId(copy)).toBe(homeId(db));
    copy.close();
    const again = await cli(env, ['backup', out]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`prunewise: backup: ${out} exists: give a new file name (a backup never overwrites)`);
  }, 60_000);

  it('export --out: only a new or empty folder outside the home artifacts', () => {
    const home = resolveHome(tmpHome('export-out'));
    fs.mkdirSync(path.join(home.artifacts, 'c', 'run-1'), { recursive: true });
    const full = path.join(home.dir, 'mine');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'notes.txt'), 'keep me');
    fs.writeFileSync(path.join(full, 'model.json'), '{}'); // even an earlier export: never replaced
    expect(() => checkOutDir(home, full)).toThrow(`--out: ${full} is not empty: give a new or empty folder (an export never deletes or replaces files)`);
    expect(() => checkOutDir(home, path.join(home.artifacts, 'c', 'run-1', 'x'))).toThrow(/is inside \(or holds\) the home's artifacts/);
    expect(() => checkOutDir(home, home.dir)).toThrow(/is inside \(or holds\) the home's artifacts/);
    fs.symlinkSync(path.join(home.artifacts, 'c'), path.join(home.dir, 'link'));
    expect(() => checkOutDir(home, path.join(home.dir, 'link', 'new'))).toThrow(/is inside \(or holds\) the home's artifacts/);
    fs.writeFileSync(path.join(home.dir, 'afile'), 'x');
    expect(() => checkOutDir(home, path.join(home.dir, 'afile'))).toThrow(/is a file/);
    fs.mkdirSync(path.join(home.dir, 'empty'));
    expect(() => checkOutDir(home, path.join(home.dir, 'empty'))).not.toThrow();
    expect(() => checkOutDir(home, path.join(home.dir, 'new', 'deeper'))).not.toThrow();
    expect(fs.readFileSync(path.join(full, 'notes.txt'), 'utf8')).toBe('keep me');
  });
});
