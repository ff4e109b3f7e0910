// An error inside a training thread (worker_threads replica, ml/parallel.ts) fails the training
// call — and so the stage's activity — with one line, never the process (case 06 killed the whole
// CLI and every worker that picked the campaign up again). Run in a child process on the cpu
// backend with 2 threads, so a crash would show as its exit code.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(__dirname, '..');

const SCRIPT = `
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');
const ml = require('./dist/ml');
(async () => {
  await ml.initBackend('cpu');
  const n = 1024;
  const x = new Float32Array(n * 16).map((_, i) => ((i * 7919) % 97) / 97);
  const y = Uint8Array.from({ length: n }, (_, i) => i % 2);
  const data = { x, y, n };
  const make = (extra = []) =>
    tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [16], units: 8, activation: 'relu' }), ...extra, tfl.layers.dense({ units: 2, activation: 'softmax' })] });
  const opts = { epochs: 2, batchSize: 256, learningRate: 1e-3, seed: 1, threads: 2, shardSize: 32 };
  const out = {};
  // 1. the training threads die in the middle of training
  try {
    await ml.train(make(), data, { ...opts, onStep: (s) => { if (s === 2) void ml.stopReplicas(); } });
    out.died = 'trained';
  } catch (e) {
    out.died = e.message;
  }
  // 2. an error raised inside the thread: a layer class registered here only, unknown to the thread's tfjs
  class Twice extends tfl.layers.Layer {
    static className = 'Twice';
    call(inputs) { return tf.mul(Array.isArray(inputs) ? inputs[0] : inputs, 2); }
  }
  tf.serialization.registerClass(Twice);
  try {
    await ml.train(make([new Twice({})]), data, opts);
    out.unknown = 'trained';
  } catch (e) {
    out.unknown = e.message;
  }
  // 3. the process goes on: fresh threads train the next model
  const r = await ml.train(make(), data, opts);
  out.after = { threads: r.threads, loss: r.epochLoss.at(-1)[1] };
  await ml.stopReplicas();
  console.log('RESULT ' + JSON.stringify(out));
})();
`;

describe('an error in a training thread', () => {
  it('fails the training with one line and leaves the process running (threads die mid-training; an error raised in the thread)', () => {
    expect(fs.existsSync(path.join(ROOT, 'dist', 'ml', 'replica.js'))).toBe(true);
    const r = spawnSync(process.execPath, ['-e', SCRIPT], { cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, PRUNEWISE_BACKEND: 'cpu' } });
    expect(r.status, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    expect(line, r.stdout + r.stderr).toBeDefined();
    const out = JSON.parse(line!.slice(7));
    expect(out.died).toMatch(/^training thread exited \(code \d+\)$/);
    expect(out.unknown).toMatch(/^training thread: Unknown layer: Twice/);
    expect(out.unknown).not.toContain('\n');
    expect(out.after.threads).toBe(2);
    expect(Number.isFinite(out.after.loss)).toBe(true);
  });
});
