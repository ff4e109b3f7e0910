// bench:bigmodel — a big model on the native backend: MobileNetV2 (Sandler et al. 2018), width 1.0,
// input 224×224×3, 1000 classes (3.5 M parameters: the standard 17 inverted residual blocks,
// expansion 6, depthwise 3×3, batch norm, ReLU6), built with tfjs-layers and trained with the
// project's own loop (ml/train.ts: Adam, batch norm per 32-example shard) at batch 32 on synthetic
// random images (no ImageNet here, and no pretrained weights: the weights start from their
// initialisers, so this times fine-tuning steps, not accuracy). Reports seconds per batch (median,
// spread over the timed batches, after warm-up) and the process's peak RSS (maxRSS), which must
// stay well inside the machine's memory. PRUNEWISE_BACKEND picks another backend (default
// tensorflow, forced: an error if it cannot start); BENCH_BATCHES (10), BENCH_WARMUP (2), BENCH_CLASSES
// (1000) and BENCH_SHARD_SIZE (32: memory follows the shard) change the run. Prints a table, then one JSON line.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as os from 'node:os';
import { initBackend, modelCost, train, TRAIN_SHARD_SIZE, type Split } from '../ml';
import { rng } from '../ml/random';

const BATCH = 32;
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const TIMED = Number(process.env.BENCH_BATCHES ?? 10);
const CLASSES = Number(process.env.BENCH_CLASSES ?? 1000);
const SIZE = 224;
/** examples per logical shard (ml/train.ts; campaigns use TRAIN_SHARD_SIZE = 32): a batch's shards run one after another, so memory follows the shard */
const SHARD = Number(process.env.BENCH_SHARD_SIZE ?? TRAIN_SHARD_SIZE);
/** distinct synthetic images: 4 batches, visited in shuffled order over as many epochs as needed */
const IMAGES = 4 * BATCH;

/** MobileNetV2 at width 1.0: (expansion t, output channels c, repeats n, first stride s) per stage. */
const STAGES: Array<[number, number, number, number]> = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

export function mobilenetV2(seed: number, size: number, classes: number): tfl.LayersModel {
  let k = 0;
  const he = () => tfl.initializers.heNormal({ seed: seed * 1000 + k++ });
  const bn = (name: string) => tfl.layers.batchNormalization({ name, momentum: 0.999, epsilon: 1e-3 });
  const relu6 = (name: string) => tfl.layers.reLU({ maxValue: 6, name });
  const input = tfl.input({ shape: [size, size, 3], name: 'input' });
  let x = tfl.layers
    .conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: he(), name: 'stem_conv' })
    .apply(input) as tfl.SymbolicTensor;
  x = relu6('stem_relu').apply(bn('stem_bn').apply(x)) as tfl.SymbolicTensor;
  let channels = 32;
  let block = 0;
  for (const [t, c, n, s] of STAGES) {
    for (let i = 0; i < n; i++) {
      const p = `block${++block}`;
      const stride = i === 0 ? s : 1;
      let y = x;
      if (t !== 1) {
        y = tfl.layers
          .conv2d({ filters: channels * t, kernelSize: 1, useBias: false, kernelInitializer: he(), name: `${p}_expand` })
          .apply(y) as tfl.SymbolicTensor;
        y = relu6(`${p}_expand_relu`).apply(bn(`${p}_expand_bn`).apply(y)) as tfl.SymbolicTensor;
      }
      y = tfl.layers
        .depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false, depthwiseInitializer: he(), name: `${p}_depthwise` })
        .apply(y) as tfl.SymbolicTensor;
      y = relu6(`${p}_depthwise_relu`).apply(bn(`${p}_depthwise_bn`).apply(y)) as tfl.SymbolicTensor;
      y = tfl.layers.conv2d({ filters: c, kernelSize: 1, useBias: false, kernelInitializer: he(), name: `${p}_project` }).apply(y) as tfl.SymbolicTensor;
      y = bn(`${p}_project_bn`).apply(y) as tfl.SymbolicTensor; // linear bottleneck: no activation
      x = stride === 1 && channels === c ? (tfl.layers.add({ name: `${p}_add` }).apply([x, y]) as tfl.SymbolicTensor) : y;
      channels = c;
    }
  }
  x = tfl.layers.conv2d({ filters: 1280, kernelSize: 1, useBias: false, kernelInitializer: he(), name: 'head_conv' }).apply(x) as tfl.SymbolicTensor;
  x = relu6('head_relu').apply(bn('head_bn').apply(x)) as tfl.SymbolicTensor;
  x = tfl.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({ units: classes, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: seed * 1000 + k++ }), name: 'out' })
    .apply(x) as tfl.SymbolicTensor;
  if (block !== 17) throw new Error(`MobileNetV2 has 17 inverted residual blocks, built ${block}`);
  return tfl.model({ inputs: input, outputs: out, name: 'mobilenet_v2' });
}

