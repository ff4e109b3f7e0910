// What every compute stage shares: timing, the backend, a heartbeat every second carrying the
// latest progress details, and error classification. Bad input (core/errors BadInputError: the
// user's model, data or campaign file) fails the stage at once; everything else is retried by the
// policy next to the stage in workflows/.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { isBadInput } from '../core';
import { initBackend } from '../ml';
import type { StageResult } from './types';

/** The latest progress details per running activity, repeated by the periodic heartbeat. */
const latestDetails = new WeakMap<Context, unknown>();

/** Which stage an observer hears of: the workflow (run id, or the campaign id for the baseline), activity type, attempt. */
export interface StageInfo {
  workflowId: string;
  activity: string;
  attempt: number;
}

/** Told of this process's stages as they start, heartbeat progress and end (`prunewise worker` prints them). */
export interface StageObserver {
  start(s: StageInfo): void;
  progress(s: StageInfo, details: unknown): void;
  end(s: StageInfo, ms: number, error?: string): void;
}

let observer: StageObserver | undefined;
/** Sets (or clears) the one observer of this process's stages. */
export function observeStages(o: StageObserver | undefined): void {
  observer = o;
}

const infoOf = (ctx: Context): StageInfo => ({
  workflowId: ctx.info.workflowExecution?.workflowId ?? '?',
  activity: ctx.info.activityType,
  attempt: ctx.info.attempt,
});

/**
 * Runs a stage body with timing, backend and error classification, heartbeating every second
 * (with the latest progress details) for as long as the event loop turns: every compute loop
 * yields per batch, so a missing heartbeat means a dead or stuck worker.
 * @throws ApplicationFailure type `BadInput` (non-retryable) when the body throws a BadInputError
 */
export async function runStage<T extends Omit<StageResult, 'attempt' | 'ms' | 'backend'>>(body: (backend: string) => Promise<T>): Promise<T & StageResult> {
  const t0 = performance.now();
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(latestDetails.get(ctx)), 1000);
  observer?.start(infoOf(ctx));
  try {
    const backend = (await initBackend()).name;
    const out = await body(backend);
    observer?.end(infoOf(ctx), performance.now() - t0);
    return { ...out, attempt: ctx.info.attempt, ms: Math.round(performance.now() - t0), backend };
  } catch (e) {
    observer?.end(infoOf(ctx), performance.now() - t0, (e as Error)?.message ?? String(e));
    if (isBadInput(e)) throw ApplicationFailure.nonRetryable(e.message, 'BadInput');
    throw e;
  } finally {
    clearInterval(timer);
  }
}

/** Heartbeats now with progress details, which the periodic heartbeat then repeats. */
export function beat(ctx: Context, details: unknown): void {
  latestDetails.set(ctx, details);
  ctx.heartbeat(details);
  observer?.progress(infoOf(ctx), details);
}
