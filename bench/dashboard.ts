// npm run bench:dashboard — how fast the dashboard serves a big campaign.
// Seeds a synthetic campaign (default 10 000 runs × 5 rounds, written through db/ as workers write
// it) into a temporary SQLite file, serves it with the real Express app on loopback, and times
// 20 requests of each view after 3 warm-ups (median; client-side wall time on 127.0.0.1, so an
// upper bound on server time). Side by side: the first dashboard slice's approach (recompute the
// Pareto analysis from the raw metrics on every request), timed once. Last line: one JSON object.
import type { Server } from 'node:http';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { computePareto, openDb } from '../db';
import { createDashboard } from '../dashboard/server';
import { seedCampaign } from './seed-campaign';

const RUNS = Number(process.env.BENCH_RUNS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const N = 20;

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-bench-dash-'));
  const db = openDb(path.join(home, 'prunewise.db'));
  const id = 'bench-dashboard';
  let t = performance.now();
  process.stderr.write(`seeding ${RUNS} runs × ${ROUNDS} rounds …\n`);
  const { points } = seedCampaign(db, { id, runs: RUNS, rounds: ROUNDS, running: 5 });
  const seedS = (performance.now() - t) / 1000;
  process.stderr.write(`seeded ${points} candidate models in ${seedS.toFixed(1)} s (includes one full Pareto analysis)\n`);

  const app = createDashboard(db, { homeDir: home });
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  const time = async (url: string): Promise<{ ms: number; bytes: number }> => {
    const t0 = performance.now();
    const r = await fetch(base + url);
    const body = await r.arrayBuffer();
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return { ms: performance.now() - t0, bytes: body.byteLength };
  };
  const first = await (await fetch(`${base}/campaigns/${id}/runs?sort=latency&dir=asc`)).text();
  const next = /id="next-page"/.test(first) ? /href="([^"]+)" rel="next"/.exec(first)![1].replace(/&amp;/g, '&').replace(/&#x3D;/g, '=') : '';
  const views: Array<[string, string]> = [
    ['runs table, default sort (J)', `/campaigns/${id}/runs`],
    ['runs table, sort latency, page 2 (keyset)', `/campaigns/${id}/runs${next}`],
    ['runs table, filter front=1,accuracy>=0.87', `/campaigns/${id}/runs?sort=bytes&dir=asc&filter=front%3D1,accuracy%3E%3D0.87`],
    ['campaign page', `/campaigns/${id}`],
    ['trade-off data (every candidate)', `/campaigns/${id}/tradeoff.json`],
    ['parallel coordinates page', `/campaigns/${id}/parallel`],
    ['runs.csv (every run)', `/campaigns/${id}/runs.csv`],
  ];
  const results: Array<{ view: string; median: number; min: number; max: number; kb: number }> = [];
  for (const [view, url] of views) {
    for (let i = 0; i < 3; i++) await time(url);
    const ms: number[] = [];
    let bytes = 0;
    for (let i = 0; i < N; i++) {
      const r = await time(url);
      ms.push(r.ms);
      bytes = r.bytes;
    }
    results.push({ view, median: median(ms), min: Math.min(...ms), max: Math.max(...ms), kb: bytes / 1024 });
  }
  // side by side: recomputing the analysis per request (the first slice's approach), once
  t = performance.now();
  computePareto(db, id);
  const recomputeMs = performance.now() - t;

  app.closeStreams();
  server.close();
  server.closeAllConnections();
  fs.rmSync(home, { recursive: true, force: true });

  const runsTableMs = results[0].median;
  const tradeoffMs = results[4].median;
  console.log(`\nprunewise dashboard, ${RUNS} runs × ${ROUNDS} rounds = ${points} candidate models (synthetic), ${os.cpus().length} cores, Node ${process.version}`);
  console.log('| view | median ms | min | max | response KB |');
  console.log('|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.view} | ${r.median.toFixed(1)} | ${r.min.toFixed(1)} | ${r.max.toFixed(1)} | ${r.kb.toFixed(0)} |`);
  console.log(`\nruns table ${runsTableMs.toFixed(1)} ms (target < 150: ${(runsTableMs / 150).toFixed(2)} of budget); trade-off data ${tradeoffMs.toFixed(1)} ms (target < 300: ${(tradeoffMs / 300).toFixed(2)} of budget)`);
  console.log(`recomputing the Pareto analysis per request instead (first slice): ${recomputeMs.toFixed(0)} ms, ${(recomputeMs / runsTableMs).toFixed(0)}× the stored-table page`);
  console.log(
    JSON.stringify({
      runs: RUNS,
      rounds: ROUNDS,
      points,
      runsTableMs: +runsTableMs.toFixed(1),
      tradeoffMs: +tradeoffMs.toFixed(1),
      views: Object.fromEntries(results.map((r) => [r.view, +r.median.toFixed(1)])),
      recomputePerRequestMs: +recomputeMs.toFixed(0),
      storedVsRecompute: +(recomputeMs / runsTableMs).toFixed(1),
      seedS: +seedS.toFixed(1),
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
