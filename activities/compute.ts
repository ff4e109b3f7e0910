// Compute activities (task queue `cpu`): thin stage bodies — load artifact → call ml/ → save
// artifact → return metrics. They never touch SQLite; the workflow hands their results to the
// `record` activity. The pruning policy lives in ml/round.ts, the measuring policy in ml/measure.ts.
import { Context } from '@temporalio/activity';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { baselineSparsityOf, describeRecipe, finetuneRecipeOf, type CampaignSpec, type FinetuneRecipe } from '../campaign/schema';
import { measureOf } from '../campaign/target';
import {
  baselineDir,
  baselineModelDir,
  CampaignError,
  channelMetrics,
  DataError,
  deployableDir,
  latencyTablePath,
  ModelError,
  overLimit,
  roundDir,
} from '../core';
import {
  allocationOf,
  analyze,
  blockedLines,
  supportProblems,
  topologyProblems,
  trainingProblems,
  buildZooModel,
  probeModel,
  evaluate,
  initBackend,
  layerChannels,
  loadDataset,
  loadModel,
  measureBaseline,
  measureCandidate,
  measureLatencyTableOn,
  measureSensitivity,
  openRuntime,
  calibrationInputs,
  modelCost,
  parseLatencyTable,
  predictLatencyMs,
  serializeLatencyTable,
  planOptions,
  planRound,
  pruneModel,
  reconstructOnSplit,
  type Graph,
  type KeepPlan,
  saveExport,
  estimateEnergyJoules,
  saveInt8,
  saveModel,
  scoreGroups,
  searchWidths,
  shuffledIndices,
  type WidthSearchResult,
  sensitivityRatios,
  sha256,
  subset,
  tableMismatch,
  writeFileAtomic,
  writeFileChecked,
  type Dataset,
  type LatencyTable,
  type RuntimeName,
  type Sensitivity,
  type Split,
  taskOf,
  taskSpecOf,
  type Task,
  type TrainResult,
} from '../ml';
import { VERSION } from '../platform/version';
import { ArtifactStore, parseRef } from '../blobstore';
import { ArtifactError, Artifacts } from './artifacts';
import { trainResumable } from './checkpoints';
import { beat, runStage } from './stage';
import type { ArtifactRef } from '../db/types';
import type { BaselineResult, LatencyTableRef, LatencyTableResult, StageInput, StageResult, ValidateResult } from './types';

export type { BaselineResult, LatencyTableRef, LatencyTableResult, StageInput, StageResult, ValidateResult } from './types';

const data = (spec: CampaignSpec): Dataset => loadDataset(spec.dataset, spec.seed, taskSpecOf(spec.task));

/**
 * The train-level recipe (ml/recipe.ts) of a resolved campaign recipe: the teacher is the run's baseline model.
 * @throws CampaignError when label smoothing or distillation is asked of a task that is not classification
 */
function trainRecipeOf(r: FinetuneRecipe, spec: CampaignSpec, teacher: tfl.LayersModel | undefined) {
  const type = taskSpecOf(spec.task).type;
  if (type !== 'classification' && r.labelSmoothing > 0)
    throw new CampaignError(`pruning.finetune.labelSmoothing: label smoothing needs a classification task (task is ${type}): remove it`);
  if (type !== 'classification' && r.distill)
    throw new CampaignError(`pruning.finetune.distill: distillation needs a classification task (task is ${type}): remove it`);
  return {
    ...(r.batches !== undefined ? { steps: r.batches } : {}),
    schedule: { kind: r.schedule, warmup: r.warmup },
    labelSmoothing: r.labelSmoothing,
    ...(r.distill && teacher ? { distill: { teacher, weight: r.distill.weight, temperature: r.distill.temperature } } : {}),
    ...(r.sparsity ? { sparsity: { ...r.sparsity, protect: spec.pruning.protect } } : {}),
  };
}

/**
 * The user's model must fit the dataset and the task: one output whose activation fits the task
 * (ml/task.ts), input size, and output units = classes (or targets). @returns the task, with how
 * its output kind was decided @throws ModelError / DataError naming the output and the fix
 */
function checkInput(model: tfl.LayersModel, ds: Dataset, spec: CampaignSpec): Task {
  const task = taskOf(model, taskSpecOf(spec.task));
  const shape = (model.inputs[0].shape as Array<number | null>).slice(1);
  const size = shape.reduce<number>((a, b) => a * (b ?? 1), 1);
  if (size !== ds.shape[0] * ds.shape[1] * ds.shape[2]) {
    throw new ModelError(`model: input shape [${shape.join(', ')}] does not fit dataset images ${ds.shape.join('×')}: use a model made for this dataset`);
  }
  if (task.units !== ds.classes) {
    const what = task.type === 'classification' ? 'classes' : task.type === 'multilabel' ? 'labels per example' : 'targets per example';
    const said = ds.notes.find((n) => n.includes('1-based'));
    throw new DataError(
      `model: output "${task.output}" has ${task.units} units but the dataset has ${ds.classes} ${what}${said ? ` (${said})` : ''}: use a model made for this dataset${said ? ' or set dataset.labelBase' : ''}`,
    );
  }
  return task;
}

