// Attention transfer's layer choice and maps (ml/attention.ts) on small hand-built models; the training itself is
// tested in graph mode in test/train-graph.test.ts.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { attentionLayers, attentionMaps, checkAttention } from '../ml/attention';
import { initBackend } from '../ml';

beforeAll(async () => {
  await initBackend('cpu');
});

/** conv → relu → [dropout] → pool → conv → relu → flatten → dense, 8×8 inputs */
function net(filters: number, dropout: boolean, name = 'net'): tfl.Sequential {
  return tfl.sequential({
    name,
    layers: [
      tfl.layers.conv2d({ inputShape: [8, 8, 1], filters, kernelSize: 3, padding: 'same', name: 'c1', kernelInitializer: 'glorotUniform' }),
      tfl.layers.reLU({ name: 'r1' }),
      ...(dropout ? [tfl.layers.dropout({ rate: 0.5, name: 'd1' })] : []),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'p1' }),
      tfl.layers.conv2d({ filters, kernelSize: 3, padding: 'same', name: 'c2' }),
      tfl.layers.reLU({ name: 'r2' }),
      tfl.layers.flatten({ name: 'f' }),
      tfl.layers.dense({ units: 3, activation: 'softmax', name: 'out' }),
    ],
  });
}

describe('attention transfer: layers and maps', () => {
  it('matches the map before each pooling layer and the Flatten, passing over dropout', () => {
    expect(attentionLayers(net(4, false))).toEqual([
      { name: 'r1', size: 64 },
      { name: 'r2', size: 16 },
    ]);
    // dropout masks the student's map in training: the map before it is matched
    expect(attentionLayers(net(4, true))).toEqual([
      { name: 'r1', size: 64 },
      { name: 'r2', size: 16 },
    ]);
    const mlp = tfl.sequential({ layers: [tfl.layers.flatten({ inputShape: [8, 8, 1] }), tfl.layers.dense({ units: 3 })] });
    expect(attentionLayers(mlp)).toEqual([]);
    expect(() => checkAttention(mlp, mlp)).toThrow(/^distill\.attention: the model has no feature map/);
  });

  it("a student with fewer channels is checked against the teacher's maps; each map is mean_c(a²) with unit L2 norm", () => {
    const teacher = net(6, false, 'teacher');
    const student = net(2, false, 'student');
    expect(checkAttention(student, teacher)).toEqual(attentionLayers(teacher));
    const n = 3;
    const x = Float32Array.from({ length: n * 64 }, (_, i) => Math.sin(i * 0.37));
    const maps = attentionMaps(teacher, attentionLayers(teacher), x, n);
    expect(maps.length).toBe(n * (64 + 16));
    // the first layer's map of example 1, computed by hand from r1's output
    const r1 = tfl.model({ inputs: teacher.inputs, outputs: teacher.getLayer('r1').output as tfl.SymbolicTensor });
    const a = (r1.predict(tf.tensor(x, [n, 8, 8, 1])) as tf.Tensor).arraySync() as number[][][][];
    const q = a[1].flat().map((c) => c.reduce((s, v) => s + v * v, 0) / c.length);
    const norm = Math.hypot(...q);
    const got = Array.from(maps.subarray(80, 80 + 64));
    got.forEach((v, i) => expect(v).toBeCloseTo(q[i] / norm, 5));
    // a teacher without the student's layer at that size is refused, naming the layer
    const other = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [8, 8, 1], filters: 2, kernelSize: 3, strides: 2, padding: 'same', name: 'c1' }),
        tfl.layers.reLU({ name: 'r1' }),
        tfl.layers.maxPooling2d({ poolSize: 2, name: 'p1' }),
        tfl.layers.flatten({ name: 'f' }),
        tfl.layers.dense({ units: 3, name: 'out' }),
      ],
    });
    expect(() => checkAttention(student, other)).toThrow(/^distill\.attention: layer r1 \(64 positions\) has no match of that size in the teacher/);
  });
});
