// Workflow unit tests with stubbed activities: the real workflow bundle (dist/workflow-bundle.js)
// runs on a real worker against the shared dev server (test/global-setup.ts), while the compute
// stages and the `record` activity are plain JS stubs on their own queues. No tfjs, no SQLite:
// each test takes seconds. What is checked is the orchestration only — rollback, the int8
// choice, continue-as-new carry-over, pause/resume, non-retryable bad input.
// (`@temporalio/testing`'s time-skipping server is downloaded at run time, so it is not used.)
import { Context } from '@temporalio/activity';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { campaignSchema, type CampaignInput, type CampaignSpec } from '../campaign/schema';
import { runIdOf, taskQueues, type TaskQueues } from '../core';
import type { RecordOp } from '../db/types';
import { waitingForQueues } from '../cli/progress';
import { pauseSignal, progressQuery, resumeSignal, type campaignWorkflow, type Progress, type runWorkflow } from '../workflows';

try {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
} catch {
  // already installed in this process
}
const workflowBundle = { codePath: path.join(__dirname, '..', 'dist', 'workflow-bundle.js') };

// ------------------------------------------------------------------------------- harness

type Compute = 'baseline' | 'latencyTable' | 'score' | 'prune' | 'finetune' | 'validate' | 'quantize' | 'hardwareAdapt';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyInput = any;
type Stub = (input: AnyInput) => Record<string, unknown> | Promise<Record<string, unknown>>;

/** One ordered log of everything the workflows asked of the activities. */
type Entry = { kind: 'call'; name: Compute; input: AnyInput; attempt: number; taskQueue: string } | { kind: 'record'; op: RecordOp };

const WEIGHTS = { accuracy: 0.2, size: 0.4, latency: 0.4, energy: 0 };
const TABLE_SHA = 'ab'.repeat(32);
const BASE = { accuracy: 0.98, valAccuracy: 0.98, params: 1000, latencyMs: 10, bytes: 4000, energyJEstimated: 0.001 };

/** Stubs: a model path per stage and round, metrics better than the baseline's, int8 0.3 points below. */
const defaultStubs: Record<Compute, Stub> = {
  baseline: (i) => ({ model: `${i.campaignId}/baseline/model`, metrics: { ...BASE }, tfjsVersion: 'stub', prunewiseVersion: 'stub' }),
  latencyTable: (i) => ({
    table: { path: `artifacts/${i.campaignId}/latency-table.json`, sha256: TABLE_SHA },
    source: 'measured',
    metrics: { predictedLatencyMs: 9.5 },
    artifacts: [{ kind: 'latency-table', path: `artifacts/${i.campaignId}/latency-table.json`, bytes: 100, sha256: TABLE_SHA }],
  }),
  score: (i) => ({ scores: `${i.runId}/r${i.round}/scores`, metrics: { groups: 2, blockedGroups: 0 } }),
  prune: (i) => ({ model: `${i.runId}/r${i.round}/pruned`, metrics: { bytes: 3000 } }),
  finetune: (i) => ({ model: `${i.runId}/r${i.round}/tuned`, metrics: {} }),
  validate: () => ({ ok: true, metrics: { accuracy: 0.975, valAccuracy: 0.975 } }),
  quantize: (i) => ({ model: `${i.runId}/r${i.round}/int8`, metrics: { int8Accuracy: 0.972, int8Bytes: 1000 } }),
  hardwareAdapt: () => ({ metrics: { latencyMs: 8, speedup: 1.25, energyJEstimated: 0.0008 } }),
};

function specOf(over: Partial<CampaignInput> = {}): CampaignSpec {
  return campaignSchema.parse({
    name: 'wf',
    model: 'mlp',
    dataset: { name: 'mnist' },
    weights: [WEIGHTS],
    pruning: { rounds: 1 },
    execution: { heartbeatTimeoutSeconds: 5 },
    ...over,
  });
}

let client: Client;
let address: string;

beforeAll(async () => {
  address = inject('temporalAddress');
  client = new Client({ connection: await Connection.connect({ address }) });
});
afterAll(async () => {
  await client?.connection.close();
});

interface Env {
  queues: TaskQueues;
  log: Entry[];
  calls: (name?: Compute) => Array<Extract<Entry, { kind: 'call' }>>;
  ops: <K extends RecordOp['op']>(op: K) => Array<Extract<RecordOp, { op: K }>>;
  /** a stub worker on the gpu queue (the same stubs), e.g. after the campaign started without one */
  startGpuWorker: () => Promise<void>;
  start: (spec: CampaignSpec) => { campaignId: string; runId: string; handle: ReturnType<Client['workflow']['getHandle']> } & { result: Promise<unknown> };
  close: () => Promise<void>;
}

