// Deterministic orchestration only: campaign → baseline → one child run per weight vector →
// rounds → the six stage activities. No I/O, tfjs, env or clock here: only @temporalio/workflow
// APIs and plain arithmetic. Every retry/timeout policy sits next to the stage it governs.
// A change to this file that alters the commands it issues must go behind `patched()`:
// test/replay.test.ts replays recorded histories to catch changes that would break campaigns in flight.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ContinueAsNew,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type { BaselineResult, ComputeActivities, LatencyTableRef, StageResult, StoreActivities } from '../activities';
import { measureOf, usesLatencyTable } from '../campaign/target';
import type { CampaignSpec } from '../campaign/schema';
import {
  baselineRunId as baselineRunIdOf,
  normaliseQueues,
  objectiveJ,
  objectiveValues,
  runIdOf,
  targetQueue,
  type RoundStage,
  type State,
  type TaskQueues,
  type Weights,
} from '../core';
import type { RecordOp } from '../db/types';

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const progressQuery = defineQuery<Progress>('progress');

export interface Progress {
  state: State;
  paused: boolean;
  round?: number;
  stage?: string;
  runs?: number;
}

/** The store activity's retry interval (for drills: PRUNEWISE_STORE_RETRY_MAX_MS); default 1 s doubling up to 1 min. */
export interface StoreRetry {
  initialIntervalMs: number;
  maximumIntervalMs: number;
}

export interface CampaignWorkflowInput {
  campaignId: string;
  spec: CampaignSpec;
  queues: TaskQueues;
  storeRetry?: StoreRetry;
}

export interface RunWorkflowInput {
  campaignId: string;
  runId: string;
  k: number;
  spec: CampaignSpec;
  queues: TaskQueues;
  weights: Weights;
  baseline: { model: string; metrics: Record<string, number> };
  /** the campaign's frozen latency table (absent for campaigns started before it existed) */
  latencyTable?: LatencyTableRef;
  startPaused?: boolean;
  storeRetry?: StoreRetry;
  /** set when the run continues as new: where it was */
  resume?: RunState;
}

interface RunState {
  round: number;
  model: string;
  best: { round: number; model: string; objective: number };
  /** rounds completed (rolled-back rounds do not count); absent in states carried over by older versions */
  completed?: number;
  /** rollbacks in a row: the next round removes 0.5^retries of what its policy chooses */
  retries?: number;
}

export interface RunOutcome {
  runId: string;
  roundsCompleted: number;
  best: RunState['best'];
  stoppedBy?: string;
}

/**
 * The SQLite writer. It retries as long as the campaign lives (unlimited attempts, backoff up to a
 * minute): a finished stage's result is never dropped because the store was away (database locked,
 * disk full, its worker down, another home refusing). Histories from before keep their 30 attempts.
 */
function storeActivities(queues: TaskQueues, tuning?: StoreRetry) {
  const forever = patched('store-retries-forever');
  return proxyActivities<StoreActivities>({
    taskQueue: queues.store,
    startToCloseTimeout: '1 minute',
    retry: forever
      ? {
          initialInterval: tuning?.initialIntervalMs ?? 1000,
          backoffCoefficient: 2,
          maximumInterval: tuning?.maximumIntervalMs ?? 60_000,
          maximumAttempts: Number.POSITIVE_INFINITY, // unlimited
        }
      : { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 30 },
  });
}

