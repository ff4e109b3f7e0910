// The child Node process of the tfjs-wasm and tfjs-node runtimes (ml/runtime.ts forks it): ONE tfjs
// backend, the runtime's, whatever trained the models in the parent. It loads the saved model
// folders and answers the parent's requests over IPC: runner calls (ml/runtime-runner.ts: warm-up,
// one timed pair, the baseline's runs) and the per-layer latency table on this runtime.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as os from 'node:os';
import { initBackend } from './backend';
import { analyze } from './graph';
import { measureChannelSteps, measureLatencyTable, type MeasureTableOptions } from './latency-table';
import { loadModel } from './models';
import { createRunner, type Runner } from './runtime-runner';

export type ChildRequest =
  | { op: 'open'; backend: 'wasm' | 'tensorflow'; baseline: string; candidate?: string; batchSize: number }
  | { op: 'warmup'; n: number }
  | { op: 'pair'; i: number }
  | { op: 'times'; n: number }
  | { op: 'table'; model: string; options: Omit<MeasureTableOptions, 'onProgress' | 'tfjsVersion' | 'backend'> }
  | { op: 'steps'; batchSize: number; warmupRuns: number; runs: number };

let runner: Runner | undefined;
const models: tfl.LayersModel[] = [];

async function open(r: Extract<ChildRequest, { op: 'open' }>) {
  // the runtime's backend only: stock tfjs kernels (no training kernels of ml/wasm-kernels.ts)
  let library: string | undefined;
  if (r.backend === 'tensorflow') {
    library = (await initBackend('tensorflow')).library;
  } else {
    if (!(await tf.setBackend('wasm'))) throw new Error('the tfjs wasm backend did not initialise');
  }
  await tf.ready();
  const baseline = await loadModel(r.baseline);
  models.push(baseline);
  const candidate = r.candidate ? await loadModel(r.candidate) : undefined;
  if (candidate) models.push(candidate);
  runner = createRunner(tf, baseline, candidate, r.batchSize);
  const wasm =
    r.backend === 'wasm'
      ? { simd: !!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')), threads: !!(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) }
      : undefined;
  return {
    backend: tf.getBackend(),
    tfjsVersion: tf.version_core,
    node: process.version,
    host: os.hostname(),
    ...(library ? { library } : {}),
    ...(wasm ? { wasm } : {}),
  };
}

async function handle(r: ChildRequest): Promise<unknown> {
  switch (r.op) {
    case 'open':
      return open(r);
    case 'warmup':
      return runner!.warmup(r.n);
    case 'pair':
      return runner!.pair(r.i);
    case 'times':
      return runner!.times(r.n);
    case 'steps':
      return measureChannelSteps(r);
    case 'table': {
      const model = await loadModel(r.model);
      try {
        return await measureLatencyTable(model, analyze(model), { ...r.options, backend: tf.getBackend(), tfjsVersion: tf.version_core });
      } finally {
        model.dispose();
      }
    }
  }
}

process.on('message', (msg: { id: number; req: ChildRequest }) => {
  handle(msg.req).then(
    (value) => process.send!({ id: msg.id, ok: true, value }),
    (e: Error) => process.send!({ id: msg.id, ok: false, error: e.message.split('\n')[0] }),
  );
});
process.on('disconnect', () => process.exit(0));
