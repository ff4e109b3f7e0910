// The model zoo and disk I/O in the tfjs format (model.json + one weights.bin), with no network.
// Per-channel int8 weights are stored in the same format with a `prunewise` note on each
// quantized tensor; loadModel dequantizes them, so every artifact loads through one function.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256, writeDirAtomic } from './files';
import { ModelError } from '../core/errors';
import { ZOO_NAMES, type ZooName } from './catalog';
import { outputChannelAxis } from './support';
import { normalizeTopology } from './keras-json';

export { ModelError };

const init = (seed: number, i: number) => tfl.initializers.glorotUniform({ seed: seed * 100 + i });

/** LeNet-300-100 (LeCun et al. 1998): the classic fully connected net. */
function mlp(seed: number, shape: number[], classes: number): tfl.Sequential {
  return tfl.sequential({
    name: 'mlp',
    layers: [
      tfl.layers.flatten({ inputShape: shape, name: 'flatten' }),
      tfl.layers.dense({ units: 300, activation: 'relu', name: 'fc1', kernelInitializer: init(seed, 1) }),
      tfl.layers.dense({ units: 100, activation: 'relu', name: 'fc2', kernelInitializer: init(seed, 2) }),
      tfl.layers.dense({ units: classes, activation: 'softmax', name: 'out', kernelInitializer: init(seed, 3) }),
    ],
  });
}

/** LeNet-5 (LeCun et al. 1998) with ReLU and max pooling. */
function lenet5(seed: number, shape: number[], classes: number): tfl.Sequential {
  return tfl.sequential({
    name: 'lenet5',
    layers: [
      tfl.layers.conv2d({ inputShape: shape, filters: 6, kernelSize: 5, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: init(seed, 1) }),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tfl.layers.conv2d({ filters: 16, kernelSize: 5, activation: 'relu', name: 'conv2', kernelInitializer: init(seed, 2) }),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }),
      tfl.layers.flatten({ name: 'flatten' }),
      tfl.layers.dense({ units: 120, activation: 'relu', name: 'fc1', kernelInitializer: init(seed, 3) }),
      tfl.layers.dense({ units: 84, activation: 'relu', name: 'fc2', kernelInitializer: init(seed, 4) }),
      tfl.layers.dense({ units: classes, activation: 'softmax', name: 'out', kernelInitializer: init(seed, 5) }),
    ],
  });
}

/** A small VGG: (conv-bn-relu)×2 → pool, ×2 widths, then a dense head (Simonyan & Zisserman 2015, scaled down). */
function vggSmall(seed: number, shape: number[], classes: number): tfl.Sequential {
  const layers: tfl.layers.Layer[] = [];
  let i = 0;
  const block = (filters: number, first = false) => {
    i++;
    layers.push(
      tfl.layers.conv2d({
        ...(first ? { inputShape: shape } : {}),
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        name: `conv${i}`,
        kernelInitializer: tfl.initializers.heNormal({ seed: seed * 100 + i }),
      }),
      tfl.layers.batchNormalization({ name: `bn${i}` }),
      tfl.layers.reLU({ name: `relu${i}` }),
    );
  };
  block(16, true);
  block(16);
  layers.push(tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }));
  block(32);
  block(32);
  layers.push(tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }));
  block(64);
  layers.push(
    tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool3' }),
    tfl.layers.flatten({ name: 'flatten' }),
    tfl.layers.dense({ units: 128, activation: 'relu', name: 'fc1', kernelInitializer: init(seed, 20) }),
    tfl.layers.dense({ units: classes, activation: 'softmax', name: 'out', kernelInitializer: init(seed, 21) }),
  );
  return tfl.sequential({ name: 'vgg_small', layers });
}

