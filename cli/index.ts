// prunewise: launch, watch, steer and clean up pruning campaigns.
import { Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { Command, InvalidArgumentError, Option } from 'commander';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VERSION } from '../platform/version';
import { CampaignError, loadCampaignFile, parseWeightsOption } from '../campaign/load';
import { readPareto, recommendedModel } from '../analysis';
import { campaignStatus, createCampaign, deleteCampaign, getCampaign, listCampaigns, openDb, runningStages, type Db } from '../db';
import { formatPareto } from './pareto';
import { createDashboard } from '../dashboard/server';
import { EXPORT_FORMATS, exportModel } from './export';
import type { ExportFormat } from '../ml';
import type { campaignWorkflow } from '../workflows';
import { ensureHome, resolveHome, type Home } from './home';
import { followCampaign, formatStatus, waitingForQueues } from './progress';
import { CliError, clientConnection, resolveEndpoint, runForegroundServer, stopServer, workerConnection, type TemporalEndpoint } from './temporal';
import { checkStore, migrateHomeArtifacts, openStore } from './store';
import type { ArtifactStore } from '../blobstore';
import { ALL_QUEUES, createWorkers, installRuntime, QUEUES, requireGpuBackend, type QueueName } from './worker';
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

async function connect(home: Home, start: boolean): Promise<{ client: Client; endpoint: TemporalEndpoint }> {
  const endpoint = await resolveEndpoint(home, { start, log });
  const connection = await clientConnection(endpoint);
  return { client: new Client({ connection, namespace: endpoint.namespace }), endpoint };
}

function openExisting(home: Home): Db {
  if (!fs.existsSync(home.db)) throw new CliError(`${home.db} does not exist: no campaign has run with --home ${home.dir}`);
  return openDb(home.db);
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
  const store = openStore(home);
  await checkStore(store);
  // the worker that owns the database brings a home from before the store into it first
  if (queues.includes('store') && fs.existsSync(home.db)) await migrateHomeArtifacts(home, openDb(home.db), store, log);
  const connection = await workerConnection(endpoint);
  const set = await createWorkers({ connection, namespace: endpoint.namespace, home, store, queues, concurrency, device, gpu });
  const running = set.run();
  let outcome: 'stopped' | 'done' = 'stopped';
  if (until) {
    await Promise.race([
      until.then(
        () => (outcome = 'done'),
        () => (outcome = 'done'),
      ),
      running,
    ]);
    set.shutdown();
  }
  await running;
  await connection.close();
  return outcome;
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
    const db = openDb(home.db);
    const id = newCampaignId(loaded.spec.name);
    createCampaign(db, { id, name: loaded.spec.name, spec: loaded.spec, specHash: loaded.hash, specFile: loaded.file, seed: loaded.spec.seed });
    const handle = await client.workflow.start<typeof campaignWorkflow>('campaignWorkflow', {
      taskQueue: QUEUES.campaigns,
      workflowId: id,
      args: [{ campaignId: id, spec: loaded.spec, queues: QUEUES }],
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
    const result = handle.result();
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
      log(`stopped this process's worker; campaign ${id} is not lost: \`prunewise worker\` continues it, \`prunewise cancel ${id}\` ends it`);
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
    'serve only the hardware-adapt stage of campaigns whose target is <name> with measure: worker (run this on that device; it fetches the models it measures from the artifact store, PRUNEWISE_ARTIFACTS)',
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
    const names = [...queues.map((q) => QUEUES[q]), ...(o.gpu ? [QUEUES.gpu] : []), ...(o.target ? [targetQueue(QUEUES, o.target)] : [])];
    log(
      `worker ${process.pid} serving ${names.join(', ')} on ${endpoint.address} (home ${home.dir}, artifacts ${openStore(home).description}); Ctrl-C stops it`,
    );
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
    if (queues.length === 0 || s.state !== 'running') return;
    let c: Awaited<ReturnType<typeof connect>> | undefined;
    try {
      c = await connect(home, false);
    } catch {
      console.log(`(no Temporal server answers: cannot tell whether workers serve ${queues.join(', ')})`);
      return;
    }
    for (const line of await waitingForQueues(c.client, c.endpoint.namespace, queues, waitingStages)) console.log(line);
    await c.client.connection.close();
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
      const store = openStore(home);
      await migrateHomeArtifacts(home, db, store, log);
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
      const r = await exportModel(home, db, store, runId, { round, format: o.format, out: o.out, log });
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
    const db = openExisting(home);
    const store = openStore(home);
    await migrateHomeArtifacts(home, db, store, log);
    const app = createDashboard(db, { homeDir: home.dir, store });
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
    const rows = fs.existsSync(home.db) ? listCampaigns(openDb(home.db)) : [];
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
  ['cancel', 'cancel a campaign: running stages are cancelled, the state is kept'],
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
      const { client } = await connect(home, true);
      const handle = client.workflow.getHandle(id);
      try {
        if (name === 'cancel') await handle.cancel();
        else await handle.signal(name);
      } catch (e) {
        if (e instanceof WorkflowNotFoundError)
          throw new CliError(`campaign ${id} is not known to the Temporal server at this address (was it run with another server?)`);
        throw e;
      }
      log(`${name} sent to ${id}${name === 'cancel' ? '' : '; takes effect at the next stage boundary'}`);
    });
}

program
  .command('rm')
  .description("delete a finished campaign's rows, its artifacts in the store (blobs no other campaign holds) and this home's copies")
  .argument('<campaign>', 'campaign id')
  .addOption(homeOption())
  .action(async (id: string, o: { home?: string }) => {
    const home = resolveHome(o.home);
    const db = openExisting(home);
    const c = requireCampaign(db, id);
    if (!['completed', 'failed', 'cancelled'].includes(c.state))
      throw new CliError(`campaign ${id} is ${c.state}: cancel it first (\`prunewise cancel ${id}\`)`);
    const dir = path.join(home.artifacts, id);
    if (!path.resolve(dir).startsWith(path.resolve(home.artifacts) + path.sep)) throw new CliError(`refusing to delete ${dir}: outside ${home.artifacts}`);
    const store: ArtifactStore = openStore(home);
    // the store first: a failure leaves the rows, so \`rm\` can be run again
    const dropped = await store.unpin([`artifacts/${id}/`]).catch((e: Error) => {
      throw new CliError(
        `artifact store ${store.description}: ${e.message.split('\n')[0]}: nothing was removed; run \`prunewise rm ${id}\` again when it answers`,
      );
    });
    deleteCampaign(db, id);
    fs.rmSync(dir, { recursive: true, force: true });
    log(
      `removed campaign ${id} (rows, ${dir}, and ${dropped.refs} artifacts in ${store.description}: ${dropped.blobs} blobs, ${(dropped.bytes / 1e6).toFixed(1)} MB no other campaign holds)`,
    );
  });

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const err = e as Error;
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
