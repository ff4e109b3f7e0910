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

type Conv = (x: tf.Tensor4D, w: tf.Tensor4D, stride: number, pad: 'same' | 'valid') => tf.Tensor4D;
interface ConvCase {
  stride: number;
  pad: 'same' | 'valid';
  xs: number[];
  ws: number[];
}

/** Gradients of sum(conv(x, w) · r) w.r.t. the input and the filter, on one backend (fixed pseudo-random data). */
async function convGrads(backend: string, conv: Conv, c: ConvCase) {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(rand(size(c.xs), 1), c.xs as [number, number, number, number]);
    const w = tf.tensor4d(rand(size(c.ws), 2), c.ws as [number, number, number, number]);
    const y = conv(x, w, c.stride, c.pad);
    const r = tf.tensor(rand(y.size, 3), y.shape);
    const [gx, gw] = tf.grads((a: tf.Tensor4D, b: tf.Tensor4D) => tf.sum(tf.mul(conv(a, b, c.stride, c.pad), r)))([x, w]);
    return { dx: gx.dataSync().slice() as Float32Array, dw: gw.dataSync().slice() as Float32Array };
  });
}

const conv2d: Conv = (x, w, s, p) => tf.conv2d(x, w, s, p);
const depthwise: Conv = (x, w, s, p) => tf.depthwiseConv2d(x, w, s, p);

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
      const cpu = await convGrads('cpu', conv2d, c);
      const wasm = await convGrads('wasm', conv2d, c);
      expect(relDiff(cpu.dw, wasm.dw)).toBeLessThan(1e-5);
    });
  }
});

describe('wasm depthwise gradients composed from wasm kernels', () => {
  registerWasmKernels();
  const cases = [
    { stride: 1, pad: 'same' as const, xs: [3, 9, 9, 4], ws: [3, 3, 4, 1] },
    { stride: 1, pad: 'valid' as const, xs: [2, 10, 8, 3], ws: [3, 3, 3, 1] },
    { stride: 2, pad: 'same' as const, xs: [2, 9, 8, 5], ws: [3, 3, 5, 1] },
    { stride: 2, pad: 'valid' as const, xs: [3, 11, 11, 2], ws: [3, 3, 2, 1] },
    // channel multipliers (Keras depth_multiplier): output channel c·M + m reads input channel c
    { stride: 1, pad: 'same' as const, xs: [2, 7, 7, 3], ws: [3, 3, 3, 2] },
    { stride: 2, pad: 'valid' as const, xs: [2, 9, 8, 2], ws: [3, 3, 2, 3] },
  ];
  for (const c of cases) {
    it(`filter and input gradients match the cpu backend: stride ${c.stride}, ${c.pad} padding, x ${c.xs.join('×')}, multiplier ${c.ws[3]}`, async () => {
      const cpu = await convGrads('cpu', depthwise, c);
      const wasm = await convGrads('wasm', depthwise, c);
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
      expect(relDiff((await convGrads('cpu', conv2d, c)).dx, (await convGrads('wasm', conv2d, c)).dx)).toBeLessThan(1e-5);
    });
  }
  for (const [ta, tb] of [
    [true, false],
    [false, true],
    [true, true],
  ]) {
    it(`matMul with transposeA=${ta}, transposeB=${tb}`, async () => {
      const run = async (backend: string) => {
        await tf.setBackend(backend);
        return tf.tidy(() =>
          tf
            .matMul(tf.tensor(rand(3 * 5 * 4, 1), ta ? [3, 4, 5] : [3, 5, 4]), tf.tensor(rand(3 * 4 * 6, 2), tb ? [3, 6, 4] : [3, 4, 6]), ta, tb)
            .dataSync()
            .slice(),
        );
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
        const a = tf
          .tile(tf.tensor([1, 2, 3], [1, 3, 1]), [4, 1, 2])
          .dataSync()
          .slice();
        const b = tf
          .tile(tf.tensor([1, 2, 3, 4], [2, 2]), [2, 3])
          .dataSync()
          .slice();
        return [...a, ...b];
      });
    };
    expect(await run('wasm')).toEqual(await run('cpu'));
  });
});

describe('wasm MaxPoolGrad (JS loop over the wasm heap) matches the cpu backend', () => {
  registerWasmKernels();
  const cases = [
    { pool: 2, stride: 2, pad: 'valid' as const, xs: [3, 8, 8, 3] },
    { pool: 2, stride: 2, pad: 'valid' as const, xs: [2, 9, 7, 2] },
    { pool: 3, stride: 2, pad: 'same' as const, xs: [2, 9, 9, 4] },
    { pool: 3, stride: 1, pad: 'same' as const, xs: [2, 6, 5, 3] },
    { pool: 2, stride: 1, pad: 'valid' as const, xs: [1, 5, 6, 2] },
  ];
  async function poolGrad(backend: string, c: (typeof cases)[number], ties: boolean) {
    await tf.setBackend(backend);
    return tf.tidy(() => {
      // ties: ReLU zeros and values rounded to a coarse grid, as after a ReLU on real activations
      const raw = tf.tensor4d(rand(size(c.xs), 4), c.xs as [number, number, number, number]);
      const x = ties ? tf.relu(tf.div(tf.round(tf.mul(raw, 4)), 4)) : raw;
      const y = tf.maxPool(x as tf.Tensor4D, c.pool, c.stride, c.pad);
      const r = tf.tensor(rand(y.size, 5), y.shape);
      return tf
        .grad((a: tf.Tensor4D) => tf.sum(tf.mul(tf.maxPool(a, c.pool, c.stride, c.pad), r)))(x as tf.Tensor4D)
        .dataSync()
        .slice() as Float32Array;
    });
  }
  for (const c of cases) {
    for (const ties of [false, true]) {
      it(`pool ${c.pool}, stride ${c.stride}, ${c.pad}, x ${c.xs.join('×')}${ties ? ', with tied maxima' : ''}`, async () => {
        const cpu = await poolGrad('cpu', c, ties);
        const wasm = await poolGrad('wasm', c, ties);
        expect(relDiff(cpu, wasm)).toBeLessThan(1e-6);
      });
    }
  }
});