/** ResNet-8 (He et al. 2016, CIFAR-style): three basic blocks with residual adds, 1×1 projections where shapes change. */
function resnet8(seed: number, shape: number[], classes: number): tfl.LayersModel {
  let n = 0;
  const conv = (x: tfl.SymbolicTensor, filters: number, kernelSize: number, strides: number, name: string) =>
    tfl.layers
      .conv2d({ filters, kernelSize, strides, padding: 'same', useBias: false, name, kernelInitializer: tfl.initializers.heNormal({ seed: seed * 100 + ++n }) })
      .apply(x) as tfl.SymbolicTensor;
  const bn = (x: tfl.SymbolicTensor, name: string) => tfl.layers.batchNormalization({ name }).apply(x) as tfl.SymbolicTensor;
  const relu = (x: tfl.SymbolicTensor, name: string) => tfl.layers.reLU({ name }).apply(x) as tfl.SymbolicTensor;
  const input = tfl.input({ shape, name: 'input' });
  let x = relu(bn(conv(input, 16, 3, 1, 'stem_conv'), 'stem_bn'), 'stem_relu');
  const widths = [16, 32, 64];
  widths.forEach((filters, b) => {
    const strides = b === 0 ? 1 : 2;
    const p = `b${b + 1}`;
    let y = relu(bn(conv(x, filters, 3, strides, `${p}_conv1`), `${p}_bn1`), `${p}_relu1`);
    y = bn(conv(y, filters, 3, 1, `${p}_conv2`), `${p}_bn2`);
    const shortcut = b === 0 ? x : bn(conv(x, filters, 1, strides, `${p}_proj`), `${p}_proj_bn`);
    x = relu(tfl.layers.add({ name: `${p}_add` }).apply([y, shortcut]) as tfl.SymbolicTensor, `${p}_relu2`);
  });
  const pooled = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: classes, activation: 'softmax', name: 'out', kernelInitializer: init(seed, 50) }).apply(pooled) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out, name: 'resnet8' });
}

/** MobileNet-style (Howard et al. 2017): depthwise 3×3 + pointwise 1×1 blocks with batch norm. */
function mobilenetSmall(seed: number, shape: number[], classes: number): tfl.Sequential {
  const layers: tfl.layers.Layer[] = [
    tfl.layers.conv2d({
      inputShape: shape,
      filters: 16,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      useBias: false,
      name: 'stem_conv',
      kernelInitializer: tfl.initializers.heNormal({ seed: seed * 100 }),
    }),
    tfl.layers.batchNormalization({ name: 'stem_bn' }),
    tfl.layers.reLU({ name: 'stem_relu' }),
  ];
  [
    [32, 1],
    [64, 2],
    [64, 1],
  ].forEach(([filters, strides], k) => {
    const p = `dw${k + 1}`;
    layers.push(
      tfl.layers.depthwiseConv2d({
        kernelSize: 3,
        strides,
        padding: 'same',
        useBias: false,
        name: `${p}_depthwise`,
        depthwiseInitializer: tfl.initializers.heNormal({ seed: seed * 100 + 10 + k }),
      }),
      tfl.layers.batchNormalization({ name: `${p}_bn1` }),
      tfl.layers.reLU({ name: `${p}_relu1` }),
      tfl.layers.conv2d({
        filters,
        kernelSize: 1,
        useBias: false,
        name: `${p}_pointwise`,
        kernelInitializer: tfl.initializers.heNormal({ seed: seed * 100 + 20 + k }),
      }),
      tfl.layers.batchNormalization({ name: `${p}_bn2` }),
      tfl.layers.reLU({ name: `${p}_relu2` }),
    );
  });
  layers.push(
    tfl.layers.globalAveragePooling2d({ name: 'gap' }),
    tfl.layers.dense({ units: classes, activation: 'softmax', name: 'out', kernelInitializer: init(seed, 40) }),
  );
  return tfl.sequential({ name: 'mobilenet_small', layers });
}

const ZOO: Record<ZooName, (seed: number, shape: number[], classes: number) => tfl.LayersModel> = {
  mlp,
  lenet5,
  'vgg-small': vggSmall,
  resnet8,
  'mobilenet-small': mobilenetSmall,
};
export { ZOO_NAMES };

export function buildZooModel(name: string, seed: number, shape: number[], classes: number): tfl.LayersModel {
  const make = ZOO[name as ZooName];
  if (!make) throw new ModelError(`model: unknown zoo model "${name}": use one of ${ZOO_NAMES.join(', ')}`);
  return make(seed, shape, classes);
}

interface WeightSpecWithNote extends tf.io.WeightsManifestEntry {
  prunewise?: { dtype: 'int8'; axis: number; scales: number[] };
}

export interface SavedModel {
  /** bytes of the weight files: the exported model's size */
  bytes: number;
  sha256: string;
}

