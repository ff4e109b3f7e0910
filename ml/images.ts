// Image folders: one sub-folder of JPEG/PNG files per class, as Keras's image_dataset_from_directory
// reads them. Files are listed at load; pixels are decoded on demand (jpeg-js, pngjs: pure
// JavaScript, synchronous), converted to the model's channels, resized to its input and scaled,
// and kept in a cache bounded in bytes, so a set larger than memory streams from disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DataError } from '../core/errors';

/** File name endings read as images (case-insensitive). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'] as const;

/** One image file and its class. */
export interface ImageEntry {
  file: string;
  label: number;
}

/** What a folder of class folders holds. */
export interface ImageFolder {
  /** class names: the sub-folder names in code-point order (Keras's order); label i is classNames[i] */
  classNames: string[];
  entries: ImageEntry[];
  /** files that are not JPEG/PNG by name, skipped */
  skipped: number;
}

const isImage = (f: string) => (IMAGE_EXTENSIONS as readonly string[]).includes(path.extname(f).toLowerCase());

/**
 * Lists `dir`'s class folders and their image files (sorted, so the listing is the same on every
 * machine). `classNames` fixes the classes (a test folder must use the train folder's).
 * @throws DataError when the folder is missing, has no class folders, or a class has no images
 */
export function listImageFolder(dir: string, classNames?: string[]): ImageFolder {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new DataError(`dataset.dir: ${dir} is not a folder: give a folder with one sub-folder of images per class`);
  const found = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
  if (found.length === 0) throw new DataError(`dataset.dir: ${dir} has no class folders: put each class's images in a sub-folder named after the class`);
  const names = classNames ?? found;
  if (names.length > 256) throw new DataError(`dataset.dir: ${dir} has ${names.length} class folders: at most 256 classes are supported`);
  if (classNames) {
    const extra = found.filter((f) => !classNames.includes(f));
    if (extra.length > 0)
      throw new DataError(`dataset.dir: ${dir}: class folder "${extra[0]}" is not a training class (${classNames.join(', ')}): rename or remove it`);
  }
  const entries: ImageEntry[] = [];
  let skipped = 0;
  names.forEach((name, label) => {
    const sub = path.join(dir, name);
    if (!fs.existsSync(sub)) return; // a test folder may lack a class
    const files = fs.readdirSync(sub, { withFileTypes: true }).filter((f) => f.isFile() && !f.name.startsWith('.'));
    const images = files.filter((f) => isImage(f.name)).map((f) => f.name);
    skipped += files.length - images.length;
    if (images.length === 0 && !classNames)
      throw new DataError(`dataset.dir: class folder ${sub} has no ${IMAGE_EXTENSIONS.join('/')} images: add images or remove the folder`);
    for (const f of images.sort()) entries.push({ file: path.join(sub, f), label });
  });
  return { classNames: names, entries, skipped };
}

/** Decodes a JPEG or PNG file to 8-bit RGB (alpha dropped, grey replicated). @throws DataError naming the file */
export function decodeImage(file: string): { width: number; height: number; rgb: Uint8Array } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new DataError(`${file}: cannot read the image (${(e as NodeJS.ErrnoException).code ?? e}): check the file`);
  }
  let rgba: Uint8Array;
  let width: number;
  let height: number;
  try {
    if (buf[0] === 0x89 && buf.toString('latin1', 1, 4) === 'PNG') {
      const png = PNG.sync.read(buf);
      ({ width, height } = png);
      rgba = png.data;
    } else if (buf[0] === 0xff && buf[1] === 0xd8) {
      const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: 200, maxMemoryUsageInMB: 1024 });
      ({ width, height } = img);
      rgba = img.data;
    } else {
      throw new Error('neither JPEG nor PNG by its first bytes');
    }
  } catch (e) {
    throw new DataError(`${file}: cannot decode the image (${(e as Error).message.split('\n')[0]}): re-save it as JPEG or PNG, or remove it`);
  }
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += 4) {
    rgb[i * 3] = rgba[j];
    rgb[i * 3 + 1] = rgba[j + 1];
    rgb[i * 3 + 2] = rgba[j + 2];
  }
  return { width, height, rgb };
}

