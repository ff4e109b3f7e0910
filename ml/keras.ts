// The user's model file, made into what every stage loads: a tfjs model.json in the home, keyed by the
// sha256 of the input's bytes. A Keras file (`.keras`, `.h5`) or a SavedModel folder Keras loads is
// converted once by the pinned converter (ml/py/keras_to_tfjs.py on the project's .venv: keras 3.15.1,
// tf-keras 2.21.0, tensorflowjs 4.22.0); a tfjs model.json is copied as it is. Next to it, `source.json`
// records where it came from and which Keras wrote it (`ModelSource`): what `export` writes back.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelError } from '../core/errors';
import { PACKAGE_ROOT } from '../platform/version';
import { sha256 } from './files';
import { modelFamily, type ModelFamily } from './keras-json';

export type { ModelFamily };

/** What the user gave as `model:`: a tfjs model.json, a Keras v3 archive, an HDF5 file, or a SavedModel folder. */
export type ModelKind = 'tfjs' | 'keras' | 'h5' | 'savedmodel';

/** `source.json` next to a prepared model: the contract `export` reads (version 1). */
export interface ModelSource {
  version: 1;
  /** which Keras wrote the model: `.keras` for keras3, `.h5` for tf-keras on export; tfjs = tfjs-layers */
  family: ModelFamily;
  kind: ModelKind;
  /** the absolute path the campaign file named */
  input: string;
  /** sha256 over the input's bytes (every file, in name order, for a folder or a model.json + weights) */
  sha256: string;
  /** the Keras version that saved it, when the file says */
  kerasVersion?: string;
  /** what converted it (Keras inputs only), e.g. "tensorflowjs 4.22.0" */
  converter?: string;
}

export interface PreparedModel {
  /** the model.json every stage loads (inside the cache folder) */
  modelJson: string;
  source: ModelSource;
  /** true when an earlier submit had already converted these bytes */
  cached: boolean;
}

/** The folder under the home that holds prepared user models (`<home>/models/<sha256>/`). */
export const MODELS_DIR = 'models';

/** "Keras 3 .keras file, converted by tensorflowjs 4.22.0" and the like, for a log line. */
export function describeSource(s: ModelSource): string {
  const family = { keras3: 'Keras 3', 'tf-keras': 'tf-keras (Keras 2)', tfjs: 'tfjs-layers' }[s.family];
  const kind = { tfjs: 'tfjs model.json', keras: '.keras file', h5: '.h5 file', savedmodel: 'SavedModel' }[s.kind];
  return `${family}${s.kerasVersion ? ` ${s.kerasVersion}` : ''} ${kind}${s.converter ? `, converted by ${s.converter}` : ''}`;
}

/** The Python with the pinned converter: $PRUNEWISE_PYTHON, else the project's .venv. */
export function converterPython(): string {
  return process.env.PRUNEWISE_PYTHON ?? path.join(PACKAGE_ROOT, '.venv', 'bin', 'python');
}

export const CONVERTER_SCRIPT = path.join(PACKAGE_ROOT, 'ml', 'py', 'keras_to_tfjs.py');

