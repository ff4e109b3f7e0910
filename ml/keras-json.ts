// What a Keras model.json says, in the form tfjs-layers 4.22 reads. The tensorflowjs converter writes the
// topology as the Keras that saved the model wrote it; tfjs-layers reads tf-keras (Keras 2) topologies but
// not Keras 3's. This module rewrites, with no tfjs: Keras 3 `batch_shape` (InputLayer), `inbound_nodes`
// as `{args, kwargs}` with `__keras_tensor__` histories, dtype-policy objects, `{module, class_name, config,
// registered_name}` wrappers, a single `input_layers`/`output_layers` triple, Keras 3's DepthwiseConv2D
// weight name (`kernel` → tfjs's `depthwise_kernel`), and tf-keras BatchNormalization `axis: [3]` (a list of
// one) → `3`. A field tfjs-layers would silently ignore although it changes the outputs (a ReLU's
// `negative_slope`, a pooling's `keepdims`, a conv's `groups`, LoRA, a mixed-precision policy…) and a layer
// class tfjs-layers does not have are refused: one line naming the layer, the field and the fix.
// Sources: keras 3.15 `keras/src/models/functional.py` (serialize_node, functional_from_config),
// tfjs-layers 4.22 `engine/container.ts` (fromConfig), `layers/*.ts` (the args each class reads).
import { ModelError } from '../core/errors';

/** Which Keras wrote a model: Keras 3, tf-keras (Keras 2), or tfjs-layers itself. What export writes back. */
export type ModelFamily = 'keras3' | 'tf-keras' | 'tfjs';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The family of a tfjs model.json: from `generatedBy` ("keras v3.15.1") or `modelTopology.keras_version`
 * ("3.15.1", "2.21.0", "tfjs-layers 4.22.0"); Keras 3 structures (`batch_shape`, `{args, kwargs}` nodes)
 * when neither says.
 */
export function modelFamily(json: { generatedBy?: unknown; modelTopology?: unknown }): ModelFamily {
  const version = (v: unknown): ModelFamily | undefined => {
    if (typeof v !== 'string') return undefined;
    if (/tfjs|tensorflow\.?js/i.test(v)) return 'tfjs';
    const m = /(\d+)\.\d+/.exec(v);
    if (!m) return undefined;
    return m[1] === '3' ? 'keras3' : m[1] === '2' ? 'tf-keras' : undefined;
  };
  const top = isObj(json.modelTopology) ? json.modelTopology : {};
  const found = version(json.generatedBy) ?? version(top.keras_version);
  if (found) return found;
  const text = JSON.stringify(json.modelTopology ?? {});
  return /"batch_shape"|"__keras_tensor__"|"DTypePolicy"/.test(text) ? 'keras3' : 'tfjs';
}

/** tfjs-layers' own name for a Keras 3 weight, where they differ (`<layer class>: {keras 3: tfjs}`). */
const WEIGHT_RENAMES: Record<string, Record<string, string>> = {
  DepthwiseConv2D: { kernel: 'depthwise_kernel' },
  DepthwiseConv1D: { kernel: 'depthwise_kernel' },
};

