// npm run bench:dashboard — how fast the dashboard serves a big campaign.
// Seeds a synthetic campaign (default 10 000 runs × 5 rounds, written through db/ as workers write
// it) into a temporary SQLite file, serves it with the real Express app on loopback, and times
// 20 requests of each view after 3 warm-ups (median; client-side wall time on 127.0.0.1, so an
// upper bound on server time). Then the store path at that scale: APPEND new completed rounds one
// at a time (each round's completion batch through applyRecord + refreshAfterRecord, as the
// `record` activity runs them) and time the in-place Pareto refresh per round, and the longest
// event-loop block (monitorEventLoopDelay). Side by side: one full recompute (timed while
// seeding), as a ratio; then a full computePareto checks the incrementally kept analysis.
// Last line: one JSON object.
import type { Server } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { computePareto, refreshAfterRecord, refreshPareto } from '../analysis';
import { objectiveJ, type ObjectiveValues } from '../core';
import { applyRecord, openDb, readParetoPoint, readParetoPoints, readParetoSummary, type Db, type RecordOp } from '../db';
import { rng } from '../ml/random';
import { createDashboard } from '../dashboard/server';
import { seedCampaign } from './seed-campaign';

const RUNS = Number(process.env.BENCH_RUNS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const N = 20;
const APPEND = Number(process.env.BENCH_APPEND ?? 200);

/** Linear-interpolated quantile q (0–1) of xs. */
function quantile(xs: number[], q: number): number {
  const s = xs.slice().sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
}
const median = (xs: number[]) => quantile(xs, 0.5);

async function main(): Promise<void> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-bench-dash-'));
  const db = openDb(path.join(home, 'prunewise.db'));
  const id = 'bench-dashboard';
  let t = performance.now();
  process.stderr.write(`seeding ${RUNS} runs × ${ROUNDS} rounds …\n`);
  const { points } = seedCampaign(db, { id, runs: RUNS, rounds: ROUNDS, running: 5, analyse: false });
  const seedS = (performance.now() - t) / 1000;
  process.stderr.write(`seeded ${points} candidate models in ${seedS.toFixed(1)} s; one full Pareto analysis …\n`);
  t = performance.now();
  refreshPareto(db, id);
  const fullMs = performance.now() - t;
  process.stderr.write(`full analysis (refreshPareto) ${(fullMs / 1000).toFixed(1)} s\n`);

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
  const next = /id="next-page"/.test(first)
    ? /href="([^"]+)" rel="next"/
        .exec(first)![1]
        .replace(/&amp;/g, '&')
        .replace(/&#x3D;/g, '=')
    : '';
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
  app.closeStreams();
  server.close();
  server.closeAllConnections();

  // the store path: APPEND completed rounds, one record batch each
  process.stderr.write(`appending ${APPEND} completed rounds through applyRecord + refreshAfterRecord …\n`);
  const before = readParetoSummary(db, id)!;
  const inc = await appendRounds(db, id, APPEND);
  const after = readParetoSummary(db, id)!;
  // check: the incrementally kept analysis against a full recompute
  process.stderr.write(`checking against a full computePareto …\n`);
  t = performance.now();
  const check = computePareto(db, id)!;
  const computeMs = performance.now() - t;
  const stored = new Map(readParetoPoints(db, id).map((p) => [`${p.runId}#${p.round}`, p]));
  const flagMismatches = check.points.filter((p) => {
    const s = stored.get(`${p.runId}#${p.round}`);
    return !s || s.onFront !== p.onFront || s.onFront2d !== p.onFront2d;
  }).length;
  const hvDiff = Math.abs(after.hypervolume - check.hypervolume);
  db.close();
  fs.rmSync(home, { recursive: true, force: true });

  const runsTableMs = results[0].median;
  const tradeoffMs = results[4].median;
  console.log(
    `\nprunewise dashboard, ${RUNS} runs × ${ROUNDS} rounds = ${points} candidate models (synthetic), ${os.cpus().length} cores, Node ${process.version}`,
  );
  console.log('| view | median ms | min | max | response KB |');
  console.log('|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.view} | ${r.median.toFixed(1)} | ${r.min.toFixed(1)} | ${r.max.toFixed(1)} | ${r.kb.toFixed(0)} |`);
  console.log(
    `\nruns table ${runsTableMs.toFixed(1)} ms (target < 150: ${(runsTableMs / 150).toFixed(2)} of budget); trade-off data ${tradeoffMs.toFixed(1)} ms (target < 300: ${(tradeoffMs / 300).toFixed(2)} of budget)`,
  );
  console.log(
    `\nstore path, ${APPEND} completed rounds appended one at a time to ${before.points} candidates (front ${before.front} → ${after.front}; ${inc.onFront} of the new rounds joined the front; ${inc.full} needed a full recompute):`,
  );
  console.log('| per completed round | median ms | p95 ms | max ms |');
  console.log('|---|---|---|---|');
  console.log(
    `| Pareto refresh (refreshAfterRecord) | ${median(inc.refreshMs).toFixed(1)} | ${quantile(inc.refreshMs, 0.95).toFixed(1)} | ${Math.max(...inc.refreshMs).toFixed(1)} |`,
  );
  console.log(
    `| record = applyRecord + refresh (one synchronous block) | ${median(inc.recordMs).toFixed(1)} | ${quantile(inc.recordMs, 0.95).toFixed(1)} | ${Math.max(...inc.recordMs).toFixed(1)} |`,
  );
  console.log(
    `longest event-loop block while appending (monitorEventLoopDelay max): ${inc.loopMaxMs.toFixed(1)} ms (target ≤ 1000); refresh p95 ${quantile(inc.refreshMs, 0.95).toFixed(1)} ms (target ≤ 1000)`,
  );
  console.log(
    `hypervolume ${before.hypervolume.toFixed(6)} → ${after.hypervolume.toFixed(6)}${after.hypervolumeApprox ? ' (≈: some contributions estimated)' : ' (exact)'}; full computePareto after: ${check.hypervolume.toFixed(6)} (|Δ| ${hvDiff.toExponential(2)}), front flags differing: ${flagMismatches}`,
  );
  console.log(
    `full recompute (refreshPareto, while seeding) ${(fullMs / 1000).toFixed(1)} s vs incremental median ${median(inc.refreshMs).toFixed(1)} ms: ${(fullMs / median(inc.refreshMs)).toFixed(0)}×; computePareto (read-only, \`prunewise pareto\`) ${(computeMs / 1000).toFixed(1)} s`,
  );
  console.log(
    JSON.stringify({
      runs: RUNS,
      rounds: ROUNDS,
      points,
      runsTableMs: +runsTableMs.toFixed(1),
      tradeoffMs: +tradeoffMs.toFixed(1),
      views: Object.fromEntries(results.map((r) => [r.view, +r.median.toFixed(1)])),
      appended: APPEND,
      refreshMsMedian: +median(inc.refreshMs).toFixed(2),
      refreshMsP95: +quantile(inc.refreshMs, 0.95).toFixed(2),
      refreshMsMax: +Math.max(...inc.refreshMs).toFixed(2),
      recordMsP95: +quantile(inc.recordMs, 0.95).toFixed(2),
      eventLoopMaxBlockMs: +inc.loopMaxMs.toFixed(1),
      newOnFront: inc.onFront,
      fullRecomputes: inc.full,
      front: after.front,
      hypervolumeApprox: after.hypervolumeApprox,
      hypervolumeDiffVsFull: hvDiff,
      frontFlagMismatches: flagMismatches,
      fullRefreshMs: +fullMs.toFixed(0),
      computeParetoMs: +computeMs.toFixed(0),
      fullVsIncremental: +(fullMs / median(inc.refreshMs)).toFixed(0),
      seedS: +seedS.toFixed(1),
    }),
  );
}

/**
 * Appends `n` completed rounds to campaign `id` (new runs, five rounds each, values jittered
 * ±3 % around random stored candidates, so many land near or on the front): each round's stage
 * batches first, then its completion batch through applyRecord + refreshAfterRecord, timed.
 */
async function appendRounds(
  db: Db,
  id: string,
  n: number,
): Promise<{ refreshMs: number[]; recordMs: number[]; loopMaxMs: number; onFront: number; full: number }> {
  const rand = rng(7);
  const pts = readParetoPoints(db, id);
  const base = pts.find((p) => p.round === 0)!;
  const baseline: ObjectiveValues = base.values;
  const k0 = Math.max(...pts.map((p) => p.k));
  const refreshMs: number[] = [];
  const recordMs: number[] = [];
  let onFront = 0;
  let full = 0;
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  for (let i = 0; i < n; i++) {
    const k = k0 + 1 + Math.floor(i / 5);
    const round = (i % 5) + 1;
    const runId = `${id}/run-${k}`;
    const weights = { accuracy: 0.4, size: 0.2, latency: 0.2, energy: 0.2 };
    const like = pts[1 + Math.floor(rand() * (pts.length - 1))].values;
    const j = () => 1 + (rand() - 0.5) * 0.06;
    const v: ObjectiveValues = { error: like.error * j(), bytes: Math.round(like.bytes * j()), latencyMs: like.latencyMs * j(), energyJ: like.energyJ * j() };
    const prior: RecordOp[] = [
      ...(round === 1 ? [{ op: 'run', campaignId: id, runId, k, kind: 'run', weights, state: 'running' } as RecordOp] : []),
      { op: 'round', runId, round, state: 'running' },
      {
        op: 'stage',
        runId,
        round,
        stage: 'validate',
        state: 'completed',
        attempts: 1,
        ms: 300,
        metrics: { accuracy: 1 - v.error - 0.003, valAccuracy: 1 - v.error },
      },
      {
        op: 'stage',
        runId,
        round,
        stage: 'hardware-adapt',
        state: 'completed',
        attempts: 1,
        ms: 500,
        metrics: { latencyMs: v.latencyMs, speedup: baseline.latencyMs / v.latencyMs, deployedBytes: v.bytes, energyJEstimated: v.energyJ },
      },
    ];
    applyRecord(db, prior);
    refreshAfterRecord(db, prior);
    const done: RecordOp[] = [
      { op: 'round', runId, round, state: 'completed', objective: objectiveJ(weights, v, baseline) },
      {
        op: 'stage',
        runId,
        round,
        stage: 'hardware-adapt',
        state: 'completed',
        metrics: { objective: objectiveJ(weights, v, baseline), deployedBytes: v.bytes },
      },
    ];
    await new Promise((r) => setImmediate(r)); // let the delay monitor see each block on its own
    const t0 = performance.now();
    applyRecord(db, done);
    const t1 = performance.now();
    const r = refreshAfterRecord(db, done);
    const t2 = performance.now();
    refreshMs.push(t2 - t1);
    recordMs.push(t2 - t0);
    full += r.full.length;
    if (readParetoPoint(db, id, runId, round)?.onFront) onFront++;
  }
  await new Promise((r) => setTimeout(r, 20));
  h.disable();
  return { refreshMs, recordMs, loopMaxMs: h.max / 1e6, onFront, full };
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
