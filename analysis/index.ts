// The Pareto refresh: read through db/, compute with core/pareto, store through db/ (imports core and db only).
export * from './pareto';
export * from './full-refresh';
export * from './budget';
