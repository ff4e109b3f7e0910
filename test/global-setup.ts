// One real Temporal dev server per test run (in-memory, random free port), shared by every
// test file through TEMPORAL_ADDRESS; each test isolates itself with its own home folder and
// task-queue prefix. Stopped when the run ends.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestProject } from 'vitest/node';
import { DEV_SERVER_TUNING, findTemporalBinary, freePort, serverAnswers } from '../cli/temporal';

let server: ChildProcess | undefined;

export default async function setup(project: TestProject) {
  const dist = path.join(__dirname, '..', 'dist', 'workflow-bundle.js');
  if (!fs.existsSync(dist)) throw new Error(`${dist} is missing: run \`npm run build\` (npm test does) before the tests`);
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-temporal-'));
  const log = fs.openSync(path.join(dir, 'temporal.log'), 'a');
  server = spawn(
    findTemporalBinary(),
    [
      'server',
      'start-dev',
      '--headless',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--log-level',
      'warn',
      '--db-filename',
      path.join(dir, 'temporal.db'),
      ...DEV_SERVER_TUNING,
    ],
    {
      stdio: ['ignore', log, log],
    },
  );
  const address = `127.0.0.1:${port}`;
  const t0 = Date.now();
  while (!(await serverAnswers(address, 1000))) {
    if (Date.now() - t0 > 60_000 || server.exitCode !== null) throw new Error(`the Temporal dev server did not start: see ${dir}/temporal.log`);
    await new Promise((r) => setTimeout(r, 250));
  }
  project.provide('temporalAddress', address);
  return async () => {
    server?.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    fs.rmSync(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
  }
}
