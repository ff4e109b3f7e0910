// The Pareto analysis kept in place (analysis/refreshAfterRecord) against a full recompute
// (analysis/refreshPareto on a copy of the database): same flags, runs' rows and counts, the same
// hypervolume up to rounding; retried records change nothing; full recomputes run in a worker.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { computePareto, FullRefresher, readPareto, refreshAfterRecord, refreshPareto, type RefreshOptions } from '../analysis';
import { createStoreActivities } from '../activities/store';
import { hypervolume, hypervolumeContribution, objectiveJ, type ObjectiveValues } from '../core';
import { applyRecord, countRows, createCampaign, openDb, readParetoSummary, type Db, type RecordOp } from '../db';
import { rng } from '../ml/random';
import { tmpHome } from './helpers';

const W = [
  { accuracy: 1, size: 0, latency: 0, energy: 0 },
  { accuracy: 0.5, size: 0.5, latency: 0, energy: 0 },
  { accuracy: 0.4, size: 0, latency: 0.6, energy: 0 },
  { accuracy: 0.25, size: 0.25, latency: 0.25, energy: 0.25 },
  { accuracy: 0.2, size: 0.4, latency: 0.2, energy: 0.2 },
  { accuracy: 0.6, size: 0.1, latency: 0.1, energy: 0.2 },
];
const BASE: ObjectiveValues = { error: 0.1, bytes: 1000, latencyMs: 10, energyJ: 1e-5 };

function campaign(home: string, id: string, constraints: object): Db {
  const db = openDb(path.join(home, 'p.db'));
  createCampaign(db, { id, name: id, spec: { constraints }, specHash: 'h', specFile: 'f', seed: 1 });
  const ops: RecordOp[] = W.map((weights, i) => ({ op: 'run', campaignId: id, runId: `${id}/run-${i + 1}`, k: i + 1, kind: 'run', weights, state: 'running' }));
  applyRecord(db, ops);
  return db;
}

const baselineOps = (id: string, v: ObjectiveValues = BASE): RecordOp[] => [
  { op: 'run', campaignId: id, runId: `${id}/baseline`, k: 0, kind: 'baseline', weights: null, state: 'completed' },
  {
    op: 'stage',
    runId: `${id}/baseline`,
    round: 0,
    stage: 'baseline',
    state: 'completed',
    metrics: { accuracy: 1 - v.error - 0.01, valAccuracy: 1 - v.error, bytes: v.bytes, latencyMs: v.latencyMs, energyJEstimated: v.energyJ },
  },
];

/** A round's stage batch and its completion batch, as the run workflow records them. */
function roundOps(id: string, k: number, round: number, v: ObjectiveValues): { stages: RecordOp[]; done: RecordOp[] } {
  const runId = `${id}/run-${k}`;
  const j = objectiveJ(W[k - 1], v, BASE);
  return {
    stages: [
      { op: 'round', runId, round, state: 'running' },
      { op: 'stage', runId, round, stage: 'validate', state: 'completed', metrics: { accuracy: 1 - v.error - 0.01, valAccuracy: 1 - v.error } },
      {
        op: 'stage',
        runId,
        round,
        stage: 'hardware-adapt',
        state: 'completed',
        metrics: { latencyMs: v.latencyMs, speedup: BASE.latencyMs / v.latencyMs, deployedBytes: v.bytes, energyJEstimated: v.energyJ },
      },
    ],
    done: [
      { op: 'round', runId, round, state: 'completed', objective: j },
      { op: 'stage', runId, round, stage: 'hardware-adapt', state: 'completed', metrics: { objective: j, deployedBytes: v.bytes } },
    ],
  };
}

