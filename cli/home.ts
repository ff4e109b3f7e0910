// The state folder (`--home`, env PRUNEWISE_HOME, default ./.prunewise): SQLite file, artifacts,
// the embedded Temporal server's database, its recorded ports and logs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARTIFACTS_DIR } from '../core';

export interface Home {
  dir: string;
  db: string;
  temporalDb: string;
  serverJson: string;
  serverLog: string;
  artifacts: string;
}

export function resolveHome(option?: string): Home {
  const dir = path.resolve(option ?? process.env.PRUNEWISE_HOME ?? '.prunewise');
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
