import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadCampaignFile } from '../campaign/load';
import { campaignRecipeOf, FINETUNE_DEFAULTS, finetuneRecipeOf } from '../campaign/schema';
import { cli, cliEnv, tmpHome } from './helpers';

const good = {
  name: 'ok',
  model: 'mlp',
  dataset: { name: 'fashion-mnist' },
  weights: [{ accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 }],
};

function write(dir: string, name: string, spec: unknown): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, typeof spec === 'string' ? spec : stringify(spec));
  return f;
}

describe('campaign files', () => {
  const dir = tmpHome('spec');

  it('accepts a good file and fills in the defaults', () => {
    const { spec, hash } = loadCampaignFile(write(dir, 'good.yaml', good));
    expect(spec.pruning.rounds).toBe(3);
    expect(spec.baseline.epochs).toBe(3);
    expect(spec.weights[0]).toEqual({ accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 });
    expect(spec.dataset.dir).toBe('/usr/share/datasets/fashion-mnist');
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a simplex sweep adds every lattice vector once, after the explicit ones', () => {
    const { spec } = loadCampaignFile(write(dir, 'sweep.yaml', { ...good, weights: [{ accuracy: 1 }, good.weights[0]], sweep: { simplex: 2 } }));
    const key = (w: Record<string, number>) => `${w.accuracy}/${w.size}/${w.latency}/${w.energy}`;
    // {3, 2} lattice: 6 vectors; (1,0,0) is already listed
    expect(spec.weights.map(key)).toEqual(['1/0/0/0', '0.6/0.2/0.2/0', '0.5/0.5/0/0', '0.5/0/0.5/0', '0/1/0/0', '0/0.5/0.5/0', '0/0/1/0']);
    const four = loadCampaignFile(
      write(dir, 'sweep4.yaml', { ...good, weights: undefined, sweep: { simplex: 3, objectives: ['accuracy', 'size', 'latency', 'energy'] } }),
    ).spec;
    expect(four.weights).toHaveLength(20); // C(3+3, 3)
    for (const w of four.weights) expect(w.accuracy + w.size + w.latency + w.energy).toBeCloseTo(1, 12);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['missing field', { ...good, model: undefined }, /: model: is required/],
    ['wrong type', { ...good, pruning: { rounds: 'three' } }, /: pruning\.rounds: must be a number \(got string\)/],
    [
      'weights not summing to 1',
      { ...good, weights: [good.weights[0], { accuracy: 0.5, size: 0.5, latency: 0.3 }] },
      /: weights\[1\]: weights must sum to 1 \(got 1\.3\)/,
    ],
    [
      'unknown model',
      { ...good, model: 'resnet9000' },
      /: model: unknown model "resnet9000": use one of mlp, lenet5, vgg-small, resnet8, mobilenet-small or a path/,
    ],
    [
      'missing dataset file',
      { ...good, dataset: { name: 'idx', dir: '/nonexistent/data' } },
      /: dataset\.dir: \/nonexistent\/data\/train-images-idx3-ubyte\[\.gz\] not found/,
    ],
    ['misspelt field', { ...good, pruning: { rounds: 2, stepratio: 0.5 } }, /: pruning\.stepratio: unknown field: did you mean "stepRatio"\?/],
    ['no weight vector', { ...good, weights: [] }, /: weights: no weight vector: list at least one .* or add sweep: \{ simplex: 2 \}/],
    [
      'weights allocation with a FLOPs schedule',
      { ...good, pruning: { allocation: 'weights', schedule: 'linear', targetFlopsReduction: 0.5 } },
      /: pruning\.allocation: "weights" needs schedule "per-round"/,
    ],
    [
      'sensitivity allocation with the per-round schedule',
      { ...good, pruning: { allocation: 'sensitivity' } },
      /: pruning\.allocation: "sensitivity" spends a FLOPs schedule's budget: use schedule linear, one-shot or agp/,
    ],
    [
      'search allocation with the per-round schedule',
      { ...good, pruning: { allocation: 'search' } },
      /: pruning\.allocation: "search" spends a FLOPs schedule's budget: use schedule linear, one-shot or agp/,
    ],
    [
      'search with no candidates',
      { ...good, pruning: { allocation: 'search', schedule: 'linear', targetFlopsReduction: 0.5, searchCandidates: 0 } },
      /: pruning\.searchCandidates: /,
    ],
    ['bad sweep', { ...good, sweep: { simplex: 0 } }, /: sweep\.simplex: /],
    ['out-of-range value', { ...good, pruning: { stepRatio: 1.5 } }, /: pruning\.stepRatio: must be less than 1 \(got 1\.5\)$/],
    ['roundTo neither a number nor auto', { ...good, pruning: { roundTo: 'auto8' } }, /: pruning\.roundTo: must be a whole number ≥ 1 or "auto"/],
    ['model path that does not exist', { ...good, model: './nope/model.json' }, /: model: file .*nope\/model\.json not found/],
  ];
  for (const [what, spec, message] of bad) {
    it(`refuses a file with a ${what}, naming the field`, () => {
      const f = write(dir, `${what.replace(/\W+/g, '-')}.yaml`, spec);
      expect(() => loadCampaignFile(f)).toThrow(message);
      try {
        loadCampaignFile(f);
      } catch (e) {
        expect((e as Error).message.startsWith(f)).toBe(true);
        expect((e as Error).message).not.toContain('\n');
      }
    });
  }

  it('refuses broken YAML with the line number', () => {
    const f = write(dir, 'broken.yaml', 'name: x\nweights: [1, 2\nmodel: mlp\n');
    expect(() => loadCampaignFile(f)).toThrow(/broken\.yaml:\d+:\d+: not valid YAML/);
  });

  it('`prunewise run` with a bad file prints one line, exits non-zero and starts nothing', async () => {
    const home = tmpHome('badrun');
    const f = write(home, 'bad.yaml', { ...good, weights: [{ accuracy: 0.9, size: 0.2 }] });
    const r = await cli(cliEnv(path.join(home, 'state')), ['run', f], 60_000);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^prunewise: .*bad\.yaml: weights\[0\]: weights must sum to 1 \(got 1\.1\)/);
    expect(fs.existsSync(path.join(home, 'state'))).toBe(false); // no database, no server, no artifacts
  });

  it('the generated JSON Schema for editors is up to date with the zod schema', async () => {
    const { z } = await import('zod');
    const { campaignSchema } = await import('../campaign/schema');
    const committed = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'campaign', 'campaign.schema.json'), 'utf8'));
    expect(committed).toEqual({ title: 'prunewise campaign', ...z.toJSONSchema(campaignSchema, { io: 'input' }) });
  });
});

