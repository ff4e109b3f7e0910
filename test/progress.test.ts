// core/progress: how a pending activity is read (running, worker lost, retrying) and worded, and
// the remaining-time estimate. Pure functions: no server (the e2e test drives the real thing).
import { describe, expect, it } from 'vitest';
import { classifyPending, describeLive, describeProgress, estimateRemaining, formatDuration, ROUND_STAGES, WORKER_LOST, type PendingActivity } from '../core';
import { trainingRate } from '../activities/checkpoints';
import { waitingStagesByQueue } from '../cli/progress';

const T0 = 1_800_000_000_000;
const pending = (o: Partial<PendingActivity>): PendingActivity => ({
  activity: 'finetune',
  state: 'started',
  attempt: 1,
  lastHeartbeatMs: T0,
  lastStartedMs: T0 - 10_000,
  details: { step: 50, total: 200, epoch: 1, epochs: 2, batch: 50, batchesPerEpoch: 100, samplesPerSecond: 1234.5, loss: 0.25, secondsLeft: 30 },
  lastFailure: null,
  lastFailureTimeout: false,
  retryQueuedMs: null,
  ...o,
});

describe('live stages', () => {
  it('a heartbeating stage is running, with epoch, batch, samples/s and an ETA aged by the heartbeat', () => {
    const s = classifyPending('c/run-1', pending({}), T0 + 4000, 30);
    expect(s.state).toBe('running');
    expect(s.etaSeconds).toBe(26);
    expect(describeLive(s)).toBe('epoch 1/2, batch 50/100, 1235 samples/s, loss 0.2500, ETA 26 s');
  });

  it('silent longer than the heartbeat timeout: worker lost, before the server notices', () => {
    const s = classifyPending('c/run-1', pending({}), T0 + 31_000, 30);
    expect(s.state).toBe('worker-lost');
    expect(s.etaSeconds).toBeNull();
    expect(describeLive(s)).toBe(`${WORKER_LOST} (no heartbeat for 31 s, timeout 30 s); was at epoch 1/2, batch 50/100`);
  });

  it('timed out and waiting for its retry: worker lost, with how long the retry has sat unclaimed', () => {
    const s = classifyPending(
      'c/run-1',
      pending({ state: 'scheduled', attempt: 2, lastFailure: 'activity Heartbeat timeout', lastFailureTimeout: true, retryQueuedMs: T0 + 7000 }),
      T0 + 19_000,
      5,
    );
    expect(s.state).toBe('worker-lost');
    expect(s.unclaimedSeconds).toBe(12);
    expect(describeLive(s)).toMatch(
      /^worker lost — retrying when a worker polls \(no heartbeat for 19 s, timeout 5 s\); was at epoch 1\/2, batch 50\/100; attempt 2$/,
    );
  });

  it('a retry after an error that is not a lost worker is "retrying"; a first attempt not yet taken is "scheduled"', () => {
    const r = classifyPending('c/run-1', pending({ state: 'scheduled', attempt: 3, lastFailure: 'disk full' }), T0 + 1000, 30);
    expect(describeLive(r)).toBe('retrying (attempt 3 after: disk full)');
    const f = classifyPending('c/run-1', pending({ state: 'scheduled', lastHeartbeatMs: null, lastStartedMs: null, details: null }), T0, 30);
    expect(f.state).toBe('scheduled');
    expect(f.heartbeatAgeSeconds).toBeNull();
  });

  it('durations read like people write them', () => {
    expect([formatDuration(5.4), formatDuration(65), formatDuration(3725)]).toEqual(['5 s', '1 min 05 s', '1 h 02 min']);
  });
});

describe('the training heartbeat details', () => {
  it('epoch and batch in progress, samples/s from the second step, seconds left at that rate', () => {
    let t = 0;
    const rate = trainingRate(2, 32, () => t);
    expect(rate.progress(1, 20, 2.3)).toEqual({ step: 1, total: 20, epoch: 1, epochs: 2, batch: 1, batchesPerEpoch: 10, loss: 2.3 });
    t = 1000;
    expect(rate.progress(11, 20, 1.1)).toEqual({
      step: 11,
      total: 20,
      epoch: 2,
      epochs: 2,
      batch: 1,
      batchesPerEpoch: 10,
      samplesPerSecond: 320,
      secondsLeft: 1,
      loss: 1.1,
    });
    expect(rate.last().step).toBe(11);
  });

  it('a budget in batches (finetune.batches) counts the steps of that budget, not the batches of an epoch', () => {
    const rate = trainingRate(1, 64, () => 0, 844, true);
    const d = rate.progress(5, 12, 0.5);
    expect(d).toEqual({ step: 5, total: 12, loss: 0.5 });
    expect(describeProgress(d, null)).toBe('step 5/12, loss 0.5000');
  });
});

