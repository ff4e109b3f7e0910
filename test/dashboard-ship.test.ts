// The dashboard's candidates view, ship page and notes over HTTP, on a real SQLite file with real
// tfjs model files on disk: the budget view agrees with `prunewise pareto --max-latency-ms …
// --max-bytes …` (the real CLI on the same home); a candidate's files, downloaded over HTTP, load in
// stock @tensorflow/tfjs through the README's own Node snippet (a child Node process without
// tfjs-node); notes are refused without the CSRF token, refused read-only, and a dashboard with an
// access token refuses requests without it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCampaign } from '../bench/seed-campaign';
import { recommendedModel, refreshPareto } from '../analysis';
import { objectiveJ, type ObjectiveValues, type Weights } from '../core';
import { applyRecord, createCampaign, openDb, type Db, type RecordOp } from '../db';
import { initBackend, saveExport, saveModel } from '../ml';
import { cli, cliEnv, serveDashboard, tmpHome } from './helpers';

const ID = 'ship-20261129-000000-abcd';
const SYN = 'syn-20261129-000000-abcd';
const NODE_MODULES = path.join(__dirname, '..', 'node_modules');

let home: string;
let db: Db;
let base: string;
let close: () => Promise<void>;
const closers: Array<() => Promise<void>> = [];

/** A tiny dense model whose output biases decide the class of an all-zero input (class 1). */
function tinyModel(): tfl.LayersModel {
  const m = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 3, activation: 'softmax', name: 'out' })] });
  m.setWeights([m.getWeights()[0], tf.tensor1d([0.1, 0.9, 0.3])]);
  return m;
}

beforeAll(async () => {
  await initBackend();
  home = tmpHome('ship');
  db = openDb(path.join(home, 'prunewise.db'));
  createCampaign(db, { id: ID, name: 'ship', spec: { constraints: { maxAccuracyDrop: 2 } }, specHash: 'abc123', specFile: '/x.yaml', seed: 5 });
  const bl = `${ID}/baseline`;
  const run = `${ID}/run-1`;
  const rel = (...p: string[]) => path.join('artifacts', ID, ...p);
  const model = tinyModel();
  const savedBase = await saveModel(model, path.join(home, rel('baseline', 'model')));
  const savedFt = await saveModel(model, path.join(home, rel('run-1', 'round-1', 'finetuned')));
  const savedU8 = await saveExport(model, path.join(home, rel('run-1', 'round-1', 'uint8')), 'uint8');
  // the deployed variant (uint8), with the prunewise.json the pipeline writes, `input` as the task stream adds it
  const dep = path.join(home, rel('run-1', 'round-1', 'deployable'));
  fs.cpSync(path.join(home, rel('run-1', 'round-1', 'uint8')), dep, { recursive: true });
  fs.writeFileSync(
    path.join(dep, 'prunewise.json'),
    JSON.stringify({
      dtype: 'uint8',
      loader: '@tensorflow/tfjs loadLayersModel (stock)',
      input: { shape: [4], scaling: 'x / 255', classNames: ['cat', 'dog', 'owl'] },
    }),
  );
  // per-channel int8: recorded, but its prunewise.json says it is not deployable
  const pc = path.join(home, rel('run-1', 'round-1', 'int8-per-channel'));
  fs.mkdirSync(pc, { recursive: true });
  fs.writeFileSync(path.join(pc, 'model.json'), '{}');
  fs.writeFileSync(path.join(pc, 'prunewise.json'), JSON.stringify({ deployable: false }));
  model.dispose();
  const ops: RecordOp[] = [
    { op: 'run', campaignId: ID, runId: bl, k: 0, kind: 'baseline', weights: null, state: 'completed' },
    {
      op: 'stage',
      runId: bl,
      round: 0,
      stage: 'baseline',
      state: 'completed',
      metrics: { accuracy: 0.8, valAccuracy: 0.8, bytes: 4000, latencyMs: 10, energyJEstimated: 1e-5 },
      series: {
        trainLoss: [[1, 0.9]],
        batchLoss: [
          [1, 1.2],
          [2, 0.8],
          [3, 0.7],
        ],
      },
      artifacts: [{ kind: 'model', path: rel('baseline', 'model'), ...savedBase }],
    },
    { op: 'run', campaignId: ID, runId: run, k: 1, kind: 'run', weights: { accuracy: 0.5, size: 0.5, latency: 0, energy: 0 }, state: 'completed' },
    {
      op: 'stage',
      runId: run,
      round: 1,
      stage: 'finetune',
      state: 'completed',
      artifacts: [{ kind: 'model', path: rel('run-1', 'round-1', 'finetuned'), ...savedFt }],
    },
    { op: 'stage', runId: run, round: 1, stage: 'validate', state: 'completed', metrics: { accuracy: 0.82, valAccuracy: 0.82 } },
    {
      op: 'stage',
      runId: run,
      round: 1,
      stage: 'quantize',
      state: 'completed',
      artifacts: [
        { kind: 'model-uint8', path: rel('run-1', 'round-1', 'uint8'), ...savedU8 },
        { kind: 'model-int8-per-channel', path: rel('run-1', 'round-1', 'int8-per-channel'), bytes: 2, sha256: 'x' },
      ],
    },
    {
      op: 'stage',
      runId: run,
      round: 1,
      stage: 'hardware-adapt',
      state: 'completed',
      // better than the baseline on every objective: the baseline is dominated
      metrics: { latencyMs: 5, speedup: 2, deployedBytes: savedU8.bytes, energyJEstimated: 5e-6 },
      artifacts: [{ kind: 'deployable', path: rel('run-1', 'round-1', 'deployable'), ...savedU8 }],
    },
    { op: 'round', runId: run, round: 1, state: 'completed', objective: 0.5 },
  ];
  applyRecord(db, ops);
  refreshPareto(db, ID);
  seedCampaign(db, { id: SYN, name: 'syn', runs: 30, rounds: 3, seed: 11 });
  ({ base, close } = await serveDashboard(db, { homeDir: home }));
});

