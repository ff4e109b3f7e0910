// The compute activities' inputs and results: small JSON (ids, artifact refs `<name>@sha256:<hex>`,
// numbers) that workflow histories hold. Never tensors or weights.
import type { CampaignSpec } from '../campaign/schema';
import type { ObjectiveValues, Weights } from '../core';
import type { ArtifactRef } from '../db/types';

export interface StageInput {
  campaignId: string;
  runId: string;
  round: number;
  spec: CampaignSpec;
  /** the model: `<name>@sha256:<hex>` (name: relative to the home folder; key: in the artifact store); a bare name in histories from before the store */
  model: string;
  /** the campaign's baseline model (same form); absent in histories from before the store: found by its name */
  baselineModel?: string;
  /** the run's objective weights and the baseline's objective values (weight-driven allocation) */
  weights?: Weights;
  objectiveBase?: ObjectiveValues;
  /** after rollbacks: remove only this share of what the pruning policy chose (default 1) */
  ratioScale?: number;
  /** which of the schedule's rounds this is (default `round`; retried rounds do not advance it) */
  scheduleRound?: number;
  /** score: the campaign's frozen latency table (trials' latencies are predicted from it, not timed) */
  latencyTable?: LatencyTableRef;
}

/** The campaign's latency table: a JSON file under its artifact folder, keyed by its sha256. */
export interface LatencyTableRef {
  /** `<name>@sha256:<hex>` (a bare home-relative name in histories from before the store) */
  path: string;
  /** of the file's text */
  sha256: string;
}

export interface LatencyTableResult extends StageResult {
  table: LatencyTableRef;
  /** measured here; read from target.latencyTable; or found from an earlier attempt of this activity */
  source: 'measured' | 'given' | 'reused';
}

export interface StageResult {
  attempt: number;
  ms: number;
  backend: string;
  /** keys of core/metrics.ts METRICS, and `channels.<layer>` */
  metrics: Record<string, number>;
  /** keys of core/metrics.ts SERIES: key → [[training step, value], …] */
  series?: Record<string, Array<[number, number]>>;
  artifacts?: ArtifactRef[];
  /** the training step a resumed training stage continued from */
  resumedFromStep?: number;
  /** the stage's output model folder (relative), when it makes one */
  model?: string;
  /** what the stage found (the baseline: the task and the data — label base, one-hot, pixel range, logits) and how it ran (why it trained op by op), one sentence each: appended to its stage-completed event */
  notes?: string[];
  /** layer name → channels after the stage */
  channels?: Record<string, number>;
}

export interface BaselineResult extends StageResult {
  model: string;
  /** the groups and layers pruning leaves whole, one line each `<group or layer>: <reason>` (ml/graph.ts blockedLines) */
  blocked?: string[];
  /** the deployment runtime the baseline's latency was measured on (ml/runtime.ts RuntimeInfo; also baseline/latency.json) */
  runtime?: object;
  tfjsVersion: string;
  prunewiseVersion: string;
}

export interface ValidateResult extends StageResult {
  /** false when a constraint broke: the round is rolled back */
  ok: boolean;
  reason?: string;
}
