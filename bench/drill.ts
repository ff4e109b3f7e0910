// drill:faults — faults injected into real campaigns through the real CLI (not in `.ci/run`; short
// retry settings): kill -9 of each worker role, the Temporal server killed, a store outage past the
// old retry budget (30 attempts), a full disk (a small tmpfs; needs root), a truncated artifact, a
// corrupt database, a second home serving `store`, a second machine without a shared disk. Each must
// end completed with nothing lost, or failed with one clear line and a recoverable state.
// Env: DRILL_TRIES (default 1) tries per case; DRILL_ONLY=name,name runs only those cases.
// For the second home and the second machine both homes share one artifact store: PRUNEWISE_ARTIFACTS
// (and the AWS_* variables) when set, else an S3-compatible server (versitygw from .venv/bin, as the
// tests start it) that the drill starts on a free loopback port and stops at the end.
// Prints a table (what was tried, tries, outcome, data lost), then one JSON line.
import Database from 'better-sqlite3';
import { Client, Connection } from '@temporalio/client';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { campaignStatus, openDb, type Db } from '../db';
import { startS3Server, type S3Server } from '../test/s3-server';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'prunewise.js');
const TRIES = Number(process.env.DRILL_TRIES ?? 1);
const ONLY = process.env.DRILL_ONLY?.split(',');
const RUNS = 2;

let s3: S3Server | undefined;
/** The environment of a shared artifact store: the caller's PRUNEWISE_ARTIFACTS, else a versitygw started here. */
async function sharedStore(prefix: string): Promise<{ env: NodeJS.ProcessEnv; label: string }> {
  if (process.env.PRUNEWISE_ARTIFACTS) return { env: {}, label: `artifact store ${process.env.PRUNEWISE_ARTIFACTS}` };
  process.env.PRUNEWISE_VERSITYGW ??= path.join(ROOT, '.venv', 'bin', 'versitygw');
  s3 ??= await startS3Server('prunewise-drill');
  const env = s3.env(prefix);
  return { env, label: `artifact store ${env.PRUNEWISE_ARTIFACTS} (versitygw)` };
}
const ROUNDS = 2;

type Proc = ChildProcess & { err: () => string; out: () => string };

interface Home {
  dir: string;
  env: NodeJS.ProcessEnv;
  procs: Proc[];
}

function newHome(tag: string, base = os.tmpdir(), extra: NodeJS.ProcessEnv = {}): Home {
  const dir = fs.mkdtempSync(path.join(base, `pw-drill-${tag}-`));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PRUNEWISE_HOME: dir,
    PRUNEWISE_TASK_QUEUE_PREFIX: `drill${process.pid}${crypto.randomBytes(2).toString('hex')}`,
    PRUNEWISE_STORE_RETRY_MAX_MS: '200', // short retry settings: many store attempts in seconds
    ...extra,
  };
  delete env.TEMPORAL_ADDRESS;
  if (extra.TEMPORAL_ADDRESS) env.TEMPORAL_ADDRESS = extra.TEMPORAL_ADDRESS;
  return { dir, env, procs: [] };
}

function start(h: Home, args: string[], env: NodeJS.ProcessEnv = h.env): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  child.stdout!.on('data', (d: Buffer) => (out += d));
  const p = Object.assign(child, { err: () => err, out: () => out });
  h.procs.push(p);
  return p;
}

const exited = (c: ChildProcess) =>
  new Promise<number>((r) => (c.exitCode !== null || c.signalCode !== null ? r(c.exitCode ?? 137) : c.on('exit', (code) => r(code ?? 137))));

async function cli(h: Home, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  const p = start(h, args, env);
  const code = await exited(p);
  return { code, out: p.out(), err: p.err() };
}

async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 300_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** model.json files in a home's own artifact copies: > 0 when a worker of that home ran compute stages. */
const modelsIn = (h: Home): number => {
  const dir = path.join(h.dir, 'artifacts');
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => path.basename(f) === 'model.json').length : 0;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lastLine = (s: string) =>
  s
    .split('\n')
    .filter((l) => l.trim() && !/^I0000|^WARNING: All log/.test(l))
    .at(-1) ?? '';

