// npm run bench:reconstruct -- <baseline model dir> <FLOPs fraction> [fit images]: one-shot FPGM pruning (local, uniform,
// roundTo 8 adaptive) of a trained baseline to a FLOPs target, test accuracy WITHOUT any fine-tuning: plainly pruned,
// after adaptive batch norm (EagleEye), and after least-squares reconstruction (ml/reconstruct.ts) with and without it.
// The README's eighth ablation ran it on bench:quality's cached vgg-small baseline (bench/.quality-cache/vgg-small-*).
// A table for people, then one JSON line.
import {
  adaptBatchNorm,
  analyze,
  evaluate,
  initBackend,
  loadDataset,
  loadModel,
  modelCost,
  planForFlops,
  pruneModel,
  reconstructOnSplit,
  scoreGroups,
} from '../ml';

const FASHION = '/usr/share/datasets/fashion-mnist';

async function main() {
  const [dir, frac, fit] = process.argv.slice(2);
  const fraction = Number(frac);
  const nFit = Number(fit ?? 512);
  if (!dir || !(fraction > 0 && fraction < 1) || !(Number.isInteger(nFit) && nFit > 0))
    throw new Error('usage: npm run bench:reconstruct -- <trained Fashion-MNIST model dir> <fraction of FLOPs to remove, in (0, 1)> [fit images, default 512]');
  const backend = (await initBackend()).name;
  const ds = loadDataset({ name: 'fashion-mnist', dir: FASHION, validationFraction: 0.1 }, 1);
  if (nFit > ds.train.n) throw new Error(`fit images: at most ${ds.train.n} (the training split)`);
  const train = ds.train; // the fit and batch-norm images: the first of the training split
  const base = await loadModel(dir);
  const graph = analyze(base);
  const scores = scoreGroups(base, 'fpgm', { seed: 1 }, graph);
  const { plan, flopsRemoved } = await planForFlops(base, graph, scores, fraction, 'local', { minUnits: 2, roundTo: 8, roundToAdaptive: true, maxRatio: 0.95 });
  const acc = async (m: Awaited<ReturnType<typeof loadModel>>) => (await evaluate(m, ds.test)).accuracy;
  const per = train.x!.length / train.n;
  const bnData = { ...train, n: 2048, x: train.x!.subarray(0, 2048 * per), y: train.y.subarray(0, 2048) };
  const plain = await pruneModel(base, plan, graph);
  const rec = await pruneModel(base, plan, graph);
  const t0 = performance.now();
  const layers = await reconstructOnSplit(
    base,
    rec,
    plan,
    train,
    Array.from({ length: nFit }, (_, i) => i),
    graph,
  );
  const seconds = (performance.now() - t0) / 1000;
  const r = { baseline: await acc(base), plain: await acc(plain), reconstructed: await acc(rec), plainBn: 0, reconstructedBn: 0 };
  await adaptBatchNorm(plain, bnData);
  await adaptBatchNorm(rec, bnData);
  r.plainBn = await acc(plain);
  r.reconstructedBn = await acc(rec);
  const pc = (x: number) => `${(x * 100).toFixed(2)} %`;
  console.log(
    `bench:reconstruct — ${dir}, FPGM one-shot to ${(flopsRemoved * 100).toFixed(1)} % fewer FLOPs (${modelCost(plain).flops} left), no fine-tuning; test accuracy on ${ds.test.n} images; ${backend}`,
  );
  console.log(
    `widths kept: ${Object.entries(plan)
      .map(([k, v]) => `${k} ${v.length}`)
      .join(', ')}`,
  );
  console.log(`baseline                         ${pc(r.baseline)}`);
  console.log(`plainly pruned                   ${pc(r.plain)}`);
  const hasBn = base.layers.some((l) => l.getClassName() === 'BatchNormalization');
  const bn = (x: number) => (hasBn ? pc(x) : 'n/a: no BatchNormalization layers');
  console.log(`  + adaptive batch norm          ${bn(r.plainBn)}`);
  console.log(`reconstructed (${nFit} images, ${seconds.toFixed(1)} s)  ${pc(r.reconstructed)}`);
  console.log(`  + adaptive batch norm          ${bn(r.reconstructedBn)}`);
  for (const l of layers)
    console.log(
      l.skipped
        ? `  ${l.layer}: not reconstructed (${l.skipped})`
        : `  ${l.layer}: relative output error on the fit images ${l.before.toFixed(4)} → ${l.after.toFixed(4)}`,
    );
  console.log(JSON.stringify({ model: dir, flopsRemoved, fitImages: nFit, backend, accuracy: r, seconds, layers }));
}
main().catch((e) => {
  console.error((e as Error).message);
  process.exit(1);
});
