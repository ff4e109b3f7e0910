// Compute activities (task queue `cpu`): load artifact → call ml/ → save artifact → return metrics.
// They never touch SQLite; the workflow hands their results to the `record` activity.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ObjectiveValues, Weights } from '../core';
import { measureOf } from '../campaign/target';
import { allocationOf, type CampaignSpec } from '../campaign/schema';
import type { ArtifactRef } from '../db/types';
import {
  buildZooModel,
  estimateEnergyJoules,
  evaluate,
  initBackend,
  layerWidths,
  loadDataset,
  loadModel,
  measureLatency,
  measureLatencyInterleaved,
  modelCost,
  analyze,
  planForFlops,
  planGlobal,
  planLocal,
  scheduledReduction,
  type KeepPlan,
  pruneModel,
  saveInt8,
  saveModel,
  scoreGroups,
  sha256,
  subset,
  measureSensitivity,
  allocate,
  type Sensitivity,
  rooflineEstimate,
  TARGET_PROFILES,
  raplDomains,
  measureEnergyPerExample,
  train,
  writeFileAtomic,
  type Dataset,
} from '../ml';
import { VERSION } from '../platform/version';

export interface StageInput {
  campaignId: string;
  runId: string;
  round: number;
  spec: CampaignSpec;
  /** model folder relative to the home folder */
  model: string;
  /** the run's objective weights and the baseline's objective values (weight-driven allocation) */
  weights?: Weights;
  objectiveBase?: ObjectiveValues;
}

export interface StageResult {
  attempt: number;
  ms: number;
  backend: string;
  metrics: Record<string, number>;
  series?: Record<string, Array<[number, number]>>;
  artifacts?: ArtifactRef[];
  resumedFromStep?: number;
  /** the stage's output model folder (relative), when it makes one */
  model?: string;
  /** layer name → channels/units after the stage */
  widths?: Record<string, number>;
}

export interface BaselineResult extends StageResult {
  model: string;
  tfjsVersion: string;
  prunewiseVersion: string;
}

export interface ValidateResult extends StageResult {
  /** false when a constraint broke: the round is rolled back */
  ok: boolean;
  reason?: string;
}

/** Errors in what the user gave us: retrying cannot help, so they fail the stage at once. */
const BAD_INPUT = new Set(['CampaignError', 'DataError', 'ModelError', 'PruneError', 'GraphError', 'ImportanceError']);

/** The latest progress details per running activity, repeated by the periodic heartbeat. */
const latestDetails = new WeakMap<Context, unknown>();

