// The pruner step: which channels a round removes. One policy, in one place (Torch-Pruning's
// "pruner step"): the weight-driven allocation (NetAdapt-style, from the per-group sensitivity
// trials), the per-round ratio (local: the same fraction of every group; global: one ranking), or a
// FLOPs schedule (one-shot / linear / agp towards a fraction of the baseline's FLOPs).
import type * as tfl from '@tensorflow/tfjs-layers';
import type { ObjectiveValues, Weights } from '../core';
import { allocate, planForFlopsBySensitivity, type Sensitivity } from './allocate';
import { allocationOf, AUTO_ROUND_TO, type AllocationKind, type Criterion, type RuntimeName } from './catalog';
import { modelCost } from './cost';
import type { Graph } from './graph';
import { planForFlops, planGlobal, planLocal, scalePlan, scheduledReduction, scheduleOvershoot, type PlanOptions } from './plan';
import type { KeepPlan } from './prune';
import { planRoundTowards, type WidthSearchResult } from './search';

/** The pruning section of a campaign file, as the pruner step reads it. */
export interface PruningPolicy {
  criterion: Criterion;
  scope: 'local' | 'global';
  schedule: 'per-round' | 'one-shot' | 'linear' | 'agp';
  stepRatio: number;
  targetFlopsReduction?: number;
  rounds: number;
  minUnits: number;
  maxLayerRatio: number;
  /** a multiple, or `auto`: the runtime's (AUTO_ROUND_TO[runtime], small groups adaptive) */
  roundTo: number | 'auto';
  /** the deployment runtime (campaign target.runtime) `auto` resolves for; default tfjs-wasm */
  runtime?: RuntimeName;
  protect: string[];
  allocation?: AllocationKind;
  expectedRecovery: number;
  sensitivitySamples: number;
}

export { allocationOf } from './catalog';

/** The channel multiple a policy keeps counts at: its own number, or `auto`: the runtime's (AUTO_ROUND_TO). */
export function roundToOf(p: Pick<PruningPolicy, 'roundTo' | 'runtime'>): { roundTo: number; adaptive: boolean } {
  if (p.roundTo === 'auto') return { roundTo: AUTO_ROUND_TO[p.runtime ?? 'tfjs-wasm'].roundTo, adaptive: true };
  return { roundTo: p.roundTo, adaptive: false };
}

/** The plan limits every policy honours (minUnits, roundTo, maxLayerRatio, protect). */
export const planOptions = (p: PruningPolicy): PlanOptions => {
  const r = roundToOf(p);
  return { minUnits: p.minUnits, roundTo: r.roundTo, ...(r.adaptive ? { roundToAdaptive: true } : {}), maxRatio: p.maxLayerRatio, protect: p.protect };
};

/** Trial ratios of the sensitivity allocation of FLOPs schedules (each group alone, no fine-tuning). */
export const FLOPS_SENSITIVITY_RATIOS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/**
 * The ratios each group's sensitivity is tried at: by weights, half, one and two steps (capped by
 * maxLayerRatio); by sensitivity (FLOPs schedules), FLOPS_SENSITIVITY_RATIOS up to maxLayerRatio.
 */
export const sensitivityRatios = (p: PruningPolicy): number[] =>
  allocationOf(p) === 'sensitivity'
    ? FLOPS_SENSITIVITY_RATIOS.filter((r) => r <= p.maxLayerRatio)
    : [...new Set([p.stepRatio / 2, p.stepRatio, Math.min(2 * p.stepRatio, p.maxLayerRatio)])];

export interface RoundPlan {
  plan: KeepPlan;
  /** metrics describing the decision (allocatedGroups, estimatedDeltaJ) */
  metrics: Record<string, number>;
  /** the weight-driven allocation's record (written next to the round as allocation.json) */
  allocation?: object;
}

export interface RoundContext {
  model: tfl.LayersModel;
  graph: Graph;
  scores: Record<string, number[]>;
  round: number;
  /** from the score stage when the allocation is weight-driven */
  sensitivity?: Sensitivity;
  /** the run's weight vector and the baseline's objective values (weight-driven allocation) */
  weights?: Weights;
  objectiveBase?: ObjectiveValues;
  /** FLOPs per example of the campaign's baseline (FLOPs schedules speak of it); called only when needed */
  baselineFlops: () => Promise<number>;
  /** which of the schedule's rounds this is (1-based; default `round`): rounds rolled back and retried do not advance it */
  scheduleRound?: number;
  /** after rollbacks: remove only this share (0–1] of what the policy chose (default 1) */
  ratioScale?: number;
  /** allocation "search": the widths searched on the baseline (ml/search.ts searchWidths), where the rounds go */
  search?: WidthSearchResult;
}

