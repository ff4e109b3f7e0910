// Ship a candidate from the UI: the deployable variants the pipeline recorded for one (run, round),
// each as the files stock tools load (tfjs: model.json + weights; Keras / TFLite when a stage
// records them), what `prunewise.json` says about it (input contract, provenance, measured
// numbers), and a README with a loading snippet for Node and the browser. Data-driven: the list is
// the recorded artifacts of that round, minus those whose prunewise.json says `deployable: false`
// and the stages that only feed the pipeline. Serves bytes and text; never loads a model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunDetail } from '../db';
import type { ArtifactFile, Artifacts } from './artifacts';

/** What people call an artifact kind (unknown kinds are shown by their name). */
const KIND_LABELS: Record<string, string> = {
  deployable: 'deployed variant (what hardware-adapt measured)',
  model: 'tfjs, float32 weights',
  'model-uint8': 'tfjs, uint8 weights (stock quantized manifest)',
  'model-float16': 'tfjs, float16 weights (stock quantized manifest)',
  keras: 'Keras (.keras)',
  tflite: 'TFLite',
  'tflite-int8': 'TFLite, int8',
};
/** Stages whose models only feed the pipeline (the pruned model before fine-tuning). */
const PIPELINE_ONLY_STAGES = new Set(['score', 'prune']);
/** Kinds that are models at all (latency tables, scores and allocations are not). */
const isModelKind = (kind: string) => kind === 'deployable' || /^(model|keras|tflite|saved-model|onnx)(-|$)/.test(kind);

export interface Variant {
  kind: string;
  label: string;
  stage: string;
  path: string;
  sha256: string;
  bytes: number;
  files: ArtifactFile[];
  /** model.json's URL on this dashboard, for a tfjs variant (stock tf.loadLayersModel loads it) */
  modelJson: string | null;
  /** the deployed variant of this round */
  deployed: boolean;
  /** what the variant's prunewise.json holds, if it has one */
  manifest: Record<string, unknown> | null;
  /** its weight dtype as the manifest or the kind says */
  dtype: string;
}

/** The variants of (run, round) that can be shipped, the deployed one first. */
export function shipVariants(d: RunDetail, round: number, artifacts: Artifacts): Variant[] {
  const out: Variant[] = [];
  for (const a of d.artifacts) {
    if (a.round !== round || !isModelKind(a.kind) || PIPELINE_ONLY_STAGES.has(a.stage)) continue;
    const files = artifacts.files(a.path);
    const manifest = readManifest(artifacts, a.path);
    if (manifest && manifest.deployable === false) continue; // e.g. per-channel int8: needs prunewise's loader
    const mj = files.find((f) => f.name === 'model.json');
    out.push({
      kind: a.kind,
      label: KIND_LABELS[a.kind] ?? a.kind,
      stage: a.stage,
      path: a.path,
      sha256: a.sha256,
      bytes: a.bytes,
      files,
      modelJson: mj ? mj.href : null,
      deployed: a.kind === 'deployable',
      manifest,
      dtype: typeof manifest?.dtype === 'string' ? manifest.dtype : a.kind === 'model-uint8' ? 'uint8' : a.kind === 'model-float16' ? 'float16' : 'float32',
    });
  }
  return out.sort((a, b) => Number(b.deployed) - Number(a.deployed));
}

function readManifest(artifacts: Artifacts, rel: string): Record<string, unknown> | null {
  const abs = artifacts.absolute(path.join(rel, 'prunewise.json'));
  if (!abs) return null;
  try {
    return JSON.parse(fs.readFileSync(abs, 'utf8')) as Record<string, unknown>;
  } catch {
    return null; // no manifest (or unreadable): the page says what it knows from the database
  }
}

export interface InputContract {
  /** one example's shape (without the batch dimension), e.g. [28, 28, 1] */
  shape: number[] | null;
  dtype: string;
  /** how raw values become inputs, as prunewise.json says (absent: not stated) */
  scaling: string | null;
  classNames: string[] | null;
  /** where this came from: prunewise.json's `input`, or the model's own input layer */
  source: 'prunewise.json' | 'model.json' | 'unknown';
}

/**
 * The input contract of a variant: prunewise.json's `input` when the pipeline wrote one
 * (shape, scaling, class names), else the shape of the model's input layer from model.json.
 */
