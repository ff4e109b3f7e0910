// The dashboard over a real SQLite file (rows written through db/ as the record activity does),
// served by the real Express app on a free port, read over HTTP.
import type { Server } from 'node:http';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDashboard } from '../dashboard/server';
import { applyRecord, createCampaign, openDb, type RecordOp } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor } from './helpers';

let server: Server;
let base: string;
let home: string;
const ID = 'dash-20261128-000000-abcd';

beforeAll(async () => {
  home = tmpHome('dash');
  const db = openDb(path.join(home, 'prunewise.db'));
  createCampaign(db, { id: ID, name: 'dash', spec: { constraints: { maxAccuracyDrop: 2 } }, specHash: 'x', specFile: '/x.yaml', seed: 1 });
  const bl = `${ID}/baseline`;
  const ops: RecordOp[] = [
    { op: 'run', campaignId: ID, runId: bl, k: 0, kind: 'baseline', weights: null, state: 'completed' },
    { op: 'stage', runId: bl, round: 0, stage: 'baseline', state: 'completed', metrics: { accuracy: 0.88, valAccuracy: 0.9, bytes: 4000, latencyMs: 10, energyJEstimated: 1e-5, params: 1000, flops: 2e6 } },
  ];
  const rounds: Array<[number, number, number, number, number, number]> = [
    // run, round, test acc, val acc, deployed bytes, speedup
    [1, 1, 0.875, 0.895, 2000, 1.25],
    [1, 2, 0.86, 0.89, 1000, 2],
    [2, 1, 0.87, 0.893, 3000, 1.1], // dominated by run 1 round 1
  ];
  for (const k of [1, 2]) ops.push({ op: 'run', campaignId: ID, runId: `${ID}/run-${k}`, k, kind: 'run', weights: { accuracy: 0.6, size: k === 1 ? 0.4 : 0, latency: k === 1 ? 0 : 0.4, energy: 0 }, state: 'completed' });
  for (const [k, round, acc, val, bytes, speedup] of rounds) {
    const runId = `${ID}/run-${k}`;
    ops.push(
      { op: 'stage', runId, round, stage: 'validate', state: 'completed', metrics: { accuracy: acc, valAccuracy: val } },
      { op: 'stage', runId, round, stage: 'hardware-adapt', state: 'completed', metrics: { latencyMs: 10 / speedup, speedup, deployedBytes: bytes, energyJEstimated: 1e-5 * (bytes / 4000) } },
      { op: 'round', runId, round, state: 'completed', objective: 0.9 - round * 0.1 + k * 0.01 },
    );
  }
  applyRecord(db, ops);
  server = createDashboard(db).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const get = (p: string) => fetch(base + p);

describe('dashboard over HTTP', () => {
  it('lists campaigns with their front size', async () => {
    const r = await get('/');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toContain("default-src 'self'");
    const html = await r.text();
    expect(html).toContain(`href="/campaigns/${ID}"`);
  });

  it('campaign page: baseline pinned first, deltas, Pareto badges, sort links', async () => {
    const html = await (await get(`/campaigns/${ID}?sort=bytes&dir=asc`)).text();
    const rows = [...html.matchAll(/<td>(baseline|run \d · round \d)<\/td>/g)].map((m) => m[1]);
    expect(rows).toEqual(['baseline', 'run 1 · round 2', 'run 1 · round 1', 'run 2 · round 1']);
    // Δ points against the baseline's 88.0 %: run 1 r2 86.0 → −2.00, run 1 r1 87.5 → −0.50, run 2 r1 87.0 → −1.00; sizes against 4 000 bytes
    expect([...html.matchAll(/<td>(-?\d+\.\d\d)<\/td><td>(\d+\.\d\d)×<\/td>/g)].map((m) => `${m[1]} ${m[2]}`)).toEqual(['-2.00 4.00', '-0.50 2.00', '-1.00 1.33']);
    expect((html.match(/class="badge">front/g) ?? []).length).toBe(3); // baseline, run 1 r1, run 1 r2
    expect(html).toContain('href="?sort&#x3D;bytes&amp;dir&#x3D;desc"'); // handlebars escapes = and &
  });

  it('exports the filtered view in its order as CSV and JSON, every row', async () => {
    const csv = await (await get(`/campaigns/${ID}/rows.csv?sort=latency&dir=desc`)).text();
    const lines = csv.trim().split('\n');
    expect(lines[0]).toMatch(/^run,run_id,round,baseline,w_accuracy,w_size,w_latency,w_energy,test_accuracy,delta_points,val_error,bytes/);
    expect(lines).toHaveLength(5);
    expect(lines.slice(1).map((l) => l.split(',').slice(0, 3).join(' '))).toEqual([`0 ${ID}/baseline 0`, `2 ${ID}/run-2 1`, `1 ${ID}/run-1 1`, `1 ${ID}/run-1 2`]);
    const json = await (await get(`/campaigns/${ID}/rows.json?sort=latency&dir=desc`)).json();
    expect(json.map((r: { runId: string; round: number }) => `${r.runId} ${r.round}`)).toEqual(lines.slice(1).map((l) => l.split(',').slice(1, 3).join(' ')));
  });

  it('bad parameters and unknown pages get a clear error', async () => {
    const bad = await get(`/campaigns/${ID}?sort=speed`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('sort: unknown column &quot;speed&quot;: use one of run, round, accuracy');
    expect((await get(`/campaigns/${ID}?dir=up`)).status).toBe(400);
    expect((await get('/campaigns/nope')).status).toBe(404);
    expect((await get('/nothing')).status).toBe(404);
  });
});

describe('prunewise dashboard', () => {
  it('binds 127.0.0.1, prints its URL, serves, and stops on SIGTERM', async () => {
    const env = cliEnv(home);
    const child = startCli(env, ['dashboard', '--port', '0']);
    try {
      const url = await waitFor('the URL', () => child.out().match(/dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/)?.[1], 30_000);
      expect(await (await fetch(url)).text()).toContain(ID);
    } finally {
      await stop(child);
    }
    expect(child.exitCode).toBe(0);
    const bad = await cli(env, ['dashboard', '--port', 'http']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("option '--port <n>' argument 'http' is invalid");
  });
});
