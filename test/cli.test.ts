// The CLI as a user meets it, without running a campaign (fast): installed on the PATH from
// another folder, campaign ids by prefix and `latest`, `ls` as a table, reads that never write,
// one-line errors for OS and port problems, hints that work as printed.
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCampaign, openDb, openDbReadOnly } from '../db';
import { BIN, tmpHome } from './helpers';

const ROOT = path.join(__dirname, '..');

/** Runs a shell command line (a printed hint) in `cwd` with a clean environment: no PRUNEWISE_HOME, no TEMPORAL_*, `prunewise` from `binDir`. */
function shell(line: string, cwd: string, binDir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { PATH: `${binDir}${path.delimiter}${path.dirname(process.execPath)}${path.delimiter}/usr/bin:/bin`, HOME: process.env.HOME };
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', line], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** The built CLI in `cwd` with `env` added (PRUNEWISE_HOME and TEMPORAL_ADDRESS removed unless given). */
function pw(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!('PRUNEWISE_HOME' in env)) delete e.PRUNEWISE_HOME;
  if (!('TEMPORAL_ADDRESS' in env)) delete e.TEMPORAL_ADDRESS;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** The commands in backticks of a text. */
const hintsIn = (text: string) => [...text.matchAll(/`((?:[A-Z_]+=\S+ )*prunewise [^`]+)`/g)].map((m) => m[1]);

/** sha256 of a file's bytes; a missing file counts as empty (a reader in WAL mode may create an empty -wal: no data) */
const sha = (f: string) =>
  crypto
    .createHash('sha256')
    .update(fs.existsSync(f) ? fs.readFileSync(f) : Buffer.alloc(0))
    .digest('hex');

describe('installed outside the clone', () => {
  const prefix = tmpHome('prefix');
  const elsewhere = tmpHome('elsewhere');
  afterAll(() => fs.rmSync(prefix, { recursive: true, force: true }));

  it('`npm link` into a prefix puts `prunewise` on the PATH; --help and --version work from another folder', async () => {
    // what the README says, with a throw-away prefix instead of the global one; links the clone, installs nothing
    const r = spawnSync('npm', ['link', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], {
      cwd: ROOT,
      env: { ...process.env, npm_config_prefix: prefix },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const bin = path.join(prefix, 'bin');
    expect(fs.existsSync(path.join(bin, 'prunewise'))).toBe(true);
    const help = await shell('prunewise --help', elsewhere, bin);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: prunewise/);
    expect(help.stdout).toMatch(/--home|PRUNEWISE_HOME|--home \(default \.\/\.prunewise\)|State lives in --home/);
    const version = await shell('prunewise --version', elsewhere, bin);
    expect(version.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('`npm pack` ships the built CLI, the workflow bundle and the dashboard templates (not tests or benches)', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0].files.map((f) => f.path);
    for (const f of ['bin/prunewise.js', 'dist/cli/index.js', 'dist/workflow-bundle.js', 'dist/ml/replica.js', 'dashboard/views/campaign.hbs', 'package.json'])
      expect(files).toContain(f);
    expect(files.some((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.startsWith('test/'))).toBe(false);
  });
});

describe('campaign ids, ls, reads', () => {
  const home = tmpHome('ids');
  const elsewhere = tmpHome('ids-elsewhere');
  const binDir = tmpHome('ids-bin');
  fs.symlinkSync(BIN, path.join(binDir, 'prunewise')); // what `npm link` makes
  const spec = (name: string) => ({
    name,
    seed: 1,
    model: 'mlp',
    dataset: { name: 'mnist' },
    weights: [{ accuracy: 1, size: 0, latency: 0, energy: 0 }],
    pruning: { rounds: 2 },
    execution: { heartbeatTimeoutSeconds: 30 },
  });
  const ids = ['alpha-20260101-000000-aaaa', 'alpha-20260102-000000-bbbb', 'beta-20260103-000000-cccc'];
  const db = openDb(path.join(home, 'prunewise.db'));
  ids.forEach((id, i) => {
    createCampaign(db, { id, name: id.split('-')[0], spec: spec(id.split('-')[0]) as never, specHash: `h${i}`, specFile: '/x.yaml', seed: 1 });
    db.prepare(`UPDATE campaigns SET created_at = ? WHERE id = ?`).run(`2026-01-0${i + 1}T00:00:00.000Z`, id);
  });
  db.close();

  it('a unique prefix or `latest` names a campaign; an ambiguous prefix lists the matches; an unknown one prints a hint that works from another folder', async () => {
    const byPrefix = await pw(['status', 'alpha-20260102', '--home', home, '--json'], elsewhere);
    expect(byPrefix.code, byPrefix.stderr).toBe(0);
    expect(JSON.parse(byPrefix.stdout)).toMatchObject({ version: 2, id: ids[1], live: null });
    const latest = await pw(['status', 'latest', '--json'], elsewhere, { PRUNEWISE_HOME: home });
    expect(JSON.parse(latest.stdout).id).toBe(ids[2]);
    const ambiguous = await pw(['status', 'alpha', '--home', home], elsewhere);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toBe(`prunewise: "alpha" matches 2 campaigns (${ids[1]}, ${ids[0]}): give more of the id, or \`latest\`\n`);
    const unknown = await pw(['status', 'gamma', '--home', home], elsewhere);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
    const [hint] = hintsIn(unknown.stderr);
    expect(hint).toBe(`prunewise ls --home ${home}`);
    const ran = await shell(hint, elsewhere, binDir);
    expect(ran.code, ran.stderr).toBe(0);
    for (const id of ids) expect(ran.stdout).toContain(id);
  });

  it('`ls` is an aligned table with a header, progress and the best model; --json carries the same', async () => {
    const r = await pw(['ls', '--home', home], elsewhere);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +STATE +PROGRESS +BEST \(accuracy=0\.6,size=0\.2,latency=0\.2\) +CREATED \(UTC\)$/);
    expect(lines.slice(1).map((l) => l.split(/ {2,}/)[0])).toEqual([...ids].reverse()); // newest first
    // aligned: every column starts where its header does
    for (const col of ['STATE', 'PROGRESS', 'BEST', 'CREATED']) {
      const at = lines[0].indexOf(col);
      for (const l of lines.slice(1)) expect(l[at - 1] === ' ' && l[at] !== ' ', `${col} in "${l}"`).toBe(true);
    }
    expect(lines[1]).toMatch(/ pending +0\/2 rounds 0% +— +2026-01-03 00:00:00$/);
    const j = JSON.parse((await pw(['ls', '--home', home, '--json'], elsewhere)).stdout);
    expect(j[0]).toMatchObject({ id: ids[2], state: 'pending', roundsDone: 0, roundsTotal: 2, best: null });
  });

  it('reads never write: status, ls, pareto and export leave the database files byte for byte; a read-only connection refuses writes', async () => {
    const files = ['prunewise.db', 'prunewise.db-wal', 'prunewise.db-shm'].map((f) => path.join(home, f));
    // settle the WAL into the main file first (a writer's checkpoint), so only reads follow
    const w = openDb(files[0]);
    w.pragma('wal_checkpoint(TRUNCATE)');
    w.close();
    const before = files.map(sha);
    for (const args of [
      ['status', 'latest'],
      ['status', 'beta', '--json'],
      ['ls'],
      ['ls', '--json'],
      ['pareto', 'beta'],
      ['export', 'beta/run-1', '--out', path.join(elsewhere, 'out')],
    ])
      await pw([...args, '--home', home], elsewhere);
    expect(files.slice(0, 2).map(sha)).toEqual(before.slice(0, 2));
    const ro = openDbReadOnly(files[0]);
    expect(() => ro.prepare(`UPDATE campaigns SET state = 'failed'`).run()).toThrow(/readonly/);
    ro.close();
  });

  it('with nothing in the home, `ls` says where campaigns live (--home, PRUNEWISE_HOME)', async () => {
    const empty = tmpHome('empty');
    const r = await pw(['ls'], empty);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`no campaigns in ${path.join(fs.realpathSync(empty), '.prunewise')} (no database there)`);
    expect(r.stderr).toMatch(/--home <dir> or env PRUNEWISE_HOME \(default \.\/\.prunewise in the current folder\)/);
    const s = await pw(['status', 'latest'], empty);
    expect(s.stderr).toMatch(
      /^prunewise: no campaigns in .*\.prunewise \(no prunewise\.db there\): campaigns live in the folder given by --home <dir> or env PRUNEWISE_HOME/,
    );
  });
});

