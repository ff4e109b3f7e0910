// The model zoo and disk I/O in the tfjs format (model.json + one weights.bin), with no network.
// Per-channel int8 weights are stored in the same format with a `prunewise` note on each
// quantized tensor; loadModel dequantizes them, so every artifact loads through one function.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256, writeDirAtomic } from './files';

export class ModelError extends Error {
  override name = 'ModelError';
}

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

const ZOO: Record<string, (seed: number, shape: number[], classes: number) => tfl.Sequential> = { mlp, lenet5 };

export function buildZooModel(name: string, seed: number, shape: number[], classes: number): tfl.LayersModel {
  const make = ZOO[name];
  if (!make) throw new ModelError(`model: unknown zoo model "${name}": use one of ${Object.keys(ZOO).join(', ')}`);
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

/** Saves a model as float32 tfjs artifacts: `<dir>/model.json` + `<dir>/weights.bin`. */
export async function saveModel(model: tfl.LayersModel, dir: string): Promise<SavedModel> {
  let out: SavedModel | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData!));
      writeModelFiles(dir, artifacts.modelTopology as object, artifacts.weightSpecs!, data);
      out = { bytes: data.byteLength, sha256: sha256(data) };
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  return out!;
}

export function writeModelFiles(dir: string, topology: object, specs: WeightSpecWithNote[], data: Uint8Array): void {
  const modelJson = {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
    convertedBy: 'prunewise',
    modelTopology: topology,
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
  };
  writeDirAtomic(dir, { 'model.json': JSON.stringify(modelJson), 'weights.bin': data });
}

/** Loads a model folder (or a model.json path) written by saveModel, writeModelFiles or tfjs itself. */
export async function loadModel(dirOrJson: string): Promise<tfl.LayersModel> {
  const jsonPath = dirOrJson.endsWith('.json') ? dirOrJson : path.join(dirOrJson, 'model.json');
  let json: { modelTopology?: object; weightsManifest?: Array<{ paths: string[]; weights: WeightSpecWithNote[] }> };
  try {
    json = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    throw new ModelError(`${jsonPath}: cannot read a tfjs model.json (${(e as Error).message.split('\n')[0]})`);
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new ModelError(`${jsonPath}: not a tfjs layers model (needs modelTopology and weightsManifest)`);
  }
  const specs: tf.io.WeightsManifestEntry[] = [];
  const chunks: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    const bytes = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(path.dirname(jsonPath), p))));
    let offset = 0;
    for (const spec of group.weights) {
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
  return tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }));
}

/** Symmetric int8 per output channel along `axis` (the last axis for dense and conv kernels). */
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
        const axis = shape.length - 1;
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
