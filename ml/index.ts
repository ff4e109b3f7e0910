// The pruning engine: a plain library with no Temporal inside, usable from a script.
export * from './backend';
export * from './cost';
export * from './data';
export * from './models';
export * from './graph';
export * from './importance';
export * from './plan';
export * from './allocate';
export * from './roofline';
export * from './energy-sensor';
export * from './prune';
export * from './train';
export { defaultTrainThreads, stopReplicas } from './parallel';
export { FusedAdam } from './adam';
export { rng, shuffledIndices } from './random';
export { writeDirAtomic, writeFileAtomic, sha256 } from './files';
