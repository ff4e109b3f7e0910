// prunewise: launch, watch, steer and clean up pruning campaigns.
import { Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { Command, InvalidArgumentError, Option } from 'commander';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VERSION } from '../platform/version';
import { CampaignError, loadCampaignFile, parseWeightsOption } from '../campaign/load';
import { checkModel } from '../campaign/model';
import { campaignRecipeOf, type CampaignRecipe, type CampaignSpec } from '../campaign/schema';
import { taskSpecOf } from '../ml/task-spec';
import { describeSource, MODELS_DIR } from '../ml/keras';
import { budgetClauses, readPareto, recommendedModel } from '../analysis';
import {
  campaignStatus,
  checkpointDb,
  completedRounds,
  createCampaign,
  damagedLine,
  deleteCampaign,
  isCorruptError,
  listCampaigns,
  openDb,
  openDbReadOnly,
  quickCheck,
  readParetoPoint,
  runningStages,
  type CampaignRow,
  type Db,
} from '../db';
import { backupHome, openChecked } from './dbfile';
import { mismatchLine, settle, settledState, submittedQueues, temporalView } from './reconcile';
import { applyBudget, formatPareto } from './pareto';
import { createDashboard } from '../dashboard/server';
import { EXPORT_FORMATS, exportModel, type CliExportFormat } from './export';
import { KERAS_FAMILIES, type KerasFamily } from '../ml/tflite';
import type { campaignWorkflow } from '../workflows';
import { ensureHome, HomeError, resolveHome, type Home } from './home';
import { campaignEta, followCampaign, formatStatus, liveLines, unclaimedLines, waitingForQueues, waitingStagesByQueue, workflowPollers } from './progress';
import { readLive } from './live';
import { cmd, hint } from './hints';
import { oneLineOsError } from './os-errors';
import { observeStages } from '../activities';
import {
  CliError,
  clientConnection,
  isServerGone,
  resolveEndpoint,
  runForegroundServer,
  stopServer,
  waitForServer,
  watchServer,
  workerConnection,
  type TemporalEndpoint,
} from './temporal';
import { ALL_QUEUES, checkWorkerEnv, createWorkers, homeQueues, installRuntime, QUEUES, requireGpuBackend, type QueueName } from './worker';
import {
  describeLive,
  describeProgress,
  formatCampaignId,
  parseRunId,
  formatDuration,
  OBJECTIVES,
  targetQueue,
  UNCLAIMED_NO_WORKER_SECONDS,
  type StageProgressDetails,
} from '../core';
import { optionalTsToMs } from '@temporalio/common';
import { checkStore, migrateHomeArtifacts, openStore } from './store';
import type { ArtifactStore } from '../blobstore';

const log = (s: string) => process.stderr.write(`${s}\n`);

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a whole number ≥ 1 (got "${v}")`);
  return n;
}

function nonNegative(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`must be a number ≥ 0 (got "${v}")`);
  return n;
}

function portNumber(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n > 65535) throw new InvalidArgumentError(`must be a port number from 0 to 65535 (got "${v}"; 0: any free port)`);
  return n;
}

function queueList(v: string): QueueName[] {
  const names = v.split(',').map((s) => s.trim());
  for (const n of names) {
    if (n === 'gpu') throw new InvalidArgumentError('the gpu queue is served with --gpu (which checks for the CUDA build first)');
    if (!(ALL_QUEUES as string[]).includes(n)) throw new InvalidArgumentError(`unknown queue "${n}": use any of ${ALL_QUEUES.join(', ')}`);
  }
  return names as QueueName[];
}

function targetName(v: string): string {
  if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(v))
    throw new InvalidArgumentError(`"${v}" is not a target name: use lowercase letters, digits and "-" (as in the campaign's target.name)`);
  return v;
}

const homeOption = () =>
  new Option('--home <dir>', 'state folder: SQLite file, artifacts, embedded server db (env PRUNEWISE_HOME)').default(undefined, './.prunewise');

function newCampaignId(name: string): string {
  return formatCampaignId(name, new Date(), crypto.randomBytes(2).toString('hex'));
}

/**
 * FOR DRILLS: PRUNEWISE_STORE_RETRY_MAX_MS=<ms> submits the campaign with the store activity's retry
 * interval capped at that (default: 1 s doubling up to 1 min), so a store outage outlasts many
 * attempts in seconds. The attempts stay unlimited either way.
 */
function storeRetryTuning(): { storeRetry?: { initialIntervalMs: number; maximumIntervalMs: number } } {
  const v = process.env.PRUNEWISE_STORE_RETRY_MAX_MS;
  if (!v) return {};
  const max = Number(v);
  if (!Number.isInteger(max) || max < 10) throw new CliError(`PRUNEWISE_STORE_RETRY_MAX_MS: must be a whole number of milliseconds ≥ 10 (got "${v}")`);
  return { storeRetry: { initialIntervalMs: Math.min(1000, max), maximumIntervalMs: max } };
}

async function connect(home: Home, start: boolean): Promise<{ client: Client; endpoint: TemporalEndpoint }> {
  const endpoint = await resolveEndpoint(home, { start, log });
  const connection = await clientConnection(endpoint);
  return { client: new Client({ connection, namespace: endpoint.namespace }), endpoint };
}

/** Where campaigns live, for messages when none is found: --home / PRUNEWISE_HOME, default ./.prunewise of the current folder. */
const HOME_HELP =
  'campaigns live in the folder given by --home <dir> or env PRUNEWISE_HOME (default ./.prunewise in the current folder): give the one `run` used';

/** The database of a home, opened for reading only (a read never writes), checked with PRAGMA quick_check (a damaged file: one line, exit 1). */
function openRead(home: Home): Db {
  if (!fs.existsSync(home.db)) throw new CliError(`no campaigns in ${home.dir} (no ${path.basename(home.db)} there): ${HOME_HELP}`);
  return openChecked(home, { readOnly: true });
}

/** The database of a home, for commands that change it (cancel, rm), checked like openRead. */
function openWrite(home: Home): Db {
  if (!fs.existsSync(home.db)) throw new CliError(`no campaigns in ${home.dir} (no ${path.basename(home.db)} there): ${HOME_HELP}`);
  return openChecked(home);
}