/** What the baseline states about the task and the data (its log line and dataset.json). */
function dataNotes(task: Task, ds: Dataset): string[] {
  return [
    `task ${task.type}: ${task.how}${task.type === 'regression' ? ' (accuracy = R²)' : task.type === 'multilabel' ? ' (accuracy = per-label accuracy)' : ''}`,
    ...ds.notes,
  ];
}

/** The deployable's input contract (prunewise.json `input`): shape, scaling, class names. */
function inputContract(ds: Dataset, spec: CampaignSpec): object {
  const { shape, scale, from, a, b, classNames } = ds.input;
  return { shape, scale, from, a, b, ...(classNames ? { classNames } : {}), task: taskSpecOf(spec.task).type };
}

/** The campaign's deployment runtime (ml/runtime.ts): what latency is measured on, never the training backend. */
const runtimeOf = (spec: CampaignSpec): RuntimeName => spec.target.runtime ?? 'tfjs-wasm'; // specs of older workflows have none
/** The pruning policy (ml/round.ts) with the runtime `roundTo: auto` resolves for. */
const policyOf = (spec: CampaignSpec) => ({ ...spec.pruning, runtime: runtimeOf(spec) });

/**
 * Least-squares reconstruction of a round's pruned model (ml/reconstruct.ts) on `n` training images drawn by the campaign's
 * seed and the schedule round (the same images when the stage is retried, and for a round retried after a rollback), in
 * place; returns each refitted (or skipped) layer's relative output error.
 */
async function reconstructOn(spec: CampaignSpec, n: number, model: tfl.LayersModel, pruned: tfl.LayersModel, plan: KeepPlan, graph: Graph, round: number) {
  const train = data(spec).train;
  const idx = shuffledIndices(train.n, spec.seed * 7919 + 31 * round + 5).subarray(0, Math.min(n, train.n));
  return reconstructOnSplit(model, pruned, plan, train, idx, graph);
}

/** The first `n` examples of a split (all when it has fewer): what sensitivity trials and search candidates are scored on. */
const firstImages = (split: Split, n: number): Split =>
  subset(
    split,
    Array.from({ length: Math.min(split.n, n) }, (_, i) => i),
  );

/**
 * `home`: this worker's home (its local copies of artifacts); `store`: the artifact store every
 * worker reaches (default: ArtifactStore.fromEnv(home), PRUNEWISE_ARTIFACTS).
 */
