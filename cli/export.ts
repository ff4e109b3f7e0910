// `prunewise export`: writes any candidate model (a run's round, or the baseline) for deployment,
// as float32 tfjs or quantized (uint8 / float16) weights that stock tfjs loads, as a Keras file
// (`.keras` Keras 3 / `.h5` tf-keras), or as TFLite (float32, or full-integer int8 calibrated on the
// campaign's validation split; ml/tflite.ts), and measures the test accuracy of exactly the file
// written (tfjs; Keras; the TFLite interpreter).
import * as fs from 'node:fs';
import { readModelSource } from '../ml/keras';
import * as path from 'node:path';
import { Artifacts, PRUNEWISE_JSON_VERSION } from '../activities';
import type { ArtifactStore } from '../blobstore';
import { describeRecipe, finetuneRecipeOf, type CampaignSpec } from '../campaign/schema';
import { metricMap, modelArtifactPath, runRef, type Db } from '../db';
import {
  calibrationInputs,
  CALIBRATION_EXAMPLES,
  DEPLOY_FORMATS,
  DeployError,
  deployFileName,
  evaluate,
  exportDeployable,
  initBackend,
  loadDataset,
  loadModel,
  saveExport,
  taskSpecOf,
  deployData,
  sha256,
  writeFileAtomic,
  type DeployFormat,
  type ExportFormat,
  type KerasFamily,
} from '../ml';
import type { Home } from './home';
import { cmd } from './hints';
import { CliError } from './temporal';

/** `--format`: tfjs variants (ml/models.ts saveExport) and the Keras / TFLite files (ml/tflite.ts). */
export type CliExportFormat = ExportFormat | DeployFormat;
export const EXPORT_FORMATS: CliExportFormat[] = ['tfjs', 'uint8', 'float16', ...DEPLOY_FORMATS];

