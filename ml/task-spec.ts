// The model's task: what its output means (class scores, values, independent labels) and so which
// loss trains it and which metric scores it. Pure (no tfjs): the campaign loader checks a model.json
// at submit with the same rules the worker applies to the loaded model.
//
//   classification (default)  softmax cross-entropy; on logits when the output has no softmax.
//                              metric: top-1 accuracy.
//   regression                 mean squared error on the raw outputs.
//                              metric: R² (coefficient of determination, 1 − SS_res / SS_tot, SS_tot
//                              about each unit's mean, summed over units), reported where accuracy
//                              is; MAE as well.
//   multilabel                 sigmoid binary cross-entropy per label (on logits when the output has
//                              no sigmoid). metric: per-label accuracy (outputs thresholded at
//                              probability 0.5, averaged over labels and examples).
import { ModelError } from '../core/errors';

export const TASK_TYPES = ['classification', 'regression', 'multilabel'] as const;
export type TaskType = (typeof TASK_TYPES)[number];
export const TASK_OUTPUTS = ['logits', 'probabilities'] as const;
export type TaskOutputs = (typeof TASK_OUTPUTS)[number];

/** The campaign file's `task` section (or a bare type). */
export interface TaskSpec {
  type: TaskType;
  /** classification and multilabel: what the output holds; default: detected from the last layer's activation */
  outputs?: TaskOutputs;
}

/** What the loss and metric functions need to know. */
export interface Task {
  type: TaskType;
  /** classification / multilabel: scores before (logits) or after the final softmax / sigmoid; regression: values */
  outputs: TaskOutputs | 'values';
  /** the output layer's name */
  output: string;
  /** output units: classes, labels or regression targets */
  units: number;
  /** how `outputs` was decided: "detected from <layer> activation <a>" or "set by task.outputs" */
  how: string;
}

/** One model output, as far as the task is concerned. */
export interface OutputInfo {
  /** the output layer's name */
  name: string;
  /** the last layer whose activation decides what the output holds (skipping Dropout, Flatten, Reshape, linear Activation) */
  decidedBy: string;
  /** 'softmax', 'sigmoid', 'linear', … ('softmax' for a Softmax layer) */
  activation: string;
  /** output shape without the batch dimension when known */
  shape?: Array<number | null>;
}

/** Layers that leave what an output holds unchanged (walked back through to find the deciding activation). */
export const PASS_THROUGH = new Set([
  'Dropout',
  'Flatten',
  'Reshape',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
]);

/** The model must have one output: which one is trained is not ours to guess. @throws ModelError */
export function singleOutput(outputs: OutputInfo[]): OutputInfo {
  if (outputs.length === 1) return outputs[0];
  throw new ModelError(
    `model: ${outputs.length} outputs (${outputs.map((o) => `"${o.name}"`).join(', ')}): prunewise trains and scores a model with one output: ` +
      `save the model with only the output you deploy (in Keras: keras.Model(model.input, model.get_layer("${outputs[0]?.name}").output))`,
  );
}

/**
 * The task of a model's (single) output under the campaign's `task` (default classification).
 * @throws ModelError naming the output when the model has several outputs, an output that is not one
 *   vector per example, or an activation that does not fit the task (with the fix)
 */
