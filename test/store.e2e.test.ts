// Many machines, one artifact store: a campaign whose compute runs on two workers with separate
// homes (no shared disk) and whose device stage runs on a third, all through one real
// S3-compatible server (versitygw), ends identical to the same campaign file on one machine with
// the local store: same models (sha256 of their weights) and the same metrics (the trust issue's
// "identical": measurements excluded). SQLite and the workflow histories hold keys, never an
// absolute path or a secret; a laptop with only the database exports and serves the models from
// the store; `rm` deletes the campaign's blobs. Real Temporal dev server, real CLI processes.
import { Client, Connection } from '@temporalio/client';
import Database from 'better-sqlite3';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ArtifactStore } from '../blobstore';
import { openDb, type CampaignStatus, type Db } from '../db';
import { cli, cliEnv, serveDashboard, startCli, stop, tmpHome, writeSpec, type CliEnv } from './helpers';
import { startS3Server, type S3Server } from './s3-server';

const IDENTICAL =
  /^(accuracy|valAccuracy|loss|valLoss|int8Accuracy|int8ValAccuracy|int8Bytes|deployedAccuracy|deployedBytes|deployedInt8|params|flops|bytes|accuracyDrop|groups|blockedGroups|allocatedGroups|ratioScale|finetuneSteps|channels\..+)$/;

const pick = (m: Record<string, number | undefined> | null) => Object.fromEntries(Object.entries(m ?? {}).filter(([k]) => IDENTICAL.test(k)));

function identical(db: Db, s: CampaignStatus) {
  const models = db
    .prepare(
      `SELECT substr(a.run_id, length(?) + 2) AS run, a.round, a.stage, a.kind, a.sha256, a.bytes FROM artifacts a JOIN runs r ON r.id = a.run_id
       WHERE r.campaign_id = ? AND a.kind LIKE 'model%' ORDER BY run, a.round, a.stage, a.kind`,
    )
    .all(s.id, s.id);
  return {
    state: s.state,
    baseline: pick(s.baseline),
    runs: s.runs.map((r) => ({ state: r.state, rounds: r.rounds.map((rd) => ({ round: rd.round, state: rd.state, metrics: pick(rd.metrics) })) })),
    models,
  };
}

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

