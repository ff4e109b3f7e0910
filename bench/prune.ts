// bench:prune — pruning quality on Fashion-MNIST (official split; accuracies on the 10 000 test
// images): LeNet-5 trained to a baseline, then each criterion at 30 / 50 / 70 % of the FLOPs
// removed (iterative: linear schedule over 3 rounds, fine-tuning after each — the last round on the
// whole training split), the best criterion
// and random over 3 seeds at 50 %, and the small VGG on a 20 000-image subset (l1, random at 50 %).
// Latency is measured here (batch 32, on the backend named); each speedup times the pruned model
// and the baseline side by side, alternating (median of 60 each), since this machine drifts.
// Prints a table, then one JSON line.
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  analyze,
  buildZooModel,
  evaluate,
  initBackend,
  loadDataset,
  loadModel,
  measureLatency,
  measureLatencyInterleaved,
  modelCost,
  planForFlops,
  pruneModel,
  saveModel,
  scheduledReduction,
  scoreGroups,
  subset,
  train,
  type Criterion,
  type Dataset,
  type Split,
} from '../ml';
import { shuffledIndices } from '../ml/random';

const QUICK = process.env.BENCH_QUICK === '1'; // a smoke run: tiny budgets, same code path
const ROUNDS = 3;
const LATENCY_BATCH = 32;

interface NetConfig {
  net: string;
  trainLimit?: number;
  baselineEpochs: number;
  /** images per fine-tuning round; the last round fine-tunes on `lastRoundSamples` */
  finetuneSamples: number;
  lastRoundSamples: number;
  criteria: Criterion[];
  levels: number[];
  seedsAt50: Criterion[];
}

const CONFIGS: NetConfig[] = [
  {
    net: 'lenet5',
    baselineEpochs: QUICK ? 1 : 4,
    finetuneSamples: QUICK ? 1000 : 20000,
    lastRoundSamples: QUICK ? 1000 : 54000,
    criteria: ['l1', 'taylor', 'fpgm', 'random'],
    levels: [0.3, 0.5, 0.7],
    seedsAt50: ['random'],
  },
  {
    net: 'vgg-small',
    trainLimit: QUICK ? 2000 : 20000,
    baselineEpochs: QUICK ? 1 : 2,
    finetuneSamples: QUICK ? 500 : 8000,
    lastRoundSamples: QUICK ? 500 : 18000,
    criteria: ['l1', 'random'],
    levels: [0.5],
    seedsAt50: [],
  },
];

interface Measured {
  accuracy: number;
  flops: number;
  params: number;
  latencyMs: number;
}

async function measure(model: tfl.LayersModel, ds: Dataset): Promise<Measured> {
  const acc = await evaluate(model, ds.test);
  const cost = modelCost(model);
  const lat = await measureLatency(model, LATENCY_BATCH, 5, 30);
  return { accuracy: acc.accuracy, flops: cost.flops, params: cost.params, latencyMs: lat.medianMs };
}

function sample(split: Split, n: number, seed: number): Split {
  return subset(split, shuffledIndices(split.n, seed).subarray(0, Math.min(n, split.n)));
}

async function pruneIteratively(baselineDir: string, ds: Dataset, cfg: NetConfig, criterion: Criterion, target: number, seed: number) {
  let model = await loadModel(baselineDir);
  const base = modelCost(model).flops;
  for (let round = 1; round <= ROUNDS; round++) {
    const goal = 1 - (1 - scheduledReduction('linear', target, round, ROUNDS)) * (base / modelCost(model).flops);
    const graph = analyze(model);
    const scores = scoreGroups(model, criterion, { seed: seed * 100 + round, calibration: ds.val, calibrationBatches: 8, batchSize: 64 }, graph);
    const { plan } = await planForFlops(model, graph, scores, goal, 'local', { minUnits: 2, maxRatio: 0.9 });
    const pruned = await pruneModel(model, plan, graph);
    model.dispose();
    model = pruned;
    await train(model, sample(ds.train, round === ROUNDS ? cfg.lastRoundSamples : cfg.finetuneSamples, seed * 1000 + round), {
      epochs: 1,
      batchSize: 64,
      learningRate: 5e-4,
      seed: seed + round,
    });
  }
  const m = await measure(model, ds);
  // the speedup: pruned and baseline timed side by side, alternating, in this same moment
  const baseline = await loadModel(baselineDir);
  const [lb, lp] = await measureLatencyInterleaved([baseline, model], LATENCY_BATCH, 10, 60);
  baseline.dispose();
  model.dispose();
  return { ...m, latencyMs: lp.medianMs, baselineLatencyMs: lb.medianMs };
}

