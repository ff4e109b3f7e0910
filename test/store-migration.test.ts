// Existing homes keep working: a home written by prunewise before the artifact store (fixture
// home-pre-store.tar.gz: made by the main branch's CLI of 2026-11-29, commit 4afb3e4 — schema 7,
// artifact rows with home-relative paths and no keys, its checkpoints and two recorded artifacts
// deleted so the migration meets missing files) is migrated into the store by the first command
// that needs artifacts, and its campaign still exports and is served by the dashboard; a bare name
// from a history of before resolves through the store on a worker with another home; a damaged copy
// in the home is fetched again from the store.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Artifacts } from '../activities/artifacts';
import { ArtifactStore } from '../blobstore';
import { openDb } from '../db';
import { cli, cliEnv, serveDashboard, tmpHome } from './helpers';

const ID = 'legacy-20261129-231509-88ee';

function unpackFixture(): string {
  const home = tmpHome('pre-store');
  const r = spawnSync('tar', ['xzf', path.join(__dirname, 'fixtures', 'home-pre-store.tar.gz'), '-C', home]);
  expect(r.status, r.stderr?.toString()).toBe(0);
  return home;
}

describe('a home from before the artifact store', () => {
  it('is migrated (paths → keys) by the first command that needs its artifacts; export, dashboard and old histories keep working', async () => {
    const home = unpackFixture();
    const env = cliEnv(home);
    // the fixture is what the code before the store wrote: schema 7, no keys
    {
      const Database = (await import('better-sqlite3')).default;
      const raw = new Database(path.join(home, 'prunewise.db'), { readonly: true });
      expect(raw.pragma('user_version', { simple: true })).toBe(7);
      expect(raw.prepare(`SELECT COUNT(*) n FROM artifacts`).get()).toEqual({ n: 8 });
      raw.close();
    }
    const status = await cli(env, ['status', ID, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ version: 2, state: 'completed' });

    const out = path.join(tmpHome('pre-store-out'), 'm');
    const ex = await cli(env, ['export', `${ID}/run-1`, '--round', '1', '--format', 'uint8', '--out', out, '--json']);
    expect(ex.code, ex.stderr).toBe(0);
    expect(ex.stderr).toContain(`migrating 8 artifacts of ${home} into the artifact store (folder ${path.join(home, 'store')})`);
    expect(ex.stderr).toMatch(/2 recorded artifacts have no files any more \(recorded with an empty key\)/);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'prunewise.json'), 'utf8')).version).toBe(2);

    const db = openDb(path.join(home, 'prunewise.db'));
    const rows = db.prepare(`SELECT path, kind, sha256, key FROM artifacts ORDER BY path`).all() as Array<{
      path: string;
      kind: string;
      sha256: string;
      key: string | null;
    }>;
    expect(rows.filter((r) => r.key === '').map((r) => r.path)).toEqual([`artifacts/${ID}/baseline/uint8`, `artifacts/${ID}/run-1/round-1/int8-per-channel`]);
    const store = ArtifactStore.fromEnv(home, {});
    for (const r of rows.filter((x) => x.key)) {
      expect(await store.resolve(r.path)).toBe(r.key);
      const tree = await store.tree(r.key!);
      // the recorded sha256 (weights for models, the file for files) is one of the tree's files: the bytes did not change
      expect(tree.files.map((f) => f.sha256)).toContain(r.sha256);
    }
    // a second command migrates nothing more
    const again = await cli(env, ['export', `${ID}/baseline`, '--format', 'tfjs', '--out', path.join(tmpHome('pre-store-out2'), 'b')]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain('migrating');

    // a damaged copy in the home (the truncated baseline weights.bin) is fetched again from the store, not trusted
    const weights = path.join(home, 'artifacts', ID, 'baseline', 'model', 'weights.bin');
    const whole = fs.readFileSync(weights);
    fs.truncateSync(weights, 688_128 / 2);
    const fixed = await cli(env, ['export', `${ID}/baseline`, '--format', 'tfjs', '--out', path.join(tmpHome('pre-store-out3'), 'b')]);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fs.readFileSync(weights).equals(whole)).toBe(true);

    // a history from before the store hands a bare name: a worker with another home finds it through the store
    const worker = new Artifacts(tmpHome('pre-store-worker'), store);
    const dir = await worker.local(`artifacts/${ID}/run-1/round-1/finetuned`);
    expect(
      fs.readFileSync(path.join(dir, 'weights.bin')).equals(fs.readFileSync(path.join(home, 'artifacts', ID, 'run-1', 'round-1', 'finetuned', 'weights.bin'))),
    ).toBe(true);

    // the dashboard serves the campaign and its files through the store
    const dash = await serveDashboard(db, { homeDir: home, store });
    try {
      expect((await fetch(`${dash.base}/campaigns/${ID}`)).status).toBe(200);
      expect((await fetch(`${dash.base}/runs/${ID}/run-1`)).status).toBe(200);
      const finetuned = rows.find((r) => r.path.endsWith('/finetuned'))!;
      fs.rmSync(path.join(home, 'artifacts', ID, 'run-1', 'round-1', 'finetuned'), { recursive: true }); // gone from the home: fetched again
      const res = await fetch(`${dash.base}/artifacts/${ID}/run-1/round-1/finetuned/weights.bin`);
      expect(res.status).toBe(200);
      expect(
        crypto
          .createHash('sha256')
          .update(Buffer.from(await res.arrayBuffer()))
          .digest('hex'),
      ).toBe(finetuned.sha256);
    } finally {
      await dash.close();
    }
  }, 180_000);
});
