// How many channels each group keeps: local (the same fraction of every group) or global
// (one ranking across groups, scores normalised per group), with per-group caps, protected
// groups and channel counts rounded to multiples of N; optionally searched to hit a FLOPs target.
import type * as tfl from '@tensorflow/tfjs-layers';
import { modelCost } from './cost';
import type { Graph } from './graph';
import { buildPrunedArchitecture, type KeepPlan } from './prune';

export interface PlanOptions {
  /** never keep fewer channels than this in a group */
  minUnits: number;
  /** keep channel counts multiples of N (fast kernels like round numbers) */
  roundTo?: number;
  /**
   * roundTo was chosen for the deployment runtime (`pruning.roundTo: auto`, ml/round.ts), not set by
   * the user: a group smaller than 8 × roundTo is rounded to the largest power of two ≤ size / 8
   * instead (groupRoundTo), so rounding never takes more than 1/8 of a group and small groups still shrink
   */
  roundToAdaptive?: boolean;
  /** at most this fraction of a group's channels is removed in one plan */
  maxRatio?: number;
  /** group (or member layer) names left whole */
  protect?: string[];
}

/**
 * The multiple a group of `size` channels keeps its count at: roundTo, or with roundToAdaptive and
 * a group smaller than 8 × roundTo, the largest power of two ≤ size / 8 (at least 1, at most roundTo).
 */
export function groupRoundTo(size: number, o: Pick<PlanOptions, 'roundTo' | 'roundToAdaptive'>): number {
  const r = Math.max(1, o.roundTo ?? 1);
  if (!o.roundToAdaptive || size >= 8 * r) return r;
  let p = 1;
  while (p * 2 <= size / 8) p *= 2;
  return Math.min(p, r);
}

/** Channels a group of `size` keeps when `remove` are asked to go: capped by maxRatio, rounded up to groupRoundTo, at least minUnits. */
export function keepCount(size: number, remove: number, o: PlanOptions): number {
  const cap = Math.floor(size * (o.maxRatio ?? 0.9));
  let keep = size - Math.min(remove, cap);
  const r = groupRoundTo(size, o);
  if (r > 1) keep = Math.ceil(keep / r) * r;
  return Math.min(size, Math.max(keep, Math.min(size, o.minUnits)));
}

export function isProtected(graph: Graph, name: string, o: PlanOptions): boolean {
  const g = graph.groupByName(name)!;
  return (o.protect ?? []).some((p) => p === name || g.producers.includes(p) || g.followers.includes(p));
}

/** The indices of the `n` highest scores (ties: the lower index), in ascending order. */
export function topIndices(scores: number[], n: number): number[] {
  return scores
    .map((v, i) => ({ v, i }))
    .sort((a, b) => b.v - a.v || a.i - b.i)
    .slice(0, n)
    .map((o) => o.i)
    .sort((a, b) => a - b);
}

/**
 * The same plan removing `scale` (0–1) of what it removed in each group: a group that lost r
 * channels loses ⌊r·scale⌋, the highest-scoring removed channels coming back first (with
 * roundTo respected, never past the group's size). Used when a round is retried after a rollback.
 */
export function scalePlan(graph: Graph, scores: Record<string, number[]>, plan: KeepPlan, scale: number, o: PlanOptions): KeepPlan {
  if (scale >= 1) return plan;
  const out: KeepPlan = {};
  for (const [name, keep] of Object.entries(plan)) {
    const size = graph.groupByName(name)!.size;
    let n = size - Math.floor((size - keep.length) * scale);
    const r = groupRoundTo(size, o);
    if (r > 1) n = Math.min(size, Math.ceil(n / r) * r);
    if (n >= size) continue;
    const kept = new Set(keep);
    const back = scores[name]
      .map((v, i) => ({ v, i }))
      .filter((c) => !kept.has(c.i))
      .sort((a, b) => b.v - a.v || a.i - b.i)
      .slice(0, n - keep.length)
      .map((c) => c.i);
    out[name] = [...keep, ...back].sort((a, b) => a - b);
  }
  return out;
}

/** Removes `ratio` of every group's channels (the lowest scores). */
export function planLocal(graph: Graph, scores: Record<string, number[]>, ratio: number, o: PlanOptions): KeepPlan {
  const plan: KeepPlan = {};
  for (const g of graph.groups) {
    if (isProtected(graph, g.name, o)) continue;
    const n = keepCount(g.size, Math.floor(g.size * ratio), o);
    if (n < g.size) plan[g.name] = topIndices(scores[g.name], n);
  }
  return plan;
}

/** One channel in the global ranking: its group, its index there, its score divided by the group's mean. */
interface Ranked {
  g: string;
  i: number;
  v: number;
}

