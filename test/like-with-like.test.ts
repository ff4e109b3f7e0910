// Like with like: a candidate is (run, round, deployed variant). An 8-bit candidate's objective
// values are its 8-bit variant's (validation error, bytes), J stays normalised to the float32
// baseline (quantization gets its credit), and the ratios shown to people compare an 8-bit model
// with the baseline's 8-bit variant, labelled, and a float32 model with the float32 baseline.
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computePareto, refreshPareto } from '../analysis';
import { objectiveJ, objectiveValues } from '../core';
import { vsBaseline } from '../dashboard/present';
import { applyRecord, baselineOf, createCampaign, openDb, type RecordOp } from '../db';
import { tmpHome, serveDashboard } from './helpers';

const ID = 'lwl-20261129-000000-abcd';
const BASE = {
  accuracy: 0.88,
  valAccuracy: 0.9,
  bytes: 4000,
  latencyMs: 10,
  energyJEstimated: 1e-5,
  // the baseline's own 8-bit (uint8) variant
  int8Accuracy: 0.876,
  int8ValAccuracy: 0.897,
  int8Bytes: 1000,
  energyJEstimatedInt8: 0.5e-5,
};

let close: () => Promise<void>;
let base: string;
const db = openDb(path.join(tmpHome('lwl'), 'prunewise.db'));

beforeAll(async () => {
  createCampaign(db, { id: ID, name: 'lwl', spec: { constraints: { maxAccuracyDrop: 2 } }, specHash: 'x', specFile: '/x.yaml', seed: 1 });
  const bl = `${ID}/baseline`;
  const runId = `${ID}/run-1`;
  const ops: RecordOp[] = [
    { op: 'run', campaignId: ID, runId: bl, k: 0, kind: 'baseline', weights: null, state: 'completed' },
    { op: 'stage', runId: bl, round: 0, stage: 'baseline', state: 'completed', metrics: BASE },
    { op: 'run', campaignId: ID, runId, k: 1, kind: 'run', weights: { accuracy: 0.6, size: 0.4, latency: 0, energy: 0 }, state: 'completed' },
    // round 1 deploys its 8-bit variant (800 bytes), round 2 its float32 weights (2000 bytes)
    { op: 'stage', runId, round: 1, stage: 'validate', state: 'completed', metrics: { accuracy: 0.88, valAccuracy: 0.9 } },
    { op: 'stage', runId, round: 1, stage: 'quantize', state: 'completed', metrics: { int8Accuracy: 0.87, int8ValAccuracy: 0.89, int8Bytes: 800 } },
    {
      op: 'stage',
      runId,
      round: 1,
      stage: 'hardware-adapt',
      state: 'completed',
      metrics: { latencyMs: 8, speedup: 1.25, energyJEstimated: 0.4e-5, deployedAccuracy: 0.87, deployedBytes: 800, deployedInt8: 1 },
    },
    { op: 'round', runId, round: 1, state: 'completed', objective: 0.5 },
    { op: 'stage', runId, round: 2, stage: 'validate', state: 'completed', metrics: { accuracy: 0.875, valAccuracy: 0.893 } },
    {
      op: 'stage',
      runId,
      round: 2,
      stage: 'hardware-adapt',
      state: 'completed',
      metrics: { latencyMs: 6, speedup: 10 / 6, energyJEstimated: 0.5e-5, deployedAccuracy: 0.875, deployedBytes: 2000, deployedInt8: 0 },
    },
    { op: 'round', runId, round: 2, state: 'completed', objective: 0.6 },
  ];
  applyRecord(db, ops);
  refreshPareto(db, ID);
  ({ base, close } = await serveDashboard(db, { pollMs: 100 }));
});

afterAll(() => close());

describe('like with like (8-bit vs float32 candidates)', () => {
  it("an 8-bit candidate's objective values are its 8-bit variant's; J is normalised to the float32 baseline", () => {
    const p = computePareto(db, ID)!;
    const r1 = p.points.find((x) => x.round === 1)!;
    const r2 = p.points.find((x) => x.round === 2)!;
    expect(r1.deployedInt8).toBe(true);
    expect(r1.values.error).toBeCloseTo(1 - 0.89, 12); // the 8-bit variant's validation error, not the float32 one's (0.10)
    expect(r1.values.bytes).toBe(800);
    expect(r1.accuracy).toBe(0.87); // test accuracy of exactly the deployed files
    expect(r2.deployedInt8).toBe(false);
    expect(r2.values.error).toBeCloseTo(1 - 0.893, 12);
    expect(r2.accuracy).toBe(0.875);
    // J: the float32 baseline scores 1; the 8-bit model gets the credit for its bytes
    const w = { accuracy: 0.6, size: 0.4, latency: 0, energy: 0 };
    expect(objectiveJ(w, r1.values, p.baseline)).toBeCloseTo(0.6 * (0.11 / 0.1) + 0.4 * (800 / 4000), 12);
    expect(objectiveValues({ ...BASE }, BASE.bytes).error).toBeCloseTo(0.1, 12); // the baseline stays float32
  });

  it('ratios shown: the 8-bit model against the uint8 baseline, the float32 model against the float32 baseline, labelled', async () => {
    const b = baselineOf(db, ID)!;
    expect(b.int8).toEqual({ accuracy: 0.876, bytes: 1000, energyJ: 0.5e-5 });
    const u8 = vsBaseline({ accuracy: 0.87, bytes: 800, latencyMs: 8, energyJ: 0.4e-5, deployedInt8: true }, b);
    expect(u8.vs).toBe('uint8');
    expect(u8.sizeX).toBeCloseTo(1000 / 800, 12); // not 4000 / 800 = 5×
    expect(u8.energyX).toBeCloseTo(0.5e-5 / 0.4e-5, 12);
    expect(u8.deltaPoints).toBeCloseTo((0.87 - 0.876) * 100, 9);
    expect(u8.latencyX).toBeCloseTo(10 / 8, 12);
    const f32 = vsBaseline({ accuracy: 0.875, bytes: 2000, latencyMs: 6, energyJ: 0.5e-5, deployedInt8: false }, b);
    expect(f32.vs).toBe('float32');
    expect(f32.sizeX).toBeCloseTo(4000 / 2000, 12);

    // the run page says which baseline each ratio is against
    const html = await (await fetch(`${base}/runs/${ID}/run-1`)).text();
    const row = (round: number) => html.split('<tr>').find((r) => r.startsWith(`<td>round ${round}`) || r.startsWith(`<td>${round}</td>`)) ?? '';
    expect(row(1)).toContain('1.25×');
    expect(row(1)).toContain('>u8</abbr>');
    expect(row(2)).toContain('2.00×');
    expect(row(2)).not.toContain('u8</abbr>');
    const csv = await (await fetch(`${base}/campaigns/${ID}/runs.csv`)).text();
    expect(csv.split('\n')[0]).toContain('compared_with');
  });

  it("the campaign page's recommended model per weight vector is the one `pareto` recommends (one rule)", async () => {
    const rec = computePareto(db, ID)!.recommendations[0];
    expect(rec.pick).not.toBeNull();
    const html = await (await fetch(`${base}/campaigns/${ID}`)).text();
    const table = html.slice(html.indexOf('Recommended model per weight vector'), html.indexOf('<h2>Runs</h2>'));
    expect(table).toContain(`href="/runs/${rec.pick!.runId}"`);
    expect(table).toContain(rec.pick!.round === 0 ? 'the baseline' : `run-1 round ${rec.pick!.round}`);
    expect(table).toContain(rec.objective!.toFixed(4));
  });
});
