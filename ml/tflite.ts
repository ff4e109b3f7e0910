// Keras and TFLite out (issue 11 §7): the Node side of ml/py/deploy.py, run by the project's .venv
// Python (the pinned tensorflow-cpu 2.21, Keras 3, tf-keras and tensorflowjs 4.22) in a child process.
// - `exportDeployable`: a tfjs model folder → a Keras file (`.keras` Keras 3 / `.h5` tf-keras) or a
//   TFLite file (float32, or full-integer int8 calibrated on the given inputs), with the accuracy of
//   exactly the written file re-measured by Keras or the TFLite interpreter.
// - `openTflite`: the `tflite` deployment runtime (ml/runtime.ts): the saved folders converted to
//   TFLite and timed by the interpreter with XNNPACK, speaking the runner protocol of
//   ml/runtime-runner.ts (warm-up, one ABBA pair, the baseline's runs) as JSON lines.
// No tfjs here: the campaign loader asks `tflitePython` whether the runtime can work on this machine.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelError } from '../core/errors';
import { PACKAGE_ROOT } from '../platform/version';
import { gather, type Dataset, type Split } from './data';

/** Formats ml/py/deploy.py writes. */
export const DEPLOY_FORMATS = ['keras', 'tflite', 'tflite-int8'] as const;
export type DeployFormat = (typeof DEPLOY_FORMATS)[number];
/** Keras file families: `keras3` writes `.keras` (Keras 3), `tf-keras` writes `.h5` (tf-keras, Keras 2). */
export const KERAS_FAMILIES = ['keras3', 'tf-keras'] as const;
export type KerasFamily = (typeof KERAS_FAMILIES)[number];

/** A failure of one step of the Python side, as one line naming the step (and the layer) and the fix. */
export class DeployError extends Error {
  override name = 'DeployError';
  constructor(
    message: string,
    readonly step: string,
    readonly layer?: string,
  ) {
    super(message);
  }
}

const SETUP_FIX =
  'run `npm run setup` (it installs tensorflow-cpu 2.21, tf-keras and the converter into .venv), or point PRUNEWISE_TF_PYTHON at a Python that has them';

/**
 * The Python with TensorFlow, Keras and tensorflowjs: PRUNEWISE_TF_PYTHON, else `<package>/.venv/bin/python`.
 * @returns its path, or `missing` saying which step to run
 */
export function tflitePython(): { python: string; missing?: string } {
  const python = process.env.PRUNEWISE_TF_PYTHON ?? path.join(PACKAGE_ROOT, '.venv', 'bin', 'python');
  if (!fs.existsSync(python)) return { python, missing: `no Python at ${python}: ${SETUP_FIX}` };
  if (!process.env.PRUNEWISE_TF_PYTHON) {
    const lib = path.join(PACKAGE_ROOT, '.venv', 'lib');
    const has = (pkg: string) => fs.existsSync(lib) && fs.readdirSync(lib).some((py) => fs.existsSync(path.join(lib, py, 'site-packages', pkg, '__init__.py')));
    for (const pkg of ['tensorflow', 'tensorflowjs', 'tf_keras'])
      if (!has(pkg)) return { python, missing: `the Python package ${pkg} is not in ${path.join(PACKAGE_ROOT, '.venv')}: ${SETUP_FIX}` };
  }
  return { python };
}

const SCRIPT = path.join(PACKAGE_ROOT, 'ml', 'py', 'deploy.py');

function requirePython(what: string): string {
  const p = tflitePython();
  if (p.missing) throw new DeployError(`${what}: ${p.missing}`, 'find Python');
  if (!fs.existsSync(SCRIPT)) throw new DeployError(`${what}: ${SCRIPT} is missing (a broken checkout?)`, 'find ml/py/deploy.py');
  return p.python;
}

interface PyFailure {
  ok: false;
  step: string;
  error: string;
  layer?: string;
}

/** One line for a failed Python step: `<what>: <step> failed [on layer L]: <error>[: fix]`. */
function stepError(what: string, f: PyFailure): DeployError {
  const fix = /No module named|not in this Python/.test(f.error) ? `: ${SETUP_FIX}` : '';
  return new DeployError(`${what}: ${f.step} failed${f.layer ? ` on layer ${f.layer}` : ''}: ${f.error}${fix}`, f.step, f.layer);
}

/** The last JSON line of a finished deploy.py run. */
function lastJson(stdout: string): ({ ok: true } & Record<string, unknown>) | PyFailure | undefined {
  const line = stdout.trim().split('\n').at(-1);
  try {
    return line ? JSON.parse(line) : undefined;
  } catch {
    return undefined;
  }
}