afterAll(async () => {
  await close?.();
  for (const c of closers) await c();
});

const get = (p: string, init?: RequestInit) => fetch(base + p, { redirect: 'manual', ...init });
const unescape = (s: string) =>
  s
    .replace(/&amp;/g, '&')
    .replace(/&#x3D;/g, '=')
    .replace(/&quot;/g, '"')
    .replace(/&#x27;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');

interface CandidatesJson {
  candidates: Array<{ runId: string; round: number; latencyMs: number; bytes: number; accuracy: number; error: number; energyJ: number; violates: string[] }>;
  recommendations: Array<{ runId: string; weights: Weights; pick: { runId: string; round: number } | null; objective: number | null }>;
}

describe('candidates view', () => {
  it('a budget filter shows every (run, round) in it — not one per run — and the page, the JSON and `prunewise pareto --max-latency-ms --max-bytes` agree', async () => {
    const all = (await (await get(`/campaigns/${SYN}/candidates.json`)).json()) as CandidatesJson;
    expect(all.candidates.length).toBe(1 + 30 * 3); // the baseline and every round
    const lat = all.candidates.map((c) => c.latencyMs).sort((a, b) => a - b)[45];
    const bytes = all.candidates.map((c) => c.bytes).sort((a, b) => a - b)[60];
    const filter = `latency<=${lat},bytes<=${bytes}`;
    const inBudget = (await (await get(`/campaigns/${SYN}/candidates.json?filter=${encodeURIComponent(filter)}`)).json()) as CandidatesJson;
    const expected = all.candidates.filter((c) => c.latencyMs <= lat && c.bytes <= bytes);
    expect(inBudget.candidates.map((c) => `${c.runId}@${c.round}`).sort()).toEqual(expected.map((c) => `${c.runId}@${c.round}`).sort());
    expect(new Set(inBudget.candidates.map((c) => c.runId)).size).toBeLessThan(inBudget.candidates.length); // several rounds of one run fit
    // the recommendation is the lowest J(w) among the candidates in the budget within the hard constraints (checked by brute force)
    const b = all.candidates.find((c) => c.round === 0)!;
    const vals = (c: CandidatesJson['candidates'][number]): ObjectiveValues => ({ error: c.error, bytes: c.bytes, latencyMs: c.latencyMs, energyJ: c.energyJ });
    for (const r of inBudget.recommendations) {
      const ok = expected.filter((c) => c.violates.length === 0);
      const js = ok.map((c) => objectiveJ(r.weights, vals(c), vals(b)));
      const best = ok[js.indexOf(Math.min(...js))];
      expect(r.pick && `${r.pick.runId}@${r.pick.round}`).toBe(best ? `${best.runId}@${best.round}` : null);
    }
    // the CLI on the same home, as a user runs it
    const res = await cli(cliEnv(home), ['pareto', SYN, '--max-latency-ms', String(lat), '--max-bytes', String(bytes), '--json'], 60_000);
    expect(res.stderr).toBe('');
    const p = JSON.parse(res.stdout) as { budget: string; points: Array<{ runId: string; round: number }>; recommendations: CandidatesJson['recommendations'] };
    expect(p.budget).toBe(filter);
    expect(p.points.map((c) => `${c.runId}@${c.round}`).sort()).toEqual(inBudget.candidates.map((c) => `${c.runId}@${c.round}`).sort());
    const pagePicks = new Map(inBudget.recommendations.map((r) => [r.runId, r.pick && `${r.pick.runId}@${r.pick.round}`]));
    expect(p.recommendations.length).toBe(30);
    for (const r of p.recommendations.slice(0, 20)) expect(r.pick && `${r.pick.runId}@${r.pick.round}`).toBe(pagePicks.get(r.runId));
    // the HTML page: the same rows, each pick highlighted as recommended
    const html = await (await get(`/campaigns/${SYN}/candidates?filter=${encodeURIComponent(filter)}`)).text();
    const rows = [...html.matchAll(/<tr data-candidate="([^"]+)"/g)].map((m) => m[1]);
    expect(rows.sort()).toEqual(inBudget.candidates.map((c) => `${c.runId}@${c.round}`).sort());
    const highlighted = [...html.matchAll(/<tr data-candidate="([^"]+)" class="recommended-row">/g)].map((m) => m[1]);
    expect(new Set(highlighted)).toEqual(new Set([...pagePicks.values()].filter(Boolean)));
    // without a budget, the page's picks are the ones `pareto` (and `export --recommended`) give
    const whole = JSON.parse((await cli(cliEnv(home), ['pareto', SYN, '--json'], 60_000)).stdout) as { recommendations: CandidatesJson['recommendations'] };
    const wholePicks = new Map(all.recommendations.map((r) => [r.runId, r.pick && `${r.pick.runId}@${r.pick.round}`]));
    for (const r of whole.recommendations.slice(0, 20)) expect(r.pick && `${r.pick.runId}@${r.pick.round}`).toBe(wholePicks.get(r.runId));
    // and a text table for people (the budget says so)
    const text = await cli(cliEnv(home), ['pareto', SYN, '--max-latency-ms', String(lat), '--max-bytes', String(bytes)], 60_000);
    expect(text.stdout).toContain(`budget ${filter}: ${inBudget.candidates.length} candidate(s) fit`);
    expect((await get(`/campaigns/${SYN}/candidates?filter=${encodeURIComponent('name=1')}`)).status).toBe(400);
    expect((await get(`/campaigns/${SYN}/candidates?sort=${encodeURIComponent('k; DROP TABLE runs')}`)).status).toBe(400);
    const bad = await cli(cliEnv(home), ['pareto', SYN, '--max-bytes', 'lots'], 60_000);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('must be a number');
  }, 120_000);

  it('a weight vector typed on the page gets the pick `export --recommended --weights` exports, validated like the campaign file', async () => {
    const w = { accuracy: 0.3, size: 0, latency: 0.7, energy: 0 };
    const d = (await (await get(`/campaigns/${SYN}/candidates.json?weights=${encodeURIComponent('accuracy=0.3,latency=0.7')}`)).json()) as CandidatesJson;
    const mine = d.recommendations[0];
    expect(mine.runId).toBeNull();
    expect(mine.weights).toEqual(w);
    const exported = recommendedModel(db, SYN, w)!; // what export --recommended resolves to
    expect(mine.pick).toEqual({ runId: exported.runId, round: exported.round });
    const html = await (await get(`/campaigns/${SYN}/candidates?weights=${encodeURIComponent('accuracy=0.3,latency=0.7')}`)).text();
    expect(/<tr id="my-weights">[\s\S]*?<\/tr>/.exec(html)![0]).toContain(`data-pick="${exported.runId}@${exported.round}"`);
    for (const [bad, msg] of [
      ['accuracy=0.3,latency=0.6', 'weights must sum to 1 (got 0.9)'],
      ['acuracy=1', 'unknown objective &quot;acuracy&quot;'],
      ['accuracy=2', 'accuracy must be a number from 0 to 1'],
    ]) {
      const r = await get(`/campaigns/${SYN}/candidates?weights=${encodeURIComponent(bad)}`);
      expect(r.status, bad).toBe(400);
      expect(await r.text()).toContain(msg);
    }
  });

  it('sorts by any objective', async () => {
    for (const [sort, dir, key] of [
      ['latency', 'asc', 'latencyMs'],
      ['bytes', 'desc', 'bytes'],
      ['accuracy', 'desc', 'accuracy'],
    ] as const) {
      const d = (await (await get(`/campaigns/${SYN}/candidates.json?sort=${sort}&dir=${dir}`)).json()) as CandidatesJson;
      const v = d.candidates.map((c) => c[key]);
      expect(v).toEqual([...v].sort((a, b) => (dir === 'asc' ? a - b : b - a)));
    }
  });
});

describe('ship a candidate', () => {
  it('lists the deployable variants the pipeline recorded (not the per-channel int8), the input contract and provenance', async () => {
    const html = await (await get(`/ship/${ID}/run-1/round-1`)).text();
    const variants = [...html.matchAll(/data-variant="([^"]+)"/g)].map((m) => m[1]);
    expect(variants).toEqual(['deployable', 'model', 'model-uint8']); // the deployed first; finetune's float32; quantize's uint8
    expect(html).toContain('[4] float32');
    expect(html).toContain('x / 255');
    expect(html).toContain('cat, dog, owl');
    expect(html).toContain('abc123'); // the campaign file's hash
    expect((await get(`/ship/${ID}/run-1/round-9`)).status).toBe(404);
  });

  it("downloaded over HTTP, the deployed files load in stock @tensorflow/tfjs (no tfjs-node) with the README's own Node snippet", async () => {
    const html = await (await get(`/ship/${ID}/run-1/round-1`)).text();
    const section = html.split('data-variant="deployable"')[1].split('</section>')[0];
    const files = [...section.matchAll(/<a href="(\/artifacts\/[^"]+)" download>([^<]+)<\/a>/g)].map((m) => ({ href: unescape(m[1]), name: m[2] }));
    expect(files.map((f) => f.name).sort()).toEqual(['model.json', 'prunewise.json', 'weights.bin']);
    const dir = tmpHome('shipped');
    fs.mkdirSync(path.join(dir, 'model'));
    for (const f of files) {
      const r = await get(f.href);
      expect(r.status, f.href).toBe(200);
      fs.writeFileSync(path.join(dir, 'model', f.name), Buffer.from(await r.arrayBuffer()));
    }
    const readmeHref = unescape(/<a href="([^"]+README\.md\?variant(?:=|&#x3D;)deployable)"/.exec(section)![1]);
    const readme = await (await get(readmeHref)).text();
    expect(readme).toContain('shape of one example: [4] (float32)');
    const snippet = /```js\n([\s\S]*?)```/.exec(readme)![1];
    fs.writeFileSync(path.join(dir, 'load.js'), snippet);
    const out = execFileSync(process.execPath, ['load.js'], { cwd: dir, env: { ...process.env, NODE_PATH: NODE_MODULES }, encoding: 'utf8', timeout: 60_000 });
    const result = JSON.parse(out.trim().split('\n').pop()!);
    expect(result).toEqual({ predicted: 1, output: [1, 3] }); // the biases (0.1, 0.9, 0.3) decide an all-zero input: the weights loaded
  }, 90_000);

  it('the run page marks the baseline as on the front only when it is, and draws the per-batch loss', async () => {
    const html = await (await get(`/runs/${ID}/run-1`)).text();
    const baselineRow = /<tr><td>baseline<\/td>[\s\S]*?<\/tr>/.exec(html)![0];
    expect(baselineRow).not.toContain('badge">front'); // run-1 round 1 dominates it
    expect(/<tr><td>round 1<\/td>[\s\S]*?<\/tr>/.exec(html)![0]).toContain('badge">front');
    const b = await (await get(`/runs/${ID}/baseline`)).text();
    expect(b).toContain('batchLoss');
  });
});

describe('stages running now', () => {
  it("show the liveness and progress a heartbeat reader gives (the CLI's; here a stand-in provider): worker lost, or progress with ETA", async () => {
    const RUN = 'live-20261129-000000-abcd';
    seedCampaign(db, { id: RUN, name: 'live', runs: 4, rounds: 2, running: 2, seed: 5 });
    // a stand-in for the Temporal heartbeat reader: run-3's stage lost its worker, run-4's reports progress
    const t = await serveDashboard(db, {
      homeDir: home,
      stageProgress: async (campaignId) => [
        { runId: `${campaignId}/run-3`, round: 2, stage: 'finetune', liveness: 'lost' },
        { runId: `${campaignId}/run-4`, round: 2, stage: 'finetune', liveness: 'running', progress: 'epoch 1/2, batch 40/157, 1234 samples/s', etaSeconds: 42 },
      ],
    });
    closers.push(t.close);
    const html = await (await fetch(`${t.base}/campaigns/${RUN}`)).text();
    const rows = /<table id="running">[\s\S]*?<\/table>/.exec(html)![0];
    expect(/run-3<\/a>[\s\S]*?<\/tr>/.exec(rows)![0]).toContain('worker lost — retrying when a worker polls');
    const r4 = /run-4<\/a>[\s\S]*?<\/tr>/.exec(rows)![0];
    expect(r4).toContain('epoch 1/2, batch 40/157, 1234 samples/s · ETA 42.0 s');
    expect(r4).not.toContain('worker lost');
    // without a reader: what SQLite says
    const plain = await (await get(`/campaigns/${RUN}`)).text();
    expect(/<table id="running">[\s\S]*?<\/table>/.exec(plain)![0]).not.toContain('worker lost');
  });
});

describe('notes and tags', () => {
  const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)![1];
  const post = (url: string, body: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(url, { method: 'POST', redirect: 'manual', body: new URLSearchParams(body), headers });

  it('are written through a form of the page (CSRF token), refused without it or cross-site, and shown as text', async () => {
    const page = await (await get(`/runs/${ID}/run-1`)).text();
    const token = csrfOf(page);
    const payload = '<img src=x onerror="alert(1)"><script>alert(2)</script> & done';
    expect((await post(`${base}/notes/${ID}/run-1`, { note: payload, tags: 'x' })).status).toBe(403); // no token
    expect((await post(`${base}/notes/${ID}/run-1`, { note: payload, tags: 'x', _csrf: 'wrong' })).status).toBe(403);
    const cross = await post(`${base}/notes/${ID}/run-1`, { note: payload, tags: 'x', _csrf: token }, { Origin: 'http://evil.example' });
    expect(cross.status).toBe(403);
    expect(await cross.text()).toContain('CSRF');
    const ok = await post(`${base}/notes/${ID}/run-1`, { note: payload, tags: ' keep, ship-it ,keep,, ', _csrf: token });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe(`/runs/${ID}/run-1#notes`);
    const after = await (await get(`/runs/${ID}/run-1`)).text();
    expect(after).not.toContain('<img src=x');
    expect(after).toContain('&lt;img src&#x3D;x onerror&#x3D;&quot;alert(1)&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt; &amp; done');
    expect(after).toMatch(/<span class="tag">keep<\/span> <span class="tag">ship-it<\/span>/);
    // shown in the tables too
    const runs = await (await get(`/campaigns/${ID}`)).text();
    expect(runs).toMatch(/<span class="tag">ship-it<\/span>/);
    const csv = (await (await get(`/campaigns/${ID}/runs.csv`)).text()).trim().split('\n');
    expect(csv[0]).toMatch(/,tags,note$/);
    expect(csv[1]).toContain(',keep;ship-it,');
    const cands = await (await get(`/campaigns/${ID}/candidates`)).text();
    expect(cands).toMatch(/<span class="tag">keep<\/span>/);
    // too long: a 400 naming the field
    const long = await post(`${base}/notes/${ID}/run-1`, { note: 'x', tags: 'y'.repeat(41), _csrf: token });
    expect(long.status).toBe(400);
    expect(await long.text()).toContain('tags:');
    expect((await post(`${base}/notes/${ID}/run-77`, { note: 'x', tags: '', _csrf: token })).status).toBe(404);
  });

  it('--read-only refuses every write and shows no form', async () => {
    const ro = await serveDashboard(db, { homeDir: home, readOnly: true });
    closers.push(ro.close);
    const page = await (await fetch(`${ro.base}/runs/${ID}/run-1`)).text();
    expect(page).not.toContain('id="note-form"');
    expect(page).toContain('read-only');
    const r = await post(`${ro.base}/notes/${ID}/run-1`, { note: 'nope', tags: '', _csrf: 'anything' });
    expect(r.status).toBe(403);
    const tokenOfOther = csrfOf(await (await get(`/runs/${ID}/run-1`)).text());
    const r2 = await post(`${ro.base}/notes/${ID}/run-1`, { note: 'nope', tags: '', _csrf: tokenOfOther });
    expect(r2.status).toBe(403); // another server's token is not this one's either
  });

  it('with an access token (a --host off this machine), every request needs it: once in the URL, then the cookie, or a bearer header', async () => {
    const t = await serveDashboard(db, { homeDir: home, token: 's3cret-token' });
    closers.push(t.close);
    const no = await fetch(`${t.base}/campaigns/${ID}`, { redirect: 'manual' });
    expect(no.status).toBe(401);
    expect(await no.text()).toContain('token');
    expect((await fetch(`${t.base}/campaigns/${ID}?token=wrong`, { redirect: 'manual' })).status).toBe(401);
    expect((await fetch(`${t.base}/artifacts/${ID}/run-1/round-1/deployable/model.json`, { redirect: 'manual' })).status).toBe(401);
    const first = await fetch(`${t.base}/campaigns/${ID}?token=s3cret-token&sort=run`, { redirect: 'manual' });
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe(`/campaigns/${ID}?sort=run`); // the token leaves the URL
    const cookie = first.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    const withCookie = await fetch(`${t.base}/campaigns/${ID}?sort=run`, { headers: { Cookie: cookie.split(';')[0] } });
    expect(withCookie.status).toBe(200);
    expect((await fetch(`${t.base}/campaigns/${ID}`, { headers: { Authorization: 'Bearer s3cret-token' } })).status).toBe(200);
  });
});
