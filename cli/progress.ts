// Progress while a campaign runs (event lines; on a TTY also a live line of running stages),
// and the human-readable status table. Events and stages come from SQLite, progress within a stage
// from the heartbeats of the running activities in Temporal (cli/live.ts).
import type { Client } from '@temporalio/client';
import type { CampaignRecipe, CampaignSpec } from '../campaign/schema';
import {
  describeLive,
  describeSpeedup,
  estimateRemaining,
  formatDuration,
  latencyOfRound,
  ROUND_STAGES,
  speedupOf,
  UNCLAIMED_NO_WORKER_SECONDS,
  type LiveStage,
} from '../core';
import { campaignStatus, eventsSince, getCampaign, runningStages, type CampaignStatus, type Db, type RoundMetrics } from '../db';
import { activityPollers, livePollers, readLive, type LiveRow } from './live';

const pct = (x?: number) => (x === undefined ? '—' : `${(x * 100).toFixed(2)}%`);
const num = (x?: number) => (x === undefined ? '—' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : `${+x.toFixed(3)}`);
const ms = (x?: number | null) => (x === undefined || x === null ? '—' : `${x.toFixed(2)} ms`);
const time = () => new Date().toISOString().slice(11, 19);

/** How a hint names a command (cli/hints.ts `cmd` with the home; plain `prunewise …` without one). */
export type CommandHint = (...args: string[]) => string;
const plain: CommandHint = (...args) => `\`prunewise ${args.join(' ')}\``;

/** What `status` prints for a queue a stage waits on while no worker polls it (`stages`: which stages wait). */
export function waitingForQueueLine(queue: string, stages: string[] = [], command: CommandHint = plain): string {
  const device = queue.match(/target-([a-z0-9-]+)$/)?.[1];
  const start = device
    ? `start ${command('worker', '--target', device)} on that device`
    : /(^|-)gpu$/.test(queue)
      ? `start ${command('worker', '--gpu')} on a machine with CUDA`
      : `start ${command('worker')}`;
  return `waiting for queue ${queue}: no worker serves it (${start})${stages.length ? `: ${stages.join(', ')}` : ''}`;
}

/** The waiting lines of the queues among `queues` no worker polls (activity pollers, asked of the server). */
export async function waitingForQueues(
  client: Client,
  namespace: string,
  queues: string[],
  stages?: Map<string, string[]>,
  command: CommandHint = plain,
): Promise<string[]> {
  const lines: string[] = [];
  for (const q of queues) {
    if ((await activityPollers(client, namespace, q)) === 0) lines.push(waitingForQueueLine(q, stages?.get(q), command));
  }
  return lines;
}

/** Whether any worker polls the campaigns (workflow) task queue: without one, nothing of a campaign moves. */
export async function workflowPollers(client: Client, namespace: string, queue: string): Promise<number | undefined> {
  try {
    const r = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: queue, kind: 1 }, taskQueueType: 1 });
    return livePollers(r.pollers ?? []);
  } catch {
    return undefined;
  }
}

/**
 * The stages waiting on each task queue, as people name them: SQLite's running stages (`stages`, from
 * db runningStages) minus those a worker is running now (a live row in state `running`: it
 * heartbeats). A worker whose activity slots are all taken stops polling (`run` has one slot), so a
 * queue with no live pollers while its stage runs longer than the pollers' 90 s window is not waiting.
 */
export function waitingStagesByQueue(
  campaignId: string,
  stages: Array<{ run_id: string; round: number; stage: string; task_queue: string | null }>,
  live: Array<Pick<LiveRow, 'runId' | 'round' | 'stage' | 'state'>>,
): Map<string, string[]> {
  const runs = new Set(live.filter((l) => l.state === 'running').map((l) => `${l.runId}\u0000${l.round}\u0000${l.stage}`));
  const out = new Map<string, string[]>();
  for (const r of stages) {
    if (!r.task_queue || runs.has(`${r.run_id}\u0000${r.round}\u0000${r.stage}`)) continue;
    out.set(r.task_queue, [...(out.get(r.task_queue) ?? []), stageLabel(campaignId, r.run_id, r.round, r.stage)]);
  }
  return out;
}

