// Keras models in (issue 11 §1, §5): tfjs model.json files the tensorflowjs 4.22 converter wrote from Keras 3
// and tf-keras models (test/fixtures/keras, built by build_keras.py with the pinned Keras) load, and their
// predictions equal the reference outputs Keras computed, within 1e-5.
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadModel, modelFamily, normalizeTopology, ModelError } from '../ml';

const FIX = path.join(__dirname, 'fixtures', 'keras');

interface Ref {
  input: { shape: number[]; data: number[] };
  output: { shape: number[]; data: number[] };
}

/** max |tfjs − Keras| over the reference batch */
async function maxDiff(modelDir: string, refFile: string): Promise<number> {
  const ref = JSON.parse(fs.readFileSync(refFile, 'utf8')) as Ref;
  const model = await loadModel(modelDir);
  try {
    const y = tf.tidy(() => model.predict(tf.tensor(ref.input.data, ref.input.shape)) as tf.Tensor);
    expect(y.shape).toEqual(ref.output.shape);
    const got = y.dataSync();
    y.dispose();
    let d = 0;
    ref.output.data.forEach((v, i) => (d = Math.max(d, Math.abs(v - got[i]))));
    return d;
  } finally {
    model.dispose();
  }
}

beforeAll(async () => {
  await initBackend();
});

describe('tfjs model.json from the converter loads with Keras predictions (1e-5)', () => {
  for (const family of ['keras3', 'tfk'])
    for (const arch of ['cnn', 'mbv2', 'seq'])
      it(`${family}-${arch}`, async () => {
        const d = await maxDiff(path.join(FIX, `${family}-${arch}.tfjs`), path.join(FIX, `${family}-${arch}.ref.json`));
        expect(d).toBeLessThan(1e-5);
      });

  it('case 01: the Keras 3 model.json of ../shared/cases/01-keras3-converted', async () => {
    expect(await maxDiff(path.join(FIX, 'case01'), path.join(FIX, 'case01.ref.json'))).toBeLessThan(1e-5);
  });
});
