// The deployment runtimes (ml/runtime.ts): a LeNet-5 and a pruned copy, saved as model folders, are
// timed as a paired speedup on each runtime — a child Node process on wasm and on native
// TensorFlow, a headless Chromium page (Debian's chromium, playwright-core) on wasm and on WebGL —
// and the TFLite interpreter (a child Python process, the .venv's TensorFlow; float32 and int8) —
// through the same measureCandidate the hardware-adapt stage calls. Asserts what is recorded
// (runtime, versions, renderer) and that the estimate has an interval, never how fast anything is.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadCampaignFile } from '../campaign/load';
import {
  analyze,
  buildZooModel,
  CHROMIUM,
  initBackend,
  measureBaseline,
  measureCandidate,
  measureLatencyTableOn,
  openRuntime,
  planLocal,
  pruneModel,
  saveModel,
  scoreGroups,
  ModelError,
  type RuntimeInfo,
  type RuntimeModels,
  type RuntimeName,
  type TargetSpec,
} from '../ml';
import type * as tfl from '@tensorflow/tfjs-layers';
import { tmpHome } from './helpers';

const ROOT = path.join(__dirname, '..');
const nativeWheel = fs
  .readdirSync(path.join(ROOT, '.venv', 'lib'), { withFileTypes: true })
  .some((d) => fs.existsSync(path.join(ROOT, '.venv', 'lib', d.name, 'site-packages', 'tensorflow', 'libtensorflow_cc.so.2')));
const expectNative = process.env.CI === 'true' || nativeWheel;

// small and bounded: at least 10 pairs, at most ~3 s of pairs per runtime
const T: TargetSpec = { name: 'local', batchSize: 8, warmupRuns: 2, latencyRuns: 10, speedupCi: 0.05, latencyBudgetSeconds: 3 };

let dir: string;
let base: tfl.LayersModel;
let pruned: tfl.LayersModel;
const measured: Record<string, { info: RuntimeInfo; speedup: string }> = {};

beforeAll(async () => {
  await initBackend(); // whatever trains here (tensorflow on this machine): the runtimes must not care
  dir = tmpHome('runtime');
  base = buildZooModel('lenet5', 1, [28, 28, 1], 10);
  const graph = analyze(base);
  pruned = await pruneModel(base, planLocal(graph, scoreGroups(base, 'l1', {}, graph), 0.5, { minUnits: 2 }), graph);
  await saveModel(base, path.join(dir, 'baseline'));
  await saveModel(pruned, path.join(dir, 'pruned'));
});

afterAll(() => {
  base?.dispose();
  pruned?.dispose();
  // which runtimes this file measured, for the report
  console.log(`runtimes measured: ${JSON.stringify(measured, null, 1)}`);
});

async function pairOn(runtime: RuntimeName, extra: Partial<RuntimeModels> = {}) {
  const open = () => openRuntime(runtime, { baseline: path.join(dir, 'baseline'), candidate: path.join(dir, 'pruned'), batchSize: T.batchSize, ...extra });
  const m = await measureCandidate(pruned, base, T, 'local', false, open);
  const info = m.runtime!;
  const s = m.manifest.speedupVsBaseline as { value: number; low: number; high: number; pairs: number; runtime: RuntimeInfo; stoppedBy: string };
  const key = extra.candidateVariant ? `${runtime} (candidate ${extra.candidateVariant})` : runtime;
  measured[key] = { info, speedup: `${s.value.toFixed(3)} [${s.low.toFixed(3)}, ${s.high.toFixed(3)}], ${s.pairs} pairs, stopped by ${s.stoppedBy}` };
  expect(info.runtime).toBe(runtime);
  if (runtime === 'tflite') expect(info.tensorflowVersion).toBe('2.21.0');
  else expect(info.tfjsVersion).toBe('4.22.0');
  expect(s.runtime).toEqual(info);
  expect((m.manifest.latencyMs as { runtime: RuntimeInfo }).runtime).toEqual(info);
  // a speedup with a 95 % interval around it, from at least latencyRuns interleaved pairs
  expect(s.pairs).toBeGreaterThanOrEqual(T.latencyRuns);
  expect(m.metrics.latencyPairs).toBe(s.pairs);
  expect(Number.isFinite(s.value) && s.value > 0).toBe(true);
  expect(s.low).toBeGreaterThan(0);
  expect(s.low).toBeLessThanOrEqual(s.value);
  expect(s.high).toBeGreaterThanOrEqual(s.value);
  expect(Number.isFinite(s.high)).toBe(true);
  expect(['ci', 'budget']).toContain(s.stoppedBy);
  expect(m.metrics.latencyMs).toBeGreaterThan(0);
  return info;
}

describe('deployment runtimes: a paired speedup on each', () => {
  it('tfjs-wasm: a child Node process on the stock wasm backend', async () => {
    const info = await pairOn('tfjs-wasm');
    expect(info).toMatchObject({ backend: 'wasm', where: 'child Node process', node: process.version });
    expect(info.wasm?.simd).toBe(true);
  });

  it.runIf(expectNative)('tfjs-node: a child Node process on native TensorFlow (the PyPI wheel)', async () => {
    const info = await pairOn('tfjs-node');
    expect(info).toMatchObject({ backend: 'tensorflow', where: 'child Node process' });
    expect(info.library).toMatch(/tensorflow/);
  });

  it('chromium-wasm: a headless Chromium page on the wasm backend, browser version recorded', async () => {
    const info = await pairOn('chromium-wasm');
    expect(info).toMatchObject({ backend: 'wasm', where: 'headless Chromium page' });
    expect(info.browser).toMatch(/^Chromium \d+\.\d+\.\d+\.\d+$/);
    expect(info.webglRenderer).toBeUndefined();
  });

  it('chromium-webgl: WebGL in the page, its (software) renderer string recorded', async () => {
    const info = await pairOn('chromium-webgl');
    expect(info).toMatchObject({ backend: 'webgl', where: 'headless Chromium page' });
    expect(info.browser).toMatch(/^Chromium \d+/);
    expect(info.webglRenderer).toMatch(/SwiftShader/i); // these machines have no GPU: function only, no speed claim
    expect(info.softwareRenderer).toBe(true);
  });
});