async function main(): Promise<void> {
  // the backend chain (ml/backend.ts): native TensorFlow when its binding loads, else wasm; PRUNEWISE_BACKEND forces one
  const backend = await initBackend();
  const lib = backend.library ? ` (${backend.library})` : '';
  process.stderr.write(`bench:prune on backend ${backend.name}${lib}${backend.skipped.length ? `; skipped: ${backend.skipped.join('; ')}` : ''}\n`);
  const t0 = performance.now();
  const out: Record<
    string,
    { baseline: Measured; results: Array<Measured & { criterion: string; seed: number; target: number; flopsRemoved: number; speedup: number }> }
  > = {};
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-bench-prune-'));
  for (const cfg of CONFIGS) {
    const ds = loadDataset(
      {
        name: 'fashion-mnist',
        dir: '/usr/share/datasets/fashion-mnist',
        trainLimit: cfg.trainLimit,
        testLimit: QUICK ? 1000 : undefined,
        validationFraction: 0.1,
      },
      1,
    );
    const model = buildZooModel(cfg.net, 1, ds.shape, ds.classes);
    process.stderr.write(`${cfg.net}: training the baseline (${cfg.baselineEpochs} epochs × ${ds.train.n} images)…\n`);
    await train(model, ds.train, { epochs: cfg.baselineEpochs, batchSize: 64, learningRate: 1e-3, seed: 1 });
    const baselineDir = path.join(work, cfg.net);
    await saveModel(model, baselineDir);
    const baseline = await measure(model, ds);
    model.dispose();
    const results: (typeof out)[string]['results'] = [];
    const run = async (criterion: Criterion, level: number, seed: number) => {
      const m = await pruneIteratively(baselineDir, ds, cfg, criterion, level, seed);
      const { baselineLatencyMs, ...rest } = m;
      const r = { criterion, seed, target: level, flopsRemoved: 1 - m.flops / baseline.flops, ...rest, speedup: baselineLatencyMs / m.latencyMs };
      results.push(r);
      process.stderr.write(
        `${cfg.net} ${criterion} ${Math.round(level * 100)}% seed ${seed}: acc ${(m.accuracy * 100).toFixed(2)}% (${((performance.now() - t0) / 60000).toFixed(1)} min)\n`,
      );
    };
    for (const level of cfg.levels) for (const c of cfg.criteria) await run(c, level, 1);
    // at 50 %: the best criterion and random over three seeds
    const at50 = results.filter((r) => r.target === 0.5 && r.criterion !== 'random');
    const best = at50.sort((a, b) => b.accuracy - a.accuracy)[0]?.criterion as Criterion | undefined;
    if (best && cfg.seedsAt50.length > 0) {
      for (const c of [best, ...cfg.seedsAt50]) for (const seed of [2, 3]) await run(c, 0.5, seed);
    }
    out[cfg.net] = { baseline, results };
  }
  fs.rmSync(work, { recursive: true, force: true });

  const pct = (x: number) => `${(x * 100).toFixed(2)}`;
  console.log(
    `pruning quality on Fashion-MNIST (test split), backend ${backend.name}${lib}; latency measured at batch ${LATENCY_BATCH}; ${((performance.now() - t0) / 60000).toFixed(1)} min${QUICK ? ' (BENCH_QUICK smoke run)' : ''}`,
  );
  console.log(
    `${'net'.padEnd(10)}${'criterion'.padEnd(10)}${'seed'.padStart(5)}${'target'.padStart(8)}${'FLOPs −'.padStart(9)}${'acc %'.padStart(8)}${'Δ pts'.padStart(8)}${'params'.padStart(9)}${'lat ms'.padStart(9)}${'speedup'.padStart(9)}`,
  );
  for (const [net, r] of Object.entries(out)) {
    console.log(
      `${net.padEnd(10)}${'baseline'.padEnd(10)}${''.padStart(5)}${''.padStart(8)}${'0%'.padStart(9)}${pct(r.baseline.accuracy).padStart(8)}${''.padStart(8)}${String(r.baseline.params).padStart(9)}${r.baseline.latencyMs.toFixed(3).padStart(9)}${'1.00×'.padStart(9)}`,
    );
    for (const x of r.results) {
      console.log(
        `${net.padEnd(10)}${x.criterion.padEnd(10)}${String(x.seed).padStart(5)}${`${Math.round(x.target * 100)}%`.padStart(8)}${`${Math.round(x.flopsRemoved * 100)}%`.padStart(9)}${pct(x.accuracy).padStart(8)}${((x.accuracy - r.baseline.accuracy) * 100).toFixed(2).padStart(8)}${String(x.params).padStart(9)}${x.latencyMs.toFixed(3).padStart(9)}${`${x.speedup.toFixed(2)}×`.padStart(9)}`,
      );
    }
  }
  // mean and spread over seeds at 50 %, per criterion
  for (const [net, r] of Object.entries(out)) {
    const byCrit = new Map<string, number[]>();
    for (const x of r.results) if (x.target === 0.5) byCrit.set(x.criterion, [...(byCrit.get(x.criterion) ?? []), x.accuracy]);
    for (const [c, accs] of byCrit) {
      if (accs.length < 2) continue;
      const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
      console.log(`${net} ${c} at 50%: mean ${pct(mean)}%, spread ${((Math.max(...accs) - Math.min(...accs)) * 100).toFixed(2)} pts over ${accs.length} seeds`);
    }
  }
  console.log(
    JSON.stringify({ dataset: 'fashion-mnist', backend: backend.name, library: backend.library ?? null, latencyBatchSize: LATENCY_BATCH, nets: out }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
