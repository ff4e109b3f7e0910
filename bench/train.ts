// bench:train — training throughput (samples/s at batch 64) of zoo nets on every CPU path, side by
// side: native TensorFlow (tfjs-node on PyPI's tensorflow-cpu wheel, scripts/setup-native.sh), wasm
// on 2 data-parallel threads, wasm on 1, pure JS (stock tfjs cpu backend) and PyTorch on the CPU
// (bench/.venv-torch from `npm run bench:setup`, or PRUNEWISE_PYTHON). Native and wasm cannot be
// switched reliably within one process, so each measurement runs in a child process of its own.
// Prints a table, then one JSON line: {"nets": {"<net>": {"native", "wasm", "wasm1", "purejs", "pytorch"}}, …}
// (null where one could not run; why is printed above it and kept under "notes").
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildZooModel, GRAPH_PREPARE, initBackend, loadDataset, stopReplicas, subset, train } from '../ml';

const NETS = (process.env.BENCH_NETS ?? 'lenet5,vgg-small,resnet8,mobilenet-small').split(',');
const BATCH = 64;
/** seconds of timed training per measurement (after a warm-up), at least MIN_STEPS steps */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const MIN_STEPS = 3;
const ROOT = path.join(__dirname, '..', '..');

type Column = 'native' | 'nativeEager' | 'wasm' | 'wasm1' | 'purejs' | 'pytorch';
const COLUMNS: Column[] = ['native', 'nativeEager', 'wasm', 'wasm1', 'purejs', 'pytorch'];
/** how each tfjs column runs: forced backend, threads, warm-up (skipped for pure JS, where one step takes minutes), min steps */
const RUNS: Record<Exclude<Column, 'pytorch'>, { backend: string; threads: number; warm: boolean; minSteps: number }> = {
  native: { backend: 'tensorflow', threads: 1, warm: true, minSteps: MIN_STEPS },
  // the same backend with graph mode off (ml/train-graph.ts): op by op through tfjs, as before graph mode
  nativeEager: { backend: 'tensorflow', threads: 1, warm: true, minSteps: MIN_STEPS },
  wasm: { backend: 'wasm', threads: 2, warm: true, minSteps: MIN_STEPS },
  wasm1: { backend: 'wasm', threads: 1, warm: true, minSteps: MIN_STEPS },
  purejs: { backend: 'cpu', threads: 1, warm: false, minSteps: 1 },
};

const HEADS: Partial<Record<Column, string>> = { purejs: 'pure JS', pytorch: 'PyTorch', nativeEager: 'eager' };

class StopBench extends Error {}

let graphSeconds: number | undefined;

async function samplesPerSecond(net: string, seconds: number, minSteps: number, warm: boolean, threads: number): Promise<number> {
  const ds = loadDataset({ name: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', trainLimit: 4096, testLimit: 64, validationFraction: 0.01 }, 1);
  const model = buildZooModel(net, 1, ds.shape, ds.classes);
  // warm-up: kernels compile, memory settles
  if (warm)
    await train(
      model,
      subset(
        ds.train,
        Array.from({ length: BATCH * 2 }, (_, i) => i),
      ),
      { epochs: 1, batchSize: BATCH, learningRate: 1e-3, seed: 1, threads },
    );
  // timed from the end of the first step: graph mode traces its graph (once per architecture) before it
  let steps = -1;
  const begin = performance.now();
  let t0 = begin;
  let stopAt = Infinity;
  let traced: number | undefined;
  await train(model, ds.train, {
    epochs: 50,
    batchSize: BATCH,
    learningRate: 1e-3,
    seed: 2,
    threads,
    onPrepare: (done, _total, what) => {
      if (what === GRAPH_PREPARE && done === 1) traced = (performance.now() - begin) / 1000;
    },
    onStep: () => {
      steps++;
      if (steps === 0) {
        t0 = performance.now();
        stopAt = t0 + seconds * 1000;
      }
      if (steps >= minSteps && performance.now() > stopAt) throw new StopBench();
    },
  }).catch((e) => {
    if (!(e instanceof StopBench)) throw e;
  });
  graphSeconds = traced;
  const sps = (steps * BATCH) / ((performance.now() - t0) / 1000);
  model.dispose();
  return sps;
}

/** In a child: one measurement; the last stdout line is {"sps", "library"}. */
async function child(column: Exclude<Column, 'pytorch'>, net: string): Promise<void> {
  const run = RUNS[column];
  const info = await initBackend(run.backend); // forced: an error if it cannot start, never another backend
  if (tf.getBackend() !== run.backend) throw new Error(`asked for ${run.backend}, running on ${tf.getBackend()}`);
  const sps = await samplesPerSecond(net, SECONDS, run.minSteps, run.warm, run.threads);
  await stopReplicas();
  // no silent fallback: the native column is graph mode, the eager one is not
  if ((column === 'native') !== (graphSeconds !== undefined))
    throw new Error(`${column} ${graphSeconds === undefined ? 'did not train' : 'trained'} in graph mode`);
  console.log(JSON.stringify({ sps, library: info.library ?? null, graphSeconds: graphSeconds ?? null }));
}

/** Last line of a child's stderr that says something (the reason it failed). */
function reason(stderr: string, status: number | null, signal: string | null): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^at |^\^|^WARNING: All log|^I0000|^=+$/.test(l));
  const err = lines.find((l) => /Error|error:/.test(l)) ?? lines.at(-1);
  return (err ?? `exit ${status ?? signal}`).slice(0, 200);
}

