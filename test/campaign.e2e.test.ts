// A real campaign through the CLI on the shared Temporal dev server, checked in SQLite and on disk,
// then its recorded histories replayed against the current workflow code.
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { ParetoSummary } from '../analysis';
import { countRows, openDb } from '../db';
import { dominates, isMetricKey, ROUND_STAGES as STAGES, SERIES } from '../core';
import { GRAPH_MIN_STEPS } from '../ml/train-graph';
import { cli, cliEnv, tmpHome, writeSpec } from './helpers';
import { expectDeployablesLoadInStockTfjs, expectOneLatency } from './trust';

const FIXTURES = path.join(__dirname, 'fixtures');
Runtime.install({ logger: new DefaultLogger('WARN') });

describe('a campaign end to end through the CLI', () => {
  it('2 weight vectors × 2 rounds complete; SQLite holds every stage with metrics; pruned models are smaller; histories replay', async () => {
    const home = tmpHome('e2e');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, {
      name: 'e2e',
      weights: [
        { accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 },
        { accuracy: 0.2, size: 0.4, latency: 0.4 },
      ],
      // uniform: every round prunes the same share, so the engine's bookkeeping below is predictable
      pruning: { rounds: 2, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64, allocation: 'uniform' },
    });
    const r = await cli(env, ['run', spec, '--json']);
    expect(r.stderr).toContain('campaign completed');
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout);
    expect(status.state).toBe('completed');
    expect(status.runs).toHaveLength(2);
    expect(status.baseline.accuracy).toBeGreaterThan(0.5);
    expect(status.backend).toMatch(/^(tensorflow-gpu|tensorflow|wasm|cpu)$/);

    for (const run of status.runs) {
      expect(run.state).toBe('completed');
      expect(run.rounds.map((x: { round: number }) => x.round)).toEqual([1, 2]);
      for (const round of run.rounds) {
        expect(Object.keys(round.stages)).toEqual([...STAGES]);
        for (const st of Object.values(round.stages) as Array<{ state: string; attempts: number; ms: number }>) {
          expect(st.state).toBe('completed');
          expect(st.attempts).toBeGreaterThanOrEqual(1);
          expect(st.ms).toBeGreaterThanOrEqual(0);
        }
        for (const key of ['accuracy', 'params', 'flops', 'bytes', 'latencyMs']) expect(round.metrics[key]).toBeGreaterThan(0);
        expect(round.metrics.accuracy).toBeLessThanOrEqual(1);
        expect(round.objective).toBeGreaterThan(0);
      }
      expect(run.rounds[1].metrics.params).toBeLessThan(run.rounds[0].metrics.params);
      expect(run.rounds[0].metrics.params).toBeLessThan(status.baseline.params);
    }

    // `status --json` reads the same from SQLite, with no server needed
    const s = await cli({ ...env, temporalAddress: 'localhost:1' }, ['status', status.id, '--json']);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout)).toEqual(status);

    // the files on disk really are smaller
    const weights = (rel: string) => fs.statSync(path.join(home, 'artifacts', status.id, rel, 'weights.bin')).size;
    const base = weights('baseline/model');
    expect(weights('run-1/round-2/finetuned')).toBeLessThan(base * 0.6);
    expect(weights('run-1/round-2/uint8')).toBeLessThan(weights('run-1/round-2/finetuned') / 3.5);
    expect(weights('run-1/round-2/int8-per-channel')).toBeLessThan(weights('run-1/round-2/finetuned') / 3.5);
    expect(fs.existsSync(path.join(home, 'artifacts', status.id, 'run-1/round-2/deployable/prunewise.json'))).toBe(true);

    const db = openDb(path.join(home, 'prunewise.db'));
    const counts = countRows(db, status.id);
    expect(counts.runs).toBe(3); // baseline + 2
    expect(counts.rounds).toBe(4);
    expect(counts.stages).toBe(1 + 4 * STAGES.length);
    expect(counts.artifacts).toBeGreaterThanOrEqual(1 + 4 * 4);
    // every metric a real campaign records is one core/metrics.ts names (step 0), every series one it lists
    const keys = db
      .prepare(`SELECT DISTINCT m.key, m.step > 0 AS series FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.campaign_id = ?`)
      .all(status.id) as Array<{ key: string; series: number }>;
    expect(keys.filter((k) => !k.series && !isMetricKey(k.key)).map((k) => k.key)).toEqual([]);
    expect(keys.filter((k) => k.series && !(k.key in SERIES)).map((k) => k.key)).toEqual([]);
    expect(keys.some((k) => k.key.startsWith('channels.'))).toBe(true);
    // on the native backend these short fine-tunes (under GRAPH_MIN_STEPS) train op by op: each fine-tune's event says why
    if (status.backend.startsWith('tensorflow')) {
      const said = db
        .prepare(`SELECT e.message FROM events e WHERE e.campaign_id = ? AND e.stage = 'finetune' AND e.kind = 'stage-completed'`)
        .all(status.id) as Array<{ message: string }>;
      expect(said).toHaveLength(4);
      for (const e of said)
        expect(e.message).toMatch(
          new RegExp(`; trained op by op, not in graph mode: \\d+ steps \\(graph mode from ${GRAPH_MIN_STEPS}, or PRUNEWISE_TRAIN_GRAPH=on\\)$`),
        );
    }

    const ls = await cli(env, ['ls', '--json']);
    expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ id: status.id, name: 'e2e', state: 'completed' })]);

    // the Pareto analysis: baseline + 4 rounds are candidates; front flags agree with dominance
    const pj = await cli(env, ['pareto', status.id, '--json']);
    expect(pj.code).toBe(0);
    const pareto = JSON.parse(pj.stdout) as ParetoSummary;
    expect(pareto.points).toHaveLength(5);
    for (const a of pareto.points) {
      const dominated = pareto.points.some((b) => b !== a && dominates(b.values, a.values));
      expect(a.onFront).toBe(!dominated);
    }
    expect(pareto.front).toBe(pareto.points.filter((x) => x.onFront).length);
    expect(pareto.hypervolume).toBeGreaterThan(0);
    expect(pareto.hypervolume).toBeLessThanOrEqual(1);
    expect(pareto.recommendations.map((x) => x.runId)).toEqual(status.runs.map((x: { id: string }) => x.id));
    const stored = db.prepare(`SELECT points, front, hypervolume FROM pareto WHERE campaign_id = ?`).get(status.id) as {
      points: number;
      front: number;
      hypervolume: number;
    };
    // stored in place round by round (the hypervolume as a sum of contributions: equal up to rounding)
    expect({ points: stored.points, front: stored.front }).toEqual({ points: 5, front: pareto.front });
    expect(stored.hypervolume).toBeCloseTo(pareto.hypervolume, 12);
    // one latency per model (status, pareto, the deployable's manifest); deployables load in stock tfjs
    const statusText = (await cli(env, ['status', status.id])).stdout;
    expect(expectOneLatency(home, status, pareto, statusText)).toBe(4);
    const campaignSpec = JSON.parse(db.prepare(`SELECT spec_json FROM campaigns WHERE id = ?`).pluck().get(status.id) as string);
    expect(await expectDeployablesLoadInStockTfjs(home, status, campaignSpec)).toHaveLength(4);
    const pt = await cli(env, ['pareto', status.id]);
    expect(pt.stdout).toMatch(/5 candidate models .* on the front/);
    expect(pt.stdout).toContain('energy: estimated (horowitz-45nm model), not measured');
    expect(pt.stdout).toMatch(/0\.6\/0\.2\/0\.2\/0 +→ run \d round \d/);

    // export: the run's best round as uint8 and float16 (stock tfjs formats), accuracy measured on the written weights
    const exported: Record<string, { bytes: number; float32Bytes: number; accuracy: number; float32Accuracy: number; round: number }> = {};
    for (const format of ['uint8', 'float16']) {
      const out = path.join(home, `export-${format}`);
      const e = await cli(env, ['export', `${status.id}/run-1`, '--format', format, '--out', out, '--json']);
      expect(e.stderr).toContain("the run's best round (lowest J(w) within the hard constraints");
      expect(e.code).toBe(0);
      exported[format] = JSON.parse(e.stdout);
      expect(fs.statSync(path.join(out, 'weights.bin')).size).toBe(exported[format].bytes);
      expect(JSON.parse(fs.readFileSync(path.join(out, 'prunewise.json'), 'utf8')).accuracy.measured).toBe(true);
    }
    const bestRound = status.runs[0].rounds.slice().sort((a: { objective: number }, b: { objective: number }) => a.objective - b.objective)[0].round;
    expect(exported.uint8.round).toBe(bestRound);
    expect(exported.uint8.float32Bytes / exported.uint8.bytes).toBeGreaterThan(3.5);
    expect(exported.float16.float32Bytes / exported.float16.bytes).toBeCloseTo(2, 5);
    expect(Math.abs(exported.float16.accuracy - exported.float16.float32Accuracy)).toBeLessThan(0.005);
    expect(Math.abs(exported.uint8.accuracy - exported.uint8.float32Accuracy)).toBeLessThan(0.02);
    const bad = await cli(env, ['export', `${status.id}/run-9`, '--out', path.join(home, 'x')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim()).toMatch(/^prunewise: run "\S+\/run-9" not found: run ids look like <campaign>\/run-1/);
    const badRound = await cli(env, ['export', `${status.id}/run-1`, '--round', '7', '--out', path.join(home, 'x')]);
    expect(badRound.stderr.trim()).toMatch(/--round: run "\S+" has no model for round 7/);

    // the campaign's recommended model for a weight vector: the one `pareto` recommends for those weights (one rule)
    const rec = pareto.recommendations.find((x) => x.runId === `${status.id}/run-2`)!;
    const er = await cli(env, [
      'export',
      status.id,
      '--recommended',
      '--weights',
      'accuracy=0.2,size=0.4,latency=0.4',
      '--out',
      path.join(home, 'export-rec'),
      '--json',
    ]);
    expect(er.code).toBe(0);
    expect(rec.pick).not.toBeNull();
    expect(JSON.parse(er.stdout)).toMatchObject({ runId: rec.pick!.runId, round: rec.pick!.round });
    // without --format it writes the variant the pick deploys: the bytes `pareto` showed for it
    const picked = pareto.points.find((x) => x.runId === rec.pick!.runId && x.round === rec.pick!.round)!;
    expect(JSON.parse(er.stdout).format).toBe(picked.deployedInt8 ? 'uint8' : 'tfjs');
    expect(JSON.parse(er.stdout).bytes).toBe(picked.values.bytes);
    const badWeights = await cli(env, ['export', status.id, '--recommended', '--weights', 'accuracy=0.7', '--out', path.join(home, 'x')]);
    expect(badWeights.stderr.trim()).toBe('prunewise: --weights: weights must sum to 1 (got 0.7)');
    const weightsAlone = await cli(env, ['export', `${status.id}/run-1`, '--weights', 'accuracy=1', '--out', path.join(home, 'x')]);
    expect(weightsAlone.stderr.trim()).toBe('prunewise: --weights: only with --recommended');

    // replay the recorded histories with today's workflow code: a non-deterministic change fails here
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    const client = new Client({ connection });
    const ids = [status.id, `${status.id}/run-1`, `${status.id}/run-2`];
    const histories = await Promise.all(ids.map((id) => client.workflow.getHandle(id).fetchHistory()));
    const bundle = { codePath: path.join(__dirname, '..', 'dist', 'workflow-bundle.js') };
    for (const [i, history] of histories.entries()) {
      await Worker.runReplayHistory({ workflowBundle: bundle }, history, ids[i]);
    }
    // PRUNEWISE_RECORD_FIXTURES=<tag> adds histories of this version (history-<tag>-*.json); older ones stay and keep replaying
    const tag = process.env.PRUNEWISE_RECORD_FIXTURES;
    if (tag) {
      fs.mkdirSync(FIXTURES, { recursive: true });
      histories.forEach((h, i) => fs.writeFileSync(path.join(FIXTURES, `history-${tag}-${i === 0 ? 'campaign' : `run-${i}`}.json`), historyToJSON(h)));
    }
    await connection.close();

    // rm deletes the rows and the files
    const rm = await cli(env, ['rm', status.id]);
    expect(rm.code).toBe(0);
    expect(countRows(db, status.id)).toEqual({ runs: 0, rounds: 0, stages: 0, metrics: 0, artifacts: 0, events: 0 });
    expect(fs.existsSync(path.join(home, 'artifacts', status.id))).toBe(false);
  }, 600_000);
});

describe('bad input found at run time', () => {
  it('a model that does not fit the dataset fails the campaign at once (no retries), with the reason', async () => {
    const { buildZooModel, initBackend, saveModel } = await import('../ml');
    const { campaignStatus } = await import('../db');
    await initBackend();
    const home = tmpHome('badmodel');
    await saveModel(buildZooModel('mlp', 1, [8, 8, 1], 10), path.join(home, 'small-model'));
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, { name: 'badmodel', model: './small-model/model.json', baseline: { epochs: 0 } });
    const r = await cli(env, ['run', spec]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(
      /^prunewise: campaign badmodel-\S+ failed: model: input shape \[8, 8, 1\] does not fit dataset images 28×28×1/,
    );
    const db = openDb(path.join(home, 'prunewise.db'));
    const id = JSON.parse((await cli(env, ['ls', '--json'])).stdout)[0].id;
    const s = campaignStatus(db, id)!;
    expect(s.state).toBe('failed');
    expect(s.baselineStage).toMatchObject({ state: 'failed' });
    expect(s.runs).toEqual([]);
  }, 120_000);
});