async function submit(h: Home, overrides: object = {}): Promise<string> {
  const file = path.join(h.dir, 'drill.yaml');
  fs.writeFileSync(
    file,
    stringify({
      name: 'drill',
      seed: 7,
      model: 'mlp',
      dataset: { name: 'mnist', trainLimit: 4000, testLimit: 500 },
      baseline: { epochs: 1, batchSize: 64 },
      weights: [
        { accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 },
        { accuracy: 0.3, size: 0.4, latency: 0.3, energy: 0 },
      ].slice(0, RUNS),
      pruning: { rounds: ROUNDS, stepRatio: 0.3, finetuneEpochs: 3, batchSize: 64 },
      target: { batchSize: 16, warmupRuns: 1, latencyRuns: 5, latencyBudgetSeconds: 2 },
      execution: { heartbeatTimeoutSeconds: 5 },
      ...overrides,
    }),
  );
  const r = await cli(h, ['run', file, '--detach']);
  if (r.code !== 0) throw new Error(`run --detach: ${lastLine(r.err)}`);
  return r.out.trim().split('\n').at(-1)!;
}

const dbOf = (h: Home): Db => openDb(path.join(h.dir, 'prunewise.db'));
const stateOf = (db: Db, id: string) => campaignStatus(db, id)?.state;
const ended = (db: Db, id: string) => ['completed', 'failed', 'cancelled'].includes(stateOf(db, id) ?? '');

/** A stage running now (run-1 round 1 `stage`, or any when omitted). */
const running = (db: Db, id: string, stage?: string) =>
  db
    .prepare(`SELECT 1 FROM stages WHERE run_id LIKE ? AND state = 'running' ${stage ? 'AND stage = ?' : ''} LIMIT 1`)
    .get(...[`${id}/%`, ...(stage ? [stage] : [])]);

/**
 * What was lost or doubled: every run and round there, every stage completed once, no event twice,
 * every recorded artifact file present with its recorded sha256 (checked where it exists here).
 */