export function createComputeActivities(home: string) {
  const abs = (rel: string) => path.join(home, rel);
  const roundDir = (runId: string, round: number) => path.join('artifacts', runId, `round-${round}`);

  /**
   * Runs a stage body with timing, backend and error classification, heartbeating every second
   * (with the latest progress details) for as long as the event loop turns: every compute loop
   * yields per batch, so a missing heartbeat means a dead or stuck worker.
   */
  async function stage<T extends Omit<StageResult, 'attempt' | 'ms' | 'backend'>>(body: (backend: string) => Promise<T>): Promise<T & StageResult> {
    const t0 = performance.now();
    const ctx = Context.current();
    const timer = setInterval(() => ctx.heartbeat(latestDetails.get(ctx)), 1000);
    const backend = (await initBackend()).name;
    try {
      const out = await body(backend);
      return { ...out, attempt: Context.current().info.attempt, ms: Math.round(performance.now() - t0), backend };
    } catch (e) {
      const err = e as Error;
      if (BAD_INPUT.has(err?.name)) throw ApplicationFailure.nonRetryable(err.message, 'BadInput');
      throw e;
    } finally {
      clearInterval(timer);
    }
  }

  /** Heartbeats now with progress details, which the periodic heartbeat then repeats. */
  function beat(ctx: Context, details: unknown): void {
    latestDetails.set(ctx, details);
    ctx.heartbeat(details);
  }

  const data = (spec: CampaignSpec): Dataset => loadDataset(spec.dataset, spec.seed);

  function checkInput(model: tfl.LayersModel, ds: Dataset): void {
    const shape = (model.inputs[0].shape as Array<number | null>).slice(1);
    const out = model.outputs[0].shape;
    const size = shape.reduce<number>((a, b) => a * (b ?? 1), 1);
    if (size !== ds.shape[0] * ds.shape[1] * ds.shape[2]) {
      throw ApplicationFailure.nonRetryable(`model: input shape [${shape.join(', ')}] does not fit dataset images ${ds.shape.join('×')}: use a model made for this dataset`, 'BadInput');
    }
    if (out[out.length - 1] !== ds.classes) {
      throw ApplicationFailure.nonRetryable(`model: ${out[out.length - 1]} outputs but the dataset has ${ds.classes} classes: use a model made for this dataset`, 'BadInput');
    }
  }

  /** Describes a folder another step wrote (savers return bytes and hash themselves). */
  async function artifact(kind: string, rel: string): Promise<ArtifactRef> {
    const weights = path.join(abs(rel), 'weights.bin');
    const data = fs.readFileSync(weights);
    return { kind, path: rel, bytes: data.byteLength, sha256: sha256(data) };
  }

  /**
   * Trains with checkpoints; resumes from the heartbeat's checkpoint or the newest one on disk.
   * Heartbeats every batch (the SDK throttles what it sends), so a dead worker is noticed.
   */
  async function trainResumable(start: () => Promise<tfl.LayersModel>, ckptDir: string, spec: CampaignSpec, opts: { epochs: number; batchSize: number; learningRate: number; seed: number }, ds: Dataset) {
    const ctx = Context.current();
    const details = ctx.info.heartbeatDetails as { step?: number; checkpoint?: string } | undefined;
    let model: tfl.LayersModel;
    let startStep = 0;
    const fromDisk = newestCheckpoint(abs(ckptDir));
    const resumeFrom =
      details?.checkpoint && fs.existsSync(path.join(abs(details.checkpoint), 'model.json'))
        ? { dir: details.checkpoint, step: details.step ?? 0 }
        : fromDisk
          ? { dir: path.join(ckptDir, fromDisk.name), step: fromDisk.step }
          : undefined;
    if (resumeFrom) {
      model = await loadModel(abs(resumeFrom.dir));
      startStep = resumeFrom.step;
    } else {
      model = await start();
    }
    let lastCheckpoint = resumeFrom?.dir;
    let totalSteps: number | undefined;
    const result = await train(model, ds.train, {
      ...opts,
      startStep,
      onStep: (step, total) => {
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
        totalSteps = total;
        beat(ctx, { step, total, checkpoint: lastCheckpoint });
      },
      onCheckpoint: async (step) => {
        const rel = path.join(ckptDir, `step-${String(step).padStart(8, '0')}`);
        await saveModel(model, abs(rel));
        lastCheckpoint = rel;
        beat(ctx, { step, total: totalSteps, checkpoint: rel });
        pruneCheckpoints(abs(ckptDir), spec.execution.keepCheckpoints);
      },
    });
    return { model, result };
  }

  return {
    /** Trains (or loads) the unpruned model and measures everything the runs are compared to. */
    async baseline(input: { campaignId: string; spec: CampaignSpec }): Promise<BaselineResult> {
      return stage(async () => {
        const { spec } = input;
        const ds = data(spec);
        const dir = path.join('artifacts', input.campaignId, 'baseline');
        const start = async () => {
          const m = spec.model.endsWith('.json') || spec.model.includes('/') ? await loadModel(spec.model) : buildZooModel(spec.model, spec.seed, ds.shape, ds.classes);
          checkInput(m, ds);
          return m;
        };
        let model: tfl.LayersModel;
        let resumedFromStep = 0;
        const series: Record<string, Array<[number, number]>> = {};
        if (spec.baseline.epochs > 0) {
          const t = await trainResumable(start, path.join(dir, 'checkpoints'), spec, { epochs: spec.baseline.epochs, batchSize: spec.baseline.batchSize, learningRate: spec.baseline.learningRate, seed: spec.seed }, ds);
          model = t.model;
          resumedFromStep = t.result.resumedFromStep;
          series.trainLoss = t.result.epochLoss;
        } else {
          model = await start();
        }
        try {
          layerWidths(model); // fails early, with the layer named, if the model cannot be pruned
          const rel = path.join(dir, 'model');
          const saved = await saveModel(model, abs(rel));
          const m = await measureAll(model, ds, spec);
          const backend = await initBackend();
          const widths = layerWidths(model);
          return {
            model: rel,
            metrics: { ...m, ...Object.fromEntries(Object.entries(widths).map(([k, v]) => [`channels.${k}`, v])) },
            series,
            resumedFromStep,
            widths,
            artifacts: [{ kind: 'model', path: rel, ...saved }],
            tfjsVersion: backend.tfjsVersion,
            prunewiseVersion: VERSION,
          };
        } finally {
          model.dispose();
        }
      });
    },

    /** Importance of every channel of every prunable group. */
    async score(input: StageInput): Promise<StageResult & { scores: string }> {
      return stage(async () => {
        const { spec } = input;
        const model = await loadModel(abs(input.model));
        try {
          const graph = analyze(model);
          const notes: string[] = [];
          const scores = scoreGroups(model, spec.pruning.criterion, {
            onNote: (n) => notes.push(n),
            seed: spec.seed * 7919 + input.round,
            calibration: spec.pruning.criterion === 'taylor' ? data(spec).val : undefined,
          }, graph);
          let sensitivity: Sensitivity | undefined;
          if (allocationOf(spec.pruning) === 'weights') {
            const p = spec.pruning;
            const val = data(spec).val;
            const ctx = Context.current();
            sensitivity = await measureSensitivity(model, graph, scores, subset(val, Array.from({ length: Math.min(val.n, p.sensitivitySamples) }, (_, i) => i)), {
              ratios: [...new Set([p.stepRatio / 2, p.stepRatio, Math.min(2 * p.stepRatio, p.maxLayerRatio)])],
              plan: { minUnits: p.minUnits, roundTo: p.roundTo, maxRatio: p.maxLayerRatio, protect: p.protect },
              latencyBatchSize: spec.target.batchSize,
              latencyRuns: Math.min(spec.target.latencyRuns, 15),
              onTrial: (done, total) => beat(ctx, { step: done, total, what: 'sensitivity trials' }),
            });
          }
          const rel = path.join(roundDir(input.runId, input.round), 'scores.json');
          writeFileAtomic(abs(rel), JSON.stringify({ criterion: spec.pruning.criterion, scores, blocked: graph.blocked, notes, sensitivity }));
          return { scores: rel, metrics: { groups: graph.groups.length, blockedGroups: graph.blocked.length, ...(sensitivity ? { sensitivityTrials: sensitivity.steps.length } : {}) } };
        } finally {
          model.dispose();
        }
      });
    },

    /** Removes the lowest-scoring channels physically (the model really gets smaller), per the schedule. */
    async prune(input: StageInput & { scores: string }): Promise<StageResult> {
      return stage(async () => {
        const p = input.spec.pruning;
        const model = await loadModel(abs(input.model));
        const { scores, sensitivity } = JSON.parse(fs.readFileSync(abs(input.scores), 'utf8')) as { scores: Record<string, number[]>; sensitivity?: Sensitivity };
        const graph = analyze(model);
        const opts = { minUnits: p.minUnits, roundTo: p.roundTo, maxRatio: p.maxLayerRatio, protect: p.protect };
        let plan: KeepPlan;
        const extra: Record<string, number> = {};
        if (sensitivity && input.weights && input.objectiveBase) {
          // weight-driven: each group loses what lowers this run's J(w) most (estimated from the sensitivity trials)
          const a = allocate(sensitivity, input.weights, input.objectiveBase, p.expectedRecovery);
          plan = a.plan;
          extra.allocatedGroups = a.chosen.length;
          extra.estimatedDeltaJ = a.estimatedDeltaJ;
          writeFileAtomic(
            abs(path.join(roundDir(input.runId, input.round), 'allocation.json')),
            JSON.stringify({ weights: input.weights, expectedRecovery: p.expectedRecovery, estimatedDeltaJ: a.estimatedDeltaJ, chosen: a.chosen.map(({ keep, ...c }) => ({ ...c, keeps: keep.length })), note: 'dError measured without fine-tuning on a validation subset; dLatencyMs measured side by side; dEnergyJ estimated (horowitz-45nm)' }, null, 2),
          );
        } else if (p.schedule === 'per-round') {
          const total = graph.groups.reduce((a, g) => a + g.size, 0);
          plan = p.scope === 'local' ? planLocal(graph, scores, p.stepRatio, opts) : planGlobal(graph, scores, Math.round(p.stepRatio * total), opts);
        } else {
          // the schedule speaks of the baseline's FLOPs: translate to a fraction of this model's
          const base = await loadModel(abs(path.join('artifacts', input.campaignId, 'baseline', 'model')));
          const baselineFlops = modelCost(base).flops;
          base.dispose();
          const goal = 1 - (1 - scheduledReduction(p.schedule, p.targetFlopsReduction!, input.round, p.rounds)) * (baselineFlops / modelCost(model).flops);
          plan = goal > 0 ? (await planForFlops(model, graph, scores, goal, p.scope, opts)).plan : {};
        }
        const pruned = await pruneModel(model, plan, graph);
        try {
          const rel = path.join(roundDir(input.runId, input.round), 'pruned');
          const saved = await saveModel(pruned, abs(rel));
          const cost = modelCost(pruned);
          const widths = layerWidths(pruned);
          return {
            model: rel,
            widths,
            metrics: {
              ...extra,
              params: cost.params,
              flops: cost.flops,
              bytes: cost.bytes,
              ...Object.fromEntries(Object.entries(widths).map(([k, v]) => [`channels.${k}`, v])),
            },
            artifacts: [{ kind: 'model', path: rel, ...saved }],
          };
        } finally {
          model.dispose();
          pruned.dispose();
        }
      });
    },

    /** Recovers accuracy; checkpoints every epoch and resumes from the newest checkpoint after a crash. */
    async finetune(input: StageInput): Promise<StageResult> {
      return stage(async () => {
        const { spec } = input;
        const ds = data(spec);
        const dir = roundDir(input.runId, input.round);
        const t = await trainResumable(() => loadModel(abs(input.model)), path.join(dir, 'finetune-checkpoints'), spec, {
          epochs: spec.pruning.finetuneEpochs,
          batchSize: spec.pruning.batchSize,
          learningRate: spec.pruning.finetuneLearningRate,
          seed: spec.seed + input.round,
        }, ds);
        try {
          const rel = path.join(dir, 'finetuned');
          const saved = await saveModel(t.model, abs(rel));
          return {
            model: rel,
            resumedFromStep: t.result.resumedFromStep,
            metrics: { finetuneSteps: t.result.steps, samplesPerSecond: t.result.samplesPerSecond },
            series: { trainLoss: t.result.epochLoss },
            artifacts: [{ kind: 'model', path: rel, ...saved }],
          };
        } finally {
          t.model.dispose();
        }
      });
    },

    /** Validation accuracy decides; test accuracy is what users see. Breaking a constraint rolls back. */
    async validate(input: StageInput & { baselineValAccuracy: number }): Promise<ValidateResult> {
      return stage(async () => {
        const ds = data(input.spec);
        const model = await loadModel(abs(input.model));
        try {
          const val = await evaluate(model, ds.val);
          const test = await evaluate(model, ds.test);
          const drop = (input.baselineValAccuracy - val.accuracy) * 100;
          const max = input.spec.constraints.maxAccuracyDrop;
          const ok = drop <= max;
          return {
            ok,
            reason: ok ? undefined : `validation accuracy dropped ${drop.toFixed(2)} points (max ${max})`,
            metrics: { accuracy: test.accuracy, loss: test.loss, valAccuracy: val.accuracy, valLoss: val.loss, accuracyDrop: drop },
          };
        } finally {
          model.dispose();
        }
      });
    },

    /** Post-training int8 per-channel weights; accuracy measured with exactly the stored weights. */
    async quantize(input: StageInput): Promise<StageResult> {
      return stage(async () => {
        const ds = data(input.spec);
        const model = await loadModel(abs(input.model));
        const rel = path.join(roundDir(input.runId, input.round), 'int8');
        try {
          const saved = saveInt8(model, abs(rel));
          const q = await loadModel(abs(rel)); // what the file holds, dequantized
          try {
            const acc = await evaluate(q, ds.test);
            return {
              model: rel,
              metrics: { int8Accuracy: acc.accuracy, int8Bytes: saved.bytes },
              artifacts: [{ kind: 'model-int8', path: rel, ...saved }],
            };
          } finally {
            q.dispose();
          }
        } finally {
          model.dispose();
        }
      });
    },

    /** Measures latency on this worker's backend and writes the deployable artifact. */
    async hardwareAdapt(input: StageInput & { int8Model?: string; useInt8: boolean }): Promise<StageResult> {
      return stage(async (backend) => {
        const chosen = input.useInt8 && input.int8Model ? input.int8Model : input.model;
        const model = await loadModel(abs(chosen));
        const baseline = await loadModel(abs(path.join('artifacts', input.campaignId, 'baseline', 'model')));
        try {
          const t = input.spec.target;
          const how = measureOf(t);
          const cost = modelCost(model);
          const profile = TARGET_PROFILES[t.name];
          const dtype = input.useInt8 ? 'int8' : 'float32';
          let lat: { medianMs: number; p90Ms: number };
          let speedup: number;
          let energyJ = estimateEnergyJoules(cost, dtype);
          let energyModel = 'horowitz-45nm';
          const extra: Record<string, number> = {};
          if (how === 'estimate') {
            // no device here: roofline estimates for the profile, for the model and the baseline alike
            const est = rooflineEstimate(cost, profile, t.batchSize, input.useInt8 ? 1 : 4);
            const estBase = rooflineEstimate(modelCost(baseline), profile, t.batchSize);
            lat = { medianMs: est.latencyMs, p90Ms: est.latencyMs };
            speedup = estBase.latencyMs / est.latencyMs;
            energyJ = est.energyJ;
            energyModel = `roofline(${profile.name})`;
            extra.latencyEstimated = 1;
            extra.memoryBoundLayers = est.memoryBoundLayers.length;
          } else {
            // timed side by side with the baseline, alternating, so machine drift cancels in the ratio
            const [latBase, measured] = await measureLatencyInterleaved([baseline, model], t.batchSize, t.warmupRuns, t.latencyRuns);
            lat = measured;
            speedup = latBase.medianMs / measured.medianMs;
            if (profile) extra.latencyMsRoofline = rooflineEstimate(cost, profile, t.batchSize, input.useInt8 ? 1 : 4).latencyMs;
            // a sensor where one exists: RAPL package energy, model and baseline alike (their ratio is what J uses)
            const domains = raplDomains();
            if (domains.length > 0) {
              extra.energyJMeasured = await measureEnergyPerExample(model, t.batchSize, t.latencyRuns, domains);
              extra.baselineEnergyJMeasured = await measureEnergyPerExample(baseline, t.batchSize, t.latencyRuns, domains);
            }
          }
          const rel = path.join(roundDir(input.runId, input.round), 'deployable');
          fs.rmSync(abs(`${rel}.partial`), { recursive: true, force: true });
          fs.cpSync(abs(chosen), abs(`${rel}.partial`), { recursive: true });
          fs.writeFileSync(
            path.join(abs(`${rel}.partial`), 'prunewise.json'),
            JSON.stringify({
              source: chosen,
              dtype: input.useInt8 ? 'int8-per-channel' : 'float32',
              target: t.name,
              latencyMs:
                how === 'estimate'
                  ? { value: lat.medianMs, measured: false, model: energyModel, batchSize: t.batchSize, profile }
                  : { value: lat.medianMs, measured: true, backend, host: os.hostname(), batchSize: t.batchSize, runs: t.latencyRuns },
              speedupVsBaseline:
                how === 'estimate'
                  ? { value: speedup, measured: false, model: energyModel }
                  : { value: speedup, measured: true, backend, note: 'timed side by side with the unpruned model' },
              energyJoulesPerInference:
                extra.energyJMeasured !== undefined
                  ? { value: extra.energyJMeasured, measured: true, sensor: 'rapl (CPU package, includes idle power)', host: os.hostname(), estimate: { value: energyJ, model: energyModel } }
                  : { value: energyJ, measured: false, model: energyModel },
            }, null, 2),
          );
          fs.rmSync(abs(rel), { recursive: true, force: true });
          fs.renameSync(abs(`${rel}.partial`), abs(rel));
          return {
            metrics: {
              latencyMs: lat.medianMs,
              latencyP90Ms: lat.p90Ms,
              latencyBatchSize: t.batchSize,
              speedup,
              energyJEstimated: energyJ,
              ...extra,
            },
            artifacts: [await artifact('deployable', rel)],
          };
        } finally {
          model.dispose();
          baseline.dispose();
        }
      });
    },
  };

  async function measureAll(model: tfl.LayersModel, ds: Dataset, spec: CampaignSpec): Promise<Record<string, number>> {
    const val = await evaluate(model, ds.val);
    const test = await evaluate(model, ds.test);
    const cost = modelCost(model);
    const lat = await measureLatency(model, spec.target.batchSize, spec.target.warmupRuns, spec.target.latencyRuns);
    const common = {
      accuracy: test.accuracy,
      loss: test.loss,
      valAccuracy: val.accuracy,
      valLoss: val.loss,
      params: cost.params,
      flops: cost.flops,
      bytes: cost.bytes,
      latencyBatchSize: spec.target.batchSize,
    };
    if (measureOf(spec.target) === 'estimate') {
      // the target is a profile: its latency is a roofline estimate; this worker's measurement is kept apart
      const est = rooflineEstimate(cost, TARGET_PROFILES[spec.target.name], spec.target.batchSize);
      return { ...common, latencyMs: est.latencyMs, latencyEstimated: 1, latencyMsLocal: lat.medianMs, energyJEstimated: est.energyJ };
    }
    return { ...common, latencyMs: lat.medianMs, latencyP90Ms: lat.p90Ms, energyJEstimated: estimateEnergyJoules(cost) };
  }
}

export type ComputeActivities = ReturnType<typeof createComputeActivities>;

function newestCheckpoint(dir: string): { name: string; step: number } | undefined {
  if (!fs.existsSync(dir)) return undefined;
  const found = fs
    .readdirSync(dir)
    .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
    .filter((e) => e.m && fs.existsSync(path.join(dir, e.name, 'model.json')) && fs.existsSync(path.join(dir, e.name, 'weights.bin')))
    .map((e) => ({ name: e.name, step: Number(e.m![1]) }))
    .sort((a, b) => b.step - a.step);
  return found[0];
}

/** Keeps the newest `keep` checkpoints and removes leftovers of interrupted writes. */
function pruneCheckpoints(dir: string, keep: number): void {
  const entries = fs.readdirSync(dir);
  const steps = entries.filter((n) => /^step-\d+$/.test(n)).sort().reverse();
  for (const old of steps.slice(keep)) fs.rmSync(path.join(dir, old), { recursive: true, force: true });
  for (const tmp of entries.filter((n) => /\.(tmp|old)-\d+-/.test(n))) {
    const pid = Number(/-(\d+)-/.exec(tmp)![1]);
    if (pid !== process.pid) fs.rmSync(path.join(dir, tmp), { recursive: true, force: true });
  }
}
