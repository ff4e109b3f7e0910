// The latency model for decisions (ml/latency-table.ts): the table's key, bounded predictions, the
// allocation deciding on predicted latencies, and target.latencyTable in campaign files. Hand-made
// tables (timings from a formula) keep these exact; no test asserts a wall-clock time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadCampaignFile } from '../campaign/load';
import {
  monotone,
  allocate,
  analyze,
  boundedLatencyDelta,
  buildPrunedArchitecture,
  buildZooModel,
  initBackend,
  LATENCY_TABLE_FORMAT,
  latencyTableSha256,
  loadModel,
  measureLatencyTable,
  measureSensitivity,
  parseLatencyTable,
  planLatencyTable,
  planRound,
  predictLatencyMs,
  saveModel,
  serializeLatencyTable,
  tableMismatch,
  type LatencyEntry,
  type LatencyTable,
  type PruningPolicy,
  type Sensitivity,
} from '../ml';
import { tmpHome } from './helpers';

const GRID = { minUnits: 4, roundTo: 1, maxPoints: 4 };

/** A table whose timings come from a formula: ms = f(entry, cin, cout). */
function handMade(
  model: ReturnType<typeof buildZooModel>,
  f: (e: LatencyEntry, cin: number, cout: number) => number,
  over: Partial<LatencyTable> = {},
): LatencyTable {
  const entries = planLatencyTable(model, analyze(model), GRID);
  for (const e of entries) e.ms = e.cin.map((ci) => (e.producer ? e.cout : [0]).map((co) => f(e, ci, co)));
  return {
    format: LATENCY_TABLE_FORMAT,
    backend: 'wasm',
    target: 'local',
    batchSize: 32,
    tfjsVersion: '4.22.0',
    method: 'layer-by-layer',
    interpolation: 'linear',
    warmupRuns: 0,
    runs: 1,
    overheadMs: 0.2,
    baselineMs: 50,
    entries,
    ...over,
  };
}

/** Dense and Conv2D cost ∝ cin·cout (bilinear: interpolation is exact on it), the rest ∝ cin. */
const macLike = (e: LatencyEntry, cin: number, cout: number) => (e.producer ? 0.001 * cin * cout : 0.002 * cin);

const prunedLenet = (model: ReturnType<typeof buildZooModel>, keep: Record<string, number>) =>
  buildPrunedArchitecture(model, Object.fromEntries(Object.entries(keep).map(([g, n]) => [g, Array.from({ length: n }, (_, i) => i)])), analyze(model));

beforeAll(async () => {
  await initBackend();
});

describe('latency table: the key', () => {
  it('the same table always has the same sha256, whatever the key order of the file it was read from', () => {
    const model = buildZooModel('lenet5', 1, [28, 28, 1], 10);
    const t = handMade(model, macLike);
    const key = latencyTableSha256(t);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(latencyTableSha256(handMade(model, macLike))).toBe(key);
    expect(latencyTableSha256(parseLatencyTable(serializeLatencyTable(t)))).toBe(key);
    // the same content written with another key order and indentation
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(serializeLatencyTable(t))).reverse()), null, 2);
    expect(latencyTableSha256(parseLatencyTable(reordered))).toBe(key);
    // a different timing is a different table
    expect(latencyTableSha256(handMade(model, (e, ci, co) => macLike(e, ci, co) * 1.01))).not.toBe(key);
  });
});

describe('latency table: timings made consistent', () => {
  it('a load spike on a small configuration never makes fewer channels slower than more (monotone in both axes)', () => {
    // cin 4, 8, 16 × cout 8, 16: the spike at (4, 8) would predict a pruned layer dearer than the whole one
    const spiked = [
      [9.0, 0.4],
      [0.3, 0.6],
      [0.5, 1.0],
    ];
    const m = monotone(spiked);
    expect(m).toEqual([
      [0.3, 0.4],
      [0.3, 0.6],
      [0.5, 1.0],
    ]);
    for (let i = 0; i < m.length; i++)
      for (let j = 0; j < m[i].length; j++) {
        if (i + 1 < m.length) expect(m[i][j]).toBeLessThanOrEqual(m[i + 1][j]);
        if (j + 1 < m[i].length) expect(m[i][j]).toBeLessThanOrEqual(m[i][j + 1]);
      }
    expect(monotone([[2], [1], [3]])).toEqual([[1], [1], [3]]); // one axis (cout follows cin)
    expect(spiked[0][0]).toBe(9.0); // the input is not changed
  });
});

