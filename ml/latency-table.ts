// The latency model for decisions (NetAdapt / HALP-style per-layer latency tables): each layer
// configuration a campaign can produce is timed ONCE, the table is frozen, and the sensitivity
// trials and the allocation use the table's PREDICTION instead of timing every trial afresh (which
// let noise steer decisions). A model's reported latency is still measured (ml/measure.ts).
//
// Method: layer by layer. Each entry is one layer configuration — class, the config that is not a
// channel count (kernel, strides, activation, …), the input's spatial shape — timed as a
// stand-alone layer (`layer.apply` on a concrete input in tf.tidy; synchronous on the wasm, cpu and
// tensorflow backends) at a grid of input × output channel counts: every reachable count when a
// group has at most `maxPoints`, else `maxPoints` counts evenly spaced between the group's floor
// (minUnits) and its size (multiples of roundTo), linear (bilinear for Dense/Conv2D) interpolation
// between them. Each point is the median of `runs` timings after `warmupRuns`, the grid points of
// one entry timed in turn (interleaved, so drift hits them alike). One more entry, the per-call
// overhead (tidy, the graph walk, reading the output back) is the median over rounds of the whole
// baseline model's time minus its layers' times walked inside the real model in the same round
// (paired, so stalls of a busy machine cancel), ≥ 0. prediction = Σ layers + overhead.
// Batch size, target and runtime are the table's own fields (one table per target × batch × deployment
// runtime; ml/runtime.ts times it in the runtime's own process, never on the training backend).
// The file format (no tfjs: the campaign loader reads it) is in ml/latency-file.ts.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { RULES, type ChannelMap, type Graph } from './graph';
import { groupRoundTo } from './plan';
import { canonicalJson, LATENCY_TABLE_FORMAT, LatencyTableError, type LatencyEntry, type LatencyTable } from './latency-file';
import { forward, yieldToEventLoop } from './train';

export * from './latency-file';

/** Which channel counts a campaign can produce: the plan limits (ml/plan.ts) and the grid size. */
export interface GridOptions {
  minUnits: number;
  roundTo?: number;
  /** ml/plan.ts PlanOptions.roundToAdaptive: small groups round to a smaller multiple (groupRoundTo) */
  roundToAdaptive?: boolean;
  protect?: string[];
  /** at most this many measured counts per group axis (default 6) */
  maxPoints?: number;
}

// ------------------------------------------------------------------------------- keys

const DROP = /Initializer$|Regularizer$|Constraint$|^(name|trainable|batchInputShape|inputShape|dtype|units|filters|batchSize)$/;

interface LayerShape {
  key: string;
  className: string;
  config: Record<string, unknown>;
  inputs: number[][];
  channels: number[];
  producer: boolean;
  cin: number;
  cout: number;
}

/** A layer's table key and its channel counts (from its symbolic shapes; no computation). */
function layerShape(layer: tfl.layers.Layer): LayerShape {
  const className = layer.getClassName();
  const raw = layer.getConfig() as Record<string, unknown>;
  // null and absent are the same setting (a model read back from model.json spells some defaults out as null)
  const config = Object.fromEntries(Object.entries(raw).filter(([k, v]) => !DROP.test(k) && v !== null && v !== undefined));
  const shapes = layer.inboundNodes[0].inputTensors.map((t) => t.shape as Array<number | null>);
  const inputs = shapes.map((s) => s.slice(1, -1) as number[]);
  const channels = shapes.map((s) => s[s.length - 1] as number);
  const out = layer.outputShape as Array<number | null>;
  const producer = RULES[className]?.kind === 'producer';
  const key = `${className}|${inputs.map((s) => s.join('x') || '-').join(',')}|${canonicalJson(config)}`;
  const cin = className === 'Concatenate' ? channels.reduce((a, b) => a + b, 0) : channels[0];
  return { key, className, config, inputs, channels, producer, cin, cout: out[out.length - 1] as number };
}

const isInput = (l: tfl.layers.Layer) => l.getClassName() === 'InputLayer';

// ------------------------------------------------------------------------------- the grid

