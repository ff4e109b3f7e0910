// bench:recipes — the ablation that chose the fine-tuning recipe's defaults (campaign/schema.ts
// FINETUNE_DEFAULTS). LeNet-5 on Fashion-MNIST (official split; accuracy on the 10 000 test images):
// one baseline, then per lever and seed the same pruning — L1, local, linear schedule to 50 % of the
// FLOPs over 3 rounds, as a campaign's rounds do — and the same fine-tune budget in batches per round;
// only the recipe differs: plain (constant rate, hard labels), + cosine, + label smoothing,
// + distillation from the baseline, + the growing group-norm sparsity penalty (rounds 1–2, as the
// campaign default), and all of them. Also the accuracy right after each later round's pruning,
// before its fine-tuning: what the removed channels still carried. BENCH_QUICK=1: a smoke run on a
// subset, same code path. Prints a table, then one JSON line.
import type * as tfl from '@tensorflow/tfjs-layers';
import * as os from 'node:os';
import {
  FLOPS_SENSITIVITY_RATIOS,
  planForFlopsBySensitivity,
  analyze,
  buildZooModel,
  evaluate,
  measureSensitivity,
  initBackend,
  loadDataset,
  modelCost,
  planForFlops,
  scheduleOvershoot,
  pruneModel,
  scheduledReduction,
  scoreGroups,
  subset,
  train,
  type Criterion,
  type Dataset,
  type KeepPlan,
  type TrainOptions,
} from '../ml';
import { shuffledIndices } from '../ml/random';

const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = 3;
const TARGET = 0.5;
const BATCH = 64;
const LR = 5e-4;
const SEEDS = QUICK ? [1] : [1, 2, 3];
const BASELINE_EPOCHS = QUICK ? 1 : 4;
/** fine-tune budget in batches per round (the last round recovers longest) */
const ROUND_BATCHES = QUICK ? [8, 8, 16] : [150, 150, 600];

type Recipe = Pick<TrainOptions, 'schedule' | 'labelSmoothing' | 'distill' | 'sparsity'>;
interface Variant {
  name: string;
  recipe: (teacher: tfl.LayersModel, round: number) => Recipe;
  /** the pruning criterion (default l1): group-norm ranks by the same W_{g,k} the sparsity penalty pushes down */
  criterion?: Criterion;
  /** the plan's scope (default local: the same ratio in every group) */
  scope?: 'local' | 'global';
  /** layers whose groups are never pruned (the others lose more to reach the same FLOPs) */
  protect?: string[];
  /** sensitivity: each round's FLOPs spent where the measured validation error rises least (allocateForFlops) instead of the same ratio everywhere */
  allocation?: 'uniform' | 'sensitivity';
}
const SPARSITY = { strength: 0.5, growth: 2 };
const SPARSITY_LIGHT = { strength: 0.05, growth: 0.2 };
const DISTILL = { weight: 0.5, temperature: 4 };
const VARIANTS: Variant[] = [
  { name: 'plain', recipe: () => ({}) },
  { name: '+cosine', recipe: () => ({ schedule: { kind: 'cosine' } }) },
  { name: '+smoothing 0.1', recipe: () => ({ labelSmoothing: 0.1 }) },
  { name: `+distill α${DISTILL.weight} T${DISTILL.temperature}`, recipe: (teacher) => ({ distill: { teacher, ...DISTILL } }) },
  { name: `+sparsity λ${SPARSITY.strength}+${SPARSITY.growth}/ep`, recipe: (_t, round) => (round < ROUNDS ? { sparsity: SPARSITY } : {}) },
  {
    name: `+sparsity λ${SPARSITY_LIGHT.strength}+${SPARSITY_LIGHT.growth}/ep`,
    recipe: (_t, round) => (round < ROUNDS ? { sparsity: SPARSITY_LIGHT } : {}),
  },
  {
    name: '+cosine+smoothing+distill',
    recipe: (teacher) => ({ schedule: { kind: 'cosine' }, labelSmoothing: 0.1, distill: { teacher, ...DISTILL } }),
  },
  { name: 'plain (group-norm)', criterion: 'group-norm', recipe: () => ({}) },
  {
    name: `+sparsity λ${SPARSITY.strength} (group-norm)`,
    criterion: 'group-norm',
    recipe: (_t, round) => (round < ROUNDS ? { sparsity: SPARSITY } : {}),
  },
  {
    name: `+sparsity λ${SPARSITY_LIGHT.strength} (group-norm)`,
    criterion: 'group-norm',
    recipe: (_t, round) => (round < ROUNDS ? { sparsity: SPARSITY_LIGHT } : {}),
  },
  {
    name: `+distill+sparsity λ${SPARSITY_LIGHT.strength} (group-norm)`,
    criterion: 'group-norm',
    recipe: (teacher, round) => ({ distill: { teacher, ...DISTILL }, ...(round < ROUNDS ? { sparsity: SPARSITY_LIGHT } : {}) }),
  },
  { name: 'plain (global)', scope: 'global', recipe: () => ({}) },
  { name: `+distill α${DISTILL.weight} T${DISTILL.temperature} (global)`, scope: 'global', recipe: (teacher) => ({ distill: { teacher, ...DISTILL } }) },
  {
    name: `+distill α${DISTILL.weight} T${DISTILL.temperature} (conv1 kept)`,
    protect: ['conv1'],
    recipe: (teacher) => ({ distill: { teacher, ...DISTILL } }),
  },
  { name: 'plain (sensitivity)', allocation: 'sensitivity', recipe: () => ({}) },
  {
    name: `+distill α${DISTILL.weight} T${DISTILL.temperature} (sensitivity)`,
    allocation: 'sensitivity',
    recipe: (teacher) => ({ distill: { teacher, ...DISTILL } }),
  },
  {
    name: 'all',
    recipe: (teacher, round) => ({
      schedule: { kind: 'cosine' },
      labelSmoothing: 0.1,
      distill: { teacher, ...DISTILL },
      ...(round < ROUNDS ? { sparsity: SPARSITY } : {}),
    }),
  },
];