export interface ExportResult {
  runId: string;
  round: number;
  format: CliExportFormat;
  out: string;
  /** keras / tflite formats: the written file */
  file?: string;
  /** bytes of the weight files (tfjs formats) or of the written file (keras, tflite) */
  bytes: number;
  float32Bytes: number;
  /** test accuracy measured with exactly the written files, and with the float32 tfjs source */
  accuracy: number;
  float32Accuracy: number;
  /** the tfjs backend of this process (float32Accuracy; tfjs formats: accuracy too) */
  backend: string;
  /** what measured `accuracy`: tfjs on `backend`, Keras, or the TFLite interpreter */
  measuredBy: string;
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest (symlinks resolved). */
function realish(p: string): string {
  const rest: string[] = [];
  let cur = p;
  while (!fs.existsSync(cur) && path.dirname(cur) !== cur) {
    rest.unshift(path.basename(cur));
    cur = path.dirname(cur);
  }
  return path.join(fs.realpathSync(cur), ...rest);
}

/**
 * `--out` must be a new or empty folder outside the home's artifacts: an export never deletes or
 * replaces a file (the campaign's own models keep matching their recorded checksums).
 * @throws CliError naming the folder and the fix
 */
export function checkOutDir(home: Home, out: string): void {
  const real = realish(out);
  const artifacts = realish(home.artifacts);
  if (real === artifacts || real.startsWith(artifacts + path.sep) || artifacts.startsWith(real + path.sep))
    throw new CliError(`--out: ${out} is inside (or holds) the home's artifacts ${home.artifacts}: give a folder outside it`);
  if (!fs.existsSync(out)) return;
  if (!fs.statSync(out).isDirectory()) throw new CliError(`--out: ${out} is a file: give a new or empty folder`);
  if (fs.readdirSync(out).length > 0) throw new CliError(`--out: ${out} is not empty: give a new or empty folder (an export never deletes or replaces files)`);
}

export async function exportModel(
  home: Home,
  db: Db,
  store: ArtifactStore,
  runId: string,
  opts: { round?: number; format?: CliExportFormat; family?: KerasFamily; out: string; log: (s: string) => void },
): Promise<ExportResult> {
  const run = runRef(db, runId);
  if (!run) throw new CliError(`run "${runId}" not found: run ids look like <campaign>/run-1 or <campaign>/baseline (${cmd(home, 'ls')} lists the campaigns)`);
  let round: number;
  if (run.kind === 'baseline') {
    if (opts.round !== undefined && opts.round !== 0) throw new CliError(`--round: the baseline has only round 0`);
    round = 0;
  } else if (opts.round !== undefined) {
    round = opts.round;
  } else {
    if (run.bestRound === null) throw new CliError(`run "${runId}" has no completed round yet: wait for one, or give --round`);
    round = run.bestRound;
    opts.log(`round ${round}: the run's best round (lowest J(w) within the hard constraints; give --round N for another)`);
  }
  const stage = run.kind === 'baseline' ? 'baseline' : 'finetune';
  const art = modelArtifactPath(db, runId, round, stage);
  if (!art)
    throw new CliError(`--round: run "${runId}" has no model for round ${round}: completed rounds are listed by ${cmd(home, 'status', run.campaignId)}`);
  // this home's copy, checked against the recorded key (fetched from the artifact store when missing or damaged)
  let src: string;
  try {
    src = await new Artifacts(home.dir, store).local(art);
  } catch (e) {
    throw new CliError(`${art.split('@')[0]}: ${(e as Error).message} (is PRUNEWISE_ARTIFACTS the store the campaign ran with?)`);
  }
  if (!fs.existsSync(path.join(src, 'model.json'))) throw new CliError(`${src} is missing (was the campaign's artifacts folder moved?)`);
  const out = path.resolve(opts.out);
  checkOutDir(home, out);
  // without --format: the variant the candidate deploys (like with like: its bytes and accuracy are the ones shown)
  const format: CliExportFormat = opts.format ?? (metricMap(db, runId, round).deployedInt8 === 1 ? 'uint8' : 'tfjs');
  if (!opts.format) opts.log(`format ${format}: the variant round ${round} deploys (give --format for another)`);
  if (opts.family && format !== 'keras') throw new CliError(`--family: only with --format keras`);
  const backend = (await initBackend()).name;
  const spec = JSON.parse(run.specJson) as CampaignSpec;
  const model = await loadModel(src);
  try {
    checkOutDir(home, out); // again: a file put there since the first check is never replaced
    if ((DEPLOY_FORMATS as readonly string[]).includes(format)) {
      return await exportFile(model, src, out, {
        runId,
        round,
        scheduleRound: scheduleRoundOf(db, runId, round),
        format: format as DeployFormat,
        family: opts.family,
        spec,
        backend,
        campaignId: run.campaignId,
        log: opts.log,
      });
    }
    const saved = await saveExport(model, out, format as ExportFormat);
    const float32Bytes = fs.statSync(path.join(src, 'weights.bin')).size;
    opts.log(`measuring test accuracy of the written weights (${backend})…`);
    const ds = loadDataset(spec.dataset, spec.seed, taskSpecOf(spec.task)); // the campaign's task: its loss and metric
    const written = await loadModel(out);
    const accuracy = (await evaluate(written, ds.test)).accuracy;
    written.dispose();
    const float32Accuracy = (await evaluate(model, ds.test)).accuracy;
    const result: ExportResult = {
      runId,
      round,
      format,
      out,
      bytes: saved.bytes,
      float32Bytes,
      accuracy,
      float32Accuracy,
      backend,
      measuredBy: `tfjs ${backend}`,
    };
    writeFileAtomic(
      path.join(out, 'prunewise.json'),
      JSON.stringify(
        {
          version: PRUNEWISE_JSON_VERSION,
          ...result,
          accuracy: { value: accuracy, measured: true, split: 'test', backend },
          float32Accuracy: { value: float32Accuracy, measured: true, split: 'test', backend },
          campaign: run.campaignId,
          finetune: recipeOf(spec, round, scheduleRoundOf(db, runId, round)),
          sha256: saved.sha256,
          // the input contract (README "Task, labels and pixels"): how pixels are scaled, class names
          input: { ...ds.input, task: taskSpecOf(spec.task).type },
        },
        null,
        2,
      ),
    );
    return result;
  } finally {
    model.dispose();
  }
}

/**
 * A Keras or TFLite file in `out` (ml/tflite.ts: the .venv's TensorFlow in a child Python process),
 * its accuracy measured on exactly that file, and prunewise.json beside it.
 * @throws CliError one line naming the step (and the layer) that failed and the fix
 */
/**
 * How the exported weights were fine-tuned (as the deployable's prunewise.json says): null for the baseline (round 0);
 * `scheduleRound`: the schedule round whose recipe the fine-tuning used (scheduleRoundOf).
 */
function recipeOf(spec: CampaignSpec, round: number, scheduleRound: number) {
  if (round === 0) return null;
  const r = finetuneRecipeOf(spec.pruning, scheduleRound, taskSpecOf(spec.task).type);
  return { ...r, summary: describeRecipe(r) };
}

/**
 * The schedule round whose fine-tuning recipe round `round` used: as its finetune stage recorded it (metric scheduleRound),
 * else — campaigns from before the workflow passed it, which fine-tuned by the round number — the round number.
 */
const scheduleRoundOf = (db: Db, runId: string, round: number): number => metricMap(db, runId, round).scheduleRound ?? round;

async function exportFile(
  model: Awaited<ReturnType<typeof loadModel>>,
  src: string,
  out: string,
  o: {
    runId: string;
    round: number;
    /** the schedule round whose recipe `round` fine-tuned with (scheduleRoundOf) */
    scheduleRound: number;
    format: DeployFormat;
    family?: KerasFamily;
    spec: CampaignSpec;
    backend: string;
    campaignId: string;
    log: (s: string) => void;
  },
): Promise<ExportResult> {
  // the family of the input model (recorded for Keras user models), else Keras 3
  const recorded = readModelSource(o.spec.model)?.family;
  const family: KerasFamily = o.family ?? (recorded === 'tf-keras' || recorded === 'keras3' ? recorded : 'keras3');
  if (o.format === 'keras' && !o.family)
    o.log(
      `family ${family}: ${recorded === family ? "the input model's own" : 'the default'} (${family === 'keras3' ? 'a Keras 3 .keras file; --family tf-keras for a tf-keras .h5' : 'a tf-keras .h5 file; --family keras3 for a Keras 3 .keras'})`,
    );
  const ds = loadDataset(o.spec.dataset, o.spec.seed, taskSpecOf(o.spec.task));
  const shape = (model.inputs[0].shape.slice(1) as Array<number | null>).map((d, i) => d ?? ds.shape[i]);
  const file = path.join(out, deployFileName(o.format, family));
  fs.mkdirSync(out, { recursive: true });
  const calibration = o.format === 'tflite-int8' ? calibrationInputs(ds) : undefined;
  o.log(
    o.format === 'keras'
      ? `writing ${path.basename(file)} and measuring its test accuracy with ${family === 'keras3' ? 'Keras 3' : 'tf-keras'}…`
      : `converting to TFLite${calibration ? ` int8 (calibrated on ${calibration.n} validation images)` : ''} and measuring the file's test accuracy with the TFLite interpreter…`,
  );
  let r;
  try {
    r = await exportDeployable(src, file, { format: o.format, family, shape, test: deployData(ds.test), calibration, calibrationSplit: 'validation' });
  } catch (e) {
    if (e instanceof DeployError) throw new CliError(e.message);
    throw e;
  }
  const float32Accuracy = (await evaluate(model, ds.test)).accuracy;
  const float32Bytes = fs.statSync(path.join(src, 'weights.bin')).size;
  const result: ExportResult = {
    runId: o.runId,
    round: o.round,
    format: o.format,
    out,
    file,
    bytes: r.bytes,
    float32Bytes,
    accuracy: r.accuracy!,
    float32Accuracy,
    backend: o.backend,
    measuredBy: r.loader,
  };
  writeFileAtomic(
    path.join(out, 'prunewise.json'),
    JSON.stringify(
      {
        ...result,
        file: path.basename(file),
        ...(o.format === 'keras' ? { family, loader: r.loader } : { loader: r.loader, input: r.input, output: r.output }),
        accuracy: { value: r.accuracy, measured: true, split: 'test', examples: r.examples, on: 'exactly this file', by: r.loader },
        float32Accuracy: { value: float32Accuracy, measured: true, split: 'test', on: 'the float32 tfjs source', backend: o.backend },
        ...(r.calibration
          ? {
              calibration: { ...r.calibration, atMost: CALIBRATION_EXAMPLES, note: 'full-integer int8: the representative dataset of tf.lite.TFLiteConverter' },
            }
          : {}),
        versions: r.versions,
        campaign: o.campaignId,
        finetune: recipeOf(o.spec, o.round, o.scheduleRound),
        sha256: sha256(fs.readFileSync(file)),
      },
      null,
      2,
    ),
  );
  return result;
}