describe('one artifact store for many machines', () => {
  it('compute on two homes and the device stage on a third, through S3: the same models and metrics as one machine; keys only, no secret; export, dashboard and rm through the store', async () => {
    const address = inject('temporalAddress');
    const files = tmpHome('store-files');
    const spec = writeSpec(files, {
      name: 'cluster',
      seed: 3,
      model: 'mlp',
      dataset: { name: 'mnist', trainLimit: 1000, testLimit: 300 },
      baseline: { epochs: 1, batchSize: 64 },
      weights: [
        { accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 },
        { accuracy: 0.3, size: 0.5, latency: 0.2, energy: 0 },
      ],
      pruning: { rounds: 1, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64, allocation: 'uniform' },
      target: { name: 'edge-box', measure: 'worker', batchSize: 16, warmupRuns: 1, latencyRuns: 5 },
      constraints: { maxAccuracyDrop: 50 },
      execution: { heartbeatTimeoutSeconds: 10 },
    });

    // the cluster: A owns the database (campaigns, store, cpu), B computes (cpu), C is the device; one S3 store, no shared folder
    const storeEnv = s3.env('cluster');
    const envA = cliEnv(tmpHome('store-a'), address, storeEnv);
    const envB: CliEnv = { ...envA, home: tmpHome('store-b') };
    const envC: CliEnv = { ...envA, home: tmpHome('store-c') };
    // one machine, the local store: the same campaign file (its device worker on the same home)
    const envD = cliEnv(tmpHome('store-d'), address);

    const cluster = async () => {
      const b = startCli(envB, ['worker', '--queues', 'cpu']);
      const c = startCli(envC, ['worker', '--target', 'edge-box']);
      try {
        const r = await cli(envA, ['run', spec, '--json']);
        expect(r.code, r.stderr).toBe(0);
        return { status: JSON.parse(r.stdout) as CampaignStatus, logs: r.stderr + b.err() + c.err() + b.out() + c.out() };
      } finally {
        await stop(b);
        await stop(c);
      }
    };
    const single = async () => {
      const d = startCli(envD, ['worker', '--target', 'edge-box']);
      try {
        const r = await cli(envD, ['run', spec, '--json']);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as CampaignStatus;
      } finally {
        await stop(d);
      }
    };
    const [a, d] = await Promise.all([cluster(), single()]);
    const id = a.status.id;
    expect(a.status.state).toBe('completed');
    expect(a.status.version).toBe(2); // status --json is versioned
    const dbA = openDb(path.join(envA.home, 'prunewise.db'));
    const dbD = openDb(path.join(envD.home, 'prunewise.db'));

    // identical to one machine: models (weights' sha256) and every non-measured metric
    const ia = identical(dbA, a.status);
    const id1 = identical(dbD, d);
    expect(ia.models.length).toBeGreaterThanOrEqual(8);
    expect(ia).toEqual(id1);

    // compute ran on both homes, the device stage on the third, each with its own copies from the store
    expect(fs.existsSync(path.join(envB.home, 'artifacts', id))).toBe(true);
    expect(fs.existsSync(path.join(envC.home, 'artifacts', id, 'run-1', 'round-1', 'deployable', 'prunewise.json'))).toBe(true);
    expect(fs.existsSync(path.join(envC.home, 'artifacts', id, 'baseline', 'model', 'weights.bin'))).toBe(true); // fetched to measure against
    const deployed = JSON.parse(fs.readFileSync(path.join(envC.home, 'artifacts', id, 'run-1', 'round-1', 'deployable', 'prunewise.json'), 'utf8'));
    expect(deployed.version).toBe(2);
    expect(deployed.source).not.toMatch(/^\//);

    // SQLite holds keys and names, no absolute path; every recorded artifact is in the store
    const rows = dbA.prepare(`SELECT path, key FROM artifacts`).all() as Array<{ path: string; key: string | null }>;
    expect(rows.length).toBeGreaterThan(10);
    const store = ArtifactStore.fromEnv('/nonexistent', storeEnv);
    for (const r of rows) {
      expect(r.key).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(r.path).toMatch(/^artifacts\//);
      await store.tree(r.key!); // present and whole
    }
    // no secret in the database, the workers' output, or the workflow histories
    const dbBytes = ['prunewise.db', 'prunewise.db-wal'].map((f) => path.join(envA.home, f)).filter((f) => fs.existsSync(f));
    for (const f of dbBytes) expect(fs.readFileSync(f).includes(Buffer.from(s3.secretKey))).toBe(false);
    expect(a.logs).not.toContain(s3.secretKey);
    const client = new Client({ connection: await Connection.connect({ address }) });
    try {
      for (const wid of [id, `${id}/run-1`, `${id}/run-2`]) {
        // the history with every payload decoded (inputs, results, heartbeat details, failures)
        const raw = JSON.stringify(await client.workflow.getHandle(wid).fetchHistory());
        const history = raw.replace(/"data":"([A-Za-z0-9+/=]+)"/g, (_m, b64: string) => Buffer.from(b64, 'base64').toString('utf8'));
        expect(history.includes(s3.secretKey), wid).toBe(false);
        expect(history.includes(s3.accessKey), wid).toBe(false);
        expect(history.includes(envA.home), wid).toBe(false); // no absolute path of one machine
        expect(history.includes(`finetuned@sha256:`), wid).toBe(true);
      }
    } finally {
      await client.connection.close();
    }

    // a laptop with only a copy of the database: export and the dashboard fetch from the store
    const envE: CliEnv = { ...envA, home: tmpHome('store-e') };
    await new Database(path.join(envA.home, 'prunewise.db'), { readonly: true }).backup(path.join(envE.home, 'prunewise.db'));
    const out = path.join(tmpHome('store-out'), 'model');
    const ex = await cli(envE, ['export', `${id}/run-1`, '--round', '1', '--format', 'tfjs', '--out', out, '--json']);
    expect(ex.code, ex.stderr).toBe(0);
    expect(JSON.parse(ex.stdout).accuracy).toBe(a.status.runs[0].rounds[0].metrics.accuracy);
    const dbE = openDb(path.join(envE.home, 'prunewise.db'));
    const dash = await serveDashboard(dbE, { homeDir: envE.home, store });
    try {
      const wanted = dbE
        .prepare(`SELECT sha256 FROM artifacts WHERE run_id = ? AND round = 1 AND stage = 'finetune' AND kind = 'model'`)
        .get(`${id}/run-2`) as {
        sha256: string;
      };
      const res = await fetch(`${dash.base}/artifacts/${id}/run-2/round-1/finetuned/weights.bin`);
      expect(res.status).toBe(200);
      expect(
        crypto
          .createHash('sha256')
          .update(Buffer.from(await res.arrayBuffer()))
          .digest('hex'),
      ).toBe(wanted.sha256);
    } finally {
      await dash.close();
    }

    // rm deletes the campaign's refs and every blob no other campaign holds
    const rm = await cli(envA, ['rm', id]);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stderr).toMatch(/artifacts in s3:\/\/prunewise-test\/cluster at http:\/\/127\.0\.0\.1:\d+: \d+ blobs/);
    expect(await store.refs('')).toEqual([]);
    expect(await store.backend.list('')).toEqual([]); // no blob, ref or hold left
  }, 400_000);
});