function runScript(what: string, args: string[]): Promise<Record<string, unknown>> {
  const python = requirePython(what);
  return new Promise((resolve, reject) => {
    const child = spawn(python, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.on('error', (e) => reject(new DeployError(`${what}: cannot start ${python} (${e.message}): ${SETUP_FIX}`, 'start Python')));
    child.on('close', (code, signal) => {
      const r = lastJson(out);
      if (r?.ok) return resolve(r);
      if (r) return reject(stepError(what, r));
      const last = err.trim().split('\n').at(-1) ?? '';
      reject(new DeployError(`${what}: ${python} ml/py/deploy.py exited (${signal ?? code})${last ? `: ${last}` : ''}`, 'run Python'));
    });
  });
}

/** Inputs for the Python side: `n` examples of one input's `shape`, row-major float32 (as ml/data.ts Split.x). */
export interface DeployData {
  x: Float32Array;
  /** class ids, for accuracy */
  y?: Uint8Array;
  n: number;
}

function writeData(dir: string, name: string, d: DeployData): { x: string; y?: string } {
  const x = path.join(dir, `${name}-x.f32`);
  fs.writeFileSync(x, Buffer.from(d.x.buffer, d.x.byteOffset, d.x.byteLength));
  if (!d.y) return { x };
  const y = path.join(dir, `${name}-y.u8`);
  fs.writeFileSync(y, Buffer.from(d.y.buffer, d.y.byteOffset, d.y.byteLength));
  return { x, y };
}

/** Validation examples the int8 converter is calibrated on (its representative dataset; TFLite's guide suggests ~100–500). */
export const CALIBRATION_EXAMPLES = 500;

/** The first `n` examples of the campaign's validation split (a fixed split by seed), as calibration inputs. */
export function calibrationInputs(ds: Pick<Dataset, 'val' | 'shape'>, n = CALIBRATION_EXAMPLES): DeployData & { shape: number[] } {
  const k = Math.min(n, ds.val.n);
  return { x: gather(ds.val, null, 0, k).x, n: k, shape: [...ds.shape] };
}

/** A split as DeployData: its examples gathered into memory (image folders are read from disk here) with their class ids. */
export function deployData(split: Split): DeployData {
  const g = gather(split, null, 0, split.n);
  return { x: g.x, y: Uint8Array.from(g.y), n: g.n };
}

export interface DeployResult {
  format: DeployFormat;
  /** the written file (absolute) */
  file: string;
  bytes: number;
  /** accuracy of exactly the written file on `test` (a fraction), measured by `loader` */
  accuracy?: number;
  examples?: number;
  loader: string;
  versions: { tensorflow: string; python: string; keras?: string; tfKeras?: string };
  calibration?: { examples: number; split: string };
  input?: { dtype: string; quantization: [number, number] };
  output?: { dtype: string; quantization: [number, number] };
}

/** The file name a format is written as: `model.keras` (Keras 3), `model.h5` (tf-keras), `model.tflite`, `model-int8.tflite`. */
export function deployFileName(format: DeployFormat, family: KerasFamily): string {
  if (format === 'keras') return family === 'tf-keras' ? 'model.h5' : 'model.keras';
  return format === 'tflite' ? 'model.tflite' : 'model-int8.tflite';
}

/**
 * Writes the tfjs model folder `modelDir` as `out` in `format`, then loads exactly that file again
 * (Keras; the TFLite interpreter) and measures its accuracy on `test` (argmax against class ids).
 * `shape`: one input's shape ([h, w, c]); `calibration`: the representative dataset of tflite-int8
 * (the campaign's validation split). Takes seconds (TensorFlow's import, conversion, calibration).
 * @throws DeployError (one line naming the step, the layer when the converter names one, and the fix)
 */
export async function exportDeployable(
  modelDir: string,
  out: string,
  o: { format: DeployFormat; family?: KerasFamily; shape: number[]; test?: DeployData; calibration?: DeployData; calibrationSplit?: string },
): Promise<DeployResult> {
  const what = `export --format ${o.format}`;
  if (o.format === 'tflite-int8' && !o.calibration) throw new DeployError(`${what}: full-integer int8 needs calibration inputs`, 'calibrate');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'prunewise-deploy-'));
  try {
    const args = ['export', '--model', modelDir, '--format', o.format, '--family', o.family ?? 'keras3', '--out', out, '--shape', JSON.stringify(o.shape)];
    if (o.test) {
      const f = writeData(tmp, 'test', o.test);
      args.push('--test-x', f.x, '--test-y', f.y!);
    }
    if (o.calibration) args.push('--calib-x', writeData(tmp, 'calib', o.calibration).x, '--calib-split', o.calibrationSplit ?? 'validation');
    return (await runScript(what, args)) as unknown as DeployResult;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The outputs of written `.keras`, `.h5` or `.tflite` files on `x` (`n` × `shape`), each loaded by the
 * pinned Keras / tf-keras / TFLite interpreter (int8 files: inputs quantized, outputs dequantized),
 * in one Python run. @returns per file: n × outputs, row-major
 */
export async function predictDeployables(files: string[], x: Float32Array, shape: number[]): Promise<Array<{ values: Float32Array; shape: number[] }>> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'prunewise-predict-'));
  try {
    const xf = writeData(tmp, 'in', { x, n: 0 }).x;
    const outFile = path.join(tmp, 'out.f32');
    const args = ['predict', ...files.flatMap((f) => ['--file', f]), '--x', xf, '--shape', JSON.stringify(shape), '--out', outFile];
    const r = (await runScript(`predict ${files.map((f) => path.basename(f)).join(', ')}`, args)) as { shapes: number[][] };
    return r.shapes.map((s, i) => {
      const buf = fs.readFileSync(`${outFile}.${i}`);
      return { values: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), shape: s };
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** `predictDeployables` for one file. */
export async function predictDeployable(file: string, x: Float32Array, shape: number[]): Promise<{ values: Float32Array; shape: number[] }> {
  return (await predictDeployables([file], x, shape))[0];
}

// ------------------------------------------------------------------------------- the tflite runtime

/** What the tflite runtime reports at open (merged into ml/runtime.ts RuntimeInfo). */
export interface TfliteInfo {
  backend: string;
  tensorflowVersion: string;
  python: string;
  threads: number;
  host: string;
  library: string;
  delegate: string;
  /** per model: float32 or int8 (full-integer) */
  variants: Record<string, string>;
  calibration?: string;
}

export interface TfliteSession {
  info: TfliteInfo;
  call<T>(req: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Starts `deploy.py serve` and opens the models: each tfjs folder converted to TFLite (float32, or
 * int8 full-integer for `candidateVariant: 'int8'`, calibrated on `calibration` when given, else on
 * random inputs — timing only), one interpreter each (XNNPACK, PRUNEWISE_TFLITE_THREADS threads, default 1).
 * @throws DeployError (Python missing: the fix; a layer the converter refuses: ModelError naming it)
 */
export async function openTflite(m: {
  baseline: string;
  candidate?: string;
  batchSize: number;
  candidateVariant?: 'float32' | 'int8';
  calibration?: DeployData & { shape: number[] };
}): Promise<TfliteSession> {
  const what = 'target.runtime tflite';
  const python = requirePython(what);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'prunewise-tflite-'));
  const child: ChildProcess = spawn(python, [SCRIPT, 'serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  let buffered = '';
  let next = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.stdout!.on('data', (d) => {
    buffered += d;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      let msg: { id: number; ok: boolean; value?: unknown } & Partial<PyFailure>;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.ok) p?.resolve(msg.value);
      else p?.reject(stepError(what, msg as PyFailure));
    }
  });
  const exited = new Promise<void>((resolve) =>
    child.on('close', (code, signal) => {
      const last = stderr.trim().split('\n').at(-1) ?? '';
      for (const p of pending.values())
        p.reject(new DeployError(`${what}: the Python runtime exited (${signal ?? code})${last ? `: ${last}` : ''}`, 'run Python'));
      pending.clear();
      fs.rmSync(tmp, { recursive: true, force: true });
      resolve();
    }),
  );
  child.on('error', () => undefined); // reported by 'close'
  const call = <T>(req: Record<string, unknown>) =>
    new Promise<T>((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null) return reject(new DeployError(`${what}: the Python runtime is not running`, 'run Python'));
      const id = next++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.stdin!.write(JSON.stringify({ id, req }) + '\n');
    });
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    const calibration = m.calibration ? { x: writeData(tmp, 'calib', m.calibration).x, shape: m.calibration.shape } : undefined;
    const info = await call<TfliteInfo>({
      op: 'open',
      baseline: m.baseline,
      candidate: m.candidate,
      batchSize: m.batchSize,
      baselineVariant: 'float32',
      candidateVariant: m.candidateVariant ?? 'float32',
      calibration,
    });
    return { info, call, close };
  } catch (e) {
    await close();
    // a layer the converter refuses is the model's fault: retrying cannot help
    if (e instanceof DeployError && e.layer) throw new ModelError(e.message);
    throw e;
  }
}

/** Whether the Python side can run here (for tests and set-up messages): the versions, or why not. */
export function tfliteVersions(): { tensorflow?: string; missing?: string } {
  const p = tflitePython();
  if (p.missing) return { missing: p.missing };
  const r = spawnSync(p.python, ['-c', 'import tensorflow as tf; print(tf.__version__)'], {
    encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' },
  });
  if (r.status !== 0) return { missing: `${p.python} cannot import tensorflow: ${SETUP_FIX}` };
  return { tensorflow: r.stdout.trim().split('\n').at(-1) };
}
