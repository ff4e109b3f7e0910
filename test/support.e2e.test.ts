// A campaign whose model cannot be pruned says so plainly (issue 11 §2): through the real CLI, it is
// refused at submit (campaign/model.ts runs the support matrix on the loaded model) naming every
// reason, and no campaign is created — instead of "completing" with nothing removed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { openDb } from '../db';
import { cli, cliEnv, tmpHome, writeSpec } from './helpers';

describe('a model in which nothing can be pruned', () => {
  it('is refused at submit with every reason, and no campaign is created', async () => {
    const tfl = await import('@tensorflow/tfjs-layers');
    const { initBackend, saveModel } = await import('../ml');
    await initBackend();
    const home = tmpHome('nothing');
    // every hidden unit feeds a layer normalisation: nothing can be removed without changing the others
    const model = tfl.sequential({
      layers: [
        tfl.layers.flatten({ inputShape: [28, 28, 1], name: 'flatten' }),
        tfl.layers.dense({ units: 16, activation: 'relu', name: 'fc1' }),
        tfl.layers.layerNormalization({ name: 'ln' }),
        tfl.layers.dense({ units: 10, activation: 'softmax', name: 'out' }),
      ],
    });
    await saveModel(model, path.join(home, 'model'));
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, { name: 'nothing', model: './model/model.json', baseline: { epochs: 0 } });
    const r = await cli(env, ['run', spec]);
    expect(r.code).not.toBe(0);
    const last = r.stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(/model: .*nothing can be pruned: /);
    expect(last).toContain('fc1: layer "ln" (LayerNormalization): normalises across channels');
    expect(last).toContain('out: layer "out" (Dense): softmax mixes channels');
    // refused before anything started: no campaign recorded
    expect(
      fs.existsSync(path.join(home, 'prunewise.db'))
        ? (openDb(path.join(home, 'prunewise.db')).prepare('SELECT count(*) AS n FROM campaigns').get() as { n: number }).n
        : 0,
    ).toBe(0);
    fs.rmSync(home, { recursive: true, force: true });
  }, 120_000);
});
