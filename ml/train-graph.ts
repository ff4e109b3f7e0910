// Graph mode of training on the native backend: the whole training step — forward, the recipe's loss,
// gradients, Adam, batch norm's moving averages — is one TensorFlow graph (a SavedModel traced once per
// architecture by ml/py/train_graph.py in the project's .venv), run by one session call per batch
// through tfjs-node's SavedModel support. Eager training pays per op: tfjs-layers, the tape and one
// binding call per TensorFlow op (~150 per LeNet-5 step); a graph is one call, and TensorFlow's graph
// optimiser (Grappler) fuses and schedules the ops. Measured here (bench/results-train.txt, batch 64):
// 1.6–2.6× the eager native throughput on LeNet-5, small VGG, ResNet-8 and the MobileNet-style net,
// 1.27–1.91× PyTorch's CPU throughput.
//
// Used by ml/train.ts when `graphModeRefusal` finds nothing against it; the choice depends on the
// backend, PRUNEWISE_TRAIN_GRAPH, the model, the recipe, the step budget and whether the tracing
// Python (.venv, or PRUNEWISE_TF_PYTHON) has TensorFlow and tf-keras, never on timing: workers with
// the same installation and environment train a campaign the same way on every run. A resume decides
// again in the worker that resumes (the checkpoint does not record the mode): a worker with another
// PRUNEWISE_TRAIN_GRAPH can finish a stage in the other mode.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../platform/version';
import type { AdamState } from './adam';
import type { AttentionLayer } from './attention';
import { sha256 } from './files';
import type { GroupPenalty } from './recipe';
import type { Task } from './task';
import { tflitePython } from './tflite';

/** The exporter script, and the version of the graphs it writes (a part of the cache key). */
const SCRIPT = path.join(PACKAGE_ROOT, 'ml', 'py', 'train_graph.py');
const GRAPH_FORMAT = 1;

/**
 * Under PRUNEWISE_TRAIN_GRAPH=auto, budgets of fewer optimizer steps train eagerly: tracing a new
 * architecture costs 3.5–8.5 s here (TensorFlow's import in a child Python, the trace, the save;
 * bench:train's trace column), and a graph step saves ~4 ms (LeNet-5) to ~8–20 ms (small VGG) at
 * batch 64 on 2 cores, so the trace pays back after roughly 500–1 500 steps (a newcomer's timing of
 * whole stages: graph slower at 300–400 steps, even at ~560 on small VGG).
 */
export const GRAPH_MIN_STEPS = 1000;

/**
 * Layers whose training-mode call draws random numbers the graph does not seed per step (Dropout and
 * SpatialDropout1D/2D/3D it does: ml/py/train_graph.py).
 */
