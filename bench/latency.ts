// bench:latency — how well the frozen per-layer latency table (ml/latency-table.ts) predicts
// whole-model latency. For each zoo net (lenet5, vgg-small, resnet8, mobilenet-small, 28×28×1
// input, 10 classes): the table is measured once for the unpruned net (as a campaign does after
// its baseline: minUnits 4, roundTo 1), then VARIANTS pruned variants with random channel counts
// per group (uniform in [minUnits, size], seeded) are built; each variant's latency is predicted by
// the table and measured — median of RUNS forward passes at batch 32, all variants and the
// unpruned net timed side by side (alternating), in two separate sessions whose medians are
// averaged (their disagreement is the measurement's own noise, reported as repeatability).
// Error = |predicted − measured| / measured. On a shared machine the load drifts between the
// table's measurement and the bench's, so the bench also reports the error of the predicted
// latency RELATIVE to the unpruned net (predicted ratio variant/unpruned vs the measured one, timed
// side by side): what allocation uses (ΔJ divides predicted deltas by the predicted baseline).
// Prints a table, then one JSON line.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  analyze,
  buildPrunedArchitecture,
  buildZooModel,
  initBackend,
  measureLatencyInterleaved,
  measureSpeedup,
  forward,
  inputShapeOf,
  measureLatencyTable,
  predictLatencyMs,
  type KeepPlan,
} from '../ml';
import { rng } from '../ml/random';

const QUICK = process.env.BENCH_QUICK === '1';
const NETS = ['lenet5', 'vgg-small', 'resnet8', 'mobilenet-small'];
const BATCH = 32;
const VARIANTS = QUICK ? 2 : 6;
const RUNS = QUICK ? 5 : 25;
const TABLE_RUNS = QUICK ? 3 : 11;
const GRID = { minUnits: 4, roundTo: 1, maxPoints: 6 };

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (x: number) => `${x.toFixed(1)} %`;

/**
 * Pairs timed in this process on the backend that timed the table (the campaign times them on its
 * runtime, ml/runtime.ts; here the point is how wide the estimator's interval ends up).
 */
