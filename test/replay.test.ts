// Campaigns in flight must survive upgrades: histories recorded with an earlier version of the
// workflow code replay against today's bundle. A change that alters the commands a workflow
// issues must go behind patched() or this fails. (Fixtures: PRUNEWISE_RECORD_FIXTURES=<tag> npx vitest run test/campaign.e2e.test.ts adds history-<tag>-*.json.)
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const FIXTURES = path.join(__dirname, 'fixtures');
Runtime.install({ logger: new DefaultLogger('WARN') });
const bundle = { codePath: path.join(__dirname, '..', 'dist', 'workflow-bundle.js') };

describe('recorded workflow histories replay against the current workflow code', () => {
  const files = fs.readdirSync(FIXTURES).filter((f) => f.startsWith('history-'));
  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(2);
  });
  for (const f of files) {
    it(`replays ${f} deterministically`, async () => {
      const history = JSON.parse(fs.readFileSync(path.join(FIXTURES, f), 'utf8'));
      await expect(Worker.runReplayHistory({ workflowBundle: bundle }, history, f)).resolves.toBeUndefined();
    });
  }

  it('a workflow change that breaks determinism is caught (the guard itself works)', async () => {
    const history = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'history-run-1.json'), 'utf8'));
    // drop the first activity-scheduled command: replay must now see a mismatch
    const events = history.events as Array<Record<string, { activityType?: { name: string } }>>;
    const i = events.findIndex((e) => e.activityTaskScheduledEventAttributes);
    expect(i).toBeGreaterThan(0);
    events[i].activityTaskScheduledEventAttributes.activityType = { name: 'somethingElse' };
    const tampered = history;
    await expect(Worker.runReplayHistory({ workflowBundle: bundle }, tampered, 'tampered')).rejects.toThrow(/[Nn]ondetermin/);
  });
});
