// bench:scale — one campaign of many runs (default 200 weight vectors; mlp, 1 000 training images,
// one round: rollbackRetries 0) through the real CLI, served by 1, 2 and 4 compute worker processes
// (`prunewise worker --queues cpu`) beside one process for the workflows and the store
// (`prunewise worker --queues campaigns,store`), each configuration in a fresh home with its own
// embedded Temporal dev server. Timed from SQLite: the campaign's `started` event to its completion
// (wall clock of the store's writes). Orchestration: the share of the compute workers' time not
// spent inside a stage (1 − Σ stage ms ÷ (workers × campaign time)); with one worker that is the
// time Temporal round trips, queueing and store writes take between stages.
// Options: --runs N (default 200; env BENCH_SCALE_RUNS), --workers 1,2,4 (default; env BENCH_SCALE_WORKERS),
// --help — a smoke test uses a few runs. Each configuration's result goes to stderr as soon as it is
// measured (a later failure loses nothing); then a table, and one JSON line
// {"workers": {"1": s, "2": s, "4": s}, "orchestrationPct": <1 worker's>, "orchestrationPctByWorkers": {…}, …}.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { openDb } from '../db';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'prunewise.js');
const HELP = `usage: npm run bench:scale -- [--runs N] [--workers 1,2,4]
  one campaign of N runs (default 200; mlp, 1 000 training images, one round) served by each number of
  compute worker processes in turn (default 1,2,4), each in a fresh home with its own Temporal dev server;
  prints a table, then one JSON line {"workers": {"1": s, …}, "orchestrationPct": …}
  env BENCH_SCALE_RUNS / BENCH_SCALE_WORKERS set the same (the flags win)`;

/** `--runs` and `--workers` (else the env, else 200 and 1,2,4). Exits with one line on a bad value. */
function options(argv: string[]): { runs: number; workers: number[] } {
  let runs = process.env.BENCH_SCALE_RUNS ?? '200';
  let workers = process.env.BENCH_SCALE_WORKERS ?? '1,2,4';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i] ?? '';
    if (flag === '--help' || flag === '-h') {
      console.log(HELP);
      process.exit(0);
    } else if (flag === '--runs') runs = value();
    else if (flag === '--workers') workers = value();
    else fail(`unknown option ${a}: use --runs N and/or --workers 1,2,4 (--help)`);
  }
  const n = Number(runs);
  if (!Number.isInteger(n) || n < 1) fail(`--runs: "${runs}" is not a whole number ≥ 1`);
  const w = workers.split(',').map((x) => Number(x.trim()));
  if (!w.length || w.some((x) => !Number.isInteger(x) || x < 1)) fail(`--workers: "${workers}" is not a list of whole numbers ≥ 1 such as 1,2,4`);
  return { runs: n, workers: w };
}

function fail(line: string): never {
  process.stderr.write(`bench:scale: ${line}\n`);
  process.exit(2);
}

const { runs: RUNS, workers: WORKERS } = options(process.argv.slice(2));
const FASHION = '/usr/share/datasets/fashion-mnist';

/** RUNS distinct weight vectors (thousandths, so each sums to exactly 1). */
function weights(n: number): Array<Record<string, number>> {
  return Array.from({ length: n }, (_, i) => {
    const a = 300 + (i % 200);
    const s = 100 + Math.floor(i / 200);
    return { accuracy: a / 1000, size: s / 1000, latency: (1000 - a - s) / 1000, energy: 0 };
  });
}

const SPEC = {
  name: 'bench-scale',
  seed: 3,
  model: 'mlp',
  dataset: fs.existsSync(FASHION)
    ? { name: 'fashion-mnist', dir: FASHION, trainLimit: 1000, testLimit: 1000 }
    : { name: 'mnist', trainLimit: 1000, testLimit: 1000 },
  baseline: { epochs: 1, batchSize: 64 },
  weights: weights(RUNS),
  pruning: { rounds: 1, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64 },
  // exactly one round per run: a round past maxAccuracyDrop is rolled back but not retried with half the
  // ratio (the default 2 retries would make it up to 3 rounds, so the bench would time rollbacks, not one round)
  constraints: { rollbackRetries: 0 },
  // short latency measurement: this bench is about orchestration, not about the speedup's interval
  target: { batchSize: 16, warmupRuns: 1, latencyRuns: 5, speedupCi: 0.2, latencyBudgetSeconds: 1 },
};

interface Result {
  workers: number;
  seconds: number;
  stageSeconds: number;
  orchestrationPct: number;
  runsCompleted: number;
  /** 1-minute load average when the configuration ended (2 cores shared with other developers) */
  load: number;
}

function prunewise(args: string[], env: NodeJS.ProcessEnv): ChildProcess & { err: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  child.stdout!.resume();
  return Object.assign(child, { err: () => err });
}