export function inputContract(v: Variant, artifacts: Artifacts): InputContract {
  const inp = v.manifest?.input as
    { shape?: number[]; dtype?: string; scaling?: unknown; scale?: unknown; classNames?: string[]; classes?: unknown } | undefined;
  if (inp && typeof inp === 'object') {
    const scaling = inp.scaling ?? inp.scale;
    return {
      shape: Array.isArray(inp.shape) ? inp.shape : null,
      dtype: inp.dtype ?? 'float32',
      scaling: scaling === undefined ? null : typeof scaling === 'string' ? scaling : JSON.stringify(scaling),
      classNames: Array.isArray(inp.classNames) ? inp.classNames : Array.isArray(inp.classes) ? (inp.classes as string[]) : null,
      source: 'prunewise.json',
    };
  }
  const abs = artifacts.absolute(path.join(v.path, 'model.json'));
  if (abs) {
    try {
      const topo = JSON.parse(fs.readFileSync(abs, 'utf8')).modelTopology as { config?: { layers?: Array<{ config?: Record<string, unknown> }> } };
      const first = topo?.config?.layers?.[0]?.config;
      const shape = (first?.batch_input_shape ?? first?.batchInputShape) as Array<number | null> | undefined;
      if (shape)
        return { shape: shape.slice(1).map((x) => x ?? -1), dtype: String(first?.dtype ?? 'float32'), scaling: null, classNames: null, source: 'model.json' };
    } catch {
      /* fall through */
    }
  }
  return { shape: null, dtype: 'float32', scaling: null, classNames: null, source: 'unknown' };
}

/**
 * The README of a tfjs variant: what it is, its input contract, and how to load it with stock
 * `@tensorflow/tfjs` in Node (no tfjs-node: from the files through an in-memory handler, since
 * `file://` needs tfjs-node), with tfjs-node (`file://`), and in a browser (over HTTP).
 */
export function readmeOf(o: { title: string; v: Variant; contract: InputContract; url: string | null; provenance: Array<[string, string]> }): string {
  const shape = o.contract.shape ? `[1, ${o.contract.shape.join(', ')}]` : '[1, /* the input shape */]';
  const files = o.v.files.map((f) => f.name).join(', ');
  const lines = [
    `# ${o.title}`,
    '',
    `${o.v.label}. Files: ${files}. Loads with stock \`@tensorflow/tfjs\` \`tf.loadLayersModel\` (4.x); no prunewise code is needed.`,
    '',
    '## Input',
    '',
    `- shape of one example: ${o.contract.shape ? `[${o.contract.shape.join(', ')}]` : 'not recorded'} (${o.contract.dtype}); a batch adds a first dimension`,
    `- scaling: ${o.contract.scaling ?? 'not stated by the pipeline: use what the model was trained with'}`,
    `- classes: ${o.contract.classNames ? o.contract.classNames.join(', ') : 'not recorded (output index = class index)'}`,
    `- source of this contract: ${o.contract.source}`,
    '',
    '## Provenance',
    '',
    ...o.provenance.map(([k, v]) => `- ${k}: ${v}`),
    '',
    '## Node, stock @tensorflow/tfjs (no tfjs-node)',
    '',
    'Put the files in a folder `model/` next to this script (`npm install @tensorflow/tfjs`). Stock tfjs in Node has no',
    '`file://` loader (that needs tfjs-node; a `file://` URL otherwise fails with "fetch failed"), so hand it the files:',
    '',
    '```js',
    "const tf = require('@tensorflow/tfjs');",
    "const fs = require('node:fs');",
    "const path = require('node:path');",
    '',
    'async function loadFromFolder(dir) {',
    "  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));",
    '  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);',
    '  const bytes = Buffer.concat(json.weightsManifest.flatMap((group) => group.paths.map((p) => fs.readFileSync(path.join(dir, p)))));',
    '  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);',
    '  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));',
    '}',
    '',
    '(async () => {',
    "  const model = await loadFromFolder(path.join(__dirname, 'model'));",
    `  const x = tf.zeros(${shape}); // your input, scaled as above`,
    '  const y = model.predict(x);',
    '  console.log(JSON.stringify({ predicted: y.argMax(-1).dataSync()[0], output: y.shape }));',
    '})();',
    '```',
    '',
    "With `@tensorflow/tfjs-node` installed instead: `const tf = require('@tensorflow/tfjs-node'); const model = await tf.loadLayersModel('file://' + path.resolve('model/model.json'));`.",
    '',
    '## Browser',
    '',
    'Serve the files over HTTP next to your page (browsers do not load models from `file://`):',
    '',
    '```html',
    '<script src="https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4.22.0/dist/tf.min.js"></script>',
    '<script type="module">',
    "  const model = await tf.loadLayersModel('model/model.json');",
    `  const y = model.predict(tf.zeros(${shape}));`,
    '  console.log(await y.argMax(-1).data());',
    '</script>',
    '```',
    '',
    o.url ? `While this dashboard runs, the same files are at ${o.url} (same origin only).` : '',
    '',
  ];
  return lines.join('\n');
}
