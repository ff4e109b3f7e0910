// SQLite and Temporal must agree on a campaign's fate. `cancel` and `rm` reconcile them (writing
// through db/): a campaign whose workflow Temporal no longer knows, that Temporal already closed,
// or that no worker ever started ends cancelled / failed with the reason. `status` only reports
// such a mismatch and prints the command that fixes it.
import { cmd } from './hints';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { checkpointDb, endCampaign, type Db } from '../db';
import type { Home } from './home';

/** What Temporal says about a campaign's workflow. */
export type TemporalView = { kind: 'unknown' } | { kind: 'running'; neverRan: boolean } | { kind: 'closed'; status: string; failure?: string };

/** `--home <dir>`, for the commands hints print. */

/** The workflow's state in Temporal: unknown, running (and whether any worker ever ran a task of it), or closed. */
export async function temporalView(client: Client, id: string): Promise<TemporalView> {
  const handle = client.workflow.getHandle(id);
  let d;
  try {
    d = await handle.describe();
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) return { kind: 'unknown' };
    throw e;
  }
  const status = d.status.name;
  if (status === 'RUNNING') {
    let neverRan = false;
    if ((d.historyLength ?? 0) < 20) {
      const h = await handle.fetchHistory();
      neverRan = !(h.events ?? []).some((e) => e.workflowTaskCompletedEventAttributes);
    }
    return { kind: 'running', neverRan };
  }
  let failure: string | undefined;
  if (status === 'FAILED' || status === 'TERMINATED' || status === 'TIMED_OUT') {
    failure = await handle.result().then(
      () => undefined,
      (e: Error) => {
        let root: Error = e;
        while (root.cause instanceof Error) root = root.cause;
        return root.message;
      },
    );
  }
  return { kind: 'closed', status, failure };
}

/** The state and reason SQLite should hold for a workflow Temporal no longer runs (undefined: it still runs). */
export function settledState(view: TemporalView, id: string, address: string, dbState: string): { state: 'cancelled' | 'failed'; reason: string } | undefined {
  if (view.kind === 'running') return undefined;
  if (view.kind === 'unknown')
    return {
      state: 'cancelled',
      reason: `the Temporal server at ${address} does not know workflow ${id} (submitted to another server, or its history is gone); this database said ${dbState}`,
    };
  const said = `; this database still said ${dbState}`;
  switch (view.status) {
    case 'CANCELLED':
      return { state: 'cancelled', reason: `Temporal closed workflow ${id} as cancelled${said}` };
    case 'TERMINATED':
      return { state: 'cancelled', reason: `Temporal terminated workflow ${id}${view.failure ? ` (${view.failure})` : ''}${said}` };
    case 'COMPLETED':
      return {
        state: 'failed',
        reason: `Temporal completed workflow ${id} but its last results never reached this database (recorded by another home's worker, or lost to a store outage)${said}`,
      };
    default:
      return { state: 'failed', reason: `Temporal closed workflow ${id} as ${view.status.toLowerCase()}${view.failure ? `: ${view.failure}` : ''}${said}` };
  }
}

/** Writes a settled state into SQLite (runs, rounds and stages still open end cancelled) and checkpoints the log. */
export function settle(db: Db, id: string, s: { state: 'cancelled' | 'failed'; reason: string }): boolean {
  const changed = endCampaign(db, id, s.state, s.reason);
  checkpointDb(db);
  return changed;
}

/** The line `status` prints when SQLite and Temporal disagree, with the command that reconciles them. */
export function mismatchLine(view: TemporalView, id: string, address: string, dbState: string, home: Home): string | undefined {
  const s = settledState(view, id, address, dbState);
  if (!s) return undefined;
  const what =
    view.kind === 'unknown'
      ? `the Temporal server at ${address} does not know workflow ${id}`
      : `Temporal closed it as ${(view as { status: string }).status.toLowerCase()}`;
  return `mismatch: this database says ${dbState}, but ${what}: ${cmd(home, 'cancel', id)} records it as ${s.state}`;
}

/** How many workers poll `queue` for workflow tasks (a campaign no worker has started waits for one). */
export async function workflowPollers(client: Client, namespace: string, queue: string): Promise<number> {
  // taskQueueType 1 = workflow; kind 1 = normal
  const r = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: queue, kind: 1 }, taskQueueType: 1 });
  return (r.pollers ?? []).length;
}

/**
 * The task queues a campaign was submitted with (its workflow's queue and the queues in its input),
 * read from the first event of its history: exact whatever PRUNEWISE_TASK_QUEUE_PREFIX this process has.
 */
export async function submittedQueues(client: Client, namespace: string, id: string): Promise<{ workflow?: string; store?: string }> {
  const r = await client.workflowService.getWorkflowExecutionHistory({ namespace, execution: { workflowId: id }, maximumPageSize: 1 });
  const started = r.history?.events?.[0]?.workflowExecutionStartedEventAttributes;
  const input = started?.input?.payloads?.[0];
  const queues = input ? defaultPayloadConverter.fromPayload<{ queues?: { store?: string } }>(input as never)?.queues : undefined;
  return { workflow: started?.taskQueue?.name ?? undefined, store: queues?.store };
}
