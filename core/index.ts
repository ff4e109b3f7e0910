// The shared vocabulary: pure (no I/O, no tfjs, safe inside the workflow bundle); imports nothing of ours.
export * from './lifecycle';
export * from './ids';
export * from './objective';
export * from './latency';
export * from './metrics';
export * from './pareto';
export * from './queues';
export * from './errors';
export * from './progress';
