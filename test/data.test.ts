// Users' data as they have it (issue 11 §4 and the label / pixel half of §3): labels 0- or 1-based,
// sparse or one-hot, detected and stated or refused with the fix; pixels scaled by dataset.scale
// (float pixels in 0..255 never silently unscaled); folders of JPEG/PNG images of any size, grey or
// RGB, resized to the model's input and streamed from disk through a bounded cache.
import * as jpeg from 'jpeg-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  evaluate,
  gather,
  imageCacheStats,
  initBackend,
  loadDataset,
  loadModel,
  pixelScale,
  resizeImage,
  setImageCacheLimit,
  train,
  type DatasetSpec,
} from '../ml';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'pw-data-'));

function writeNpy(file: string, descr: string, shape: number[], bytes: Buffer): void {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), bytes]));
}

const f32 = (v: number[]) => {
  const b = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => b.writeFloatLE(x, i * 4));
  return b;
};
const i64 = (v: number[]) => {
  const b = Buffer.alloc(v.length * 8);
  v.forEach((x, i) => b.writeBigInt64LE(BigInt(x), i * 8));
  return b;
};

/** An NPY dataset folder: 4×4 grey images with `pixel(i, j)` values (float32 or uint8), and labels. */
function npyFolder(o: {
  n?: number;
  pixel?: (i: number, j: number) => number;
  float?: boolean;
  labels: (i: number) => number | number[];
  labelDescr?: string;
}): string {
  const dir = tmp();
  for (const [split, n] of [
    ['train', o.n ?? 40],
    ['test', 10],
  ] as const) {
    const px = Array.from({ length: n * 16 }, (_, k) => (o.pixel ?? ((i, j) => (i * 16 + j) % 256))(Math.floor(k / 16), k % 16));
    if (o.float) writeNpy(path.join(dir, `x_${split}.npy`), '<f4', [n, 4, 4], f32(px));
    else writeNpy(path.join(dir, `x_${split}.npy`), '|u1', [n, 4, 4], Buffer.from(px));
    const ls = Array.from({ length: n }, (_, i) => o.labels(i));
    const k = Array.isArray(ls[0]) ? (ls[0] as number[]).length : 0;
    const flat = ls.flat() as number[];
    const descr = o.labelDescr ?? (k ? '<f4' : '<i8');
    writeNpy(path.join(dir, `y_${split}.npy`), descr, k ? [n, k] : [n], descr === '<i8' ? i64(flat) : f32(flat));
  }
  return dir;
}

const npy = (dir: string, extra: Partial<DatasetSpec> = {}): DatasetSpec => ({ name: 'npy', dir, validationFraction: 0.2, ...extra });

beforeAll(async () => {
  await initBackend();
});

describe('labels as users have them', () => {
  it('NPY labels 1..10 are read as 1-based: 10 classes, shifted, and said so; labelBase: 0 keeps them as 11 classes', () => {
    const dir = npyFolder({ labels: (i) => (i % 10) + 1 });
    const d = loadDataset(npy(dir), 1);
    expect(d.classes).toBe(10);
    expect(Array.from(d.test.y.subarray(0, 3))).toEqual([0, 1, 2]);
    expect(d.notes.join(' ')).toMatch(/labels run 1\.\.10 with no 0: read as 1-based, 10 classes/);
    expect(loadDataset(npy(dir, { labelBase: 0 }), 1).classes).toBe(11);
  });

  it('0-based labels stay as they are, with nothing to say', () => {
    const d = loadDataset(npy(npyFolder({ labels: (i) => i % 3 })), 1);
    expect(d.classes).toBe(3);
    expect(d.notes).toEqual([]);
  });

  it('one-hot labels (n × k) become class ids and are stated; multi-hot rows are refused with the fix', () => {
    const d = loadDataset(npy(npyFolder({ labels: (i) => [0, 1, 2, 3].map((c) => (c === i % 4 ? 1 : 0)) })), 1);
    expect(d.classes).toBe(4);
    expect(Array.from(d.test.y.subarray(0, 5))).toEqual([0, 1, 2, 3, 0]);
    expect(d.notes.join(' ')).toMatch(/one-hot \(n × 4\): read as class ids 0\.\.3/);
    const multi = npyFolder({ labels: (i) => [1, i % 2, 0] });
    expect(() => loadDataset(npy(multi), 1)).toThrow(/row 1 has 2 ones: .*set task: multilabel/);
    // … which multilabel reads as targets
    const m = loadDataset(npy(multi), 1, { type: 'multilabel' });
    expect(m.classes).toBe(3);
    expect(Array.from(m.test.t!.subarray(0, 6))).toEqual([1, 0, 0, 1, 1, 0]);
  });

  it('float labels with whole values are class ids (said so); negative or fractional ones are refused', () => {
    const d = loadDataset(npy(npyFolder({ labels: (i) => i % 2, labelDescr: '<f4' })), 1);
    expect(d.classes).toBe(2);
    expect(d.notes.join(' ')).toMatch(/float labels with whole values/);
    expect(() => loadDataset(npy(npyFolder({ labels: (i) => (i === 5 ? -1 : 0) })), 1)).toThrow(/label -1 at index 5 is negative/);
    expect(() => loadDataset(npy(npyFolder({ labels: (i) => i / 3, labelDescr: '<f4' })), 1)).toThrow(/not a class id.*task: regression/);
  });

  it('regression reads (n,) or (n, k) numbers as float targets', () => {
    const d = loadDataset(npy(npyFolder({ labels: (i) => [i / 10, -i], labelDescr: '<f4' })), 1, { type: 'regression' });
    expect(d.classes).toBe(2);
    expect(Array.from(d.test.t!.subarray(0, 4))).toEqual([0, -0, 0.1, -1].map((v) => Math.fround(v)));
  });
});