let current: Env | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

/** Workers on `<prefix>-campaigns` (the real workflow bundle), `-cpu` (stubs) and `-store` (an in-memory record); `-gpu` on request. */
async function stubbedEnv(over: Partial<Record<Compute, Stub>> = {}, opts: { gpuWorker?: boolean } = {}): Promise<Env> {
  const prefix = `wft${crypto.randomBytes(4).toString('hex')}`;
  const queues = taskQueues(prefix);
  const log: Entry[] = [];
  const stubs = { ...defaultStubs, ...over };
  const compute = Object.fromEntries(
    (Object.keys(stubs) as Compute[]).map((name) => [
      name,
      async (input: AnyInput) => {
        const { attempt, taskQueue } = Context.current().info;
        log.push({ kind: 'call', name, input, attempt, taskQueue });
        const out = await stubs[name](input);
        return { attempt, ms: 1, backend: 'stub', ...out };
      },
    ]),
  );
  const record = async (ops: RecordOp[]) => {
    for (const op of ops) log.push({ kind: 'record', op });
  };
  const connection = await NativeConnection.connect({ address });
  const workers = await Promise.all([
    Worker.create({ connection, taskQueue: queues.campaigns, workflowBundle }),
    Worker.create({ connection, taskQueue: queues.cpu, activities: compute }),
    Worker.create({ connection, taskQueue: queues.store, activities: { record } }),
  ]);
  const running = workers.map((w) => w.run());
  const startGpuWorker = async () => {
    const w = await Worker.create({ connection, taskQueue: queues.gpu, activities: compute });
    workers.push(w);
    running.push(w.run());
  };
  if (opts.gpuWorker) await startGpuWorker();
  const env: Env = {
    queues,
    log,
    startGpuWorker,
    calls: (name) => log.filter((e): e is Extract<Entry, { kind: 'call' }> => e.kind === 'call' && (!name || e.name === name)),
    ops: (op) => log.flatMap((e) => (e.kind === 'record' && e.op.op === op ? [e.op as Extract<RecordOp, { op: typeof op }>] : [])),
    start(spec) {
      const campaignId = `wf-${crypto.randomBytes(4).toString('hex')}`;
      const started = client.workflow.start<typeof campaignWorkflow>('campaignWorkflow', {
        taskQueue: queues.campaigns,
        workflowId: campaignId,
        args: [{ campaignId, spec, queues }],
      });
      const result = started.then((h) => h.result());
      result.catch(() => undefined); // observed by the test
      return { campaignId, runId: runIdOf(campaignId, 1), handle: client.workflow.getHandle(campaignId), result };
    },
    async close() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      const settled = await Promise.allSettled(running);
      await connection.close();
      for (const s of settled) if (s.status === 'rejected') throw s.reason;
    },
  };
  current = env;
  return env;
}

const roundsOf = (calls: Array<{ input: AnyInput }>) => calls.map((c) => c.input.round);
const stagesOfRound = (env: Env, round: number) =>
  env
    .calls()
    .filter((c) => c.name !== 'baseline' && c.input.round === round)
    .map((c) => c.name);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const FULL_ROUND = ['score', 'prune', 'finetune', 'validate', 'quantize', 'hardwareAdapt'];

// ------------------------------------------------------------------------------- tests

