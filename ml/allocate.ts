// Weight-driven allocation (NetAdapt-style, Yang et al. 2018): how much of each group to remove
// so that the round improves J(w) the most, instead of one ratio for every group.
//
// Sensitivity (measured once per round, on the current model): for each prunable group and each
// trial ratio, the group alone is pruned (no fine-tuning) and we measure the validation error on
// a subset, the weight bytes and FLOPs (counted), the latency (PREDICTED by the campaign's frozen
// latency table, ml/latency-table.ts — or, without a table, measured side by side with the
// unpruned model on this backend) and the energy (estimated, horowitz-45nm model).
// Allocation: each group's trial is scored by its ΔJ(w) — costs normalised by the campaign's
// baseline, the error rise discounted by the share fine-tuning is expected to win back — and every
// group takes its best trial if that lowers J. Trials are assumed additive (an estimate; the round's
// fine-tune, validation and measurement then report what really happened).
import type * as tfl from '@tensorflow/tfjs-layers';
import { estimateEnergyJoules, modelCost } from './cost';
import type { Split } from './data';
import type { Graph } from './graph';
import { plannedFlops, planLocal, type PlanOptions } from './plan';
import { pruneModel, type KeepPlan } from './prune';
import { objectiveJ, type ObjectiveValues, type Weights } from '../core';
import { boundedLatencyDelta, predictLatencyMs, type LatencyTable } from './latency-table';
import { measureLatencyInterleaved } from './measure';
import { evaluate } from './train';

export interface GroupTrial {
  group: string;
  ratio: number;
  /** channels the group keeps */
  keep: number[];
  /** validation-error rise (0–1) without fine-tuning, measured */
  dError: number;
  /** weight bytes removed (negative), counted */
  dBytes: number;
  dFlops: number;
  /** latency change at the target batch size (negative = faster): predicted by the latency table (Sensitivity.latency) or measured side by side */
  dLatencyMs: number;
  /** energy change per inference, estimated (horowitz-45nm) */
  dEnergyJ: number;
}

export interface Sensitivity {
  /** the current model's values the deltas are relative to */
  current: { error: number; bytes: number; flops: number; latencyMs: number; energyJ: number };
  /** one per (group, trial ratio) */
  trials: GroupTrial[];
  latencyBatchSize: number;
  /** validation images each trial was scored on (absent in older scores.json) */
  samples?: number;
  /** where current.latencyMs and the trials' dLatencyMs come from (absent in older scores.json: measured; none: not taken) */
  latency?: 'predicted' | 'measured' | 'none';
  /** predicted: the table's key (sha256) and the baseline's latency in the table's terms, ms */
  latencyTable?: string;
  baselineLatencyMsPredicted?: number;
}

export interface SensitivityOptions {
  ratios: number[];
  plan: PlanOptions;
  latencyBatchSize: number;
  latencyRuns: number;
  /** the campaign's frozen latency table: trials' latencies are predicted from it, nothing is timed */
  latencyTable?: { table: LatencyTable; sha256: string };
  /** no latency at all (a FLOPs-targeted allocation, allocateForFlops): dLatencyMs 0, nothing timed */
  noLatency?: boolean;
  /** called after each trial (progress, heartbeats) */
  onTrial?: (done: number, total: number) => void | Promise<void>;
}