export function resolveTask(outputs: OutputInfo[], spec: TaskSpec = { type: 'classification' }): Task {
  const o = singleOutput(outputs);
  const shape = o.shape;
  if (shape && shape.length !== 1)
    throw new ModelError(
      `model: output "${o.name}" has shape [${shape.map((d) => d ?? 'None').join(', ')}] per example: prunewise trains models with one vector per example (classification, regression, multilabel): end the model with a Dense layer`,
    );
  const units = shape?.[0] ?? 0;
  const act = o.activation;
  const where = `"${o.decidedBy}"${o.decidedBy === o.name ? '' : ` (before output "${o.name}")`}`;
  const bad = (why: string, fix: string) => new ModelError(`model: output ${where} ${why}: ${fix}`);
  if (spec.type === 'regression') {
    if (act === 'softmax')
      throw bad('ends in a softmax, which cannot fit regression targets', 'use task: classification, or end the model with a linear Dense');
    return { type: 'regression', outputs: 'values', output: o.name, units, how: `regression on the outputs of "${o.decidedBy}" (${act})` };
  }
  const want = spec.type === 'classification' ? 'softmax' : 'sigmoid';
  if (spec.type === 'classification' && units === 1)
    throw bad(
      'has 1 unit: a classifier needs one unit per class',
      act === 'sigmoid' ? 'for a binary classifier with one sigmoid unit set task: multilabel' : 'use one unit per class',
    );
  if (spec.type === 'multilabel' && act === 'softmax')
    throw bad('ends in a softmax: multilabel outputs are independent sigmoids', 'use task: classification, or end the model with sigmoid (or linear, logits)');
  if (spec.outputs) {
    if (spec.outputs === 'logits' && act === want)
      throw bad(`ends in a ${want}, so it outputs probabilities, not logits`, 'remove task.outputs (detected) or set it to probabilities');
    if (spec.outputs === 'probabilities' && act === 'linear')
      throw bad(`is linear (no ${want}), so it outputs logits, not probabilities`, 'remove task.outputs (detected) or set it to logits');
    return { type: spec.type, outputs: spec.outputs, output: o.name, units, how: `set by task.outputs (${spec.outputs})` };
  }
  if (act === want) return { type: spec.type, outputs: 'probabilities', output: o.name, units, how: `detected: ${where} ends in ${want}` };
  if (act === 'linear') return { type: spec.type, outputs: 'logits', output: o.name, units, how: `detected: ${where} is linear (logits)` };
  throw bad(
    `ends in activation "${act}", neither ${want} (probabilities) nor linear (logits)`,
    `set task.outputs to logits or probabilities to say what it holds`,
  );
}

/** Layer classes that are whole models (a model used as a layer). */
const NESTED = new Set(['Sequential', 'Functional', 'Model']);

type LayerJson = { class_name?: string; className?: string; name?: string; config?: Record<string, unknown>; inbound_nodes?: unknown };

/** The model config inside a model.json's `modelTopology` (tfjs-written, or Keras-converted with `model_config`). */
function modelConfig(topology: Record<string, unknown>): { className: string; config: Record<string, unknown> | LayerJson[] } {
  const mc = (topology.model_config ?? topology) as { class_name?: string; className?: string; config?: Record<string, unknown> | LayerJson[] };
  return { className: mc.class_name ?? mc.className ?? '', config: mc.config ?? {} };
}

/** Layer names a Keras 2 / tfjs (`[[name, node, tensor, kwargs]]`) or Keras 3 (`{args: [{config: {keras_history}}]}`) inbound node names. */
function inboundNames(nodes: unknown): string[] {
  const out: string[] = [];
  const visit = (v: unknown) => {
    if (Array.isArray(v)) {
      if (typeof v[0] === 'string' && typeof v[1] === 'number') out.push(v[0]);
      else v.forEach(visit);
    } else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (Array.isArray(o.keras_history) && typeof o.keras_history[0] === 'string') out.push(o.keras_history[0]);
      else Object.values(o).forEach(visit);
    }
  };
  visit(nodes);
  return out;
}

const activationOf = (l: LayerJson): string => {
  const cls = l.class_name ?? l.className ?? '';
  if (cls === 'Softmax') return 'softmax';
  const a = l.config?.activation;
  if (typeof a === 'string') return a;
  if (a && typeof a === 'object') {
    const o = a as { class_name?: string; config?: { name?: string } };
    return o.config?.name ?? o.class_name ?? 'linear';
  }
  return cls === 'Activation' ? 'linear' : 'linear';
};

/**
 * The outputs of a model.json's topology (tfjs, tf-keras or Keras 3 converter), without tfjs: the
 * output layers, the activation that decides what each holds, and the units of a final Dense.
 * Returns undefined when the topology is not one it can read (the worker checks the loaded model).
 */
