import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyRecord, campaignStatus, countRows, createCampaign, openDb, type RecordOp } from '../db';
import { tmpHome } from './helpers';

describe('SQLite store', () => {
  const db = openDb(path.join(tmpHome('db'), 'p.db'));
  createCampaign(db, { id: 'c1', name: 'c', spec: {}, specHash: 'h', specFile: 'f', seed: 1 });

  const batch: RecordOp[] = [
    { op: 'run', campaignId: 'c1', runId: 'c1/run-1', k: 1, kind: 'run', weights: { accuracy: 1, size: 0, latency: 0, energy: 0 }, state: 'running' },
    { op: 'round', runId: 'c1/run-1', round: 1, state: 'running' },
    {
      op: 'stage',
      runId: 'c1/run-1',
      round: 1,
      stage: 'finetune',
      state: 'completed',
      attempts: 2,
      ms: 1234,
      resumedFromStep: 40,
      metrics: { finetuneSteps: 80 },
      series: {
        trainLoss: [
          [1, 0.9],
          [2, 0.5],
        ],
      },
      artifacts: [{ kind: 'model', path: 'artifacts/c1/run-1/round-1/finetuned', bytes: 10, sha256: 'x' }],
    },
    { op: 'event', campaignId: 'c1', key: 'c1/run-1/r1/finetune/completed', kind: 'stage-completed', message: 'done' },
  ];

  it('a retried record (same batch twice) writes no duplicate row', () => {
    applyRecord(db, batch);
    const once = countRows(db, 'c1');
    applyRecord(db, batch);
    expect(countRows(db, 'c1')).toEqual(once);
    expect(once).toEqual({ runs: 1, rounds: 1, stages: 1, metrics: 3, artifacts: 1, events: 1 });
  });

  it('a later state wins and keeps what the earlier write knew (attempts, resume step)', () => {
    applyRecord(db, [{ op: 'stage', runId: 'c1/run-1', round: 1, stage: 'finetune', state: 'completed', metrics: { objective: 0.9 } }]);
    const st = campaignStatus(db, 'c1')!.runs[0].rounds[0];
    expect(st.stages.finetune).toMatchObject({ state: 'completed', attempts: 2, resumedFromStep: 40, ms: 1234 });
    expect(st.metrics).toMatchObject({ finetuneSteps: 80, objective: 0.9 });
  });

  it('migrations are recorded and re-opening the file does not re-run them', () => {
    const file = path.join(tmpHome('db2'), 'p.db');
    const a = openDb(file);
    const v = a.pragma('user_version', { simple: true });
    a.close();
    const b = openDb(file);
    expect(b.pragma('user_version', { simple: true })).toBe(v);
    expect(b.pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('processes that open a new home at the same moment (a worker and `run`) each migrate it once, with one identity', async () => {
    // real processes on the built dist/: before migrations took the write lock and re-read the
    // version, about one in eight of them failed here with "table campaigns already exists"
    const dist = require.resolve('../dist/db');
    for (let round = 0; round < 5; round++) {
      const file = path.join(tmpHome('db-race'), 'p.db');
      const code = `const d = require(${JSON.stringify(dist)}); const db = d.openDb(${JSON.stringify(file)}); process.stdout.write(db.prepare('SELECT id FROM home').pluck().get()); db.close();`;
      const outs = await Promise.all(
        Array.from({ length: 8 }, () => {
          const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          let err = '';
          child.stdout.on('data', (d) => (out += d));
          child.stderr.on('data', (d) => (err += d));
          return new Promise<{ code: number | null; out: string; err: string }>((r) => child.on('close', (c) => r({ code: c, out, err })));
        }),
      );
      expect(outs.filter((o) => o.code !== 0).map((o) => o.err.split('\n').find((l) => /Error/.test(l)))).toEqual([]);
      expect(new Set(outs.map((o) => o.out)).size).toBe(1);
    }
  }, 60_000);
});