describe('campaign workflow (stubbed activities): rollback and retry with half the ratio', () => {
  const dropped = { ok: false, reason: 'validation accuracy dropped 5.00 points (max 2)', metrics: { accuracy: 0.93, valAccuracy: 0.93, accuracyDrop: 5 } };
  const lastRunOp = (env: Env, runId: string) =>
    env
      .ops('run')
      .filter((r) => r.runId === runId)
      .at(-1)!;

  it('round 2 breaks the limit: labelled and kept, retried as round 3 with half the ratio (same schedule round), then the run goes on at the full ratio', async () => {
    // the full ratio breaks the limit in the schedule's round 2; half of it fits
    const env = await stubbedEnv({ validate: (i) => (i.round === 2 ? dropped : defaultStubs.validate(i)) });
    const { runId, result } = env.start(specOf({ pruning: { rounds: 3 } }));
    const out = (await result) as Awaited<ReturnType<typeof campaignWorkflow>>;

    expect(stagesOfRound(env, 1)).toEqual(FULL_ROUND);
    expect(stagesOfRound(env, 2)).toEqual(['score', 'prune', 'finetune', 'validate']);
    expect(stagesOfRound(env, 3)).toEqual(FULL_ROUND);
    expect(stagesOfRound(env, 4)).toEqual(FULL_ROUND);
    expect(stagesOfRound(env, 5)).toEqual([]);
    const prunes = env.calls('prune').map((c) => [c.input.round, c.input.ratioScale, c.input.scheduleRound]);
    // every round is told its schedule round: the one after the retry is the schedule's third, not its fourth
    expect(prunes).toEqual([
      [1, undefined, 1],
      [2, undefined, 2],
      [3, 0.5, 2],
      [4, undefined, 3],
    ]);
    // so are finetune (its recipe: finetune.lastRound, sparsity.rounds) and hardware-adapt (the deployable's prunewise.json says that recipe)
    expect(env.calls('finetune').map((c) => [c.input.round, c.input.scheduleRound])).toEqual([
      [1, 1],
      [2, 2],
      [3, 2],
      [4, 3],
    ]);
    expect(env.calls('hardwareAdapt').map((c) => [c.input.round, c.input.scheduleRound])).toEqual([
      [1, 1],
      [3, 2],
      [4, 3],
    ]);
    // the retry starts from the same model the rolled-back round started from
    const baselineModel = `${env.calls('baseline')[0].input.campaignId}/baseline/model`;
    expect(env.calls('score').map((c) => c.input.model)).toEqual([baselineModel, `${runId}/r1/tuned`, `${runId}/r1/tuned`, `${runId}/r3/tuned`]);

    const rounds = env.ops('round').filter((r) => r.state !== 'running');
    expect(rounds.map((r) => [r.round, r.state, r.note])).toEqual([
      [1, 'completed', undefined],
      [2, 'cancelled', 'rolled back (drop 5.00 pts > limit 2)'],
      [3, 'completed', undefined],
      [4, 'completed', undefined],
    ]);
    const rollbacks = env.ops('event').filter((e) => e.kind === 'rollback');
    expect(rollbacks.map((e) => e.message)).toEqual([`run-1 round 2 rolled back (drop 5.00 pts > limit 2); retrying as round 3 with 0.5 of the ratio`]);
    expect(out.runs[0]).toMatchObject({ runId, roundsCompleted: 3 });
    expect(out.runs[0].stoppedBy).toBeUndefined();
    expect(lastRunOp(env, runId).state).toBe('completed');
  });

  it('every retry breaks the limit too: rollbackRetries (2) retries at 0.5 and 0.25, then the run stops and keeps round 1', async () => {
    const env = await stubbedEnv({ validate: (i) => (i.round >= 2 ? dropped : defaultStubs.validate(i)) });
    const { runId, result } = env.start(specOf({ pruning: { rounds: 3 } }));
    const out = (await result) as Awaited<ReturnType<typeof campaignWorkflow>>;
    expect(env.calls('prune').map((c) => [c.input.round, c.input.ratioScale])).toEqual([
      [1, undefined],
      [2, undefined],
      [3, 0.5],
      [4, 0.25],
    ]);
    expect(stagesOfRound(env, 5)).toEqual([]);
    expect(
      env
        .ops('round')
        .filter((r) => r.state === 'cancelled')
        .map((r) => r.round),
    ).toEqual([2, 3, 4]);
    expect(
      env
        .ops('event')
        .filter((e) => e.kind === 'rollback')
        .at(-1)!.message,
    ).toMatch(/round 4 rolled back \(drop 5\.00 pts > limit 2\); the run keeps round 1$/);
    expect(out.runs[0]).toMatchObject({ runId, roundsCompleted: 1, best: { round: 1, model: `${runId}/r1/tuned` } });
    expect(out.runs[0].stoppedBy).toMatch(/^round 4 rolled back \(drop 5\.00 pts > limit 2\) 2 time\(s\) in a row$/);
    expect(lastRunOp(env, runId).state).toBe('completed');
    expect(env.ops('campaign').at(-1)!.state).toBe('completed');
  });

  it('nothing fits from the first round: "no pruning fits the limit", the run\'s result is the baseline; rollbackRetries 0 stops at once', async () => {
    const env = await stubbedEnv({ validate: () => dropped });
    const a = env.start(specOf({ pruning: { rounds: 2 } }));
    const outA = (await a.result) as Awaited<ReturnType<typeof campaignWorkflow>>;
    expect(outA.runs[0]).toMatchObject({ roundsCompleted: 0, best: { round: 0 }, stoppedBy: 'no pruning fits the limit' });
    expect(
      env
        .ops('event')
        .filter((e) => e.kind === 'rollback' && e.runId === a.runId)
        .map((e) => e.round),
    ).toEqual([1, 2, 3]);
    expect(env.ops('event').find((e) => e.kind === 'rollback' && e.runId === a.runId && e.round === 3)!.message).toMatch(
      /no pruning fits the limit: the run's result is the baseline$/,
    );
    expect(env.ops('event').find((e) => e.kind === 'run-completed' && e.runId === a.runId)!.message).toMatch(/best round 0, .*\(no pruning fits the limit\)$/);

    const b = env.start(specOf({ pruning: { rounds: 2 }, constraints: { rollbackRetries: 0 } }));
    const outB = (await b.result) as Awaited<ReturnType<typeof campaignWorkflow>>;
    expect(outB.runs[0]).toMatchObject({ roundsCompleted: 0, stoppedBy: 'no pruning fits the limit' });
    expect(env.calls('prune').filter((c) => c.input.runId === b.runId)).toHaveLength(1);
  });
});