function dataLost(h: Home, db: Db, id: string): string {
  const s = campaignStatus(db, id)!;
  const problems: string[] = [];
  const runs = (JSON.parse(db.prepare(`SELECT spec_json FROM campaigns WHERE id = ?`).pluck().get(id) as string) as { weights: unknown[] }).weights.length;
  if (s.runs.length !== runs) problems.push(`${s.runs.length}/${runs} runs`);
  for (const r of s.runs) {
    const done = r.rounds.filter((x) => x.state === 'completed').length;
    if (s.state === 'completed' && done < 1) problems.push(`${r.id.slice(id.length + 1)}: no completed round`);
    for (const x of r.rounds)
      for (const [n, st] of Object.entries(x.stages)) if (x.state === 'completed' && st.state !== 'completed') problems.push(`${n} ${st.state}`);
  }
  const msgs = db.prepare(`SELECT message FROM events WHERE campaign_id = ?`).pluck().all(id) as string[];
  if (new Set(msgs).size !== msgs.length) problems.push(`${msgs.length - new Set(msgs).size} events twice`);
  const arts = db.prepare(`SELECT a.path, a.sha256, a.kind FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE r.campaign_id = ?`).all(id) as Array<{
    path: string;
    sha256: string;
    kind: string;
  }>;
  let bad = 0;
  for (const a of arts) {
    const p = path.join(h.dir, a.path);
    const f = fs.existsSync(path.join(p, 'weights.bin')) ? path.join(p, 'weights.bin') : p;
    if (!fs.existsSync(f) || fs.statSync(f).isDirectory()) continue; // kept elsewhere (an artifact store)
    if (crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex') !== a.sha256) bad++;
  }
  if (bad) problems.push(`${bad} artifact(s) whose bytes do not match their sha256`);
  return problems.length ? problems.join('; ') : 'none';
}

async function teardown(...homes: Home[]): Promise<void> {
  for (const h of homes) for (const p of h.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const h of homes) {
    await cli(h, ['server', '--stop']).catch(() => undefined);
    h.procs.length = 0;
  }
}

interface Outcome {
  outcome: string;
  lost: string;
}

/** Ends a case: completed (nothing lost?) or failed with its line. */
async function finish(h: Home, db: Db, id: string, timeoutMs = 300_000): Promise<Outcome> {
  await until('the campaign to end', () => ended(db, id), timeoutMs);
  const s = campaignStatus(db, id)!;
  return { outcome: s.state === 'completed' ? 'completed' : `${s.state}: ${s.error ?? ''}`.slice(0, 160), lost: dataLost(h, db, id) };
}

// ------------------------------------------------------------------------------ cases

/** kill -9 of one worker role (separate processes per role) mid-campaign, then a new one. */
function killRole(role: 'campaigns' | 'cpu' | 'store'): () => Promise<Outcome> {
  return async () => {
    const h = newHome(`kill-${role}`);
    try {
      const id = await submit(h);
      const roles = {
        campaigns: start(h, ['worker', '--queues', 'campaigns']),
        cpu: start(h, ['worker', '--queues', 'cpu']),
        store: start(h, ['worker', '--queues', 'store']),
      };
      const db = dbOf(h);
      await until('run-1 round 1 fine-tune', () => running(db, id, 'finetune'));
      await sleep(1500);
      roles[role].kill('SIGKILL');
      await exited(roles[role]);
      await sleep(3000);
      start(h, ['worker', '--queues', role]);
      return await finish(h, db, id);
    } finally {
      await teardown(h);
    }
  };
}

/** The embedded server killed with -9 while `run` works on the campaign; restarted 10 s later. */
async function serverKill(): Promise<Outcome> {
  const h = newHome('server');
  try {
    const file = path.join(h.dir, 'drill.yaml');
    const id0 = await submit(h); // writes the file, starts the embedded server; this campaign is cancelled below
    await cli(h, ['cancel', id0]);
    const run = start(h, ['run', file]);
    const db = dbOf(h);
    const id = await until('the run to submit', () => /campaign (\S+) submitted/.exec(run.err())?.[1]);
    await until('a fine-tune', () => running(db, id, 'finetune'));
    const info = JSON.parse(fs.readFileSync(path.join(h.dir, 'server.json'), 'utf8')) as { pid: number };
    process.kill(info.pid, 'SIGKILL');
    await sleep(10_000);
    start(h, ['server']);
    const code = await Promise.race([exited(run), sleep(300_000).then(() => -1)]);
    const o = await finish(h, db, id, 10_000);
    const waited = /does not answer .*waiting for it to come back/.test(run.err());
    return { outcome: `${o.outcome}; run exit ${code}${waited ? ', printed the waiting notice' : ', NO waiting notice'}`, lost: o.lost };
  } finally {
    await teardown(h);
  }
}

/** The database locked by another process (writes fail) for longer than 30 store attempts take at the short settings. */
async function storeOutage(): Promise<Outcome> {
  const h = newHome('store-outage', os.tmpdir(), { PRUNEWISE_DB_BUSY_TIMEOUT_MS: '50' });
  try {
    const id = await submit(h);
    start(h, ['worker']);
    const db = dbOf(h);
    await until('run-1 round 1 fine-tune', () => running(db, id, 'finetune'));
    const locker = new Database(path.join(h.dir, 'prunewise.db'));
    locker.pragma('busy_timeout = 10000');
    locker.exec('BEGIN EXCLUSIVE');
    const t0 = Date.now();
    // hold it until some store activity is past the old budget of 30 attempts
    const connection = await Connection.connect({ address: JSON.parse(fs.readFileSync(path.join(h.dir, 'server.json'), 'utf8')).address });
    const client = new Client({ connection });
    let maxAttempt = 0;
    try {
      await until(
        'a store activity past 30 attempts',
        async () => {
          for (const wf of [id, `${id}/run-1`, `${id}/run-2`]) {
            const d = await client.workflow
              .getHandle(wf)
              .describe()
              .catch(() => undefined);
            for (const a of d?.raw.pendingActivities ?? []) if (a.activityType?.name === 'record') maxAttempt = Math.max(maxAttempt, a.attempt ?? 0);
          }
          return maxAttempt > 30;
        },
        240_000,
      );
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
      await connection.close();
    }
    const o = await finish(h, db, id);
    return { outcome: `${o.outcome} (locked ${Math.round((Date.now() - t0) / 1000)} s, a record reached attempt ${maxAttempt})`, lost: o.lost };
  } finally {
    await teardown(h);
  }
}

/** The home on a 64 MB tmpfs filled up after the baseline; freed 15 s later. */
async function diskFull(): Promise<Outcome> {
  if (process.getuid?.() !== 0) return { outcome: 'not tried: mounting a tmpfs needs root', lost: '—' };
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-drill-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mnt]);
  // the Temporal server's state stays off the full disk (its own home on the normal disk)
  const server = newHome('disk-server');
  let h: Home | undefined;
  try {
    await submit(server); // starts server's embedded server
    const address = JSON.parse(fs.readFileSync(path.join(server.dir, 'server.json'), 'utf8')).address as string;
    h = newHome('disk', mnt, { TEMPORAL_ADDRESS: address });
    const id = await submit(h);
    const worker = start(h, ['worker']);
    const db = dbOf(h);
    await until('run-1 round 1 to start', () => running(db, id, 'score') || running(db, id, 'prune') || running(db, id, 'finetune'));
    const filler = path.join(mnt, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=100'], { stdio: 'ignore' });
    } catch {
      // "No space left on device": the disk is full now
    }
    await sleep(15_000);
    const during = campaignStatus(db, id)?.state;
    fs.rmSync(filler, { force: true });
    const o = await finish(h, db, id);
    const leftovers = execFileSync('find', [mnt, '-name', '*.tmp-*', '-o', '-name', '*.old-*']).toString().trim().split('\n').filter(Boolean);
    const named = leftovers.map((f) => path.relative(mnt, f)).join(', ');
    // did the fault bite? stages that needed another attempt, and the worker's own words about it
    const retried = (db.prepare(`SELECT message FROM events WHERE campaign_id = ? AND kind = 'stage-completed'`).pluck().all(id) as string[]).filter((m) =>
      /\(attempt [2-9]/.test(m),
    ).length;
    const said = worker
      .err()
      .split('\n')
      .filter((l) => /no space left/i.test(l));
    const bit = `${retried} stage(s) retried, ${said.length} worker line(s) saying "no space left"${said[0] ? `, e.g. "${said[0].trim().slice(0, 140)}"` : ''}`;
    return {
      outcome: `${o.outcome} (state while full: ${during}; ${bit}; ${leftovers.length} temp file(s)/folder(s) left${named ? `: ${named}` : ''})`,
      lost: o.lost,
    };
  } finally {
    if (h) await teardown(h);
    await teardown(server);
    execFileSync('umount', ['-l', mnt]);
  }
}

