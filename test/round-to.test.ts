// pruning.roundTo: auto (issue 13 §4): the choice logic from channel-step curves, the per-runtime
// resolution, adaptive rounding of small groups in plans and latency-table grids, the campaign field,
// and the probes really timed in a runtime's child process (shapes only: tests never assert timings).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadCampaignFile } from '../campaign/load';
import {
  analyze,
  AUTO_ROUND_TO,
  buildZooModel,
  CHANNEL_STEP_PROBES,
  chooseRoundTo,
  groupRoundTo,
  initBackend,
  measureChannelStepsOn,
  planForFlops,
  planLatencyTable,
  planLocal,
  planOptions,
  roundingCost,
  roundToOf,
  RUNTIMES,
  saveModel,
  scoreGroups,
  type ChannelStepCurve,
  type PruningPolicy,
} from '../ml';

beforeAll(async () => {
  await initBackend();
});

/** A curve over couts lo..hi: time = f(c) (ms). */
function curve(lo: number, hi: number, f: (c: number) => number): ChannelStepCurve {
  const couts: number[] = [];
  for (let c = lo; c <= hi; c++) couts.push(c);
  return { probe: 'synthetic', couts, ms: couts.map(f) };
}
const staircase =
  (period: number, perStep = 1) =>
  (c: number) =>
    Math.ceil(c / period) * perStep;

describe('chooseRoundTo: the multiple a runtime rewards, from channel-step curves', () => {
  it('picks the period of a staircase: rounding up to it costs nothing, past it costs a step', () => {
    expect(chooseRoundTo([curve(16, 64, staircase(8))]).roundTo).toBe(8);
    expect(chooseRoundTo([curve(16, 64, staircase(4))]).roundTo).toBe(4);
    expect(chooseRoundTo([curve(16, 64, staircase(16))]).roundTo).toBe(16);
    // a staircase plus a fixed cost per call (the probes' real shape)
    expect(chooseRoundTo([curve(16, 64, (c) => 0.5 + 0.1 * Math.ceil(c / 8))]).roundTo).toBe(8);
  });

  it('keeps 1 on a smooth curve (time proportional to channels: every rounded-up channel costs time)', () => {
    const r = chooseRoundTo([curve(16, 64, (c) => 0.02 * c)]);
    expect(r.roundTo).toBe(1);
    // measured cost equals the no-staircase cost there
    for (const c of r.costs) expect(c.measured).toBeCloseTo(c.linear, 10);
  });

  it('is not fooled by a noise spike at a multiple, nor by noise that makes a smaller count look dearer (times made non-decreasing)', () => {
    // period 8 with ±1 % noise, and one count timed 3× too slow
    const noisy = curve(16, 64, (c) => Math.ceil(c / 8) * (1 + 0.01 * Math.sin(c * 7.3)) * (c === 35 ? 3 : 1));
    expect(chooseRoundTo([noisy]).roundTo).toBe(8);
  });

  it('averages over curves: one staircase among smooth curves does not decide alone', () => {
    const smooth = curve(16, 64, (c) => 0.02 * c);
    expect(chooseRoundTo([curve(16, 64, staircase(8)), smooth, smooth]).roundTo).toBe(1);
    expect(chooseRoundTo([curve(16, 64, staircase(8)), curve(8, 40, staircase(8))]).roundTo).toBe(8);
  });

  it('roundingCost: the mean of t(⌈c/r⌉·r) / t(c) − 1 over the counts that are not multiples', () => {
    const c = { probe: 'x', couts: [5, 6, 7, 8], ms: [1, 2, 3, 4] };
    // r = 2: c = 5 → 6 (2/1 − 1 = 1), c = 7 → 8 (4/3 − 1); linear: 6/5 − 1, 8/7 − 1
    const r = roundingCost(c, 2);
    expect(r.points).toBe(2);
    expect(r.measured).toBeCloseTo((1 + 1 / 3) / 2, 12);
    expect(r.linear).toBeCloseTo((1 / 5 + 1 / 7) / 2, 12);
    // r = 4: 5, 6, 7 → 8
    expect(roundingCost(c, 4).points).toBe(3);
    // a multiple beyond the curve is not judged
    expect(roundingCost({ probe: 'x', couts: [9, 10], ms: [1, 1] }, 8).points).toBe(0);
  });

  it('refuses curves with nothing to judge a candidate by, naming it', () => {
    expect(() => chooseRoundTo([{ probe: 'x', couts: [9, 10], ms: [1, 1] }], { candidates: [1, 8] })).toThrow(/no curve spans a multiple of 8/);
  });
});

