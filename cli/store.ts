// The artifact store from the CLI's side: which store this process uses (PRUNEWISE_ARTIFACTS, one
// line when it is wrong), and the migration of a home from before the store: every recorded
// artifact's folder or file is published into the store and its row gets its key. The files stay
// where they are (they are this home's checked-out copies from then on). Idempotent and resumable:
// only rows without a key are looked at.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArtifactStore, StoreConfigError } from '../blobstore';
import { artifactsWithoutKey, setArtifactKey, type Db } from '../db';
import type { Home } from './home';
import { CliError } from './temporal';

/** The store of this process. @throws CliError (one line: which setting to fix) */
export function openStore(home: Home): ArtifactStore {
  try {
    return ArtifactStore.fromEnv(home.dir);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** Checks that the store answers and may be written (worker start). @throws CliError */
export async function checkStore(store: ArtifactStore): Promise<void> {
  try {
    await store.backend.check();
  } catch (e) {
    if (e instanceof StoreConfigError) throw new CliError(e.message);
    throw new CliError(`artifact store ${store.description}: ${(e as Error).message.split('\n')[0]}`);
  }
}

export interface MigrationReport {
  published: number;
  missing: string[];
}

/**
 * Publishes the home's recorded artifacts that have no key yet (homes from before the store) and
 * records their keys. Artifacts whose files are gone get the empty key '' (listed in `missing`; not looked at again).
 */
export async function migrateHomeArtifacts(home: Home, db: Db, store: ArtifactStore, log?: (s: string) => void): Promise<MigrationReport> {
  const rows = artifactsWithoutKey(db);
  const names = [...new Set(rows.map((r) => r.path))];
  const report: MigrationReport = { published: 0, missing: [] };
  if (names.length === 0) return report;
  log?.(`migrating ${names.length} artifacts of ${home.dir} into the artifact store (${store.description})…`);
  for (const name of names) {
    const abs = path.join(home.dir, name);
    if (!fs.existsSync(abs)) {
      report.missing.push(name);
      setArtifactKey(db, name, ''); // '' = no files when the home was migrated: not looked at again
      continue;
    }
    const p = await store.publish(name, abs);
    setArtifactKey(db, name, p.key);
    report.published++;
  }
  if (report.missing.length > 0)
    log?.(`${report.missing.length} recorded artifacts have no files any more (recorded with an empty key): ${report.missing.slice(0, 3).join(', ')}…`);
  return report;
}