/** The baseline's weights.bin (this home's copy) truncated to half while no compute worker runs; restored by hand only if prunewise has not re-fetched it once a stage read it. */
async function truncatedArtifact(): Promise<Outcome> {
  const h = newHome('truncated');
  try {
    const id = await submit(h);
    start(h, ['worker', '--queues', 'campaigns,store']);
    const cpu = start(h, ['worker', '--queues', 'cpu']);
    const db = dbOf(h);
    await until('the baseline', () => campaignStatus(db, id)?.baselineStage?.state === 'completed');
    cpu.kill('SIGKILL');
    const w = path.join(h.dir, 'artifacts', id, 'baseline', 'model', 'weights.bin');
    const whole = fs.readFileSync(w);
    fs.truncateSync(w, Math.floor(whole.length / 2));
    start(h, ['worker', '--queues', 'cpu']);
    // a stage that reads the baseline (round 1's score) completes, or 90 s pass: by then prunewise has
    // re-fetched the file from the artifact store, or the file is restored by hand (the issue's case)
    await until(
      'round 1 score',
      () => db.prepare(`SELECT 1 FROM stages WHERE run_id LIKE ? AND stage = 'score' AND state = 'completed'`).get(`${id}/%`),
      90_000,
    ).catch(() => undefined);
    const truncatedSize = fs.statSync(w).size;
    if (truncatedSize !== whole.length) fs.writeFileSync(w, whole);
    const o = await finish(h, db, id);
    return {
      outcome: `${o.outcome} (file ${truncatedSize === whole.length ? 're-fetched from the artifact store by prunewise, no hand restore' : 'still truncated: restored by hand'})`,
      lost: o.lost,
    };
  } finally {
    await teardown(h);
  }
}