/** Config fields tfjs-layers 4.22 does not read, with the value under which ignoring them is exact. */
const IGNORED_UNLESS: Array<{ classes: RegExp; field: string; ok: (v: Json | undefined) => boolean; fix: string }> = [
  { classes: /^(ReLU)$/, field: 'negative_slope', ok: (v) => v == null || v === 0, fix: 'use LeakyReLU, or a plain ReLU' },
  { classes: /^(ReLU)$/, field: 'threshold', ok: (v) => v == null || v === 0, fix: 'use a ReLU with threshold 0' },
  { classes: /^Global(Average|Max)Pooling[123]D$/, field: 'keepdims', ok: (v) => v == null || v === false, fix: 'use keepdims=False and a Reshape' },
  {
    classes: /^(Conv[123]D|Conv[123]DTranspose|SeparableConv[12]D)$/,
    field: 'groups',
    ok: (v) => v == null || v === 1,
    fix: 'grouped convolutions are not supported: use groups=1',
  },
  { classes: /./, field: 'lora_rank', ok: (v) => v == null, fix: 'merge the LoRA weights (layer.disable_lora / enable_lora then save) first' },
  { classes: /./, field: 'quantization_config', ok: (v) => v == null, fix: 'save the float model, not a Keras-quantized one' },
  { classes: /^BatchNormalization$/, field: 'renorm', ok: (v) => v == null || v === false, fix: 'train without renorm' },
  { classes: /^BatchNormalization$/, field: 'virtual_batch_size', ok: (v) => v == null, fix: 'remove virtual_batch_size' },
  { classes: /^InputLayer$/, field: 'sparse', ok: (v) => v == null || v === false, fix: 'sparse inputs are not supported: use a dense input' },
  { classes: /^InputLayer$/, field: 'ragged', ok: (v) => v == null || v === false, fix: 'ragged inputs are not supported: use a dense input' },
];

export interface Normalized {
  /** the topology in the form tfjs-layers reads */
  topology: Obj;
  /** a weight's name in the manifest → the name tfjs-layers gives that weight (most names are the same) */
  weightName: (name: string) => string;
}

/**
 * Rewrites a model.json `modelTopology` (the converter's `{keras_version, model_config}` or tfjs's own
 * `{class_name, config}`) into what tfjs-layers 4.22 reads. Pure: the input is not modified.
 * `knownClass` says whether tfjs-layers has a layer class (ml/models.ts passes the registry).
 * @throws ModelError `<where>: layer '<name>' (<class>): <field>: <cause>: <fix>` (one line)
 */
export function normalizeTopology(topology: unknown, where: string, knownClass: (cls: string) => boolean = () => true): Normalized {
  if (!isObj(topology)) throw new ModelError(`${where}: modelTopology is not an object: give a tfjs layers model.json`);
  const top = structuredClone(topology) as Obj;
  const renames = new Map<string, string>();
  const modelConfig = isObj(top.model_config) ? top.model_config : top;
  keras3 = typeof top.keras_version === 'string' && top.keras_version.startsWith('3.');
  normalizeModel(modelConfig, where, knownClass, renames, '');
  // Keras 3's legacy .h5 writer prefixes a Sequential model's weight names with the model's name
  // ("seq/conv/kernel"); tfjs names them by layer ("conv/kernel")
  const cfg = isObj(modelConfig.config) ? modelConfig.config : {};
  const layerNames = new Set((Array.isArray(cfg.layers) ? cfg.layers : []).map((l) => (isObj(l) ? describe(l).name : '')));
  const modelPrefix = typeof cfg.name === 'string' && !layerNames.has(cfg.name) ? `${cfg.name}/` : undefined;
  const weightName = (name: string): string => {
    let n = name;
    if (modelPrefix && n.startsWith(modelPrefix) && layerNames.has(n.slice(modelPrefix.length).split('/')[0])) n = n.slice(modelPrefix.length);
    return renames.get(n) ?? n;
  };
  return { topology: top, weightName };
}

const MODEL_CLASSES = new Set(['Functional', 'Model', 'Sequential']);

/** Whether the topology being normalised was written by Keras 3 (set per normalizeTopology call; synchronous). */
let keras3 = false;