/**
 * A campaign named by its id, a unique prefix of it, or `latest` (the newest).
 * @throws CliError when none or several match (listing them)
 */
export function resolveCampaign(db: Db, home: Home, arg: string): CampaignRow {
  const all = listCampaigns(db);
  if (arg === 'latest') {
    if (!all.length) throw new CliError(`no campaigns in ${home.dir}: ${HOME_HELP}`);
    return all[0];
  }
  const exact = all.find((c) => c.id === arg);
  if (exact) return exact;
  const matches = all.filter((c) => c.id.startsWith(arg));
  if (matches.length === 1) return matches[0];
  if (matches.length > 1)
    throw new CliError(
      `"${arg}" matches ${matches.length} campaigns (${matches
        .slice(0, 5)
        .map((c) => c.id)
        .join(', ')}${matches.length > 5 ? ', …' : ''}): give more of the id, or \`latest\``,
    );
  throw new CliError(`campaign "${arg}" not found in ${home.dir}: ${cmd(home, 'ls')} lists the campaigns`);
}

/** `<campaign>/run-<k>` or `<campaign>/baseline` with the campaign part resolved like a campaign id. */
function resolveRunArg(db: Db, home: Home, arg: string): string {
  const m = /^(.*)\/(run-\d+|baseline)$/.exec(arg);
  if (!m) return arg;
  return `${resolveCampaign(db, home, m[1]).id}/${m[2]}`;
}

/** The campaign's training recipe (campaign/schema.ts campaignRecipeOf) from its stored spec; null when the spec has no pruning section. */
const recipeOfRow = (c: CampaignRow): CampaignRecipe | null => {
  const spec = JSON.parse(c.spec_json) as Partial<CampaignSpec>;
  return spec.pruning ? campaignRecipeOf(spec.pruning, taskSpecOf(spec.task).type, spec.target?.runtime) : null;
};

const heartbeatTimeoutOf = (c: CampaignRow) =>
  (JSON.parse(c.spec_json) as { execution?: { heartbeatTimeoutSeconds?: number } }).execution?.heartbeatTimeoutSeconds ?? 30;

/** How long `run --detach` waits for a first poller on the campaigns queue before saying no worker serves it. */
const NO_POLLER_GRACE_SECONDS = 8;

/**
 * The line to print when no worker serves the campaign: nothing polls the campaigns queue, or its
 * workflow task has sat unclaimed for UNCLAIMED_NO_WORKER_SECONDS (a dead worker's poller stays
 * listed for minutes). `waitSeconds`: how long to watch a fresh task before judging (run --detach).
 */