interface Result {
  variant: string;
  seed: number;
  accuracy: number;
  flopsRemoved: number;
  /** test accuracy (on a fixed 2 000-image subset) right after pruning, before fine-tuning, rounds 2 and 3 */
  afterPrune: number[];
  seconds: number;
}

async function run(baseline: tfl.LayersModel, ds: Dataset, v: Variant, seed: number, probe: Dataset['test'], val: Dataset['val']): Promise<Result> {
  const t0 = performance.now();
  const base = modelCost(baseline).flops;
  let model = await pruneModel(baseline, {}, analyze(baseline)); // a copy
  const afterPrune: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const goal = 1 - (1 - scheduledReduction('linear', TARGET, round, ROUNDS)) * (base / modelCost(model).flops);
    const graph = analyze(model);
    const scores = scoreGroups(model, v.criterion ?? 'l1', { seed }, graph);
    const planOptions = { minUnits: 2, maxRatio: 0.9, protect: v.protect ?? [] };
    let plan: KeepPlan;
    if (v.allocation === 'sensitivity') {
      const sens = await measureSensitivity(model, graph, scores, val, {
        ratios: FLOPS_SENSITIVITY_RATIOS,
        plan: planOptions,
        latencyBatchSize: 32,
        latencyRuns: 0,
        noLatency: true,
      });
      plan = (await planForFlopsBySensitivity(model, graph, sens, goal)).plan;
    } else {
      const overshoot = scheduleOvershoot(goal, TARGET, base / modelCost(model).flops, round === ROUNDS);
      plan = (await planForFlops(model, graph, scores, goal, v.scope ?? 'local', planOptions, overshoot)).plan;
    }
    const pruned = await pruneModel(model, plan, graph);
    model.dispose();
    model = pruned;
    if (round > 1) afterPrune.push((await evaluate(model, probe)).accuracy);
    await train(model, ds.train, {
      epochs: 1,
      steps: ROUND_BATCHES[round - 1],
      batchSize: BATCH,
      learningRate: LR,
      seed: seed * 100 + round,
      ...v.recipe(baseline, round),
    });
  }
  const accuracy = (await evaluate(model, ds.test)).accuracy;
  const flopsRemoved = 1 - modelCost(model).flops / base;
  model.dispose();
  return { variant: v.name, seed, accuracy, flopsRemoved, afterPrune, seconds: (performance.now() - t0) / 1000 };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const pts = (x: number) => (x * 100).toFixed(2);