const exited = (c: ChildProcess) => new Promise<number>((r) => (c.exitCode !== null ? r(c.exitCode) : c.on('exit', (code) => r(code ?? 1))));

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function scale(n: number): Promise<Result> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `pw-bench-scale-${n}-`));
  const file = path.join(home, 'campaign.yaml');
  fs.writeFileSync(file, stringify(SPEC));
  const env: NodeJS.ProcessEnv = { ...process.env, PRUNEWISE_HOME: home, PRUNEWISE_TASK_QUEUE_PREFIX: `scale${process.pid}w${n}` };
  delete env.TEMPORAL_ADDRESS; // this home's embedded server
  const procs: Array<ChildProcess & { err: () => string }> = [];
  try {
    // compute workers first (they poll before there is work), then submit, then the workflows + store process
    for (let i = 0; i < n; i++) procs.push(prunewise(['worker', '--queues', 'cpu'], env));
    const submit = prunewise(['run', file, '--detach'], env);
    if ((await exited(submit)) !== 0) throw new Error(`prunewise run --detach failed: ${submit.err().split('\n').slice(-3).join(' ')}`);
    await until('the compute workers to poll', () => procs.every((p) => /serving/.test(p.err())), 300_000).catch((e: Error) => {
      const said = procs.map((p, i) => `worker ${i + 1} (exit ${p.exitCode ?? 'running'}): ${p.err().trim().split('\n').slice(-2).join(' | ')}`);
      throw new Error(`${e.message}; ${said.join('; ')}`);
    });
    procs.push(prunewise(['worker', '--queues', 'campaigns,store'], env));
    const db = openDb(path.join(home, 'prunewise.db'));
    const state = () => (db.prepare(`SELECT state FROM campaigns`).pluck().get() as string) ?? 'pending';
    await until('the campaign to end', () => ['completed', 'failed', 'cancelled'].includes(state()), 6 * 3600_000);
    if (state() !== 'completed') throw new Error(`${n} workers: the campaign ${state()}: ${db.prepare(`SELECT error FROM campaigns`).pluck().get()}`);
    const id = db.prepare(`SELECT id FROM campaigns`).pluck().get() as string;
    const started = Date.parse(db.prepare(`SELECT at FROM events WHERE event_key = ?`).pluck().get(`${id}/started`) as string);
    const ended = Date.parse(db.prepare(`SELECT updated_at FROM campaigns`).pluck().get() as string);
    const stageMs = db.prepare(`SELECT COALESCE(SUM(ms), 0) FROM stages WHERE run_id LIKE ?`).pluck().get(`${id}/%`) as number;
    const runsCompleted = db.prepare(`SELECT COUNT(*) FROM runs WHERE campaign_id = ? AND kind = 'run' AND state = 'completed'`).pluck().get(id) as number;
    db.close();
    const seconds = (ended - started) / 1000;
    return {
      workers: n,
      seconds,
      stageSeconds: stageMs / 1000,
      orchestrationPct: 100 * (1 - stageMs / 1000 / (n * seconds)),
      runsCompleted,
      load: os.loadavg()[0],
    };
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map(exited));
    await exited(prunewise(['server', '--stop'], env));
    // the stopped server may still be closing its files: retried (ENOTEMPTY), and a home that cannot be
    // removed is named, never a reason to lose the measurement
    try {
      fs.rmSync(home, { recursive: true, force: true, maxRetries: 10, retryDelay: 300 });
    } catch (e) {
      process.stderr.write(`could not remove ${home}: ${(e as Error).message}\n`);
    }
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const results: Result[] = [];
  for (const n of WORKERS) {
    process.stderr.write(`${n} compute worker(s): ${RUNS} runs…\n`);
    const r = await scale(n);
    results.push(r);
    process.stderr.write(
      `${n} compute worker(s): ${r.seconds.toFixed(1)} s, ${r.runsCompleted} runs completed, not in a stage ${r.orchestrationPct.toFixed(1)} %, load ${r.load.toFixed(1)} ${JSON.stringify(r)}\n`,
    );
  }
  const one = results.find((r) => r.workers === 1) ?? results[0];
  console.log(
    `bench:scale — one campaign of ${RUNS} runs (mlp, ${SPEC.dataset.name} ${SPEC.dataset.trainLimit} training images, 1 round), ` +
      `N compute worker processes + 1 for workflows and store, own embedded Temporal dev server each; ${os.cpus().length} cores (shared); ${((performance.now() - t0) / 60000).toFixed(1)} min in all`,
  );
  console.log(
    `${'workers'.padEnd(8)}${'campaign s'.padStart(12)}${'vs 1'.padStart(8)}${'stage s (Σ)'.padStart(13)}${'not in a stage'.padStart(16)}${'runs done'.padStart(11)}${'load'.padStart(7)}`,
  );
  for (const r of results) {
    console.log(
      `${String(r.workers).padEnd(8)}${r.seconds.toFixed(1).padStart(12)}${`${(one.seconds / r.seconds).toFixed(2)}×`.padStart(8)}${r.stageSeconds.toFixed(1).padStart(13)}${`${r.orchestrationPct.toFixed(1)} %`.padStart(16)}${String(r.runsCompleted).padStart(11)}${r.load.toFixed(1).padStart(7)}`,
    );
  }
  console.log(
    JSON.stringify({
      workers: Object.fromEntries(results.map((r) => [String(r.workers), +r.seconds.toFixed(2)])),
      orchestrationPct: +one.orchestrationPct.toFixed(2),
      orchestrationPctByWorkers: Object.fromEntries(results.map((r) => [String(r.workers), +r.orchestrationPct.toFixed(2)])),
      runs: RUNS,
      runsCompleted: Object.fromEntries(results.map((r) => [String(r.workers), r.runsCompleted])),
      loadAverage: Object.fromEntries(results.map((r) => [String(r.workers), +r.load.toFixed(2)])),
      cores: os.cpus().length,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