async function noWorkerLine(client: Client, namespace: string, home: Home, id: string, waitSeconds = 0, runIds: string[] = []): Promise<string | undefined> {
  const start = `start one with ${cmd(home, 'worker')}`;
  // watching (run --detach): a worker started at the same moment takes a few seconds to poll
  const pollDeadline = Date.now() + Math.min(waitSeconds, NO_POLLER_GRACE_SECONDS) * 1000;
  while ((await workflowPollers(client, namespace, QUEUES.campaigns)) === 0) {
    if (Date.now() >= pollDeadline) return `no worker serves campaign ${id} (nothing polls task queue ${QUEUES.campaigns}): ${start}`;
    await new Promise((r) => setTimeout(r, 500));
  }
  // a run's own workflow (a child) whose task sits unclaimed: its worker died (its poller stays listed for minutes)
  for (const runId of runIds) {
    const d = await client.workflow
      .getHandle(runId)
      .describe()
      .catch(() => undefined);
    const task = d?.raw.pendingWorkflowTask;
    if (!task || Number(task.state) !== 1) continue;
    const waited = (Date.now() - (optionalTsToMs(task.scheduledTime as never) ?? Date.now())) / 1000;
    if (waited >= UNCLAIMED_NO_WORKER_SECONDS)
      return `no worker serves campaign ${id} (the task of ${runId} has waited ${formatDuration(waited)} in task queue ${QUEUES.campaigns}): ${start}`;
  }
  const t0 = Date.now();
  for (;;) {
    const d = await client.workflow
      .getHandle(id)
      .describe()
      .catch(() => undefined);
    const task = d?.raw.pendingWorkflowTask;
    if (!task || Number(task.state) !== 1) return undefined; // none pending, or a worker took it
    const since = optionalTsToMs(task.scheduledTime as never) ?? Date.now();
    const waited = (Date.now() - since) / 1000;
    if (waited >= UNCLAIMED_NO_WORKER_SECONDS)
      return `no worker serves campaign ${id} (its task has waited ${formatDuration(waited)} in task queue ${QUEUES.campaigns}): ${start}`;
    if ((Date.now() - t0) / 1000 >= waitSeconds) return undefined;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function runWorkersUntil(
  home: Home,
  endpoint: TemporalEndpoint,
  queues: QueueName[],
  concurrency: number,
  until?: Promise<unknown>,
  device?: string,
  gpu?: boolean,
): Promise<'stopped' | 'done'> {
  installRuntime(); // before the first native connection
  const store = openStore(home);
  await checkStore(store);
  // the worker that owns the database brings a home from before the store into it first
  if (queues.includes('store') && fs.existsSync(home.db)) await migrateHome(home, store);
  const unwatch = watchServer(endpoint, home, log);
  try {
    return await serveUntil(home, endpoint, store, queues, concurrency, until, device, gpu);
  } finally {
    unwatch();
  }
}

/** Brings a home from before the artifact store into it (publishes recorded folders, writes their keys): a write, once. */
async function migrateHome(home: Home, store: ArtifactStore): Promise<void> {
  if (!fs.existsSync(home.db)) return;
  const db = openDb(home.db);
  try {
    await migrateHomeArtifacts(home, db, store, log);
  } finally {
    db.close();
  }
}

async function serveUntil(
  home: Home,
  endpoint: TemporalEndpoint,
  store: ArtifactStore,
  queues: QueueName[],
  concurrency: number,
  until?: Promise<unknown>,
  device?: string,
  gpu?: boolean,
): Promise<'stopped' | 'done'> {
  const ended = until?.then(
    () => 'done' as const,
    () => 'done' as const,
  );
  // a server that goes away (killed, restarting) is waited for, with one line; the workers then start again
  for (;;) {
    let connection: Awaited<ReturnType<typeof workerConnection>> | undefined;
    let set: Awaited<ReturnType<typeof createWorkers>>;
    try {
      connection = await workerConnection(endpoint);
      set = await createWorkers({ connection, namespace: endpoint.namespace, home, store, queues, concurrency, device, gpu });
    } catch (e) {
      await connection?.close().catch(() => undefined);
      if (!isServerGone(e)) throw e;
      await waitForServer(endpoint, home, log, e);
      continue;
    }
    const running = set.run();
    const r = await Promise.race([
      ended ?? new Promise<never>(() => undefined),
      running.then(
        () => 'stopped' as const,
        (e: unknown) => ({ error: e }),
      ),
    ]);
    if (r === 'done') {
      set.shutdown();
      await running.catch(() => undefined);
    }
    await connection.close().catch(() => undefined);
    if (typeof r === 'string') return r;
    if (!isServerGone(r.error)) throw r.error;
    await waitForServer(endpoint, home, log, r.error);
  }
}

/** The workflow's result; a server that goes away meanwhile is waited for (one line), not an error. */
async function resultAcrossRestarts<T>(handle: { result(): Promise<T> }, endpoint: TemporalEndpoint, home: Home): Promise<T> {
  for (;;) {
    try {
      return await handle.result();
    } catch (e) {
      if (!isServerGone(e)) throw e;
      await waitForServer(endpoint, home, log, e);
    }
  }
}

const clock = () => new Date().toISOString().slice(11, 19);

/**
 * What this process's worker does, on stderr: a line when a stage starts and ends, and its progress
 * (the details it heartbeats to Temporal) every `everySeconds` and at each new epoch.
 */
function printStages(everySeconds: number, home: Home): void {
  const last = new Map<string, { at: number; epoch?: number }>();
  // the run's and the campaign's ETA, where this worker has the SQLite file (it serves the store queue)
  let db: Db | undefined;
  const etaOf = (s: { workflowId: string; activity: string; attempt: number }, d: StageProgressDetails): string => {
    try {
      db ??= fs.existsSync(home.db) ? openDbReadOnly(home.db) : undefined;
      if (!db) return '';
      const campaignId = parseRunId(s.workflowId)?.campaignId ?? s.workflowId;
      const live = [
        {
          workflowId: s.workflowId,
          activity: s.activity,
          state: 'running' as const,
          attempt: s.attempt,
          heartbeatAgeSeconds: 0,
          heartbeatTimeoutSeconds: 0,
          details: d,
          etaSeconds: d.secondsLeft ?? null,
          lastFailure: null,
          unclaimedSeconds: null,
        },
      ];
      const eta = campaignEta(db, campaignId, live);
      const run = eta?.runs[s.workflowId];
      const parts = [run ? `run ETA ≈ ${formatDuration(run)}` : '', eta?.campaign ? `campaign ETA ≈ ${formatDuration(eta.campaign)}` : ''].filter(Boolean);
      return parts.length ? `; ${parts.join(', ')}` : '';
    } catch {
      return ''; // the ETA is decoration
    }
  };
  const name = (s: { workflowId: string; activity: string }) => `${s.workflowId} ${s.activity.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  observeStages({
    start: (s) => log(`${clock()} ${name(s)} started${s.attempt > 1 ? ` (attempt ${s.attempt})` : ''}`),
    progress: (s, details) => {
      const d = (details ?? {}) as StageProgressDetails;
      const key = `${s.workflowId}/${s.activity}`;
      const prev = last.get(key);
      const now = Date.now();
      if (prev && now - prev.at < everySeconds * 1000 && prev.epoch === d.epoch) return;
      last.set(key, { at: now, epoch: d.epoch });
      if (!prev && d.samplesPerSecond === undefined && d.epoch !== undefined) return; // the first step: no rate yet
      log(`${clock()} ${name(s)}: ${describeProgress(d, d.secondsLeft)}${etaOf(s, d)}`);
    },
    end: (s, ms, error) => {
      last.delete(`${s.workflowId}/${s.activity}`);
      log(`${clock()} ${name(s)} ${error ? `failed after ${formatDuration(ms / 1000)}: ${error.split('\n')[0]}` : `done in ${formatDuration(ms / 1000)}`}`);
    },
  });
}

/** `status --json` (db/read.ts STATUS_JSON_VERSION): CampaignStatus plus `live` (running stages from Temporal; null when no server answers) and `eta`. */
function statusJson(
  s: NonNullable<ReturnType<typeof campaignStatus>>,
  live: { rows: Awaited<ReturnType<typeof readLive>>; eta: ReturnType<typeof campaignEta> } | null,
  recipe: CampaignRecipe | null,
) {
  return {
    ...s,
    recipe,
    live: live
      ? live.rows.map((l) => ({
          runId: l.runId,
          round: l.round,
          stage: l.stage,
          state: l.state,
          attempt: l.attempt,
          heartbeatAgeSeconds: l.heartbeatAgeSeconds,
          heartbeatTimeoutSeconds: l.heartbeatTimeoutSeconds,
          progress: l.details,
          etaSeconds: l.etaSeconds,
          taskQueue: l.taskQueue,
          pollers: l.pollers ?? null,
          lastFailure: l.lastFailure,
        }))
      : null,
    eta: live?.eta ? { campaignSeconds: live.eta.campaign, runs: live.eta.runs, estimated: true } : null,
  };
}

const program = new Command('prunewise')
  .description(
    'Multi-objective pruning campaigns for TensorFlow.js models, durable on Temporal.\nState lives in --home (default ./.prunewise); TEMPORAL_ADDRESS points at an existing cluster instead of the embedded dev server.',
  )
  .version(VERSION)
  .showHelpAfterError('(add --help for usage)')
  .configureOutput({ outputError: (s, write) => write(s) });

program
  .command('run')
  .description('validate a campaign file, submit it, and (unless --detach) work on it here until it ends')
  .argument('<file>', 'campaign YAML (see examples/quickstart.yaml)')
  .addOption(homeOption())
  .option('--detach', 'submit and return; prints the campaign id as the last line')
  .option('--concurrency <n>', 'compute stages run at once by the in-process worker', positiveInt, 1)
  .option('--json', 'with --detach: print {"id"} as JSON; otherwise print the final status as JSON')
  .action(async (file: string, o: { home?: string; detach?: boolean; concurrency: number; json?: boolean }) => {
    const loaded = loadCampaignFile(file); // every error here happens before anything starts
    if (!o.detach) checkWorkerEnv(); // this process trains
    const home = resolveHome(o.home);
    const input = loaded.spec.model;
    const source = await checkModel(loaded.spec, loaded.file, path.join(home.dir, MODELS_DIR)); // the user's model loads, or one line
    if (source) log(`model: ${input} (${describeSource(source)}) loads; the campaign uses ${loaded.spec.model}`);
    ensureHome(home);
    const { client, endpoint } = await connect(home, true);
    const db = openChecked(home, { create: true });
    // the same file again: the same seed gives the same models, so say what already exists
    const same = listCampaigns(db).filter((c) => c.spec_hash === loaded.hash);
    if (same.length) {
      const prev = same[0];
      log(
        `note: this file (sha256 ${loaded.hash.slice(0, 12)}) already ran here as ${prev.id} (${prev.state}${same.length > 1 ? `, and ${same.length - 1} more` : ''}): ` +
          `this submits an identical campaign (with the backend and PRUNEWISE_TRAIN_GRAPH it ran with, the same seed gives the same models); its baseline is trained again (a finished baseline is not reused). ${cmd(home, 'status', prev.id)} shows the earlier one`,
      );
    }
    // the store queue is named after this database's identity: only this home's workers record the campaign
    const { homeId: _homeId, legacyStore: _legacy, ...queues } = homeQueues(home);
    const id = newCampaignId(loaded.spec.name);
    createCampaign(db, { id, name: loaded.spec.name, spec: loaded.spec, specHash: loaded.hash, specFile: loaded.file, seed: loaded.spec.seed });
    const handle = await client.workflow.start<typeof campaignWorkflow>('campaignWorkflow', {
      taskQueue: queues.campaigns,
      workflowId: id,
      args: [{ campaignId: id, spec: loaded.spec, queues, ...storeRetryTuning() }],
    });
    log(
      `campaign ${id} submitted (${loaded.spec.weights.length} run${loaded.spec.weights.length === 1 ? '' : 's'} × ${loaded.spec.pruning.rounds} round${loaded.spec.pruning.rounds === 1 ? '' : 's'}) to ${endpoint.address}${endpoint.uiUrl ? `; Temporal UI ${endpoint.uiUrl}` : ''}`,
    );
    if (loaded.spec.execution.trainOn === 'gpu') {
      log(`execution.trainOn: gpu: baseline and finetune run on queue ${QUEUES.gpu} (start ${cmd(home, 'worker', '--gpu')} on a machine with CUDA)`);
    }
    if (o.detach) {
      const none = await noWorkerLine(client, endpoint.namespace, home, id, UNCLAIMED_NO_WORKER_SECONDS + 1);
      if (none) log(none);
      log(`follow it with ${cmd(home, 'status', id)}`);
      console.log(o.json ? JSON.stringify({ id }) : id);
      return;
    }
    const result = resultAcrossRestarts(handle, endpoint, home);
    let interrupted: NodeJS.Signals | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      interrupted = signal;
    };
    // Ctrl-C or a SIGTERM (`timeout`, a service manager): the workers stop (installRuntime's shutdown signals), so does following
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const follow = followCampaign(db, id, () => interrupted !== undefined, result, {
      client,
      namespace: endpoint.namespace,
      heartbeatTimeoutSeconds: loaded.spec.execution.heartbeatTimeoutSeconds,
    });
    const outcome = await runWorkersUntil(home, endpoint, ALL_QUEUES, o.concurrency, result);
    await follow;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (outcome === 'stopped') {
      log(`stopped this process's worker; campaign ${id} is not lost: ${cmd(home, 'worker')} continues it, ${cmd(home, 'cancel', id)} ends it`);
      process.exitCode = 128 + os.constants.signals[interrupted ?? 'SIGINT']; // as a shell reports a signal: 130 Ctrl-C, 143 SIGTERM
      return;
    }
    const status = campaignStatus(db, id)!;
    const recipe = campaignRecipeOf(loaded.spec.pruning, taskSpecOf(loaded.spec.task).type, loaded.spec.target.runtime);
    if (o.json) console.log(JSON.stringify(statusJson(status, null, recipe), null, 2));
    else console.log(formatStatus(status, recipe));
    if (status.state !== 'completed') {
      const why = await result.then(
        () => status.error ?? status.state,
        (e: Error) => {
          let root: Error = e; // WorkflowFailedError → ChildWorkflowFailure → ActivityFailure → the cause
          while (root.cause instanceof Error) root = root.cause;
          return root.message;
        },
      );
      throw new CliError(`campaign ${id} ${status.state}: ${why}`);
    }
  });

