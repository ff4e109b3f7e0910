// Progress within a stage and liveness of the worker running it, from what the stage heartbeats
// (activities/stage.ts `beat`) and what the Temporal server says of the pending activity. Pure: the
// CLI reads Temporal (cli/live.ts) and both the CLI and the dashboard format with these functions.

/** What a stage heartbeats (all optional: a stage reports what it knows). Training fills the training fields. */
export interface StageProgressDetails {
  /** training steps (optimizer updates) done and in all, or items of `what` done and in all */
  step?: number;
  total?: number;
  /** the epoch in progress, 1-based, of `epochs` */
  epoch?: number;
  epochs?: number;
  /** the batch in progress within the epoch, 1-based, of `batchesPerEpoch` */
  batch?: number;
  batchesPerEpoch?: number;
  /** training throughput over this attempt (examples per second, wall clock) */
  samplesPerSecond?: number;
  /** mean training loss of the last batch */
  loss?: number;
  /** seconds this stage still needs at its current rate (the worker's estimate when it heartbeat) */
  secondsLeft?: number;
  /** what a non-training stage counts (e.g. "sensitivity trials", "latency pairs") */
  what?: string;
  /** relative path of the newest checkpoint (resumption, not progress) */
  checkpoint?: string;
}

/** The liveness of a stage's activity as the server sees it. */
export type LiveState =
  /** a worker runs it and heartbeats */
  | 'running'
  /** its last heartbeat is older than the heartbeat timeout, or it timed out and waits for its retry */
  | 'worker-lost'
  /** waiting for a retry after a failure that was not a lost worker */
  | 'retrying'
  /** scheduled, not started yet (first attempt) */
  | 'scheduled';

/** One running stage's activity, as read from Temporal (cli/live.ts) and classified here. */
export interface LiveStage {
  /** the workflow running it: a run id (`<campaign>/run-<k>`) or the campaign id (the baseline) */
  workflowId: string;
  /** the activity type (the stage's name in camelCase: baseline, finetune, hardwareAdapt …) */
  activity: string;
  state: LiveState;
  attempt: number;
  /** seconds since the last heartbeat (or since the attempt started when none came yet); null if never started */
  heartbeatAgeSeconds: number | null;
  heartbeatTimeoutSeconds: number;
  details: StageProgressDetails | null;
  /** seconds until the stage ends at its current rate (training: from its heartbeat), null when unknown */
  etaSeconds: number | null;
  /** the last failure's message (the reason of a retry) */
  lastFailure: string | null;
  /** activity pollers on the stage's task queue (undefined: not asked) */
  pollers?: number;
  /**
   * seconds a retry has sat in its task queue unclaimed (null: not waiting). A queue any live worker
   * polls hands a task out within a second, so a few seconds here mean no worker serves it.
   */
  unclaimedSeconds: number | null;
}

/** Seconds after which an unclaimed retry means no live worker polls its queue. */
export const UNCLAIMED_NO_WORKER_SECONDS = 5;

/** What the server reports of a pending activity (the fields of PendingActivityInfo this needs). */
export interface PendingActivity {
  activity: string;
  /** PENDING_ACTIVITY_STATE_*: 1 scheduled, 2 started, 3 cancel requested (as numbers or names) */
  state: 'scheduled' | 'started' | 'cancel-requested';
  attempt: number;
  /** epoch ms */
  lastHeartbeatMs: number | null;
  lastStartedMs: number | null;
  details: StageProgressDetails | null;
  lastFailure: string | null;
  /** the last failure was a timeout (heartbeat or start-to-close): the worker went silent */
  lastFailureTimeout: boolean;
  /** epoch ms when the retry entered its task queue (the last attempt's end + the retry interval); null when not waiting for one */
  retryQueuedMs: number | null;
}

/**
 * Classifies a pending activity. Worker lost: started but silent for longer than the heartbeat
 * timeout (the server has not yet timed it out), or timed out and waiting for its retry — which
 * starts when a worker polls its task queue.
 */