function measure(column: Exclude<Column, 'pytorch'>, net: string, env: Record<string, string> = {}): { sps: number | null; library?: string; why?: string } {
  // a fresh graph cache: the trace time printed is a real one
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'prunewise-bench-graphs-'));
  const r = spawnSync(process.execPath, [__filename, '--child', column, net], {
    encoding: 'utf8',
    env: {
      ...process.env,
      PRUNEWISE_BACKEND: RUNS[column].backend,
      PRUNEWISE_TRAIN_GRAPH: column === 'nativeEager' ? 'off' : 'on',
      PRUNEWISE_GRAPH_CACHE: cache,
      ...env,
    },
    timeout: 15 * 60_000,
  });
  fs.rmSync(cache, { recursive: true, force: true });
  try {
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as { sps: number; library: string | null; graphSeconds: number | null };
    if (out.graphSeconds !== null && !env.TF_NUM_INTRAOP_THREADS) graphTrace[net] = out.graphSeconds;
    return { sps: out.sps, library: out.library ?? undefined };
  } catch {
    return { sps: null, why: reason(r.stderr, r.status, r.signal) };
  }
}

/** PyTorch's interpreter: PRUNEWISE_PYTHON, else bench/.venv-torch (npm run bench:setup), else python3. */
function python(): string {
  if (process.env.PRUNEWISE_PYTHON) return process.env.PRUNEWISE_PYTHON;
  const venv = path.join(ROOT, 'bench', '.venv-torch', 'bin', 'python');
  return fs.existsSync(venv) ? venv : 'python3';
}

/** PyTorch's best of 1 and 2 intra-op threads (on a busy 2-core VM, 2 OpenMP threads can be 20× slower than 1). */
function pytorch(net: string): { sps: number | null; why?: string } {
  const py = python();
  const probe = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return { sps: null, why: `no torch for ${py} (npm run bench:setup makes bench/.venv-torch)` };
  const runs = [1, 2].map((threads) => {
    const r = spawnSync(py, [path.join(ROOT, 'bench', 'torch_train.py'), net, String(BATCH), String(SECONDS), String(threads)], { encoding: 'utf8' });
    const v = Number(r.stdout.trim().split('\n').at(-1));
    return { threads, sps: Number.isFinite(v) && v > 0 ? v : null, r };
  });
  const ok = runs.filter((x) => x.sps !== null).sort((a, b) => b.sps! - a.sps!);
  if (ok.length === 0) return { sps: null, why: reason(runs[0].r.stderr, runs[0].r.status, runs[0].r.signal) || `bench/torch_train.py has no ${net}` };
  pytorchThreads[net] = runs.map((x) => `${x.threads} thread${x.threads > 1 ? 's' : ''} ${x.sps === null ? '—' : x.sps.toFixed(0)}`).join(', ');
  return { sps: ok[0].sps };
}
const pytorchThreads: Record<string, string> = {};
/** seconds to trace and load the training graph (graph mode, before the first step; not in the samples/s) */
const graphTrace: Record<string, number> = {};

