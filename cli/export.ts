// `prunewise export`: writes any candidate model (a run's round, or the baseline) for deployment,
// as float32 tfjs or quantized (uint8 / float16) weights that stock tfjs loads, and measures the
// test accuracy of exactly the weights written.
import * as fs from 'node:fs';
import * as path from 'node:path';
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
  const src = path.join(home.dir, art);
  if (!fs.existsSync(path.join(src, 'model.json'))) throw new CliError(`${src} is missing (was the campaign's artifacts folder moved?)`);
  const out = path.resolve(opts.out);
  checkOutDir(home, out);
  // without --format: the variant the candidate deploys (like with like: its bytes and accuracy are the ones shown)
  const format: ExportFormat = opts.format ?? (metricMap(db, runId, round).deployedInt8 === 1 ? 'uint8' : 'tfjs');
  if (!opts.format) opts.log(`format ${format}: the variant round ${round} deploys (give --format for another)`);
  const backend = (await initBackend()).name;
  const spec = JSON.parse(run.specJson) as CampaignSpec;
  const model = await loadModel(src);
  try {
    checkOutDir(home, out); // again: a file put there since the first check is never replaced
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