export function outputsOfTopology(modelJson: unknown): OutputInfo[] | undefined {
  const topology = (modelJson as { modelTopology?: Record<string, unknown> })?.modelTopology;
  if (!topology || typeof topology !== 'object') return undefined;
  const { className, config } = modelConfig(topology);
  const layers: LayerJson[] = Array.isArray(config) ? config : ((config as { layers?: LayerJson[] }).layers ?? []);
  if (layers.length === 0) return undefined;
  const nameOf = (l: LayerJson) => (l.config?.name as string | undefined) ?? l.name ?? '';
  const byName = new Map(layers.map((l) => [nameOf(l), l]));
  let outNames: string[];
  if (className === 'Sequential') outNames = [nameOf(layers[layers.length - 1])];
  else {
    const raw = (config as { output_layers?: unknown }).output_layers;
    if (!Array.isArray(raw)) return undefined;
    outNames = typeof raw[0] === 'string' ? [raw[0] as string] : (raw as unknown[][]).map((r) => r[0] as string);
  }
  return outNames.map((name) => {
    let l = byName.get(name);
    let prev: LayerJson | undefined = undefined;
    // walk back through layers that do not change what the output holds
    for (let guard = 0; l && guard < layers.length; guard++) {
      const cls = l.class_name ?? l.className ?? '';
      const passes = PASS_THROUGH.has(cls) || (cls === 'Activation' && activationOf(l) === 'linear');
      if (!passes) break;
      prev = l;
      const idx = layers.indexOf(l);
      const ins = className === 'Sequential' ? (idx > 0 ? [nameOf(layers[idx - 1])] : []) : inboundNames(l.inbound_nodes);
      l = ins.length === 1 ? byName.get(ins[0]) : undefined;
    }
    const decider = l ?? prev ?? byName.get(name);
    const last = byName.get(name);
    const units = last && (last.class_name ?? last.className) === 'Dense' ? (last.config?.units as number | undefined) : undefined;
    // a nested model as the last layer: its own output decides
    if (decider && NESTED.has(decider.class_name ?? decider.className ?? '')) {
      const inner = outputsOfTopology({ modelTopology: decider });
      if (inner?.length === 1) return { name, decidedBy: inner[0].decidedBy, activation: inner[0].activation, shape: units ? [units] : inner[0].shape };
    }
    return { name, decidedBy: decider ? nameOf(decider) : name, activation: decider ? activationOf(decider) : 'linear', shape: units ? [units] : undefined };
  });
}

/** `task` as the campaign gives it: a type, or { type, outputs }. */
export function taskSpecOf(task: TaskType | TaskSpec | undefined): TaskSpec {
  if (task === undefined) return { type: 'classification' };
  return typeof task === 'string' ? { type: task } : task;
}

/**
 * A model.json's input shape without the batch dimension (null for a free dimension), from its
 * InputLayer (`batch_input_shape`, Keras 3 `batch_shape`) or first layer; undefined when unreadable.
 */
export function inputShapeOfTopology(modelJson: unknown): Array<number | null> | undefined {
  const topology = (modelJson as { modelTopology?: Record<string, unknown> })?.modelTopology;
  if (!topology || typeof topology !== 'object') return undefined;
  const { className, config } = modelConfig(topology);
  const layers: LayerJson[] = Array.isArray(config) ? config : ((config as { layers?: LayerJson[] }).layers ?? []);
  const nameOf = (l: LayerJson) => (l.config?.name as string | undefined) ?? l.name ?? '';
  let layer: LayerJson | undefined = layers[0];
  if (className !== 'Sequential') {
    const raw = (config as { input_layers?: unknown }).input_layers;
    const first = Array.isArray(raw) ? (typeof raw[0] === 'string' ? raw[0] : (raw[0] as unknown[] | undefined)?.[0]) : undefined;
    layer = layers.find((l) => nameOf(l) === first) ?? layer;
  }
  const c = layer?.config ?? {};
  const shape = (c.batch_input_shape ?? c.batch_shape ?? c.batchInputShape) as Array<number | null> | undefined;
  return Array.isArray(shape) ? shape.slice(1) : undefined;
}