/** Compute stages: short ones retry a few times; bad input fails at once (non-retryable). */
function computeActivities(spec: CampaignSpec, queues: TaskQueues) {
  const retry = { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5, nonRetryableErrorTypes: ['BadInput'] };
  const heartbeatTimeout = `${spec.execution.heartbeatTimeoutSeconds} seconds`;
  const short = proxyActivities<ComputeActivities>({ taskQueue: queues.cpu, startToCloseTimeout: '20 minutes', heartbeatTimeout, retry });
  // the stages that train go to the gpu queue when the campaign asks (`prunewise worker --gpu` serves
  // it); campaigns on cpu (and every one started before trainOn existed) take no marker and issue what they did
  const trainQueue = spec.execution.trainOn === 'gpu' && patched('train-on-gpu') ? queues.gpu : queues.cpu;
  // training stages: hours long, heartbeat every batch, resume from checkpoints on retry
  const long = proxyActivities<ComputeActivities>({
    taskQueue: trainQueue,
    startToCloseTimeout: '12 hours',
    heartbeatTimeout,
    retry: { ...retry, maximumAttempts: 20 },
  });
  // measured on the device: the stage waits on the target's queue for a worker started there
  const onDevice = measureOf(spec.target) === 'worker';
  const hw = onDevice
    ? proxyActivities<ComputeActivities>({ taskQueue: targetQueue(queues, spec.target.name), startToCloseTimeout: '20 minutes', heartbeatTimeout, retry })
    : short;
  return {
    baseline: long.baseline,
    score: short.score,
    prune: short.prune,
    finetune: long.finetune,
    validate: short.validate,
    quantize: short.quantize,
    hardwareAdapt: hw.hardwareAdapt,
    // timed where the model's latency is measured (the device's queue for measure: worker)
    latencyTable: hw.latencyTable,
    hardwareAdaptQueue: onDevice ? targetQueue(queues, spec.target.name) : queues.cpu,
    /** where baseline and finetune run (recorded with their stage) */
    trainQueue,
  };
}

/** The message of what went wrong, below the activity/child-workflow wrappers (whose own message says nothing). */
const errorText = (e: unknown): string => {
  let err = e as Error & { cause?: unknown };
  while ((err instanceof ActivityFailure || err instanceof ChildWorkflowFailure) && err.cause) err = err.cause as Error;
  return err?.message ?? String(e);
};

// ------------------------------------------------------------------------------- campaign