describe('pruning schedules in campaign files', () => {
  it('a FLOPs-target schedule needs targetFlopsReduction', () => {
    const dir = tmpHome('sched');
    const f = path.join(dir, 'agp.yaml');
    fs.writeFileSync(f, stringify({ ...good, pruning: { schedule: 'agp' } }));
    expect(() => loadCampaignFile(f)).toThrow(/: pruning\.targetFlopsReduction: is required with schedule "agp"/);
  });
});

describe('fine-tuning recipes and the sparsity penalty in campaign files', () => {
  const dir = tmpHome('spec-recipe');
  const load = (name: string, pruning: unknown, extra: object = {}) => loadCampaignFile(write(dir, `${name}.yaml`, { ...good, pruning, ...extra })).spec;

  it('fills in the measured defaults; the older finetuneEpochs / finetuneLearningRate still work', () => {
    const d = finetuneRecipeOf(load('defaults', undefined).pruning, 1);
    expect(d).toEqual({
      epochs: FINETUNE_DEFAULTS.epochs,
      learningRate: FINETUNE_DEFAULTS.learningRate,
      schedule: FINETUNE_DEFAULTS.schedule,
      warmup: FINETUNE_DEFAULTS.warmup,
      labelSmoothing: FINETUNE_DEFAULTS.labelSmoothing,
      distill: FINETUNE_DEFAULTS.distill.weight > 0 ? { ...FINETUNE_DEFAULTS.distill, teacher: 'baseline' } : null,
      sparsity: null,
    });
    const old = finetuneRecipeOf(load('old', { finetuneEpochs: 3, finetuneLearningRate: 0.002 }).pruning, 1);
    expect([old.epochs, old.learningRate, old.batches]).toEqual([3, 0.002, undefined]);
    const r = finetuneRecipeOf(
      load('new', {
        finetune: { batches: 200, learningRate: 0.001, schedule: 'one-cycle', warmup: 0.2, labelSmoothing: 0.1, distill: { weight: 0.5, temperature: 2 } },
      }).pruning,
      2,
    );
    expect(r).toEqual({
      batches: 200,
      learningRate: 0.001,
      schedule: 'one-cycle',
      warmup: 0.2,
      labelSmoothing: 0.1,
      distill: { weight: 0.5, temperature: 2, teacher: 'baseline' },
      sparsity: null,
    });
    // the measured defaults of label smoothing and distillation are a classifier's: a regression campaign trains without them
    const reg = finetuneRecipeOf(load('defaults-reg', undefined).pruning, 1, 'regression');
    expect([reg.labelSmoothing, reg.distill]).toEqual([0, null]);
    // a spec stored before recipes existed (in-flight workflows) keeps the plain recipe it ran with
    expect(finetuneRecipeOf({ rounds: 3, finetuneEpochs: 2, finetuneLearningRate: 0.0005 }, 1)).toEqual({
      epochs: 2,
      learningRate: 0.0005,
      schedule: 'constant',
      warmup: 0,
      labelSmoothing: 0,
      distill: null,
      sparsity: null,
    });
  });

  it('finetune.lastRound gives the last round (and its retries) its own budget; status says both; one of epochs or batches', () => {
    const p = load('last', { rounds: 5, finetune: { epochs: 1, lastRound: { epochs: 6 } } }).pruning;
    expect([1, 2, 3, 4, 5].map((k) => finetuneRecipeOf(p, k).epochs)).toEqual([1, 1, 1, 1, 6]);
    const b = load('last-batches', { rounds: 3, finetune: { batches: 100, lastRound: { batches: 900 } } }).pruning;
    expect([1, 2, 3].map((k) => [finetuneRecipeOf(b, k).batches, finetuneRecipeOf(b, k).epochs])).toEqual([
      [100, undefined],
      [100, undefined],
      [900, undefined],
    ]);
    // epochs for the rounds, batches for the last one: each budget as given
    const mixed = load('last-mixed', { rounds: 2, finetune: { epochs: 2, lastRound: { batches: 50 } } }).pruning;
    expect([finetuneRecipeOf(mixed, 1), finetuneRecipeOf(mixed, 2)].map((r) => [r.epochs, r.batches])).toEqual([
      [2, undefined],
      [undefined, 50],
    ]);
    const r = campaignRecipeOf(p);
    expect(r.finetune).toMatchObject({ epochs: 1, lastRound: { epochs: 6 } });
    expect(r.summary).toMatch(/^1 epoch per round, the last round 6 epochs, lr /);
    expect(campaignRecipeOf(load('no-last', { rounds: 5, finetune: { epochs: 2 } }).pruning).finetune).not.toHaveProperty('lastRound');
    expect(() => load('last-both', { rounds: 2, finetune: { lastRound: { epochs: 2, batches: 9 } } })).toThrow(
      /pruning\.finetune\.lastRound: give the last round's budget as epochs or as batches, not both/,
    );
    expect(() => load('last-none', { rounds: 2, finetune: { lastRound: {} } })).toThrow(
      /pruning\.finetune\.lastRound: give the last round's budget: \{ epochs: N \}/,
    );
    expect(() => load('last-typo', { rounds: 2, finetune: { lastRound: { epoch: 2 } } })).toThrow(/pruning\.finetune\.lastRound/);
    expect(() => load('last-zero', { rounds: 2, finetune: { lastRound: { epochs: 0 } } })).toThrow(/pruning\.finetune\.lastRound\.epochs/);
    expect(() => load('last-number', { rounds: 2, finetune: { lastRound: 6 } })).toThrow(
      /pruning\.finetune\.lastRound: must be \{ epochs: N \} or \{ batches: N \} \(got 6\): e\.g\. lastRound: \{ epochs: 6 \}/,
    );
    // one round: it is the last one, and status says both budgets as given
    const one = load('last-one', { rounds: 1, finetune: { epochs: 2, lastRound: { epochs: 6 } } }).pruning;
    expect(finetuneRecipeOf(one, 1).epochs).toBe(6);
    expect(campaignRecipeOf(one).summary).toMatch(/^2 epochs per round, the last round 6 epochs, /);
  });

  it('the sparsity penalty rides on the first rounds (every round but the last by default) and the baseline when asked', () => {
    const p = load('sparse', { rounds: 3, sparsity: { strength: 0.5, growth: 1 } }).pruning;
    expect([1, 2, 3].map((k) => finetuneRecipeOf(p, k).sparsity)).toEqual([
      { strength: 0.5, growth: 1, alpha: 4 },
      { strength: 0.5, growth: 1, alpha: 4 },
      null,
    ]);
    const one = load('sparse1', { rounds: 3, sparsity: { strength: 0.5, rounds: 1, baseline: true } }).pruning;
    expect([1, 2].map((k) => finetuneRecipeOf(one, k).sparsity !== null)).toEqual([true, false]);
    expect(campaignRecipeOf(one).summary).toMatch(/sparsity penalty λ 0\.5 \+ 0\/epoch \(α 4\) on the baseline and round 1$/);
    expect(campaignRecipeOf(load('plain', undefined).pruning).sparsity).toBeNull();
  });

  it('says how rounds pick channels: criterion, allocation or scope, and what roundTo: auto chose for the runtime (status and status --json show it)', () => {
    const wasm = load('auto-wasm', { roundTo: 'auto', criterion: 'group-norm' });
    const r = campaignRecipeOf(wasm.pruning, 'classification', wasm.target.runtime).pruning!;
    expect(r).toMatchObject({ criterion: 'group-norm', allocation: 'weights', roundTo: { multiple: 8, auto: true, runtime: 'tfjs-wasm' } });
    expect(r.summary).toMatch(
      /^criterion group-norm, allocation by weights \(measured sensitivity, ΔJ\), per-round schedule \(about 20 % of what is left each round\), 3 rounds, channels kept in multiples of 8 \(roundTo auto for tfjs-wasm, /,
    );
    const flops = { roundTo: 'auto', schedule: 'linear', targetFlopsReduction: 0.5 };
    const node = load('auto-node', { ...flops, scope: 'global' }, { target: { runtime: 'tfjs-node' } });
    expect(campaignRecipeOf(node.pruning, 'classification', node.target.runtime).pruning!.summary).toBe(
      'criterion l1, global scope, linear schedule to 50 % fewer FLOPs than the baseline in 3 rounds, channels kept in multiples of 1 (roundTo auto for tfjs-node: no rounding)',
    );
    const sens = load('sens', { ...flops, allocation: 'sensitivity' });
    expect(campaignRecipeOf(sens.pruning).pruning!.summary).toMatch(/^criterion l1, FLOPs allocated by measured sensitivity, /);
    const fixed = load('fixed', { roundTo: 4 });
    expect(campaignRecipeOf(fixed.pruning).pruning!.roundTo).toEqual({ multiple: 4, auto: false, runtime: null });
    expect(campaignRecipeOf(fixed.pruning).summary).not.toMatch(/channels/); // the fine-tuning line is about fine-tuning
    // least-squares reconstruction: off unless asked, then said with its image count
    expect(campaignRecipeOf(fixed.pruning).pruning!.reconstruct).toBe(0);
    const refit = campaignRecipeOf(load('refit', { reconstruct: 512 }).pruning).pruning!;
    expect([refit.reconstruct, refit.summary]).toEqual([512, expect.stringMatching(/, least-squares reconstruction on 512 training images$/)]);
    expect(() => load('refit-neg', { reconstruct: -1 })).toThrow(/pruning\.reconstruct/);
  });

  const bad: Array<[string, unknown, object, RegExp]> = [
    [
      'global scope where allocation decides',
      { scope: 'global' },
      {},
      /: pruning\.scope: "global" applies only with allocation uniform .* allocation "weights" \(schedule "per-round"'s default\) sets the widths itself: use scope: local \(or remove it\), or set allocation: uniform \(a per-round schedule then ignores the weight vectors/,
    ],
    [
      'weights on a FLOPs schedule, scope global too (one problem: the allocation)',
      { scope: 'global', schedule: 'linear', targetFlopsReduction: 0.5, allocation: 'weights' },
      {},
      /: pruning\.allocation: "weights" needs schedule "per-round"/,
    ],
    [
      'global scope with sensitivity',
      { scope: 'global', schedule: 'linear', targetFlopsReduction: 0.5, allocation: 'sensitivity' },
      {},
      /: pruning\.scope: .*allocation "sensitivity" sets the widths itself: use scope: local/,
    ],
    ['two budgets', { finetune: { epochs: 1, batches: 10 } }, {}, /: pruning\.finetune\.batches: give the budget as epochs or as batches, not both/],
    ['old and new name', { finetuneEpochs: 2, finetune: { epochs: 1 } }, {}, /: pruning\.finetuneEpochs: is the older name of finetune\.epochs/],
    [
      'misspelt schedule',
      { finetune: { schedule: 'cosin' } },
      {},
      /: pruning\.finetune\.schedule: must be one of "constant", "cosine", "one-cycle" \(got "cosin"\): did you mean "cosine"\?/,
    ],
    ['misspelt field', { finetune: { labelSmothing: 0.1 } }, {}, /: pruning\.finetune\.labelSmothing: unknown field: did you mean "labelSmoothing"\?/],
    ['distill weight over 1', { finetune: { distill: { weight: 2 } } }, {}, /: pruning\.finetune\.distill\.weight: must be at most 1 \(got 2\)/],
    ['negative strength', { sparsity: { strength: -1 } }, {}, /: pruning\.sparsity\.strength: must be at least 0 \(got -1\)/],
    [
      'sparsity past the last round',
      { rounds: 2, sparsity: { strength: 1, rounds: 3 } },
      {},
      /: pruning\.sparsity\.rounds: is 3 but the campaign has 2 rounds/,
    ],
    [
      'the penalty on a baseline that does not train',
      { sparsity: { strength: 1, baseline: true } },
      { baseline: { epochs: 0 } },
      /: pruning\.sparsity\.baseline: needs a baseline that trains \(baseline\.epochs is 0/,
    ],
    [
      'label smoothing on regression',
      { finetune: { labelSmoothing: 0.1 } },
      { task: 'regression' },
      /: pruning\.finetune\.labelSmoothing: label smoothing needs a classification task \(task is regression\): remove it/,
    ],
  ];
  for (const [what, pruning, extra, message] of bad) {
    it(`refuses ${what}, in one line naming the field`, () => {
      const f = write(dir, `${what.replace(/\W+/g, '-')}.yaml`, { ...good, pruning, ...extra });
      expect(() => loadCampaignFile(f)).toThrow(message);
      expect(() => loadCampaignFile(f)).toThrow(/^[^\n]*$/);
    });
  }
});

describe('campaign-file errors: all at once, in our words', () => {
  const dir = tmpHome('spec-all');

  it('lists every problem in one error, one line each, with "did you mean" for misspelt fields and values', () => {
    const f = write(dir, 'many.yaml', {
      ...good,
      latncy: 3,
      weights: [{ accuracy: 1.5, latncy: 0.2 }],
      pruning: { stepRatio: 0, rounds: 2.5, criterion: 'l3' },
      target: { speedupCi: 2 },
      constraints: { maxAccuracyDrop: -1 },
    });
    let msg = '';
    try {
      loadCampaignFile(f);
    } catch (e) {
      msg = (e as Error).message;
    }
    const lines = msg.split('\n');
    expect(lines[0]).toBe(`${f}: ${lines.length - 1} problems:`);
    const body = lines.slice(1).map((l) => l.trim().slice(f.length + 2));
    expect(body).toEqual(
      expect.arrayContaining([
        'weights[0].accuracy: must be at most 1 (got 1.5)',
        'weights[0].latncy: unknown field: did you mean "latency"?',
        'pruning.stepRatio: must be greater than 0 (got 0)',
        'pruning.rounds: must be a whole number (got 2.5)',
        'pruning.criterion: must be one of "l1", "l2", "fpgm", "group-norm", "taylor", "bn", "random" (got "l3"): did you mean "l1"?',
        'target.speedupCi: must be at most 1 (got 2)',
        'constraints.maxAccuracyDrop: must be at least 0 (got -1)',
      ]),
    );
    expect(body.find((b) => b.startsWith('latncy:'))).toMatch(/^latncy: unknown field: remove it \(fields here: name, /);
    expect(msg).not.toMatch(/Too big|Too small|expected number to be|Invalid input/);
  });

  it('a top-level typo far from every field lists the fields instead', () => {
    const f = write(dir, 'far.yaml', { ...good, zzzzzzzz: 1 });
    expect(() => loadCampaignFile(f)).toThrow(/: zzzzzzzz: unknown field: remove it \(fields here: name, seed, model, task, dataset, /);
  });

  it('an unknown zoo model close to a known one is suggested', () => {
    const f = write(dir, 'zoo.yaml', { ...good, model: 'lenet' });
    expect(() => loadCampaignFile(f)).toThrow(/: model: unknown model "lenet" \(did you mean "lenet5"\?\): use one of/);
  });
});
