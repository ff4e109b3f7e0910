import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// the union package's node bundle registers every gradient (tfjs-core's CommonJS build registers none)
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';
import { registerWasmKernels } from '../ml/wasm-kernels';

const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Largest difference between two results, relative to the reference's largest magnitude. */
function relDiff(reference: Float32Array, other: Float32Array): number {
  expect(other.length).toBe(reference.length);
  const scale = Math.max(...reference.map(Math.abs));
  return Math.max(...reference.map((v, i) => Math.abs(v - other[i]) / scale));
}

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
      const [xv, wv, rv] = [rand(size(c.xs), 1), rand(size(c.ws), 2), rand(size(c.xs) * 8, 3)];
      const cpu = await filterGrad('cpu', c.stride, c.pad, xv, wv, rv, c.xs, c.ws);
      const wasm = await filterGrad('wasm', c.stride, c.pad, xv, wv, rv, c.xs, c.ws);
      expect(relDiff(cpu, wasm)).toBeLessThan(1e-5);
    });
  }
});

/** Gradients of sum(depthwiseConv2d(x, w) * r) w.r.t. the filter and the input, on one backend. */
async function depthwiseGrads(backend: string, stride: number, pad: 'same' | 'valid', xv: Float32Array, wv: Float32Array, rv: Float32Array, xs: number[], ws: number[]) {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, xs as [number, number, number, number]);
    const w = tf.tensor4d(wv, ws as [number, number, number, number]);
    const y = tf.depthwiseConv2d(x, w, stride, pad);
    const r = tf.tensor(rv.subarray(0, y.size), y.shape);
    const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.sum(tf.mul(tf.depthwiseConv2d(a, b, stride, pad), r));
    const [gx, gw] = tf.grads(f)([x, w]);
    return { dx: gx.dataSync().slice(), dw: gw.dataSync().slice() };
  });
}

describe('wasm depthwise gradients composed from wasm kernels', () => {
  registerWasmKernels();
  const cases = [
    { stride: 1, pad: 'same' as const, xs: [3, 9, 9, 4], ws: [3, 3, 4, 1] },
    { stride: 1, pad: 'valid' as const, xs: [2, 10, 8, 3], ws: [3, 3, 3, 1] },
    { stride: 2, pad: 'same' as const, xs: [2, 9, 8, 5], ws: [3, 3, 5, 1] },
    { stride: 2, pad: 'valid' as const, xs: [3, 11, 11, 2], ws: [3, 3, 2, 1] },
  ];
  for (const c of cases) {
    it(`filter and input gradients match the cpu backend: stride ${c.stride}, ${c.pad} padding, x ${c.xs.join('×')}`, async () => {
      const [xv, wv, rv] = [rand(size(c.xs), 1), rand(size(c.ws), 2), rand(size(c.xs) * 2, 3)];
      const cpu = await depthwiseGrads('cpu', c.stride, c.pad, xv, wv, rv, c.xs, c.ws);
      const wasm = await depthwiseGrads('wasm', c.stride, c.pad, xv, wv, rv, c.xs, c.ws);
      for (const key of ['dx', 'dw'] as const) expect(relDiff(cpu[key], wasm[key])).toBeLessThan(1e-5);
    });
  }
});

describe('wasm Conv2DBackpropInput and BatchMatMul replacements match the cpu backend', () => {
  registerWasmKernels();
  for (const c of [
    { stride: 1, pad: 'same' as const, xs: [2, 9, 9, 3], ws: [3, 3, 3, 4] },
    { stride: 1, pad: 'valid' as const, xs: [2, 12, 10, 2], ws: [5, 5, 2, 6] },
    { stride: 2, pad: 'same' as const, xs: [2, 9, 8, 3], ws: [3, 3, 3, 5] },
  ]) {
    it(`conv2d input gradient: stride ${c.stride}, ${c.pad} padding`, async () => {
      const [xv, wv, rv] = [rand(size(c.xs), 1), rand(size(c.ws), 2), rand(size(c.xs) * 8, 3)];
      const run = async (backend: string) => {
        await tf.setBackend(backend);
        return tf.tidy(() => {
          const x = tf.tensor4d(xv, c.xs as [number, number, number, number]);
          const w = tf.tensor4d(wv, c.ws as [number, number, number, number]);
          const y = tf.conv2d(x, w, c.stride, c.pad);
          const r = tf.tensor(rv.subarray(0, y.size), y.shape);
          return tf.grad((a: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(a, w, c.stride, c.pad), r)))(x).dataSync().slice();
        });
      };
      expect(relDiff(await run('cpu'), await run('wasm'))).toBeLessThan(1e-5);
    });
  }
  for (const [ta, tb] of [[true, false], [false, true], [true, true]]) {
    it(`matMul with transposeA=${ta}, transposeB=${tb}`, async () => {
      const run = async (backend: string) => {
        await tf.setBackend(backend);
        return tf.tidy(() => tf.matMul(tf.tensor(rand(3 * 5 * 4, 1), ta ? [3, 4, 5] : [3, 5, 4]), tf.tensor(rand(3 * 4 * 6, 2), tb ? [3, 6, 4] : [3, 4, 6]), ta, tb).dataSync().slice());
      };
      const cpu = await run('cpu');
      const wasm = await run('wasm');
      expect(wasm.length).toBe(3 * 5 * 6);
      expect(Math.max(...cpu.map((v, i) => Math.abs(v - wasm[i])))).toBeLessThan(1e-5);
    });
  }
});

describe('wasm Tile replacement', () => {
  registerWasmKernels();
  it('broadcast-style and general tiles match the cpu backend', async () => {
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const a = tf.tile(tf.tensor([1, 2, 3], [1, 3, 1]), [4, 1, 2]).dataSync().slice();
        const b = tf.tile(tf.tensor([1, 2, 3, 4], [2, 2]), [2, 3]).dataSync().slice();
        return [...a, ...b];
      });
    };
    expect(await run('wasm')).toEqual(await run('cpu'));
  });
});
