// Checks of "numbers a user can trust" on a finished campaign (called from the e2e tests):
// one latency per model everywhere, and deployable folders that stock tfjs loads.
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import type { ParetoSummary } from '../analysis';
import { speedupOf } from '../core';
import { loadDataset, type DatasetSpec } from '../ml/data';

interface Round {
  round: number;
  metrics: Record<string, number>;
}
interface Status {
  id: string;
  baseline: Record<string, number>;
  runs: Array<{ id: string; k: number; rounds: Round[] }>;
}

/**
 * Every completed round's latency is ONE number: `status --json`, `status` (text), `pareto --json`
 * and the deployable's prunewise.json agree exactly, and = the baseline's median ÷ the speedup used.
 */
export function expectOneLatency(home: string, status: Status, pareto: ParetoSummary, statusText: string): number {
  let checked = 0;
  for (const run of status.runs) {
    for (const rd of run.rounds) {
      const m = rd.metrics;
      if (m.speedup === undefined) continue;
      const s = speedupOf(m)!;
      const fromStatus = m.latencyMs;
      const point = pareto.points.find((p) => p.runId === run.id && p.round === rd.round)!;
      const manifest = JSON.parse(
        fs.readFileSync(path.join(home, 'artifacts', status.id, `run-${run.k}`, `round-${rd.round}`, 'deployable', 'prunewise.json'), 'utf8'),
      );
      expect(point.values.latencyMs).toBe(fromStatus);
      expect(manifest.latencyMs.value).toBe(fromStatus);
      expect(manifest.latencyMs.baselineMedianMs).toBe(status.baseline.latencyMs);
      expect(pareto.baseline.latencyMs).toBe(status.baseline.latencyMs);
      // speedup = baseline latency / model latency (the speedup J uses: 1 when its interval contains 1)
      expect(status.baseline.latencyMs / fromStatus).toBeCloseTo(s.value, 12);
      // the measured speedup comes with its interval and the pairs behind it
      expect(m.speedupLow).toBeLessThanOrEqual(m.speedup);
      expect(m.speedupHigh).toBeGreaterThanOrEqual(m.speedup);
      expect(m.latencyPairs).toBeGreaterThanOrEqual(5);
      expect(manifest.speedupVsBaseline).toMatchObject({ value: m.speedup, low: m.speedupLow, high: m.speedupHigh, pairs: m.latencyPairs, usedAs: s.value });
      expect(manifest.speedupVsBaseline.approxBaseline).toBe(s.approxBaseline);
      // the raw per-stage median is kept apart, for debugging
      expect(m.latencyMsRaw).toBeGreaterThan(0);
      // the status table prints the same number
      expect(statusText).toContain(`round ${rd.round} completed`);
      expect(statusText).toContain(`latency ${fromStatus.toFixed(2)} ms (${s.approxBaseline ? '≈ baseline: ' : ''}speedup ${m.speedup.toFixed(2)}×`);
      checked++;
    }
  }
  return checked;
}

/** Top-1 accuracy of a folder loaded by stock @tensorflow/tfjs alone: model.json + its weight files, read here, `tf.io.fromMemory`. */
async function stockAccuracy(dir: string, x: Float32Array, y: Uint8Array, n: number, shape: number[]): Promise<number> {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const groups = json.weightsManifest as Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  const weightSpecs = groups.flatMap((g) => g.weights);
  const bytes = Buffer.concat(groups.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData: new Uint8Array(bytes).buffer }));
  try {
    const preds = tf.tidy(() => (model.predict(tf.tensor(x, [n, ...shape])) as tf.Tensor).argMax(-1).dataSync());
    let right = 0;
    for (let i = 0; i < n; i++) if (preds[i] === y[i]) right++;
    return right / n;
  } finally {
    model.dispose();
  }
}

/**
 * Every deployable folder (and every round's 8-bit variant) loads in stock tfjs, and its test
 * accuracy is the recorded one (`deployedAccuracy`; `int8Accuracy` for the uint8 variant).
 */
export async function expectDeployablesLoadInStockTfjs(home: string, status: Status, spec: { dataset: DatasetSpec; seed: number }): Promise<string[]> {
  await tf.setBackend('cpu');
  const ds = loadDataset(spec.dataset, spec.seed);
  const { x, y, n } = ds.test as Required<typeof ds.test>;
  const tolerance = 1.5 / n; // another backend may flip one tie
  const dtypes: string[] = [];
  for (const run of status.runs) {
    for (const rd of run.rounds) {
      if (rd.metrics.deployedAccuracy === undefined) continue;
      const roundDir = path.join(home, 'artifacts', status.id, `run-${run.k}`, `round-${rd.round}`);
      const manifest = JSON.parse(fs.readFileSync(path.join(roundDir, 'deployable', 'prunewise.json'), 'utf8'));
      expect(manifest.dtype).toBe(rd.metrics.deployedInt8 === 1 ? 'uint8' : 'float32');
      expect(manifest.loader).toMatch(/^@tensorflow\/tfjs loadLayersModel/);
      expect(manifest.accuracy).toMatchObject({ value: rd.metrics.deployedAccuracy, measured: true });
      // the input contract: how the deployment scales pixels (the dataset's, as measured)
      expect(manifest.version).toBe(2);
      expect(manifest.input).toMatchObject({ shape: ds.shape, a: ds.input.a, b: ds.input.b, from: ds.input.from, task: 'classification' });
      dtypes.push(manifest.dtype);
      expect(Math.abs((await stockAccuracy(path.join(roundDir, 'deployable'), x, y, n, ds.shape)) - rd.metrics.deployedAccuracy)).toBeLessThanOrEqual(
        tolerance,
      );
      if (rd.metrics.int8Accuracy !== undefined) {
        expect(Math.abs((await stockAccuracy(path.join(roundDir, 'uint8'), x, y, n, ds.shape)) - rd.metrics.int8Accuracy)).toBeLessThanOrEqual(tolerance);
        // the per-channel variant says it is not deployable, and which loader it needs
        const pc = JSON.parse(fs.readFileSync(path.join(roundDir, 'int8-per-channel', 'prunewise.json'), 'utf8'));
        expect(pc).toMatchObject({ dtype: 'int8-per-channel', deployable: false });
        expect(pc.loader).toMatch(/^prunewise only/);
      }
    }
  }
  return dtypes;
}
