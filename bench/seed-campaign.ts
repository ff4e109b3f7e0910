// A synthetic campaign for the dashboard's benchmark, browser tests and screenshots: N runs × R
// rounds written through db/ exactly as the record activity writes them (same ops), with numbers
// shaped like a real LeNet-5 campaign (size and energy fall with the channels kept, accuracy
// drops faster as pruning deepens, latency has a fixed part). Clearly a fixture: the campaign's
// spec says `synthetic: true`, and nothing here is presented as a measurement.
import { objectiveJ, type ObjectiveValues } from '../core';
import { refreshPareto } from '../analysis';
import { applyRecord, createCampaign, type Db, type RecordOp } from '../db';
import { rng } from '../ml/random';

export interface SeedOptions {
  id: string;
  name?: string;
  runs: number;
  rounds: number;
  seed?: number;
  /** leave the last `running` runs mid-way (a stage running) */
  running?: number;
  /** run the full Pareto analysis at the end (default true; the bench times it itself) */
  analyse?: boolean;
}

const LAYERS: Array<[string, number]> = [
  ['conv1', 6],
  ['conv2', 16],
  ['dense1', 120],
  ['dense2', 84],
];

export function seedCampaign(db: Db, o: SeedOptions): { points: number } {
  const rand = rng(o.seed ?? 1);
  const id = o.id;
  createCampaign(db, {
    id,
    name: o.name ?? 'synthetic',
    spec: {
      name: o.name ?? 'synthetic',
      synthetic: true,
      model: { zoo: 'lenet5' },
      pruning: { criterion: 'fpgm', rounds: o.rounds },
      constraints: { maxAccuracyDrop: 2 },
    },
    specHash: 'synthetic',
    specFile: '(synthetic)',
    seed: o.seed ?? 1,
  });
  const base = { accuracy: 0.8858, valAccuracy: 0.889, bytes: 246_000, latencyMs: 0.42, energyJEstimated: 2.4e-4, params: 61_706, flops: 846_000 };
  const baseline: ObjectiveValues = { error: 1 - base.valAccuracy, bytes: base.bytes, latencyMs: base.latencyMs, energyJ: base.energyJEstimated };
  const bl = `${id}/baseline`;
  const ops: RecordOp[] = [
    { op: 'campaign', campaignId: id, state: o.running ? 'running' : 'completed' },
    { op: 'run', campaignId: id, runId: bl, k: 0, kind: 'baseline', weights: null, state: 'completed' },
    {
      op: 'stage',
      runId: bl,
      round: 0,
      stage: 'baseline',
      state: 'completed',
      attempts: 1,
      ms: 8000,
      metrics: { ...base, ...Object.fromEntries(LAYERS.map(([l, c]) => [`channels.${l}`, c])) },
    },
  ];
  let points = 1;
  for (let k = 1; k <= o.runs; k++) {
    // weights on the simplex (uniform Dirichlet), rounded to 0.05 like a sweep lattice
    const e = [0, 0, 0, 0].map(() => -Math.log(1 - rand()));
    const sum = e.reduce((a, b) => a + b, 0);
    const raw = e.map((x) => Math.round((x / sum) * 20) / 20);
    raw[0] = Math.max(0, +(1 - raw[1] - raw[2] - raw[3]).toFixed(2));
    const weights = { accuracy: raw[0], size: raw[1], latency: raw[2], energy: raw[3] };
    const runId = `${id}/run-${k}`;
    const running = o.running !== undefined && k > o.runs - o.running;
    ops.push({ op: 'run', campaignId: id, runId, k, kind: 'run', weights, state: running ? 'running' : 'completed' });
    const step = 0.04 + 0.14 * (1 - weights.accuracy) + 0.03 * rand(); // how much each round removes
    const rounds = running ? Math.max(1, Math.floor(o.rounds / 2)) : o.rounds;
    for (let r = 1; r <= rounds; r++) {
      const kept = Math.max(0.15, 1 - step * r);
      const noise = () => (rand() - 0.5) * 0.004;
      const drop = 0.2 * Math.pow(1 - kept, 2.6);
      const acc = base.accuracy - drop + noise() + 0.002 * Math.min(r, 2);
      const val = base.valAccuracy - drop + noise() + 0.002 * Math.min(r, 2);
      const bytes = Math.round(base.bytes * Math.pow(kept, 1.7) * (weights.size > 0.5 && r === rounds ? 0.25 : 1));
      const latencyMs = base.latencyMs * (0.25 + 0.75 * Math.pow(kept, 1.4)) * (1 + (rand() - 0.5) * 0.04);
      const energy = base.energyJEstimated * Math.pow(kept, 1.6);
      const values: ObjectiveValues = { error: 1 - val, bytes, latencyMs, energyJ: energy };
      const j = objectiveJ(weights, values, baseline);
      const widths = Object.fromEntries(LAYERS.map(([l, c]) => [`channels.${l}`, Math.max(1, Math.round(c * kept))]));
      ops.push(
        { op: 'round', runId, round: r, state: 'running' },
        {
          op: 'stage',
          runId,
          round: r,
          stage: 'prune',
          state: 'completed',
          attempts: 1,
          ms: 120,
          metrics: { ...widths, params: Math.round(base.params * kept * kept), flops: Math.round(base.flops * kept * kept) },
        },
        {
          op: 'stage',
          runId,
          round: r,
          stage: 'finetune',
          state: 'completed',
          attempts: r === 2 && k % 7 === 0 ? 2 : 1,
          ms: 2400,
          series: { trainLoss: [1, 2, 3].map((s) => [s, 0.6 - 0.1 * s + drop + noise()] as [number, number]) },
        },
        { op: 'stage', runId, round: r, stage: 'validate', state: 'completed', attempts: 1, ms: 300, metrics: { accuracy: acc, valAccuracy: val } },
        {
          op: 'stage',
          runId,
          round: r,
          stage: 'hardware-adapt',
          state: 'completed',
          attempts: 1,
          ms: 500,
          metrics: { latencyMs, speedup: base.latencyMs / latencyMs, deployedBytes: bytes, energyJEstimated: energy },
        },
        { op: 'round', runId, round: r, state: 'completed', objective: j },
      );
      points++;
    }
    if (running) ops.push({ op: 'stage', runId, round: rounds + 1, stage: 'finetune', state: 'running', attempts: 1, taskQueue: 'prunewise-gpu' });
    if (ops.length > 20_000) applyRecord(db, ops.splice(0));
  }
  applyRecord(db, ops);
  if (o.analyse !== false) refreshPareto(db, id); // a bulk load: one full analysis at the end
  return { points };
}