function normalizeModel(model: Obj, where: string, knownClass: (cls: string) => boolean, renames: Map<string, string>, prefix: string): void {
  const cls = String(model.class_name ?? '');
  if (!MODEL_CLASSES.has(cls))
    throw new ModelError(
      `${where}: the model is a ${cls || 'class-less object'}, not Functional or Sequential: subclassed Keras models have no layer graph: build it with the functional API or Sequential`,
    );
  stripWrapper(model, where);
  const config = model.config;
  if (!isObj(config) || !Array.isArray(config.layers)) throw new ModelError(`${where}: ${cls} config has no layers list: give a tfjs layers model.json`);
  for (const k of ['build_input_shape']) delete config[k];
  if (config.dtype !== undefined) config.dtype = dtypeName(config.dtype, where, `model '${String(config.name)}'`);
  // Keras 3 numbers a nested model's calls from 0; tfjs-layers (like tf-keras) counts the model's own
  // construction as node 0, so its first call is node 1
  const nested = new Set(config.layers.filter((l) => isObj(l) && MODEL_CLASSES.has(String(l.class_name))).map((l) => describe(l as Obj).name));
  const keras3Nodes = config.layers.some((l) => isObj(l) && Array.isArray(l.inbound_nodes) && l.inbound_nodes.some(isObj));
  for (const layer of config.layers) {
    if (!isObj(layer)) throw new ModelError(`${where}: a layers entry is not an object: give a tfjs layers model.json`);
    normalizeLayer(layer, where, knownClass, renames, prefix, nested);
  }
  for (const key of ['input_layers', 'output_layers']) {
    let v = config[key];
    // Keras 3 writes a single input or output as one triple, not a list of triples
    if (Array.isArray(v) && v.length === 3 && typeof v[0] === 'string' && typeof v[1] === 'number') v = [v];
    if (keras3Nodes && Array.isArray(v))
      v = v.map((t) => (Array.isArray(t) && nested.has(String(t[0])) && typeof t[1] === 'number' ? [t[0], t[1] + 1, ...t.slice(2)] : t));
    if (v !== undefined) config[key] = v;
  }
}

function describe(layer: Obj): { name: string; cls: string } {
  const config = isObj(layer.config) ? layer.config : {};
  return { name: String(config.name ?? layer.name ?? '?'), cls: String(layer.class_name ?? '?') };
}

/** Drops Keras 3's serialisation wrapper fields of a `{module, class_name, config, registered_name}` object. */
function stripWrapper(o: Obj, where: string): void {
  const reg = o.registered_name;
  if (typeof reg === 'string' && reg !== o.class_name && !/^(function|keras\.|Functional|Sequential)/.test(reg) && reg.includes('>')) {
    throw new ModelError(
      `${where}: '${String(o.class_name)}' is a custom object (registered as '${reg}'): tfjs-layers can only read Keras's own classes: replace it with built-in layers`,
    );
  }
  delete o.module;
  delete o.registered_name;
  delete o.build_config;
  delete o.compile_config;
  delete o.shared_object_id;
}

/** A dtype or dtype-policy object → a dtype name tfjs reads; mixed precision is refused. */
function dtypeName(v: Json, where: string, who: string): Json {
  if (v == null || typeof v === 'string') return checkDtype(v, where, who);
  if (isObj(v) && (v.class_name === 'DTypePolicy' || v.class_name === 'Policy' || v.class_name === 'FloatDTypePolicy') && isObj(v.config)) {
    return checkDtype(v.config.name ?? null, where, who);
  }
  throw new ModelError(`${where}: ${who}: dtype: ${JSON.stringify(v).slice(0, 80)} is not a dtype policy tfjs-layers reads: save the model with float32`);
}

function checkDtype(name: Json, where: string, who: string): Json {
  if (typeof name === 'string' && /mixed|float16|bfloat16/.test(name))
    throw new ModelError(
      `${where}: ${who}: dtype: policy "${name}" (mixed precision) is not supported: set keras.mixed_precision.set_global_policy("float32"), rebuild the model, load the weights and save it again`,
    );
  return name;
}

