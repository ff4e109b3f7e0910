// Progress while a campaign runs (event lines; on a TTY also a live line of running stages),
// and the human-readable status table. Both read SQLite only.
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { describeSpeedup, latencyOfRound, speedupOf } from '../core';
import { eventsSince, runningStages, type CampaignStatus, type Db, type RoundMetrics } from '../db';

const pct = (x?: number) => (x === undefined ? '—' : `${(x * 100).toFixed(2)}%`);
const num = (x?: number) => (x === undefined ? '—' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : `${+x.toFixed(3)}`);
const ms = (x?: number | null) => (x === undefined || x === null ? '—' : `${x.toFixed(2)} ms`);
const time = () => new Date().toISOString().slice(11, 19);

/** Step / total of the training activity a workflow is running, from its last heartbeat. */
async function trainingProgress(client: Client, workflowId: string): Promise<{ step: number; total: number } | undefined> {
  try {
    const d = await client.workflow.getHandle(workflowId).describe();
    for (const a of d.raw.pendingActivities ?? []) {
      const p = a.heartbeatDetails?.payloads?.[0];
      if (!p) continue;
      const v = defaultPayloadConverter.fromPayload<{ step?: number; total?: number }>(p as never);
      if (v?.step !== undefined && v.total) return { step: v.step, total: v.total };
    }
  } catch {
    // progress is decoration: a failed describe only hides the bar
  }
  return undefined;
}

/** What `status` prints for a queue a stage waits on while no worker polls it (`stages`: which stages wait). */
export function waitingForQueueLine(queue: string, stages: string[] = []): string {
  const device = queue.match(/target-([a-z0-9-]+)$/)?.[1];
  const start = device
    ? `start \`prunewise worker --target ${device}\` on that device`
    : /(^|-)gpu$/.test(queue)
      ? 'start `prunewise worker --gpu` on a machine with CUDA'
      : 'start `prunewise worker`';
  return `waiting for queue ${queue}: no worker serves it (${start})${stages.length ? `: ${stages.join(', ')}` : ''}`;
}

/** The waiting lines of the queues among `queues` no worker polls (activity pollers, asked of the server). */
export async function waitingForQueues(client: Client, namespace: string, queues: string[], stages?: Map<string, string[]>): Promise<string[]> {
  const lines: string[] = [];
  for (const q of queues) {
    // taskQueueType 2 = activity; kind 1 = normal
    const r = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: q, kind: 1 }, taskQueueType: 2 });
    if ((r.pollers ?? []).length === 0) lines.push(waitingForQueueLine(q, stages?.get(q)));
  }
  return lines;
}

