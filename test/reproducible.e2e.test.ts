// Same campaign file + seed + backend + latency table → identical results, with or without a
// worker killed in between. "Identical" (README, "What is reproducible"): bit-identical test,
// validation and 8-bit accuracy, params, FLOPs, bytes, per-group channel counts, allocation
// choices and rollbacks, for the baseline and every round; latency and energy are measurements
// and excluded. Real Temporal dev server, real SQLite, the real CLI, on the default backend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { campaignStatus, openDb, type CampaignStatus, type Db } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec, type CliEnv } from './helpers';

/** What must be identical (measurements — latency, energy, speedup, throughput, time — are not). */
const IDENTICAL =
  /^(accuracy|valAccuracy|loss|valLoss|int8Accuracy|int8ValAccuracy|int8Bytes|deployedAccuracy|deployedBytes|deployedInt8|params|flops|bytes|accuracyDrop|groups|blockedGroups|allocatedGroups|ratioScale|finetuneSteps|channels\..+)$/;

function identicalPart(db: Db, s: CampaignStatus, home: string) {
  const pick = (m: Record<string, number | undefined>) => Object.fromEntries(Object.entries(m).filter(([k]) => IDENTICAL.test(k)));
  const lossOf = (runId: string, round: number, stage: string) =>
    (
      db
        .prepare(`SELECT step, value FROM metrics WHERE run_id = ? AND round = ? AND stage = ? AND key = 'trainLoss' ORDER BY step`)
        .all(runId, round, stage) as Array<{
        step: number;
        value: number;
      }>
    ).map((r) => [r.step, r.value]);
  const allocation = (runId: string, round: number) => {
    const f = path.join(home, 'artifacts', runId, `round-${round}`, 'allocation.json');
    if (!fs.existsSync(f)) return null;
    const a = JSON.parse(fs.readFileSync(f, 'utf8')) as { chosen: Array<Record<string, unknown>> };
    return a.chosen.map((c) => ({ group: c.group, ratio: c.ratio, keeps: c.keeps, dLatencyMsPredicted: c.dLatencyMsPredicted ?? c.dLatencyMs }));
  };
  return {
    state: s.state,
    baseline: pick(s.baseline ?? {}),
    baselineLoss: lossOf(`${s.id}/baseline`, 0, 'baseline'),
    runs: s.runs.map((r) => ({
      state: r.state,
      rounds: r.rounds.map((rd) => ({
        round: rd.round,
        state: rd.state,
        note: rd.note ?? null,
        metrics: pick(rd.metrics),
        finetuneLoss: lossOf(r.id, rd.round, 'finetune'),
        allocation: allocation(r.id, rd.round),
      })),
    })),
  };
}

describe('reproducible campaigns', () => {
  it('the same file, seed, backend and latency table give identical models and metrics, also after kill -9 of the worker after a fine-tune checkpoint', async () => {
    const address = inject('temporalAddress');
    const dir = tmpHome('repro-files');
    const spec = (name: string, latencyTable?: string) =>
      writeSpec(dir, {
        name,
        seed: 7,
        model: 'vgg-small',
        dataset: { name: 'mnist', trainLimit: 2000, testLimit: 500 },
        baseline: { epochs: 1, batchSize: 64 },
        weights: [{ accuracy: 0.5, size: 0.2, latency: 0.3, energy: 0 }],
        // allocation by weights (the per-round default): decisions on the latency table's predictions
        pruning: { rounds: 2, stepRatio: 0.3, finetuneEpochs: 3, batchSize: 64, sensitivitySamples: 200 },
        target: { batchSize: 16, warmupRuns: 1, latencyRuns: 5, speedupCi: 0.25, latencyBudgetSeconds: 2, ...(latencyTable ? { latencyTable } : {}) },
        execution: { heartbeatTimeoutSeconds: 4, keepCheckpoints: 2 },
      });
    const run = async (e: CliEnv, file: string) => {
      const r = await cli(e, ['run', file, '--json']);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as CampaignStatus;
    };

    // A measures the campaign's latency table; B and C decide with exactly that table
    const homeA = tmpHome('repro-a');
    const a = await run(cliEnv(homeA, address), spec('repro-a'));
    const table = path.join(dir, 'latency-table.json');
    fs.copyFileSync(path.join(homeA, 'artifacts', a.id, 'latency-table.json'), table);
    const shared = spec('repro', table);

    const homeB = tmpHome('repro-b');
    const b = await run(cliEnv(homeB, address), shared);

    // C: the worker is killed after the first fine-tune checkpoint; a new worker finishes the campaign
    const homeC = tmpHome('repro-c');
    const envC = cliEnv(homeC, address);
    const submitted = await cli(envC, ['run', shared, '--detach']);
    expect(submitted.code, submitted.stderr).toBe(0);
    const idC = submitted.stdout.trim().split('\n').at(-1)!;
    const first = startCli(envC, ['worker']);
    const ckptDir = path.join(homeC, 'artifacts', idC, 'run-1', 'round-1', 'finetune-checkpoints');
    await waitFor('a fine-tune checkpoint', () => fs.existsSync(ckptDir) && fs.readdirSync(ckptDir).some((f) => /^step-\d+$/.test(f)), 300_000, 100);
    await stop(first, 'SIGKILL');
    const dbC = openDb(path.join(homeC, 'prunewise.db'));
    expect(campaignStatus(dbC, idC)!.runs[0].rounds[0].stages.finetune.state).toBe('running'); // killed mid-stage
    const second = startCli(envC, ['worker']);
    try {
      await waitFor('campaign C to complete', () => ['completed', 'failed'].includes(campaignStatus(dbC, idC)!.state), 300_000, 500);
    } finally {
      await stop(second);
    }
    const c = campaignStatus(dbC, idC)!;
    const ft = c.runs[0].rounds[0].stages.finetune;
    expect(ft.attempts).toBeGreaterThanOrEqual(2);
    expect(ft.resumedFromStep).toBeGreaterThan(0); // continued from the checkpoint

    const dbA = openDb(path.join(homeA, 'prunewise.db'));
    const dbB = openDb(path.join(homeB, 'prunewise.db'));
    const pa = identicalPart(dbA, a, homeA);
    const pb = identicalPart(dbB, b, homeB);
    const pc = identicalPart(dbC, c, homeC);
    expect(pa.state).toBe('completed');
    expect(pa.runs[0].rounds.length).toBeGreaterThanOrEqual(2);
    expect(pa.runs[0].rounds.some((r) => r.allocation && r.allocation.length > 0)).toBe(true); // the table decided something
    expect(pa.runs[0].rounds[0].finetuneLoss).toHaveLength(3); // one point per epoch, the first kept after the resume too
    expect(pb).toEqual(pa);
    expect(pc).toEqual(pa);
  }, 900_000);
});