/** The stored analysis of a campaign, as plain rows. */
function stored(db: Db, id: string) {
  return {
    points: db
      .prepare(
        `SELECT run_id, round, val_error, accuracy, bytes, latency_ms, energy_j, energy_measured, objective, on_front, on_front_2d, violates FROM pareto_points WHERE campaign_id = ? ORDER BY run_id, round`,
      )
      .all(id),
    runRows: db.prepare(`SELECT * FROM run_rows WHERE campaign_id = ? ORDER BY k`).all(id),
    summary: db
      .prepare(
        `SELECT points, front, front_distinct, front_2d, hypervolume, hypervolume_approx, reference_json, constraints_json, pending_full FROM pareto WHERE campaign_id = ?`,
      )
      .get(id) as Record<string, unknown> | undefined,
  };
}

/** Expects the stored (incrementally kept) analysis to equal a full recompute on a copy of the file. */
function expectEqualsFullRecompute(db: Db, home: string, id: string, tag: string): void {
  const copy = path.join(home, `copy-${tag}.db`);
  db.exec(`VACUUM INTO '${copy}'`);
  const other = openDb(copy);
  refreshPareto(other, id);
  const full = stored(other, id);
  other.close();
  const mine = stored(db, id);
  expect(mine.points).toEqual(full.points);
  expect(mine.runRows).toEqual(full.runRows);
  const { hypervolume: hvMine, ...restMine } = mine.summary!;
  const { hypervolume: hvFull, ...restFull } = full.summary!;
  expect(restMine).toEqual(restFull);
  expect(Math.abs((hvMine as number) - (hvFull as number))).toBeLessThan(1e-9);
}

