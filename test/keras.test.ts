// Keras models in (issue 11 §1, §5): tfjs model.json files the tensorflowjs 4.22 converter wrote from Keras 3
// and tf-keras models (test/fixtures/keras, built by build_keras.py with the pinned Keras) load, and their
// predictions equal the reference outputs Keras computed, within 1e-5; Keras files are converted with the
// pinned converter; a model tfjs-layers cannot read fails with one line naming the layer.
/* eslint-disable @typescript-eslint/no-explicit-any */
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadModel, modelFamily, normalizeTopology, prepareUserModel, readModelSource, ModelError } from '../ml';

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
    for (const arch of ['cnn', 'mbv2', 'seq', 'nested', 'mixed'])
      it(`${family}-${arch}`, async () => {
        const d = await maxDiff(path.join(FIX, `${family}-${arch}.tfjs`), path.join(FIX, `${family}-${arch}.ref.json`));
        expect(d).toBeLessThan(1e-5);
      });

  it('case 01: the Keras 3 model.json of ../shared/cases/01-keras3-converted', async () => {
    expect(await maxDiff(path.join(FIX, 'case01'), path.join(FIX, 'case01.ref.json'))).toBeLessThan(1e-5);
  });
});

/** A copy of case 01's model.json + weights in a fresh folder, edited by `edit` (the topology and manifest as JSON). */
function brokenCase01(tag: string, edit: (json: any, bin: Buffer) => Buffer | void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pw-broken-${tag}-`));
  const json = JSON.parse(fs.readFileSync(path.join(FIX, 'case01', 'model.json'), 'utf8'));
  let bin = fs.readFileSync(path.join(FIX, 'case01', 'group1-shard1of1.bin'));
  bin = edit(json, bin) ?? bin;
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), bin);
  return dir;
}
const layerOf = (json: any, name: string) => json.modelTopology.model_config.config.layers.find((l: any) => l.name === name);

describe('a model.json tfjs-layers cannot read fails with one line naming the layer', () => {
  it('an unknown layer class', async () => {
    const dir = brokenCase01('class', (j) => void (layerOf(j, 'dense_1').class_name = 'FancyDense'));
    await expect(loadModel(dir)).rejects.toThrow(
      /model\.json: layer 'dense_1' \(FancyDense\): tfjs-layers 4\.22 has no layer class 'FancyDense'.*: replace it/,
    );
  });

  it('a weight missing from the manifest', async () => {
    const dir = brokenCase01('missing', (j, bin) => {
      j.weightsManifest[0].weights = j.weightsManifest[0].weights.filter((w: any) => w.name !== 'dense_1/bias');
      return bin.subarray(0, bin.length - 40);
    });
    await expect(loadModel(dir)).rejects.toThrow(/layer 'dense_1' \(Dense\): weight 'dense_1\/bias' \[10\] is missing from weightsManifest/);
  });

  it('a config that does not match its weights (bad shape)', async () => {
    const dir = brokenCase01('shape', (j) => void (layerOf(j, 'dense').config.units = 33));
    const e = await loadModel(dir).catch((x) => x);
    expect(e).toBeInstanceOf(ModelError);
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message).toMatch(
      /layer 'dense' \(Dense\): weight 'dense\/kernel' has shape \[1352,32\] in weightsManifest but the layer's config needs \[1352,33\]/,
    );
  });

  it('a field tfjs-layers would silently ignore, and a mixed-precision policy, are refused naming the field', () => {
    const topo = JSON.parse(fs.readFileSync(path.join(FIX, 'keras3-mbv2.tfjs', 'model.json'), 'utf8')).modelTopology;
    const relu = topo.model_config.config.layers.find((l: any) => l.class_name === 'ReLU');
    relu.config.negative_slope = 0.1;
    expect(() => normalizeTopology(topo, 'm.json')).toThrow(
      /^m\.json: layer 'stem_relu' \(ReLU\): negative_slope: 0\.1 is not supported by tfjs-layers: use LeakyReLU/,
    );
    relu.config.negative_slope = 0;
    topo.model_config.config.layers[1].config.dtype.config.name = 'mixed_float16';
    expect(() => normalizeTopology(topo, 'm.json')).toThrow(/layer 'stem_conv' \(Conv2D\): dtype: policy "mixed_float16" \(mixed precision\) is not supported/);
  });

  it('normalises Keras 3 structures and tf-keras axis lists into what tfjs-layers reads', () => {
    const k3 = JSON.parse(fs.readFileSync(path.join(FIX, 'keras3-mbv2.tfjs', 'model.json'), 'utf8'));
    expect(modelFamily(k3)).toBe('keras3');
    const { topology } = normalizeTopology(k3.modelTopology, 'k3');
    const cfg = (topology.model_config as any).config;
    expect(cfg.layers[0].config.batch_input_shape).toEqual([null, 16, 16, 3]);
    expect(cfg.layers[0].config.batch_shape).toBeUndefined();
    expect(cfg.input_layers).toEqual([['image', 0, 0]]);
    const add = cfg.layers.find((l: any) => l.name === 'b1_add');
    expect(add.inbound_nodes).toEqual([
      [
        ['stem_relu', 0, 0, {}],
        ['b1_project_bn', 0, 0, {}],
      ],
    ]);
    expect(JSON.stringify(topology)).not.toMatch(/DTypePolicy|registered_name|"module"/);
    const tfk = JSON.parse(fs.readFileSync(path.join(FIX, 'tfk-mbv2.tfjs', 'model.json'), 'utf8'));
    expect(modelFamily(tfk)).toBe('tf-keras');
    const bn = (normalizeTopology(tfk.modelTopology, 'tfk').topology.model_config as any).config.layers.find((l: any) => l.class_name === 'BatchNormalization');
    expect(bn.config.axis).toBe(3); // tf-keras writes [3]
    expect(modelFamily({ generatedBy: 'TensorFlow.js tfjs-layers v4.22.0', modelTopology: {} })).toBe('tfjs');
  });
});

describe('Keras files and SavedModels are converted with the pinned converter (.venv)', () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-models-'));
  const cases: Array<[string, 'keras3' | 'tf-keras', string, string]> = [
    ['keras3-cnn.keras', 'keras3', 'keras', 'keras3-cnn'],
    ['keras3-mbv2.h5', 'keras3', 'h5', 'keras3-mbv2'],
    ['tfk-mbv2.h5', 'tf-keras', 'h5', 'tfk-mbv2'],
    ['tfk-cnn.savedmodel', 'tf-keras', 'savedmodel', 'tfk-cnn'],
  ];
  for (const [file, family, kind, ref] of cases)
    it(`${file}: family ${family}, predictions equal Keras's (1e-5)`, async () => {
      const p = await prepareUserModel(path.join(FIX, file), cache);
      expect(p.source).toMatchObject({ version: 1, family, kind, input: path.join(FIX, file), converter: 'tensorflowjs 4.22.0' });
      expect(p.cached).toBe(false);
      expect(readModelSource(p.modelJson)?.family).toBe(family);
      expect(await maxDiff(path.dirname(p.modelJson), path.join(FIX, `${ref}.ref.json`))).toBeLessThan(1e-5);
    }, 120_000);

  it('the same bytes are converted once (cached by sha256)', async () => {
    const again = await prepareUserModel(path.join(FIX, 'keras3-cnn.keras'), cache);
    expect(again.cached).toBe(true);
    expect(path.basename(path.dirname(again.modelJson))).toBe(again.source.sha256);
  });

  it('a tfjs model.json is copied with its family (no conversion)', async () => {
    const p = await prepareUserModel(path.join(FIX, 'case01', 'model.json'), cache);
    expect(p.source).toMatchObject({ family: 'keras3', kind: 'tfjs', kerasVersion: '3.15.1' });
    expect(fs.readdirSync(path.dirname(p.modelJson)).sort()).toEqual(['group1-shard1of1.bin', 'model.json', 'source.json']);
  });

  it('a SavedModel that Keras cannot load (Keras 3 model.export) is refused with the reason', async () => {
    await expect(prepareUserModel(path.join(FIX, 'keras3-export'), cache)).rejects.toThrow(
      /^model: .*keras3-export: a SavedModel not written by Keras \(no keras_metadata\.pb.*give the Keras model instead/,
    );
  }, 60_000);

  it('a file that is not HDF5 is refused in one line', async () => {
    const f = path.join(cache, 'not-a-model.h5');
    fs.writeFileSync(f, 'hello');
    const e = await prepareUserModel(f, cache).catch((x) => x);
    expect(e).toBeInstanceOf(ModelError);
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message).toMatch(/not-a-model\.h5: not an HDF5 file/);
  }, 60_000);
});