describe('pixel scale (dataset.scale)', () => {
  it('float pixels in 0..255 are divided by 255 like 8-bit ones, and said so; raw keeps them', () => {
    const dir = npyFolder({ float: true, pixel: (i, j) => (i * 7 + j * 13) % 256, labels: (i) => i % 2 });
    const d = loadDataset(npy(dir), 1);
    expect(Math.max(...d.test.x!)).toBeLessThanOrEqual(1);
    expect(d.test.x![1]).toBeCloseTo(13 / 255, 6);
    expect(d.notes.join(' ')).toMatch(/float pixels in \[0, 255\] read as 0\.\.255 pixels and divided by 255/);
    expect(d.input).toMatchObject({ scale: 'unit', from: '0..255', shape: [4, 4, 1] });
    const raw = loadDataset(npy(dir, { scale: 'raw' }), 1);
    expect(raw.test.x![1]).toBe(13);
    expect(raw.input.from).toBe('as given');
  });

  it('float pixels in 0..1 are not scaled again; -1..1 or other floats under unit are refused with the fix', () => {
    const unit = loadDataset(npy(npyFolder({ float: true, pixel: (i, j) => j / 15, labels: (i) => i % 2 })), 1);
    expect(unit.test.x![15]).toBeCloseTo(1, 6);
    expect(unit.notes.join(' ')).toMatch(/already in 0\.\.1/);
    expect(() => loadDataset(npy(npyFolder({ float: true, pixel: (i, j) => j / 7.5 - 1, labels: (i) => i % 2 })), 1)).toThrow(
      /scaled to -1\.\.1 already: set dataset\.scale: raw/,
    );
    expect(() => loadDataset(npy(npyFolder({ float: true, pixel: (i, j) => j * 100 - 300, labels: (i) => i % 2 })), 1)).toThrow(
      /neither 0\.\.1 nor 0\.\.255.*dataset\.scale: raw/,
    );
  });

  it('minus-one-one and {mean, std} map 8-bit pixels as documented; mean on 0..255 is refused', () => {
    const dir = npyFolder({ pixel: (i, j) => [0, 255, 51, 102][j % 4], labels: (i) => i % 2 });
    const m = loadDataset(npy(dir, { scale: 'minus-one-one' }), 1);
    expect(Array.from(m.test.x!.subarray(0, 4)).map((v) => +v.toFixed(5))).toEqual([-1, 1, -0.6, -0.2]);
    const s = loadDataset(npy(dir, { scale: { mean: 0.5, std: 0.25 } }), 1);
    expect(Array.from(s.test.x!.subarray(0, 4)).map((v) => +v.toFixed(5))).toEqual([-2, 2, -1.2, -0.4]);
    expect(s.input).toMatchObject({ a: [1 / (255 * 0.25)], b: [-2] });
    expect(() => pixelScale({ mean: 123.7, std: 58 }, { file: 'f', integer: true, min: 0, max: 255 }, 1)).toThrow(/divide them by 255/);
    expect(() => pixelScale({ mean: [0.5, 0.5], std: 0.2 }, { file: 'f', integer: true, min: 0, max: 255 }, 3)).toThrow(/2 values for 3 channels/);
  });
});

/** Writes an RGB or grey image of w × h as PNG or JPEG whose pixels are `value(x, y)` (0..255). */
function writeImage(file: string, w: number, h: number, value: (x: number, y: number) => [number, number, number]): void {
  const data = Buffer.alloc(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [r, g, b] = value(x, y);
      data.set([r, g, b, 255], (y * w + x) * 4);
    }
  if (file.endsWith('.png')) {
    const png = new PNG({ width: w, height: h });
    data.copy(png.data);
    fs.writeFileSync(file, PNG.sync.write(png));
  } else fs.writeFileSync(file, jpeg.encode({ data, width: w, height: h }, 95).data);
}