export function classifyPending(workflowId: string, p: PendingActivity, nowMs: number, heartbeatTimeoutSeconds: number, pollers?: number): LiveStage {
  const since = p.lastHeartbeatMs ?? p.lastStartedMs;
  const age = since === null ? null : Math.max(0, (nowMs - since) / 1000);
  let state: LiveState;
  if (p.state === 'started' || p.state === 'cancel-requested') state = age !== null && age > heartbeatTimeoutSeconds ? 'worker-lost' : 'running';
  else if (p.attempt > 1) state = p.lastFailureTimeout ? 'worker-lost' : 'retrying';
  else state = 'scheduled';
  const d = p.details;
  let eta: number | null = null;
  if (state === 'running' && d?.secondsLeft !== undefined)
    eta = Math.max(0, d.secondsLeft - (p.lastHeartbeatMs !== null ? (nowMs - p.lastHeartbeatMs) / 1000 : 0));
  return {
    workflowId,
    activity: p.activity,
    state,
    attempt: p.attempt,
    heartbeatAgeSeconds: age === null ? null : Math.round(age * 10) / 10,
    heartbeatTimeoutSeconds,
    details: d,
    etaSeconds: eta === null ? null : Math.round(eta),
    lastFailure: p.lastFailure,
    pollers,
    unclaimedSeconds:
      p.state === 'scheduled' && p.attempt > 1 && p.retryQueuedMs !== null && nowMs > p.retryQueuedMs ? Math.round((nowMs - p.retryQueuedMs) / 1000) : null,
  };
}

/** "42 s", "3 min 05 s", "1 h 02 min". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** The message for a stage whose worker is gone. */
export const WORKER_LOST = 'worker lost — retrying when a worker polls';

/**
 * One line of a live stage's progress (without its name): "epoch 2/3, batch 14/32, 1 830 samples/s,
 * ETA 41 s", "sensitivity trials 12/40", or the worker-lost / retry / waiting message.
 */
export function describeLive(s: LiveStage): string {
  const d = s.details ?? {};
  if (s.state === 'worker-lost') {
    const silent = s.heartbeatAgeSeconds !== null ? ` (no heartbeat for ${formatDuration(s.heartbeatAgeSeconds)}, timeout ${s.heartbeatTimeoutSeconds} s)` : '';
    const at =
      d.epoch !== undefined && d.epochs
        ? `; was at epoch ${d.epoch}/${d.epochs}${d.batch !== undefined ? `, batch ${d.batch}/${d.batchesPerEpoch}` : ''}`
        : d.step !== undefined && d.total
          ? `; was at ${d.what ?? 'step'} ${d.step}/${d.total}`
          : '';
    return `${WORKER_LOST}${silent}${at}${s.attempt > 1 ? `; attempt ${s.attempt}` : ''}`;
  }
  if (s.state === 'retrying') return `retrying (attempt ${s.attempt}${s.lastFailure ? ` after: ${s.lastFailure}` : ''})`;
  if (s.state === 'scheduled') return 'waiting for a worker to start it';
  return describeProgress(d, s.etaSeconds, s.attempt);
}

/** Progress details as words: "epoch 2/3, batch 14/32, 1830 samples/s, loss 0.3121, ETA 41 s". */
export function describeProgress(d: StageProgressDetails, etaSeconds: number | null | undefined, attempt = 1): string {
  const parts: string[] = [];
  if (d.epoch !== undefined && d.epochs) parts.push(`epoch ${d.epoch}/${d.epochs}`);
  if (d.batch !== undefined && d.batchesPerEpoch) parts.push(`batch ${d.batch}/${d.batchesPerEpoch}`);
  else if (d.step !== undefined && d.total) parts.push(`${d.what ?? 'step'} ${d.step}/${d.total}`);
  else if (d.step !== undefined) parts.push(`${d.what ?? 'step'} ${d.step}`);
  else if (d.what) parts.push(d.what);
  if (d.samplesPerSecond) parts.push(`${Math.round(d.samplesPerSecond)} samples/s`);
  if (d.loss !== undefined && Number.isFinite(d.loss)) parts.push(`loss ${d.loss.toFixed(4)}`);
  if (etaSeconds !== null && etaSeconds !== undefined) parts.push(`ETA ${formatDuration(etaSeconds)}`);
  if (attempt > 1) parts.push(`attempt ${attempt}`);
  return parts.length ? parts.join(', ') : 'running';
}