/**
 * Saves a model as float32 tfjs artifacts: `<dir>/model.json` + `<dir>/weights.bin`, and `extra`
 * files (name → contents) in the same atomic folder write (a checkpoint's training state).
 */
export async function saveModel(model: tfl.LayersModel, dir: string, extra: Record<string, Uint8Array | string> = {}): Promise<SavedModel> {
  let out: SavedModel | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData!));
      writeModelFiles(dir, artifacts.modelTopology as object, artifacts.weightSpecs!, data, extra);
      out = { bytes: data.byteLength, sha256: sha256(data) };
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  return out!;
}

export function writeModelFiles(
  dir: string,
  topology: object,
  specs: WeightSpecWithNote[],
  data: Uint8Array,
  extra: Record<string, Uint8Array | string> = {},
): void {
  const modelJson = {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
    convertedBy: 'prunewise',
    modelTopology: topology,
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
  };
  writeDirAtomic(dir, { ...extra, 'model.json': JSON.stringify(modelJson), 'weights.bin': data });
}

/** Whether tfjs-layers (this process's registry) has a layer class: what keras-json refuses otherwise. */
function tfjsHasClass(cls: string): boolean {
  return cls in tf.serialization.SerializationMap.getMap().classNameMap;
}

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0];

interface ModelJson {
  generatedBy?: unknown;
  modelTopology?: object;
  weightsManifest?: Array<{ paths: string[]; weights: WeightSpecWithNote[] }>;
}

/**
 * Loads a model folder (or a model.json path) written by saveModel, writeModelFiles, tfjs itself, or the
 * tensorflowjs converter from tf-keras or Keras 3 (normalised by ml/keras-json.ts).
 * @throws ModelError one line naming the file, and the layer and field where one is at fault
 */
export async function loadModel(dirOrJson: string): Promise<tfl.LayersModel> {
  if (
    (/\.(keras|h5|hdf5)$/i.test(dirOrJson) && fs.statSync(dirOrJson, { throwIfNoEntry: false })?.isFile()) ||
    fs.existsSync(path.join(dirOrJson, 'saved_model.pb'))
  )
    throw new ModelError(`${dirOrJson}: a Keras file or SavedModel, not a tfjs model.json: submit it with \`prunewise run\` (it converts it into the home)`);
  const jsonPath = dirOrJson.endsWith('.json') ? dirOrJson : path.join(dirOrJson, 'model.json');
  let json: ModelJson;
  try {
    json = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    throw new ModelError(`${jsonPath}: cannot read a tfjs model.json (${firstLine(e)})`);
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new ModelError(`${jsonPath}: not a tfjs layers model (needs modelTopology and weightsManifest)`);
  }
  const { topology, weightName } = normalizeTopology(json.modelTopology, jsonPath, tfjsHasClass);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const chunks: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    const bytes = Buffer.concat(
      group.paths.map((p) => {
        try {
          return fs.readFileSync(path.join(path.dirname(jsonPath), p));
        } catch (e) {
          throw new ModelError(
            `${jsonPath}: weights file '${p}' named in weightsManifest cannot be read (${firstLine(e)}): keep the weight files next to model.json`,
          );
        }
      }),
    );
    let offset = 0;
    for (const raw of group.weights) {
      const name = weightName(raw.name);
      const spec = name === raw.name ? raw : { ...raw, name };
      const n = spec.shape.reduce((a, b) => a * b, 1);
      if (spec.prunewise?.dtype === 'int8') {
        const q = new Int8Array(bytes.buffer, bytes.byteOffset + offset, n);
        chunks.push(new Uint8Array(dequantizeInt8(q, spec.shape, spec.prunewise.axis, spec.prunewise.scales).buffer));
        specs.push({ name: spec.name, shape: spec.shape, dtype: 'float32' });
        offset += n;
      } else {
        const width = spec.quantization ? (spec.quantization.dtype === 'uint8' ? 1 : 2) : 4;
        chunks.push(bytes.subarray(offset, offset + n * width));
        specs.push(spec);
        offset += n * width;
      }
    }
    if (offset !== bytes.length) throw new ModelError(`${jsonPath}: weight files hold ${bytes.length} bytes but the manifest describes ${offset}`);
  }
  const weightData = new Uint8Array(Buffer.concat(chunks)).buffer;
  try {
    return await tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: topology, weightSpecs: specs, weightData }));
  } catch (e) {
    throw new ModelError(`${jsonPath}: ${await diagnose(topology, specs, e)}`);
  }
}

