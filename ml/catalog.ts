// The engine's catalogs, without loading tfjs: the campaign schema takes its enums from here.

/** Zoo models `buildZooModel` makes (ml/models.ts). */
export const ZOO_NAMES = ['mlp', 'lenet5', 'vgg-small', 'resnet8', 'mobilenet-small'] as const;
export type ZooName = (typeof ZOO_NAMES)[number];

/** Channel-importance criteria `scoreGroups` computes (ml/importance.ts). */
export const CRITERIA = ['l1', 'l2', 'fpgm', 'taylor', 'bn', 'random'] as const;
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

/** Learning-rate schedules training follows (ml/recipe.ts `learningRateAt`; campaign `pruning.finetune.schedule`). */
export const LR_SCHEDULES = ['constant', 'cosine', 'one-cycle'] as const;
export type LrScheduleName = (typeof LR_SCHEDULES)[number];