export async function measureSensitivity(
  model: tfl.LayersModel,
  graph: Graph,
  scores: Record<string, number[]>,
  val: Split,
  o: SensitivityOptions,
): Promise<Sensitivity> {
  const cost = modelCost(model);
  const error = 1 - (await evaluate(model, val)).accuracy;
  const trials: Array<{ group: string; ratio: number; keep: number[] }> = [];
  for (const g of graph.groups) {
    const seen = new Set<number>();
    for (const ratio of o.ratios) {
      const keep = planLocal(graph, scores, ratio, o.plan)[g.name];
      if (!keep || seen.has(keep.length)) continue; // protected, at its floor, or the same as a smaller ratio
      seen.add(keep.length);
      trials.push({ group: g.name, ratio, keep });
    }
  }
  const done: GroupTrial[] = [];
  let baseLatency = 0;
  let latencyMeasurements = 0;
  const lt = o.latencyTable;
  const predictedCurrent = lt ? predictLatencyMs(model, lt.table) : undefined;
  for (const [i, t] of trials.entries()) {
    const plan: KeepPlan = { [t.group]: t.keep };
    const pruned = await pruneModel(model, plan, graph);
    try {
      const c = modelCost(pruned);
      const e = 1 - (await evaluate(pruned, val)).accuracy;
      let dLatencyMs: number;
      if (o.noLatency) {
        dLatencyMs = 0;
      } else if (lt && predictedCurrent) {
        const g = graph.groupByName(t.group)!;
        dLatencyMs = boundedLatencyDelta(predictedCurrent, predictLatencyMs(pruned, lt.table), [...g.producers, ...g.followers], lt.table);
      } else {
        const [lb, lp] = await measureLatencyInterleaved([model, pruned], o.latencyBatchSize, 2, o.latencyRuns);
        baseLatency += lb.medianMs;
        latencyMeasurements++;
        dLatencyMs = lp.medianMs - lb.medianMs;
      }
      done.push({
        group: t.group,
        ratio: t.ratio,
        keep: t.keep,
        dError: e - error,
        dBytes: c.bytes - cost.bytes,
        dFlops: c.flops - cost.flops,
        dLatencyMs,
        dEnergyJ: estimateEnergyJoules(c) - estimateEnergyJoules(cost),
      });
    } finally {
      pruned.dispose();
    }
    await o.onTrial?.(i + 1, trials.length);
  }
  return {
    current: {
      error,
      bytes: cost.bytes,
      flops: cost.flops,
      latencyMs: predictedCurrent ? predictedCurrent.totalMs : latencyMeasurements ? baseLatency / latencyMeasurements : 0,
      energyJ: estimateEnergyJoules(cost),
    },
    trials: done,
    latencyBatchSize: o.latencyBatchSize,
    samples: val.n,
    ...(o.noLatency
      ? { latency: 'none' as const }
      : lt
        ? { latency: 'predicted' as const, latencyTable: lt.sha256, baselineLatencyMsPredicted: lt.table.baselineMs }
        : { latency: 'measured' as const }),
  };
}

/**
 * Estimated ΔJ(w) of one trial if the round took it: J(w) (core/objective.ts, normalised to the
 * campaign's baseline `base`) of the current model moved by the trial's deltas, minus J(w) of the
 * current model. `recovery`: share of the error rise fine-tuning is expected to win back.
 */
export function trialDeltaJ(t: GroupTrial, w: Weights, current: ObjectiveValues, base: ObjectiveValues, recovery: number): number {
  const after: ObjectiveValues = {
    error: current.error + Math.max(0, t.dError) * (1 - recovery),
    bytes: current.bytes + t.dBytes,
    latencyMs: current.latencyMs + t.dLatencyMs,
    energyJ: current.energyJ + t.dEnergyJ,
  };
  return objectiveJ(w, after, base) - objectiveJ(w, current, base);
}

export interface Allocation {
  plan: KeepPlan;
  /** the chosen trial per group (groups that keep everything are absent) */
  chosen: Array<GroupTrial & { deltaJ: number }>;
  /** estimated ΔJ of the whole plan (sum of the chosen trials) */
  estimatedDeltaJ: number;
}

/**
 * Each group takes the trial with the lowest ΔJ(w), if it lowers J at all. With predicted latencies
 * the latency term is normalised by the baseline's latency in the table's terms (predicted deltas
 * over a predicted baseline), never mixed with a measured one.
 */
export function allocate(sens: Sensitivity, w: Weights, base: ObjectiveValues, recovery: number): Allocation {
  if (sens.latency === 'predicted' && sens.baselineLatencyMsPredicted) base = { ...base, latencyMs: sens.baselineLatencyMsPredicted };
  const best = new Map<string, GroupTrial & { deltaJ: number }>();
  for (const s of sens.trials) {
    const deltaJ = trialDeltaJ(s, w, sens.current, base, recovery);
    const cur = best.get(s.group);
    if (deltaJ < 0 && (!cur || deltaJ < cur.deltaJ)) best.set(s.group, { ...s, deltaJ });
  }
  const chosen = [...best.values()].sort((a, b) => a.deltaJ - b.deltaJ);
  const plan: KeepPlan = {};
  for (const c of chosen) plan[c.group] = c.keep;
  return { plan, chosen, estimatedDeltaJ: chosen.reduce((a, c) => a + c.deltaJ, 0) };
}