describe('latency table: predictions', () => {
  let model: ReturnType<typeof buildZooModel>;
  beforeAll(async () => {
    await initBackend();
    model = buildZooModel('lenet5', 1, [28, 28, 1], 10);
  });

  it('Σ layers + overhead, interpolated between grid points (exact on a bilinear cost)', async () => {
    const t = handMade(model, macLike);
    // conv2 16 → 11 (off the 4-point grid 4, 8, 12, 16) and fc1 120 → 77: conv2 cin·cout, pool2, flatten and fc1 change
    const pruned = await prunedLenet(model, { conv2: 11, fc1: 77 });
    const p = predictLatencyMs(pruned, t);
    const expected: Record<string, number> = {
      conv1: 0.001 * 1 * 6,
      pool1: 0.002 * 6,
      conv2: 0.001 * 6 * 11,
      pool2: 0.002 * 11,
      flatten: 0.002 * 11,
      fc1: 0.001 * 25 * 11 * 77,
      fc2: 0.001 * 77 * 84,
      out: 0.001 * 84 * 10,
    };
    for (const l of p.layers) expect(l.ms).toBeCloseTo(expected[l.name], 9);
    expect(p.totalMs).toBeCloseTo(0.2 + Object.values(expected).reduce((a, b) => a + b, 0), 9);
  });

  it('keys survive the model being saved and read back (every round loads its model from disk)', async () => {
    const t = handMade(model, macLike);
    const dir = path.join(tmpHome('lt-save'), 'm');
    await saveModel(model, dir);
    const back = await loadModel(dir);
    expect(predictLatencyMs(back, t).totalMs).toBeCloseTo(predictLatencyMs(model, t).totalMs, 12);
  });

  it('a count outside the table, or a layer it never saw, fails naming the layer', async () => {
    const t = handMade(model, macLike);
    const tooSmall = await prunedLenet(model, { conv2: 3 }); // below minUnits 4: never produced by the campaign
    expect(() => predictLatencyMs(tooSmall, t)).toThrow(/layer "conv2" \(Conv2D\): 3 output channels, outside the table's 4–16/);
    expect(() => predictLatencyMs(buildZooModel('mlp', 1, [28, 28, 1], 10), t)).toThrow(/layer "flatten" \(Flatten\): no entry for this configuration/);
  });

  it('bounded: a negative layer prediction, or one above the whole baseline, throws naming the layer', async () => {
    const pruned = await prunedLenet(model, { fc2: 72 });
    // fc2's pruned entries corrupt: negative below the full width
    const negative = handMade(model, (e, ci, co) => (e.layers.includes('fc2') && co < 84 ? -2.6 : macLike(e, ci, co)));
    expect(() => predictLatencyMs(pruned, negative)).toThrow(/layer "fc2" \(Dense\): predicted -[\d.]+ ms, a negative latency/);
    // a layer costing more than the whole baseline model
    const huge = handMade(model, (e, ci, co) => (e.layers.includes('conv2') ? 60 : macLike(e, ci, co)));
    expect(() => predictLatencyMs(model, huge)).toThrow(/layer "conv2" \(Conv2D\): predicted 60\.000 ms, more than the whole baseline model \(50\.000 ms\)/);
  });

  it('bounded: a trial cannot save more than the model costs (the 2.60 ms of a 1.66 ms model)', async () => {
    // a hand-made table whose overhead entry is corrupt: the pruned model would cost less than nothing
    const t = handMade(model, (e, ci, co) => macLike(e, ci, co) / 100, { overheadMs: -2.6, baselineMs: 1.66 });
    const current = { totalMs: 1.66, overheadMs: 0, layers: [] };
    expect(() => boundedLatencyDelta(current, { totalMs: -0.94, overheadMs: 0, layers: [] }, ['fc2'], t)).toThrow(
      /pruning "fc2" would save 2\.600 ms of a model predicted at 1\.660 ms: impossible/,
    );
    expect(boundedLatencyDelta(current, { totalMs: 1.2, overheadMs: 0, layers: [] }, ['fc2'], t)).toBeCloseTo(-0.46, 12);
    const pruned = await prunedLenet(model, { fc2: 12 });
    expect(() => predictLatencyMs(pruned, t)).toThrow(/predicted -[\d.]+ ms for the whole model/);
  });

  it('a measured table covers every configuration the sensitivity trials and rounds can produce', async () => {
    const graph = analyze(model);
    const t = await measureLatencyTable(model, graph, {
      backend: 'wasm',
      target: 'local',
      batchSize: 4,
      tfjsVersion: 'test',
      grid: GRID,
      warmupRuns: 1,
      runs: 3,
    });
    expect(parseLatencyTable(serializeLatencyTable(t))).toEqual(t);
    expect(tableMismatch(t, model, graph, { ...GRID, target: 'local', batchSize: 4, backend: 'wasm' })).toBeUndefined();
    expect(tableMismatch(t, model, graph, { ...GRID, target: 'local', batchSize: 32 })).toMatch(/batch size 4, not target\.batchSize 32/);
    // every group at its floor, and at any count in between, is predicted (never re-measured)
    for (const g of graph.groups) {
      for (const n of [4, Math.ceil(g.size / 2) + 1, g.size]) {
        const pruned = await prunedLenet(model, { [g.name]: Math.min(n, g.size) });
        expect(predictLatencyMs(pruned, t).totalMs).toBeGreaterThan(0);
      }
    }
  });
});

describe('allocation on predicted latencies', () => {
  const trial = (group: string, dLatencyMs: number, dBytes: number) => ({
    group,
    ratio: 0.2,
    keep: [0, 1, 2],
    dError: 0,
    dBytes,
    dFlops: 0,
    dLatencyMs,
    dEnergyJ: 0,
  });
  const sens: Sensitivity = {
    current: { error: 0.1, bytes: 4000, flops: 1e6, latencyMs: 2, energyJ: 0.001 },
    trials: [trial('conv2', -0.5, -100), trial('fc1', -0.05, -2000)],
    latencyBatchSize: 32,
    latency: 'predicted',
    latencyTable: 'ab'.repeat(32),
    baselineLatencyMsPredicted: 2,
  };
  // the measured baseline says 10 ms: with predicted deltas the table's own 2 ms must normalise them
  const base = { error: 0.1, bytes: 4000, latencyMs: 10, energyJ: 0.001 };

  it('latency-heavy weights take the trial the table predicts saves most; ΔJ over the predicted baseline', () => {
    const a = allocate(sens, { accuracy: 0, size: 0.1, latency: 0.9, energy: 0 }, base, 0.7);
    expect(a.chosen[0].group).toBe('conv2');
    expect(a.chosen.find((c) => c.group === 'conv2')!.deltaJ).toBeCloseTo(0.9 * (-0.5 / 2) + 0.1 * (-100 / 4000), 12);
    const sizeHeavy = allocate(sens, { accuracy: 0, size: 0.9, latency: 0.1, energy: 0 }, base, 0.7);
    expect(sizeHeavy.chosen[0].group).toBe('fc1');
  });

  it('allocation.json labels the latency as predicted (dLatencyMsPredicted, the table key), never as a measurement', async () => {
    const model = buildZooModel('lenet5', 1, [28, 28, 1], 10);
    const policy = { expectedRecovery: 0.7, minUnits: 1, roundTo: 1, maxLayerRatio: 0.9, protect: [] } as unknown as PruningPolicy;
    const r = await planRound(policy, {
      model,
      graph: analyze(model),
      scores: {},
      round: 1,
      sensitivity: sens,
      weights: { accuracy: 0, size: 0.1, latency: 0.9, energy: 0 },
      objectiveBase: base,
      baselineFlops: async () => 0,
    });
    const alloc = r.allocation as { latency: string; latencyTable: string; chosen: Array<Record<string, unknown>>; note: string };
    expect(alloc.latency).toBe('predicted');
    expect(alloc.latencyTable).toBe(sens.latencyTable);
    expect(alloc.chosen[0]).toMatchObject({ group: 'conv2', dLatencyMsPredicted: -0.5 });
    for (const c of alloc.chosen) expect(c).not.toHaveProperty('dLatencyMs');
    expect(alloc.note).toMatch(/PREDICTED by the campaign latency table/);
  });

  it('sensitivity trials with a table time nothing: two runs give identical latencies, predicted from the table', async () => {
    const model = buildZooModel('lenet5', 1, [28, 28, 1], 10);
    const graph = analyze(model);
    const table = handMade(model, macLike);
    const n = 40;
    const val = { x: new Float32Array(n * 784).map((_, i) => (i % 7) / 7), y: new Uint8Array(n).map((_, i) => i % 10), n };
    const scores = Object.fromEntries(graph.groups.map((g) => [g.name, Array.from({ length: g.size }, (_, i) => i)]));
    const run = () =>
      measureSensitivity(model, graph, scores, val, {
        ratios: [0.25, 0.5],
        plan: { minUnits: 4, roundTo: 1, maxRatio: 0.9 },
        latencyBatchSize: 32,
        latencyRuns: 50,
        latencyTable: { table, sha256: latencyTableSha256(table) },
      });
    const [a, b] = [await run(), await run()];
    expect(a.latency).toBe('predicted');
    expect(a.latencyTable).toBe(latencyTableSha256(table));
    expect(a.current.latencyMs).toBeCloseTo(predictLatencyMs(model, table).totalMs, 12);
    expect(a.trials.map((t) => t.dLatencyMs)).toEqual(b.trials.map((t) => t.dLatencyMs));
    const fc1 = a.trials.find((t) => t.group === 'fc1' && t.keep.length === 90)!;
    // fc1 120 → 90: fc1 loses 25·16·30 MAC-units, fc2 30·84
    expect(fc1.dLatencyMs).toBeCloseTo(-0.001 * (25 * 16 * 30 + 30 * 84), 9);
    for (const t of a.trials) expect(-t.dLatencyMs).toBeLessThan(a.current.latencyMs);
  });
});

describe('target.latencyTable in a campaign file', () => {
  const dir = tmpHome('lt-spec');
  const good = { name: 'lt', model: 'mlp', dataset: { name: 'mnist' }, weights: [{ accuracy: 0.5, latency: 0.5 }] };
  const write = (name: string, spec: unknown) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, stringify(spec));
    return f;
  };
  beforeAll(async () => {
    await initBackend();
    const lenet = buildZooModel('lenet5', 1, [28, 28, 1], 10);
    fs.writeFileSync(path.join(dir, 'table.json'), serializeLatencyTable(handMade(lenet, macLike, { runtime: 'tfjs-wasm' })));
    fs.writeFileSync(path.join(dir, 'training.json'), serializeLatencyTable(handMade(lenet, macLike))); // before runtimes: no runtime field
    fs.writeFileSync(path.join(dir, 'notjson.json'), '{ "format": ');
    fs.writeFileSync(path.join(dir, 'other.json'), JSON.stringify({ hello: 1 }));
  });

  it('a good table is accepted and its path resolved next to the campaign file', () => {
    const { spec } = loadCampaignFile(write('ok.yaml', { ...good, target: { batchSize: 32, latencyTable: 'table.json' } }));
    expect(spec.target.latencyTable).toBe(path.join(dir, 'table.json'));
  });

  const bad: Array<[string, object, RegExp]> = [
    ['a missing file', { latencyTable: 'nope.json' }, /: target\.latencyTable: .*nope\.json: cannot read it \(ENOENT\)/],
    ['not JSON', { latencyTable: 'notjson.json' }, /: target\.latencyTable: .*notjson\.json: not JSON/],
    ['not a latency table', { latencyTable: 'other.json' }, /: target\.latencyTable: .*other\.json: not a latency table/],
    [
      'another batch size',
      { batchSize: 16, latencyTable: 'table.json' },
      /: target\.latencyTable: .*table\.json: measured at batch size 32, not target\.batchSize 16/,
    ],
    [
      'another target',
      { name: 'jetson-nano', batchSize: 32, latencyTable: 'table.json' },
      /: target\.latencyTable: .*: measured for target "local", not "jetson-nano"/,
    ],
    [
      'another runtime',
      { batchSize: 32, runtime: 'chromium-wasm', latencyTable: 'table.json' },
      /: target\.latencyTable: .*: measured for runtime "tfjs-wasm", not target\.runtime "chromium-wasm"/,
    ],
    [
      'a table timed on the training backend',
      { batchSize: 32, latencyTable: 'training.json' },
      /: target\.latencyTable: .*: measured on the training backend "wasm", not on a deployment runtime/,
    ],
  ];
  for (const [what, target, message] of bad) {
    it(`refuses ${what} with one line naming the field`, () => {
      const f = write(`${what.replace(/\W+/g, '-')}.yaml`, { ...good, target });
      expect(() => loadCampaignFile(f)).toThrow(message);
      try {
        loadCampaignFile(f);
      } catch (e) {
        expect((e as Error).message.startsWith(f)).toBe(true);
        expect((e as Error).message).not.toContain('\n');
      }
    });
  }
});