describe('campaign workflow (stubbed activities): int8 or float32', () => {
  // J = 0.2·(0.025/0.02) + 0.4·(bytes/4000) + 0.4·(8/10): int8 deploys 1000 bytes, float32 the pruned 3000
  it.each([
    { label: 'int8 0.3 points below: int8 deployed', int8Accuracy: 0.972, int8: true, useInt8: true, deployedBytes: 1000, j: 0.67 },
    // 0.975 − 0.970 is 0.5000000000000004 points in floating point: exactly at the rule's boundary, int8 is deployed
    { label: 'int8 exactly 0.5 points below: int8 deployed', int8Accuracy: 0.97, int8: true, useInt8: true, deployedBytes: 1000, j: 0.67 },
    { label: 'int8 0.8 points below: float32 deployed', int8Accuracy: 0.967, int8: true, useInt8: false, deployedBytes: 3000, j: 0.87 },
    { label: 'quantization.int8 off: no quantize, float32 deployed', int8Accuracy: 0.975, int8: false, useInt8: false, deployedBytes: 3000, j: 0.87 },
  ])('$label', async ({ int8Accuracy, int8, useInt8, deployedBytes, j }) => {
    const env = await stubbedEnv({ quantize: (i) => ({ model: `${i.runId}/r${i.round}/int8`, metrics: { int8Accuracy, int8Bytes: 1000 } }) });
    const { runId, result } = env.start(specOf({ quantization: { int8 } }));
    await result;

    expect(env.calls('quantize')).toHaveLength(int8 ? 1 : 0);
    const hw = env.calls('hardwareAdapt');
    expect(hw).toHaveLength(1);
    expect(hw[0].input).toMatchObject({ model: `${runId}/r1/tuned`, useInt8 });
    expect(hw[0].input.int8Model).toBe(int8 ? `${runId}/r1/int8` : undefined);

    const summary = env.ops('stage').filter((s) => s.stage === 'hardware-adapt' && s.state === 'completed' && s.metrics && 'deployedInt8' in s.metrics);
    expect(summary).toHaveLength(1);
    expect(summary[0].metrics).toMatchObject({ deployedInt8: useInt8 ? 1 : 0, deployedBytes });
    expect(summary[0].metrics!.objective).toBeCloseTo(j, 9);
    const round = env.ops('round').find((r) => r.state === 'completed')!;
    expect(round.objective).toBeCloseTo(j, 9);
  });
});