/**
 * Why tfjs-layers could not load a (normalised) topology with these weights, in one line naming the
 * layer: the first layer that cannot be built on its own, else the first weight that is missing, has
 * the wrong shape or belongs to no layer, else tfjs's own first line.
 */
async function diagnose(topology: object, specs: tf.io.WeightsManifestEntry[], error: unknown): Promise<string> {
  const top = topology as { model_config?: unknown };
  const modelConfig = (top.model_config ?? topology) as { config?: { layers?: Array<{ class_name: string; config: { name?: string } }> } };
  let model: tfl.LayersModel;
  try {
    model = await tfl.models.modelFromJSON({ modelTopology: topology } as unknown as tfl.ModelAndWeightsConfig);
  } catch (e) {
    for (const layer of modelConfig.config?.layers ?? []) {
      try {
        const probe = { class_name: 'Sequential', config: { name: 'probe', layers: [{ class_name: layer.class_name, config: layer.config }] } };
        (await tfl.models.modelFromJSON({ modelTopology: probe } as unknown as tfl.ModelAndWeightsConfig)).dispose();
      } catch (inner) {
        if (!/first layer in a Sequential model must get/.test(firstLine(inner)))
          return `layer '${layer.config?.name}' (${layer.class_name}): ${firstLine(inner)}`;
      }
    }
    return `tfjs-layers cannot build the model: ${firstLine(e)}`;
  }
  try {
    const given = new Map(specs.map((s) => [s.name, s]));
    const keras3Indexed = specs.length > 0 && /\/\d+$/.test(specs[0].name);
    const used = new Set<string>();
    for (const layer of model.layers) {
      layer.weights.forEach((w, i) => {
        const key = keras3Indexed ? `${w.originalName.split('/').slice(0, -1).join('/')}/${i}` : w.originalName;
        used.add(key);
        const s = given.get(key);
        const who = `layer '${layer.name}' (${layer.getClassName()})`;
        if (!s) throw new Error(`${who}: weight '${key}' ${JSON.stringify(w.shape)} is missing from weightsManifest: convert the model again with its weights`);
        if (JSON.stringify(s.shape) !== JSON.stringify(w.shape))
          throw new Error(
            `${who}: weight '${key}' has shape ${JSON.stringify(s.shape)} in weightsManifest but the layer's config needs ${JSON.stringify(w.shape)}: model.json and its weights do not match`,
          );
      });
    }
    const extra = specs.find((s) => !used.has(s.name));
    if (extra) return `weight '${extra.name}' in weightsManifest belongs to no layer of the model: model.json and its weights do not match`;
  } catch (e) {
    return (e as Error).message;
  } finally {
    model.dispose();
  }
  return `tfjs-layers cannot load it: ${firstLine(error)}`;
}

/**
 * Runs the model once on a zero batch of one: a graph that deserialises but cannot compute (a shape that
 * does not chain, an op the backend lacks) fails here, at the first load, not in training. Skipped when an
 * input dimension is unknown (None).
 * @throws ModelError `<where>: the model does not run on a [1, …] input: <tfjs's first line>`
 */
export function probeModel(model: tfl.LayersModel, where: string): void {
  const shapes = model.inputs.map((i) => [1, ...i.shape.slice(1)]);
  if (shapes.some((s) => s.some((d) => d == null))) return;
  try {
    tf.tidy(() => {
      const xs = shapes.map((s) => tf.zeros(s as number[]));
      model.predict(xs.length === 1 ? xs[0] : xs);
    });
  } catch (e) {
    throw new ModelError(`${where}: the model does not run on a ${JSON.stringify(shapes[0])} input: ${firstLine(e)}`);
  }
}

/** Symmetric int8 per output channel along `axis` (ml/support.ts `outputChannelAxis`: the last axis for dense and conv kernels, 2 for depthwise ones). */
export function quantizeInt8(values: Float32Array, shape: number[], axis: number): { q: Int8Array; scales: number[] } {
  const channels = shape[axis];
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const maxAbs = new Float64Array(channels);
  for (let i = 0; i < values.length; i++) {
    const c = Math.floor(i / inner) % channels;
    const v = Math.abs(values[i]);
    if (v > maxAbs[c]) maxAbs[c] = v;
  }
  const scales = Array.from(maxAbs, (m) => (m > 0 ? m / 127 : 1));
  const q = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const c = Math.floor(i / inner) % channels;
    q[i] = Math.max(-127, Math.min(127, Math.round(values[i] / scales[c])));
  }
  return { q, scales };
}

