// prunewise: launch, watch, steer and clean up pruning campaigns.
import { Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { Command, InvalidArgumentError, Option } from 'commander';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VERSION } from '../platform/version';
import { CampaignError, loadCampaignFile, parseWeightsOption } from '../campaign/load';
import { readPareto, recommendedModel } from '../analysis';
import {
  campaignStatus,
  checkpointDb,
  createCampaign,
  damagedLine,
  isCorruptError,
  deleteCampaign,
  getCampaign,
  listCampaigns,
  openDb,
  runningStages,
  type Db,
} from '../db';
import { backupHome, openChecked } from './dbfile';
import { homeArg, mismatchLine, settle, settledState, submittedQueues, temporalView, workflowPollers } from './reconcile';
import { formatPareto } from './pareto';
import { createDashboard } from '../dashboard/server';
import { EXPORT_FORMATS, exportModel } from './export';
import type { ExportFormat } from '../ml';
import type { campaignWorkflow } from '../workflows';
import { ensureHome, resolveHome, type Home } from './home';
import { followCampaign, formatStatus, waitingForQueues } from './progress';
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
import { ALL_QUEUES, createWorkers, homeQueues, installRuntime, QUEUES, requireGpuBackend, type QueueName } from './worker';
import { formatCampaignId, OBJECTIVES, targetQueue } from '../core';

const log = (s: string) => process.stderr.write(`${s}\n`);

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a whole number ≥ 1 (got "${v}")`);
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

/** The home's database, checked with PRAGMA quick_check (a damaged file: one line, exit 1). */
function openExisting(home: Home): Db {
  return openChecked(home);
}

function requireCampaign(db: Db, id: string) {
  const c = getCampaign(db, id);
  if (!c) throw new CliError(`campaign "${id}" not found: \`prunewise ls\` lists the campaigns`);
  return c;
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
  const unwatch = watchServer(endpoint, home, log);
  try {
    return await serveUntil(home, endpoint, queues, concurrency, until, device, gpu);
  } finally {
    unwatch();
  }
}

