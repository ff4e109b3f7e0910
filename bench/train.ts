// bench:train — training throughput (samples/s at batch 64) of zoo nets: our best CPU path vs
// pure-JS tfjs, side by side in one run (and PyTorch on the CPU when `import torch` works).
// Prints a table, then one JSON line: {"backend", "nets": {"<net>": {"ours", "purejs", "pytorch"}}}.
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { buildZooModel, defaultTrainThreads, initBackend, loadDataset, stopReplicas, subset, train } from '../ml';

const NETS = (process.env.BENCH_NETS ?? 'lenet5,vgg-small,resnet8,mobilenet-small').split(',');
const BATCH = 64;

async function samplesPerSecond(net: string, seconds: number, minSteps: number, warm: boolean, threads: number): Promise<number> {
  const ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 4096, testLimit: 64, validationFraction: 0.01 }, 1);
  const model = buildZooModel(net, 1, ds.shape, ds.classes);
  // warm-up: kernels compile, memory settles (skipped for pure JS, where one step takes minutes)
  if (warm)
    await train(
      model,
      subset(
        ds.train,
        Array.from({ length: BATCH * 2 }, (_, i) => i),
      ),
      { epochs: 1, batchSize: BATCH, learningRate: 1e-3, seed: 1, threads },
    );
  let steps = 0;
  const t0 = performance.now();
  const stopAt = t0 + seconds * 1000;
  await train(model, ds.train, {
    epochs: 50,
    batchSize: BATCH,
    learningRate: 1e-3,
    seed: 2,
    threads,
    onStep: () => {
      steps++;
      if (steps >= minSteps && performance.now() > stopAt) throw new StopBench();
    },
  }).catch((e) => {
    if (!(e instanceof StopBench)) throw e;
  });
  const sps = (steps * BATCH) / ((performance.now() - t0) / 1000);
  model.dispose();
  return sps;
}
class StopBench extends Error {}

// PRUNEWISE_PYTHON: an interpreter with torch (e.g. a venv), else python3 from PATH
const PYTHON = process.env.PRUNEWISE_PYTHON || 'python3';

function pytorch(net: string): number | null {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return null;
  const r = spawnSync(PYTHON, [`${__dirname}/../../bench/torch_train.py`, net, String(BATCH)], { encoding: 'utf8' });
  const v = Number(r.stdout.trim().split('\n').at(-1));
  return Number.isFinite(v) && v > 0 ? v : null;
}

async function main(): Promise<void> {
  const best = await initBackend();
  const threads = defaultTrainThreads();
  const rows: Record<string, { ours: number; oursOneThread: number; purejs: number; pytorch: number | null }> = {};
  for (const net of NETS) {
    await tf.setBackend(best.name === 'tensorflow-gpu' ? 'tensorflow' : best.name);
    const ours = await samplesPerSecond(net, 8, 5, true, threads);
    const oursOneThread = await samplesPerSecond(net, 8, 5, true, 1);
    await tf.setBackend('cpu');
    // stock tfjs: the cpu backend, one thread, as a user without prunewise would train
    const purejs = await samplesPerSecond(net, 8, 1, false, 1);
    rows[net] = { ours, oursOneThread, purejs, pytorch: pytorch(net) };
    process.stderr.write(`${net}: ${ours.toFixed(0)} (${oursOneThread.toFixed(0)} on one thread) vs ${purejs.toFixed(1)} samples/s\n`);
  }
  await stopReplicas();
  const fmt = (v: number | null) => (v === null ? '—' : v >= 100 ? v.toFixed(0) : v.toFixed(1));
  console.log(
    `training throughput, samples/s at batch ${BATCH}, Fashion-MNIST 28×28, measured (ours = ${best.name}, ${threads} data-parallel thread(s), and on one thread; pure JS = stock tfjs cpu backend)`,
  );
  console.log(
    `${'net'.padEnd(18)}${'ours'.padStart(10)}${'1 thread'.padStart(10)}${'pure JS'.padStart(10)}${'ratio'.padStart(9)}${'PyTorch'.padStart(10)}${'ours/PyTorch'.padStart(14)}`,
  );
  for (const [net, r] of Object.entries(rows)) {
    console.log(
      `${net.padEnd(18)}${fmt(r.ours).padStart(10)}${fmt(r.oursOneThread).padStart(10)}${fmt(r.purejs).padStart(10)}${`${(r.ours / r.purejs).toFixed(0)}×`.padStart(9)}${fmt(r.pytorch).padStart(10)}${(r.pytorch ? (r.ours / r.pytorch).toFixed(2) : '—').padStart(14)}`,
    );
  }
  console.log(JSON.stringify({ backend: best.name, threads, batchSize: BATCH, nets: rows }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