/** Every count a group of `size` can be left with (ml/plan.ts keepCount), ascending. */
function reachable(size: number, o: GridOptions): number[] {
  const lo = Math.min(size, o.minUnits);
  const r = groupRoundTo(size, o);
  const out = new Set<number>([lo, size]);
  for (let v = lo; v <= size; v++) if (r <= 1 || v % r === 0) out.add(v);
  return [...out].sort((a, b) => a - b);
}

/** At most n values of a sorted list, evenly spaced, first and last included. */
function spread(values: number[], n: number): number[] {
  if (values.length <= n) return values;
  const out = new Set<number>();
  for (let i = 0; i < n; i++) out.add(values[Math.round((i * (values.length - 1)) / (n - 1))]);
  return [...out].sort((a, b) => a - b);
}

/** A channel map as `fixed + Σ reps[g] · channels(g)` over the groups that can shrink (`variable`: group → its grid, the size last). */
function formOf(graph: Graph, map: ChannelMap, variable: Map<number, number[]>): { fixed: number; reps: Map<number, number> } {
  let fixed = 0;
  const reps = new Map<number, number>();
  for (const ref of map) {
    const g = ref ? graph.root(ref.g) : -1;
    if (ref && variable.has(g)) reps.set(g, (reps.get(g) ?? 0) + 1);
    else fixed++;
  }
  // positions per channel: a group of size n appearing at k positions repeats each channel k / n times (Flatten)
  for (const [g, k] of reps) reps.set(g, k / variable.get(g)!.at(-1)!);
  return { fixed, reps };
}

function gridOf(form: { fixed: number; reps: Map<number, number> }, variable: Map<number, number[]>, n: number): number[] {
  const groups = [...form.reps];
  if (groups.length === 0) return [form.fixed];
  if (groups.length === 1) return variable.get(groups[0][0])!.map((v) => form.fixed + groups[0][1] * v);
  const lo = form.fixed + groups.reduce((a, [g, r]) => a + r * variable.get(g)![0], 0);
  const hi = form.fixed + groups.reduce((a, [g, r]) => a + r * variable.get(g)!.at(-1)!, 0);
  return [...new Set(Array.from({ length: n }, (_, i) => Math.round(lo + ((hi - lo) * i) / (n - 1))))];
}

const union = (a: number[], b: number[]) => [...new Set([...a, ...b])].sort((x, y) => x - y);

/**
 * The table's entries (without timings) for every configuration the campaign's trials and rounds
 * can produce from `model`: each layer at the channel counts its groups can take.
 */
export function planLatencyTable(model: tfl.LayersModel, graph: Graph, o: GridOptions): LatencyEntry[] {
  const n = Math.max(2, o.maxPoints ?? 6);
  const protect = o.protect ?? [];
  const variable = new Map<number, number[]>();
  for (const g of graph.groups) {
    if (protect.some((p) => p === g.name || g.producers.includes(p) || g.followers.includes(p))) continue;
    variable.set(g.id, spread(reachable(g.size, o), n));
  }
  const byKey = new Map<string, LatencyEntry>();
  for (const layer of model.layers) {
    if (isInput(layer)) continue;
    const s = layerShape(layer);
    const node = layer.inboundNodes[0];
    const maps: ChannelMap[] = node.inboundLayers.map(
      (src, k) => graph.outputMap.get(src.name) ?? new Array<null>(s.channels[k]).fill(null), // a model input
    );
    const cin = gridOf(formOf(graph, s.className === 'Concatenate' ? maps.flat() : maps[0], variable), variable, n);
    let cout: number[] = [];
    if (s.producer) {
      const g = graph.producerGroup.get(layer.name);
      const r = g === undefined ? -1 : graph.root(g);
      cout = variable.get(r) ?? [s.cout];
    }
    const e = byKey.get(s.key);
    if (e) {
      e.cin = union(e.cin, cin);
      e.cout = union(e.cout, cout);
      e.layers.push(layer.name);
    } else {
      byKey.set(s.key, {
        key: s.key,
        className: s.className,
        config: s.config,
        inputs: s.inputs,
        baseChannels: s.channels,
        producer: s.producer,
        cin,
        cout,
        ms: [],
        layers: [layer.name],
      });
    }
  }
  return [...byKey.values()];
}