function bar(step: number, total: number, width = 20): string {
  const f = Math.max(0, Math.min(1, step / total));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${Math.round(f * 100)}% (${step}/${total})`;
}

/** Prints finished stages as lines; on a TTY also one live line with a progress bar per running stage. */
export async function followCampaign(db: Db, id: string, stopped: () => boolean, done: Promise<unknown>, client?: Client): Promise<void> {
  const tty = process.stderr.isTTY;
  let seq = 0;
  let finished = false;
  done.then(
    () => (finished = true),
    () => (finished = true),
  );
  let live = '';
  const clearLive = () => {
    if (tty && live) process.stderr.write('\r\x1b[2K');
    live = '';
  };
  for (;;) {
    const events = eventsSince(db, id, seq);
    if (events.length) clearLive();
    for (const e of events) {
      process.stderr.write(`${time()} ${e.message}\n`);
      seq = e.seq;
    }
    if (tty) {
      const parts: string[] = [];
      for (const r of runningStages(db, id)) {
        const name = r.run_id.slice(id.length + 1);
        const training = client && (r.stage === 'finetune' || r.stage === 'baseline');
        const p = training ? await trainingProgress(client, r.stage === 'baseline' ? id : r.run_id) : undefined;
        parts.push(`${name} r${r.round} ${r.stage} ${p ? bar(p.step, p.total) : `${Math.round((Date.now() - Date.parse(r.updated_at)) / 1000)}s`}`);
      }
      const line = parts.join(' | ');
      clearLive();
      if (line) {
        live = `▶ ${line}`;
        process.stderr.write(live.slice(0, (process.stderr.columns ?? 120) - 1));
      }
    }
    if (finished || stopped()) {
      clearLive();
      // one last read: the final events land just before the workflow completes
      for (const e of eventsSince(db, id, seq)) process.stderr.write(`${time()} ${e.message}\n`);
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** THE model latency (core/latency.ts: baseline median ÷ speedup) with its speedup, interval and pairs. */
function latency(m: RoundMetrics, b: RoundMetrics | null): string {
  const s = speedupOf(m);
  if (!s) return ms(m.latencyMs);
  const v = latencyOfRound(m, b?.latencyMs);
  return `${ms(v)} (${describeSpeedup(s)})`;
}

const STAGE_MARK: Record<string, string> = { completed: '✓', running: '…', failed: '✗', cancelled: '–', paused: '‖', pending: '·' };

/** " on <queue>" for a stage that ran off the cpu queue (a gpu worker, a device's worker). */
const offCpu = (q: string | null) => (q && /(^|-)(gpu|target-[a-z0-9-]+)$/.test(q) ? ` on ${q}` : '');

export function formatStatus(s: CampaignStatus): string {
  const lines: string[] = [];
  lines.push(`campaign ${s.id}: ${s.state}${s.error ? ` (${s.error})` : ''}`);
  lines.push(
    `  backend ${s.backend ?? '—'}, tfjs ${s.tfjsVersion ?? '—'}, prunewise ${s.prunewiseVersion ?? '—'}, seed ${s.seed}, spec sha256 ${s.specHash.slice(0, 12)}`,
  );
  const b = s.baseline;
  if (b) {
    const bs = s.baselineStage;
    lines.push(
      `  baseline${bs?.ms ? ` (${(bs.ms / 1000).toFixed(1)} s${offCpu(bs.taskQueue)})` : ''}: test accuracy ${pct(b.accuracy)}, params ${num(b.params)}, FLOPs ${num(b.flops)}, ${num(b.bytes)} bytes, latency ${ms(b.latencyMs)} (${b.latencyEstimated ? `estimated: roofline of the target profile` : 'measured'}, batch ${b.latencyBatchSize ?? '?'})`,
    );
    // what pruning can and cannot touch (ml/support.ts), so a campaign that removes nothing says why
    if (b.groups !== undefined)
      lines.push(
        `  pruning: ${b.groups === 0 ? 'NOTHING can be pruned' : `${b.groups} prunable group${b.groups === 1 ? '' : 's'}`}${s.blocked?.length ? `, ${s.blocked.length} left whole:` : ''}`,
      );
    for (const line of s.blocked ?? []) lines.push(`    ${line}`);
  }
  for (const r of s.runs) {
    const w = Object.entries(r.weights)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    lines.push(`  ${r.id.slice(s.id.length + 1)} [${w}]: ${r.state}${r.error ? ` (${r.error})` : ''}`);
    for (const rd of r.rounds) {
      const m = rd.metrics;
      const stages = Object.entries(rd.stages)
        .map(
          ([name, st]) =>
            `${name} ${STAGE_MARK[st.state] ?? st.state}${st.attempts && st.attempts > 1 ? ` ×${st.attempts}` : ''}${st.resumedFromStep ? ` (resumed @${st.resumedFromStep})` : ''}${offCpu(st.taskQueue)}`,
        )
        .join(', ');
      lines.push(
        `    round ${rd.round} ${rd.note ?? rd.state}${m.channelsRemoved === 0 ? ' (NOTHING pruned: see "pruning" above)' : ''}: acc ${pct(m.accuracy)}, params ${num(m.params)}, FLOPs ${num(m.flops)}, ${num(m.bytes)} bytes` +
          `${m.int8Bytes !== undefined ? ` (uint8 ${num(m.int8Bytes)}, acc ${pct(m.int8Accuracy)})` : ''}, latency ${latency(m, b)}` +
          `${rd.objective !== null ? `, J ${rd.objective.toFixed(4)}` : ''}`,
      );
      lines.push(`      ${stages}`);
      const widths = Object.entries(m)
        .filter(([k]) => k.startsWith('channels.'))
        .map(([k, v]) => `${k.slice(9)} ${b?.[k] ?? '?'}→${v}`);
      if (widths.length) lines.push(`      channels: ${widths.join(', ')}`);
    }
  }
  return lines.join('\n');
}
