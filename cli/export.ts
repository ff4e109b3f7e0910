// `prunewise export`: writes any candidate model (a run's round, or the baseline) for deployment,
// as float32 tfjs or quantized (uint8 / float16) weights that stock tfjs loads, and measures the
// test accuracy of exactly the weights written.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Artifacts, PRUNEWISE_JSON_VERSION } from '../activities';
import type { ArtifactStore } from '../blobstore';
import type { CampaignSpec } from '../campaign/schema';
import { metricMap, modelArtifactPath, runRef, type Db } from '../db';
import { evaluate, initBackend, loadDataset, loadModel, saveExport, writeFileAtomic, type ExportFormat } from '../ml';
import type { Home } from './home';
import { CliError } from './temporal';

export const EXPORT_FORMATS: ExportFormat[] = ['tfjs', 'uint8', 'float16'];

export interface ExportResult {
  runId: string;
  round: number;
  format: ExportFormat;
  out: string;
  bytes: number;
  float32Bytes: number;
  /** test accuracy measured with the written weights, and with the float32 source */
  accuracy: number;
  float32Accuracy: number;
  backend: string;
}

export async function exportModel(
  home: Home,
  db: Db,
  store: ArtifactStore,
  runId: string,
  opts: { round?: number; format?: ExportFormat; out: string; log: (s: string) => void },
): Promise<ExportResult> {
  const run = runRef(db, runId);
  if (!run) throw new CliError(`run "${runId}" not found: run ids look like <campaign>/run-1 or <campaign>/baseline (see \`prunewise status <campaign>\`)`);
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
    throw new CliError(`--round: run "${runId}" has no model for round ${round}: completed rounds are listed by \`prunewise status ${run.campaignId}\``);
  // this home's copy, checked against the recorded key (fetched from the artifact store when missing or damaged)
  let src: string;
  try {
    src = await new Artifacts(home.dir, store).local(art);
  } catch (e) {
    throw new CliError(`${art.split('@')[0]}: ${(e as Error).message} (is PRUNEWISE_ARTIFACTS the store the campaign ran with?)`);
  }
  if (!fs.existsSync(path.join(src, 'model.json'))) throw new CliError(`${src} is missing (was the campaign's artifacts folder moved?)`);
  const out = path.resolve(opts.out);
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0 && !fs.existsSync(path.join(out, 'model.json'))) {
    throw new CliError(`--out: ${out} exists and is not an exported model: give a new or empty folder`);
  }
  // without --format: the variant the candidate deploys (like with like: its bytes and accuracy are the ones shown)
  const format: ExportFormat = opts.format ?? (metricMap(db, runId, round).deployedInt8 === 1 ? 'uint8' : 'tfjs');
  if (!opts.format) opts.log(`format ${format}: the variant round ${round} deploys (give --format for another)`);
  const backend = (await initBackend()).name;
  const spec = JSON.parse(run.specJson) as CampaignSpec;
  const model = await loadModel(src);
  try {
    const saved = await saveExport(model, out, format);
    const float32Bytes = fs.statSync(path.join(src, 'weights.bin')).size;
    opts.log(`measuring test accuracy of the written weights (${backend})…`);
    const ds = loadDataset(spec.dataset, spec.seed);
    const written = await loadModel(out);
    const accuracy = (await evaluate(written, ds.test)).accuracy;
    written.dispose();
    const float32Accuracy = (await evaluate(model, ds.test)).accuracy;
    const result: ExportResult = { runId, round, format, out, bytes: saved.bytes, float32Bytes, accuracy, float32Accuracy, backend };
    writeFileAtomic(
      path.join(out, 'prunewise.json'),
      JSON.stringify(
        {
          version: PRUNEWISE_JSON_VERSION,
          ...result,
          accuracy: { value: accuracy, measured: true, split: 'test', backend },
          float32Accuracy: { value: float32Accuracy, measured: true, split: 'test', backend },
          campaign: run.campaignId,
          sha256: saved.sha256,
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