/** Per output index: the source indices and normalised weights of a triangle filter, widened by the shrink factor (antialiased, as Pillow's bilinear). */
function filterTaps(src: number, dst: number): Array<{ first: number; w: Float32Array }> {
  const scale = src / dst;
  const support = Math.max(1, scale);
  const taps = [];
  for (let i = 0; i < dst; i++) {
    const center = (i + 0.5) * scale;
    const first = Math.max(0, Math.floor(center - support));
    const last = Math.min(src - 1, Math.ceil(center + support));
    const w = new Float32Array(last - first + 1);
    let sum = 0;
    for (let j = first; j <= last; j++) sum += w[j - first] = Math.max(0, 1 - Math.abs((j + 0.5 - center) / support));
    if (sum === 0) w[Math.min(w.length - 1, Math.round(center - first))] = sum = 1;
    for (let k = 0; k < w.length; k++) w[k] /= sum;
    taps.push({ first, w });
  }
  return taps;
}

/**
 * Resizes interleaved `channels`-channel pixels (h × w) to (height × width): separable bilinear
 * (triangle) filter, antialiased when shrinking. Values stay in their range.
 */
export function resizeImage(px: Float32Array, h: number, w: number, channels: number, height: number, width: number): Float32Array {
  if (h === height && w === width) return px;
  const cols = filterTaps(w, width);
  const rows = filterTaps(h, height);
  const mid = new Float32Array(h * width * channels);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < width; x++) {
      const { first, w: wt } = cols[x];
      for (let c = 0; c < channels; c++) {
        let s = 0;
        for (let k = 0; k < wt.length; k++) s += wt[k] * px[(y * w + first + k) * channels + c];
        mid[(y * width + x) * channels + c] = s;
      }
    }
  const out = new Float32Array(height * width * channels);
  for (let y = 0; y < height; y++) {
    const { first, w: wt } = rows[y];
    for (let x = 0; x < width; x++)
      for (let c = 0; c < channels; c++) {
        let s = 0;
        for (let k = 0; k < wt.length; k++) s += wt[k] * mid[((first + k) * width + x) * channels + c];
        out[(y * width + x) * channels + c] = s;
      }
  }
  return out;
}

/**
 * One image as the model reads it: decoded, converted to `shape[2]` channels (grey = ITU-R 601
 * luma 0.299 R + 0.587 G + 0.114 B, as Pillow's "L"; grey to RGB replicates), resized to
 * shape[0] × shape[1], then each value v (0..255) becomes v · a[c] + b[c].
 */
export function loadImage(file: string, shape: [number, number, number], a: number[], b: number[]): Float32Array {
  const { width, height, rgb } = decodeImage(file);
  const c = shape[2];
  if (c !== 1 && c !== 3) throw new DataError(`${file}: the model reads ${c} channels per pixel: image folders give 1 (grey) or 3 (RGB)`);
  const px = new Float32Array(width * height * c);
  for (let i = 0; i < width * height; i++) {
    if (c === 3) {
      px[i * 3] = rgb[i * 3];
      px[i * 3 + 1] = rgb[i * 3 + 1];
      px[i * 3 + 2] = rgb[i * 3 + 2];
    } else px[i] = 0.299 * rgb[i * 3] + 0.587 * rgb[i * 3 + 1] + 0.114 * rgb[i * 3 + 2];
  }
  const out = resizeImage(px, height, width, c, shape[0], shape[1]);
  for (let i = 0; i < out.length; i++) out[i] = out[i] * a[i % c] + b[i % c];
  return out;
}

/**
 * Examples kept in memory, least recently used first, at most `bytes` (env
 * PRUNEWISE_IMAGE_CACHE_MB, default 256 MiB) across every image folder of this process.
 */
class ImageCache {
  private map = new Map<string, Float32Array>();
  bytes = 0;
  hits = 0;
  misses = 0;
  constructor(public limit: number) {}
  get(key: string, make: () => Float32Array): Float32Array {
    const hit = this.map.get(key);
    if (hit) {
      this.hits++;
      this.map.delete(key);
      this.map.set(key, hit);
      return hit;
    }
    this.misses++;
    const v = make();
    if (v.byteLength <= this.limit) {
      this.map.set(key, v);
      this.bytes += v.byteLength;
      for (const [k, old] of this.map) {
        if (this.bytes <= this.limit) break;
        this.map.delete(k);
        this.bytes -= old.byteLength;
      }
    }
    return v;
  }
  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}

export const imageCache = new ImageCache(Number(process.env.PRUNEWISE_IMAGE_CACHE_MB ?? 256) * 2 ** 20);

/** The image cache's size now, and hits/misses since the process started (tests, status). */
export function imageCacheStats(): { bytes: number; limit: number; hits: number; misses: number } {
  return { bytes: imageCache.bytes, limit: imageCache.limit, hits: imageCache.hits, misses: imageCache.misses };
}

/** Sets the image cache's bound in bytes (and empties it). */
export function setImageCacheLimit(bytes: number): void {
  imageCache.limit = bytes;
  imageCache.clear();
}
