// What runs now, read from Temporal: the pending activities of a campaign's workflows (the campaign
// workflow runs the baseline, each run's workflow its rounds) with their heartbeat details, last
// heartbeat time and attempt, classified by core/progress (running, worker lost, retrying), and
// the pollers of the task queues they wait on. The CLI's `run` and `status` print it; the dashboard
// gets it through the provider `prunewise dashboard` passes it (it never talks to Temporal itself).
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, optionalTsToMs } from '@temporalio/common';
import { classifyPending, type LiveStage, type PendingActivity, type StageProgressDetails } from '../core';
import { runningStages, type Db } from '../db';

const STATE_NAMES: Record<number, PendingActivity['state']> = { 1: 'scheduled', 2: 'started', 3: 'cancel-requested' };

/** A running stage (SQLite) with its live state (Temporal). */
export interface LiveRow extends LiveStage {
  runId: string;
  round: number;
  stage: string;
  taskQueue: string | null;
}

/**
 * Pollers seen within the last 90 s. The server lists a poller for minutes after its process died
 * (kill -9); a live one polls again at least every ~70 s (the long poll's timeout), so older ones are gone.
 */
export function livePollers(pollers: Array<{ lastAccessTime?: unknown }>, nowMs = Date.now()): number {
  return pollers.filter((p) => {
    const t = optionalTsToMs(p.lastAccessTime as never);
    return t === undefined || nowMs - t < 90_000;
  }).length;
}

/** The activity pollers on a task queue (undefined when the server cannot tell). */
export async function activityPollers(client: Client, namespace: string, queue: string): Promise<number | undefined> {
  try {
    // taskQueueType 2 = activity; kind 1 = normal
    const r = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: queue, kind: 1 }, taskQueueType: 2 });
    return livePollers(r.pollers ?? []);
  } catch {
    return undefined;
  }
}

/** When a pending retry entered its queue: the last attempt's end plus the retry interval (null while backing off or never failed). */
function retryQueued(a: { lastAttemptCompleteTime?: unknown; currentRetryInterval?: unknown; nextAttemptScheduleTime?: unknown }): number | null {
  if (a.nextAttemptScheduleTime) return null; // still backing off
  const end = optionalTsToMs(a.lastAttemptCompleteTime as never);
  if (end === undefined) return null;
  return end + (optionalTsToMs(a.currentRetryInterval as never) ?? 0);
}

/** The pending activities of one workflow, as core/progress reads them; [] when the workflow is unknown or closed. */
export async function pendingActivities(client: Client, workflowId: string): Promise<PendingActivity[]> {
  let d;
  try {
    d = await client.workflow.getHandle(workflowId).describe();
  } catch {
    return [];
  }
  return (d.raw.pendingActivities ?? []).map((a) => {
    const p = a.heartbeatDetails?.payloads?.[0];
    let details: StageProgressDetails | null = null;
    if (p) {
      try {
        details = defaultPayloadConverter.fromPayload<StageProgressDetails>(p as never) ?? null;
      } catch {
        details = null;
      }
    }
    const f = a.lastFailure;
    let root = f;
    while (root?.cause) root = root.cause;
    return {
      activity: a.activityType?.name ?? '?',
      state: STATE_NAMES[Number(a.state)] ?? 'scheduled',
      attempt: a.attempt ?? 1,
      lastHeartbeatMs: optionalTsToMs(a.lastHeartbeatTime as never) ?? null,
      lastStartedMs: optionalTsToMs(a.lastStartedTime as never) ?? null,
      details,
      lastFailure: root?.message ?? f?.message ?? null,
      lastFailureTimeout: !!(f?.timeoutFailureInfo || root?.timeoutFailureInfo),
      retryQueuedMs: retryQueued(a),
    };
  });
}

/**
 * The campaign's stages running now (per SQLite) with their live state from Temporal. A stage
 * SQLite says runs but Temporal has no pending activity for (it just ended) is left out.
 * `heartbeatTimeoutSeconds`: the campaign's execution.heartbeatTimeoutSeconds.
 */
export async function readLive(client: Client, namespace: string, db: Db, campaignId: string, heartbeatTimeoutSeconds: number): Promise<LiveRow[]> {
  const rows = runningStages(db, campaignId);
  const byWorkflow = new Map<string, typeof rows>();
  for (const r of rows) {
    const wf = r.run_id.endsWith('/baseline') ? campaignId : r.run_id;
    byWorkflow.set(wf, [...(byWorkflow.get(wf) ?? []), r]);
  }
  const pollers = new Map<string, number | undefined>();
  const out: LiveRow[] = [];
  const now = Date.now();
  for (const [wf, stages] of byWorkflow) {
    const pending = await pendingActivities(client, wf);
    for (const r of stages) {
      const act = pending.find((p) => p.activity.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) === r.stage);
      if (!act) continue;
      if (r.task_queue && !pollers.has(r.task_queue)) pollers.set(r.task_queue, await activityPollers(client, namespace, r.task_queue));
      out.push({
        ...classifyPending(wf, act, now, heartbeatTimeoutSeconds, r.task_queue ? pollers.get(r.task_queue) : undefined),
        runId: r.run_id,
        round: r.round,
        stage: r.stage,
        taskQueue: r.task_queue,
      });
    }
  }
  return out;
}

/**
 * A reader of a campaign's live stages for a long-lived process (the dashboard server): one lazy
 * client connection, reused; null when no Temporal server answers. `prunewise dashboard` can pass
 * it to the dashboard (which never talks to Temporal itself) to show the same progress and
 * "worker lost" as `status`.
 */
export function liveReader(
  connect: () => Promise<{ client: Client; namespace: string }>,
  db: Db,
): (campaignId: string, heartbeatTimeoutSeconds: number) => Promise<LiveRow[] | null> {
  let conn: Promise<{ client: Client; namespace: string }> | undefined;
  return async (campaignId, heartbeatTimeoutSeconds) => {
    try {
      conn ??= connect();
      const c = await conn;
      return await readLive(c.client, c.namespace, db, campaignId, heartbeatTimeoutSeconds);
    } catch {
      conn = undefined; // try again next time
      return null;
    }
  };
}