const RANDOM_LAYERS = new Set(['GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

/**
 * PRUNEWISE_TRAIN_GRAPH: `auto` (default) graph mode from GRAPH_MIN_STEPS steps; `on` graph mode
 * whatever the budget (the other refusals stand); `off` eager always. Graph and eager give different
 * numbers for one seed: each training stage records its mode (metric trainGraph).
 * @throws Error for any other value (workers check it at start: cli/worker.ts)
 */
export function graphModeSetting(): 'auto' | 'on' | 'off' {
  const v = process.env.PRUNEWISE_TRAIN_GRAPH;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'on' || v === 'off') return v;
  throw new Error(`PRUNEWISE_TRAIN_GRAPH: "${v}" is not auto, on or off: unset it (auto) or give one of those`);
}

interface LayerLike {
  name: string;
  getClassName(): string;
  layers?: LayerLike[];
  weights: Array<{ shape: number[]; trainable: boolean; read(): tf.Tensor }>;
}

function flatLayers(model: tfl.LayersModel): LayerLike[] {
  const out: LayerLike[] = [];
  const walk = (ls: LayerLike[]) => {
    for (const l of ls) {
      out.push(l);
      if (l.layers) walk(l.layers);
    }
  };
  walk(model.layers as unknown as LayerLike[]);
  return out;
}

/**
 * Why this training cannot run in graph mode, or null when it can: the backend is not `tensorflow`,
 * PRUNEWISE_TRAIN_GRAPH=off, fewer than GRAPH_MIN_STEPS steps (under `auto`), a layer that draws random
 * numbers in training, more than one input or output, or a batch cut into several shards. (trainGraphFor may still refuse: GraphRefused.)
 * @throws Error when PRUNEWISE_TRAIN_GRAPH is not auto, on or off
 */
export function graphModeRefusal(model: tfl.LayersModel, o: { totalSteps: number; shardsPerBatch: number }): string | null {
  const setting = graphModeSetting();
  if (tf.getBackend() !== 'tensorflow') return `the backend is ${tf.getBackend()}`;
  if (setting === 'off') return 'PRUNEWISE_TRAIN_GRAPH=off';
  if (setting === 'auto' && o.totalSteps < GRAPH_MIN_STEPS) return `${o.totalSteps} steps (graph mode from ${GRAPH_MIN_STEPS}, or PRUNEWISE_TRAIN_GRAPH=on)`;
  if (o.shardsPerBatch !== 1) return 'the batch is cut into shards';
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return 'the model has more than one input or output';
  if (model.inputs[0].dtype !== 'float32') return `the input is ${model.inputs[0].dtype}`;
  const random = flatLayers(model).find((l) => RANDOM_LAYERS.has(l.getClassName()));
  if (random) return `layer ${random.name} (${random.getClassName()}) draws random numbers in training`;
  return null;
}

/** The weights in the tfjs model's order, as the exporter finds them: [layer, index in its weights, shape, trainable]. */
function weightRefs(model: tfl.LayersModel): { refs: Array<[string, number, number[], boolean]>; vars: tf.Variable[] } {
  const byTensor = new Map<number, [string, number, number[], boolean]>();
  for (const l of flatLayers(model)) {
    if (l.layers) continue; // a nested model's weights are its layers'
    l.weights.forEach((w, i) => byTensor.set((w.read() as tf.Variable).id, [l.name, i, w.shape, w.trainable]));
  }
  const vars = model.weights.map((w) => w.read() as tf.Variable);
  const refs = vars.map((v) => {
    const r = byTensor.get(v.id);
    if (!r) throw new Error(`graph mode: weight ${v.name} belongs to no layer`);
    return r;
  });
  return { refs, vars };
}

/** Where traced graphs are kept: PRUNEWISE_GRAPH_CACHE, else a folder in the OS's temp dir (a cache: deleting it costs a re-trace). */
export function graphCacheDir(): string {
  return process.env.PRUNEWISE_GRAPH_CACHE ?? path.join(os.tmpdir(), `prunewise-train-graphs-${os.userInfo().uid}`);
}

/** Graphs kept in the cache (the most recently used; each is the architecture's SavedModel, weights included). */
export const GRAPH_CACHE_KEEP = 32;

function touch(dir: string): void {
  const now = new Date();
  try {
    fs.utimesSync(dir, now, now);
  } catch {
    // another process pruned it: it is traced again next time
  }
}

/** Deletes all but the GRAPH_CACHE_KEEP most recently used graphs (a cache: best effort). */
function pruneCache(root: string): void {
  try {
    const graphs = fs
      .readdirSync(root)
      .filter((n) => /^[0-9a-f]{32}$/.test(n))
      .map((n) => ({ dir: path.join(root, n), t: fs.statSync(path.join(root, n)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    for (const g of graphs.slice(GRAPH_CACHE_KEEP)) fs.rmSync(g.dir, { recursive: true, force: true });
  } catch {
    // a cache: a failed clean-up costs disk, never a training
  }
}

/**
 * A failure of the exporter that depends only on the model (tf-keras cannot build it) or on the
 * installation (no Python with TensorFlow and tf-keras to trace with): train eagerly, saying why.
 */
export class GraphRefused extends Error {}

const exporting = new Map<string, Promise<string>>();

/**
 * The SavedModel folder of this model's training step (traced once per architecture, task, attention layers and penalised
 * groups; cached). @throws GraphRefused, Error
 */
export async function trainGraphFor(
  model: tfl.LayersModel,
  task: Task,
  attention: AttentionLayer[] = [],
  /** the sparsity penalty's maps (ml/recipe.ts groupPenaltyOf over model.trainableWeights): the step then applies it */
  penalty?: GroupPenalty,
): Promise<string> {
  let refs: ReturnType<typeof weightRefs>['refs'];
  let vars: tf.Variable[];
  try {
    ({ refs, vars } = weightRefs(model));
  } catch (e) {
    throw new GraphRefused((e as Error).message);
  }
  const spec = {
    topology: withoutInitializers(model.toJSON(null, false)),
    task: { type: task.type, outputs: task.outputs, units: task.units },
    weights: refs,
    // attention transfer's layers (ml/attention.ts): the step then takes the teacher's maps
    ...(attention.length > 0 ? { attention: attention.map((l) => [l.name, l.size]) } : {}),
    ...(penalty ? { sparsity: penaltySpec(model, vars, penalty) } : {}),
  };
  const text = JSON.stringify(spec);
  const key = sha256(`${GRAPH_FORMAT}\n${fs.readFileSync(SCRIPT, 'utf8')}\n${text}`).slice(0, 32);
  const dir = path.join(graphCacheDir(), key);
  if (fs.existsSync(path.join(dir, 'saved_model.pb'))) {
    touch(dir);
    return dir;
  }
  let p = exporting.get(key);
  if (!p) {
    p = exportGraph(text, dir).finally(() => exporting.delete(key));
    exporting.set(key, p);
  }
  return p;
}

/** The penalty's maps for the exporter, by index in the graph's weights (the model's weights, all of them). */
function penaltySpec(model: tfl.LayersModel, vars: tf.Variable[], p: GroupPenalty) {
  const index = new Map(vars.map((v, k) => [v.id, k]));
  const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);
  if (trainable.length !== p.slices.length) throw new Error(`sparsity penalty for ${p.slices.length} variables does not fit the model's ${trainable.length}`);
  return {
    channels: p.channels,
    groups: p.groups,
    groupOf: Array.from(p.groupOf),
    slices: p.slices.flatMap((marks, k) => marks.map((m) => [index.get(trainable[k].id), m.slot, m.axis, Array.from(m.chan)])),
  };
}

/**
 * The topology without its initializers (`*_initializer` keys): the session's weights are set from the
 * model's, so they shape nothing in the graph — and without their seeds one architecture is one graph.
 */
function withoutInitializers(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutInitializers);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).flatMap(([k, x]) => (k.endsWith('_initializer') ? [] : [[k, withoutInitializers(x)]])));
}

function exportGraph(spec: string, dir: string): Promise<string> {
  const py = tflitePython();
  if (py.missing) return Promise.reject(new GraphRefused(`cannot trace the graph: ${py.missing}`));
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.tmp-`);
  const specFile = path.join(tmp, 'spec.json');
  fs.writeFileSync(specFile, spec);
  const out = path.join(tmp, 'graph');
  return new Promise<string>((resolve, reject) => {
    const child = spawn(py.python, [SCRIPT, specFile, out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
    child.on('error', (e) => reject(new GraphRefused(`cannot trace the graph: cannot start ${py.python} (${e.message})`)));
    child.on('close', (code, signal) => {
      let r: { ok: boolean; step?: string; error?: string } | undefined;
      try {
        r = JSON.parse(stdout.trim().split('\n').at(-1) ?? '');
      } catch {
        r = undefined;
      }
      try {
        if (r?.ok) {
          try {
            fs.renameSync(out, dir);
          } catch (e) {
            // another process traced the same graph first: its copy serves
            if (!fs.existsSync(path.join(dir, 'saved_model.pb'))) throw e;
          }
          pruneCache(path.dirname(dir));
          return resolve(dir);
        }
        if (r && (r.step === 'build the model with tf-keras' || r.step === 'match the weights'))
          return reject(new GraphRefused(`tf-keras cannot ${r.step === 'match the weights' ? 'match the weights' : 'build the model'}: ${r.error}`));
        if (r?.step === 'import TensorFlow')
          return reject(new GraphRefused(`${py.python} cannot import TensorFlow and tf-keras to trace the graph: ${r.error}`));
        const last = stderr.trim().split('\n').at(-1) ?? '';
        reject(new Error(`graph mode: ${r ? `${r.step} failed: ${r.error}` : `ml/py/train_graph.py exited (${signal ?? code})${last ? `: ${last}` : ''}`}`));
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  });
}

interface SavedModelLike {
  predict(inputs: tf.NamedTensorMap): tf.NamedTensorMap;
  dispose(): void;
}

/** tfjs-node's SavedModel loader (the package the backend chain loaded). */
function loadSavedModel(dir: string, signature: string): Promise<SavedModelLike> {
  const pkg = tf.getBackend() === 'tensorflow' ? nativePackage() : undefined;
  if (!pkg) throw new Error('graph mode needs the tensorflow backend');
  return pkg.node.loadSavedModel(dir, ['serve'], signature) as Promise<SavedModelLike>;
}

function nativePackage(): { node: { loadSavedModel(dir: string, tags: string[], signature: string): Promise<unknown> } } | undefined {
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    const id = (() => {
      try {
        return require.resolve(name);
      } catch {
        return undefined;
      }
    })();
    if (id && require.cache[id]) return require(id);
  }
  return undefined;
}

let opened = 0;

/** Scalars of one step, computed in JavaScript exactly as the eager path computes them (ml/adam.ts, ml/recipe.ts). */
export interface GraphStepScalars {
  lr: number;
  /** Adam's step number (1 for the first step) */
  t: number;
  labelSmoothing: number;
  distillWeight: number;
  temperature: number;
  /** attention transfer's β/2 (ml/attention.ts); only for a graph traced with attention layers */
  attentionScale?: number;
  /** the step's dropout seed (ml/train.ts shardSeed of shard 0, as the eager path seeds its masks), a whole number in [0, 2^31) */
  dropoutSeed: number;
  /** the sparsity penalty's λ(t) and α (ml/recipe.ts); only for a graph traced with the penalty */
  sparsity?: { lambda: number; alpha: number };
}

/**
 * One model's training graph, loaded: its variables (the model's weights and Adam's moments) live in
 * the TensorFlow session until `pull` copies them back into the tfjs model.
 */
export class GraphTrainer {
  private constructor(
    private readonly step_: SavedModelLike,
    private readonly get: SavedModelLike,
    private readonly set: SavedModelLike,
    private readonly vars: tf.Variable[],
    private readonly trainable: number[],
    private readonly units: number,
    private readonly epsilon: number,
  ) {}

  /** Loads the graph and gives it the model's weights and the optimizer's state (zero moments when none). */
  static async open(dir: string, model: tfl.LayersModel, task: Task, optimizer?: AdamState): Promise<GraphTrainer> {
    const { vars, refs } = weightRefs(model);
    const trainable = refs.flatMap((r, k) => (r[3] ? [k] : []));
    // tfjs-node gives every load of one path the same session (so the three signatures share the
    // variables); a path of its own per trainer keeps two trainings of one architecture apart
    const live = path.join(graphCacheDir(), `live-${process.pid}-${++opened}`);
    fs.rmSync(live, { force: true });
    fs.symlinkSync(dir, live);
    const loaded: SavedModelLike[] = [];
    try {
      for (const s of ['train_step', 'get_state', 'set_state']) loaded.push(await loadSavedModel(live, s));
    } catch (e) {
      loaded.forEach((m) => m.dispose());
      throw e;
    } finally {
      fs.rmSync(live, { force: true }); // the session has read what it needs
    }
    const [step, get, set] = loaded;
    const g = new GraphTrainer(step, get, set, vars, trainable, task.units, tf.backend().epsilon());
    try {
      g.push(optimizer);
    } catch (e) {
      g.dispose();
      throw e;
    }
    return g;
  }

  /** Sets the session's variables: the model's current weights and these moments (zeros without). */
  push(optimizer?: AdamState): void {
    if (optimizer && (optimizer.m.length !== this.trainable.length || optimizer.v.length !== this.trainable.length))
      throw new Error(`optimizer state for ${optimizer.m.length} variables does not fit the model's ${this.trainable.length}`);
    tf.tidy(() => {
      const inputs: tf.NamedTensorMap = {};
      this.vars.forEach((v, k) => (inputs[`w${k}`] = v));
      this.trainable.forEach((k, j) => {
        const shape = this.vars[k].shape;
        inputs[`m${j}`] = optimizer ? tf.tensor(optimizer.m[j], shape) : tf.zeros(shape);
        inputs[`v${j}`] = optimizer ? tf.tensor(optimizer.v[j], shape) : tf.zeros(shape);
      });
      tf.dispose(Object.values(this.set.predict(inputs)));
    });
  }

  /**
   * One training step on a batch: x [n, ...input], y [n, K] targets, teacher logits [n, K] when distilling, the teacher's
   * attention maps [n, Σ H·W] when the graph was traced with attention layers. Returns the batch's mean loss (with
   * attention, its β/2 term included).
   */
  step(x: tf.Tensor, y: tf.Tensor, teacher: tf.Tensor | undefined, s: GraphStepScalars, attention?: tf.Tensor): number {
    const n = x.shape[0];
    const beta1 = 0.9;
    const beta2 = 0.999;
    const out = tf.tidy(() => {
      const f = (v: number) => tf.scalar(v, 'float32');
      return this.step_.predict({
        x,
        y,
        t: teacher ?? tf.zeros([n, this.units]),
        lr: f(s.lr),
        b1p: f(beta1 ** s.t),
        b2p: f(beta2 ** s.t),
        eps_hat: f(this.epsilon * Math.sqrt(1 - beta2 ** s.t)),
        ls_keep: f(1 - s.labelSmoothing),
        ls_add: f(s.labelSmoothing / this.units),
        hard_scale: f(1 - s.distillWeight),
        kd_scale: f(s.distillWeight * s.temperature * s.temperature),
        inv_t: f(1 / s.temperature),
        dseed: tf.tensor1d([s.dropoutSeed, 0], 'int32'),
        ...(attention ? { at: attention, at_scale: f(s.attentionScale ?? 0) } : {}),
        ...(s.sparsity ? { sp_lambda: f(s.sparsity.lambda), sp_alpha: f(s.sparsity.alpha) } : {}),
      });
    });
    try {
      return out.loss.dataSync()[0];
    } finally {
      tf.dispose(Object.values(out));
    }
  }

  /** Copies the session's weights into the tfjs model; returns Adam's moments at step t (for a checkpoint). */
  pull(t: number): AdamState {
    const out = this.get.predict({});
    try {
      this.vars.forEach((v, k) => v.assign(out[`w${k}`]));
      const read = (name: string) => (out[name].dataSync() as Float32Array).slice();
      return { t, m: this.trainable.map((_, j) => read(`m${j}`)), v: this.trainable.map((_, j) => read(`v${j}`)) };
    } finally {
      tf.dispose(Object.values(out));
    }
  }

  dispose(): void {
    for (const m of [this.step_, this.get, this.set])
      try {
        m.dispose();
      } catch {
        // disposed already (they share one session: the last one frees it)
      }
  }
}
