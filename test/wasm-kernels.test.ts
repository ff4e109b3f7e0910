import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// the union package's node bundle registers every gradient (tfjs-core's CommonJS build registers none)
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';
import { registerWasmKernels } from '../ml/wasm-kernels';

/** Gradient of sum(conv2d(x, w) * r) w.r.t. the filter, on one backend. */
async function filterGrad(backend: string, stride: number, pad: 'same' | 'valid', xv: Float32Array, wv: Float32Array, rv: Float32Array, xs: number[], ws: number[]) {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, xs as [number, number, number, number]);
    const w = tf.tensor4d(wv, ws as [number, number, number, number]);
    const y = tf.conv2d(x, w, stride, pad);
    const r = tf.tensor(rv.subarray(0, y.size), y.shape);
    const g = tf.grad((f: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(x, f, stride, pad), r)))(w);
    return g.dataSync().slice();
  });
}

describe('wasm Conv2DBackpropFilter composed from wasm kernels', () => {
  registerWasmKernels();
  const cases = [
    { stride: 1, pad: 'same' as const, xs: [3, 9, 9, 2], ws: [3, 3, 2, 4] },
    { stride: 1, pad: 'valid' as const, xs: [2, 12, 10, 3], ws: [5, 5, 3, 6] },
    { stride: 2, pad: 'same' as const, xs: [2, 9, 8, 3], ws: [3, 3, 3, 5] },
    { stride: 2, pad: 'valid' as const, xs: [3, 11, 11, 2], ws: [3, 2, 2, 3] },
  ];
  for (const c of cases) {
    it(`matches the cpu backend: stride ${c.stride}, ${c.pad} padding, x ${c.xs.join('×')}, filter ${c.ws.join('×')}`, async () => {
      const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
      const xv = rand(c.xs.reduce((a, b) => a * b), 1);
      const wv = rand(c.ws.reduce((a, b) => a * b), 2);
      const rv = rand(c.xs.reduce((a, b) => a * b) * 8, 3);
      const cpu = await filterGrad('cpu', c.stride, c.pad, xv, wv, rv, c.xs, c.ws);
      const wasm = await filterGrad('wasm', c.stride, c.pad, xv, wv, rv, c.xs, c.ws);
      let worst = 0;
      const scale = Math.max(...cpu.map(Math.abs));
      for (let i = 0; i < cpu.length; i++) worst = Math.max(worst, Math.abs(cpu[i] - wasm[i]) / scale);
      expect(wasm.length).toBe(cpu.length);
      expect(worst).toBeLessThan(1e-5);
    });
  }
});