/** Unwraps Keras 3 `{module, class_name, config, registered_name}` objects inside a layer config, recursively. */
function unwrapValues(v: Json, where: string, who: string): Json {
  if (Array.isArray(v)) return v.map((x) => unwrapValues(x, where, who));
  if (!isObj(v)) return v;
  if ('class_name' in v && 'config' in v) {
    if (v.class_name === 'DTypePolicy' || v.class_name === 'FloatDTypePolicy') return dtypeName(v, where, who);
    // a built-in activation serialised as a function object
    if (v.class_name === 'function' && typeof v.config === 'string') return v.config;
    if (v.class_name === '__tuple__' && isObj(v.config) && Array.isArray(v.config.value)) return unwrapValues(v.config.value, where, who);
    stripWrapper(v, where);
  }
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) out[k] = unwrapValues(x, where, who);
  return out;
}

function normalizeLayer(
  layer: Obj,
  where: string,
  knownClass: (cls: string) => boolean,
  renames: Map<string, string>,
  prefix: string,
  nested: Set<string>,
): void {
  const { name, cls } = describe(layer);
  const who = `layer '${name}' (${cls})`;
  if (MODEL_CLASSES.has(cls)) {
    // a nested model: its layers are normalised like the outer ones; its own inbound nodes below
    const nodes = layer.inbound_nodes;
    normalizeModel(layer, where, knownClass, renames, `${prefix}${name}/`);
    if (nodes !== undefined) layer.inbound_nodes = normalizeNodes(nodes, where, who, nested);
    return;
  }
  stripWrapper(layer, `${where}: ${who}`);
  if (!knownClass(cls))
    throw new ModelError(
      `${where}: ${who}: tfjs-layers 4.22 has no layer class '${cls}' (a custom layer, or one tfjs does not implement): replace it with built-in layers before converting`,
    );
  if (!isObj(layer.config)) throw new ModelError(`${where}: ${who}: config is missing: give a tfjs layers model.json`);
  const config = unwrapValues(layer.config, where, who) as Obj;
  layer.config = config;
  if (config.dtype !== undefined) config.dtype = dtypeName(config.dtype, where, who);
  for (const rule of IGNORED_UNLESS) {
    if (rule.classes.test(cls) && !rule.ok(config[rule.field]))
      throw new ModelError(`${where}: ${who}: ${rule.field}: ${JSON.stringify(config[rule.field])} is not supported by tfjs-layers: ${rule.fix}`);
  }
  if (cls === 'InputLayer') {
    if (config.batch_shape !== undefined && config.batch_input_shape === undefined) config.batch_input_shape = config.batch_shape;
    if (config.shape !== undefined && config.batch_input_shape === undefined && Array.isArray(config.shape)) config.batch_input_shape = [null, ...config.shape];
    delete config.batch_shape;
    delete config.shape;
    delete config.optional;
    if (config.batch_input_shape === undefined)
      throw new ModelError(`${where}: ${who}: batch_input_shape: the input has no shape: give the model's Input a shape (keras.Input(shape=...))`);
  }
  // the converter writes tf-keras SeparableConv's inherited single-kernel fields; tfjs-layers rejects them
  // (there is no single kernel: depthwise_* and pointwise_* say how to initialise)
  if (/^SeparableConv[12]D$/.test(cls)) {
    for (const f of ['kernel_regularizer', 'kernel_constraint'])
      if (config[f] != null) throw new ModelError(`${where}: ${who}: ${f}: not supported on a separable convolution: use depthwise_/pointwise_${f.slice(7)}`);
    for (const f of ['kernel_initializer', 'kernel_regularizer', 'kernel_constraint']) delete config[f];
  }
  // Keras 3 LeakyReLU says negative_slope where tfjs-layers (and tf-keras) say alpha
  if (cls === 'LeakyReLU' && config.negative_slope !== undefined) {
    config.alpha ??= config.negative_slope;
    delete config.negative_slope;
  }
  for (const f of ['activation', 'recurrent_activation']) {
    if (typeof config[f] !== 'string') continue;
    const a = config[f] as string;
    if (a === 'silu') config[f] = 'swish'; // the same function, x·sigmoid(x); Keras 3 writes 'silu'
    if (keras3 && /^hard_(sigmoid|silu|swish)$/.test(a))
      throw new ModelError(
        `${where}: ${who}: ${f}: Keras 3's '${a}' (relu6(x + 3) / 6) is not tfjs-layers' hard_sigmoid (0.2x + 0.5): use 'sigmoid' or a ReLU(6) on x + 3`,
      );
  }
  if (cls === 'BatchNormalization' && Array.isArray(config.axis)) {
    if (config.axis.length !== 1 || typeof config.axis[0] !== 'number')
      throw new ModelError(`${where}: ${who}: axis: ${JSON.stringify(config.axis)}: normalising over several axes is not supported: use one channel axis`);
    config.axis = config.axis[0];
  }
  // Keras 3 also writes a layer's own dtype policy at the top level of some layers
  if (layer.dtype !== undefined) delete layer.dtype;
  const map = WEIGHT_RENAMES[cls];
  if (map) for (const [from, to] of Object.entries(map)) renames.set(`${prefix}${name}/${from}`, `${prefix}${name}/${to}`);
  if (layer.inbound_nodes !== undefined) layer.inbound_nodes = normalizeNodes(layer.inbound_nodes, where, who, nested);
}

