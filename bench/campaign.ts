// bench:campaign — one campaign end to end through the real CLI, native TensorFlow against wasm:
// the small VGG on 10 000 Fashion-MNIST training images (Debian's /usr/share/datasets/fashion-mnist),
// 2 weight vectors × 2 rounds (weight-driven allocation, latency measured on the worker), each run
// `node bin/prunewise.js run <file> --home <fresh tmp> --json` with PRUNEWISE_BACKEND=tensorflow or
// =wasm, its own embedded Temporal dev server, stopped and deleted after. The backends alternate
// (native, wasm, native, wasm, …: BENCH_REPEATS pairs) because this 2-core machine is shared and
// drifts. Timed: submit → completed (the CLI's "submitted" line on stderr to its final status on
// stdout, seen from here), and the whole command (spawn → exit, dev server start included).
// Prints a table, then one JSON line.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import type { CampaignStatus } from '../db';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'prunewise.js');
const REPEATS = Number(process.env.BENCH_REPEATS ?? 2);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'tensorflow,wasm').split(',');
const TRAIN_LIMIT = Number(process.env.BENCH_TRAIN_LIMIT ?? 10000);

const SPEC = {
  name: 'bench-campaign',
  seed: 5,
  model: 'vgg-small',
  dataset: { name: 'fashion-mnist', trainLimit: TRAIN_LIMIT },
  baseline: { epochs: 1, batchSize: 64 },
  weights: [
    { accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 },
    { accuracy: 0.3, size: 0, latency: 0.7, energy: 0 },
  ],
  constraints: { maxAccuracyDrop: 5 },
  pruning: { criterion: 'l1', rounds: 2, stepRatio: 0.3, finetuneEpochs: 1, batchSize: 64 },
  target: { name: 'local', batchSize: 32 },
};

interface Run {
  backend: string;
  repeat: number;
  /** submit → completed, seconds */
  submitToDone: number;
  /** spawn → exit, seconds */
  command: number;
  state: string;
  reportedBackend: string | null;
  baselineAccuracy: number | null;
  /** seconds per stage name, summed over the campaign (baseline + every round) */
  stages: Record<string, number>;
  /** the last round's accuracy per run */
  lastAccuracy: Array<number | null>;
}