describe('roundTo: auto resolves per runtime; small groups round adaptively', () => {
  const policy = (roundTo: number | 'auto', runtime?: (typeof RUNTIMES)[number]) =>
    ({ minUnits: 2, roundTo, runtime, maxLayerRatio: 0.9, protect: [] }) as unknown as PruningPolicy;

  it('every runtime has a value and a reason; auto takes the runtime’s, a number stays as the user set it', () => {
    for (const rt of RUNTIMES) {
      expect(Number.isInteger(AUTO_ROUND_TO[rt].roundTo) && AUTO_ROUND_TO[rt].roundTo >= 1).toBe(true);
      expect(AUTO_ROUND_TO[rt].how.length).toBeGreaterThan(10);
      expect(roundToOf(policy('auto', rt))).toEqual({ roundTo: AUTO_ROUND_TO[rt].roundTo, adaptive: true });
    }
    expect(roundToOf(policy('auto'))).toEqual({ roundTo: AUTO_ROUND_TO['tfjs-wasm'].roundTo, adaptive: true }); // older specs: no runtime
    expect(roundToOf(policy(4, 'tfjs-node'))).toEqual({ roundTo: 4, adaptive: false });
    expect(planOptions(policy(4))).toEqual({ minUnits: 2, roundTo: 4, maxRatio: 0.9, protect: [] });
    expect(planOptions(policy('auto', 'tfjs-wasm'))).toMatchObject({ roundTo: AUTO_ROUND_TO['tfjs-wasm'].roundTo, roundToAdaptive: true });
  });

  it('groupRoundTo: the runtime multiple for big groups, the largest power of two ≤ size/8 below 8× it, the user’s number everywhere', () => {
    const auto = { roundTo: 8, roundToAdaptive: true };
    expect(groupRoundTo(64, auto)).toBe(8);
    expect(groupRoundTo(120, auto)).toBe(8);
    expect(groupRoundTo(32, auto)).toBe(4);
    expect(groupRoundTo(16, auto)).toBe(2);
    expect(groupRoundTo(6, auto)).toBe(1);
    expect(groupRoundTo(6, { roundTo: 8 })).toBe(8); // the user's number is kept as set
    expect(groupRoundTo(100, {})).toBe(1);
  });

  it('plans with auto rounding: big groups keep multiples of the runtime’s value, small ones still shrink; the FLOPs target is reached', async () => {
    const model = buildZooModel('vgg-small', 1, [28, 28, 1], 10);
    const graph = analyze(model);
    const scores = scoreGroups(model, 'l1', { seed: 1 }, graph);
    const o = { minUnits: 2, roundTo: 8, roundToAdaptive: true, maxRatio: 0.9 };
    const plan = planLocal(graph, scores, 0.4, o);
    for (const g of graph.groups) {
      const kept = plan[g.name]?.length ?? g.size;
      expect(kept % groupRoundTo(g.size, o)).toBe(0);
    }
    expect(plan.conv1.length).toBeLessThan(16); // a 16-channel group shrinks (rounded to 2), not frozen as with roundTo 8
    expect(plan.conv5.length % 8).toBe(0);
    const { flopsRemoved, plan: p2 } = await planForFlops(model, graph, scores, 0.6, 'local', o);
    expect(flopsRemoved).toBeGreaterThanOrEqual(0.6);
    for (const g of graph.groups) expect((p2[g.name]?.length ?? g.size) % groupRoundTo(g.size, o)).toBe(0);
    model.dispose();
  });

  it('the latency table’s grid holds exactly the counts an adaptive plan can produce', () => {
    const model = buildZooModel('vgg-small', 1, [28, 28, 1], 10);
    const graph = analyze(model);
    const o = { minUnits: 2, roundTo: 8, roundToAdaptive: true, maxPoints: 1000 };
    const conv1 = planLatencyTable(model, graph, o).find((e) => e.layers.includes('conv1'))!;
    expect(conv1.cout).toEqual([2, 4, 6, 8, 10, 12, 14, 16]);
    const conv5 = planLatencyTable(model, graph, o).find((e) => e.layers.includes('conv5'))!;
    expect(conv5.cout).toEqual([2, 8, 16, 24, 32, 40, 48, 56, 64]);
    model.dispose();
  });
});

describe('the campaign field', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-roundto-'));
  const good = { name: 'ok', model: 'mlp', dataset: { name: 'fashion-mnist' }, weights: [{ accuracy: 1 }] };
  const load = (pruning: object) => {
    const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    fs.writeFileSync(f, stringify({ ...good, pruning }));
    return loadCampaignFile(f).spec;
  };

  it('defaults to 1 (as before), accepts a number or auto, refuses anything else naming the field', () => {
    expect(load({}).pruning.roundTo).toBe(1);
    expect(load({ roundTo: 8 }).pruning.roundTo).toBe(8);
    expect(load({ roundTo: 'auto' }).pruning.roundTo).toBe('auto');
    expect(() => load({ roundTo: 'fast' })).toThrow(/: pruning\.roundTo: /);
    expect(() => load({ roundTo: 0 })).toThrow(/: pruning\.roundTo: /);
  });
});

describe('channel-step probes timed in a runtime (real child process)', () => {
  it('tfjs-wasm: one curve per probe, every count timed once, times positive', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-steps-'));
    const m = buildZooModel('mlp', 1, [4, 4, 1], 2);
    await saveModel(m, dir);
    m.dispose();
    const curves = await measureChannelStepsOn('tfjs-wasm', dir, { batchSize: 2, warmupRuns: 0, runs: 1 });
    expect(curves.map((c) => c.probe)).toEqual(CHANNEL_STEP_PROBES.map((p) => p.probe));
    curves.forEach((c, i) => {
      expect(c.couts[0]).toBe(CHANNEL_STEP_PROBES[i].couts[0]);
      expect(c.couts.at(-1)).toBe(CHANNEL_STEP_PROBES[i].couts[1]);
      expect(c.ms).toHaveLength(c.couts.length);
      expect(c.ms.every((t) => t > 0 && Number.isFinite(t))).toBe(true);
    });
    const choice = chooseRoundTo(curves);
    expect(choice.costs.map((c) => c.roundTo)).toEqual([1, 2, 4, 8, 16]);
  }, 120_000);
});
