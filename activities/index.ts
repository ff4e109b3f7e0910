// Public surface of the activities: compute stages (queue `cpu`) and the SQLite writer (queue `store`).
export * from './compute';
export * from './store';
export { observeStages, type StageInfo, type StageObserver } from './stage';
export { Artifacts, ArtifactError } from './artifacts';