type History = [string, number, number];

/** Keras 3 `[{args, kwargs}]` nodes → tfjs `[[[layer, node, tensor, kwargs], …], …]`; tfjs/tf-keras nodes as they are. */
function normalizeNodes(nodes: Json, where: string, who: string, nested: Set<string>): Json {
  if (!Array.isArray(nodes)) throw new ModelError(`${where}: ${who}: inbound_nodes: not a list: give a tfjs layers model.json`);
  return nodes.map((node) => {
    if (Array.isArray(node)) return node; // tf-keras / tfjs: already [[name, node, tensor, kwargs], …]
    if (!isObj(node) || !('args' in node))
      throw new ModelError(
        `${where}: ${who}: inbound_nodes: an entry is neither a list nor Keras 3 {args, kwargs}: give a model.json the tensorflowjs converter wrote`,
      );
    const tensors: History[] = [];
    const loose: string[] = [];
    collect(node.args, tensors, loose);
    const kwargs: Obj = {};
    for (const [k, v] of Object.entries(isObj(node.kwargs) ? node.kwargs : {})) {
      const inner: History[] = [];
      collect(v, inner, []);
      if (inner.length > 0)
        throw new ModelError(
          `${where}: ${who}: inbound_nodes: the layer is called with a tensor as '${k}=' (from '${inner[0][0]}'): tfjs-layers passes only positional inputs: pass it as an input`,
        );
      if (v !== null) kwargs[k] = v;
    }
    if (loose.length > 0)
      throw new ModelError(
        `${where}: ${who}: inbound_nodes: the layer is called with a non-tensor argument (${loose[0]}): tfjs-layers cannot replay that call`,
      );
    if (tensors.length === 0)
      throw new ModelError(`${where}: ${who}: inbound_nodes: a call without input tensors: give a model.json the tensorflowjs converter wrote`);
    return tensors.map(([l, n, t]) => [l, nested.has(l) ? n + 1 : n, t, kwargs]);
  });
}

function collect(v: Json, tensors: History[], loose: string[]): void {
  if (Array.isArray(v)) {
    for (const x of v) collect(x, tensors, loose);
  } else if (isObj(v)) {
    if (v.class_name === '__keras_tensor__' && isObj(v.config) && Array.isArray(v.config.keras_history)) {
      const [l, n, t] = v.config.keras_history;
      tensors.push([String(l), Number(n), Number(t)]);
    } else if (v.class_name === '__tuple__' && isObj(v.config)) {
      collect(v.config.value ?? [], tensors, loose);
    } else {
      loose.push(JSON.stringify(v).slice(0, 60));
    }
  } else if (v !== null) {
    loose.push(JSON.stringify(v));
  }
}