program
  .command('worker')
  .description('serve campaigns until stopped (Ctrl-C); an interrupted campaign continues as soon as a worker polls')
  .addOption(homeOption())
  .option('--concurrency <n>', 'compute stages at once (tfjs computes on one thread: 1 is usually best)', positiveInt, 1)
  .option(
    '--queues <list>',
    `task queues to serve, comma-separated (${ALL_QUEUES.join(', ')}); store only on the host with the SQLite file (default: all three; none with --target or --gpu)`,
    queueList,
  )
  .option(
    '--target <name>',
    'serve only the hardware-adapt stage of campaigns whose target is <name> with measure: worker (run this on that device; it fetches the models it measures from the artifact store, PRUNEWISE_ARTIFACTS)',
    targetName,
  )
  .option(
    '--gpu',
    'serve the gpu queue: baseline and finetune of campaigns with execution.trainOn: gpu, on the CUDA build of tfjs-node (an error where it is not installed)',
  )
  .option('--progress-every <s>', 'seconds between progress lines of a running stage', positiveInt, 10)
  .action(async (o: { home?: string; concurrency: number; queues?: QueueName[]; target?: string; gpu?: boolean; progressEvery: number }) => {
    // before anything starts: a gpu worker without CUDA fails with one line, as does a bad PRUNEWISE_TRAIN_GRAPH
    checkWorkerEnv();
    if (o.gpu) {
      const b = await requireGpuBackend(log);
      log(`--gpu: training on ${b.name}${b.library ? ` (${b.library})` : ''}`);
    }
    const home = resolveHome(o.home);
    ensureHome(home);
    const queues = o.queues ?? (o.target || o.gpu ? [] : ALL_QUEUES);
    const endpoint = await resolveEndpoint(home, { start: true, log });
    // the store queue is this home's own (store-<home id>): a worker of another home never records its campaigns
    const store = queues.includes('store') ? [homeQueues(home).store] : [];
    const names = [
      ...queues.filter((q) => q !== 'store').map((q) => QUEUES[q]),
      ...store,
      ...(o.gpu ? [QUEUES.gpu] : []),
      ...(o.target ? [targetQueue(QUEUES, o.target)] : []),
    ];
    log(
      `worker ${process.pid} serving ${names.join(', ')} on ${endpoint.address} (home ${home.dir}, artifacts ${openStore(home).description}); Ctrl-C stops it`,
    );
    printStages(o.progressEvery, home);
    await runWorkersUntil(home, endpoint, queues, o.concurrency, undefined, o.target, o.gpu);
    log('worker stopped');
  });