/** The kind of model a path holds, from its name (and, for a folder, its files). @returns undefined when it is none */
export function modelKind(p: string): ModelKind | undefined {
  const lower = p.toLowerCase();
  if (lower.endsWith('.json')) return 'tfjs';
  if (lower.endsWith('.keras')) return 'keras';
  if (lower.endsWith('.h5') || lower.endsWith('.hdf5')) return 'h5';
  try {
    if (fs.statSync(p).isDirectory()) {
      if (fs.existsSync(path.join(p, 'saved_model.pb')) || fs.existsSync(path.join(p, 'saved_model.pbtxt'))) return 'savedmodel';
      if (fs.existsSync(path.join(p, 'model.json'))) return 'tfjs';
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function listFiles(dir: string, rel = ''): string[] {
  return fs
    .readdirSync(path.join(dir, rel), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(dir, path.join(rel, e.name)) : [path.join(rel, e.name)]))
    .sort();
}

/** The files that make up a tfjs model: model.json and the weight files its manifest names. @throws ModelError */
function tfjsFiles(jsonPath: string): string[] {
  let json: { weightsManifest?: Array<{ paths?: string[] }> };
  try {
    json = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    throw new ModelError(`${jsonPath}: cannot read a tfjs model.json (${String((e as Error).message).split('\n')[0]})`);
  }
  const paths = (json.weightsManifest ?? []).flatMap((g) => g.paths ?? []);
  return [path.basename(jsonPath), ...paths];
}

/** sha256 over relative names and bytes of `files` under `dir` (order as given). */
function hashFiles(dir: string, files: string[]): string {
  const parts: Array<string | Uint8Array> = [];
  for (const f of files) {
    let data: Buffer;
    try {
      data = fs.readFileSync(path.join(dir, f));
    } catch (e) {
      throw new ModelError(`${path.join(dir, f)}: cannot read it (${(e as NodeJS.ErrnoException).code ?? e}): keep the model's files together`);
    }
    parts.push(`${f}\0${data.length}\0`, data);
  }
  return sha256(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
}

/** Runs the converter. @returns its JSON line @throws ModelError (its one line) */
function convert(input: string, out: string): Promise<{ family: ModelFamily; kind: ModelKind; kerasVersion?: string; converter?: string }> {
  const python = converterPython();
  if (!fs.existsSync(python))
    throw new ModelError(
      `model: ${input} is a Keras model: converting it needs the pinned Python (${python} not found): run npm run setup, or set PRUNEWISE_PYTHON, or give a tfjs model.json`,
    );
  return new Promise((resolve, reject) => {
    execFile(
      python,
      [CONVERTER_SCRIPT, input, out],
      { timeout: 600_000, maxBuffer: 64 << 20, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', CUDA_VISIBLE_DEVICES: '' } },
      (err, stdout, stderr) => {
        const refused = stderr
          .split('\n')
          .reverse()
          .find((l) => l.startsWith('refused: '));
        if (refused) return reject(new ModelError(`model: ${refused.slice('refused: '.length)}`));
        if (err) {
          const last =
            stderr
              .split('\n')
              .filter((l) => l.trim() && !/^(I0000|W0000|WARNING)/.test(l))
              .at(-1) ?? err.message;
          return reject(new ModelError(`model: ${input}: the Keras converter failed (${last.trim()}): check the file loads with keras.saving.load_model`));
        }
        const line = stdout.trim().split('\n').at(-1) ?? '';
        try {
          resolve(JSON.parse(line));
        } catch {
          reject(new ModelError(`model: ${input}: the Keras converter said nothing readable (${line.slice(0, 120)})`));
        }
      },
    );
  });
}

/**
 * Which Keras wrote a campaign's model: `source.json` next to a prepared model.json (the campaign record's
 * `spec.model`), else the family the model.json itself tells. @returns undefined for a zoo model
 */
export function readModelSource(modelJson: string): ModelSource | undefined {
  if (!fs.existsSync(modelJson)) return undefined; // a zoo name, or a file that is gone
  const p = path.join(path.dirname(modelJson), 'source.json');
  if (fs.existsSync(p)) return JSON.parse(fs.readFileSync(p, 'utf8')) as ModelSource;
  try {
    const json = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
    return { version: 1, family: modelFamily(json), kind: 'tfjs', input: modelJson, sha256: '' };
  } catch {
    return undefined;
  }
}

/**
 * Makes the user's `model:` into a tfjs model.json under `cacheRoot/<sha256>/` (model.json, its weight files,
 * source.json), converting Keras inputs with the pinned converter; the same bytes are converted once.
 * The folder appears whole or not at all (written under a temporary name, then renamed).
 * @param input absolute path: a model.json (or a folder holding one), a .keras / .h5 file or a SavedModel folder
 * @throws ModelError (bad input: one line naming the file and the fix)
 */
export async function prepareUserModel(input: string, cacheRoot: string): Promise<PreparedModel> {
  const kind = modelKind(input);
  if (!kind) {
    throw new ModelError(`model: ${input}: not a model this tool reads: give a tfjs model.json, a .keras or .h5 file, or a SavedModel folder written by Keras`);
  }
  let srcDir: string;
  let files: string[];
  if (kind === 'tfjs') {
    const jsonPath = input.toLowerCase().endsWith('.json') ? input : path.join(input, 'model.json');
    srcDir = path.dirname(jsonPath);
    files = tfjsFiles(jsonPath);
  } else if (kind === 'savedmodel') {
    srcDir = input;
    files = listFiles(input);
  } else {
    srcDir = path.dirname(input);
    files = [path.basename(input)];
  }
  const hash = hashFiles(srcDir, files);
  const dir = path.join(cacheRoot, hash);
  const modelJson = path.join(dir, 'model.json');
  if (fs.existsSync(path.join(dir, 'source.json')) && fs.existsSync(modelJson)) {
    return { modelJson, source: JSON.parse(fs.readFileSync(path.join(dir, 'source.json'), 'utf8')), cached: true };
  }
  fs.mkdirSync(cacheRoot, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheRoot, `.tmp-${hash.slice(0, 12)}-`));
  try {
    let source: ModelSource;
    if (kind === 'tfjs') {
      for (const f of files) fs.copyFileSync(path.join(srcDir, f), path.join(tmp, f === files[0] ? 'model.json' : f));
      const json = JSON.parse(fs.readFileSync(path.join(tmp, 'model.json'), 'utf8'));
      const kv = json?.modelTopology?.keras_version;
      source = { version: 1, family: modelFamily(json), kind, input, sha256: hash, ...(typeof kv === 'string' ? { kerasVersion: kv } : {}) };
    } else {
      const out = path.join(tmp, 'converted');
      const said = await convert(input, out);
      for (const f of fs.readdirSync(out)) fs.renameSync(path.join(out, f), path.join(tmp, f));
      fs.rmdirSync(out);
      source = { version: 1, family: said.family, kind, input, sha256: hash, kerasVersion: said.kerasVersion, converter: said.converter };
    }
    fs.writeFileSync(path.join(tmp, 'source.json'), JSON.stringify(source, null, 2));
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // another submit of the same bytes won the race: its folder is as good as ours
      if (!fs.existsSync(path.join(dir, 'source.json'))) throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    return { modelJson, source, cached: false };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