describe('the baseline and the latency table on the runtime', () => {
  it("the baseline's median is timed on the runtime (latencyRuns runs)", async () => {
    const session = await openRuntime('tfjs-wasm', { baseline: path.join(dir, 'baseline'), batchSize: T.batchSize });
    try {
      const b = await measureBaseline(base, T, 'local', session);
      expect(b.latencyMs).toBeGreaterThan(0);
      expect(b.latencyP90Ms).toBeGreaterThanOrEqual(b.latencyMs);
      await expect(session.pair(0)).rejects.toThrow(/no candidate/);
    } finally {
      await session.close();
    }
  });

  it('the per-layer latency table is keyed by the runtime; chromium tables say what timed them', async () => {
    const grid = { minUnits: 2, maxPoints: 2 };
    const t = await measureLatencyTableOn('chromium-wasm', path.join(dir, 'baseline'), { target: 'local', batchSize: 4, grid, warmupRuns: 1, runs: 3 });
    expect(t.runtime).toBe('chromium-wasm');
    expect(t.backend).toBe('wasm');
    expect(t.timedOn).toMatch(/^tfjs-wasm \(a stand-in/);
    expect(t.baselineMs).toBeGreaterThan(0);
  });
});

describe('tflite: the TFLite interpreter of the .venv TensorFlow, in a child Python process', () => {
  it('float32: a paired speedup, XNNPACK, TensorFlow and Python versions recorded', async () => {
    const info = await pairOn('tflite');
    expect(info).toMatchObject({
      backend: 'tflite xnnpack',
      delegate: 'XNNPACK',
      where: 'child Python process',
      threads: 1,
      variants: { baseline: 'float32', candidate: 'float32' },
    });
    expect(info.python).toMatch(/^3\.\d+\.\d+$/);
    expect(info.library).toMatch(/^tf\.lite\.Interpreter of tensorflow-cpu 2\.21\.0/);
  });

  it('int8: the candidate timed as full-integer int8, calibrated on given inputs; the baseline float32', async () => {
    const n = 16;
    const x = new Float32Array(n * 28 * 28).map((_, i) => (i % 255) / 255);
    const info = await pairOn('tflite', { candidateVariant: 'int8', calibration: { x, n, shape: [28, 28, 1] } });
    expect(info.variants).toEqual({ baseline: 'float32', candidate: 'int8' });
    expect(info.calibration).toBeUndefined(); // calibrated on the given inputs, not random ones
  });

  it("the baseline's runs are positive times; the latency table is timed on a stand-in and says so", async () => {
    const session = await openRuntime('tflite', { baseline: path.join(dir, 'baseline'), batchSize: T.batchSize });
    try {
      const b = await measureBaseline(base, T, 'local', session);
      expect(b.latencyMs).toBeGreaterThan(0);
      expect(session.info.runtime).toBe('tflite');
      await expect(session.pair(0)).rejects.toThrow(/no candidate/);
    } finally {
      await session.close();
    }
    const t = await measureLatencyTableOn('tflite', path.join(dir, 'baseline'), {
      target: 'local',
      batchSize: 4,
      grid: { minUnits: 2, maxPoints: 2 },
      warmupRuns: 1,
      runs: 3,
    });
    expect(t.runtime).toBe('tflite');
    expect(t.timedOn).toMatch(/^tfjs-wasm \(a stand-in: layers are not timed one by one in the TFLite interpreter\)$/);
  });

  it('a campaign file with target.runtime tflite loads where the .venv Python is', () => {
    const f = path.join(dir, 'tflite.yaml');
    fs.writeFileSync(f, stringify({ name: 'tfl', model: 'mlp', dataset: { name: 'mnist' }, weights: [{ accuracy: 1 }], target: { runtime: 'tflite' } }));
    expect(loadCampaignFile(f).spec.target.runtime).toBe('tflite');
    const d = path.join(dir, 'default.yaml');
    fs.writeFileSync(d, stringify({ name: 'd', model: 'mlp', dataset: { name: 'mnist' }, weights: [{ accuracy: 1 }] }));
    expect(loadCampaignFile(d).spec.target.runtime).toBe('tfjs-wasm');
  });

  it('a model the converter cannot read fails at once (bad input), naming the layer', async () => {
    const bad = path.join(dir, 'bad');
    fs.cpSync(path.join(dir, 'pruned'), bad, { recursive: true });
    const json = JSON.parse(fs.readFileSync(path.join(bad, 'model.json'), 'utf8'));
    const topo = json.modelTopology.model_config ?? json.modelTopology;
    topo.config.layers.find((l: { config: { name: string } }) => l.config.name === 'conv2').class_name = 'Conv9D';
    fs.writeFileSync(path.join(bad, 'model.json'), JSON.stringify(json));
    const e = await openRuntime('tflite', { baseline: bad, batchSize: 1 }).catch((x) => x);
    expect(e).toBeInstanceOf(ModelError);
    expect(e.message).toMatch(/^target\.runtime tflite: read the tfjs model with tensorflowjs failed on layer "conv2" \(Conv9D\): /);
  });
});

it('finds Chromium where the browser test does', () => {
  expect(fs.existsSync(CHROMIUM)).toBe(true);
});