export async function campaignWorkflow(input: CampaignWorkflowInput): Promise<{ runs: RunOutcome[] }> {
  const { campaignId, spec } = input;
  const queues = normaliseQueues(input.queues);
  const compute = computeActivities(spec, queues);
  const store = storeActivities(queues, input.storeRetry);
  /** Records a state change in SQLite, also while the workflow is being cancelled. */
  const recordAlways = (ops: RecordOp[]) => CancellationScope.nonCancellable(() => store.record(ops));
  const progress: Progress = { state: 'running', paused: false };
  const children: Array<ChildWorkflowHandle<typeof runWorkflow>> = [];
  let mirrored = false;

  setHandler(progressQuery, () => progress);
  setHandler(pauseSignal, () => {
    progress.paused = true;
    for (const c of children) void c.signal(pauseSignal);
  });
  setHandler(resumeSignal, () => {
    progress.paused = false;
    for (const c of children) void c.signal(resumeSignal);
  });

  // mirror pause/resume into SQLite as it happens (display only: a failure here, e.g. while the
  // campaign is being cancelled, must not fail the campaign)
  void (async () => {
    for (;;) {
      await condition(() => progress.paused !== mirrored);
      mirrored = progress.paused;
      const state: State = mirrored ? 'paused' : 'running';
      await store.record([
        { op: 'campaign', campaignId, state },
        {
          op: 'event',
          campaignId,
          key: `${campaignId}/${state}/${workflowInfo().historyLength}`,
          kind: state,
          message: `campaign ${mirrored ? 'paused' : 'resumed'}`,
        },
      ]);
    }
  })().catch(() => undefined);

  const baselineRunId = baselineRunIdOf(campaignId);
  try {
    await store.record([
      { op: 'campaign', campaignId, state: 'running' },
      { op: 'run', campaignId, runId: baselineRunId, k: 0, kind: 'baseline', weights: null, state: 'running' },
      { op: 'stage', runId: baselineRunId, round: 0, stage: 'baseline', state: 'running', taskQueue: compute.trainQueue },
      {
        op: 'event',
        campaignId,
        key: `${campaignId}/started`,
        kind: 'started',
        message: `campaign ${campaignId} started: ${spec.weights.length} runs × ${spec.pruning.rounds} rounds`,
      },
    ]);
    let base: BaselineResult;
    try {
      base = await compute.baseline({ campaignId, spec });
    } catch (e) {
      if (!isCancellation(e)) {
        await recordAlways([
          { op: 'stage', runId: baselineRunId, round: 0, stage: 'baseline', state: 'failed', error: errorText(e) },
          { op: 'run', campaignId, runId: baselineRunId, k: 0, kind: 'baseline', weights: null, state: 'failed', error: errorText(e) },
        ]);
      }
      throw e;
    }
    await store.record([
      { op: 'env', campaignId, backend: base.backend, tfjsVersion: base.tfjsVersion, prunewiseVersion: base.prunewiseVersion },
      {
        op: 'stage',
        runId: baselineRunId,
        round: 0,
        stage: 'baseline',
        state: 'completed',
        attempts: base.attempt,
        ms: base.ms,
        resumedFromStep: base.resumedFromStep ?? null,
        metrics: base.metrics,
        series: base.series,
        artifacts: base.artifacts,
      },
      { op: 'run', campaignId, runId: baselineRunId, k: 0, kind: 'baseline', weights: null, state: 'completed' },
      {
        op: 'event',
        campaignId,
        key: `${baselineRunId}/completed`,
        runId: baselineRunId,
        stage: 'baseline',
        kind: 'stage-completed',
        message: `baseline: test accuracy ${(base.metrics.accuracy * 100).toFixed(2)}%, ${base.metrics.params} params, ${base.metrics.latencyMs.toFixed(2)} ms/batch of ${spec.target.batchSize} (measured on ${spec.target.runtime ?? 'tfjs-wasm'}, trained on ${base.backend})${base.notes?.length ? `; ${base.notes.join('; ')}` : ''}`,
      },
      // what pruning leaves whole, and why (an op more in the same record call: no new command; older results have no `blocked`)
      ...(base.blocked?.length
        ? [
            {
              op: 'event',
              campaignId,
              key: `${campaignId}/blocked`,
              runId: baselineRunId,
              stage: 'baseline',
              kind: 'blocked',
              message: `pruning: ${base.metrics.groups ?? '?'} prunable group${base.metrics.groups === 1 ? '' : 's'}; left whole: ${base.blocked.join('; ')}`,
            } as const,
          ]
        : []),
    ]);

    // the latency table allocation decides from: measured (or read) once, frozen for every run and round
    let latencyTable: LatencyTableRef | undefined;
    if (usesLatencyTable(spec) && patched('latency-table')) {
      // a stage of the baseline run, so `status` shows where it runs (a device's queue with measure: worker) and waits
      const ltStage = { op: 'stage', runId: baselineRunId, round: 0, stage: 'latency-table' } as const;
      await store.record([{ ...ltStage, state: 'running', taskQueue: compute.hardwareAdaptQueue }]);
      let lt: Awaited<ReturnType<typeof compute.latencyTable>>;
      try {
        lt = await compute.latencyTable({ campaignId, spec, model: base.model });
      } catch (e) {
        if (!isCancellation(e)) await recordAlways([{ ...ltStage, state: 'failed', error: errorText(e) }]);
        throw e;
      }
      latencyTable = lt.table;
      await store.record([
        { ...ltStage, state: 'completed', attempts: lt.attempt, ms: lt.ms, metrics: lt.metrics },
        { op: 'latency-table', campaignId, runId: baselineRunId, artifact: lt.artifacts![0] },
        {
          op: 'event',
          campaignId,
          key: `${campaignId}/latency-table`,
          runId: baselineRunId,
          kind: 'latency-table',
          message: `latency table ${lt.source} on ${spec.target.runtime ?? lt.backend} (sha256 ${lt.table.sha256.slice(0, 12)}): allocation uses its predictions, ${lt.metrics.predictedLatencyMs.toFixed(2)} ms predicted for the baseline`,
        },
      ]);
    }

    for (const [i, weights] of spec.weights.entries()) {
      const k = i + 1;
      children.push(
        await startChild(runWorkflow, {
          workflowId: runIdOf(campaignId, k),
          args: [
            {
              campaignId,
              runId: runIdOf(campaignId, k),
              k,
              spec,
              queues,
              weights,
              baseline: { model: base.model, metrics: base.metrics },
              latencyTable,
              startPaused: progress.paused,
              ...(input.storeRetry ? { storeRetry: input.storeRetry } : {}),
            },
          ],
        }),
      );
    }
    progress.runs = children.length;
    const settled = await Promise.allSettled(children.map((c) => c.result()));
    const failed = settled.filter((s) => s.status === 'rejected');
    if (failed.some((s) => isCancellation((s as PromiseRejectedResult).reason))) throw (failed[0] as PromiseRejectedResult).reason;
    if (failed.length > 0) {
      const why = failed.map((s) => errorText((s as PromiseRejectedResult).reason)).join('; ');
      await store.record([
        { op: 'campaign', campaignId, state: 'failed', error: why },
        { op: 'event', campaignId, key: `${campaignId}/failed`, kind: 'failed', message: `campaign failed: ${why}` },
      ]);
      progress.state = 'failed';
      throw ApplicationFailure.nonRetryable(`${failed.length} of ${children.length} runs failed: ${why}`, 'RunsFailed');
    }
    const runs = settled.map((s) => (s as PromiseFulfilledResult<RunOutcome>).value);
    await store.record([
      { op: 'campaign', campaignId, state: 'completed' },
      { op: 'event', campaignId, key: `${campaignId}/completed`, kind: 'completed', message: `campaign completed: ${runs.length} runs` },
    ]);
    progress.state = 'completed';
    return { runs };
  } catch (e) {
    if (isCancellation(e)) {
      progress.state = 'cancelled';
      await recordAlways([
        { op: 'campaign', campaignId, state: 'cancelled' },
        { op: 'event', campaignId, key: `${campaignId}/cancelled`, kind: 'cancelled', message: 'campaign cancelled' },
      ]);
    } else if (!(e instanceof ApplicationFailure && e.type === 'RunsFailed')) {
      progress.state = 'failed';
      await recordAlways([
        { op: 'campaign', campaignId, state: 'failed', error: errorText(e) },
        { op: 'event', campaignId, key: `${campaignId}/failed`, kind: 'failed', message: `campaign failed: ${errorText(e)}` },
      ]);
    }
    throw e;
  }
}