/** The last page of a finished campaign's database overwritten: reported by the CLI and the dashboard; recovered from a backup. */
async function corruptDatabase(): Promise<Outcome> {
  const h = newHome('corrupt');
  try {
    const id = await submit(h, {
      weights: [{ accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 }],
      pruning: { rounds: 1, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64 },
    });
    start(h, ['worker']);
    const db = dbOf(h);
    await until('the campaign', () => ended(db, id));
    db.close();
    const backup = path.join(h.dir, 'backup.db');
    const b = await cli(h, ['backup', backup]);
    if (b.code !== 0) return { outcome: `backup failed: ${lastLine(b.err)}`, lost: '?' };
    for (const p of h.procs) p.kill('SIGTERM');
    const file = path.join(h.dir, 'prunewise.db');
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, size - 4096);
    fs.closeSync(fd);
    const st = await cli(h, ['status', id]);
    const dash = start(h, ['dashboard', '--port', '0']);
    const url = await until('the dashboard', () => /(http:\/\/\S+\/)/.exec(dash.out())?.[1], 60_000);
    const page = await fetch(`${url}campaigns/${id}`);
    dash.kill('SIGTERM');
    // recover: the backup over the damaged file
    for (const x of ['', '-wal', '-shm']) fs.rmSync(file + x, { force: true });
    fs.copyFileSync(backup, file);
    const after = await cli(h, ['status', id]);
    const reported = st.code === 1 && /is damaged \(PRAGMA quick_check/.test(st.err) && page.status === 503;
    return {
      outcome: `${reported ? 'reported' : 'NOT reported'} (status exit ${st.code}: "${/is damaged \(PRAGMA quick_check: [^)]{0,50}/.exec(st.err)?.[0] ?? lastLine(st.err).slice(0, 80)}…"; dashboard ${page.status}); restored from \`prunewise backup\`: status exit ${after.code}`,
      lost: after.code === 0 ? dataLost(h, dbOf(h), id) : 'the database',
    };
  } finally {
    await teardown(h);
  }
}

/** A default worker of a second home on the same server and prefix, started first; the owner's worker comes later. */
async function secondHomeStore(): Promise<Outcome> {
  const store = await sharedStore(`second-home-${process.pid}-${Date.now()}`);
  const a = newHome('owner', os.tmpdir(), store.env);
  try {
    const id = await submit(a);
    const address = JSON.parse(fs.readFileSync(path.join(a.dir, 'server.json'), 'utf8')).address as string;
    const b = newHome('other', os.tmpdir(), { ...store.env, TEMPORAL_ADDRESS: address, PRUNEWISE_TASK_QUEUE_PREFIX: a.env.PRUNEWISE_TASK_QUEUE_PREFIX });
    start(b, ['worker']);
    await sleep(15_000);
    const db = dbOf(a);
    const before = stateOf(db, id);
    start(a, ['worker']);
    const o = await finish(a, db, id);
    const other = dbOf(b);
    const stolen = other.prepare(`SELECT COUNT(*) FROM events`).pluck().get() as number;
    const onB = modelsIn(b);
    await teardown(b);
    return {
      outcome: `${o.outcome} (state in the owner's db while only the other home served: ${before}; rows in the other home's db: ${stolen}; model folders in its home, from compute it served: ${onB}) [${store.label}]`,
      lost: stolen ? `${stolen} events in the wrong db` : o.lost,
    };
  } finally {
    await teardown(a);
  }
}