describe('remaining time', () => {
  const done = (ms: number) => ({ state: 'completed', ms });
  const round = (round: number, stages: Record<string, { state: string; ms: number | null }>, state = 'completed') => ({ round, state, stages });
  const full = Object.fromEntries(ROUND_STAGES.map((s) => [s, done(1000)]));

  it('stages left in the current round plus rounds to come, at the mean time per stage; a running stage at its own ETA', () => {
    const s = {
      state: 'running',
      baselineStage: done(5000),
      runs: [
        {
          id: 'c/run-1',
          state: 'running',
          rounds: [
            round(1, { ...full, finetune: done(7000) }),
            round(2, { score: done(1000), prune: done(1000), finetune: { state: 'running', ms: null } }, 'running'),
          ],
        },
        { id: 'c/run-2', state: 'completed', rounds: [round(1, full)] },
      ],
    };
    const live = [{ ...classifyPending('c/run-1', pending({}), T0, 30), state: 'running' as const, etaSeconds: 3 }];
    // run-1: finetune 3 s + validate, quantize, hardware-adapt 1 s each, then round 3: 5 × 1 s + finetune mean (7 + 1) / 2 = 4 s
    const e = estimateRemaining(s, ROUND_STAGES, 3, live);
    expect(e.runs).toEqual({ 'c/run-1': 3 + 3 + 5 + 4, 'c/run-2': 0 });
    expect(e.campaign).toBe(15);
  });

  it('unknown until every stage kind still to come has been timed once; runs not recorded yet count in full', () => {
    const s = {
      state: 'running',
      baselineStage: done(5000),
      runs: [{ id: 'c/run-1', state: 'running', rounds: [round(1, { score: done(1000) }, 'running')] }],
    };
    expect(estimateRemaining(s, ROUND_STAGES, 2, []).campaign).toBeNull();
    const t = { state: 'running', baselineStage: done(5000), runs: [{ id: 'c/run-1', state: 'completed', rounds: [round(1, full)] }] };
    expect(estimateRemaining(t, ROUND_STAGES, 1, [], 3).campaign).toBe(12); // two more runs × 6 stages × 1 s
  });
});

describe('waitingStagesByQueue (status: which stages wait for a queue)', () => {
  const id = 'c-20261130-000000-abcd';
  const stages = [
    { run_id: `${id}/run-1`, round: 1, stage: 'hardware-adapt', task_queue: 'cpu' },
    { run_id: `${id}/run-2`, round: 1, stage: 'finetune', task_queue: 'cpu' },
    { run_id: `${id}/run-3`, round: 2, stage: 'hardware-adapt', task_queue: 'target-edge-box' },
    { run_id: `${id}/baseline`, round: 0, stage: 'baseline', task_queue: null },
  ];

  it('leaves out a stage a worker runs (heartbeats): a busy one-slot worker does not poll, yet nothing waits', () => {
    const live = [{ runId: `${id}/run-1`, round: 1, stage: 'hardware-adapt', state: 'running' as const }];
    const w = waitingStagesByQueue(id, stages, live);
    expect(w.get('cpu')).toEqual(['run-2 round 1 finetune']);
    expect(w.get('target-edge-box')).toEqual(['run-3 round 2 hardware-adapt']);
    expect(w.size).toBe(2);
  });

  it('keeps a stage that is only scheduled or whose worker is lost, and drops a queue with nothing waiting', () => {
    const live = [
      { runId: `${id}/run-1`, round: 1, stage: 'hardware-adapt', state: 'worker-lost' as const },
      { runId: `${id}/run-2`, round: 1, stage: 'finetune', state: 'running' as const },
      { runId: `${id}/run-3`, round: 2, stage: 'hardware-adapt', state: 'running' as const },
    ];
    const w = waitingStagesByQueue(id, stages, live);
    expect([...w]).toEqual([['cpu', ['run-1 round 1 hardware-adapt']]]);
  });
});