describe('a Keras file with an image folder (the README walkthrough)', () => {
  it('needs no dataset.imageSize: the converted model gives it at submit', async () => {
    const { PNG } = await import('pngjs');
    const { validateSpec } = await import('../campaign/load');
    const { checkModel } = await import('../campaign/model');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-keras-images-'));
    fs.copyFileSync(path.join(FIX, 'keras3-cnn.keras'), path.join(dir, 'my_model.keras'));
    for (const cls of ['a', 'b']) {
      fs.mkdirSync(path.join(dir, 'imgs', cls), { recursive: true });
      for (let i = 0; i < 3; i++) {
        const png = new PNG({ width: 20, height: 16 });
        png.data.fill(cls === 'a' ? 40 * i : 255 - 40 * i);
        fs.writeFileSync(path.join(dir, 'imgs', cls, `${i}.png`), PNG.sync.write(png));
      }
    }
    const raw = { name: 'own', model: 'my_model.keras', dataset: { name: 'images', dir: 'imgs' }, weights: [{ accuracy: 1 }] };
    const spec = validateSpec(raw, 'own.yaml', dir); // the Keras file is not read here: no imageSize error yet
    expect(spec.dataset.imageSize).toBeUndefined();
    await checkModel(spec, 'own.yaml', path.join(dir, 'models'));
    expect(spec.model).toMatch(/model\.json$/);
    expect(spec.dataset.imageSize).toEqual([12, 12, 1]); // the model's input (keras3-cnn: 12×12 grey)
  }, 120_000);
});