/** The stage name (core/lifecycle) of an activity type (camelCase). */
export const stageOfActivity = (activity: string): string => activity.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** What `estimateRemaining` needs of a campaign's recorded status (db/read CampaignStatus fits). */
export interface RemainingInput {
  state: string;
  baselineStage: { state: string; ms: number | null } | null;
  runs: Array<{
    id: string;
    state: string;
    rounds: Array<{ round: number; state: string; stages: Record<string, { state: string; ms: number | null }> }>;
  }>;
}

/**
 * The time a campaign still needs, estimated: per run, the stages left in its current round and
 * `roundsPerRun` minus the rounds it started, each at the mean time that stage took so far in this
 * campaign (a running stage: its own ETA when it heartbeats one); the runs' sums divided by the
 * stages running at once. An estimate (rollbacks, early stops and contention change it); null until
 * every stage kind that is still to come has been timed once.
 * @returns seconds per run id (null when unknown) and for the campaign
 */
export function estimateRemaining(
  s: RemainingInput,
  roundStages: readonly string[],
  roundsPerRun: number,
  live: LiveStage[],
  runsTotal = s.runs.length,
): { runs: Record<string, number | null>; campaign: number | null } {
  const sums = new Map<string, { n: number; ms: number }>();
  for (const r of s.runs)
    for (const rd of r.rounds)
      for (const [name, st] of Object.entries(rd.stages))
        if (st.state === 'completed' && st.ms !== null) {
          const v = sums.get(name) ?? { n: 0, ms: 0 };
          sums.set(name, { n: v.n + 1, ms: v.ms + st.ms });
        }
  const mean = (name: string) => {
    const v = sums.get(name);
    return v ? v.ms / v.n / 1000 : null;
  };
  const liveOf = (runId: string, stage: string) => live.find((l) => l.workflowId === runId && stageOfActivity(l.activity) === stage);
  const runs: Record<string, number | null> = {};
  let total = 0;
  let known = true;
  for (const r of s.runs) {
    if (['completed', 'failed', 'cancelled'].includes(r.state)) {
      runs[r.id] = 0;
      continue;
    }
    let left = 0;
    let ok = true;
    const add = (x: number | null) => (x === null ? (ok = false) : (left += x));
    const current = r.rounds[r.rounds.length - 1];
    const currentOpen = current && !['completed', 'failed', 'cancelled'].includes(current.state);
    if (currentOpen) {
      for (const name of roundStages) {
        const st = current.stages[name];
        if (st?.state === 'completed') continue;
        if (st?.state === 'running') {
          const l = liveOf(r.id, name);
          add(l?.etaSeconds ?? mean(name));
        } else add(mean(name));
      }
    }
    const startedRounds = r.rounds.length;
    for (let i = startedRounds; i < roundsPerRun; i++) for (const name of roundStages) add(mean(name));
    runs[r.id] = ok ? Math.round(left) : null;
    if (ok) total += left;
    else known = false;
  }
  // runs not recorded yet (started later): every round of theirs is still to come
  for (let i = s.runs.length; i < runsTotal; i++)
    for (let r = 0; r < roundsPerRun; r++)
      for (const name of roundStages) {
        const m = mean(name);
        if (m === null) known = false;
        else total += m;
      }
  if (runsTotal === 0) known = false;
  const parallel = Math.max(1, live.filter((l) => l.state === 'running').length);
  const baselineLeft = s.baselineStage && s.baselineStage.state !== 'completed' ? null : 0;
  const campaign =
    !known || baselineLeft === null || ['completed', 'failed', 'cancelled'].includes(s.state)
      ? s.state === 'completed'
        ? 0
        : null
      : Math.round(total / parallel);
  return { runs, campaign };
}