async function serveUntil(
  home: Home,
  endpoint: TemporalEndpoint,
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
      set = await createWorkers({ connection, namespace: endpoint.namespace, home, queues, concurrency, device, gpu });
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
    const home = resolveHome(o.home);
    ensureHome(home);
    const { client, endpoint } = await connect(home, true);
    const db = openChecked(home, { create: true });
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
      `campaign ${id} submitted (${loaded.spec.weights.length} runs × ${loaded.spec.pruning.rounds} rounds) to ${endpoint.address}${endpoint.uiUrl ? `; Temporal UI ${endpoint.uiUrl}` : ''}`,
    );
    if (loaded.spec.execution.trainOn === 'gpu') {
      log(`execution.trainOn: gpu: baseline and finetune run on queue ${QUEUES.gpu} (start \`prunewise worker --gpu\` on a machine with CUDA)`);
    }
    if (o.detach) {
      console.log(o.json ? JSON.stringify({ id }) : id);
      return;
    }
    const result = resultAcrossRestarts(handle, endpoint, home);
    let interrupted = false;
    const onSigint = () => {
      interrupted = true;
    };
    process.once('SIGINT', onSigint);
    const follow = followCampaign(db, id, () => interrupted, result, client);
    const outcome = await runWorkersUntil(home, endpoint, ALL_QUEUES, o.concurrency, result);
    await follow;
    process.off('SIGINT', onSigint);
    if (outcome === 'stopped') {
      log(
        `stopped this process's worker; campaign ${id} is not lost: \`prunewise worker ${homeArg(home)}\` continues it, \`prunewise cancel ${id} ${homeArg(home)}\` ends it`,
      );
      process.exitCode = 130;
      return;
    }
    const status = campaignStatus(db, id)!;
    if (o.json) console.log(JSON.stringify(status, null, 2));
    else console.log(formatStatus(status));
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
    'serve only the hardware-adapt stage of campaigns whose target is <name> with measure: worker (run this on that device; it needs the same --home files, e.g. over NFS)',
    targetName,
  )
  .option(
    '--gpu',
    'serve the gpu queue: baseline and finetune of campaigns with execution.trainOn: gpu, on the CUDA build of tfjs-node (an error where it is not installed)',
  )
  .action(async (o: { home?: string; concurrency: number; queues?: QueueName[]; target?: string; gpu?: boolean }) => {
    // before anything starts: a gpu worker without CUDA fails with one line
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
    log(`worker ${process.pid} serving ${names.join(', ')} on ${endpoint.address} (home ${home.dir}); Ctrl-C stops it`);
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
  .argument('<campaign>', 'campaign id (see `prunewise ls`)')
  .addOption(homeOption())
  .option('--json', 'machine-readable (the documented contract)')
  .action(async (id: string, o: { home?: string; json?: boolean }) => {
    const home = resolveHome(o.home);
    const db = openExisting(home);
    requireCampaign(db, id);
    const s = campaignStatus(db, id)!;
    if (o.json) {
      console.log(JSON.stringify(s, null, 2));
      return;
    }
    console.log(formatStatus(s));
    // a stage "running" on a queue no worker polls is waiting for that queue (e.g. a device's worker)
    const waitingStages = new Map<string, string[]>();
    for (const r of runningStages(db, id)) {
      if (!r.task_queue) continue;
      const run = r.run_id.slice(id.length + 1);
      waitingStages.set(r.task_queue, [
        ...(waitingStages.get(r.task_queue) ?? []),
        run === 'baseline' ? `baseline ${r.stage}` : `${run} round ${r.round} ${r.stage}`,
      ]);
    }
    const queues = [...waitingStages.keys()];
    if (!['pending', 'running', 'paused'].includes(s.state)) return;
    let c: Awaited<ReturnType<typeof connect>> | undefined;
    try {
      c = await connect(home, false);
    } catch {
      console.log(`(no Temporal server answers: cannot tell whether the campaign still runs${queues.length ? ` or workers serve ${queues.join(', ')}` : ''})`);
      return;
    }
    try {
      // only reported here: `cancel` reconciles
      const view = await temporalView(c.client, id);
      const mismatch = mismatchLine(view, id, c.endpoint.address, s.state, home);
      if (mismatch) {
        console.log(mismatch);
        return;
      }
      const submitted = await submittedQueues(c.client, c.endpoint.namespace, id);
      const workflowQueue = submitted.workflow ?? QUEUES.campaigns;
      if (view.kind === 'running' && view.neverRan && (await workflowPollers(c.client, c.endpoint.namespace, workflowQueue)) === 0)
        console.log(`waiting for queue ${workflowQueue}: no worker serves it (start \`prunewise worker ${homeArg(home)}\`)`);
      else if (s.state === 'running' && queues.length)
        for (const line of await waitingForQueues(c.client, c.endpoint.namespace, queues, waitingStages)) console.log(line);
      // results wait on this home's store queue when no worker of this home runs
      const store = submitted.store ?? homeQueues(home).store;
      if (!(view.kind === 'running' && view.neverRan) && (await waitingForQueues(c.client, c.endpoint.namespace, [store])).length)
        console.log(`waiting for queue ${store}: no worker of this home records results (start \`prunewise worker ${homeArg(home)}\`)`);
    } finally {
      await c.client.connection.close();
    }
  });

program
  .command('pareto')
  .description('the Pareto front of a campaign (every round of every run is a candidate) and the recommended model per weight vector')
  .argument('<campaign>', 'campaign id (see `prunewise ls`)')
  .addOption(homeOption())
  .option('--all', 'list every candidate, not only the front')
  .option(
    '--json',
    'machine-readable: { campaignId, points[], front, frontDistinct, front2d, hypervolume, hypervolumeApprox, reference, baseline, recommendations[] }',
  )
  .action((id: string, o: { home?: string; json?: boolean; all?: boolean }) => {
    const db = openExisting(resolveHome(o.home));
    requireCampaign(db, id);
    const p = readPareto(db, id); // a read: the stored analysis (kept by the store activity), or a read-only full computation
    if (!p) throw new CliError(`campaign "${id}" has no measured baseline yet: nothing to compare (see \`prunewise status ${id}\`)`);
    console.log(o.json ? JSON.stringify(p, null, 2) : formatPareto(p, !!o.all));
  });

program
  .command('export')
  .description('write a candidate model for deployment: float32 tfjs, or uint8 / float16 weights stock tfjs loads')
  .argument('<run>', 'run id: <campaign>/run-<k>, or <campaign>/baseline; with --recommended: a campaign id')
  .option('--round <n>', "which round (default: the run's best round: lowest J(w) within the hard constraints)", (v) => (v === '0' ? 0 : positiveInt(v)))
  .option('--recommended', "the campaign's recommended model for --weights, over every candidate (the rule `pareto` shows)")
  .option(
    '--weights <list>',
    'with --recommended: the weight vector, e.g. accuracy=0.5,latency=0.5 (missing = 0; sum 1; default accuracy=0.6,size=0.2,latency=0.2)',
  )
  .addOption(
    new Option('--format <format>', 'tfjs (float32), uint8 (one min/scale per tensor), float16 (default: the variant the round deploys)').choices(
      EXPORT_FORMATS,
    ),
  )
  .requiredOption('--out <dir>', 'folder to write model.json, weights.bin and prunewise.json to')
  .addOption(homeOption())
  .option('--json', 'print the result as JSON')
  .action(
    async (arg: string, o: { round?: number; recommended?: boolean; weights?: string; format?: ExportFormat; out: string; home?: string; json?: boolean }) => {
      const home = resolveHome(o.home);
      const db = openExisting(home);
      let runId = arg;
      let round = o.round;
      if (o.recommended) {
        if (o.round !== undefined) throw new CliError('--round: give either --recommended or --round, not both');
        const w = parseWeightsOption(o.weights ?? 'accuracy=0.6,size=0.2,latency=0.2');
        requireCampaign(db, arg);
        const pick = recommendedModel(db, arg, w);
        if (!pick) throw new CliError(`campaign "${arg}" has no model within its hard constraints for these weights (see \`prunewise pareto ${arg}\`)`);
        log(`recommended for ${OBJECTIVES.map((k) => `${k}=${w[k]}`).join(',')}: ${pick.runId} round ${pick.round} (J ${pick.objective.toFixed(4)})`);
        runId = pick.runId;
        round = pick.round;
      } else if (o.weights !== undefined) {
        throw new CliError('--weights: only with --recommended');
      }
      const r = await exportModel(home, db, runId, { round, format: o.format, out: o.out, log });
      if (o.json) console.log(JSON.stringify(r));
      else {
        console.log(`${r.out}: ${r.format}, ${r.bytes} bytes of weights (float32: ${r.float32Bytes}, ${(r.float32Bytes / r.bytes).toFixed(2)}× smaller)`);
        console.log(
          `test accuracy with exactly these weights: ${(r.accuracy * 100).toFixed(2)} % (float32: ${(r.float32Accuracy * 100).toFixed(2)} %), measured on ${r.backend}`,
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
  .option('--port <n>', 'port (0: any free one)', (v) => (v === '0' ? 0 : positiveInt(v)), 8787)
  .option('--host <host>', 'interface to bind (127.0.0.1: this machine only)', '127.0.0.1')
  .action(async (o: { home?: string; port: number; host: string }) => {
    const home = resolveHome(o.home);
    const db = openChecked(home, { damaged: true }); // a damaged file: every page says so (createDashboard checks it)
    const app = createDashboard(db, { homeDir: home.dir });
    const server = app.listen(o.port, o.host);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', (e: NodeJS.ErrnoException) => reject(new CliError(`--port: cannot listen on ${o.host}:${o.port} (${e.code}): pick another port`)));
    });
    const addr = server.address() as { port: number };
    console.log(`dashboard: http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${addr.port}/  (home ${home.dir}; Ctrl-C stops it)`);
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
  .description('list campaigns, newest first')
  .addOption(homeOption())
  .option('--json', 'print [{ "id", "name", "state" }]')
  .action((o: { home?: string; json?: boolean }) => {
    const home = resolveHome(o.home);
    const rows = fs.existsSync(home.db) ? listCampaigns(openChecked(home)) : [];
    if (o.json) {
      console.log(JSON.stringify(rows.map((r) => ({ id: r.id, name: r.name, state: r.state, createdAt: r.created_at, updatedAt: r.updated_at }))));
      return;
    }
    if (rows.length === 0) console.log(`no campaigns in ${home.dir}`);
    for (const r of rows) console.log(`${r.id}  ${r.state.padEnd(9)}  ${r.created_at}`);
  });

for (const [name, what] of [
  ['pause', 'pause a campaign: running stages finish, no new stage starts'],
  ['resume', 'resume a paused campaign'],
] as const) {
  program
    .command(name)
    .description(what)
    .argument('<campaign>', 'campaign id')
    .addOption(homeOption())
    .action(async (id: string, o: { home?: string }) => {
      const home = resolveHome(o.home);
      const db = openExisting(home);
      const c = requireCampaign(db, id);
      if (['completed', 'failed', 'cancelled'].includes(c.state)) throw new CliError(`campaign ${id} is ${c.state}: nothing to ${name}`);
      const { client, endpoint } = await connect(home, true);
      try {
        await client.workflow.getHandle(id).signal(name);
      } catch (e) {
        if (e instanceof WorkflowNotFoundError)
          throw new CliError(
            `campaign ${id} is not known to the Temporal server at ${endpoint.address}: \`prunewise cancel ${id} ${homeArg(home)}\` records it as cancelled`,
          );
        throw e;
      }
      log(`${name} sent to ${id}; takes effect at the next stage boundary`);
    });
}

program
  .command('cancel')
  .description(
    'cancel a campaign: running stages are cancelled, the state is kept; one Temporal no longer knows, already closed, or no worker ever started ends cancelled (or failed) in SQLite with the reason',
  )
  .argument('<campaign>', 'campaign id')
  .addOption(homeOption())
  .option('--wait <s>', 'seconds to wait for the workers to record the cancellation', (v) => (v === '0' ? 0 : positiveInt(v)), 30)
  .action(async (id: string, o: { home?: string; wait: number }) => {
    const home = resolveHome(o.home);
    const db = openExisting(home);
    const c = requireCampaign(db, id);
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
      const now = requireCampaign(db, id).state;
      if (['completed', 'failed', 'cancelled'].includes(now)) {
        log(`campaign ${id} ${now}`);
        return;
      }
      const settled = settledState(view, id, endpoint.address, now);
      if (!settled) {
        log(
          `campaign ${id} is still stopping (a stage ends at its next heartbeat); the worker of this home records it: \`prunewise worker ${homeArg(home)}\`, and \`prunewise status ${id} ${homeArg(home)}\` shows it`,
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
  .argument('<campaign>', 'campaign id')
  .addOption(homeOption())
  .action(async (id: string, o: { home?: string }) => {
    const home = resolveHome(o.home);
    const db = openExisting(home);
    const c = requireCampaign(db, id);
    if (!['completed', 'failed', 'cancelled'].includes(c.state)) {
      let conn: Awaited<ReturnType<typeof connect>>;
      try {
        conn = await connect(home, false);
      } catch {
        throw new CliError(
          `campaign ${id} is ${c.state} and no Temporal server answers to tell whether it still runs: start it (\`prunewise server ${homeArg(home)}\`), then \`prunewise cancel ${id} ${homeArg(home)}\``,
        );
      }
      try {
        const settled = settledState(await temporalView(conn.client, id), id, conn.endpoint.address, c.state);
        if (!settled) throw new CliError(`campaign ${id} is ${c.state}: cancel it first (\`prunewise cancel ${id} ${homeArg(home)}\`)`);
        settle(db, id, settled);
        log(`campaign ${id} recorded as ${settled.state}: ${settled.reason}`);
      } finally {
        await conn.client.connection.close();
      }
    }
    const dir = path.join(home.artifacts, id);
    if (!path.resolve(dir).startsWith(path.resolve(home.artifacts) + path.sep)) throw new CliError(`refusing to delete ${dir}: outside ${home.artifacts}`);
    deleteCampaign(db, id);
    checkpointDb(db);
    fs.rmSync(dir, { recursive: true, force: true });
    log(`removed campaign ${id} (rows and ${dir})`);
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
    const known = err instanceof CliError || err instanceof CampaignError || err instanceof WorkflowExecutionAlreadyStartedError;
    process.stderr.write(
      `prunewise: ${
        known
          ? err.message
          : (err.stack ?? String(err))
              .split('\n')
              .slice(0, process.env.PRUNEWISE_DEBUG ? 50 : 1)
              .join('\n')
      }\n`,
    );
    process.exitCode = 1;
  }
}
