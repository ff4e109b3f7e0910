// The engine's catalogs, without loading tfjs: the campaign schema takes its enums from here.

/** Zoo models `buildZooModel` makes (ml/models.ts). */
export const ZOO_NAMES = ['mlp', 'lenet5', 'vgg-small', 'resnet8', 'mobilenet-small'] as const;
export type ZooName = (typeof ZOO_NAMES)[number];

/** Channel-importance criteria `scoreGroups` computes (ml/importance.ts). */
export const CRITERIA = ['l1', 'l2', 'fpgm', 'taylor', 'bn', 'random'] as const;
export type Criterion = (typeof CRITERIA)[number];

/** Dataset sources `loadDataset` reads (ml/data.ts). */
export const DATASETS = ['fashion-mnist', 'mnist', 'idx', 'npy'] as const;
export type DatasetName = (typeof DATASETS)[number];
