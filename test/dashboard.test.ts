// The dashboard over a real SQLite file (rows written through db/ as the record activity does),
// served by the real Express app on a free port, read over HTTP.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCampaign } from '../bench/seed-campaign';
import { refreshPareto } from '../analysis';
import { applyRecord, createCampaign, openDb, type RecordOp } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, serveDashboard } from './helpers';

let close: () => Promise<void>;
let base: string;
let home: string;
const ID = 'dash-20261128-000000-abcd';
const BIG = 'big-20261128-000000-abcd';

beforeAll(async () => {
  home = tmpHome('dash');
  const db = openDb(path.join(home, 'prunewise.db'));
  createCampaign(db, { id: ID, name: 'dash', spec: { constraints: { maxAccuracyDrop: 2 } }, specHash: 'x', specFile: '/x.yaml', seed: 1 });
  const bl = `${ID}/baseline`;
  const ops: RecordOp[] = [
    { op: 'run', campaignId: ID, runId: bl, k: 0, kind: 'baseline', weights: null, state: 'completed' },
    {
      op: 'stage',
      runId: bl,
      round: 0,
      stage: 'baseline',
      state: 'completed',
      metrics: { accuracy: 0.88, valAccuracy: 0.9, bytes: 4000, latencyMs: 10, energyJEstimated: 1e-5, params: 1000, flops: 2e6 },
    },
  ];
  const rounds: Array<[number, number, number, number, number, number]> = [
    // run, round, test acc, val acc, deployed bytes, speedup
    [1, 1, 0.875, 0.895, 2000, 1.25],
    [1, 2, 0.86, 0.89, 1000, 2],
    [2, 1, 0.87, 0.893, 3000, 1.1], // dominated by run 1 round 1
  ];
  for (const k of [1, 2])
    ops.push({
      op: 'run',
      campaignId: ID,
      runId: `${ID}/run-${k}`,
      k,
      kind: 'run',
      weights: { accuracy: 0.6, size: k === 1 ? 0.4 : 0, latency: k === 1 ? 0 : 0.4, energy: 0 },
      state: 'completed',
    });
  for (const [k, round, acc, val, bytes, speedup] of rounds) {
    const runId = `${ID}/run-${k}`;
    ops.push(
      { op: 'stage', runId, round, stage: 'validate', state: 'completed', metrics: { accuracy: acc, valAccuracy: val } },
      {
        op: 'stage',
        runId,
        round,
        stage: 'hardware-adapt',
        state: 'completed',
        metrics: { latencyMs: 10 / speedup, speedup, deployedBytes: bytes, energyJEstimated: 1e-5 * (bytes / 4000) },
      },
      { op: 'round', runId, round, state: 'completed', objective: 0.9 - round * 0.1 + k * 0.01 },
    );
  }
  // a recorded artifact on disk, and a file next to the artifacts folder that must never be served
  const artDir = path.join(home, 'artifacts', ID, 'run-1', 'round-1', 'model');
  fs.mkdirSync(artDir, { recursive: true });
  fs.writeFileSync(path.join(artDir, 'model.json'), '{"format":"layers-model"}');
  fs.writeFileSync(path.join(home, 'secret.txt'), 'not an artifact');
  ops.push({
    op: 'stage',
    runId: `${ID}/run-1`,
    round: 1,
    stage: 'finetune',
    state: 'completed',
    attempts: 2,
    ms: 1500,
    artifacts: [{ kind: 'model', path: path.join('artifacts', ID, 'run-1', 'round-1', 'model'), bytes: 25, sha256: 'ab' }],
  });
  applyRecord(db, ops);
  refreshPareto(db, ID); // baseline and rounds in one batch: a bulk load, analysed once
  seedCampaign(db, { id: BIG, name: 'big', runs: 120, rounds: 3, running: 2 });
  ({ base, close } = await serveDashboard(db, { homeDir: home, pollMs: 100 }));
});

afterAll(() => close());

const get = (p: string) => fetch(base + p);
const runsOn = (html: string) => [...html.matchAll(/<tr data-run="(\d+)">/g)].map((m) => Number(m[1]));

