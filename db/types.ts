// The record contract: what the workflows send the `record` activity to write (type-only imports
// keep workflows free of I/O).
import type { Stage, State } from '../core';

export type { Stage, State };

export interface ArtifactRef {
  kind: string; // 'model' | 'model-uint8' | 'model-int8-per-channel' | 'checkpoint' | 'deployable' | 'latency-table'
  path: string; // its name: relative to the home folder, where a worker checks it out
  bytes: number;
  sha256: string; // of the weights (weights.bin) for models, of the file for files
  /** the artifact store's key (`sha256:<hex>` of its tree); absent for artifacts recorded before the store */
  key?: string;
}

/** One state change for SQLite. The workflow sends batches of these to the `record` activity. */
export type RecordOp =
  | { op: 'campaign'; campaignId: string; state: State; error?: string }
  | { op: 'env'; campaignId: string; backend: string; tfjsVersion: string; prunewiseVersion: string }
  | {
      op: 'run';
      campaignId: string;
      runId: string;
      k: number;
      kind: 'baseline' | 'run';
      weights: Record<string, number> | null;
      state: State;
      error?: string;
    }
  /** the campaign's frozen latency table: campaigns.latency_table_sha256 and an artifact of the baseline run (round 0) */
  | { op: 'latency-table'; campaignId: string; runId: string; artifact: ArtifactRef }
  | {
      op: 'round';
      runId: string;
      round: number;
      state: State;
      objective?: number | null;
      /** why it ended so, for people (e.g. "rolled back (drop 3.10 pts > limit 2)") */ note?: string;
    }
  | {
      op: 'stage';
      runId: string;
      round: number;
      stage: Stage;
      state: State;
      attempts?: number;
      ms?: number;
      resumedFromStep?: number | null;
      taskQueue?: string;
      error?: string;
      metrics?: Record<string, number>;
      /** per-training-step series, e.g. fine-tune loss per epoch: key -> [[step, value], ...] (core/metrics SERIES) */
      series?: Record<string, Array<[number, number]>>;
      artifacts?: ArtifactRef[];
    }
  | {
      op: 'event';
      campaignId: string;
      key: string; // idempotency key: a retried record never adds the event twice
      runId?: string;
      round?: number;
      stage?: string;
      kind: string;
      message: string;
    };