// ------------------------------------------------------------------------------- measuring

function makeLayer(e: LatencyEntry, cout: number | undefined): tfl.layers.Layer {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[e.className];
  if (!entry) throw new LatencyTableError(`layer class ${e.className} is not registered with tfjs: cannot time it`);
  const [cls, fromConfig] = entry;
  const config: Record<string, unknown> = { ...e.config };
  if (e.producer) config[RULES[e.className].key!] = cout;
  return fromConfig(cls, config as tf.serialization.ConfigDict) as unknown as tfl.layers.Layer;
}

/** The input tensors of one grid point (a concatenation's channels split as at the baseline). */
function makeInputs(e: LatencyEntry, batch: number, cin: number): tf.Tensor[] {
  const total = e.baseChannels.reduce((a, b) => a + b, 0);
  let left = cin;
  return e.inputs.map((spatial, k) => {
    let c = cin;
    if (e.className === 'Concatenate') {
      c = k === e.inputs.length - 1 ? left : Math.max(1, Math.round((cin * e.baseChannels[k]) / total));
      left -= c;
    }
    return tf.randomUniform([batch, ...spatial, c], 0, 1, 'float32', 11);
  });
}

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** Times one entry's grid points in turn, `warmup` + `runs` rounds; medians in ms[i][j]. */
async function timeEntry(e: LatencyEntry, batch: number, warmup: number, runs: number): Promise<number[][]> {
  const couts = e.producer ? e.cout : [undefined];
  const inputs = new Map<number, tf.Tensor[]>(e.cin.map((c) => [c, makeInputs(e, batch, c)]));
  const points = e.cin.flatMap((cin, i) => couts.map((cout, j) => ({ i, j, xs: inputs.get(cin)!, layer: makeLayer(e, cout), t: [] as number[] })));
  try {
    // the first call builds the layer's weights: never timed
    for (const p of points) tf.dispose(tf.tidy(() => p.layer.apply(p.xs.length === 1 ? p.xs[0] : p.xs, { training: false }) as tf.Tensor));
    for (let r = 0; r < warmup + runs; r++) {
      for (const p of points) {
        const t0 = performance.now();
        const y = tf.tidy(() => p.layer.apply(p.xs.length === 1 ? p.xs[0] : p.xs, { training: false }) as tf.Tensor);
        const dt = performance.now() - t0;
        y.dispose();
        if (r >= warmup) p.t.push(dt);
      }
      await yieldToEventLoop();
    }
  } finally {
    for (const xs of inputs.values()) tf.dispose(xs);
    for (const p of points) {
      try {
        p.layer.dispose();
      } catch {
        // never built
      }
    }
  }
  const ms = e.cin.map(() => couts.map(() => 0));
  for (const p of points) ms[p.i][p.j] = round4(median(p.t));
  return ms;
}

/** One forward pass walked layer by layer (as model.apply does), each layer's time appended to `times`. */
function timedLayerWalk(model: tfl.LayersModel, x: tf.Tensor, times: Map<string, number[]>): void {
  tf.tidy(() => {
    const values = new Map<string, tf.Tensor>();
    for (const layer of model.layers) {
      if (isInput(layer)) continue;
      const ins = layer.inboundNodes[0].inboundLayers.map((src) => values.get(src.name) ?? x);
      const t0 = performance.now();
      const y = layer.apply(ins.length === 1 ? ins[0] : ins, { training: false }) as tf.Tensor;
      const dt = performance.now() - t0;
      values.set(layer.name, y);
      if (!times.has(layer.name)) times.set(layer.name, []);
      times.get(layer.name)!.push(dt);
    }
  });
}

export interface MeasureTableOptions {
  backend: string;
  target: string;
  batchSize: number;
  tfjsVersion: string;
  grid: GridOptions;
  warmupRuns: number;
  runs: number;
  /** after each entry (progress, heartbeats) */
  onProgress?: (done: number, total: number) => void | Promise<void>;
}