describe('dashboard over HTTP', () => {
  it('lists campaigns with their front size, under a strict CSP', async () => {
    const r = await get('/');
    expect(r.status).toBe(200);
    const csp = r.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    const html = await r.text();
    expect(html).toContain(`href="/campaigns/${ID}"`);
    expect(html).toContain(`href="/campaigns/${BIG}"`);
  });

  it('runs table: baseline pinned first, one row per run at its best round, deltas, Pareto badges, sort links', async () => {
    const html = await (await get(`/campaigns/${ID}?sort=bytes&dir=asc`)).text();
    expect(html).toMatch(
      /<tr class="baseline"><td><input type="checkbox" name="runs" value="[^"]+\/baseline"[^>]*><\/td><td><a href="\/runs\/[^"]+\/baseline">baseline<\/a>/,
    );
    expect(html.indexOf('class="baseline"')).toBeLessThan(html.indexOf('data-run='));
    expect(runsOn(html)).toEqual([1, 2]); // run 1's best round is 1 000 bytes, run 2's 3 000
    // run 1 best J is round 2 (86.0 % vs baseline 88.0 %: -2.00 pts, 4 000 / 1 000 bytes: 4.00×); run 2 round 1 (-1.00, 1.33×)
    expect([...html.matchAll(/<td>(-?\d+\.\d\d)<\/td><td>(\d+\.\d\d)×<\/td>/g)].map((m) => `${m[1]} ${m[2]}`)).toEqual(['-2.00 4.00', '-1.00 1.33']);
    // run 1, and the baseline (the lowest validation error); run 2's only round is dominated
    expect((html.match(/class="badge">front/g) ?? []).length).toBe(2);
    expect(html).toMatch(/<td class="text">completed<\/td><td class="text"><span class="badge">front<\/span><\/td>/); // the baseline's row
    expect(html).toContain('href="?sort&#x3D;bytes&amp;dir&#x3D;desc"'); // handlebars escapes = and &
  });

  it('keyset pages cover every run exactly once, in order, for ascending and descending sorts with ties and NULLs', async () => {
    for (const [sort, dir] of [
      ['latency', 'asc'],
      ['w_size', 'desc'],
      ['front', 'desc'],
      ['objective', 'asc'],
    ]) {
      const all = (await (await get(`/campaigns/${BIG}/runs.json?sort=${sort}&dir=${dir}`)).json()) as Array<{ k: number }>;
      expect(all).toHaveLength(120);
      const seen: number[] = [];
      let url = `/campaigns/${BIG}/runs?sort=${sort}&dir=${dir}&limit=25`;
      for (let page = 0; page < 10 && url; page++) {
        const html = await (await get(url)).text();
        seen.push(...runsOn(html));
        const next = /href="([^"]+)" rel="next"/.exec(html)?.[1];
        url = next ? `/campaigns/${BIG}/runs${next.replace(/&amp;/g, '&').replace(/&#x3D;/g, '=')}` : '';
      }
      expect(seen).toEqual(all.map((r) => r.k));
    }
  });

  it('filters on allow-listed columns; CSV and JSON export every row of the filtered view in its order', async () => {
    const q = 'sort=latency&dir=desc&filter=front%3D1,accuracy%3E%3D0.85';
    const json = (await (await get(`/campaigns/${BIG}/runs.json?${q}`)).json()) as Array<{ k: number; onFront: boolean; accuracy: number; latencyMs: number }>;
    expect(json.length).toBeGreaterThan(0);
    for (const r of json) {
      expect(r.onFront).toBe(true);
      expect(r.accuracy).toBeGreaterThanOrEqual(0.85);
    }
    for (let i = 1; i < json.length; i++) expect(json[i].latencyMs).toBeLessThanOrEqual(json[i - 1].latencyMs);
    const csv = (await (await get(`/campaigns/${BIG}/runs.csv?${q}`)).text()).trim().split('\n');
    expect(csv[0]).toMatch(/^run,run_id,state,w_accuracy,w_size,w_latency,w_energy,rounds,best_round,test_accuracy/);
    expect(csv.slice(1).map((l) => Number(l.split(',')[0]))).toEqual(json.map((r) => r.k));
    const html = await (await get(`/campaigns/${BIG}/runs?${q}`)).text();
    expect(runsOn(html)).toEqual(json.slice(0, 50).map((r) => r.k));
    expect(html).toContain(`${json.length} run(s) match`);
    const running = (await (await get(`/campaigns/${BIG}/runs.json?filter=state%3Drunning`)).json()) as Array<{ state: string }>;
    expect(running.map((r) => r.state)).toEqual(['running', 'running']);
  });

  it('trade-off data: every candidate (baseline and every round of every run) with front flags and weights', async () => {
    const d = (await (await get(`/campaigns/${BIG}/tradeoff.json`)).json()) as {
      fields: string[];
      points: unknown[][];
      weights: Record<string, Record<string, number>>;
    };
    const overview = await (await get(`/campaigns/${BIG}`)).text();
    const total = Number(/of (\d+) candidates/.exec(overview)![1]);
    expect(d.points).toHaveLength(total);
    expect(d.points[0].slice(0, 2)).toEqual([0, 0]); // the baseline first
    const front = d.points.filter((p) => p[d.fields.indexOf('onFront')] === 1).length;
    expect(overview).toContain(`<div class="value">${front}</div>`);
    expect(Object.keys(d.weights)).toHaveLength(120);
    const csv = (await (await get(`/campaigns/${BIG}/points.csv`)).text()).trim().split('\n');
    expect(csv).toHaveLength(total + 1);
  });

  it('hostile or bad parameters get a 400 naming the parameter; unknown pages 404', async () => {
    const drop = await get(`/campaigns/${ID}/runs?sort=${encodeURIComponent('name; DROP TABLE runs')}`);
    expect(drop.status).toBe(400);
    expect(await drop.text()).toContain('sort: unknown column');
    expect((await (await get(`/campaigns/${ID}/runs.json`)).json()).length).toBe(2); // the table is still there
    const badFilter = await get(`/campaigns/${ID}/runs?filter=${encodeURIComponent('accuracy>=0.5 OR 1=1')}`);
    expect(badFilter.status).toBe(400);
    expect(await badFilter.text()).toContain('is not a number');
    expect((await get(`/campaigns/${ID}/runs?filter=${encodeURIComponent('name=1')}`)).status).toBe(400);
    expect((await get(`/campaigns/${ID}/runs?filter=${encodeURIComponent('state>running')}`)).status).toBe(400);
    expect((await get(`/campaigns/${ID}?dir=up`)).status).toBe(400);
    expect((await get(`/campaigns/${ID}?after=abc`)).status).toBe(400);
    expect((await get(`/campaigns/${ID}?limit=100000`)).status).toBe(400);
    expect((await get(`/campaigns/${ID}/runs.csv?sort=x`)).status).toBe(400);
    expect((await get('/compare?runs=a')).status).toBe(400);
    expect((await get('/campaigns/nope')).status).toBe(404);
    expect((await get('/runs/nope/run-1')).status).toBe(404);
    expect((await get('/nothing')).status).toBe(404);
  });

  it('run page: rounds against the baseline, channels before/after, stage attempts, artifacts; downloads stay inside the artifacts folder', async () => {
    const html = await (await get(`/runs/${ID}/run-1`)).text();
    expect(html).toContain('<td>round 2</td>');
    expect(html).toContain('1 stage(s) retried, resumed or failed'); // finetune of round 1 took 2 attempts
    expect(html).toMatch(/<td>1<\/td><td class="text">finetune<\/td><td class="text"><span class="state-completed">completed<\/span><\/td><td>2<\/td>/);
    const big = await (await get(`/runs/${encodeURIComponent(`${BIG}/run-3`)}`)).text();
    expect(big).toMatch(/<tr><td>conv2<\/td><td>16<\/td>/);
    const link = /href="(\/artifacts\/[^"]+model\.json)"/.exec(html)![1];
    const ok = await get(link);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('{"format":"layers-model"}');
    for (const evil of [
      '/artifacts/..%2Fsecret.txt',
      '/artifacts/%2E%2E/secret.txt',
      `/artifacts/${ID}/..%2F..%2F..%2Fsecret.txt`,
      '/artifacts/..%2F..%2Fetc%2Fpasswd',
    ]) {
      const r = await get(evil);
      expect(r.status, evil).toBeGreaterThanOrEqual(403);
      expect(await r.text()).not.toContain('not an artifact');
    }
    expect((await get(`/artifacts/${ID}/run-1/round-1/model/missing.bin`)).status).toBe(404);
  });

  it('compare: differing settings only, objectives against the baseline', async () => {
    const html = await (await get(`/compare?runs=${ID}/run-1,${ID}/run-2`)).text();
    expect(html).toContain('<code>weights.latency</code>');
    expect(html).toContain('<code>weights.size</code>');
    expect(html).not.toContain('<code>weights.accuracy</code>'); // both 0.6
    expect(html).not.toContain('<code>spec.constraints.maxAccuracyDrop</code>'); // same campaign
    // best rounds as in the runs table, with Δ points against the baseline (run 1 round 2: 86.0 vs 88.0 %)
    // absolute values beside the deltas (run 1 round 2: 86.00 %, 1 000 bytes, 5 ms)
    expect(html).toMatch(
      /run-1<\/a><\/td><td class="text wrap">dash<\/td><td class="text">completed<\/td><td>2<\/td><td>86\.00 %<\/td><td>-2\.00<\/td><td>1\.0 KB<\/td><td>4\.00×<\/td><td>5\.000 ms<\/td><td>2\.00×<\/td>/,
    );
    // a selection of checked rows (the form sends runs=…&runs=…), one of them a candidate round of its run
    const sel = await (await get(`/compare?runs=${ID}/run-1@1&runs=${ID}/run-2&runs=${ID}/baseline`)).text();
    expect(sel).toMatch(/run-1 r1<\/a><\/td><td class="text wrap">dash<\/td><td class="text">completed<\/td><td>1<\/td><td>87\.50 %<\/td>/);
    expect(sel).toMatch(/>baseline<\/a><\/td><td class="text wrap">dash<\/td><td class="text">completed<\/td><td>0<\/td><td>88\.00 %<\/td><td>\+0\.00<\/td>/);
    expect((await get(`/compare?runs=${ID}/run-1@7&runs=${ID}/run-2`)).status).toBe(400); // no such round
  });

  it('streams a change event when another connection writes', async () => {
    const ctrl = new AbortController();
    const r = await fetch(`${base}/events`, { signal: ctrl.signal });
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    const reader = r.body!.getReader();
    let text = '';
    const other = openDb(path.join(home, 'prunewise.db')); // as a worker process would
    applyRecord(other, [{ op: 'event', campaignId: ID, key: 'sse-test', kind: 'note', message: 'hello' }]);
    other.close();
    const deadline = Date.now() + 10_000;
    while (!text.includes('event: change') && Date.now() < deadline) text += new TextDecoder().decode((await reader.read()).value);
    ctrl.abort();
    expect(text).toContain('event: hello');
    expect(text).toContain('event: change');
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
    // off loopback (here all interfaces): a token printed at start guards every request; --read-only refuses notes
    const open = startCli(env, ['dashboard', '--port', '0', '--host', '0.0.0.0', '--read-only']);
    try {
      const [, port, token] = await waitFor('the URL', () => open.out().match(/dashboard: http:\/\/0\.0\.0\.0:(\d+)\/\?token=([\w-]+)/), 30_000);
      // the notice is the next line: stdout may bring it in a later chunk than the URL
      await waitFor('the token notice', () => open.out().includes('every request needs'), 10_000);
      expect(open.out()).toContain('every request needs the token above');
      const at = `http://127.0.0.1:${port}`;
      expect((await fetch(`${at}/`)).status).toBe(401);
      const first = await fetch(`${at}/?token=${token}`, { redirect: 'manual' });
      expect(first.status).toBe(303);
      const run = await fetch(`${at}/runs/${ID}/run-1`, { headers: { Authorization: `Bearer ${token}` } });
      expect(run.status).toBe(200);
      const html = await run.text();
      expect(html).not.toContain('id="note-form"');
      expect(html).toContain('--read-only');
    } finally {
      await stop(open);
    }
    const bad = await cli(env, ['dashboard', '--port', 'http']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("option '--port <n>' argument 'http' is invalid");
  });
});