describe('incremental Pareto refresh equals a full recompute', () => {
  for (const seed of [1, 2, 3]) {
    it(`random sequence (seed ${seed}): ties, duplicates, violations, a point dominating several front points`, () => {
      const home = tmpHome(`analysis-${seed}`);
      const id = `c${seed}`;
      // maxLatencyMs and the 2-point accuracy drop both reject some candidates
      const db = campaign(home, id, { maxAccuracyDrop: 2, maxLatencyMs: 8 });
      const record = (ops: RecordOp[], opts?: RefreshOptions) => {
        applyRecord(db, ops);
        return refreshAfterRecord(db, ops, opts);
      };
      expect(record(baselineOps(id))).toEqual({ added: 0, full: [] }); // no round yet: computed in place
      const rand = rng(seed);
      const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
      // coarse values so ties and exact duplicates occur; some past the reference (bytes > 1000, error > 0.12)
      const value = (): ObjectiveValues => ({
        error: pick([0.08, 0.09, 0.1, 0.11, 0.12, 0.13]),
        bytes: pick([200, 400, 600, 800, 1000, 1200]),
        latencyMs: pick([4, 6, 8, 10]),
        energyJ: pick([2e-6, 5e-6, 8e-6, 1.2e-5]),
      });
      const order: Array<[number, number]> = [];
      for (let k = 1; k <= W.length; k++) for (let r = 1; r <= 8; r++) order.push([k, r]);
      // completion order across runs is random (runs run in parallel); within a run, in order
      const next = new Map<number, number>();
      const remaining = order.slice();
      const seq: Array<[number, number]> = [];
      while (remaining.length) {
        const k = pick([...new Set(remaining.map(([kk]) => kk))]);
        const r = (next.get(k) ?? 0) + 1;
        next.set(k, r);
        remaining.splice(
          remaining.findIndex(([kk, rr]) => kk === k && rr === r),
          1,
        );
        seq.push([k, r]);
      }
      const seen: ObjectiveValues[] = [];
      seq.forEach(([k, r], i) => {
        let v = value();
        // three front points (smaller than any grid size, so no grid point dominates them), then one dominating all three
        const victims: Record<number, ObjectiveValues> = {
          5: { error: 0.09, bytes: 160, latencyMs: 5.5, energyJ: 4e-6 },
          10: { error: 0.1, bytes: 170, latencyMs: 5, energyJ: 3e-6 },
          15: { error: 0.086, bytes: 180, latencyMs: 6, energyJ: 3.5e-6 },
        };
        if (victims[i]) v = victims[i];
        if (i === 20) v = { error: 0.085, bytes: 150, latencyMs: 5, energyJ: 3e-6 };
        if (i % 9 === 4 && seen.length) v = { ...pick(seen) }; // an exact duplicate of an earlier candidate
        seen.push(v);
        const { stages, done } = roundOps(id, k, r, v);
        expect(record(stages).full).toEqual([]);
        const res = record(done);
        expect(res).toEqual({ added: 1, full: [] });
        const onFront = (at: number) =>
          db.prepare(`SELECT on_front FROM pareto_points WHERE run_id = ? AND round = ?`).pluck().get(`${id}/run-${seq[at][0]}`, seq[at][1]);
        if (victims[i]) expect(onFront(i)).toBe(1);
        if (i === 20) expect([onFront(5), onFront(10), onFront(15), onFront(20)]).toEqual([0, 0, 0, 1]);
        if (i % 12 === 11) expectEqualsFullRecompute(db, home, id, `${seed}-${i}`);
      });
      expectEqualsFullRecompute(db, home, id, `${seed}-end`);
      // the dominating point took several points off the front, and some candidates break the constraints
      const s = readParetoSummary(db, id)!;
      expect(s.points).toBe(1 + seq.length);
      expect(s.hypervolumeApprox).toBe(false);
      const violating = db.prepare(`SELECT COUNT(*) FROM pareto_points WHERE campaign_id = ? AND violates != ''`).pluck().get(id) as number;
      expect(violating).toBeGreaterThan(0);
      expect(s.front).toBeLessThan(s.points);
      // `prunewise pareto` reads the stored analysis: the same candidates, flags and recommendations as a full computation
      const full = computePareto(db, id)!;
      const read = readPareto(db, id)!;
      const key = (x: { runId: string; round: number; onFront: boolean; onFront2d: boolean; violates: string[] }) =>
        `${x.runId}#${x.round}:${+x.onFront}${+x.onFront2d}:${x.violates.join('+')}`;
      expect(read.points.map(key).sort()).toEqual(full.points.map(key).sort());
      expect(read.recommendations).toEqual(full.recommendations);
      expect(read.hypervolume).toBeCloseTo(full.hypervolume, 9);
      db.close();
    });
  }

  it('a retried record (same completion batch twice, through the store activity) changes nothing', async () => {
    const home = tmpHome('analysis-retry');
    const id = 'retry';
    const db = campaign(home, id, { maxAccuracyDrop: 2 });
    db.close();
    const full = new FullRefresher(path.join(home, 'p.db'));
    const store = createStoreActivities(path.join(home, 'p.db'), { full });
    await store.record(baselineOps(id));
    const a = roundOps(id, 1, 1, { error: 0.09, bytes: 500, latencyMs: 6, energyJ: 5e-6 });
    const b = roundOps(id, 2, 1, { error: 0.095, bytes: 400, latencyMs: 5, energyJ: 4e-6 }); // dominates a
    for (const ops of [a.stages, a.done, b.stages, b.done]) await store.record(ops);
    const check = openDb(path.join(home, 'p.db'));
    const once = { rows: countRows(check, id), analysis: stored(check, id) };
    for (const ops of [b.done, b.done, a.done, a.stages.slice(1), b.done]) await store.record(ops); // retries (the round's `running` op aside: it would reopen the round)
    await full.idle();
    expect(countRows(check, id)).toEqual(once.rows);
    expect(stored(check, id)).toEqual(once.analysis);
    expect(once.analysis.summary).toMatchObject({ points: 3, pending_full: 0 });
    expectEqualsFullRecompute(check, home, id, 'retry');
    check.close();
  });

  it('a baseline measured again after rounds completed: a full recompute in a worker thread, then in-place updates resume', async () => {
    const home = tmpHome('analysis-full');
    const id = 'late';
    const file = path.join(home, 'p.db');
    campaign(home, id, { maxAccuracyDrop: 2 }).close();
    const full = new FullRefresher(file);
    const store = createStoreActivities(file, { full });
    await store.record(baselineOps(id));
    for (const [k, v] of [
      [1, { error: 0.09, bytes: 500, latencyMs: 6, energyJ: 5e-6 }],
      [2, { error: 0.11, bytes: 300, latencyMs: 7, energyJ: 4e-6 }],
    ] as const) {
      const { stages, done } = roundOps(id, k, 1, v);
      await store.record(stages);
      await store.record(done);
    }
    const db = openDb(file);
    // the baseline's numbers change: the reference moves, so every flag and the hypervolume may change
    const moved = baselineOps(id, { ...BASE, bytes: 800 });
    applyRecord(db, moved);
    expect(refreshAfterRecord(db, moved).full).toEqual([id]); // not done on this thread
    await store.record(moved);
    await full.idle();
    expect(readParetoSummary(db, id)!.pendingFull).toBe(0);
    expect(readParetoSummary(db, id)!.reference.bytes).toBe(800);
    expectEqualsFullRecompute(db, home, id, 'late-1');
    const { stages, done } = roundOps(id, 3, 1, { error: 0.1, bytes: 200, latencyMs: 9, energyJ: 3e-6 });
    await store.record(stages);
    await store.record(done);
    await full.idle();
    expect(readParetoSummary(db, id)!.points).toBe(4);
    expectEqualsFullRecompute(db, home, id, 'late-2');
    db.close();
  });

  it('computePareto (`prunewise pareto`) reads only; an estimated contribution is labelled ≈ until a full recompute', () => {
    const home = tmpHome('analysis-approx');
    const id = 'approx';
    const db = campaign(home, id, { maxAccuracyDrop: 5 });
    const record = (ops: RecordOp[], opts?: RefreshOptions) => {
      applyRecord(db, ops);
      return refreshAfterRecord(db, ops, opts);
    };
    record(baselineOps(id));
    const rand = rng(9);
    for (let i = 0; i < 30; i++) {
      const { stages, done } = roundOps(id, 1 + (i % W.length), 1 + Math.floor(i / W.length), {
        error: 0.07 + 0.05 * rand(),
        bytes: 100 + 900 * rand(),
        latencyMs: 2 + 8 * rand(),
        energyJ: 1e-5 * rand(),
      });
      record(stages);
      record(done, { maxExact: 0, samples: 20_000 }); // every contribution estimated
    }
    const before = stored(db, id);
    const exact = computePareto(db, id)!;
    expect(stored(db, id)).toEqual(before); // nothing written
    expect(exact.hypervolumeApprox).toBe(false);
    const s = readParetoSummary(db, id)!;
    expect(s.hypervolumeApprox).toBe(true);
    expect(Math.abs(s.hypervolume - exact.hypervolume)).toBeLessThan(0.01 * exact.hypervolume);
    refreshPareto(db, id);
    expect(readParetoSummary(db, id)!.hypervolumeApprox).toBe(false);
    expect(readParetoSummary(db, id)!.hypervolume).toBe(exact.hypervolume);
    db.close();
  });
});