function syntheticImages(n: number, classes: number, seed: number): Split {
  const r = rng(seed);
  const x = new Float32Array(n * SIZE * SIZE * 3);
  for (let i = 0; i < x.length; i++) x[i] = r();
  const y = new Uint8Array(n);
  // Uint8Array labels: with 1000 classes, ids ≥ 256 cannot be stored; use the first 256 (the head still has `classes` outputs)
  for (let i = 0; i < n; i++) y[i] = Math.floor(r() * Math.min(classes, 256));
  return { x, y, n };
}

const quantile = (sorted: number[], q: number) => {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  return sorted[lo] + (sorted[Math.min(lo + 1, sorted.length - 1)] - sorted[lo]) * (pos - lo);
};

async function main(): Promise<void> {
  const t0 = performance.now();
  const info = await initBackend(process.env.PRUNEWISE_BACKEND ?? 'tensorflow');
  if (tf.getBackend() !== info.name) throw new Error(`asked for ${info.name}, running on ${tf.getBackend()}`);
  const model = mobilenetV2(1, SIZE, CLASSES);
  const cost = modelCost(model);
  const data = syntheticImages(IMAGES, CLASSES, 7);
  const rssBefore = process.memoryUsage().rss;
  const steps = WARMUP + TIMED;
  const seconds: number[] = [];
  const rssAfterStep: number[] = [];
  let last = performance.now();
  process.stderr.write(`MobileNetV2 ${cost.params} params, ${(cost.flops / 1e6).toFixed(0)} MFLOPs per image; ${steps} batches of ${BATCH} on ${info.name}…\n`);
  await train(model, data, {
    epochs: Math.ceil((steps * BATCH) / IMAGES),
    batchSize: BATCH,
    learningRate: 1e-4,
    seed: 3,
    shardSize: SHARD,
    onStep: (step, _total, loss) => {
      const now = performance.now();
      seconds.push((now - last) / 1000);
      rssAfterStep.push(process.memoryUsage().rss);
      process.stderr.write(
        `batch ${step}: ${((now - last) / 1000).toFixed(2)} s, loss ${loss?.toFixed(3)}, rss ${(rssAfterStep.at(-1)! / 2 ** 30).toFixed(2)} GiB\n`,
      );
      if (step >= steps) throw new StopBench();
      last = performance.now();
    },
  }).catch((e) => {
    if (!(e instanceof StopBench)) throw e;
  });
  const timed = seconds.slice(WARMUP).sort((a, b) => a - b);
  const peakRss = process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB, before the profiled batch below
  // one more batch under tf.profile (not timed): the peak of the tensor bytes tfjs counts, to set against
  // RSS. An upper bound: tfjs counts each tensor's bytes, also where the native backend shares one
  // buffer between tensors (reshapes, identities), so it can exceed what the process holds.
  const profile = await tf.profile(async () => {
    await train(
      model,
      { x: data.x!.subarray(0, BATCH * SIZE * SIZE * 3), y: data.y.subarray(0, BATCH), n: BATCH },
      { epochs: 1, batchSize: BATCH, learningRate: 1e-4, seed: 4, shardSize: SHARD },
    );
    return [];
  });
  const peakRssAfterProfile = process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB
  const gib = (b: number) => b / 2 ** 30;
  const load = os.loadavg();
  const r = {
    bench: 'bigmodel',
    model: 'mobilenet-v2-1.0',
    input: [SIZE, SIZE, 3],
    classes: CLASSES,
    params: cost.params,
    flopsPerImage: cost.flops,
    data: 'synthetic random images',
    backend: info.name,
    library: info.library ?? null,
    batchSize: BATCH,
    shardSize: SHARD,
    warmupBatches: WARMUP,
    timedBatches: timed.length,
    secondsPerBatchMedian: quantile(timed, 0.5),
    secondsPerBatchMin: timed[0],
    secondsPerBatchMax: timed.at(-1)!,
    firstBatchSeconds: seconds[0],
    imagesPerSecond: BATCH / quantile(timed, 0.5),
    peakRssGiB: gib(peakRss),
    peakRssWithProfiledBatchGiB: gib(peakRssAfterProfile),
    peakTensorBytesCountedGiB: gib(profile.peakBytes),
    kernelsPerBatch: profile.kernels.length,
    rssBeforeTrainingGiB: gib(rssBefore),
    rssLastBatchGiB: gib(rssAfterStep.at(-1)!),
    tfjsTensorBytesGiB: gib(tf.memory().numBytes),
    memoryGiB: gib(os.totalmem()),
    loadAverage: load,
    cores: os.cpus().length,
    seconds: (performance.now() - t0) / 1000,
  };
  const f = (v: number, d = 2) => v.toFixed(d);
  console.log(
    `bench:bigmodel — MobileNetV2 1.0 (17 inverted residual blocks, expansion 6, ReLU6, batch norm), 224×224×3, ${CLASSES} classes, ${cost.params} params, ${f(cost.flops / 1e6, 0)} MFLOPs/image; ` +
      `synthetic random images; training steps (Adam) at batch ${BATCH} (batch norm per shard of ${SHARD}) on ${info.name}${info.library ? ` (${info.library})` : ''}, TF_DETERMINISTIC_OPS=${process.env.TF_DETERMINISTIC_OPS ?? 'unset'}; ${f(r.seconds, 0)} s in all`,
  );
  console.log(`${'measure'.padEnd(36)}${'value'.padStart(12)}`);
  const row = (k: string, v: string) => console.log(`${k.padEnd(36)}${v.padStart(12)}`);
  row('first batch (s)', f(r.firstBatchSeconds));
  row(`s/batch, median of ${timed.length} (after ${WARMUP})`, f(r.secondsPerBatchMedian));
  row('s/batch, min', f(r.secondsPerBatchMin));
  row('s/batch, max', f(r.secondsPerBatchMax));
  row('images/s (median)', f(r.imagesPerSecond, 1));
  row('peak RSS (GiB, maxRSS)', f(r.peakRssGiB));
  row('peak tensor bytes tfjs counts (GiB)', f(r.peakTensorBytesCountedGiB));
  row('RSS before training (GiB)', f(r.rssBeforeTrainingGiB));
  row('RSS after last batch (GiB)', f(r.rssLastBatchGiB));
  row('tfjs tensors held after (GiB)', f(r.tfjsTensorBytesGiB));
  row('machine memory (GiB)', f(r.memoryGiB, 1));
  console.log(
    '  the memory is the eager gradient tape: every intermediate of the forward pass is kept for the backward pass (tf.profile counts it, shared buffers more than once); after each batch only the weights and optimizer state remain as tensors, but RSS stays near its peak (the allocator keeps the freed memory for the next batch)',
  );
  console.log(`  load average at the end (${r.cores} cores, shared with other work): ${load.map((l) => l.toFixed(1)).join(' ')}`);
  console.log(JSON.stringify(r));
  model.dispose();
}

class StopBench extends Error {}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