export function createComputeActivities(home: string, store?: ArtifactStore) {
  const art = new Artifacts(home, store);

  /**
   * allocation "search": the widths the rounds go to, searched on the campaign's baseline (ml/search.ts searchWidths:
   * `searchCandidates` random allocations and the uniform one removing targetFlopsReduction, scored by accuracy on
   * `sensitivitySamples` validation images after adaptive batch norm on 2 048 training images). Every round's prune stage asks
   * for it: the first to find none searches and publishes width-search-<key>.json next to the baseline in the artifact store
   * (keyed by everything the result depends on but the backend); the others, on any worker, read that one, so a run's rounds
   * all walk to the same widths. Stages that search at once (a sweep's first rounds) get the same answer on the same backend;
   * on different backends the last one published is what later rounds read. `reused`: read, not searched.
   */
  const widthSearch = async (input: StageInput, p: ReturnType<typeof policyOf>): Promise<{ result: WidthSearchResult; reused: boolean }> => {
    const baselineRef = input.baselineModel ?? baselineModelDir(input.campaignId);
    const key = sha256(
      JSON.stringify({
        v: 1, // bump when the search changes what it returns
        baselineRef,
        seed: input.spec.seed,
        criterion: p.criterion,
        target: p.targetFlopsReduction,
        candidates: p.searchCandidates,
        samples: p.sensitivitySamples,
        plan: planOptions(p),
        dataset: input.spec.dataset,
        task: input.spec.task ?? null,
      }),
    ).slice(0, 16);
    const rel = path.join(baselineDir(input.campaignId), `width-search-${key}.json`);
    try {
      const kept = await art.readJson<WidthSearchResult>(rel);
      if (kept?.best?.widths && Array.isArray(kept.candidates)) return { result: kept, reused: true };
    } catch (e) {
      if (!(e instanceof ArtifactError)) throw e; // none yet (or unreadable): searched below, with the same answer
    }
    const base = await art.loadModel(baselineRef);
    try {
      const graph = analyze(base);
      const ds = data(input.spec);
      const scores = scoreGroups(base, p.criterion, { seed: input.spec.seed * 7919, calibration: p.criterion === 'taylor' ? ds.val : undefined }, graph);
      const ctx = Context.current();
      const result = await searchWidths(base, graph, scores, {
        fraction: p.targetFlopsReduction!,
        candidates: p.searchCandidates,
        seed: input.spec.seed * 7919 + 17,
        plan: planOptions(p),
        bnSplit: subset(ds.train, shuffledIndices(ds.train.n, input.spec.seed * 7919 + 18).subarray(0, Math.min(ds.train.n, 2048))),
        evalSplit: firstImages(ds.val, p.sensitivitySamples),
        onProgress: (phase, done, total) =>
          beat(ctx, { step: done, total, what: phase === 'draw' ? 'width search: candidates drawn' : 'width search: candidates scored' }),
      });
      writeFileAtomic(art.abs(rel), JSON.stringify(result));
      await art.publish(rel);
      return { result, reused: false };
    } finally {
      base.dispose();
    }
  };

  /** The frozen table a stage was handed (never re-measured); the file must still hash to its key. */
  const readLatencyTable = async (ref: LatencyTableRef): Promise<{ table: LatencyTable; sha256: string }> => {
    const text = await art.readText(ref.path);
    if (sha256(text) !== ref.sha256) throw new ArtifactError(`artifact ${ref.path}: sha256 ${sha256(text)} is not the campaign's latency table ${ref.sha256}`);
    return { table: parseLatencyTable(text), sha256: ref.sha256 };
  };

  return {
    /** Trains (or loads) the unpruned model and measures everything the runs are compared to. */
    async baseline(input: { campaignId: string; spec: CampaignSpec }): Promise<BaselineResult> {
      return runStage(async (backend) => {
        const { spec } = input;
        const ds = data(spec);
        const dir = baselineDir(input.campaignId);
        const start = async () => {
          const own = spec.model.endsWith('.json') || spec.model.includes('/');
          if (spec.model.endsWith('.json')) {
            // fields tfjs-layers would drop or mis-read while loading (grouped convs, channels_first): refused first, naming the layer
            let topology: unknown;
            try {
              topology = JSON.parse(fs.readFileSync(spec.model, 'utf8')).modelTopology;
            } catch {
              topology = undefined; // unreadable: loadUserModel says so
            }
            const problems = topologyProblems(topology);
            if (problems.length) throw new ModelError(problems.join('; '));
          }
          const m = own ? await art.loadUserModel(spec.model) : buildZooModel(spec.model, spec.seed, ds.shape, ds.classes);
          if (own) probeModel(m, `model: ${spec.model}`); // a graph or shape error in the user's model: bad input, at once
          checkInput(m, ds, spec);
          // fails at once, naming the layer and field, if the model cannot be pruned (or trained here)
          const problems = [...supportProblems(m), ...trainingProblems(m, backend)];
          if (problems.length) throw new ModelError(problems.join('; '));
          return m;
        };
        let model: tfl.LayersModel;
        let resumedFromStep = 0;
        let trainGraph: number | undefined;
        let trainNotes: string[] = [];
        const series: Record<string, Array<[number, number]>> = {};
        if (spec.baseline.epochs > 0) {
          const b = spec.baseline;
          // sparsity.baseline: the baseline's training carries the group-norm penalty (ml/recipe.ts), protected groups left alone
          const sparsity = baselineSparsityOf(spec.pruning);
          const t = await trainResumable(
            art,
            start,
            path.join(dir, 'checkpoints'),
            {
              epochs: b.epochs,
              batchSize: b.batchSize,
              learningRate: b.learningRate,
              seed: spec.seed,
              keepCheckpoints: spec.execution.keepCheckpoints,
              ...(sparsity ? { recipe: { sparsity: { ...sparsity, protect: spec.pruning.protect } } } : {}),
            },
            ds.train,
          );
          model = t.model;
          resumedFromStep = t.result.resumedFromStep;
          trainGraph = t.result.mode === 'graph' ? 1 : 0;
          trainNotes = modeNotes(t.result, (await initBackend()).name);
          series.trainLoss = t.result.epochLoss;
          series.batchLoss = t.result.batchLoss;
        } else {
          model = await start();
        }
        try {
          const task = checkInput(model, ds, spec);
          const notes = dataNotes(task, ds);
          const relDataset = path.join(dir, 'dataset.json');
          const datasetText = JSON.stringify({ version: 1, task, notes, input: inputContract(ds, spec) }, null, 2);
          writeFileAtomic(art.abs(relDataset), datasetText);
          const datasetArt = await art.publishFile('dataset', relDataset);
          const rel = baselineModelDir(input.campaignId);
          const saved = await art.publishModel('model', rel, await saveModel(model, art.abs(rel)));
          const val = await evaluate(model, ds.val);
          const test = await evaluate(model, ds.test);
          const cost = modelCost(model);
          const graph = analyze(model);
          const channels = layerChannels(model, graph);
          // the baseline's 8-bit variant: what 8-bit candidates are compared with (like with like)
          const relU8 = path.join(baselineDir(input.campaignId), 'uint8');
          const savedU8 = await art.publishModel('model-uint8', relU8, await saveExport(model, art.abs(relU8), 'uint8'));
          const u8 = await art.loadModel(savedU8.ref);
          let u8Test, u8Val;
          try {
            u8Test = await evaluate(u8, ds.test);
            u8Val = await evaluate(u8, ds.val);
          } finally {
            u8.dispose();
          }
          // the baseline's latency on the deployment runtime (the saved folder, loaded there), not on `backend`
          const session = await openRuntime(runtimeOf(spec), { baseline: art.abs(rel), batchSize: spec.target.batchSize });
          let latency: Record<string, number>;
          try {
            latency = await measureBaseline(model, spec.target, measureOf(spec.target), session);
          } finally {
            await session.close();
          }
          const relLatency = path.join(dir, 'latency.json');
          const latencyText = JSON.stringify({ metrics: latency, runtime: session.info, trainingBackend: backend, target: spec.target.name }, null, 2);
          writeFileAtomic(art.abs(relLatency), latencyText);
          const latencyArt = await art.publishFile('latency', relLatency);
          return {
            model: saved.ref,
            metrics: {
              ...(trainGraph !== undefined ? { trainGraph } : {}),
              int8Accuracy: u8Test.accuracy,
              int8ValAccuracy: u8Val.accuracy,
              int8Bytes: savedU8.bytes,
              energyJEstimatedInt8: estimateEnergyJoules(cost, 'int8'),
              accuracy: test.accuracy,
              loss: test.loss,
              valAccuracy: val.accuracy,
              valLoss: val.loss,
              ...(test.mae !== undefined ? { mae: test.mae, valMae: val.mae! } : {}),
              params: cost.params,
              flops: cost.flops,
              bytes: cost.bytes,
              groups: graph.groups.length,
              blockedGroups: graph.blocked.length,
              ...latency,
              ...channelMetrics(channels),
            },
            series,
            resumedFromStep,
            channels,
            blocked: blockedLines(graph),
            artifacts: [saved, savedU8, latencyArt, datasetArt].map(artifactOf),
            notes: [...notes, ...trainNotes],
            runtime: session.info,
            tfjsVersion: (await initBackend()).tfjsVersion,
            prunewiseVersion: VERSION,
          };
        } finally {
          model.dispose();
        }
      });
    },

    /**
     * The campaign's latency table (ml/latency-table.ts), once, after the baseline: target.latencyTable
     * when given (checked against target.runtime and the model), else timed on the deployment runtime
     * (ml/runtime.ts) for the baseline's layers. Written under the campaign's folder; a retry finds
     * the file and reuses it.
     */
    async latencyTable(input: { campaignId: string; spec: CampaignSpec; model: string }): Promise<LatencyTableResult> {
      return runStage(async () => {
        const { spec } = input;
        const t = spec.target;
        const p = policyOf(spec);
        const rel = latencyTablePath(input.campaignId);
        const model = await art.loadModel(input.model);
        try {
          const graph = analyze(model);
          // keyed by the deployment runtime (timed there, ml/runtime.ts), not by this worker's training backend
          const runtime = runtimeOf(spec);
          const need = { ...planOptions(p), target: t.name, batchSize: t.batchSize, runtime };
          let text: string | undefined;
          let source: LatencyTableResult['source'] = 'reused';
          // an earlier attempt's table (here or, through the store, on another worker)
          const earlier = await art.local(rel).catch(() => undefined);
          if (earlier && fs.existsSync(earlier)) {
            text = fs.readFileSync(earlier, 'utf8');
            try {
              if (tableMismatch(parseLatencyTable(text), model, graph, need)) text = undefined; // not this campaign's: measure
            } catch {
              text = undefined;
            }
          }
          if (text === undefined && t.latencyTable) {
            const bad = (why: string) =>
              new CampaignError(`target.latencyTable: ${t.latencyTable}: ${why}: use a matching table or remove the field to measure one`);
            let table: LatencyTable;
            try {
              text = fs.readFileSync(t.latencyTable, 'utf8');
              table = parseLatencyTable(text);
            } catch (e) {
              throw bad((e as Error).message.split('\n')[0]);
            }
            const why = tableMismatch(table, model, graph, need);
            if (why) throw bad(why);
            writeFileAtomic(art.abs(rel), text);
            source = 'given';
          } else if (text === undefined) {
            beat(Context.current(), { what: `latency table on ${runtime}` });
            const table = await measureLatencyTableOn(runtime, await art.local(input.model), {
              target: t.name,
              batchSize: t.batchSize,
              grid: planOptions(p),
              warmupRuns: Math.min(t.warmupRuns, 3),
              runs: Math.min(t.latencyRuns, 15),
            });
            text = serializeLatencyTable(table);
            writeFileAtomic(art.abs(rel), text);
            source = 'measured';
          }
          const table = parseLatencyTable(text);
          const hash = sha256(text);
          if (source === 'reused') writeFileAtomic(art.abs(rel), text);
          const published = await art.publishFile('latency-table', rel);
          return {
            table: { path: published.ref, sha256: hash },
            source,
            metrics: { predictedLatencyMs: predictLatencyMs(model, table).totalMs },
            artifacts: [artifactOf(published)],
          };
        } finally {
          model.dispose();
        }
      });
    },

    /** Importance of every channel of every prunable group, and (weight-driven allocation) each group's sensitivity. */
    async score(input: StageInput): Promise<StageResult & { scores: string }> {
      return runStage(async () => {
        const { spec } = input;
        const p = policyOf(spec);
        const model = await art.loadModel(input.model);
        try {
          const graph = analyze(model);
          const notes: string[] = [];
          const scores = scoreGroups(
            model,
            p.criterion,
            { onNote: (n) => notes.push(n), seed: spec.seed * 7919 + input.round, calibration: p.criterion === 'taylor' ? data(spec).val : undefined },
            graph,
          );
          let sensitivity: Sensitivity | undefined;
          let predicted: number | undefined;
          const allocation = allocationOf(p);
          if (allocation === 'weights' || allocation === 'sensitivity') {
            // sensitivity (FLOPs schedules) needs the error and FLOPs of each trial only: nothing is timed
            const byFlops = allocation === 'sensitivity';
            const lt = !byFlops && input.latencyTable ? await readLatencyTable(input.latencyTable) : undefined;
            if (lt) predicted = predictLatencyMs(model, lt.table).totalMs;
            const val = data(spec).val;
            const ctx = Context.current();
            sensitivity = await measureSensitivity(model, graph, scores, firstImages(val, p.sensitivitySamples), {
              ratios: sensitivityRatios(p),
              plan: planOptions(p),
              latencyBatchSize: spec.target.batchSize,
              latencyRuns: Math.min(spec.target.latencyRuns, 15),
              latencyTable: lt,
              noLatency: byFlops,
              onTrial: (done, total) => beat(ctx, { step: done, total, what: 'sensitivity trials' }),
            });
          }
          const rel = path.join(roundDir(input.runId, input.round), 'scores.json');
          writeFileAtomic(art.abs(rel), JSON.stringify({ criterion: p.criterion, scores, blocked: graph.blocked, notes, sensitivity }));
          const published = await art.publishFile('scores', rel);
          return {
            scores: published.ref,
            metrics: {
              groups: graph.groups.length,
              blockedGroups: graph.blocked.length,
              ...(sensitivity ? { sensitivityTrials: sensitivity.trials.length } : {}),
              ...(predicted !== undefined ? { predictedLatencyMs: predicted } : {}),
            },
          };
        } finally {
          model.dispose();
        }
      });
    },

    /** Removes the lowest-scoring channels physically (the model really gets smaller), per the pruning policy (ml/round.ts). */
    async prune(input: StageInput & { scores: string }): Promise<StageResult> {
      return runStage(async () => {
        const model = await art.loadModel(input.model);
        const graph = analyze(model);
        const { scores, sensitivity } = await art.readJson<{ scores: Record<string, number[]>; sensitivity?: Sensitivity }>(input.scores);
        const policy = policyOf(input.spec);
        const searched = allocationOf(policy) === 'search' && policy.schedule !== 'per-round' ? await widthSearch(input, policy) : undefined;
        const decided = await planRound(policy, {
          model,
          graph,
          scores,
          round: input.round,
          sensitivity,
          weights: input.weights,
          objectiveBase: input.objectiveBase,
          ratioScale: input.ratioScale,
          scheduleRound: input.scheduleRound,
          search: searched?.result,
          baselineFlops: async () => {
            const base = await art.loadModel(input.baselineModel ?? baselineModelDir(input.campaignId));
            try {
              return modelCost(base).flops;
            } finally {
              base.dispose();
            }
          },
        });
        let allocation: (ArtifactRef & { ref: string }) | undefined;
        if (decided.allocation) {
          const relAlloc = path.join(roundDir(input.runId, input.round), 'allocation.json');
          writeFileAtomic(art.abs(relAlloc), JSON.stringify(decided.allocation, null, 2));
          allocation = await art.publishFile('allocation', relAlloc);
        }
        const pruned = await pruneModel(model, decided.plan, graph);
        try {
          // least-squares reconstruction (pruning.reconstruct images of the training split, drawn by the seed and the schedule round)
          const images = input.spec.pruning.reconstruct ?? 0; // specs of older versions have none
          const used = Math.min(images, data(input.spec).train.n); // at most the training split
          const all = images > 0 ? await reconstructOn(input.spec, used, model, pruned, decided.plan, graph, input.scheduleRound ?? input.round) : [];
          const refit = all.filter((l) => !l.skipped);
          const notes = [
            ...(refit.length
              ? [
                  `reconstructed ${refit.length} layer(s) on ${used} training images: relative output error on them ${refit.map((l) => `${l.layer} ${l.before.toPrecision(2)}→${l.after.toPrecision(2)}`).join(', ')}`,
                ]
              : []),
            ...all.filter((l) => l.skipped).map((l) => `not reconstructed: ${l.layer} (${l.skipped})`),
          ];
          const rel = path.join(roundDir(input.runId, input.round), 'pruned');
          const saved = await art.publishModel('model', rel, await saveModel(pruned, art.abs(rel)));
          const cost = modelCost(pruned);
          const channels = layerChannels(pruned);
          return {
            model: saved.ref,
            channels,
            metrics: {
              ...decided.metrics,
              ...(searched ? { widthSearchReused: searched.reused ? 1 : 0 } : {}),
              ...(refit.length
                ? {
                    reconstructedLayers: refit.length,
                    reconstructErrorBefore: refit.reduce((x, l) => x + l.before, 0) / refit.length,
                    reconstructErrorAfter: refit.reduce((x, l) => x + l.after, 0) / refit.length,
                  }
                : {}),
              channelsRemoved: Object.entries(decided.plan).reduce((a, [name, kept]) => a + graph.groupByName(name)!.size - kept.length, 0),
              params: cost.params,
              flops: cost.flops,
              bytes: cost.bytes,
              ...channelMetrics(channels),
            },
            ...(notes.length ? { notes } : {}),
            artifacts: [saved, ...(allocation ? [allocation] : [])].map(artifactOf),
          };
        } finally {
          model.dispose();
          pruned.dispose();
        }
      });
    },

    /** Recovers accuracy; checkpoints every epoch and resumes from the newest checkpoint after a crash. */
    async finetune(input: StageInput): Promise<StageResult> {
      return runStage(async (backend) => {
        const { spec } = input;
        const dir = roundDir(input.runId, input.round);
        const p = spec.pruning;
        // the recipe of the schedule's round (a retried round is the same schedule round; histories from before
        // the workflow passed it: the round number)
        const recipe = finetuneRecipeOf(p, input.scheduleRound ?? input.round, taskSpecOf(spec.task).type);
        trainRecipeOf(recipe, spec, undefined); // a task the recipe cannot train fails here, before the teacher is loaded
        // the teacher: the run's unpruned baseline, loaded once on this thread (the training threads get its logits)
        const teacher = recipe.distill ? await art.loadModel(input.baselineModel ?? baselineModelDir(input.campaignId)) : undefined;
        let t: Awaited<ReturnType<typeof trainResumable>>;
        try {
          t = await trainResumable(
            art,
            async () => {
              const m = await art.loadModel(input.model);
              // this worker's backend may not train every layer the baseline's did: fail at once naming it, never in a training thread
              const problems = trainingProblems(m, backend);
              if (problems.length) {
                m.dispose();
                throw new ModelError(problems.join('; '));
              }
              return m;
            },
            path.join(dir, 'finetune-checkpoints'),
            {
              epochs: recipe.epochs ?? 1,
              batchSize: p.batchSize,
              learningRate: recipe.learningRate,
              seed: spec.seed + input.round,
              keepCheckpoints: spec.execution.keepCheckpoints,
              recipe: trainRecipeOf(recipe, spec, teacher),
            },
            data(spec).train,
          );
        } finally {
          teacher?.dispose();
        }
        try {
          const rel = path.join(dir, 'finetuned');
          const saved = await art.publishModel('model', rel, await saveModel(t.model, art.abs(rel)));
          return {
            model: saved.ref,
            resumedFromStep: t.result.resumedFromStep,
            metrics: {
              finetuneSteps: t.result.steps,
              samplesPerSecond: t.result.samplesPerSecond,
              trainGraph: t.result.mode === 'graph' ? 1 : 0,
              // which of the schedule's rounds this recipe was for (export says the recipe from it; absent in histories from before)
              ...(input.scheduleRound !== undefined ? { scheduleRound: input.scheduleRound } : {}),
            },
            notes: modeNotes(t.result, (await initBackend()).name),
            series: { trainLoss: t.result.epochLoss, batchLoss: t.result.batchLoss },
            artifacts: [artifactOf(saved)],
          };
        } finally {
          t.model.dispose();
        }
      });
    },

    /** Validation accuracy decides; test accuracy is what users see. Breaking a constraint rolls back. */
    async validate(input: StageInput & { baselineValAccuracy: number }): Promise<ValidateResult> {
      return runStage(async () => {
        const ds = data(input.spec);
        const model = await art.loadModel(input.model);
        try {
          const val = await evaluate(model, ds.val);
          const test = await evaluate(model, ds.test);
          const drop = (input.baselineValAccuracy - val.accuracy) * 100;
          const max = input.spec.constraints.maxAccuracyDrop;
          const ok = !overLimit(drop, max); // a drop of exactly the limit is within it
          return {
            ok,
            reason: ok ? undefined : `validation accuracy dropped ${drop.toFixed(2)} points (max ${max})`,
            metrics: {
              accuracy: test.accuracy,
              loss: test.loss,
              valAccuracy: val.accuracy,
              valLoss: val.loss,
              accuracyDrop: drop,
              ...(test.mae !== undefined ? { mae: test.mae, valMae: val.mae! } : {}),
            },
          };
        } finally {
          model.dispose();
        }
      });
    },

    /**
     * Post-training 8-bit weights, two variants, each one's accuracy measured on exactly its written
     * weights: `uint8` — the stock tfjs quantized manifest (one min/scale per tensor) that stock
     * `tf.loadLayersModel` dequantizes itself: the 8-bit variant hardware-adapt may deploy
     * (`int8Accuracy`, `int8Bytes`); `int8-per-channel` — per-channel int8 kernels in a manifest only
     * prunewise's loader reads, kept for comparison and never deployed (`int8PerChannel…`).
     */
    async quantize(input: StageInput): Promise<StageResult> {
      return runStage(async () => {
        const ds = data(input.spec);
        const model = await art.loadModel(input.model);
        const dir = roundDir(input.runId, input.round);
        const rel = path.join(dir, 'uint8');
        const relPc = path.join(dir, 'int8-per-channel');
        const accuracyOf = async (ref: string, split = ds.test) => {
          const q = await art.loadModel(ref); // what the files hold, dequantized (checked against their key)
          try {
            return (await evaluate(q, split)).accuracy;
          } finally {
            q.dispose();
          }
        };
        try {
          const saved = await art.publishModel('model-uint8', rel, await saveExport(model, art.abs(rel), 'uint8'));
          const pcWeights = saveInt8(model, art.abs(relPc));
          const acc = await accuracyOf(saved.ref);
          const valAcc = await accuracyOf(saved.ref, ds.val); // decisions (J) use validation, like the float32 variant's
          // the per-channel folder as just written here (checked write); published below with its prunewise.json
          const pc = await loadModel(art.abs(relPc)).catch((e: Error) => {
            throw new ArtifactError(`artifact ${relPc}: ${e.message}`);
          });
          let accPc: number;
          try {
            accPc = (await evaluate(pc, ds.test)).accuracy;
          } finally {
            pc.dispose();
          }
          writeFileAtomic(
            art.abs(path.join(relPc, 'prunewise.json')),
            JSON.stringify(
              {
                version: PRUNEWISE_JSON_VERSION,
                source: parseRef(input.model).name,
                dtype: 'int8-per-channel',
                deployable: false,
                loader:
                  'prunewise only (ml/models.ts loadModel dequantizes the `prunewise` note of each kernel); stock tfjs loadLayersModel cannot read this manifest',
                accuracy: { value: accPc, measured: true, split: 'test', on: 'exactly these weight files' },
              },
              null,
              2,
            ),
          );
          const savedPc = await art.publishModel('model-int8-per-channel', relPc, pcWeights); // with its prunewise.json
          return {
            model: saved.ref,
            metrics: { int8Accuracy: acc, int8ValAccuracy: valAcc, int8Bytes: saved.bytes, int8PerChannelAccuracy: accPc, int8PerChannelBytes: savedPc.bytes },
            artifacts: [saved, savedPc].map(artifactOf),
          };
        } finally {
          model.dispose();
        }
      });
    },

    /**
     * Measures the speedup against the baseline (and energy) on the target per the measuring policy
     * (ml/measure.ts) and writes the deployable folder: float32, or the stock tfjs uint8 variant —
     * both load in stock `tf.loadLayersModel` — with a prunewise.json saying what each number is.
     * `baselineLatencyMs`: the campaign's one baseline median (the model latency is it ÷ the speedup);
     * `deployedAccuracy`: the test accuracy measured on exactly the weights deployed.
     */
    async hardwareAdapt(
      input: StageInput & { int8Model?: string; useInt8: boolean; baselineLatencyMs?: number; deployedAccuracy?: number },
    ): Promise<StageResult> {
      return runStage(async (backend) => {
        const chosen = input.useInt8 && input.int8Model ? input.int8Model : input.model;
        const runtime = runtimeOf(input.spec);
        // fetched from the artifact store where this (device) worker has no copy, and verified
        const chosenDir = await art.local(chosen);
        const baselineRef = input.baselineModel ?? baselineModelDir(input.campaignId);
        const baselineDirAbs = await art.local(baselineRef);
        const model = await art.loadModel(chosen);
        const baseline = await art.loadModel(baselineRef);
        try {
          const t = input.spec.target;
          const ctx = Context.current();
          // timed on the deployment runtime, the saved folders loaded there (never this worker's training backend);
          // tflite times an 8-bit round as full-integer int8 (its real kernels), calibrated on validation inputs
          const tfliteInt8 = runtime === 'tflite' && input.useInt8 && !!input.int8Model;
          const open = () =>
            openRuntime(runtime, {
              baseline: baselineDirAbs,
              candidate: chosenDir,
              batchSize: t.batchSize,
              ...(tfliteInt8 ? { candidateVariant: 'int8' as const, calibration: calibrationInputs(data(input.spec)) } : {}),
            });
          const m = await measureCandidate(model, baseline, t, measureOf(t), input.useInt8, open, input.baselineLatencyMs, (pairs) => {
            if (pairs % 50 === 0) beat(ctx, { step: pairs, what: 'latency pairs' });
          });
          const rel = deployableDir(input.runId, input.round);
          const partial = art.abs(`${rel}.partial`);
          fs.rmSync(partial, { recursive: true, force: true });
          fs.cpSync(chosenDir, partial, { recursive: true });
          fs.rmSync(path.join(partial, 'prunewise.json'), { force: true });
          const uint8 = input.useInt8 && !!input.int8Model;
          writeFileChecked(
            path.join(partial, 'prunewise.json'),
            JSON.stringify(
              {
                version: PRUNEWISE_JSON_VERSION,
                source: parseRef(chosen).name,
                dtype: uint8 ? 'uint8' : 'float32',
                format: uint8 ? 'tfjs layers-model, stock uint8 quantized weights (one min/scale per tensor)' : 'tfjs layers-model, float32 weights',
                loader: '@tensorflow/tfjs loadLayersModel (stock; no prunewise code needed)',
                target: t.name,
                runtime: m.runtime ?? { runtime, note: 'the latency is an estimate: nothing was timed on the runtime' },
                ...(runtime === 'tflite' && m.runtime
                  ? {
                      timedAs: `these weights converted to ${tfliteInt8 ? 'full-integer int8' : 'float32'} TFLite (ml/py/deploy.py); the accuracy here is the tfjs files'. \`prunewise export --format ${tfliteInt8 ? 'tflite-int8' : 'tflite'}\` writes that TFLite file with its own measured accuracy`,
                    }
                  : {}),
                trainingBackend: backend,
                // how the fine-tuning that produced these weights trained (campaign pruning.finetune / pruning.sparsity, defaults filled in)
                finetune: (() => {
                  const r = finetuneRecipeOf(input.spec.pruning, input.scheduleRound ?? input.round, taskSpecOf(input.spec.task).type);
                  return { ...r, summary: describeRecipe(r) };
                })(),
                input: inputContract(data(input.spec), input.spec),
                ...(input.deployedAccuracy !== undefined
                  ? { accuracy: { value: input.deployedAccuracy, measured: true, split: 'test', on: 'exactly these weight files' } }
                  : {}),
                ...m.manifest,
              },
              null,
              2,
            ),
          );
          fs.rmSync(art.abs(rel), { recursive: true, force: true });
          fs.renameSync(partial, art.abs(rel));
          return { metrics: m.metrics, artifacts: [artifactOf(await art.describe('deployable', rel))] };
        } finally {
          model.dispose();
          baseline.dispose();
        }
      });
    },
  };
}

export type ComputeActivities = ReturnType<typeof createComputeActivities>;

/**
 * The version of the prunewise.json files written next to models (deployable folders, the
 * int8-per-channel variant, `export`): 2 = with `version`, `source` an artifact name (files without
 * the field are version 1, whose `source` was a home-relative path).
 */
export const PRUNEWISE_JSON_VERSION = 2;

/** On the native backend, why a training ran op by op rather than in graph mode (nothing on wasm or cpu, which have no graph mode). */
function modeNotes(r: TrainResult, backend: string): string[] {
  return r.mode === 'eager' && backend.startsWith('tensorflow') && r.eagerBecause ? [`trained op by op, not in graph mode: ${r.eagerBecause}`] : [];
}

/** What SQLite records of an artifact: its name, size, sha256 and store key (not the `<name>@<key>` ref the workflow carries). */
const artifactOf = (a: ArtifactRef & { ref?: string }): ArtifactRef => ({ kind: a.kind, path: a.path, bytes: a.bytes, sha256: a.sha256, key: a.key });
