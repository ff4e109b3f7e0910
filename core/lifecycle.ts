// The lifecycle vocabulary: the states a campaign, run, round or stage is in, the stages of a
// round, and the order they run in. Pure: the workflow bundle imports it.

export const STATES = ['pending', 'running', 'completed', 'failed', 'paused', 'cancelled'] as const;
export type State = (typeof STATES)[number];

/** The six stages of one pruning round, in the order they run (DESIGN.md "One round of a run"). */
export const ROUND_STAGES = ['score', 'prune', 'finetune', 'validate', 'quantize', 'hardware-adapt'] as const;
export type RoundStage = (typeof ROUND_STAGES)[number];

/**
 * Every stage, in run order: the baseline's two (round 0 of the baseline run: `baseline` trains or
 * loads, then measures; `latency-table` measures the campaign's per-layer latency table, when
 * allocation is weight-driven) and the six round stages. Later stages' metrics override earlier
 * ones' when a round's metrics are merged (what the round ended with).
 */
export const STAGES = ['baseline', 'latency-table', ...ROUND_STAGES] as const;
export type Stage = (typeof STAGES)[number];

/** Position of a stage in {@link STAGES} (-1 for an unknown name). */
export const stageIndex = (s: string): number => STAGES.indexOf(s as Stage);