/** Every unprotected channel, lowest normalised score first (ties: the lower index). */
function globalRanking(graph: Graph, scores: Record<string, number[]>, o: PlanOptions): Ranked[] {
  const all: Ranked[] = [];
  for (const g of graph.groups) {
    if (isProtected(graph, g.name, o)) continue;
    const s = scores[g.name];
    const mean = s.reduce((a, b) => a + b, 0) / s.length || 1;
    s.forEach((v, i) => all.push({ g: g.name, i, v: v / mean }));
  }
  return all.sort((a, b) => a.v - b.v || a.i - b.i);
}

/** The plan removing these ranked channels: per group, how many go (keepCount: caps, roundTo, minUnits), the top-scored kept. */
function planRemoving(graph: Graph, scores: Record<string, number[]>, channels: Ranked[], o: PlanOptions): KeepPlan {
  const removeBy = new Map<string, number>();
  for (const c of channels) removeBy.set(c.g, (removeBy.get(c.g) ?? 0) + 1);
  const plan: KeepPlan = {};
  for (const [name, remove] of removeBy) {
    const g = graph.groupByName(name)!;
    const n = keepCount(g.size, remove, o);
    if (n < g.size) plan[name] = topIndices(scores[name], n);
  }
  return plan;
}

/** Removes the `count` globally lowest channels, scores normalised by each group's mean. */
export function planGlobal(graph: Graph, scores: Record<string, number[]>, count: number, o: PlanOptions): KeepPlan {
  return planRemoving(graph, scores, globalRanking(graph, scores, o).slice(0, count), o);
}

/**
 * How far (fraction of the model's FLOPs) a global plan may overshoot its FLOPs target before the channel that
 * crossed it is skipped for the next-ranked ones (planForFlops). One channel of a small net's first layer can
 * carry far more: in LeNet-5, one conv1 channel is up to 14 % of the MACs (its own and the next layer's inputs from it).
 */
export const GLOBAL_OVERSHOOT = 0.01;

/** FLOPs of the architecture a plan leaves (no weights copied). */
export async function plannedFlops(model: tfl.LayersModel, graph: Graph, plan: KeepPlan): Promise<number> {
  const m = await buildPrunedArchitecture(model, plan, graph);
  try {
    return modelCost(m).flops;
  } finally {
    m.dispose();
  }
}

/**
 * Finds the smallest plan that removes at least `fraction` of the model's FLOPs (bisection over the local ratio or the
 * global count). A global plan overshooting by more than `overshoot` (a fraction of this model's FLOPs; default
 * GLOBAL_OVERSHOOT) is then brought within it where the channels' steps allow (landGlobal; otherwise the least overshoot
 * it found). A schedule's rounds pass `scheduleOvershoot`. `fraction` ≤ 0: the empty plan. Returns the plan and the
 * fraction of this model's FLOPs it really removes.
 */
export async function planForFlops(
  model: tfl.LayersModel,
  graph: Graph,
  scores: Record<string, number[]>,
  fraction: number,
  scope: 'local' | 'global',
  o: PlanOptions,
  overshoot = GLOBAL_OVERSHOOT,
): Promise<{ plan: KeepPlan; flopsRemoved: number }> {
  if (fraction <= 0) return { plan: {}, flopsRemoved: 0 };
  const base = modelCost(model).flops;
  const total = graph.groups.reduce((a, g) => a + g.size, 0);
  const ranking = scope === 'global' ? globalRanking(graph, scores, o) : []; // ranked once for every plan tried
  const make = (x: number) => (scope === 'local' ? planLocal(graph, scores, x, o) : planRemoving(graph, scores, ranking.slice(0, Math.round(x * total)), o));
  const removed = async (plan: KeepPlan) => 1 - (await plannedFlops(model, graph, plan)) / base;
  const all = make(1);
  const top = { plan: all, flopsRemoved: await removed(all) };
  if (top.flopsRemoved < fraction) return top; // the caps allow no more
  const found = await smallestPlanRemoving(make, removed, 1, top, fraction, 14);
  if (scope === 'local' || found.flopsRemoved <= fraction + overshoot) return { plan: found.plan, flopsRemoved: found.flopsRemoved };
  return landGlobal(graph, scores, ranking, Math.max(0, Math.round(found.x * total) - 1), fraction, overshoot, o, removed, found);
}

/**
 * How far a FLOPs schedule's round may overshoot its goal (planForFlops' `overshoot`, fractions of the current model's
 * FLOPs): the last round GLOBAL_OVERSHOOT; an earlier one up to what is left before the schedule's final `target` (a
 * fraction of the baseline's FLOPs; `baselineOverCurrent` = baseline FLOPs / current FLOPs), at least GLOBAL_OVERSHOOT. Landing fills a gap with the cheapest
 * channels in rank order, so landing every round thinned LeNet-5's dense layers to 18–22 and 6–10 units (eleventh ablation,
 * README); an earlier round's overshoot short of the target is taken off by the later rounds' goals instead.
 */
