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
  try {
    const backend = (await initBackend()).name;
    const out = await body(backend);
    return { ...out, attempt: ctx.info.attempt, ms: Math.round(performance.now() - t0), backend };
  } catch (e) {
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
}