/** "run-2 round 1 finetune" / "baseline" / "latency-table": a stage as people name it. */
export function stageLabel(campaignId: string, runId: string, round: number, stage: string): string {
  const run = runId.slice(campaignId.length + 1);
  return run === 'baseline' ? (stage === 'baseline' ? stage : `baseline ${stage}`) : `${run} round ${round} ${stage}`;
}

/** The progress lines of a campaign's live stages and its ETA (what `status` prints under the table). */
export function liveLines(campaignId: string, live: LiveRow[], eta: ReturnType<typeof estimateRemaining> | undefined): string[] {
  const lines = live.map((l) => `  ${stageLabel(campaignId, l.runId, l.round, l.stage)}: ${describeLive(l)}`);
  if (eta && (eta.campaign !== null || Object.keys(eta.runs).length > 0)) {
    const runs = Object.entries(eta.runs).filter(([, v]) => v !== 0);
    const parts = runs.map(([id, v]) => `${id.slice(campaignId.length + 1)} ${v === null ? '?' : `≈ ${formatDuration(v)}`}`);
    lines.push(
      `  ETA: campaign ${eta.campaign === null ? 'unknown until every stage has run once' : `≈ ${formatDuration(eta.campaign)}`}${parts.length ? ` (runs: ${parts.join(', ')})` : ''} — an estimate from the stages timed so far`,
    );
  }
  return lines;
}

/**
 * For stages whose retry sits unclaimed in its queue (no live worker polls it: the one that ran it
 * is gone): which worker to start, per queue.
 */
export function unclaimedLines(campaignId: string, live: LiveRow[], command: CommandHint): string[] {
  const byQueue = new Map<string, { labels: string[]; seconds: number }>();
  for (const l of live) {
    if (l.unclaimedSeconds === null || l.unclaimedSeconds < UNCLAIMED_NO_WORKER_SECONDS) continue;
    const q = l.taskQueue ?? '?';
    const v = byQueue.get(q) ?? { labels: [], seconds: 0 };
    v.labels.push(stageLabel(campaignId, l.runId, l.round, l.stage));
    v.seconds = Math.max(v.seconds, l.unclaimedSeconds);
    byQueue.set(q, v);
  }
  return [...byQueue].map(
    ([q, v]) =>
      `no worker has taken ${v.labels.join(', ')} back for ${formatDuration(v.seconds)}: ${waitingForQueueLine(q, [], command).replace(/^.*\((start .*)\)$/, '$1')}`,
  );
}

/** The ETA of a campaign from its recorded status and its live stages (core/progress estimateRemaining). */
export function campaignEta(db: Db, id: string, live: LiveStage[]): ReturnType<typeof estimateRemaining> | undefined {
  const s = campaignStatus(db, id);
  const c = getCampaign(db, id);
  if (!s || !c) return undefined;
  const spec = JSON.parse(c.spec_json) as Partial<CampaignSpec>; // a spec of an older version may lack fields: no ETA for them
  if (!spec.pruning || !spec.weights) return undefined;
  return estimateRemaining(s, ROUND_STAGES, spec.pruning.rounds, live, spec.weights.length);
}