program
  .command('server')
  .description('run the embedded Temporal dev server in the foreground (its state persists in <home>/temporal.db)')
  .addOption(homeOption())
  .option('--stop', 'stop the embedded server running in the background')
  .action(async (o: { home?: string; stop?: boolean }) => {
    const home = resolveHome(o.home);
    if (o.stop) {
      log(await stopServer(home));
      return;
    }
    ensureHome(home);
    process.exitCode = await runForegroundServer(home, log);
  });

program
  .command('status')
  .description('where a campaign is: runs, rounds, stages, metrics (reads SQLite; works with no server)')
  .argument('<campaign>', 'campaign id, a unique prefix of it, or latest (see `prunewise ls`)')
  .addOption(homeOption())
  .option('--json', 'machine-readable (the documented contract)')
  .action(async (arg: string, o: { home?: string; json?: boolean }) => {
    const home = resolveHome(o.home);
    const db = openRead(home);
    const c = resolveCampaign(db, home, arg);
    const id = c.id;
    const s = campaignStatus(db, id)!;
    const active = !['completed', 'failed', 'cancelled'].includes(s.state);
    // the live part needs the server; without one, SQLite's view is printed and that is said
    let conn: Awaited<ReturnType<typeof connect>> | undefined;
    if (active) conn = await connect(home, false).catch(() => undefined);
    const lines: string[] = [];
    let live: Parameters<typeof statusJson>[1] = null;
    if (conn) {
      // SQLite and Temporal disagree (a workflow Temporal no longer knows, or one that ended unrecorded): only reported here, `cancel` reconciles
      const mismatch = mismatchLine(await temporalView(conn.client, id), id, conn.endpoint.address, s.state, home);
      if (mismatch) lines.push(mismatch);
      const rows = await readLive(conn.client, conn.endpoint.namespace, db, id, heartbeatTimeoutOf(c));
      live = { rows, eta: campaignEta(db, id, rows) };
      lines.push(...liveLines(id, rows, live.eta));
      const runIds = s.runs.filter((r) => !['completed', 'failed', 'cancelled'].includes(r.state)).map((r) => r.id);
      const none = await noWorkerLine(conn.client, conn.endpoint.namespace, home, id, 0, runIds);
      if (none) lines.push(none);
      else lines.push(...unclaimedLines(id, rows, (...a) => cmd(home, ...a)));
      // a stage no worker runs, on a queue no worker polls, waits for that queue (e.g. a device's worker)
      const waitingStages = waitingStagesByQueue(id, runningStages(db, id), rows);
      // with no worker at all, the line above already says which command; a device's or gpu queue still needs its own
      const queues = [...waitingStages.keys()].filter((q) => !none || q !== QUEUES.cpu);
      lines.push(...(await waitingForQueues(conn.client, conn.endpoint.namespace, queues, waitingStages, (...a) => cmd(home, ...a))));
      // results wait on this home's store queue when no worker of this home runs
      if (!none && !mismatch) {
        const store = (await submittedQueues(conn.client, conn.endpoint.namespace, id)).store ?? homeQueues(home).store;
        if ((await waitingForQueues(conn.client, conn.endpoint.namespace, [store])).length)
          lines.push(`waiting for queue ${store}: no worker of this home records results (start ${cmd(home, 'worker')})`);
      }
      await conn.client.connection.close();
    } else if (active) {
      lines.push(
        `(no Temporal server answers for ${home.dir}: progress within stages and workers unknown; ${cmd(home, 'worker')} starts one and works on the campaign)`,
      );
    }
    const recipe = recipeOfRow(c);
    if (o.json) {
      console.log(JSON.stringify(statusJson(s, live, recipe), null, 2));
      return;
    }
    console.log(formatStatus(s, recipe));
    if (lines.length) console.log(lines.join('\n'));
  });

program
  .command('pareto')
  .description('the Pareto front of a campaign (every round of every run is a candidate) and the recommended model per weight vector')
  .argument('<campaign>', 'campaign id, a unique prefix of it, or latest (see `prunewise ls`)')
  .addOption(homeOption())
  .option('--all', 'list every candidate, not only the front')
  .option('--max-latency-ms <ms>', "budget: only candidates with a model latency ≤ ms (the dashboard's candidates filter latency<=ms)", nonNegative)
  .option('--max-bytes <n>', 'budget: only candidates whose deployed weights are ≤ n bytes (filter bytes<=n)', nonNegative)
  .option('--min-accuracy <fraction>', 'budget: only candidates with test accuracy ≥ fraction, e.g. 0.85 (filter accuracy>=fraction)', nonNegative)
  .option(
    '--json',
    'machine-readable: { campaignId, points[], front, frontDistinct, front2d, hypervolume, hypervolumeApprox, reference, baseline, limits, recommendations[], budget? }',
  )
  .action((arg: string, o: { home?: string; json?: boolean; all?: boolean; maxLatencyMs?: number; maxBytes?: number; minAccuracy?: number }) => {
    const home = resolveHome(o.home);
    const db = openRead(home);
    const id = resolveCampaign(db, home, arg).id;
    const whole = readPareto(db, id); // a read: the stored analysis (kept by the store activity), or a read-only full computation
    if (!whole) throw new CliError(`campaign "${id}" has no measured baseline yet: nothing to compare (see ${cmd(home, 'status', id)})`);
    const p = applyBudget(whole, budgetClauses(o)); // the same rule as the dashboard's candidates view
    console.log(o.json ? JSON.stringify(p, null, 2) : formatPareto(p, !!o.all));
  });