/**
 * Chooses which channels this round keeps, per the campaign's pruning policy; after a rollback,
 * `ratioScale` halves (per retry) what the policy chose to remove.
 */
export async function planRound(p: PruningPolicy, c: RoundContext): Promise<RoundPlan> {
  const chosen = await choosePlan(p, c);
  const scale = c.ratioScale ?? 1;
  if (scale >= 1) return chosen;
  const plan = scalePlan(c.graph, c.scores, chosen.plan, scale, planOptions(p));
  return {
    ...chosen,
    plan,
    metrics: { ...chosen.metrics, ratioScale: scale },
    // the record says what the policy chose; after a rollback the round removes only ratioScale of it: say what it keeps
    ...(chosen.allocation
      ? {
          allocation: {
            ...chosen.allocation,
            ratioScale: scale,
            keptAfterRollback: Object.fromEntries(c.graph.groups.map((g) => [g.name, plan[g.name]?.length ?? g.size])),
            rollbackNote: `a retry after rollback: this round removes ${scale} of what the figures above chose (ml/plan.ts scalePlan: the highest-scoring removed channels come back first); keptAfterRollback is what each group keeps`,
          },
        }
      : {}),
  };
}

async function choosePlan(p: PruningPolicy, c: RoundContext): Promise<RoundPlan> {
  const opts = planOptions(p);
  if (allocationOf(p) === 'search' && p.schedule !== 'per-round') {
    if (!c.search) throw new Error('allocation "search": no width search was run for this round');
    const s = c.search;
    const last = (c.scheduleRound ?? c.round) >= p.rounds;
    // the schedule walks to what the searched widths remove (at least the target: rounding can overshoot it)
    const goal = await flopsGoal({ ...p, targetFlopsReduction: s.fraction }, c);
    const flops = modelCost(c.model).flops;
    const step = await planRoundTowards(c.model, c.graph, c.scores, s.best.widths, goal, last, opts);
    const uniform = s.candidates.find((x) => x.uniform);
    return {
      plan: step.plan,
      metrics: {
        allocatedGroups: Object.keys(step.plan).length,
        searchCandidates: s.candidates.length,
        searchAccuracy: s.best.accuracy,
        flopsFractionToRemove: goal,
      },
      allocation: {
        allocation: 'search',
        widths: s.best.widths,
        searchFlopsFraction: s.fraction,
        // false: the caps (maxLayerRatio, minUnits, protect) keep every allocation short of targetFlopsReduction
        searchReached: s.reached,
        widthsFlopsRemoved: s.best.flopsRemoved,
        adaptiveBnAccuracy: s.best.accuracy,
        uniformWidths: uniform?.widths ?? null,
        uniformAdaptiveBnAccuracy: uniform?.accuracy ?? null,
        candidates: s.candidates.length,
        flopsBefore: flops,
        flopsFractionToRemove: Math.max(0, goal),
        stepTowardsWidths: step.step,
        note:
          'widths: the channel counts the rounds go to, chosen once on the baseline among `candidates` random allocations and the uniform one that ' +
          'remove searchFlopsFraction of its FLOPs (up to 0.01 more; the chosen widths remove widthsFlopsRemoved), each pruned without fine-tuning, its batch-norm statistics re-estimated on training images and ' +
          'scored by accuracy on validation images (adaptiveBnAccuracy; EagleEye, Li et al. ECCV 2020). Each round goes stepTowardsWidths of the way ' +
          "from this round's model, enough for the round's goal (flopsFractionToRemove of this round's model); the last round goes the whole way.",
      },
    };
  }
  if (allocationOf(p) === 'sensitivity' && p.schedule !== 'per-round') {
    if (!c.sensitivity) throw new Error('allocation "sensitivity": the score stage measured no sensitivity for this round');
    const asked = await flopsGoal(p, c);
    const goal = Math.max(0, asked);
    const a = await planForFlopsBySensitivity(c.model, c.graph, c.sensitivity, goal);
    const { flopsBefore: flops, flopsAfter: after } = a;
    const baseline = await c.baselineFlops();
    return {
      plan: a.plan,
      metrics: { allocatedGroups: Object.keys(a.plan).length, estimatedDError: a.estimatedDError, flopsFractionToRemove: asked },
      allocation: {
        allocation: 'sensitivity',
        // this round, in FLOPs per example (2 × MACs) of the current model
        flopsBefore: flops,
        flopsGoal: flops * (1 - goal),
        flopsAfter: after,
        flopsFractionToRemove: goal,
        flopsFractionRemoved: flops > 0 ? 1 - after / flops : 0,
        reached: a.reached,
        // the schedule, against the campaign's baseline
        baselineFlops: baseline,
        scheduleReductionOfBaseline: 1 - (flops * (1 - goal)) / baseline,
        reductionOfBaselineAfter: 1 - after / baseline,
        sensitivitySamples: c.sensitivity.samples ?? null,
        chosen: a.chosen.map(({ keep, dLatencyMs: _l, dEnergyJ: _e, ...t }) => ({ ...t, keeps: keep.length, of: c.graph.groupByName(t.group)?.size })),
        note:
          "the plan removes at least the round's goal (flopsFractionToRemove, a fraction of this round's model, not of the baseline). " +
          'Each trial prunes one group alone by `ratio` of its channels (keeps of `of` left), without fine-tuning: dError = validation-error rise as a ' +
          "fraction (0.015 = 1.5 points) measured on sensitivitySamples images; dFlops counted. Coupled groups share FLOPs (a layer's input and " +
          "output channels), so the chosen trials' dFlops sum to more than the plan removes; the plan is counted on its own architecture.",
      },
    };
  }
  if (c.sensitivity && c.weights && c.objectiveBase) {
    // weight-driven: each group loses what lowers this run's J(w) most (estimated from the sensitivity trials)
    const a = allocate(c.sensitivity, c.weights, c.objectiveBase, p.expectedRecovery);
    const predicted = c.sensitivity.latency === 'predicted';
    return {
      plan: a.plan,
      metrics: { allocatedGroups: a.chosen.length, estimatedDeltaJ: a.estimatedDeltaJ },
      allocation: {
        weights: c.weights,
        expectedRecovery: p.expectedRecovery,
        estimatedDeltaJ: a.estimatedDeltaJ,
        ...(predicted
          ? { latency: 'predicted', latencyTable: c.sensitivity.latencyTable, baselineLatencyMsPredicted: c.sensitivity.baselineLatencyMsPredicted }
          : { latency: 'measured' }),
        chosen: a.chosen.map(({ keep, dLatencyMs, ...t }) => ({ ...t, [predicted ? 'dLatencyMsPredicted' : 'dLatencyMs']: dLatencyMs, keeps: keep.length })),
        note: predicted
          ? 'dError measured without fine-tuning on a validation subset; dLatencyMsPredicted PREDICTED by the campaign latency table (not a measurement; the model latency is measured in hardware-adapt); dEnergyJ estimated (horowitz-45nm)'
          : 'dError measured without fine-tuning on a validation subset; dLatencyMs measured side by side; dEnergyJ estimated (horowitz-45nm)',
      },
    };
  }
  if (p.schedule === 'per-round') {
    const total = c.graph.groups.reduce((a, g) => a + g.size, 0);
    const plan = p.scope === 'local' ? planLocal(c.graph, c.scores, p.stepRatio, opts) : planGlobal(c.graph, c.scores, Math.round(p.stepRatio * total), opts);
    return { plan, metrics: {} };
  }
  const goal = await flopsGoal(p, c);
  // a global plan lands on the goal in the schedule's last round; an earlier one only stays short of the target (scheduleOvershoot)
  const last = p.schedule === 'one-shot' || (c.scheduleRound ?? c.round) >= p.rounds;
  const overshoot = scheduleOvershoot(goal, p.targetFlopsReduction!, (await c.baselineFlops()) / modelCost(c.model).flops, last);
  return {
    plan: goal > 0 ? (await planForFlops(c.model, c.graph, c.scores, goal, p.scope, opts, overshoot)).plan : {},
    metrics: { flopsFractionToRemove: goal },
  };
}

/** A FLOPs schedule's goal for this round as a fraction of the current model's FLOPs (the schedule speaks of the baseline's). */
async function flopsGoal(p: PruningPolicy, c: RoundContext): Promise<number> {
  if (p.schedule === 'per-round') throw new Error('a per-round schedule has no FLOPs goal');
  return (
    1 -
    (1 - scheduledReduction(p.schedule, p.targetFlopsReduction!, c.scheduleRound ?? c.round, p.rounds)) * ((await c.baselineFlops()) / modelCost(c.model).flops)
  );
}