/** Measures the table for `model` (the campaign's baseline) on this process's backend. */
/**
 * Timings made non-decreasing in both channel axes (ms[i][j] = the least of the timings at ≥ cin[i]
 * and ≥ cout[j]): a layer with fewer channels is never predicted slower than one with more. Without
 * it, a load spike while one small configuration is timed can make a pruned layer "cost" more than
 * the whole baseline model — an impossible prediction that would stop the campaign.
 */
export function monotone(ms: number[][]): number[][] {
  const out = ms.map((row) => row.slice());
  for (let i = out.length - 2; i >= 0; i--) for (let j = 0; j < out[i].length; j++) out[i][j] = Math.min(out[i][j], out[i + 1][j]);
  for (const row of out) for (let j = row.length - 2; j >= 0; j--) row[j] = Math.min(row[j], row[j + 1]);
  return out;
}

export async function measureLatencyTable(model: tfl.LayersModel, graph: Graph, o: MeasureTableOptions): Promise<LatencyTable> {
  const entries = planLatencyTable(model, graph, o.grid);
  for (const [k, e] of entries.entries()) {
    e.ms = monotone(await timeEntry(e, o.batchSize, o.warmupRuns, o.runs));
    await o.onProgress?.(k + 1, entries.length);
  }
  // the per-call overhead: whole forward passes and layer-by-layer walks, side by side
  const x = tf.randomUniform([o.batchSize, ...(model.inputs[0].shape.slice(1) as number[])], 0, 1, 'float32', 7);
  const whole: number[] = [];
  const walked = new Map<string, number[]>();
  try {
    for (let r = 0; r < o.warmupRuns + o.runs; r++) {
      const t0 = performance.now();
      const y = forward(model, x);
      await y.data();
      const dt = performance.now() - t0;
      y.dispose();
      timedLayerWalk(model, x, walked);
      if (r >= o.warmupRuns) whole.push(dt);
      else for (const t of walked.values()) t.pop();
      await yieldToEventLoop();
    }
  } finally {
    x.dispose();
  }
  // per round: the whole pass minus its layers walked right after (machine stalls hit both alike)
  const walks = whole.map((_, r) => [...walked.values()].reduce((a, t) => a + t[r], 0));
  const table: LatencyTable = {
    format: LATENCY_TABLE_FORMAT,
    backend: o.backend,
    target: o.target,
    batchSize: o.batchSize,
    tfjsVersion: o.tfjsVersion,
    method: 'layer-by-layer',
    interpolation: 'linear',
    warmupRuns: o.warmupRuns,
    runs: o.runs,
    overheadMs: round4(Math.max(0, median(whole.map((w, r) => w - walks[r])))),
    baselineMs: 0,
    measuredBaselineMs: round4(median(whole)),
    entries,
  };
  // the bound every prediction is checked against: the baseline's whole-model PREDICTION
  table.baselineMs = round4(predictLatencyMs(model, { ...table, baselineMs: Infinity }).totalMs);
  return table;
}

// ------------------------------------------------------------------------------- predicting

/** Position of x on a grid: [lower index, weight of the upper]; undefined outside it. */
function locate(grid: number[], x: number): [number, number] | undefined {
  if (grid.length === 1) return x === grid[0] ? [0, 0] : undefined;
  if (x < grid[0] || x > grid[grid.length - 1]) return undefined;
  let i = 0;
  while (i < grid.length - 2 && x > grid[i + 1]) i++;
  return [i, (x - grid[i]) / (grid[i + 1] - grid[i])];
}

const range = (g: number[]) => (g.length === 1 ? `${g[0]}` : `${g[0]}–${g[g.length - 1]}`);

export interface LatencyPrediction {
  /** Σ layers + overhead, ms (a PREDICTION from the frozen table, never a measurement) */
  totalMs: number;
  overheadMs: number;
  layers: Array<{ name: string; className: string; ms: number }>;
}

