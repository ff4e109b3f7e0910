// Plain types shared by db/, activities/ and workflows/ (type-only imports keep workflows free of I/O).

export type State = 'pending' | 'running' | 'completed' | 'failed' | 'paused' | 'cancelled';
export const STAGES = ['score', 'prune', 'finetune', 'validate', 'quantize', 'hardware-adapt'] as const;
export type StageName = (typeof STAGES)[number];
/** Stage-like steps outside the six-stage round (the baseline is round 0 of the baseline run). */
export type StepName = StageName | 'baseline';
/** The order steps run in: later steps' metrics override earlier ones' (what a round ended with). */
export const STEP_ORDER: StepName[] = ['baseline', ...STAGES];
export const stepIndex = (s: string) => STEP_ORDER.indexOf(s as StepName);

export interface ArtifactRef {
  kind: string; // 'model' | 'model-int8' | 'checkpoint' | 'deployable'
  path: string; // relative to the home folder
  bytes: number;
  sha256: string;
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
  | { op: 'round'; runId: string; round: number; state: State; objective?: number | null }
  | {
      op: 'stage';
      runId: string;
      round: number;
      stage: StepName;
      state: State;
      attempts?: number;
      ms?: number;
      resumedFromStep?: number | null;
      taskQueue?: string;
      error?: string;
      metrics?: Record<string, number>;
      /** per-step series, e.g. fine-tune loss per epoch: key -> [[step, value], ...] */
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