program
  .command('export')
  .description(
    'write a candidate model for deployment: float32 tfjs, or uint8 / float16 weights stock tfjs loads, a Keras file, or TFLite (float32 / int8); its test accuracy re-measured on exactly the written files',
  )
  .argument(
    '<run>',
    'run id: <campaign>/run-<k>, or <campaign>/baseline (the campaign part may be a unique prefix or latest); with --recommended: a campaign id',
  )
  .option('--round <n>', "which round (default: the run's best round: lowest J(w) within the hard constraints)", (v) => (v === '0' ? 0 : positiveInt(v)))
  .option('--recommended', "the campaign's recommended model for --weights, over every candidate (the rule `pareto` shows)")
  .option(
    '--weights <list>',
    'with --recommended: the weight vector, e.g. accuracy=0.5,latency=0.5 (missing = 0; sum 1; default accuracy=0.6,size=0.2,latency=0.2)',
  )
  .addOption(
    new Option(
      '--format <format>',
      'tfjs (float32), uint8 (one min/scale per tensor), float16 (default: the variant the round deploys); keras (.keras Keras 3 / .h5 tf-keras), tflite (float32), tflite-int8 (full-integer, calibrated on the validation split) — written by the .venv TensorFlow',
    ).choices(EXPORT_FORMATS),
  )
  .addOption(new Option('--family <family>', 'with --format keras: keras3 (.keras, default) or tf-keras (.h5)').choices([...KERAS_FAMILIES]))
  .requiredOption('--out <dir>', 'folder to write the model (model.json + weights.bin, model.keras, model.h5 or model[-int8].tflite) and prunewise.json to')
  .addOption(homeOption())
  .option('--json', 'print the result as JSON')
  .action(
    async (
      arg: string,
      o: {
        round?: number;
        recommended?: boolean;
        weights?: string;
        format?: CliExportFormat;
        family?: KerasFamily;
        out: string;
        home?: string;
        json?: boolean;
      },
    ) => {
      const home = resolveHome(o.home);
      const store = openStore(home);
      await migrateHome(home, store);
      const db = openRead(home);
      let runId = o.recommended ? arg : resolveRunArg(db, home, arg);
      let round = o.round;
      if (o.recommended) {
        if (o.round !== undefined) throw new CliError('--round: give either --recommended or --round, not both');
        const w = parseWeightsOption(o.weights ?? 'accuracy=0.6,size=0.2,latency=0.2');
        const id = resolveCampaign(db, home, arg).id;
        const pick = recommendedModel(db, id, w);
        if (!pick) throw new CliError(`campaign "${id}" has no model within its hard constraints for these weights (see ${cmd(home, 'pareto', id)})`);
        log(`recommended for ${OBJECTIVES.map((k) => `${k}=${w[k]}`).join(',')}: ${pick.runId} round ${pick.round} (J ${pick.objective.toFixed(4)})`);
        runId = pick.runId;
        round = pick.round;
      } else if (o.weights !== undefined) {
        throw new CliError('--weights: only with --recommended');
      }
      const r = await exportModel(home, db, store, runId, { round, format: o.format, family: o.family, out: o.out, log });
      if (o.json) console.log(JSON.stringify(r));
      else {
        console.log(
          r.file
            ? `${r.file}: ${r.format}, ${r.bytes} bytes (the float32 tfjs weights: ${r.float32Bytes} bytes)`
            : `${r.out}: ${r.format}, ${r.bytes} bytes of weights (float32: ${r.float32Bytes}, ${(r.float32Bytes / r.bytes).toFixed(2)}× smaller)`,
        );
        console.log(
          `test accuracy with exactly ${r.file ? 'this file' : 'these weights'}: ${(r.accuracy * 100).toFixed(2)} % (float32 tfjs: ${(r.float32Accuracy * 100).toFixed(2)} %), measured by ${r.measuredBy}`,
        );
      }
    },
  );