function bar(step: number, total: number, width = 16): string {
  const f = Math.max(0, Math.min(1, step / total));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${Math.round(f * 100)}%`;
}

export interface FollowOptions {
  client?: Client;
  namespace?: string;
  /** the campaign's execution.heartbeatTimeoutSeconds */
  heartbeatTimeoutSeconds: number;
  /** non-TTY: seconds between progress lines of a running stage (default 10) */
  progressEverySeconds?: number;
}

/**
 * Prints what happens while a campaign runs: a line when a stage starts, the events (a stage done,
 * a rollback, a run completed), and the live state of running stages read from their heartbeats in
 * Temporal (epoch, batch, samples/s, ETA; "worker lost"). On a TTY the live state is one line
 * redrawn in place; elsewhere a progress line per running stage every `progressEverySeconds` and
 * whenever its state changes.
 */
export async function followCampaign(db: Db, id: string, stopped: () => boolean, done: Promise<unknown>, opts: FollowOptions): Promise<void> {
  const tty = process.stderr.isTTY;
  const every = (opts.progressEverySeconds ?? 10) * 1000;
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
  const print = (line: string) => {
    clearLive();
    process.stderr.write(`${time()} ${line}\n`);
  };
  const seen = new Set<string>();
  const lastPrinted = new Map<string, { at: number; state: string; epoch?: number }>();
  const firstSeen = new Map<string, number>();
  let liveRows: LiveRow[] = [];
  let lastLiveRead = 0;
  let eta: ReturnType<typeof estimateRemaining> | undefined;
  let lastEta = 0;
  for (;;) {
    for (const r of runningStages(db, id)) {
      const key = `${r.run_id}/${r.round}/${r.stage}`;
      if (seen.has(key)) continue;
      seen.add(key);
      print(`${stageLabel(id, r.run_id, r.round, r.stage)} started${offCpu(r.task_queue)}`);
    }
    for (const e of eventsSince(db, id, seq)) {
      print(e.message);
      seq = e.seq;
    }
    const now = Date.now();
    if (opts.client && opts.namespace && now - lastLiveRead >= 1500) {
      lastLiveRead = now;
      liveRows = await readLive(opts.client, opts.namespace, db, id, opts.heartbeatTimeoutSeconds).catch(() => liveRows);
      if (now - lastEta >= 5000) {
        lastEta = now;
        eta = campaignEta(db, id, liveRows);
      }
      if (!tty) {
        for (const l of liveRows) {
          const key = `${l.runId}/${l.round}/${l.stage}`;
          if (!firstSeen.has(key)) firstSeen.set(key, now);
          const prev = lastPrinted.get(key);
          const changed = !prev || prev.state !== l.state || (l.details?.epoch !== undefined && prev.epoch !== l.details.epoch);
          if (!changed && now - prev.at < every) continue;
          // nothing to say yet: no details, or the first step (no rate); a stage picked up within seconds
          if (l.state === 'running' && (!l.details || (l.details.epoch !== undefined && !l.details.samplesPerSecond))) continue;
          if (l.state === 'scheduled' && now - (firstSeen.get(key) ?? now) < 5000) continue;
          lastPrinted.set(key, { at: now, state: l.state, epoch: l.details?.epoch });
          const runEta = eta?.runs[l.runId];
          const etas = [runEta ? `run ETA ≈ ${formatDuration(runEta)}` : '', eta?.campaign ? `campaign ETA ≈ ${formatDuration(eta.campaign)}` : ''].filter(
            Boolean,
          );
          print(`${stageLabel(id, l.runId, l.round, l.stage)}: ${describeLive(l)}${etas.length ? `; ${etas.join(', ')}` : ''}`);
        }
      }
    }
    if (tty) {
      const parts = liveRows.map((l) => {
        const d = l.details;
        const head = stageLabel(id, l.runId, l.round, l.stage);
        return `${head} ${l.state === 'running' && d?.step !== undefined && d.total ? `${bar(d.step, d.total)} ` : ''}${describeLive(l)}`;
      });
      const line = parts.join(' | ') + (eta?.campaign ? ` | campaign ETA ≈ ${formatDuration(eta.campaign)}` : '');
      clearLive();
      if (parts.length) {
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

/** Why a round removed no channel: a FLOPs schedule that asked for nothing more this round, else what pruning leaves whole. */
function nothingPruned(m: RoundMetrics): string {
  if (m.channelsRemoved !== 0) return '';
  if (m.flopsFractionToRemove !== undefined && m.flopsFractionToRemove <= 0)
    return ' (NOTHING pruned: earlier rounds already removed what the FLOPs schedule asks by this round)';
  return ' (NOTHING pruned: see "pruning" above)';
}

const STAGE_MARK: Record<string, string> = { completed: '✓', running: '…', failed: '✗', cancelled: '–', paused: '‖', pending: '·' };

/** " on <queue>" for a stage that ran off the cpu queue (a gpu worker, a device's worker). */
const offCpu = (q: string | null) => (q && /(^|-)(gpu|target-[a-z0-9-]+)$/.test(q) ? ` on ${q}` : '');

export function formatStatus(s: CampaignStatus, recipe: CampaignRecipe | null = null): string {
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
  if (recipe?.pruning) lines.push(`  how rounds prune: ${recipe.pruning.summary}`);
  if (recipe) lines.push(`  fine-tuning: ${recipe.summary}`);
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
        `    round ${rd.round} ${rd.note ?? rd.state}${nothingPruned(m)}: acc ${pct(m.accuracy)}, params ${num(m.params)}, FLOPs ${num(m.flops)}, ${num(m.bytes)} bytes` +
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
