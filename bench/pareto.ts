// bench:pareto — a multi-objective campaign end to end through the CLI: LeNet-5 on Fashion-MNIST,
// six weight vectors, five rounds each (weight-driven allocation), then the Pareto front, the
// accuracy-heavy and latency-heavy runs' picks, the uint8 export of a pick against its float32
// export, and weight-driven allocation against a uniform ratio at (nearly) equal FLOPs on J(w).
// Latency is measured on this machine's backend at the target's batch size (128), side by side
// with the baseline; energy is estimated (horowitz-45nm). The CLI's worker picks its backend by the chain
// in ml/backend.ts (native TensorFlow when the binding loads, else wasm; PRUNEWISE_BACKEND forces one),
// and the header line names the backend the campaign recorded. Prints a table, then one JSON line.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import type { ParetoSummary } from '../analysis';
import type { CampaignStatus } from '../db';

const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = 5;
const BIN = path.join(__dirname, '..', '..', 'bin', 'prunewise.js');
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-bench-pareto-'));
const env = { ...process.env, PRUNEWISE_HOME: home };

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`prunewise ${args.join(' ')} exited ${r.status}`);
  return r.stdout;
}

const W = {
  accuracyHeavy: { accuracy: 0.9, size: 0.05, latency: 0.05, energy: 0 },
  latencyHeavy: { accuracy: 0.2, size: 0, latency: 0.8, energy: 0 },
  sizeHeavy: { accuracy: 0.2, size: 0.8, latency: 0, energy: 0 },
  energyHeavy: { accuracy: 0.3, size: 0, latency: 0, energy: 0.7 },
  default: { accuracy: 0.6, size: 0.2, latency: 0.2, energy: 0 },
  balanced: { accuracy: 0.4, size: 0.2, latency: 0.2, energy: 0.2 },
};

function spec(name: string, weights: object[], pruning: object): string {
  const file = path.join(home, `${name}.yaml`);
  fs.writeFileSync(
    file,
    stringify({
      name,
      seed: 11,
      model: 'lenet5',
      dataset: { name: 'fashion-mnist', trainLimit: QUICK ? 3000 : 20000, testLimit: QUICK ? 1000 : undefined },
      baseline: { epochs: QUICK ? 1 : 3, batchSize: 64 },
      weights,
      constraints: { maxAccuracyDrop: QUICK ? 15 : 3 },
      pruning: { criterion: 'fpgm', rounds: ROUNDS, finetuneEpochs: 1, batchSize: 64, minUnits: 2, ...pruning },
      target: { name: 'local', batchSize: 128, warmupRuns: 3, latencyRuns: 20 },
    }),
  );
  return file;
}

function lastRound(run: CampaignStatus['runs'][number]) {
  const r = run.rounds.filter((x) => x.state === 'completed').at(-1);
  if (!r) throw new Error(`${run.id} has no completed round (every round rolled back?)`);
  return r;
}