/**
 * Native at one TensorFlow intra-op thread too (TF_NUM_INTRAOP_THREADS=1; the `native` column is
 * TensorFlow's default, one per core): the like-for-like figure for PyTorch's 1-thread run.
 */
function native1(net: string): number | null {
  const m = measure('native', net, { TF_NUM_INTRAOP_THREADS: '1', TF_NUM_INTEROP_THREADS: '1' });
  nativeThreads[net] = m.sps;
  return m.sps;
}
const nativeThreads: Record<string, number | null> = {};

async function main(): Promise<void> {
  const t0 = performance.now();
  const rows: Record<string, Record<Column, number | null>> = {};
  const notes: Record<string, string> = {};
  let library: string | undefined;
  for (const net of NETS) {
    const row = {} as Record<Column, number | null>;
    for (const column of COLUMNS) {
      const m: { sps: number | null; library?: string; why?: string } = column === 'pytorch' ? pytorch(net) : measure(column, net);
      row[column] = m.sps;
      if (m.library) library = m.library;
      if (m.why) {
        notes[`${net}/${column}`] = m.why;
        process.stderr.write(`${net} ${column}: not measured: ${m.why}\n`);
      } else process.stderr.write(`${net} ${column}: ${m.sps!.toFixed(1)} samples/s\n`);
      if (column === 'native' && m.sps !== null) process.stderr.write(`${net} native, 1 TensorFlow thread: ${native1(net)?.toFixed(1) ?? '—'} samples/s\n`);
    }
    rows[net] = row;
  }
  const fmt = (v: number | null) => (v === null ? '—' : v >= 100 ? v.toFixed(0) : v.toFixed(1));
  console.log(
    `training throughput, samples/s at batch ${BATCH}, Fashion-MNIST 28×28, measured, each in a child process: native = tfjs-node on ${library ?? 'libtensorflow (not available)'}, ` +
      `in graph mode (each step one TensorFlow graph call), native eager = the same op by op, wasm = 2 data-parallel threads, wasm1 = one thread, pure JS = stock tfjs cpu backend, PyTorch = CPU, best of 1 and 2 threads (${Math.round((performance.now() - t0) / 1000)} s in all)`,
  );
  console.log(`${'net'.padEnd(18)}${COLUMNS.map((c) => (HEADS[c] ?? c).padStart(10)).join('')}${'native/wasm'.padStart(13)}${'native/PyTorch'.padStart(16)}`);
  const ratio = (a: number | null, b: number | null) => (a && b ? `${(a / b).toFixed(2)}×` : '—');
  for (const [net, r] of Object.entries(rows)) {
    console.log(
      `${net.padEnd(18)}${COLUMNS.map((c) => fmt(r[c]).padStart(10)).join('')}${ratio(r.native, r.wasm).padStart(13)}${ratio(r.native, r.pytorch).padStart(16)}`,
    );
  }
  for (const [k, why] of Object.entries(notes)) console.log(`  ${k}: ${why}`);
  for (const [net, t] of Object.entries(pytorchThreads)) console.log(`  ${net}/pytorch (best shown): ${t}`);
  for (const [net, s] of Object.entries(graphTrace))
    console.log(`  ${net}/native: training graph traced and loaded in ${s.toFixed(1)} s (once per architecture; not in the figure)`);
  for (const [net, sps] of Object.entries(nativeThreads)) {
    const one = pytorchThreads[net]?.match(/^1 thread (\d+)/)?.[1];
    console.log(`  ${net}/native at 1 TensorFlow thread: ${fmt(sps)}${sps && one ? ` (${(sps / Number(one)).toFixed(2)}× PyTorch at 1 thread)` : ''}`);
  }
  console.log(
    `  load average while measuring (${os.cpus().length} cores): ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log(
    JSON.stringify({
      nets: rows,
      batchSize: BATCH,
      library: library ?? null,
      notes,
      pytorchThreads,
      native1Thread: nativeThreads,
      graphTraceSeconds: graphTrace,
    }),
  );
}

if (process.argv[2] === '--child') {
  child(process.argv[3] as Exclude<Column, 'pytorch'>, process.argv[4]).catch((e) => {
    console.error(e instanceof Error ? `${e.name}: ${e.message}` : e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