/** Two classes: "bright" (light images) and "dark", mixed sizes, PNG and JPEG, grey and RGB. */
function imageFolder(perClass: number): string {
  const dir = tmp();
  for (const cls of ['dark', 'bright']) {
    fs.mkdirSync(path.join(dir, cls));
    for (let i = 0; i < perClass; i++) {
      const w = 12 + ((i * 7) % 30);
      const h = 10 + ((i * 5) % 25);
      const base = cls === 'bright' ? 200 : 40;
      const grey = i % 2 === 0;
      writeImage(path.join(dir, cls, `img${i}.${i % 3 === 0 ? 'jpg' : 'png'}`), w, h, (x, y) => {
        const v = Math.min(255, base + ((x + y + i) % 20));
        return grey ? [v, v, v] : [v, Math.max(0, v - 30), Math.min(255, v + 10)];
      });
    }
    fs.writeFileSync(path.join(dir, cls, 'notes.txt'), 'not an image');
  }
  return dir;
}

describe('image folders', () => {
  it('reads mixed sizes, PNG and JPEG, grey and RGB, resized to the model input; classes in folder-name order; skipped files said', () => {
    const dir = imageFolder(12);
    const rgb = loadDataset({ name: 'images', dir, imageSize: [8, 8, 3], validationFraction: 0.25, testFraction: 0.25 }, 1);
    expect(rgb.shape).toEqual([8, 8, 3]);
    expect(rgb.classes).toBe(2);
    expect(rgb.input.classNames).toEqual(['bright', 'dark']);
    expect(rgb.train.n + rgb.val.n + rgb.test.n).toBe(24);
    expect(rgb.train.x).toBeUndefined(); // streamed, never all in memory
    expect(rgb.notes.join(' ')).toMatch(/2 classes, 24 images.*6 held out as the test split/);
    expect(rgb.notes.join(' ')).toMatch(/skipped 2 files/);
    const b = gather(rgb.test, null, 0, rgb.test.n);
    expect(b.x.length).toBe(rgb.test.n * 8 * 8 * 3);
    for (let i = 0; i < b.n; i++) {
      const mean = b.x.subarray(i * 192, (i + 1) * 192).reduce((a, v) => a + v, 0) / 192;
      expect(mean).toBeGreaterThanOrEqual(0);
      expect(mean).toBeLessThanOrEqual(1);
      // the class is visible in the scaled pixels: bright ≈ 0.8, dark ≈ 0.17
      expect(b.y[i] === 0 ? mean > 0.6 : mean < 0.35).toBe(true);
    }
    const grey = loadDataset({ name: 'images', dir, imageSize: [6, 5, 1], validationFraction: 0.25, testFraction: 0.25 }, 1);
    expect(gather(grey.test, null, 0, 1).x.length).toBe(30);
    // the same seed gives the same validation split, another seed another
    const again = loadDataset({ name: 'images', dir, imageSize: [8, 8, 3], validationFraction: 0.25, testFraction: 0.25, trainLimit: 18 }, 1);
    const other = loadDataset({ name: 'images', dir, imageSize: [8, 8, 3], validationFraction: 0.25, testFraction: 0.25, trainLimit: 18 }, 2);
    const valOf = (d: typeof rgb) => Array.from(gather(d.val, null, 0, d.val.n).x.subarray(0, 50)).join();
    expect(valOf(again)).toBe(valOf(rgb));
    expect(valOf(other)).not.toBe(valOf(rgb));
  });

  it('train/ and test/ folders are used as given; a test class the training set lacks is refused', () => {
    const dir = tmp();
    for (const split of ['train', 'test']) {
      for (const cls of ['cat', 'dog']) {
        fs.mkdirSync(path.join(dir, split, cls), { recursive: true });
        for (let i = 0; i < 3; i++) writeImage(path.join(dir, split, cls, `${i}.png`), 5, 5, () => (cls === 'cat' ? [10, 10, 10] : [250, 250, 250]));
      }
    }
    const d = loadDataset({ name: 'images', dir, imageSize: [4, 4, 1], validationFraction: 0.2 }, 1);
    expect(d.test.n).toBe(6);
    expect(d.input.classNames).toEqual(['cat', 'dog']);
    fs.mkdirSync(path.join(dir, 'test', 'eel'));
    expect(() => loadDataset({ name: 'images', dir, imageSize: [4, 4, 3], validationFraction: 0.2 }, 1)).toThrow(/class folder "eel" is not a training class/);
  });

  it('a corrupt image fails naming the file; an empty class folder is refused', () => {
    const dir = imageFolder(2);
    fs.writeFileSync(path.join(dir, 'dark', 'broken.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    const d = loadDataset({ name: 'images', dir, imageSize: [4, 4, 1], validationFraction: 0.5, testFraction: 0.5 }, 1);
    expect(() => {
      for (const s of [d.train, d.val, d.test]) gather(s, null, 0, s.n);
    }).toThrow(/broken\.png: cannot decode the image/);
    fs.mkdirSync(path.join(dir, 'empty'));
    expect(() => loadDataset({ name: 'images', dir, imageSize: [4, 4, 1], validationFraction: 0.5 }, 2)).toThrow(/empty has no .jpg\/.jpeg\/.png images/);
  });

  it('streams through a cache bounded in bytes, and a small CNN learns from the folder', async () => {
    const dir = imageFolder(30);
    setImageCacheLimit(20 * 16 * 16 * 3 * 4); // room for 20 of the 60 examples
    try {
      const d = loadDataset({ name: 'images', dir, imageSize: [16, 16, 3], validationFraction: 0.2, testFraction: 0.2 }, 3);
      const m = tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [16, 16, 3],
            filters: 4,
            kernelSize: 3,
            activation: 'relu',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
          }),
          tfl.layers.globalAveragePooling2d({}),
          tfl.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
        ],
      });
      const misses0 = imageCacheStats().misses;
      await train(m, d.train, { epochs: 15, batchSize: 8, learningRate: 0.02, seed: 1, threads: 1 });
      const stats = imageCacheStats();
      expect(stats.bytes).toBeLessThanOrEqual(stats.limit);
      // 15 epochs over d.train.n images with room for 20: most reads miss (evicted and decoded again: streamed, not held)
      expect(stats.misses - misses0).toBeGreaterThan(10 * d.train.n);
      expect((await evaluate(m, d.test)).accuracy).toBeGreaterThanOrEqual(0.9);
      m.dispose();
    } finally {
      setImageCacheLimit(256 * 2 ** 20);
    }
  });

  it('Fashion-MNIST test images saved as PNG (28×28 and upscaled 56×56) and JPEG score like the IDX originals with the case-05 model', async () => {
    const idx = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 100, testLimit: 200, validationFraction: 0.1 }, 1);
    const dir = tmp();
    const names = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot'];
    for (const split of ['train', 'test']) for (const c of names) fs.mkdirSync(path.join(dir, split, `${names.indexOf(c)}-${c}`), { recursive: true });
    const px = idx.test.x!;
    for (let i = 0; i < idx.test.n; i++) {
      const label = idx.test.y[i];
      const v = (x: number, y: number, s: number): [number, number, number] => {
        const g = Math.round(px[i * 784 + Math.floor(y / s) * 28 + Math.floor(x / s)] * 255);
        return [g, g, g];
      };
      const folder = path.join(dir, 'test', `${label}-${names[label]}`);
      if (i % 3 === 0) writeImage(path.join(folder, `${i}.png`), 28, 28, (x, y) => v(x, y, 1));
      else if (i % 3 === 1) writeImage(path.join(folder, `${i}.png`), 56, 56, (x, y) => v(x, y, 2));
      else writeImage(path.join(folder, `${i}.jpg`), 28, 28, (x, y) => v(x, y, 1));
      if (i < 40) writeImage(path.join(dir, 'train', `${label}-${names[label]}`, `${i}.png`), 28, 28, (x, y) => v(x, y, 1));
    }
    for (const c of names) {
      const f = path.join(dir, 'train', `${names.indexOf(c)}-${c}`);
      if (fs.readdirSync(f).length === 0) writeImage(path.join(f, 'x.png'), 28, 28, () => [0, 0, 0]);
    }
    const folder = loadDataset({ name: 'images', dir, imageSize: [28, 28, 1], validationFraction: 0.1 }, 1);
    expect(folder.test.n).toBe(200);
    const m = await loadModel(path.join(__dirname, 'fixtures', 'cases', '05', 'model'));
    const a = (await evaluate(m, idx.test)).accuracy;
    const b = (await evaluate(m, folder.test)).accuracy;
    m.dispose();
    expect(a).toBeGreaterThan(0.75);
    expect(Math.abs(a - b)).toBeLessThanOrEqual(0.02);
  });

  it('resizing keeps a constant image constant and averages when shrinking (antialiased)', () => {
    const flat = resizeImage(new Float32Array(7 * 9).fill(100), 7, 9, 1, 3, 4);
    expect(Array.from(flat).every((v) => Math.abs(v - 100) < 1e-3)).toBe(true);
    // a 1-pixel checkerboard shrunk 4× is mid-grey everywhere, not aliased to black or white
    const board = new Float32Array(16 * 16).map((_, k) => ((k % 16) + Math.floor(k / 16)) % 2) as Float32Array;
    const small = resizeImage(board, 16, 16, 1, 4, 4);
    for (const v of small) expect(Math.abs(v - 0.5)).toBeLessThan(0.1);
  });
});