/** A second "machine": a compute worker with its own home (no shared folder) beside the owner's workers. */
async function secondMachine(): Promise<Outcome> {
  const store = await sharedStore(`second-machine-${process.pid}-${Date.now()}`);
  const a = newHome('machine-a', os.tmpdir(), store.env);
  try {
    const id = await submit(a);
    const address = JSON.parse(fs.readFileSync(path.join(a.dir, 'server.json'), 'utf8')).address as string;
    const b = newHome('machine-b', os.tmpdir(), { ...store.env, TEMPORAL_ADDRESS: address, PRUNEWISE_TASK_QUEUE_PREFIX: a.env.PRUNEWISE_TASK_QUEUE_PREFIX });
    start(a, ['worker']);
    start(b, ['worker', '--queues', 'cpu']);
    const o = await finish(a, dbOf(a), id);
    const onB = modelsIn(b);
    await teardown(b);
    return { outcome: `${o.outcome} (model folders in the second machine's own home: ${onB}) [${store.label}]`, lost: o.lost };
  } finally {
    await teardown(a);
  }
}

const CASES: Array<[string, string, () => Promise<Outcome>]> = [
  ['kill-cpu', 'kill -9 of the compute worker during fine-tune', killRole('cpu')],
  ['kill-campaigns', 'kill -9 of the workflow worker during fine-tune', killRole('campaigns')],
  ['kill-store', 'kill -9 of the store worker during fine-tune', killRole('store')],
  ['server', 'kill -9 of the Temporal server under `run`, restarted after 10 s', serverKill],
  ['store-outage', 'database locked past 30 store attempts', storeOutage],
  ['disk-full', 'home on a 64 MB tmpfs filled during round 1, freed after 15 s', diskFull],
  ['truncated', "baseline weights.bin (the home's copy) truncated to half while no compute worker runs", truncatedArtifact],
  ['corrupt-db', 'last page of prunewise.db overwritten', corruptDatabase],
  ['second-home', 'a second home serving store on the same server and prefix', secondHomeStore],
  ['second-machine', 'a compute worker with its own home, no shared folder', secondMachine],
];

async function main(): Promise<void> {
  const rows: Array<{ case: string; what: string; tries: number; outcomes: string[]; lost: string[] }> = [];
  for (const [name, what, fn] of CASES) {
    if (ONLY && !ONLY.includes(name)) continue;
    const row = { case: name, what, tries: 0, outcomes: [] as string[], lost: [] as string[] };
    for (let t = 0; t < TRIES; t++) {
      process.stderr.write(`${name} (try ${t + 1}/${TRIES})…\n`);
      const t0 = Date.now();
      const o = await fn().catch((e: Error) => ({ outcome: `drill error: ${e.message.split('\n')[0]}`, lost: '?' }));
      row.tries++;
      row.outcomes.push(o.outcome);
      row.lost.push(o.lost);
      process.stderr.write(`${name}: ${o.outcome}; lost: ${o.lost} (${Math.round((Date.now() - t0) / 1000)} s)\n`);
    }
    rows.push(row);
  }
  await s3?.stop();
  console.log(`drill:faults — ${RUNS} runs × ${ROUNDS} rounds (mlp, mnist 4000 images), store retry interval ≤ 200 ms; ${os.cpus().length} cores (shared)`);
  console.log(`| what was tried | tries | outcome | data lost |`);
  console.log(`|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.what} | ${r.tries} | ${[...new Set(r.outcomes)].join(' / ')} | ${[...new Set(r.lost)].join(' / ')} |`);
  console.log(JSON.stringify({ drill: 'faults', cases: rows }));
}

main().catch(async (e) => {
  console.error(e);
  await s3?.stop().catch(() => undefined);
  process.exit(1);
});
