// The engine's catalogs, without loading tfjs: the campaign schema takes its enums from here.

/** Zoo models `buildZooModel` makes (ml/models.ts). */
export const ZOO_NAMES = ['mlp', 'lenet5', 'vgg-small', 'resnet8', 'mobilenet-small'] as const;
export type ZooName = (typeof ZOO_NAMES)[number];

/** Channel-importance criteria `scoreGroups` computes (ml/importance.ts). */
export const CRITERIA = ['l1', 'l2', 'fpgm', 'group-norm', 'taylor', 'bn', 'random'] as const;
export type Criterion = (typeof CRITERIA)[number];

/** Dataset sources `loadDataset` reads (ml/data.ts). */
export const DATASETS = ['fashion-mnist', 'mnist', 'idx', 'npy', 'images'] as const;
export type DatasetName = (typeof DATASETS)[number];

/**
 * Deployment runtimes a candidate's latency is measured on (campaign `target.runtime`; ml/runtime.ts):
 * never the backend that trained it. `tflite`: the TFLite interpreter of the .venv's TensorFlow (ml/tflite.ts).
 */
export const RUNTIMES = ['tfjs-wasm', 'tfjs-node', 'chromium-wasm', 'chromium-webgl', 'tflite'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];
/** Runtimes listed but not available yet: the one-line reason the campaign loader gives. */
export const RUNTIMES_NOT_YET: Partial<Record<RuntimeName, string>> = {};

/**
 * `pruning.roundTo: auto`: the channel multiple each deployment runtime rewards (ml/round.ts
 * planOptions resolves it; groups smaller than 8 × it round to a smaller power of two, ml/plan.ts
 * groupRoundTo). Chosen by chooseRoundTo (ml/latency-table.ts) from channel-step probes timed on the
 * runtime (measureChannelStepsOn, ml/runtime.ts; `npm run bench:quality` re-measures and prints them);
 * `how` says what each value rests on.
 */
export const AUTO_ROUND_TO: Record<RuntimeName, { roundTo: number; how: string }> = {
  'tfjs-wasm': {
    roundTo: 8,
    how:
      'measured 2026-11-30 (tfjs 4.22 wasm with SIMD, batch 32, 2-core x86 host under load): the Dense probe (512 in, 32–96 out) is a staircase of period 8 ' +
      '(0.044–0.046 ms for 33–40 outputs, 0.050–0.052 ms for 41–48, 0.057–0.058 ms for 49–56); the conv probes were too noisy under that load to decide alone',
  },
  'tfjs-node': { roundTo: 1, how: 'measured 2026-11-30 (libtensorflow 2.21 CPU): the probes showed no staircase above the noise: no rounding' },
  'chromium-wasm': { roundTo: 8, how: "tfjs-wasm's value: the same wasm kernels in the page" },
  'chromium-webgl': { roundTo: 1, how: 'not measured (only a software renderer here): no rounding' },
  tflite: { roundTo: 1, how: 'not measured: no rounding' },
};

/** Learning-rate schedules training follows (ml/recipe.ts `learningRateAt`; campaign `pruning.finetune.schedule`). */
export const LR_SCHEDULES = ['constant', 'cosine', 'one-cycle'] as const;
export type LrScheduleName = (typeof LR_SCHEDULES)[number];

/** How a campaign's rounds share out what they remove (campaign pruning.allocation). */
export type AllocationKind = 'weights' | 'uniform' | 'sensitivity' | 'search';

/** The allocation a campaign's rounds use: by weights with the per-round schedule unless set, else uniform unless set to sensitivity. */
export function allocationOf(p: { allocation?: AllocationKind; schedule: string }): AllocationKind {
  return p.allocation ?? (p.schedule === 'per-round' ? 'weights' : 'uniform');
}