/**
 * A FLOPs budget spent where accuracy suffers least: from the measured sensitivity (each group
 * alone pruned at each trial ratio, no fine-tuning), greedily move the group whose next larger trial
 * costs the least validation error per FLOP removed (FLOPs past what is still to remove not counted;
 * ties: the smaller step), until at least `flopsToRemove` FLOPs are gone —
 * the resource-constrained greedy of NetAdapt (Yang et al., "NetAdapt: Platform-Aware Neural Network
 * Adaptation for Mobile Applications", ECCV 2018) with trials assumed additive. A trial that removes
 * no more FLOPs than the group's current one is skipped. When every trial together removes less than
 * asked, the plan takes them all (`reached` false).
 * @param flopsToRemove FLOPs (= 2 × MACs) to remove from the current model, ≥ 0
 */
export function allocateForFlops(
  sens: Sensitivity,
  flopsToRemove: number,
): { plan: KeepPlan; removedFlops: number; estimatedDError: number; reached: boolean } {
  const byGroup = new Map<string, GroupTrial[]>();
  for (const t of sens.trials) {
    const ts = byGroup.get(t.group);
    if (ts) ts.push(t);
    else byGroup.set(t.group, [t]);
  }
  for (const ts of byGroup.values()) ts.sort((a, b) => a.dFlops - b.dFlops || a.ratio - b.ratio); // most FLOPs removed first
  const at = new Map<string, GroupTrial>(); // the trial each group has taken so far
  let removed = 0;
  let dError = 0;
  for (;;) {
    if (removed >= flopsToRemove) break;
    let best: { t: GroupTrial; cost: number; gain: number; dErr: number } | undefined;
    for (const [g, ts] of byGroup) {
      const cur = at.get(g);
      const curFlops = cur ? -cur.dFlops : 0;
      const curErr = cur ? Math.max(0, cur.dError) : 0;
      // the cheapest next step of this group: the trial with the least error per FLOP beyond the current one
      for (const t of ts) {
        const gain = -t.dFlops - curFlops;
        if (gain <= 0) continue;
        const dErr = Math.max(0, t.dError) - curErr;
        // FLOPs beyond what is still to remove earn nothing: a big step is not preferred for its excess
        const cost = dErr / Math.min(gain, flopsToRemove - removed);
        if (!best || cost < best.cost || (cost === best.cost && gain < best.gain)) best = { t, cost, gain, dErr };
      }
    }
    if (!best) break;
    at.set(best.t.group, best.t);
    removed += best.gain;
    dError += best.dErr;
  }
  const plan: KeepPlan = {};
  for (const [g, t] of at) plan[g] = t.keep;
  return { plan, removedFlops: removed, estimatedDError: dError, reached: removed >= flopsToRemove };
}

/**
 * allocateForFlops until the pruned architecture really removes `fraction` of the current model's
 * FLOPs: the trials' savings are measured one group at a time, and groups coupled through a layer
 * (a consumer's input channels and its own output channels) share a term the sum counts twice, so the
 * sum promises more than the plan removes. The shortfall, counted on the planned architecture, is
 * asked for again (at most 8 times).
 * @param fraction of the current model's FLOPs to remove, 0–1
 */
export async function planForFlopsBySensitivity(
  model: tfl.LayersModel,
  graph: Graph,
  sens: Sensitivity,
  fraction: number,
): Promise<{ plan: KeepPlan; flopsBefore: number; flopsAfter: number; estimatedDError: number; reached: boolean; chosen: GroupTrial[] }> {
  const flops = modelCost(model).flops;
  const want = Math.max(0, fraction) * flops;
  let ask = want;
  let a = allocateForFlops(sens, ask);
  let after = await plannedFlops(model, graph, a.plan);
  for (let i = 0; i < 8 && flops - after < want && a.reached; i++) {
    ask += want - (flops - after);
    a = allocateForFlops(sens, ask);
    after = await plannedFlops(model, graph, a.plan);
  }
  return {
    plan: a.plan,
    flopsBefore: flops,
    flopsAfter: after,
    estimatedDError: a.estimatedDError,
    reached: flops - after >= want,
    chosen: sens.trials.filter((t) => a.plan[t.group] === t.keep),
  };
}