/**
 * The model's latency predicted by the table: Σ over its layers (interpolated between measured
 * grid points) + the per-call overhead. Bounded: every layer's prediction must be finite, ≥ 0 and at
 * most the baseline's whole-model latency, and the total positive.
 * @throws LatencyTableError naming the layer (no entry, a count outside the grid, out of bounds)
 */
export function predictLatencyMs(model: tfl.LayersModel, table: LatencyTable): LatencyPrediction {
  const byKey = new Map(table.entries.map((e) => [e.key, e]));
  const layers: LatencyPrediction['layers'] = [];
  let total = table.overheadMs;
  for (const layer of model.layers) {
    if (isInput(layer)) continue;
    const s = layerShape(layer);
    const where = `latency table: layer "${layer.name}" (${s.className})`;
    const e = byKey.get(s.key);
    if (!e) throw new LatencyTableError(`${where}: no entry for this configuration (the table was measured for another model): measure a new table`);
    const a = locate(e.cin, s.cin);
    if (!a) throw new LatencyTableError(`${where}: ${s.cin} input channels, outside the table's ${range(e.cin)}: measure a new table`);
    let ms: number;
    if (e.producer) {
      const b = locate(e.cout, s.cout);
      if (!b) throw new LatencyTableError(`${where}: ${s.cout} output channels, outside the table's ${range(e.cout)}: measure a new table`);
      const at = (i: number, j: number) => e.ms[Math.min(i, e.cin.length - 1)][Math.min(j, e.cout.length - 1)];
      const [i, u] = a;
      const [j, v] = b;
      ms = (1 - u) * (1 - v) * at(i, j) + u * (1 - v) * at(i + 1, j) + (1 - u) * v * at(i, j + 1) + u * v * at(i + 1, j + 1);
    } else {
      const [i, u] = a;
      ms = (1 - u) * e.ms[i][0] + u * e.ms[Math.min(i + 1, e.cin.length - 1)][0];
    }
    if (!Number.isFinite(ms) || ms < 0)
      throw new LatencyTableError(
        `${where}: predicted ${ms} ms, a negative latency: the table is inconsistent (timed under load?): measure a new one (remove target.latencyTable, or rerun)`,
      );
    if (ms > table.baselineMs)
      throw new LatencyTableError(
        `${where}: predicted ${ms.toFixed(3)} ms, more than the whole baseline model (${table.baselineMs.toFixed(3)} ms): the table is inconsistent (timed under load?): measure a new one (remove target.latencyTable, or rerun)`,
      );
    layers.push({ name: layer.name, className: s.className, ms });
    total += ms;
  }
  if (!(total > 0))
    throw new LatencyTableError(
      `latency table: predicted ${total} ms for the whole model (overhead ${table.overheadMs} ms): the table is inconsistent (timed under load?)`,
    );
  return { totalMs: total, overheadMs: table.overheadMs, layers };
}

/**
 * The predicted latency change of a trial (pruned − current), bounded: a trial cannot save more
 * than the current model costs, nor make it slower than the baseline by more than the baseline costs.
 * @throws LatencyTableError naming the pruned layers
 */
export function boundedLatencyDelta(current: LatencyPrediction, pruned: LatencyPrediction, layers: string[], table: LatencyTable): number {
  const d = pruned.totalMs - current.totalMs;
  if (-d > current.totalMs || pruned.totalMs <= 0)
    throw new LatencyTableError(
      `latency table: pruning ${layers.map((l) => `"${l}"`).join(', ')} would save ${(-d).toFixed(3)} ms of a model predicted at ${current.totalMs.toFixed(3)} ms: impossible, the table is inconsistent (timed under load?)`,
    );
  if (pruned.totalMs > 2 * table.baselineMs)
    throw new LatencyTableError(
      `latency table: pruning ${layers.map((l) => `"${l}"`).join(', ')} predicts ${pruned.totalMs.toFixed(3)} ms, over twice the baseline's ${table.baselineMs.toFixed(3)} ms: the table is inconsistent (timed under load?)`,
    );
  return d;
}