describe('run workflow (stubbed activities): continue-as-new carry-over', () => {
  it('roundsPerExecution 1 with 3 rounds: two continue-as-new, each round scores the previous fine-tuned model, best round 1 carried over', async () => {
    // round 1 is the best (speedup 1.25); rounds 2 and 3 are worse (no speedup): best.round stays 1
    // only if the best travels through both continue-as-new
    const env = await stubbedEnv({ hardwareAdapt: (i) => ({ metrics: { latencyMs: 10, speedup: i.round === 1 ? 1.25 : 1, energyJEstimated: 0.001 } }) });
    const { runId, result } = env.start(specOf({ pruning: { rounds: 3 }, execution: { heartbeatTimeoutSeconds: 5, roundsPerExecution: 1 } }));
    const out = (await result) as Awaited<ReturnType<typeof campaignWorkflow>>;

    expect(out.runs[0]).toMatchObject({ runId, roundsCompleted: 3, best: { round: 1, model: `${runId}/r1/tuned` } });
    expect(out.runs[0].best.objective).toBeCloseTo(0.67, 9);

    // each round's score and prune get the previous round's fine-tuned model
    const score = env.calls('score');
    expect(roundsOf(score)).toEqual([1, 2, 3]);
    expect(score.map((c) => c.input.model)).toEqual([`${env.calls('baseline')[0].input.campaignId}/baseline/model`, `${runId}/r1/tuned`, `${runId}/r2/tuned`]);
    expect(env.calls('prune').map((c) => c.input.model)).toEqual(score.map((c) => c.input.model));
    for (const r of [1, 2, 3]) expect(stagesOfRound(env, r)).toEqual(FULL_ROUND);

    // rounds numbered 1, 2, 3 once each; the run marked running once (not again after continue-as-new)
    expect(env.ops('round').map((r) => [r.round, r.state])).toEqual(
      [1, 2, 3].flatMap((n) => [
        [n, 'running'],
        [n, 'completed'],
      ]),
    );
    expect(
      env
        .ops('run')
        .filter((r) => r.runId === runId)
        .map((r) => r.state),
    ).toEqual(['running', 'completed']);

    // the execution chain: first → continued-as-new → continued-as-new → completed, one round each
    const latest = await client.workflow.getHandle<typeof runWorkflow>(runId).describe();
    const firstRunId = latest.raw.workflowExecutionInfo!.firstRunId!;
    expect(firstRunId).toBeTruthy();
    const chain: Array<{ runId: string; stages: string[]; resume?: { round: number; model: string; best: { round: number } } }> = [];
    for (let id: string | undefined = firstRunId; id;) {
      const history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>> = await client.workflow.getHandle(runId, id).fetchHistory();
      const events = history.events!;
      const started = events[0].workflowExecutionStartedEventAttributes!;
      const input = JSON.parse(Buffer.from(started.input!.payloads![0].data!).toString('utf8'));
      chain.push({
        runId: id,
        stages: events.flatMap((e) =>
          e.activityTaskScheduledEventAttributes && e.activityTaskScheduledEventAttributes.taskQueue!.name === env.queues.cpu
            ? [e.activityTaskScheduledEventAttributes.activityType!.name!]
            : [],
        ),
        resume: input.resume,
      });
      id = events.at(-1)!.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
      expect(chain.length).toBeLessThanOrEqual(3);
    }
    expect(chain).toHaveLength(3);
    expect(chain.at(-1)!.runId).toBe(latest.runId);
    expect(latest.status.name).toBe('COMPLETED');
    for (const c of chain) expect(c.stages).toEqual(FULL_ROUND);
    expect(chain[0].resume).toBeUndefined();
    expect(chain[1].resume).toMatchObject({ round: 2, model: `${runId}/r1/tuned`, best: { round: 1 } });
    expect(chain[2].resume).toMatchObject({ round: 3, model: `${runId}/r2/tuned`, best: { round: 1 } });
  });
});