function main(): void {
  const t0 = Date.now();
  const status = JSON.parse(cli(['run', spec('pareto', Object.values(W), { stepRatio: 0.3 }), '--json'])) as CampaignStatus;
  if (status.state !== 'completed') throw new Error(`campaign ${status.id} ${status.state}`);
  const pareto = JSON.parse(cli(['pareto', status.id, '--json'])) as ParetoSummary;
  const names = Object.keys(W) as Array<keyof typeof W>;
  const runOf = (n: keyof typeof W) => status.runs[names.indexOf(n)];
  const pick = (n: keyof typeof W) => {
    const rec = pareto.recommendations[names.indexOf(n)];
    const p = pareto.points.find((x) => x.runId === rec.pick?.runId && x.round === rec.pick?.round)!;
    const run = status.runs.find((r) => r.id === p.runId);
    const metrics = p.round === 0 ? status.baseline! : run!.rounds.find((r) => r.round === p.round)!.metrics;
    return { point: p, metrics };
  };
  const baseAcc = status.baseline!.accuracy!;
  const acc = pick('accuracyHeavy');
  const lat = pick('latencyHeavy');

  // uint8 vs float32 exports of the accuracy-heavy pick (same architecture), accuracy re-measured on the written weights
  const exp = (format: string) =>
    JSON.parse(
      cli(['export', acc.point.runId, '--round', String(acc.point.round), '--format', format, '--out', path.join(home, `export-${format}`), '--json']),
    );
  const u8 = exp('uint8');
  const f32 = exp('tfjs');

  // allocation vs uniform: the latency-heavy run's last round against a uniform linear schedule to the same FLOPs
  const allocated = lastRound(runOf('latencyHeavy'));
  const reduction = 1 - allocated.metrics.flops! / status.baseline!.flops!;
  const uni = JSON.parse(
    cli(['run', spec('uniform', [W.latencyHeavy], { allocation: 'uniform', schedule: 'linear', targetFlopsReduction: +reduction.toFixed(4) }), '--json']),
  ) as CampaignStatus;
  const uniform = lastRound(uni.runs[0]);

  const front2d = pareto.points.filter((p) => p.onFront2d);
  // every run should end with a model; and how well the allocation's estimate of ΔJ(w) (before
  // fine-tuning, from the sensitivity trials and the latency table) foretold the realised ΔJ
  const runsWithModel = status.runs.filter((r) => r.rounds.some((x) => x.state === 'completed')).length;
  const rollbacks = status.runs.reduce((a, r) => a + r.rounds.filter((x) => x.state === 'cancelled').length, 0);
  const jPairs: Array<{ predicted: number; realised: number }> = [];
  for (const r of status.runs) {
    let prevJ = 1;
    for (const rd of r.rounds) {
      if (rd.state !== 'completed' || rd.objective === null) continue;
      if (rd.metrics.estimatedDeltaJ !== undefined) jPairs.push({ predicted: rd.metrics.estimatedDeltaJ, realised: rd.objective - prevJ });
      prevJ = rd.objective;
    }
  }
  const med = (xs: number[]) => {
    const v = xs.slice().sort((a, b) => a - b);
    return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : null;
  };
  const jError = med(jPairs.map((x) => Math.abs(x.realised - x.predicted)));
  const minutes = (Date.now() - t0) / 60000;
  console.log(
    `bench:pareto — LeNet-5, Fashion-MNIST (${QUICK ? 'BENCH_QUICK smoke run' : '20 000 training images'}), ${status.runs.length} weight vectors × ${ROUNDS} rounds, backend ${status.backend}; latency measured at batch 128, side by side with the baseline; energy estimated (horowitz-45nm); ${minutes.toFixed(1)} min`,
  );
  console.log(`baseline: test accuracy ${(baseAcc * 100).toFixed(2)} %, ${status.baseline!.params} params, ${status.baseline!.flops} FLOPs`);
  console.log(
    'each row: the model recommended for that weight vector (lowest J(w) over all candidates within the accuracy constraint), and the channels the run itself ended with',
  );
  console.log(
    `${'run'.padEnd(15)}${'weights a/s/l/e'.padEnd(20)}${'pick'.padStart(10)}${'test acc'.padStart(10)}${'Δ pts'.padStart(8)}${'KB'.padStart(8)}${'speedup'.padStart(9)}${'J(w)'.padStart(8)}  the run's last round: channels`,
  );
  for (const n of names) {
    const p = pick(n);
    const own =
      runOf(n)
        .rounds.filter((x) => x.state === 'completed')
        .at(-1)?.metrics ?? {};
    const chans = Object.entries(own)
      .filter(([k]) => k.startsWith('channels.'))
      .map(([k, v]) => `${k.slice(9)} ${v}`)
      .join(', ');
    const w = W[n];
    console.log(
      `${n.padEnd(15)}${`${w.accuracy}/${w.size}/${w.latency}/${w.energy}`.padEnd(20)}${`run${p.point.k}/r${p.point.round}`.padStart(10)}${((p.metrics.accuracy ?? 0) * 100).toFixed(2).padStart(10)}${(((p.metrics.accuracy ?? 0) - baseAcc) * 100).toFixed(2).padStart(8)}${(p.point.values.bytes / 1024).toFixed(1).padStart(8)}${`${(p.metrics.speedup ?? 1).toFixed(2)}×`.padStart(9)}${(pareto.recommendations[names.indexOf(n)].objective ?? 0).toFixed(3).padStart(8)}  ${chans}`,
    );
  }
  console.log(
    `front: ${pareto.front} of ${pareto.points.length} candidates (${pareto.frontDistinct} distinct); error-vs-latency front: ${front2d.length} models; hypervolume ${pareto.hypervolume.toFixed(4)}`,
  );
  console.log(
    `runs that ended with a model: ${runsWithModel} of ${status.runs.length} (${rollbacks} round(s) rolled back and retried with half the ratio); predicted vs realised ΔJ(w) per round: median predicted ${med(jPairs.map((x) => x.predicted))?.toFixed(4)}, median realised ${med(jPairs.map((x) => x.realised))?.toFixed(4)}, median |error| ${jError?.toFixed(4)} over ${jPairs.length} rounds`,
  );
  console.log(
    `uint8 export of the accuracy-heavy pick: ${u8.bytes} vs ${f32.bytes} bytes float32 (${(f32.bytes / u8.bytes).toFixed(2)}×), test accuracy ${(u8.accuracy * 100).toFixed(2)} % vs ${(f32.accuracy * 100).toFixed(2)} %`,
  );
  console.log(
    `allocation vs uniform (latency-heavy weights): J ${allocated.objective!.toFixed(4)} at ${allocated.metrics.flops} FLOPs vs J ${uniform.objective!.toFixed(4)} at ${uniform.metrics.flops} FLOPs (uniform, linear schedule to the same reduction)`,
  );
  console.log(
    JSON.stringify({
      backend: status.backend,
      latencyBatchSize: 128,
      points: pareto.points.length,
      front: front2d.length,
      frontAll: pareto.front,
      hypervolume: pareto.hypervolume,
      runsWithModel,
      runs: status.runs.length,
      rollbacks,
      predictedVsRealisedJ: {
        rounds: jPairs.length,
        medianPredicted: med(jPairs.map((x) => x.predicted)),
        medianRealised: med(jPairs.map((x) => x.realised)),
        medianAbsError: jError,
      },
      accuracyHeavy: { weights: W.accuracyHeavy, accuracyDrop: (baseAcc - (acc.metrics.accuracy ?? 0)) * 100 },
      latencyHeavy: { weights: W.latencyHeavy, speedup: lat.metrics.speedup ?? 1, measured: true },
      int8: { sizeRatio: f32.bytes / u8.bytes, extraAccuracyDrop: (f32.accuracy - u8.accuracy) * 100 },
      allocationVsUniform: {
        jAllocated: allocated.objective,
        jUniform: uniform.objective,
        flopsAllocated: allocated.metrics.flops,
        flopsUniform: uniform.metrics.flops,
      },
    }),
  );
  spawnSync(process.execPath, [BIN, 'server', '--stop'], { env, stdio: 'ignore' });
  fs.rmSync(home, { recursive: true, force: true });
}

try {
  main();
} catch (e) {
  console.error(e);
  spawnSync(process.execPath, [BIN, 'server', '--stop'], { env, stdio: 'ignore' });
  process.exit(1);
}