/**
 * Whether the table serves this campaign: the same target, batch size and backend, and an entry
 * covering every configuration the campaign can produce from `model`.
 * @returns why not (one line, naming the field or layer), or undefined
 */
export function tableMismatch(
  table: LatencyTable,
  model: tfl.LayersModel,
  graph: Graph,
  o: GridOptions & { target: string; batchSize: number; backend?: string; runtime?: string },
): string | undefined {
  if (table.target !== o.target) return `it was measured for target "${table.target}", not "${o.target}"`;
  if (table.batchSize !== o.batchSize) return `it was measured at batch size ${table.batchSize}, not target.batchSize ${o.batchSize}`;
  if (o.runtime && table.runtime !== o.runtime)
    return table.runtime
      ? `it was measured for runtime "${table.runtime}", not target.runtime "${o.runtime}"`
      : `it was measured on the training backend "${table.backend}", not on a deployment runtime (target.runtime "${o.runtime}")`;
  if (o.backend && table.backend !== o.backend) return `it was measured on backend "${table.backend}", this worker runs "${o.backend}"`;
  const have = new Map(table.entries.map((e) => [e.key, e]));
  for (const need of planLatencyTable(model, graph, { ...o, maxPoints: 2 })) {
    const e = have.get(need.key);
    const name = `layer "${need.layers[0]}" (${need.className})`;
    if (!e) return `it has no entry for ${name}: it was measured for another model`;
    const covers = (g: number[], n: number[]) => n.length === 0 || (g[0] <= n[0] && g[g.length - 1] >= n[n.length - 1]);
    if (!covers(e.cin, need.cin)) return `${name}: input channels ${range(need.cin)} not covered (table: ${range(e.cin)})`;
    if (e.producer && !covers(e.cout, need.cout)) return `${name}: output channels ${range(need.cout)} not covered (table: ${range(e.cout)})`;
  }
  return undefined;
}

// ------------------------------------------------------------------------------- channel steps (roundTo: auto)

/**
 * One layer timed at consecutive output-channel counts (a channel-step probe): on runtimes whose
 * kernels tile output channels (XNNPACK's wasm SIMD micro-kernels compute 8 at a time, oneDNN's AVX
 * blocks of 8 or 16), the time is a staircase, and a count just past a multiple costs nearly as
 * much as the next multiple.
 */
export interface ChannelStepCurve {
  /** what was timed (class, kernel, input shape without batch) */
  probe: string;
  /** consecutive output-channel counts, ascending */
  couts: number[];
  /** median ms per count (at the probe's batch size) */
  ms: number[];
}

/** The probes: layer configurations typical of small conv nets (input spatial × channels; a Dense layer). */
export const CHANNEL_STEP_PROBES: ReadonlyArray<{ probe: string; input: number[]; kernel?: number; couts: [number, number] }> = [
  { probe: 'Conv2D 3×3 same, 14×14×32 in', input: [14, 14, 32], kernel: 3, couts: [16, 48] },
  { probe: 'Conv2D 3×3 same, 28×28×16 in', input: [28, 28, 16], kernel: 3, couts: [8, 40] },
  { probe: 'Dense, 512 in', input: [512], couts: [32, 96] },
];