describe('OS and port errors are one line', () => {
  const dir = tmpHome('oserr');
  const file = path.join(dir, 'a-file');
  fs.writeFileSync(file, 'x');

  const oneLine = (r: { code: number; stderr: string }) => {
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at |Error: /);
  };

  it('--home that is a file; a path through a file (ENOTDIR)', async () => {
    const a = await pw(['ls', '--home', file], dir);
    oneLine(a);
    expect(a.stderr).toBe(`prunewise: --home ${file} is a file, not a folder: give a folder (it is made if missing)\n`);
    const spec = path.join(dir, 'ok.yaml');
    fs.writeFileSync(spec, 'name: ok\nmodel: mlp\ndataset: { name: mnist }\nweights: [{ accuracy: 1 }]\n');
    const b = await pw(['run', spec, '--home', path.join(file, 'home')], dir);
    oneLine(b);
    expect(b.stderr).toMatch(/^prunewise: .*a-file\/home.*: a part of this path is a file, not a folder: give a folder \(ENOTDIR in mkdir\)$/m);
  });

  it('dashboard: a port out of range, and a port in use (EADDRINUSE)', async () => {
    fs.mkdirSync(path.join(dir, 'h'));
    openDb(path.join(dir, 'h', 'prunewise.db')).close();
    const a = await pw(['dashboard', '--home', path.join(dir, 'h'), '--port', '70000'], dir);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/^error: option '--port <n>' argument '70000' is invalid\. must be a port number from 0 to 65535/);
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    const b = await pw(['dashboard', '--home', path.join(dir, 'h'), '--port', String(port)], dir);
    busy.close();
    oneLine(b);
    expect(b.stderr).toBe(`prunewise: --port: 127.0.0.1:${port} is already in use: pick another port (--port 0 takes any free one)\n`);
  });

  it('a bad PRUNEWISE_TRAIN_GRAPH stops `run` and `worker` before anything starts (no home made), in one line', async () => {
    const spec = path.join(dir, 'ok3.yaml');
    fs.writeFileSync(spec, 'name: ok\nmodel: mlp\ndataset: { name: mnist }\nweights: [{ accuracy: 1 }]\n');
    const line = 'prunewise: PRUNEWISE_TRAIN_GRAPH: "yes" is not auto, on or off: unset it (auto) or give one of those\n';
    for (const args of [
      ['run', spec, '--home', path.join(dir, 'h3')],
      ['worker', '--home', path.join(dir, 'h3')],
    ]) {
      const r = await pw(args, dir, { PRUNEWISE_TRAIN_GRAPH: 'yes' });
      oneLine(r);
      expect(r.stderr).toBe(line);
    }
    expect(fs.existsSync(path.join(dir, 'h3'))).toBe(false);
  });

  it('TEMPORAL_ADDRESS with a port out of range is one line', async () => {
    const spec = path.join(dir, 'ok2.yaml');
    fs.writeFileSync(spec, 'name: ok\nmodel: mlp\ndataset: { name: mnist }\nweights: [{ accuracy: 1 }]\n');
    const r = await pw(['run', spec, '--home', path.join(dir, 'h2'), '--detach'], dir, { TEMPORAL_ADDRESS: '127.0.0.1:99999' });
    oneLine(r);
    expect(r.stderr).toBe(
      'prunewise: TEMPORAL_ADDRESS "127.0.0.1:99999" is not host:port with a port from 1 to 65535 (e.g. 127.0.0.1:7233): fix it, or unset it to use the embedded server\n',
    );
  });
});