describe('campaign workflow (stubbed activities): pause and resume', () => {
  it('pause during fine-tune: the stage finishes, no new stage starts while paused, paused then running recorded, resume completes', async () => {
    let finetuneStarted!: () => void;
    const started = new Promise<void>((r) => (finetuneStarted = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const env = await stubbedEnv({
      finetune: async (i) => {
        finetuneStarted();
        const ctx = Context.current();
        const beat = setInterval(() => ctx.heartbeat(), 300);
        try {
          await gate;
        } finally {
          clearInterval(beat);
        }
        return defaultStubs.finetune(i);
      },
    });
    try {
      const { runId, handle, result } = env.start(specOf());
      await started;
      await handle.signal(pauseSignal);
      // the campaign passes the pause on to its run
      const child = client.workflow.getHandle(runId);
      await waitFor('the run to be paused', async () => (await child.query(progressQuery)).paused);
      await waitFor('the campaign to record paused', () => env.ops('campaign').some((c) => c.state === 'paused'));
      release();
      await waitFor('the run to record paused', () => env.ops('run').some((r) => r.state === 'paused'));
      await sleep(1500);
      // fine-tune finished (the pause does not interrupt a stage); nothing after it started
      expect(env.calls().map((c) => c.name)).toEqual(['baseline', 'latencyTable', 'score', 'prune', 'finetune']);
      expect(env.ops('stage').find((s) => s.stage === 'finetune' && s.state === 'completed')).toBeTruthy();
      expect(env.ops('stage').filter((s) => s.stage === 'validate')).toEqual([]);
      const p: Progress = await handle.query(progressQuery);
      expect(p).toMatchObject({ state: 'running', paused: true });

      await handle.signal(resumeSignal);
      await result;
      expect(env.calls().map((c) => c.name)).toEqual(['baseline', 'latencyTable', ...FULL_ROUND]);
      expect(env.calls('finetune')).toHaveLength(1);
      expect(env.calls('finetune')[0].attempt).toBe(1);
      expect(
        env
          .ops('run')
          .filter((r) => r.runId === runId)
          .map((r) => r.state),
      ).toEqual(['running', 'paused', 'running', 'completed']);
      expect(env.ops('campaign').map((c) => c.state)).toEqual(['running', 'paused', 'running', 'completed']);
      expect(
        env
          .ops('event')
          .filter((e) => e.kind === 'paused' || e.kind === 'running')
          .map((e) => e.kind),
      ).toEqual(['paused', 'running']);

      // in the ordered log, no stage call or stage "running" falls between the run's paused and running
      const iPaused = env.log.findIndex((e) => e.kind === 'record' && e.op.op === 'run' && e.op.state === 'paused');
      const iResumed = env.log.findIndex((e, i) => i > iPaused && e.kind === 'record' && e.op.op === 'run' && e.op.state === 'running');
      expect(iResumed).toBeGreaterThan(iPaused);
      const between = env.log.slice(iPaused + 1, iResumed);
      expect(between.filter((e) => e.kind === 'call' || (e.op.op === 'stage' && e.op.state === 'running'))).toEqual([]);
      const iValidate = env.log.findIndex((e) => e.kind === 'call' && e.name === 'validate');
      expect(iValidate).toBeGreaterThan(iResumed);
    } finally {
      release();
    }
  });

  it('pause before the runs start: the run starts paused and runs no stage until resumed', async () => {
    let baselineStarted!: () => void;
    const started = new Promise<void>((r) => (baselineStarted = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const env = await stubbedEnv({
      baseline: async (i) => {
        baselineStarted();
        await gate;
        return defaultStubs.baseline(i);
      },
    });
    try {
      const { runId, handle, result } = env.start(specOf());
      await started;
      await handle.signal(pauseSignal);
      await waitFor('the campaign to record paused', () => env.ops('campaign').some((c) => c.state === 'paused'));
      release();
      await waitFor('the run to record paused', () => env.ops('run').some((r) => r.runId === runId && r.state === 'paused'));
      await sleep(1000);
      expect(env.calls().map((c) => c.name)).toEqual(['baseline', 'latencyTable']); // campaign-level: before any run
      // no stage started (the round itself is already marked running: it is recorded before its first stage waits)
      expect(env.ops('stage').filter((s) => s.runId === runId)).toEqual([]);
      await handle.signal(resumeSignal);
      await result;
      expect(env.calls().map((c) => c.name)).toEqual(['baseline', 'latencyTable', ...FULL_ROUND]);
      expect(
        env
          .ops('run')
          .filter((r) => r.runId === runId)
          .map((r) => r.state),
      ).toEqual(['running', 'paused', 'running', 'completed']);
    } finally {
      release();
    }
  });
});

describe('run workflow (stubbed activities): pause across continue-as-new', () => {
  it('paused during the last stage of an execution: the next execution starts paused, and resume (sent to the campaign) reaches it', async () => {
    let hwStarted!: () => void;
    const started = new Promise<void>((r) => (hwStarted = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const env = await stubbedEnv({
      hardwareAdapt: async (i) => {
        if (i.round === 1) {
          hwStarted();
          await gate;
        }
        return defaultStubs.hardwareAdapt(i);
      },
    });
    try {
      const { runId, handle, result } = env.start(specOf({ pruning: { rounds: 2 }, execution: { heartbeatTimeoutSeconds: 5, roundsPerExecution: 1 } }));
      await started;
      await handle.signal(pauseSignal);
      const child = client.workflow.getHandle(runId);
      await waitFor('the run to be paused', async () => (await child.query(progressQuery)).paused);
      release();
      // round 1 completes, the run continues as new (paused), and waits before round 2's first stage
      await waitFor('the run to record paused', () => env.ops('run').some((r) => r.state === 'paused'));
      const desc = await child.describe();
      expect(desc.runId).not.toBe(desc.raw.workflowExecutionInfo!.firstRunId);
      await sleep(1000);
      expect(stagesOfRound(env, 1)).toEqual(FULL_ROUND);
      expect(stagesOfRound(env, 2)).toEqual([]);
      expect((await child.query(progressQuery)).paused).toBe(true);

      await handle.signal(resumeSignal);
      const out = (await result) as Awaited<ReturnType<typeof campaignWorkflow>>;
      expect(out.runs[0].roundsCompleted).toBe(2);
      expect(stagesOfRound(env, 2)).toEqual(FULL_ROUND);
      expect(
        env
          .ops('run')
          .filter((r) => r.runId === runId)
          .map((r) => r.state),
      ).toEqual(['running', 'paused', 'running', 'completed']);
    } finally {
      release();
    }
  });
});

describe('campaign workflow (stubbed activities): bad input', () => {
  const MESSAGE = 'model: layer "dense_9" has no prunable channels';

  it('a BadInput failure in prune fails the run at once (one attempt) and the campaign records failed', async () => {
    // not flagged non-retryable by the stub: the workflow's retry policy (nonRetryableErrorTypes) must stop it
    const env = await stubbedEnv({
      prune: () => {
        throw ApplicationFailure.create({ message: MESSAGE, type: 'BadInput', nonRetryable: false });
      },
    });
    const t0 = Date.now();
    const { runId, campaignId, result } = env.start(specOf({ pruning: { rounds: 2 } }));
    const err = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause.type).toBe('RunsFailed');
    expect(cause.message).toMatch(/^1 of 1 runs failed: /);

    expect(env.calls('prune').map((c) => c.attempt)).toEqual([1]);
    expect(env.calls().map((c) => c.name)).toEqual(['baseline', 'latencyTable', 'score', 'prune']);
    expect(
      env
        .ops('stage')
        .filter((s) => s.stage === 'prune')
        .map((s) => [s.state, s.error]),
    ).toEqual([
      ['running', undefined],
      ['failed', MESSAGE],
    ]);
    expect(env.ops('event').find((e) => e.kind === 'stage-failed')!.message).toContain(MESSAGE);
    const run = env.ops('run').filter((r) => r.runId === runId);
    expect(run.map((r) => r.state)).toEqual(['running', 'failed']);
    expect(run.at(-1)!.error).toBe(MESSAGE);
    const campaign = env.ops('campaign');
    expect(campaign.map((c) => c.state)).toEqual(['running', 'failed']);
    expect(campaign.at(-1)!.error).toContain(MESSAGE);
    expect(env.ops('event').find((e) => e.kind === 'failed')).toMatchObject({ campaignId });
    expect(env.ops('event').find((e) => e.kind === 'failed')!.message).toContain(MESSAGE);
    expect(cause.message).toContain(MESSAGE);
  });

  it('for contrast, a transient failure in prune is retried and the campaign completes', async () => {
    const env = await stubbedEnv({
      prune: (i) => {
        if (Context.current().info.attempt === 1) throw ApplicationFailure.create({ message: 'worker hiccup', type: 'Transient' });
        return defaultStubs.prune(i);
      },
    });
    const { result } = env.start(specOf());
    await result;
    expect(env.calls('prune').map((c) => c.attempt)).toEqual([1, 2]);
    expect(env.ops('campaign').at(-1)!.state).toBe('completed');
  });
});

describe('campaign workflow (stubbed activities): the latency table', () => {
  it('measured once per campaign after the baseline, recorded, and handed to every score stage; a retried score stage gets the same table (never re-measured)', async () => {
    const env = await stubbedEnv({
      score: (i) => {
        if (i.runId.endsWith('/run-1') && i.round === 1 && Context.current().info.attempt === 1)
          throw ApplicationFailure.create({ message: 'worker hiccup', type: 'Transient' });
        return defaultStubs.score(i);
      },
    });
    const { campaignId, result } = env.start(specOf({ weights: [WEIGHTS, { accuracy: 0.5, size: 0, latency: 0.5, energy: 0 }], pruning: { rounds: 2 } }));
    await result;

    const tables = env.calls('latencyTable');
    expect(tables).toHaveLength(1);
    expect(tables[0].input).toMatchObject({ campaignId, model: `${campaignId}/baseline/model` });
    // after the baseline, before any run's first stage
    const names = env.calls().map((c) => c.name);
    expect(names.slice(0, 2)).toEqual(['baseline', 'latencyTable']);

    const score = env.calls('score');
    expect(score).toHaveLength(5); // 2 runs × 2 rounds + the retried attempt
    expect(score.filter((c) => c.attempt === 2)).toHaveLength(1);
    for (const c of score) expect(c.input.latencyTable).toEqual({ path: `artifacts/${campaignId}/latency-table.json`, sha256: TABLE_SHA });

    const recorded = env.ops('latency-table');
    expect(recorded).toEqual([
      {
        op: 'latency-table',
        campaignId,
        runId: `${campaignId}/baseline`,
        artifact: { kind: 'latency-table', path: `artifacts/${campaignId}/latency-table.json`, bytes: 100, sha256: TABLE_SHA },
      },
    ]);
    expect(env.ops('event').find((e) => e.kind === 'latency-table')!.message).toMatch(
      /latency table measured on tfjs-wasm \(sha256 abababababab\).*9\.50 ms predicted/,
    );
  });

  it('uniform allocation needs no table: none is measured and score gets none', async () => {
    const env = await stubbedEnv();
    const { result } = env.start(specOf({ pruning: { rounds: 1, allocation: 'uniform' } }));
    await result;
    expect(env.calls('latencyTable')).toHaveLength(0);
    expect(env.calls('score')[0].input.latencyTable).toBeUndefined();
    expect(env.ops('latency-table')).toEqual([]);
  });
});

describe('campaign workflow (stubbed activities): execution.trainOn routes the training stages (no GPU here: the gpu queue is served by a stub worker)', () => {
  const queueOf = (env: Env) => env.calls().map((c) => [c.name, c.taskQueue === env.queues.gpu ? 'gpu' : c.taskQueue === env.queues.cpu ? 'cpu' : c.taskQueue]);
  const runningQueues = (env: Env) =>
    env
      .ops('stage')
      .filter((o) => o.state === 'running')
      .map((o) => [o.stage, o.taskQueue === env.queues.gpu ? 'gpu' : o.taskQueue === env.queues.cpu ? 'cpu' : o.taskQueue]);
  /** The ids of the patches a workflow's history took (`patched()` markers). */
  const patchIds = async (workflowId: string) =>
    ((await client.workflow.getHandle(workflowId).fetchHistory()).events ?? []).flatMap((e) =>
      Object.values(e.markerRecordedEventAttributes?.details ?? {}).flatMap((d) =>
        (d.payloads ?? []).map((p) => (JSON.parse(Buffer.from(p.data!).toString('utf8')) as { id?: string }).id),
      ),
    );

  it('trainOn: gpu: baseline and finetune run on the gpu queue, score/prune/validate/quantize/hardware-adapt on cpu; each stage records its queue', async () => {
    const env = await stubbedEnv({}, { gpuWorker: true });
    const { campaignId, runId, result } = env.start(specOf({ pruning: { rounds: 2 }, execution: { heartbeatTimeoutSeconds: 5, trainOn: 'gpu' } }));
    await result;

    expect(queueOf(env)).toEqual([
      ['baseline', 'gpu'],
      ['latencyTable', 'cpu'], // timed where latency is measured, not trained
      ...[1, 2].flatMap(() => [
        ['score', 'cpu'],
        ['prune', 'cpu'],
        ['finetune', 'gpu'],
        ['validate', 'cpu'],
        ['quantize', 'cpu'],
        ['hardwareAdapt', 'cpu'],
      ]),
    ]);
    expect(runningQueues(env)).toEqual([
      ['baseline', 'gpu'],
      ['latency-table', 'cpu'],
      ...[1, 2].flatMap(() => [
        ['score', 'cpu'],
        ['prune', 'cpu'],
        ['finetune', 'gpu'],
        ['validate', 'cpu'],
        ['quantize', 'cpu'],
        ['hardware-adapt', 'cpu'],
      ]),
    ]);
    // the change sits behind patched('train-on-gpu'): its marker is in both workflows' histories
    expect(await patchIds(campaignId)).toContain('train-on-gpu');
    expect(await patchIds(runId)).toContain('train-on-gpu');
  });

  it('trainOn: cpu (the default): every stage on the cpu queue and recorded there, and no train-on-gpu patch marker (the commands of before)', async () => {
    const env = await stubbedEnv({}, { gpuWorker: true });
    const spec = specOf();
    expect(spec.execution.trainOn).toBe('cpu');
    const { campaignId, runId, result } = env.start(spec);
    await result;
    expect(new Set(queueOf(env).map(([, q]) => q))).toEqual(new Set(['cpu']));
    expect(new Set(runningQueues(env).map(([, q]) => q))).toEqual(new Set(['cpu']));
    // the run takes the older patches (rollback-retries …), never train-on-gpu
    expect(await patchIds(runId)).toContain('rollback-retries');
    expect(await patchIds(campaignId)).not.toContain('train-on-gpu');
    expect(await patchIds(runId)).not.toContain('train-on-gpu');
  });

  it('trainOn: gpu with no gpu worker (GPU absent): the baseline waits on the gpu queue, describeTaskQueue shows no poller and status says to start `prunewise worker --gpu`; a gpu worker then finishes it', async () => {
    const env = await stubbedEnv();
    const { result } = env.start(specOf({ execution: { heartbeatTimeoutSeconds: 5, trainOn: 'gpu' } }));
    await waitFor('the baseline recorded running on the gpu queue', () =>
      env.ops('stage').find((o) => o.stage === 'baseline' && o.state === 'running' && o.taskQueue === env.queues.gpu),
    );
    expect(await waitingForQueues(client, 'default', [env.queues.cpu, env.queues.gpu])).toEqual([
      `waiting for queue ${env.queues.gpu}: no worker serves it (start \`prunewise worker --gpu\` on a machine with CUDA)`,
    ]);
    const described = await client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: env.queues.gpu, kind: 1 }, taskQueueType: 2 });
    expect(described.pollers ?? []).toEqual([]);
    expect(env.calls()).toEqual([]); // nothing ran: the cpu worker does not take the baseline

    await env.startGpuWorker();
    await result;
    expect(env.calls('baseline').map((c) => c.taskQueue)).toEqual([env.queues.gpu]);
    expect(env.calls('finetune').map((c) => c.taskQueue)).toEqual([env.queues.gpu]);
  });
});
