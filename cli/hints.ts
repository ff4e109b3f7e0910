// Commands printed as hints ("start `prunewise worker --home /x`") work as printed, from any folder
// and any shell: they carry the absolute --home and the environment that chose the endpoint and
// the task queues (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS files, PRUNEWISE_TASK_QUEUE_PREFIX) when set.
import type { Home } from './home';

/** Environment variables that change which server, namespace or task queues a command uses. */
const ENDPOINT_ENV = ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_KEY', 'TEMPORAL_TLS_CA', 'PRUNEWISE_TASK_QUEUE_PREFIX'];

/** A word quoted for POSIX shells when it needs it. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command `prunewise <args…> --home <abs>` with the endpoint environment this process runs with. */
export function hint(home: Home, ...args: string[]): string {
  const env = ENDPOINT_ENV.filter((k) => process.env[k]).map((k) => `${k}=${shellWord(process.env[k]!)}`);
  return [...env, 'prunewise', ...args.map(shellWord), '--home', shellWord(home.dir)].join(' ');
}

/** The hint in backticks, as printed inside a sentence. */
export const cmd = (home: Home, ...args: string[]): string => `\`${hint(home, ...args)}\``;