export function dequantizeInt8(q: Int8Array, shape: number[], axis: number, scales: number[]): Float32Array {
  const channels = shape[axis];
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = q[i] * scales[Math.floor(i / inner) % channels];
  return out;
}

/**
 * Writes a model with per-channel int8 kernels (biases and other small tensors stay float32).
 * Returns the bytes on disk of the weight file.
 */
export function saveInt8(model: tfl.LayersModel, dir: string): SavedModel {
  const specs: WeightSpecWithNote[] = [];
  const parts: Uint8Array[] = [];
  for (const layer of model.layers) {
    for (const w of layer.weights) {
      const values = w.read().dataSync() as Float32Array;
      const shape = w.shape as number[];
      if (w.originalName.endsWith('kernel') && shape.length >= 2) {
        // the kernel's output-channel axis (a depthwise kernel [kh, kw, C, M]: axis 2; a transposed conv's [k…, out, in]: the one before last)
        const axis = outputChannelAxis(layer.getClassName(), w.originalName, shape.length);
        const { q, scales } = quantizeInt8(values, shape, axis);
        specs.push({ name: w.originalName, shape, dtype: 'float32', prunewise: { dtype: 'int8', axis, scales } });
        parts.push(new Uint8Array(q.buffer));
        // the scales are part of the model's size: count them in the bytes (stored in model.json)
      } else {
        specs.push({ name: w.originalName, shape, dtype: 'float32' });
        parts.push(new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)));
      }
    }
  }
  const data = new Uint8Array(Buffer.concat(parts));
  writeModelFiles(dir, model.toJSON(null, false) as object, specs, data);
  const scaleBytes = specs.reduce((a, s) => a + 4 * (s.prunewise?.scales.length ?? 0), 0);
  return { bytes: data.byteLength + scaleBytes, sha256: sha256(data) };
}

/** float32 → IEEE half bits, round to nearest even (overflow → ±Inf, tiny → subnormal/0). */
export function toFloat16Bits(v: number): number {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  f[0] = v;
  const x = u[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent: still correct
  return sign | h;
}

export type ExportFormat = 'tfjs' | 'uint8' | 'float16';

/**
 * Writes the model in the stock tfjs format with quantized weights that stock tfjs
 * (`tf.loadLayersModel`) dequantizes itself: `uint8` — one min and scale per tensor
 * (v = q·scale + min), or `float16`. tfjs has no writer for these; this is it. `tfjs` = float32.
 */
export async function saveExport(model: tfl.LayersModel, dir: string, format: ExportFormat): Promise<SavedModel> {
  if (format === 'tfjs') return saveModel(model, dir);
  const specs: WeightSpecWithNote[] = [];
  const parts: Uint8Array[] = [];
  for (const w of model.weights) {
    const values = w.read().dataSync() as Float32Array;
    const shape = w.shape as number[];
    if (format === 'float16') {
      const h = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) h[i] = toFloat16Bits(values[i]);
      specs.push({ name: w.originalName, shape, dtype: 'float32', quantization: { dtype: 'float16' } });
      parts.push(new Uint8Array(h.buffer));
    } else {
      let min = Infinity;
      let max = -Infinity;
      for (const v of values) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      if (!Number.isFinite(min)) min = max = 0;
      const scale = max > min ? (max - min) / 255 : 1;
      const q = new Uint8Array(values.length);
      for (let i = 0; i < values.length; i++) q[i] = Math.max(0, Math.min(255, Math.round((values[i] - min) / scale)));
      specs.push({ name: w.originalName, shape, dtype: 'float32', quantization: { dtype: 'uint8', min, scale } });
      parts.push(q);
    }
  }
  const data = new Uint8Array(Buffer.concat(parts));
  writeModelFiles(dir, model.toJSON(null, false) as object, specs, data);
  return { bytes: data.byteLength, sha256: sha256(data) };
}
