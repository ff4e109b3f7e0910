// The metric keys a stage may report (the `metrics` table's `key` column), with units. One list:
// the workflow, the activities, db/ readers and the dashboard name metrics only from here, and
// tests check that what a real campaign records is in it.

export const METRICS = {
  // evaluation (baseline, validate)
  accuracy: 'top-1 accuracy on the test split, fraction 0–1',
  loss: 'mean loss on the test split',
  valAccuracy: 'top-1 accuracy on the validation split, fraction 0–1 (decisions use it)',
  valLoss: 'mean loss on the validation split',
  accuracyDrop: 'validation accuracy lost against the baseline, percentage points',
  mae: 'task regression: mean absolute error per output unit on the test split (accuracy is R² there)',
  valMae: 'task regression: mean absolute error per output unit on the validation split',
  // counted cost (baseline, prune)
  params: 'parameters, count',
  flops: 'floating-point operations per example, FLOPs = 2 × MACs',
  bytes: 'float32 weight bytes',
  // score / prune
  groups: 'prunable groups, count',
  blockedGroups: "groups (and layers with weights in no group) left whole, count; the reasons are the baseline's `blocked` event",
  channelsRemoved: 'channels the prune stage removed, summed over groups, count (0: the round pruned nothing)',
  flopsFractionToRemove:
    "a FLOPs schedule's ask of the round (any allocation but weights): the fraction of the round's incoming model's FLOPs to remove so that the baseline's fall by the schedule's share by this round; ≤ 0 when earlier rounds already removed that much (the round prunes nothing), fraction",
  sensitivityTrials: 'per-group sensitivity trials run, count',
  allocatedGroups: 'groups the weight-driven allocation pruned, count',
  estimatedDeltaJ: 'ΔJ(w) the allocation estimated for the round (estimate, before fine-tuning)',
  ratioScale: 'share of what the pruning policy chose that a retried round removes (halved per rollback)',
  reconstructedLayers: 'layers the prune stage refitted by least squares (pruning.reconstruct), count',
  reconstructErrorBefore:
    'relative output error ‖PW − Y‖² / ‖Y‖² of the refitted layers with the plainly pruned weights, mean over them, on the fit images (in-sample), fraction',
  reconstructErrorAfter: 'the same after the least-squares refit, fraction',
  predictedLatencyMs:
    "latency of one batch PREDICTED by the campaign's frozen latency table (Σ per-layer entries + per-call overhead), ms: what allocation decides on, never a measured latency",
  // finetune
  finetuneSteps: 'optimizer steps (batches) of fine-tuning, count',
  samplesPerSecond: 'training throughput, examples per second',
  scheduleRound: "which of the schedule's rounds the fine-tuning recipe was for (a round retried after a rollback has its predecessor's), count from 1",
  trainGraph:
    '1 when the training (baseline or fine-tune) ran in graph mode — each step one TensorFlow graph call on the native backend (ml/train-graph.ts) — 0 when op by op; the two give different numbers for one seed',
  // quantize
  int8Accuracy:
    'test accuracy of the 8-bit deployable variant (stock tfjs uint8 manifest: one min/scale per tensor), measured on the written weights, fraction 0–1',
  int8Bytes: 'weight bytes of the 8-bit deployable variant (stock tfjs uint8 manifest)',
  int8ValAccuracy: 'validation accuracy of the 8-bit deployable variant (exactly its weight files), fraction 0–1',
  energyJEstimatedInt8: "the baseline's joules per inference with 8-bit weights, estimated (the 8-bit candidates' energy is compared with it)",
  int8PerChannelAccuracy: 'test accuracy of the per-channel int8 variant (needs the prunewise loader; not deployable in stock tfjs), fraction 0–1',
  int8PerChannelBytes: 'weight bytes of the per-channel int8 variant (int8 kernels, float32 rest, with its scales)',
  // hardware-adapt
  latencyMs:
    "latency of one batch of latencyBatchSize, ms: the baseline's median (baseline stage) or THE model latency = baseline median ÷ speedup (core/latency.ts; estimated when latencyEstimated = 1)",
  latencyMsRaw: "the candidate's own median of its timed runs in the paired measurement, ms (debugging only: not the model's latency)",
  latencyP90Ms: '90th percentile of the raw timed runs of one batch, ms (debugging only)',
  latencyBatchSize: 'batch size latency is reported for, examples',
  latencyEstimated: '1 when latencyMs is a roofline estimate for a target profile, not a measurement',
  latencyMsLocal: "latency measured on the compute worker when the target's latency is an estimate, ms",
  latencyMsRoofline: 'roofline estimate of the latency for the target profile, ms (estimate)',
  memoryBoundLayers: 'layers the roofline model finds memory-bound, count (estimate)',
  speedup: 'paired speedup r against the baseline: exp(mean log(t_baseline / t_model)) over interleaved pairs (or the roofline ratio for profiles)',
  speedupLow: 'lower end of the 95 % interval of the speedup (measured only)',
  speedupHigh: 'upper end of the 95 % interval of the speedup (measured only); an interval containing 1 is "≈ baseline" and counts as 1',
  latencyPairs: 'interleaved (baseline, model) pairs timed for the speedup, count',
  energyJEstimated: 'joules per inference (one example), estimated by the named energy model',
  energyJMeasured: 'joules per inference measured by RAPL (CPU package)',
  baselineEnergyJMeasured: 'joules per inference of the baseline measured by RAPL alongside',
  // the round's outcome (written by the run workflow)
  objective: 'J(w) of the round, normalised to the baseline (which scores 1)',
  deployedBytes: 'bytes of the deployed weights (int8 or float32)',
  deployedInt8: '1 when the deployed variant is the 8-bit one (stock tfjs uint8 manifest)',
  deployedAccuracy: 'test accuracy of exactly the deployed weight files, fraction 0–1',
} as const;

export type MetricKey = keyof typeof METRICS;

/** Per-layer channel counts are recorded as `channels.<layer name>` (baseline and prune stages). */
export const CHANNELS_PREFIX = 'channels.';

/** Series (per training step): key → unit. */
export const SERIES = {
  trainLoss: 'mean training loss per epoch, keyed by the epoch number (1, 2, …)',
  batchLoss:
    'training loss per batch, bounded to at most 200 points: the mean over each group of ceil(steps / 200) consecutive batches, keyed by the last optimizer step of the group',
} as const;
export type SeriesKey = keyof typeof SERIES;

/** A stage's metrics: known keys plus `channels.<layer>`. */
export type Metrics = Partial<Record<MetricKey, number>> & Record<string, number>;

/** Whether `key` is a metric key this version knows (a listed key or `channels.<layer>`). */
export const isMetricKey = (key: string): boolean => key in METRICS || key.startsWith(CHANNELS_PREFIX);

/** Layer name → channels, as metrics. */
export const channelMetrics = (channels: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(channels).map(([k, v]) => [`${CHANNELS_PREFIX}${k}`, v]));