async function main(): Promise<void> {
  const backend = await initBackend();
  const lib = backend.library ? ` (${backend.library})` : '';
  process.stderr.write(`bench:recipes on backend ${backend.name}${lib}\n`);
  const t0 = performance.now();
  const load0 = os.loadavg();
  const ds = loadDataset(
    {
      name: 'fashion-mnist',
      dir: '/usr/share/datasets/fashion-mnist',
      trainLimit: QUICK ? 3000 : undefined,
      testLimit: QUICK ? 1000 : undefined,
      validationFraction: 0.1,
    },
    1,
  );
  const probe = subset(ds.test, shuffledIndices(ds.test.n, 5).subarray(0, Math.min(2000, ds.test.n)));
  // the validation images sensitivity trials are scored on (never the test split)
  const sensitivityVal = subset(ds.val, shuffledIndices(ds.val.n, 6).subarray(0, Math.min(2000, ds.val.n)));
  const baseline = buildZooModel('lenet5', 1, ds.shape, ds.classes);
  process.stderr.write(`baseline: ${BASELINE_EPOCHS} epochs × ${ds.train.n} images…\n`);
  await train(baseline, ds.train, { epochs: BASELINE_EPOCHS, batchSize: BATCH, learningRate: 1e-3, seed: 1 });
  const baseAcc = (await evaluate(baseline, ds.test)).accuracy;
  process.stderr.write(`baseline test accuracy ${pts(baseAcc)} % (${((performance.now() - t0) / 60000).toFixed(1)} min)\n`);
  const results: Result[] = [];
  // RECIPES_VARIANTS=name,name: only these (the baseline is bit-identical across invocations on one backend, so tables combine)
  const only = process.env.RECIPES_VARIANTS?.split(',').map((x) => x.trim());
  const variants = only ? VARIANTS.filter((v) => only.includes(v.name)) : VARIANTS;
  if (only && variants.length !== only.length) throw new Error(`RECIPES_VARIANTS: use names among ${VARIANTS.map((v) => v.name).join(', ')}`);
  for (const seed of SEEDS)
    for (const v of variants) {
      const r = await run(baseline, ds, v, seed, probe, sensitivityVal);
      results.push(r);
      process.stderr.write(
        `${v.name} seed ${seed}: ${pts(r.accuracy)} % (${r.seconds.toFixed(0)} s; ${((performance.now() - t0) / 60000).toFixed(1)} min in all)\n`,
      );
    }
  baseline.dispose();
  const load1 = os.loadavg();

  const budget = ROUND_BATCHES.map((b) => b * BATCH);
  console.log(
    `fine-tuning recipes: LeNet-5, Fashion-MNIST (test split, ${ds.test.n} images), backend ${backend.name}${lib}; baseline ${BASELINE_EPOCHS} epochs at lr 1e-3 = ${pts(baseAcc)} %; ` +
      `L1 (unless the recipe names another criterion), local, linear to ${TARGET * 100} % FLOPs over ${ROUNDS} rounds; fine-tune per round ${ROUND_BATCHES.join(' / ')} batches of ${BATCH} (${budget.join(' / ')} samples), Adam lr ${LR}; ` +
      `${SEEDS.length} seed(s) (fine-tune data order); ${((performance.now() - t0) / 60000).toFixed(1)} min; load average ${load0.map((x) => x.toFixed(1)).join(' ')} → ${load1.map((x) => x.toFixed(1)).join(' ')} (2 cores, shared)${QUICK ? ' (BENCH_QUICK smoke run)' : ''}`,
  );
  console.log(
    `${'recipe'.padEnd(34)}${'FLOPs −'.padStart(8)}${'acc % (mean)'.padStart(14)}${'spread'.padStart(8)}${'Δ base'.padStart(8)}${'Δ plain'.padStart(9)}${'after-prune acc r2/r3'.padStart(23)}   per seed`,
  );
  const plainRuns = results.filter((r) => r.variant === 'plain').map((r) => r.accuracy);
  const plain = plainRuns.length ? mean(plainRuns) : NaN;
  const summary: Record<string, object> = {};
  for (const v of variants) {
    const rs = results.filter((r) => r.variant === v.name);
    const accs = rs.map((r) => r.accuracy);
    const m = mean(accs);
    const spread = Math.max(...accs) - Math.min(...accs);
    const ap = [0, 1].map((k) => mean(rs.map((r) => r.afterPrune[k])));
    summary[v.name] = {
      mean: m,
      spread,
      deltaBaseline: m - baseAcc,
      deltaPlain: m - plain,
      afterPrune: ap,
      accuracies: accs,
      flopsRemoved: rs[0].flopsRemoved,
    };
    console.log(
      `${v.name.padEnd(34)}${`${Math.round(rs[0].flopsRemoved * 100)}%`.padStart(8)}${pts(m).padStart(14)}${pts(spread).padStart(8)}${pts(m - baseAcc).padStart(8)}${(Number.isNaN(plain) ? '—' : pts(m - plain)).padStart(9)}${`${pts(ap[0])} / ${pts(ap[1])}`.padStart(23)}   ${accs.map(pts).join(' ')}`,
    );
  }
  console.log(
    JSON.stringify({
      bench: 'recipes',
      net: 'lenet5',
      dataset: 'fashion-mnist',
      backend: backend.name,
      library: backend.library ?? null,
      quick: QUICK,
      baselineAccuracy: baseAcc,
      protocol: {
        criterion: 'l1',
        scope: 'local',
        schedule: 'linear',
        target: TARGET,
        rounds: ROUNDS,
        roundBatches: ROUND_BATCHES,
        batchSize: BATCH,
        learningRate: LR,
        seeds: SEEDS,
      },
      recipes: summary,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