/** Times the probes on this process's backend (interleaved: every count once per run; median of `runs` after `warmupRuns`). */
export async function measureChannelSteps(o: { batchSize: number; warmupRuns: number; runs: number }): Promise<ChannelStepCurve[]> {
  const out: ChannelStepCurve[] = [];
  for (const p of CHANNEL_STEP_PROBES) {
    const couts: number[] = [];
    for (let c = p.couts[0]; c <= p.couts[1]; c++) couts.push(c);
    const x = tf.randomUniform([o.batchSize, ...p.input], 0, 1, 'float32', 7);
    const layers = couts.map((c, i) =>
      p.kernel
        ? tfl.layers.conv2d({
            filters: c,
            kernelSize: p.kernel,
            padding: 'same',
            useBias: true,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: i }),
          })
        : tfl.layers.dense({ units: c, kernelInitializer: tfl.initializers.glorotUniform({ seed: i }) }),
    );
    const times = couts.map(() => [] as number[]);
    try {
      for (const l of layers) tf.dispose(tf.tidy(() => l.apply(x) as tf.Tensor)); // builds the weights: never timed
      for (let r = 0; r < o.warmupRuns + o.runs; r++) {
        // the order flips every run, so drift hits small and large counts alike
        const order = r % 2 === 0 ? layers.map((_, i) => i) : layers.map((_, i) => layers.length - 1 - i);
        for (const i of order) {
          const t0 = performance.now();
          const y = tf.tidy(() => layers[i].apply(x) as tf.Tensor);
          await y.data();
          const dt = performance.now() - t0;
          y.dispose();
          if (r >= o.warmupRuns) times[i].push(dt);
        }
        await yieldToEventLoop();
      }
    } finally {
      x.dispose();
      for (const l of layers) l.dispose();
    }
    out.push({ probe: p.probe, couts, ms: times.map((t) => round4(median(t))) });
  }
  return out;
}

/** The roundTo values `auto` chooses among. */
export const ROUND_TO_CANDIDATES = [1, 2, 4, 8, 16] as const;

/**
 * What keeping counts at multiples of `r` costs on a curve: the mean, over the counts c that are not
 * multiples (and whose next multiple ⌈c/r⌉·r was timed), of t(⌈c/r⌉·r) / t(c) − 1, the times made
 * non-decreasing first (t(c) = the least time at ≥ c: noise never makes a count look cheaper than a
 * larger one). `linear` is the same mean under a time proportional to c (no staircase at all):
 * ⌈c/r⌉·r / c − 1.
 */
export function roundingCost(curve: ChannelStepCurve, r: number): { measured: number; linear: number; points: number } {
  const mono = curve.ms.slice();
  for (let i = mono.length - 2; i >= 0; i--) mono[i] = Math.min(mono[i], mono[i + 1]);
  const at = new Map(curve.couts.map((c, i) => [c, mono[i]]));
  let measured = 0;
  let linear = 0;
  let points = 0;
  for (const c of curve.couts) {
    const up = Math.ceil(c / r) * r;
    if (up === c || !at.has(up) || !(at.get(c)! > 0)) continue;
    measured += at.get(up)! / at.get(c)! - 1;
    linear += up / c - 1;
    points++;
  }
  return points === 0 ? { measured: 0, linear: 0, points: 0 } : { measured: measured / points, linear: linear / points, points };
}

export interface RoundToChoice {
  roundTo: number;
  /** per candidate: the measured and the no-staircase cost (means over the curves; roundingCost) */
  costs: Array<{ roundTo: number; measured: number; linear: number }>;
}

/**
 * The roundTo a runtime rewards, from channel-step curves timed on it: the largest candidate whose
 * rounding costs at most `tolerance` (default 0.03: 3 % of a layer's time) AND at most half of what
 * it would cost without a staircase (so a smooth curve, where rounding up always costs time, keeps
 * roundTo 1). On a staircase of period p every divisor of p is free and p is chosen.
 * @throws Error when no curve has a point to judge by
 */
export function chooseRoundTo(curves: ChannelStepCurve[], o: { tolerance?: number; candidates?: readonly number[] } = {}): RoundToChoice {
  const tol = o.tolerance ?? 0.03;
  const candidates = [...(o.candidates ?? ROUND_TO_CANDIDATES)].sort((a, b) => a - b);
  const costs = candidates.map((r) => {
    const per = curves.map((c) => roundingCost(c, r)).filter((x) => x.points > 0);
    if (r > 1 && per.length === 0) throw new Error(`channel steps: no curve spans a multiple of ${r}`);
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    return { roundTo: r, measured: mean(per.map((x) => x.measured)), linear: mean(per.map((x) => x.linear)) };
  });
  let roundTo = 1;
  for (const c of costs) if (c.roundTo > 1 && c.measured <= tol && c.measured <= 0.5 * c.linear) roundTo = c.roundTo;
  return { roundTo, costs };
}