describe('hypervolume contribution (core)', () => {
  it('equals the hypervolume with the point minus without it, exactly; the estimate is close and labelled', () => {
    const rand = rng(5);
    for (let t = 0; t < 20; t++) {
      const others = Array.from({ length: 25 }, () => [rand(), rand(), rand(), rand()].map((x) => Math.round(x * 10) / 8)); // some past ref = 1
      const p = [rand(), rand(), rand(), rand()].map((x) => Math.round(x * 10) / 10);
      const ref = [1, 1, 1, 1];
      const c = hypervolumeContribution(p, others, ref);
      expect(c.exact).toBe(true);
      expect(Math.abs(c.volume - (hypervolume([...others, p], ref) - hypervolume(others, ref)))).toBeLessThan(1e-12);
      const est = hypervolumeContribution(p, others, ref, { maxExact: 0, samples: 20_000 });
      expect(Math.abs(est.volume - c.volume)).toBeLessThan(0.01);
    }
    expect(hypervolumeContribution([0.5, 0.5], [[0.5, 0.5]], [1, 1])).toEqual({ volume: 0, exact: true }); // a duplicate adds nothing
    expect(hypervolumeContribution([0.5, 1], [], [1, 1])).toEqual({ volume: 0, exact: true }); // on the reference: nothing
  });
});
