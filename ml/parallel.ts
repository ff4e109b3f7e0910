// Data-parallel training over worker threads. The wasm backend cannot start its own threads under
// Node (tfjs issue 3830), so each extra core gets a worker thread with its own tfjs and a replica
// of the model. Every batch is cut into a fixed number of logical shards (train.ts); a replica
// gets the step's weights with its first shard, then takes shards as it becomes free, while the
// main thread computes shards too. The shards' gradients are summed in shard order, so the result
// does not depend on the number of threads or on which thread computed which shard. Batch norm
// normalises per logical shard (ghost batch norm); the moving averages are updated once per step
// on the main thread from the shards' statistics.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Task } from './task-spec';
import type { ShardLoss } from './recipe';

/** Messages to a replica thread. */
export type ToReplica =
  | { type: 'model'; id: number; topology: object; shapes: number[][] }
  | {
      type: 'step';
      /** the step's weights, with a replica's first shard of the step only */
      weights?: Float32Array[];
      x: Float32Array;
      y: Int32Array;
      /** regression / multilabel targets */
      t?: Float32Array;
      /** distillation: the teacher's logits [n·classes] */
      s?: Float32Array;
      n: number;
      inputShape: number[];
      task: Task;
      /** the recipe's loss terms (ml/recipe.ts): the same loss on every thread */
      loss: ShardLoss;
      dropoutSeed: number;
    };
/** Messages from a replica thread. */
export type FromReplica =
  { type: 'ready' } | { type: 'grads'; grads: Float32Array[]; loss: number; stats: Float32Array[] } | { type: 'error'; message: string };

/**
 * Threads to train with: PRUNEWISE_TRAIN_THREADS when set (1 disables), else one per core up to 2
 * (measured here: a third thread on 2 cores only adds contention).
 */
export function defaultTrainThreads(): number {
  const env = process.env.PRUNEWISE_TRAIN_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1 || n > 64)
      throw new Error(`PRUNEWISE_TRAIN_THREADS: "${env}" is not a whole number from 1 to 64: unset it or give e.g. 2`);
    return n;
  }
  return Math.max(1, Math.min(2, os.availableParallelism()));
}

function replicaScript(): string {
  // compiled next to this file; from TypeScript sources (tests), the build output in dist/
  const here = path.join(__dirname, 'replica.js');
  if (fs.existsSync(here)) return here;
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  const built = path.join(dir, 'dist', 'ml', 'replica.js');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\``);
  return built;
}

class Replica {
  private waiting: { resolve: (m: FromReplica) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;
  modelId = -1;
  constructor(readonly worker: Worker) {
    worker.on('message', (m: FromReplica) => {
      const w = this.waiting;
      this.waiting = null;
      if (m.type === 'error') w?.reject(new Error(`training thread: ${m.message.split('\n')[0]}`));
      else w?.resolve(m);
    });
    const fail = (e: Error) => {
      this.failed = e;
      this.waiting?.reject(e);
      this.waiting = null;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`training thread exited (code ${code})`)));
  }
  /** posts a message and resolves with the thread's reply */
  call(msg: ToReplica, transfer: ArrayBuffer[] = []): Promise<FromReplica> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.worker.postMessage(msg, transfer);
    });
  }
  get alive(): boolean {
    return this.failed === null;
  }
}

let pool: Replica[] = [];
let modelCounter = 0;
const modelIds = new WeakMap<tfl.LayersModel, number>();

/** Starts (or reuses) `count` replica threads on `backend` and loads `model`'s architecture into each. */
export async function replicasFor(model: tfl.LayersModel, count: number, backend: string): Promise<Replica[]> {
  pool = pool.filter((r) => r.alive);
  while (pool.length < count) {
    const worker = new Worker(replicaScript(), { workerData: { backend } });
    const r = new Replica(worker);
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (m: FromReplica) =>
        m.type === 'ready' ? resolve() : reject(new Error(`training thread: ${m.type === 'error' ? m.message : m.type}`)),
      );
      worker.once('error', reject);
    });
    pool.push(r);
  }
  let id = modelIds.get(model);
  if (id === undefined) {
    id = ++modelCounter;
    modelIds.set(model, id);
  }
  const replicas = pool.slice(0, count);
  const topology = model.toJSON(null, false) as object;
  const shapes = model.trainableWeights.map((w) => w.shape as number[]);
  for (const r of replicas) {
    r.worker.ref();
    if (r.modelId !== id) {
      await r.call({ type: 'model', id, topology, shapes });
      r.modelId = id;
    }
  }
  return replicas;
}

/** Lets the process exit while idle replica threads stay around for the next training call. */
export function releaseReplicas(replicas: Replica[]): void {
  for (const r of replicas) r.worker.unref();
}

/** Stops every replica thread (tests, shutdown). */
export async function stopReplicas(): Promise<void> {
  const all = pool;
  pool = [];
  await Promise.all(all.map((r) => r.worker.terminate()));
}

export type { Replica };