function inProcessPairs(model: tfl.LayersModel, baseline: tfl.LayersModel, batch: number) {
  const xb = tf.randomUniform([batch, ...inputShapeOf(baseline)], 0, 1, 'float32', 7);
  const xm = tf.randomUniform([batch, ...inputShapeOf(model)], 0, 1, 'float32', 7);
  const once = async (m: tfl.LayersModel, x: tf.Tensor) => {
    const t0 = performance.now();
    const y = forward(m, x);
    await y.data();
    y.dispose();
    return performance.now() - t0;
  };
  return {
    warmup: async (n: number) => {
      for (let i = 0; i < n; i++) (await once(baseline, xb), await once(model, xm));
    },
    pair: async (i: number): Promise<[number, number]> => {
      if (i % 2 === 0) {
        const b = await once(baseline, xb);
        return [b, await once(model, xm)];
      }
      const c = await once(model, xm);
      return [await once(baseline, xb), c];
    },
  };
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const t00 = performance.now();
  const random = rng(2024);
  const rows: Array<{ net: string; variant: string; predicted: number; measured: number; errorPct: number; relErrorPct: number; repeatPct: number }> = [];
  const speedups: Array<{ net: string; halfWidth: number; pairs: number; stoppedBy: string }> = [];
  const perNet: Record<
    string,
    { medianPct: number; maxPct: number; relativeMedianPct: number; tableSeconds: number; entries: number; points: number; overheadMs: number }
  > = {};
  for (const net of NETS) {
    const model = buildZooModel(net, 1, [28, 28, 1], 10);
    const graph = analyze(model);
    const t0 = performance.now();
    const table = await measureLatencyTable(model, graph, {
      backend: backend.name,
      target: 'local',
      batchSize: BATCH,
      tfjsVersion: backend.tfjsVersion,
      grid: GRID,
      warmupRuns: 2,
      runs: TABLE_RUNS,
    });
    const tableSeconds = (performance.now() - t0) / 1000;
    const variants: Array<{ name: string; model: tfl.LayersModel }> = [{ name: 'unpruned', model }];
    for (let v = 0; v < VARIANTS; v++) {
      const plan: KeepPlan = {};
      const counts: string[] = [];
      for (const g of graph.groups) {
        const lo = Math.min(g.size, GRID.minUnits);
        const n = lo + Math.floor(random() * (g.size - lo + 1));
        if (n < g.size) plan[g.name] = Array.from({ length: n }, (_, i) => i);
        counts.push(`${n}`);
      }
      variants.push({ name: counts.join('/'), model: await buildPrunedArchitecture(model, plan, graph) });
    }
    const predicted = variants.map((v) => predictLatencyMs(v.model, table).totalMs);
    const a = await measureLatencyInterleaved(
      variants.map((v) => v.model),
      BATCH,
      3,
      RUNS,
    );
    const b = await measureLatencyInterleaved(
      variants.map((v) => v.model),
      BATCH,
      3,
      RUNS,
    );
    const errs: number[] = [];
    const rel: number[] = [];
    const measuredBase = (a[0].medianMs + b[0].medianMs) / 2;
    variants.forEach((v, i) => {
      const measured = (a[i].medianMs + b[i].medianMs) / 2;
      const errorPct = (100 * Math.abs(predicted[i] - measured)) / measured;
      const ratioPred = predicted[i] / predicted[0];
      const ratioMeas = measured / measuredBase;
      const relErrorPct = (100 * Math.abs(ratioPred - ratioMeas)) / ratioMeas;
      const repeatPct = (100 * Math.abs(a[i].medianMs - b[i].medianMs)) / measured;
      if (i > 0) {
        errs.push(errorPct);
        rel.push(relErrorPct);
      }
      rows.push({ net, variant: v.name, predicted: predicted[i], measured, errorPct, relErrorPct, repeatPct });
    });
    // the paired speedup each candidate's reported latency comes from: how wide its 95 % interval ends up
    for (const v of variants.slice(1)) {
      const e = await measureSpeedup(inProcessPairs(v.model, model, BATCH), {
        name: 'local',
        batchSize: BATCH,
        warmupRuns: 2,
        latencyRuns: 30,
        speedupCi: 0.05,
        latencyBudgetSeconds: 10,
      });
      speedups.push({ net, halfWidth: e.halfWidth, pairs: e.pairs, stoppedBy: e.stoppedBy });
    }
    perNet[net] = {
      medianPct: +median(errs).toFixed(2),
      maxPct: +Math.max(...errs).toFixed(2),
      relativeMedianPct: +median(rel).toFixed(2),
      tableSeconds: +tableSeconds.toFixed(1),
      entries: table.entries.length,
      points: table.entries.reduce((s, e) => s + e.cin.length * Math.max(1, e.cout.length), 0),
      overheadMs: table.overheadMs,
    };
    for (const v of variants) v.model.dispose();
  }

  console.log(`latency table vs measured whole-model latency — backend ${backend.name}, batch ${BATCH}, ${VARIANTS} random variants per net`);
  console.log(
    `table: layer by layer, ${TABLE_RUNS} timings per grid point (median), ≤ ${GRID.maxPoints} counts per channel axis, linear/bilinear interpolation`,
  );
  console.log(`measured: median of ${RUNS} side by side, two sessions averaged; repeat = |session A − session B| / measured`);
  console.log('');
  console.log('relative = error of the predicted latency ratio to the unpruned net (measured side by side); ms at batch 32');
  console.log(
    `${'net'.padEnd(16)} ${'channels per group'.padEnd(34)} ${'predicted'.padStart(10)} ${'measured'.padStart(10)} ${'error'.padStart(8)} ${'relative'.padStart(9)} ${'repeat'.padStart(8)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.net.padEnd(16)} ${r.variant.slice(0, 34).padEnd(34)} ${r.predicted.toFixed(3).padStart(10)} ${r.measured.toFixed(3).padStart(10)} ${pct(r.errorPct).padStart(8)} ${pct(r.relErrorPct).padStart(9)} ${pct(r.repeatPct).padStart(8)}`,
    );
  }
  console.log('');
  for (const [net, s] of Object.entries(perNet))
    console.log(
      `${net.padEnd(16)} median error ${pct(s.medianPct)}, max ${pct(s.maxPct)}, relative ${pct(s.relativeMedianPct)}; table ${s.entries} entries, ${s.points} points, ${s.tableSeconds} s, overhead ${s.overheadMs} ms`,
    );
  console.log(
    `paired speedup (ci target 0.05, budget 10 s per candidate): median half-width ${median(speedups.map((x) => x.halfWidth)).toFixed(4)}, median ${median(speedups.map((x) => x.pairs))} pairs, ${speedups.filter((x) => x.stoppedBy !== 'ci').length} of ${speedups.length} stopped by the budget`,
  );
  const variantRows = rows.filter((r) => r.variant !== 'unpruned');
  const out = {
    bench: 'latency',
    backend: backend.name,
    batchSize: BATCH,
    variantsPerNet: VARIANTS,
    tableErrorMedianPct: +median(variantRows.map((r) => r.errorPct)).toFixed(2),
    tableErrorP90Pct: +variantRows
      .map((r) => r.errorPct)
      .sort((x, y) => x - y)
      [Math.floor(0.9 * (variantRows.length - 1))].toFixed(2),
    relativeErrorMedianPct: +median(variantRows.map((r) => r.relErrorPct)).toFixed(2),
    measurementRepeatMedianPct: +median(variantRows.map((r) => r.repeatPct)).toFixed(2),
    // half-width of the 95 % interval of log(speedup) (≈ ± fraction), target ≤ 0.05 (campaign default speedupCi)
    speedupCiHalfWidthMedian: +median(speedups.map((x) => x.halfWidth)).toFixed(4),
    speedupPairsMedian: median(speedups.map((x) => x.pairs)),
    speedupStoppedByBudget: speedups.filter((x) => x.stoppedBy !== 'ci').length,
    perNet,
    seconds: +((performance.now() - t00) / 1000).toFixed(1),
  };
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