// ------------------------------------------------------------------------------- one run

export async function runWorkflow(input: RunWorkflowInput): Promise<RunOutcome> {
  const { campaignId, runId, k, spec, weights, baseline } = input;
  const queues = normaliseQueues(input.queues);
  const compute = computeActivities(spec, queues);
  const store = storeActivities(queues, input.storeRetry);
  const recordAlways = (ops: RecordOp[]) => CancellationScope.nonCancellable(() => store.record(ops));
  const progress: Progress = { state: 'running', paused: input.startPaused ?? false };
  setHandler(progressQuery, () => progress);
  setHandler(pauseSignal, () => void (progress.paused = true));
  setHandler(resumeSignal, () => void (progress.paused = false));

  const baseValues = objectiveValues(baseline.metrics, baseline.metrics.bytes);
  const state: RunState = input.resume ?? { round: 1, model: baseline.model, best: { round: 0, model: baseline.model, objective: 1 } };
  const runOp = (s: State, error?: string): RecordOp => ({ op: 'run', campaignId, runId, k, kind: 'run', weights, state: s, error });

  async function waitWhilePaused(): Promise<void> {
    if (!progress.paused) return;
    await store.record([runOp('paused')]);
    await condition(() => !progress.paused);
    await store.record([runOp('running')]);
  }

  /** One stage: mirror "running", call the activity, mirror the outcome with its metrics. */
  async function stage<R extends StageResult>(name: RoundStage, round: number, call: () => Promise<R>): Promise<R> {
    await waitWhilePaused();
    progress.stage = name;
    const taskQueue = name === 'hardware-adapt' ? compute.hardwareAdaptQueue : name === 'finetune' ? compute.trainQueue : queues.cpu;
    await store.record([{ op: 'stage', runId, round, stage: name, state: 'running', taskQueue }]);
    let r: R;
    try {
      r = await call();
    } catch (e) {
      if (!isCancellation(e)) {
        await recordAlways([
          { op: 'stage', runId, round, stage: name, state: 'failed', error: errorText(e) },
          {
            op: 'event',
            campaignId,
            key: `${runId}/r${round}/${name}/failed`,
            runId,
            round,
            stage: name,
            kind: 'stage-failed',
            message: `run-${k} round ${round} ${name} failed: ${errorText(e)}`,
          },
        ]);
      }
      throw e;
    }
    const resumed = r.resumedFromStep ? `, resumed from step ${r.resumedFromStep}` : '';
    await store.record([
      {
        op: 'stage',
        runId,
        round,
        stage: name,
        state: 'completed',
        attempts: r.attempt,
        ms: r.ms,
        resumedFromStep: r.resumedFromStep ?? null,
        metrics: r.metrics,
        series: r.series,
        artifacts: r.artifacts,
      },
      {
        op: 'event',
        campaignId,
        key: `${runId}/r${round}/${name}/completed`,
        runId,
        round,
        stage: name,
        kind: 'stage-completed',
        message: `run-${k} round ${round} ${name} done in ${(r.ms / 1000).toFixed(1)} s (attempt ${r.attempt}${resumed})${r.notes?.length ? `; ${r.notes.join('; ')}` : ''}`,
      },
    ]);
    return r;
  }

  // rolled-back rounds are retried with half the ratio (a new round number each), up to
  // constraints.rollbackRetries in a row; histories from before stop at the first rollback
  const retryRollbacks = patched('rollback-retries');
  // every prune stage is told which of the schedule's rounds it is (rolled-back rounds do not advance it); histories from
  // before told only retries, so a round after a successful retry planned as if the schedule were one round further on
  const scheduleEveryRound = retryRollbacks && patched('schedule-round-always');
  const maxRetries = spec.constraints.rollbackRetries ?? 2;
  state.completed ??= state.round - 1;
  state.retries ??= 0;
  const moreRounds = () => (retryRollbacks ? state.completed! < spec.pruning.rounds : state.round <= spec.pruning.rounds);

  try {
    if (!input.resume) await store.record([runOp('running')]);
    let roundsThisExecution = 0;
    let stoppedBy: string | undefined;
    for (; moreRounds(); state.round++) {
      if (roundsThisExecution >= spec.execution.roundsPerExecution) {
        // keep each execution's history small: carry the state over into a fresh one
        await continueAsNew<typeof runWorkflow>({ ...input, startPaused: progress.paused, resume: state });
      }
      roundsThisExecution++;
      const round = state.round;
      progress.round = round;
      await store.record([{ op: 'round', runId, round, state: 'running' }]);
      const base = { campaignId, runId, round, spec };
      const retry =
        retryRollbacks && state.retries! > 0
          ? { ratioScale: 0.5 ** state.retries!, scheduleRound: state.completed! + 1 }
          : scheduleEveryRound
            ? { scheduleRound: state.completed! + 1 }
            : {};

      const scored = await stage('score', round, () => compute.score({ ...base, model: state.model, latencyTable: input.latencyTable }));
      const pruned = await stage('prune', round, () =>
        compute.prune({ ...base, model: state.model, baselineModel: baseline.model, scores: scored.scores, weights, objectiveBase: baseValues, ...retry }),
      );
      // the fine-tuning recipe and the deployable's prunewise.json follow the schedule's round (finetune.lastRound,
      // sparsity.rounds), not the round number that rollbacks advance
      const scheduled = 'scheduleRound' in retry && patched('finetune-schedule-round') ? { scheduleRound: retry.scheduleRound } : {};
      const tuned = await stage('finetune', round, () => compute.finetune({ ...base, model: pruned.model!, ...scheduled }));
      const val = await stage('validate', round, () => compute.validate({ ...base, model: tuned.model!, baselineValAccuracy: baseline.metrics.valAccuracy }));
      if (!val.ok && retryRollbacks) {
        const note = `rolled back (drop ${val.metrics.accuracyDrop.toFixed(2)} pts > limit ${spec.constraints.maxAccuracyDrop})`;
        const again = state.retries! < maxRetries;
        const next = again
          ? `retrying as round ${round + 1} with ${0.5 ** (state.retries! + 1)} of the ratio`
          : state.completed === 0
            ? `no pruning fits the limit: the run's result is the baseline`
            : `the run keeps round ${state.best.round}`;
        await store.record([
          { op: 'round', runId, round, state: 'cancelled', note },
          { op: 'event', campaignId, key: `${runId}/r${round}/rollback`, runId, round, kind: 'rollback', message: `run-${k} round ${round} ${note}; ${next}` },
        ]);
        if (again) {
          state.retries!++;
          continue;
        }
        stoppedBy = state.completed === 0 ? 'no pruning fits the limit' : `round ${round} ${note} ${state.retries} time(s) in a row`;
        break;
      }
      if (!val.ok) {
        stoppedBy = `round ${round} rolled back: ${val.reason}`;
        await store.record([
          { op: 'round', runId, round, state: 'cancelled' },
          {
            op: 'event',
            campaignId,
            key: `${runId}/r${round}/rollback`,
            runId,
            round,
            kind: 'rollback',
            message: `run-${k} ${stoppedBy}; the run keeps round ${state.best.round}`,
          },
        ]);
        break;
      }
      let int8: StageResult | undefined;
      if (spec.quantization.int8) int8 = await stage('quantize', round, () => compute.quantize({ ...base, model: tuned.model! }));
      // deploy the 8-bit variant (stock tfjs uint8) when it costs at most half a point of test accuracy (a drop of
      // exactly 0.5 points computed in floating point is 0.5000000000000004: compared with a tolerance; older histories without)
      const int8Tolerance = patched('int8-boundary') ? 1e-9 : 0;
      const useInt8 = !!int8 && (val.metrics.accuracy - int8.metrics.int8Accuracy) * 100 <= 0.5 + int8Tolerance;
      // the accuracy measured on exactly the deployed weight files (activity inputs only: no new command)
      const deployedAccuracy = useInt8 ? int8!.metrics.int8Accuracy : val.metrics.accuracy;
      const hw = await stage('hardware-adapt', round, () =>
        compute.hardwareAdapt({
          ...base,
          ...scheduled,
          model: tuned.model!,
          baselineModel: baseline.model,
          int8Model: int8?.model,
          useInt8,
          baselineLatencyMs: baseline.metrics.latencyMs,
          deployedAccuracy,
        }),
      );
      const deployedBytes = useInt8 ? int8!.metrics.int8Bytes : pruned.metrics.bytes;
      const j = objectiveJ(
        weights,
        objectiveValues(
          { ...val.metrics, ...(useInt8 ? { ...int8!.metrics, deployedInt8: 1 } : {}), ...hw.metrics },
          deployedBytes,
          baseline.metrics.latencyMs,
          baseline.metrics.energyJEstimated,
        ),
        baseValues,
      );
      state.model = tuned.model!;
      state.completed!++;
      state.retries = 0;
      if (j < state.best.objective) state.best = { round, model: tuned.model!, objective: j };
      await store.record([
        { op: 'round', runId, round, state: 'completed', objective: j },
        {
          op: 'stage',
          runId,
          round,
          stage: 'hardware-adapt',
          state: 'completed',
          metrics: { objective: j, deployedBytes, deployedInt8: useInt8 ? 1 : 0, deployedAccuracy },
        },
      ]);
    }
    progress.state = 'completed';
    await store.record([
      runOp('completed'),
      {
        op: 'event',
        campaignId,
        key: `${runId}/completed`,
        runId,
        kind: 'run-completed',
        message: `run-${k} completed: best round ${state.best.round}, J = ${state.best.objective.toFixed(4)}${stoppedBy ? ` (${stoppedBy})` : ''}`,
      },
    ]);
    return { runId, roundsCompleted: retryRollbacks ? state.completed! : state.round - 1, best: state.best, stoppedBy };
  } catch (e) {
    if (e instanceof ContinueAsNew) throw e;
    if (isCancellation(e)) {
      progress.state = 'cancelled';
      await recordAlways([runOp('cancelled')]);
    } else {
      progress.state = 'failed';
      await recordAlways([runOp('failed', errorText(e))]);
    }
    throw e;
  }
}