function campaign(backend: string, repeat: number): Promise<Run> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `pw-bench-campaign-${backend}-`));
  const file = path.join(home, 'campaign.yaml');
  fs.writeFileSync(file, stringify(SPEC));
  const env: NodeJS.ProcessEnv = { ...process.env, PRUNEWISE_BACKEND: backend, PRUNEWISE_TASK_QUEUE_PREFIX: `bench${process.pid}${backend}${repeat}` };
  delete env.TEMPORAL_ADDRESS; // the embedded dev server of this fresh home
  delete env.PRUNEWISE_HOME;
  const t0 = performance.now();
  let submitted: number | undefined;
  let done: number | undefined;
  let out = '';
  let err = '';
  const child = spawn(process.execPath, [BIN, 'run', file, '--home', home, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.on('data', (d: Buffer) => {
    err += d;
    if (submitted === undefined && /campaign \S+ submitted/.test(err)) submitted = performance.now();
  });
  child.stdout.on('data', (d: Buffer) => {
    out += d;
    done ??= performance.now(); // the final status is the only thing on stdout: its first chunk
  });
  return new Promise<Run>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30 * 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const end = performance.now();
      const stopServer = spawn(process.execPath, [BIN, 'server', '--stop', '--home', home], { env, stdio: 'ignore' });
      stopServer.on('exit', () => fs.rmSync(home, { recursive: true, force: true }));
      let status: CampaignStatus;
      try {
        status = JSON.parse(out) as CampaignStatus;
      } catch {
        const tail = err
          .split('\n')
          .filter((l) => l.trim() && !/^I0000|^WARNING: All log/.test(l))
          .slice(-5)
          .join('\n');
        reject(new Error(`${backend}: prunewise run exited ${code ?? signal} without a status:\n${tail}`));
        return;
      }
      const stages: Record<string, number> = {};
      const add = (name: string, ms: number | null) => {
        if (ms !== null) stages[name] = (stages[name] ?? 0) + ms / 1000;
      };
      add('baseline', status.baselineStage?.ms ?? null);
      for (const r of status.runs) for (const round of r.rounds) for (const [name, s] of Object.entries(round.stages)) add(name, s.ms);
      resolve({
        backend,
        repeat,
        submitToDone: ((done ?? end) - (submitted ?? t0)) / 1000,
        command: (end - t0) / 1000,
        state: status.state,
        reportedBackend: status.backend,
        baselineAccuracy: status.baseline?.accuracy ?? null,
        stages,
        lastAccuracy: status.runs.map((r) => r.rounds.filter((x) => x.state === 'completed').at(-1)?.metrics.accuracy ?? null),
      });
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const t0 = performance.now();
  const runs: Run[] = [];
  const loads: number[] = [];
  for (let repeat = 1; repeat <= REPEATS; repeat++) {
    // alternate the order too: native first in odd repeats, wasm first in even ones
    const order = repeat % 2 ? BACKENDS : [...BACKENDS].reverse();
    for (const backend of order) {
      process.stderr.write(`repeat ${repeat}: ${backend}…\n`);
      const r = await campaign(backend, repeat);
      if (r.state !== 'completed') throw new Error(`${backend} repeat ${repeat}: campaign ${r.state}`);
      if (r.reportedBackend !== backend) throw new Error(`asked for ${backend}, the campaign ran on ${r.reportedBackend}`);
      runs.push(r);
      loads.push(os.loadavg()[0]);
      process.stderr.write(
        `repeat ${repeat}: ${backend}: ${r.submitToDone.toFixed(1)} s submit → completed (${r.command.toFixed(1)} s command), load ${os.loadavg()[0].toFixed(1)}\n`,
      );
    }
  }
  const by = (b: string) => runs.filter((r) => r.backend === b);
  const [nat, other] = BACKENDS;
  const med = (b: string, k: 'submitToDone' | 'command') => median(by(b).map((r) => r[k]));
  const ratio = med(other, 'submitToDone') / med(nat, 'submitToDone');
  // per-repeat ratios: each native campaign against the wasm one next to it
  const pairRatios = Array.from({ length: REPEATS }, (_, i) => {
    const a = runs.find((r) => r.backend === nat && r.repeat === i + 1)!;
    const b = runs.find((r) => r.backend === other && r.repeat === i + 1)!;
    return b.submitToDone / a.submitToDone;
  });
  const stageNames = [...new Set(runs.flatMap((r) => Object.keys(r.stages)))];
  const fmt = (v: number) => v.toFixed(1);
  console.log(
    `bench:campaign — vgg-small, Fashion-MNIST (${TRAIN_LIMIT} training images, 10 % held out for validation; 10 000 test), ${SPEC.weights.length} weight vectors × ${SPEC.pruning.rounds} rounds, ` +
      `baseline ${SPEC.baseline.epochs} epoch, fine-tuning ${SPEC.pruning.finetuneEpochs} epoch, batch 64, latency measured at batch ${SPEC.target.batchSize}; ` +
      `through \`prunewise run --home <fresh>\` (own embedded Temporal server each), backends alternating, ${REPEATS} each; ${((performance.now() - t0) / 60000).toFixed(1)} min in all`,
  );
  console.log(
    `${'backend'.padEnd(12)}${'repeat'.padStart(7)}${'submit→done s'.padStart(15)}${'command s'.padStart(11)}${'base acc'.padStart(10)}${'last acc r1/r2'.padStart(16)}  stage seconds (summed)`,
  );
  for (const r of runs) {
    console.log(
      `${r.backend.padEnd(12)}${String(r.repeat).padStart(7)}${fmt(r.submitToDone).padStart(15)}${fmt(r.command).padStart(11)}${((r.baselineAccuracy ?? 0) * 100).toFixed(2).padStart(10)}${r.lastAccuracy
        .map((a) => (a === null ? '—' : (a * 100).toFixed(2)))
        .join('/')
        .padStart(16)}  ${stageNames.map((s) => `${s} ${fmt(r.stages[s] ?? 0)}`).join(', ')}`,
    );
  }
  for (const b of BACKENDS) {
    const xs = by(b).map((r) => r.submitToDone);
    console.log(
      `${b.padEnd(12)}median ${fmt(median(xs))} s submit → completed (min ${fmt(Math.min(...xs))}, max ${fmt(Math.max(...xs))}); command median ${fmt(med(b, 'command'))} s`,
    );
  }
  console.log(
    `${other}/${nat} end to end (medians): ${ratio.toFixed(2)}× (per repeat: ${pairRatios.map((x) => `${x.toFixed(2)}×`).join(', ')}); target ≥ 1.5×: ${ratio >= 1.5 ? 'met' : 'NOT met'}`,
  );
  console.log(
    `  load average (1 min) after each campaign (${os.cpus().length} cores, shared with other engineers' tests): ${loads.map((l) => l.toFixed(1)).join(' ')}`,
  );
  console.log(
    JSON.stringify({
      bench: 'campaign',
      model: SPEC.model,
      trainLimit: TRAIN_LIMIT,
      runs: SPEC.weights.length,
      rounds: SPEC.pruning.rounds,
      repeats: REPEATS,
      secondsSubmitToCompleted: Object.fromEntries(BACKENDS.map((b) => [b, by(b).map((r) => r.submitToDone)])),
      medianSeconds: Object.fromEntries(BACKENDS.map((b) => [b, med(b, 'submitToDone')])),
      medianCommandSeconds: Object.fromEntries(BACKENDS.map((b) => [b, med(b, 'command')])),
      speedup: ratio,
      pairSpeedups: pairRatios,
      target: 1.5,
      met: ratio >= 1.5,
      stageSeconds: runs.map((r) => ({ backend: r.backend, repeat: r.repeat, ...r.stages })),
      baselineAccuracy: runs.map((r) => ({ backend: r.backend, repeat: r.repeat, accuracy: r.baselineAccuracy, last: r.lastAccuracy })),
      loadAverage: loads,
      cores: os.cpus().length,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