export function scheduleOvershoot(goal: number, target: number, baselineOverCurrent: number, last: boolean): number {
  const finalGoal = 1 - (1 - target) * baselineOverCurrent;
  return last ? GLOBAL_OVERSHOOT : Math.max(GLOBAL_OVERSHOOT, finalGoal - goal);
}

/**
 * A global plan that overshoots its target by more than `overshoot` (`found`, the smallest prefix of `ranking` that
 * reaches it, `start` + 1 channels long) brought nearer: keep the prefix below the target, then walk the ranking on past the channel that crossed it,
 * taking each channel whose removal stays below the target, stopping at the first that lands within `overshoot` above
 * it and skipping those that overshoot further (and, as removal only grows, every later channel of their group). If
 * none lands, the least overshoot among the plans tried. Cost: one model build per channel walked whose group's kept
 * count changes (roundTo and caps make most additions free), at most the ranking's length.
 */
async function landGlobal(
  graph: Graph,
  scores: Record<string, number[]>,
  ranking: Ranked[],
  start: number,
  fraction: number,
  overshoot: number,
  o: PlanOptions,
  removed: (plan: KeepPlan) => Promise<number>,
  found: { plan: KeepPlan; flopsRemoved: number; x: number },
): Promise<{ plan: KeepPlan; flopsRemoved: number }> {
  const size = (g: string) => graph.groupByName(g)!.size;
  let best = { plan: found.plan, flopsRemoved: found.flopsRemoved };
  // `start`: the smallest prefix reaching the target is found's count; the one before it stays below the target (checked:
  // with more than 2^14 channels the bisection may not resolve single channels); the next channel gives `found` itself
  const taken = ranking.slice(0, start);
  if ((await removed(planRemoving(graph, scores, taken, o))) >= fraction) return best;
  const removeBy = new Map<string, number>();
  for (const c of taken) removeBy.set(c.g, (removeBy.get(c.g) ?? 0) + 1);
  const overshooting = new Set<string>([ranking[start].g]);
  for (let k = start + 1; k < ranking.length; k++) {
    const c = ranking[k];
    if (overshooting.has(c.g)) continue;
    const n = removeBy.get(c.g) ?? 0;
    if (keepCount(size(c.g), n + 1, o) !== keepCount(size(c.g), n, o)) {
      const plan = planRemoving(graph, scores, [...taken, c], o);
      const r = await removed(plan);
      if (r > fraction + overshoot) {
        overshooting.add(c.g);
        if (r < best.flopsRemoved) best = { plan, flopsRemoved: r };
        continue;
      }
      if (r >= fraction) return { plan, flopsRemoved: r };
    }
    taken.push(c);
    removeBy.set(c.g, n + 1);
  }
  return best;
}

/**
 * Bisection over x in (0, hi] for the smallest x whose plan `make(x)` removes at least `fraction` (`removedOf` a plan's
 * FLOPs fraction removed, non-decreasing in x), in `iterations` halvings; `top` is make(hi) and its fraction, which must
 * reach `fraction` (the caller decides what to do when it does not). Returns the last plan found that reaches it, and its x.
 */
export async function smallestPlanRemoving(
  make: (x: number) => KeepPlan,
  removedOf: (plan: KeepPlan) => Promise<number>,
  hi: number,
  top: { plan: KeepPlan; flopsRemoved: number },
  fraction: number,
  iterations: number,
): Promise<{ plan: KeepPlan; flopsRemoved: number; x: number }> {
  let best = { ...top, x: hi };
  let lo = 0;
  for (let it = 0; it < iterations; it++) {
    const mid = (lo + hi) / 2;
    const plan = make(mid);
    const r = await removedOf(plan);
    if (r >= fraction) {
      hi = mid;
      best = { plan, flopsRemoved: r, x: mid };
    } else lo = mid;
  }
  return best;
}

/**
 * Cumulative fraction of the baseline FLOPs to have removed after `round` of `rounds`:
 * one-shot: all at once; linear: equal steps; agp: Zhu & Gupta's cubic schedule (2017), fast first.
 */
export function scheduledReduction(schedule: 'one-shot' | 'linear' | 'agp', target: number, round: number, rounds: number): number {
  const t = Math.min(1, round / rounds);
  if (schedule === 'one-shot') return target;
  if (schedule === 'linear') return target * t;
  return target * (1 - (1 - t) ** 3);
}