describe('hints', () => {
  it('every hint in cli/ is built with the home (no bare `prunewise <command>` in a message)', () => {
    const bare: string[] = [];
    for (const f of fs.readdirSync(path.join(ROOT, 'cli')).filter((f) => f.endsWith('.ts'))) {
      const text = fs.readFileSync(path.join(ROOT, 'cli', f), 'utf8');
      text.split('\n').forEach((line, i) => {
        // a message (not a --help text or a comment) naming a command to run
        if (/\\`prunewise [a-z]/.test(line) && !/\.(description|argument|option)\(|^\s*(\/\/|\*)|const plain/.test(line))
          bare.push(`${f}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(bare).toEqual([]);
  });

  it('a hint quotes a home with spaces and carries the endpoint environment', async () => {
    const { hint } = await import('../cli/hints');
    const { resolveHome } = await import('../cli/home');
    const saved = { a: process.env.TEMPORAL_ADDRESS, p: process.env.PRUNEWISE_TASK_QUEUE_PREFIX };
    process.env.TEMPORAL_ADDRESS = '10.0.0.5:7233';
    process.env.PRUNEWISE_TASK_QUEUE_PREFIX = 'team a';
    try {
      const dir = path.join(os.tmpdir(), "my home's");
      expect(hint(resolveHome(dir), 'worker')).toBe(
        `TEMPORAL_ADDRESS=10.0.0.5:7233 PRUNEWISE_TASK_QUEUE_PREFIX='team a' prunewise worker --home '${dir.replace("'", "'\\''")}'`,
      );
    } finally {
      if (saved.a === undefined) delete process.env.TEMPORAL_ADDRESS;
      else process.env.TEMPORAL_ADDRESS = saved.a;
      if (saved.p === undefined) delete process.env.PRUNEWISE_TASK_QUEUE_PREFIX;
      else process.env.PRUNEWISE_TASK_QUEUE_PREFIX = saved.p;
    }
  });
});

describe('the embedded dev server starts or fails at once', () => {
  const spec = (dir: string) => {
    const f = path.join(dir, 'ok.yaml');
    fs.writeFileSync(f, 'name: ok\nmodel: mlp\ndataset: { name: mnist }\nweights: [{ accuracy: 1 }]\n');
    return f;
  };

  it('a server that exits at once is reported in one line at once (not after 60 s)', async () => {
    const dir = tmpHome('srv-exit');
    const fake = path.join(dir, 'temporal');
    fs.writeFileSync(fake, '#!/bin/sh\necho "fatal: something broke" >&2\nexit 3\n', { mode: 0o755 });
    const t0 = Date.now();
    const r = await pw(['run', spec(dir), '--home', path.join(dir, 'h'), '--detach'], dir, { PRUNEWISE_TEMPORAL_BIN: fake });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^prunewise: the embedded Temporal dev server exited at once \(code 3\): fatal: something broke; see .*temporal\.log$/m);
    expect(Date.now() - t0).toBeLessThan(55_000); // the old wait was 60 s; the real bound is seconds
  });

  it('"address already in use" (a port taken between our check and its bind): new ports, and the campaign is submitted', async () => {
    const { findTemporalBinary } = await import('../cli/temporal');
    const dir = tmpHome('srv-inuse');
    const marker = path.join(dir, 'failed-once');
    const wrapper = path.join(dir, 'temporal');
    // the first start fails as a collision does; the second runs the real binary
    fs.writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ ! -e ${marker} ]; then touch ${marker}; echo 'listen tcp 127.0.0.1:1234: bind: address already in use' >&2; exit 1; fi\nexec ${findTemporalBinary()} "$@"\n`,
      { mode: 0o755 },
    );
    const home = path.join(dir, 'h');
    const env = { PRUNEWISE_TEMPORAL_BIN: wrapper, PRUNEWISE_TASK_QUEUE_PREFIX: `t${crypto.randomBytes(3).toString('hex')}` };
    try {
      const r = await pw(['run', spec(dir), '--home', home, '--detach'], dir, env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr.match(/starting the embedded Temporal dev server on 127\.0\.0\.1:(\d+)/g)).toHaveLength(2);
      expect(r.stdout.trim()).toMatch(/^ok-\d{8}-\d{6}-[0-9a-f]{4}$/);
      const info = JSON.parse(fs.readFileSync(path.join(home, 'server.json'), 'utf8'));
      const [lo] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
      expect(info.port).toBeLessThan(lo); // below the ephemeral range the server's own services draw from
      expect(info.uiPort).toBeLessThan(lo);
    } finally {
      await pw(['server', '--stop', '--home', home], dir, env);
    }
  });
});