program
  .command('dashboard')
  .description(
    'the dashboard in the browser: campaigns, runs against the baseline, trade-off and parallel-coordinates charts, run pages, compare; live while campaigns run',
  )
  .addOption(homeOption())
  .option('--port <n>', 'port (0: any free one)', portNumber, 8787)
  .option('--host <host>', 'interface to bind (127.0.0.1: this machine only; any other asks for the access token printed at start)', '127.0.0.1')
  .option('--read-only', 'refuse every write (notes and tags on run pages)')
  .action(async (o: { home?: string; port: number; host: string; readOnly?: boolean }) => {
    const home = resolveHome(o.home);
    const store = openStore(home);
    const db = openChecked(home, { damaged: true }); // a damaged file: every page says so (createDashboard checks it)
    if (!quickCheck(db).length) await migrateHomeArtifacts(home, db, store, log);
    // off this machine, every request must carry a token (env PRUNEWISE_DASHBOARD_TOKEN fixes one, else a fresh one)
    const loopback = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(o.host);
    const token = loopback ? undefined : process.env.PRUNEWISE_DASHBOARD_TOKEN || crypto.randomBytes(18).toString('base64url');
    // running stages' live state (heartbeats in Temporal, as `status` reads them); none without a server
    let conn: Promise<Awaited<ReturnType<typeof connect>> | undefined> | undefined;
    const stageProgress = async (campaignId: string) => {
      conn ??= connect(home, false).catch(() => undefined);
      const c = await conn;
      const row = listCampaigns(db).find((r) => r.id === campaignId);
      if (!c || !row) return [];
      const rows = await readLive(c.client, c.endpoint.namespace, db, campaignId, heartbeatTimeoutOf(row)).catch(() => []);
      return rows.map((r) => ({
        runId: r.runId,
        round: r.round,
        stage: r.stage,
        liveness: r.state === 'worker-lost' ? ('lost' as const) : ('running' as const),
        progress: describeLive(r),
        etaSeconds: r.etaSeconds ?? undefined,
      }));
    };
    const app = createDashboard(db, { homeDir: home.dir, store, readOnly: !!o.readOnly, token, stageProgress });
    const server = app.listen(o.port, o.host);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new CliError(
            e.code === 'EADDRINUSE'
              ? `--port: ${o.host}:${o.port} is already in use: pick another port (--port 0 takes any free one)`
              : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND'
                ? `--host: ${o.host} is not an address of this machine: give one of its addresses (127.0.0.1 for this machine only)`
                : `--port: cannot listen on ${o.host}:${o.port} (${e.code}): pick another port`,
          ),
        ),
      );
    });
    const addr = server.address() as { port: number };
    const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${addr.port}/${token ? `?token=${token}` : ''}`;
    console.log(`dashboard: ${url}  (home ${home.dir}${o.readOnly ? '; read-only' : ''}; Ctrl-C stops it)`);
    if (token) console.log(`--host ${o.host} is reachable from other machines: every request needs the token above (open this URL once; it sets a cookie)`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        app.closeStreams();
        server.close(() => resolve());
        server.closeAllConnections();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  });

program
  .command('ls')
  .description('list campaigns, newest first: state, progress (rounds done of all), best model for the default weights, when created')
  .addOption(homeOption())
  .option('--json', 'print [{ "id", "name", "state", "createdAt", "updatedAt", "roundsDone", "roundsTotal", "best" }]')
  .action((o: { home?: string; json?: boolean }) => {
    const home = resolveHome(o.home);
    const db = fs.existsSync(home.db) ? openChecked(home, { readOnly: true }) : undefined;
    const rows = db ? listCampaigns(db).map((r) => lsRow(db, r)) : [];
    if (o.json) {
      console.log(JSON.stringify(rows));
      return;
    }
    if (rows.length === 0) {
      console.log(`no campaigns in ${home.dir}${db ? '' : ' (no database there)'}`);
      log(HOME_HELP);
      return;
    }
    const table = [
      ['ID', 'STATE', 'PROGRESS', `BEST (${DEFAULT_WEIGHTS_TEXT})`, 'CREATED (UTC)'],
      ...rows.map((r) => [
        r.id,
        r.state,
        `${r.roundsDone}/${r.roundsTotal} rounds${r.roundsTotal ? ` ${Math.round((100 * r.roundsDone) / r.roundsTotal)}%` : ''}`,
        r.best
          ? `${r.best.run} r${r.best.round}: ${r.best.accuracy === null ? '—' : `${(r.best.accuracy * 100).toFixed(2)}%`}, ${(r.best.bytes / 1024).toFixed(1)} KB, ${r.best.latencyMs.toFixed(2)} ms`
          : '—',
        r.createdAt.replace('T', ' ').slice(0, 19),
      ]),
    ];
    const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
    for (const row of table) console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  '));
  });

const DEFAULT_WEIGHTS_TEXT = 'accuracy=0.6,size=0.2,latency=0.2';

/** One campaign as `ls` shows it: progress in rounds and the model recommended for the default weights. */
function lsRow(db: Db, r: CampaignRow) {
  const spec = JSON.parse(r.spec_json) as { weights?: unknown[]; pruning?: { rounds?: number } };
  const roundsTotal = (spec.weights?.length ?? 0) * (spec.pruning?.rounds ?? 0);
  let best: { run: string; round: number; accuracy: number | null; bytes: number; latencyMs: number; objective: number } | null = null;
  try {
    const pick = recommendedModel(db, r.id, parseWeightsOption(DEFAULT_WEIGHTS_TEXT));
    const p = pick && readParetoPoint(db, r.id, pick.runId, pick.round);
    if (pick && p)
      best = {
        run: pick.runId.slice(r.id.length + 1),
        round: pick.round,
        accuracy: p.accuracy,
        bytes: p.values.bytes,
        latencyMs: p.values.latencyMs,
        objective: pick.objective,
      };
  } catch {
    best = null; // no baseline yet
  }
  return { id: r.id, name: r.name, state: r.state, createdAt: r.created_at, updatedAt: r.updated_at, roundsDone: completedRounds(db, r.id), roundsTotal, best };
}

for (const [name, what] of [
  ['pause', 'pause a campaign: running stages finish, no new stage starts'],
  ['resume', 'resume a paused campaign'],
] as const) {
  program
    .command(name)
    .description(what)
    .argument('<campaign>', 'campaign id, a unique prefix of it, or latest')
    .addOption(homeOption())
    .action(async (arg: string, o: { home?: string }) => {
      const home = resolveHome(o.home);
      const db = openRead(home);
      const c = resolveCampaign(db, home, arg);
      const id = c.id;
      if (['completed', 'failed', 'cancelled'].includes(c.state)) throw new CliError(`campaign ${id} is ${c.state}: nothing to ${name}`);
      if (name === 'resume' && c.state !== 'paused' && c.state !== 'pending') throw new CliError(`campaign ${id} is ${c.state}, not paused: nothing to resume`);
      if (name === 'pause' && c.state === 'paused') throw new CliError(`campaign ${id} is already paused: ${cmd(home, 'resume', id)} resumes it`);
      const { client, endpoint } = await connect(home, true);
      const handle = client.workflow.getHandle(id);
      let closed: string | undefined;
      try {
        const d = await handle.describe();
        if (d.status.name !== 'RUNNING') closed = d.status.name.toLowerCase();
      } catch (e) {
        if (e instanceof WorkflowNotFoundError)
          throw new CliError(`campaign ${id} is not known to the Temporal server at ${endpoint.address}: ${cmd(home, 'cancel', id)} records it as cancelled`);
        throw e;
      }
      if (closed)
        throw new CliError(
          `campaign ${id} already ended in Temporal (${closed}); its recorded state "${c.state}" is behind: ${cmd(home, 'cancel', id)} records it`,
        );
      await handle.signal(name);
      const none = await noWorkerLine(client, endpoint.namespace, home, id);
      const effect = name === 'pause' ? 'running stages finish, then no new stage starts (status shows paused)' : 'new stages start again';
      log(
        none
          ? `${name} requested for ${id}, but no worker runs it: it takes effect when one starts (${effect}). ${none.replace(/^no worker serves campaign \S+ /, '')}`
          : `${name} requested for ${id}: ${effect} at the next stage boundary; ${cmd(home, 'status', id)} shows it`,
      );
    });
}

program
  .command('cancel')
  .description(
    'cancel a campaign: running stages are cancelled, the state is kept; one Temporal no longer knows, already closed, or no worker ever started ends cancelled (or failed) in SQLite with the reason',
  )
  .argument('<campaign>', 'campaign id, a unique prefix of it, or latest')
  .addOption(homeOption())
  .option('--wait <s>', 'seconds to wait for the workers to record the cancellation', (v) => (v === '0' ? 0 : positiveInt(v)), 30)
  .action(async (arg: string, o: { home?: string; wait: number }) => {
    const home = resolveHome(o.home);
    const db = openWrite(home);
    const c = resolveCampaign(db, home, arg);
    const id = c.id;
    if (['completed', 'failed', 'cancelled'].includes(c.state)) throw new CliError(`campaign ${id} is ${c.state}: nothing to cancel`);
    const { client, endpoint } = await connect(home, true);
    try {
      const handle = client.workflow.getHandle(id);
      let view = await temporalView(client, id);
      if (view.kind === 'running' && view.neverRan) {
        // no worker ever ran it: nothing would record a cancellation, so it ends here
        const queue = (await submittedQueues(client, endpoint.namespace, id)).workflow ?? QUEUES.campaigns;
        const reason = `cancelled before any worker started it (no worker served ${queue})`;
        await handle.terminate(reason);
        settle(db, id, { state: 'cancelled', reason });
        log(`campaign ${id} cancelled: ${reason}`);
        return;
      }
      if (view.kind === 'running') {
        await handle.cancel();
        log(`cancel sent to ${id}; waiting up to ${o.wait} s for its workers to record it`);
        const t0 = Date.now();
        while (Date.now() - t0 < o.wait * 1000) {
          await new Promise((r) => setTimeout(r, 500));
          view = await temporalView(client, id);
          if (view.kind !== 'running') break;
        }
      }
      const now = resolveCampaign(db, home, id).state;
      if (['completed', 'failed', 'cancelled'].includes(now)) {
        log(`campaign ${id} ${now}`);
        return;
      }
      const settled = settledState(view, id, endpoint.address, now);
      if (!settled) {
        log(
          `campaign ${id} is still stopping (a stage ends at its next heartbeat); the worker of this home records it: ${cmd(home, 'worker')}, and ${cmd(home, 'status', id)} shows it`,
        );
        return;
      }
      settle(db, id, settled);
      log(`campaign ${id} ${settled.state}: ${settled.reason}`);
    } finally {
      await client.connection.close();
    }
  });

program
  .command('rm')
  .description("delete a finished campaign's rows and artifact files (one Temporal no longer runs is recorded as ended first)")
  .argument('<campaign>', 'campaign id (in full, or latest: rm takes no prefix)')
  .addOption(homeOption())
  .action(async (arg: string, o: { home?: string }) => {
    const home = resolveHome(o.home);
    const db = openWrite(home);
    const c = resolveCampaign(db, home, arg);
    const id = c.id;
    if (arg !== id && arg !== 'latest') throw new CliError(`rm deletes for good: give the whole id (${id}), not a prefix`);
    if (!['completed', 'failed', 'cancelled'].includes(c.state)) {
      let conn: Awaited<ReturnType<typeof connect>>;
      try {
        conn = await connect(home, false);
      } catch {
        throw new CliError(
          `campaign ${id} is ${c.state} and no Temporal server answers to tell whether it still runs: start it (${cmd(home, 'server')}), then ${cmd(home, 'cancel', id)}`,
        );
      }
      try {
        const settled = settledState(await temporalView(conn.client, id), id, conn.endpoint.address, c.state);
        if (!settled) throw new CliError(`campaign ${id} is ${c.state}: cancel it first (${cmd(home, 'cancel', id)})`);
        settle(db, id, settled);
        log(`campaign ${id} recorded as ${settled.state}: ${settled.reason}`);
      } finally {
        await conn.client.connection.close();
      }
    }
    const dir = path.join(home.artifacts, id);
    if (!path.resolve(dir).startsWith(path.resolve(home.artifacts) + path.sep)) throw new CliError(`refusing to delete ${dir}: outside ${home.artifacts}`);
    const store: ArtifactStore = openStore(home);
    // the store first: a failure leaves the rows, so \`rm\` can be run again
    const dropped = await store.unpin([`artifacts/${id}/`]).catch((e: Error) => {
      throw new CliError(
        `artifact store ${store.description}: ${e.message.split('\n')[0]}: nothing was removed; run ${cmd(home, 'rm', id)} again when it answers`,
      );
    });
    deleteCampaign(db, id);
    checkpointDb(db);
    fs.rmSync(dir, { recursive: true, force: true });
    log(
      `removed campaign ${id} (rows, ${dir}, and ${dropped.refs} artifacts in ${store.description}: ${dropped.blobs} blobs, ${(dropped.bytes / 1e6).toFixed(1)} MB no other campaign holds)`,
    );
  });

program
  .command('backup')
  .description('copy the database while workers run (SQLite online backup) into one self-contained, checked file')
  .argument('<file>', 'the copy (must not exist)')
  .addOption(homeOption())
  .action(async (file: string, o: { home?: string }) => {
    log(await backupHome(resolveHome(o.home), path.resolve(file)));
  });

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (e) {
    let err = e as Error;
    // SQLite found damage the check at open did not (a page read later): the same one line
    if (isCorruptError(err)) {
      const i = argv.findIndex((a) => a === '--home' || a.startsWith('--home='));
      const dir = i < 0 ? undefined : argv[i].startsWith('--home=') ? argv[i].slice('--home='.length) : argv[i + 1];
      err = new CliError(damagedLine(resolveHome(dir).db, [err.message]));
    }
    const known = err instanceof CliError || err instanceof CampaignError || err instanceof HomeError || err instanceof WorkflowExecutionAlreadyStartedError;
    const os = known ? undefined : oneLineOsError(err);
    process.stderr.write(
      `prunewise: ${
        known
          ? err.message
          : os && !process.env.PRUNEWISE_DEBUG
            ? os
            : (err.stack ?? String(err))
                .split('\n')
                .slice(0, process.env.PRUNEWISE_DEBUG ? 50 : 1)
                .join('\n')
      }\n`,
    );
    process.exitCode = 1;
  }
}
