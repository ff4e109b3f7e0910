// Keras models through the CLI against the real Temporal dev server (issue 11 §1, §5): a Keras 3 .keras file
// is converted at submit and its campaign completes; a broken model.json is refused at submit with one line
// naming the layer (nothing starts); a user model that fails at the worker's first load fails the baseline at
// once (one attempt, the same one line), never retried.
import { Client, Connection } from '@temporalio/client';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { campaignStatus, openDb } from '../db';
import { cli, cliEnv, startCli, stop, tmpHome, waitFor, writeSpec } from './helpers';

const FIX = path.join(__dirname, 'fixtures', 'keras');

describe('Keras models through the CLI', () => {
  it('a Keras 3 .keras file is converted at submit (family recorded) and its campaign completes', async () => {
    const home = tmpHome('keras3');
    fs.copyFileSync(path.join(FIX, 'keras3-mnist.keras'), path.join(home, 'model.keras'));
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, { name: 'keras3', model: 'model.keras', baseline: { epochs: 0 } });
    const r = await cli(env, ['run', spec, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /model: \S+model\.keras \(Keras 3 3\.15\.1 \.keras file, converted by tensorflowjs 4\.22\.0\) loads; the campaign uses \S+\/models\/[0-9a-f]{64}\/model\.json/,
    );
    expect(JSON.parse(r.stdout).state).toBe('completed');
    const [sha] = fs.readdirSync(path.join(home, 'models')).filter((f) => !f.startsWith('.'));
    expect(JSON.parse(fs.readFileSync(path.join(home, 'models', sha, 'source.json'), 'utf8'))).toMatchObject({ family: 'keras3', kind: 'keras', sha256: sha });
  }, 300_000);

  it('a model.json with an unknown layer class is refused at submit: one line naming the layer, nothing started', async () => {
    const home = tmpHome('kbad');
    const dir = path.join(home, 'model');
    fs.mkdirSync(dir);
    const json = JSON.parse(fs.readFileSync(path.join(FIX, 'case01', 'model.json'), 'utf8'));
    json.modelTopology.model_config.config.layers.find((l: { name: string }) => l.name === 'conv2d').class_name = 'Conv2DPlus';
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    fs.copyFileSync(path.join(FIX, 'case01', 'group1-shard1of1.bin'), path.join(dir, 'group1-shard1of1.bin'));
    const spec = writeSpec(home, { name: 'kbad', model: './model/model.json' });
    const r = await cli(cliEnv(path.join(home, 'state'), inject('temporalAddress')), ['run', spec], 60_000);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^prunewise: \S+kbad\.yaml: model: \S+model\/model\.json: layer 'conv2d' \(Conv2DPlus\): tfjs-layers 4\.22 has no layer class 'Conv2DPlus'/,
    );
    expect(fs.existsSync(path.join(home, 'state', 'prunewise.db'))).toBe(false);
  }, 120_000);

  it("a user model that fails at the worker's first load fails the baseline at once (one attempt), naming the layer", async () => {
    const home = tmpHome('kworker');
    const env = cliEnv(home, inject('temporalAddress'));
    const spec = writeSpec(home, { name: 'kworker', model: path.join(FIX, 'case01', 'model.json'), baseline: { epochs: 0 } });
    const submitted = await cli(env, ['run', spec, '--detach']);
    expect(submitted.code, submitted.stderr).toBe(0);
    const id = submitted.stdout.trim().split('\n').at(-1)!;
    // the prepared copy is what workers load: break it after the submit-time check (as a changed file would)
    const [sha] = fs.readdirSync(path.join(home, 'models')).filter((f) => !f.startsWith('.'));
    const mj = path.join(home, 'models', sha, 'model.json');
    const json = JSON.parse(fs.readFileSync(mj, 'utf8'));
    json.modelTopology.model_config.config.layers.find((l: { name: string }) => l.name === 'dense').config.units = 33;
    fs.writeFileSync(mj, JSON.stringify(json));
    const worker = startCli(env, ['worker']);
    const db = openDb(path.join(home, 'prunewise.db'));
    try {
      await waitFor('the campaign to fail', () => campaignStatus(db, id)?.state === 'failed', 180_000, 500);
    } finally {
      await stop(worker);
    }
    const s = campaignStatus(db, id)!;
    expect(s.baselineStage).toMatchObject({ state: 'failed' });
    // Temporal's own record: the baseline activity ran once and failed as non-retryable BadInput
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    try {
      const events = (await new Client({ connection }).workflow.getHandle(id).fetchHistory()).events ?? [];
      const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'baseline')!;
      const ofBaseline = (a: { scheduledEventId?: unknown } | null | undefined) => !!a && String(a.scheduledEventId) === String(scheduled.eventId);
      const started = events.filter((e) => ofBaseline(e.activityTaskStartedEventAttributes));
      expect(started.map((e) => e.activityTaskStartedEventAttributes!.attempt)).toEqual([1]);
      const failure = events.find((e) => ofBaseline(e.activityTaskFailedEventAttributes))!.activityTaskFailedEventAttributes!.failure!;
      expect(failure.applicationFailureInfo).toMatchObject({ type: 'BadInput', nonRetryable: true });
    } finally {
      await connection.close();
    }
    expect(s.baselineStage!.error).toMatch(
      /model\.json: layer 'dense' \(Dense\): weight 'dense\/kernel' has shape \[1352,32\] in weightsManifest but the layer's config needs \[1352,33\]/,
    );
    expect(s.baselineStage!.error!.split('\n')).toHaveLength(1);
    expect(worker.err()).not.toMatch(/"error":\{\}/);
  }, 300_000);
});
