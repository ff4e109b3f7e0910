// The state folder (`--home`, env PRUNEWISE_HOME, default ./.prunewise): SQLite file, artifacts,
// the embedded Temporal server's database, its recorded ports and logs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARTIFACTS_DIR } from '../core';

/** A --home that cannot be one (e.g. a file). */
export class HomeError extends Error {
  override name = 'HomeError';
}

export interface Home {
  dir: string;
  db: string;
  temporalDb: string;
  serverJson: string;
  serverLog: string;
  artifacts: string;
}

/** The state folder from --home, PRUNEWISE_HOME or ./.prunewise. @throws HomeError when that path is a file */
export function resolveHome(option?: string): Home {
  const given = option ?? process.env.PRUNEWISE_HOME;
  const dir = path.resolve(given ?? '.prunewise');
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new HomeError(
      `${option !== undefined ? '--home' : given !== undefined ? 'PRUNEWISE_HOME' : 'the default home'} ${dir} is a file, not a folder: give a folder (it is made if missing)`,
    );
  return {
    dir,
    db: path.join(dir, 'prunewise.db'),
    temporalDb: path.join(dir, 'temporal.db'),
    serverJson: path.join(dir, 'server.json'),
    serverLog: path.join(dir, 'temporal.log'),
    artifacts: path.join(dir, ARTIFACTS_DIR),
  };
}

export function ensureHome(home: Home): void {
  fs.mkdirSync(home.artifacts, { recursive: true });
}
