// `prunewise pareto`: the campaign's Pareto front as a table (or the JSON contract).
import { formatBudget, withinBudget, type BudgetClause, type ParetoSummary } from '../analysis';

const w = (x: Record<string, number> | null) => (x ? `${x.accuracy}/${x.size}/${x.latency}/${x.energy}` : 'baseline');

/**
 * The speedup column: baseline latency ÷ the model's (core/latency.ts). A round whose paired
 * speedup interval contains 1 has exactly the baseline's latency: "≈ base".
 */
const speedup = (p: ParetoSummary, x: ParetoSummary['points'][number]) =>
  x.round > 0 && x.values.latencyMs === p.baseline.latencyMs && !p.latencyEstimated ? '≈ base' : `${(p.baseline.latencyMs / x.values.latencyMs).toFixed(2)}×`;

/**
 * The summary restricted to a budget (`--max-latency-ms`, `--max-bytes`, `--min-accuracy`): only the
 * candidates within it, and per run's weight vector the recommended one among them — the same
 * function (analysis `withinBudget`) as the dashboard's candidates view, so both agree.
 */
export function applyBudget(p: ParetoSummary, clauses: BudgetClause[]): ParetoSummary & { budget?: string; allCandidates?: number } {
  if (clauses.length === 0) return p;
  const r = withinBudget(
    p.points,
    clauses,
    p,
    p.recommendations.map((x) => ({ runId: x.runId, k: 0, weights: x.weights })),
  );
  const fit = new Set(r.points);
  return {
    ...p,
    budget: formatBudget(clauses),
    allCandidates: p.points.length,
    points: p.points.filter((x) => fit.has(x)),
    recommendations: r.recommendations.map((x) => ({
      runId: x.runId,
      weights: x.weights,
      pick: x.pick ? { runId: x.pick.runId, round: x.pick.round } : null,
      objective: x.objective,
    })),
  };
}

export function formatPareto(p: ParetoSummary & { budget?: string; allCandidates?: number }, all: boolean): string {
  const lines: string[] = [];
  const shown = all || p.budget ? p.points : p.points.filter((x) => x.onFront);
  if (p.budget) lines.push(`budget ${p.budget}: ${p.points.length} candidate(s) fit (front flags are the whole campaign's)`);
  lines.push(
    `${p.allCandidates ?? p.points.length} candidate models (the baseline and every completed round); ${p.front} on the front (${p.frontDistinct} distinct), ${p.front2d} on the error-vs-latency front`,
  );
  lines.push(
    `hypervolume ${p.hypervolumeApprox ? '≈' : ''}${p.hypervolume.toFixed(4)} (objectives divided by the reference: baseline size, latency and energy; baseline validation error + the allowed drop = ${(p.reference.error * 100).toFixed(2)} %)`,
  );
  const energy = p.points.some((x) => x.energyMeasured)
    ? 'energy: measured by RAPL (CPU package, relative to the baseline measured alongside) where the worker had it, else estimated (horowitz-45nm model)'
    : 'energy: estimated (horowitz-45nm model), not measured';
  const latency = p.latencyEstimated
    ? 'latency: estimated (roofline of the target profile), not measured'
    : "latency: the baseline's median ÷ each model's speedup timed in interleaved pairs with it (≈ base: the 95 % interval contains 1, counted as 1)";
  lines.push(`${latency}; ${energy}`);
  lines.push('');
  lines.push(
    `${'run'.padEnd(5)}${'weights a/s/l/e'.padEnd(20)}${'round'.padStart(6)}${'test acc'.padStart(10)}${'val err'.padStart(9)}${'KB'.padStart(9)}${'lat ms'.padStart(9)}${'speedup'.padStart(9)}${'energy µJ'.padStart(11)}${'J(w)'.padStart(8)}  front`,
  );
  for (const x of shown) {
    lines.push(
      `${String(x.k).padEnd(5)}${w(x.weights).padEnd(20)}${String(x.round).padStart(6)}${(x.accuracy === null ? '—' : (x.accuracy * 100).toFixed(2)).padStart(10)}${(x.values.error * 100).toFixed(2).padStart(9)}${(x.values.bytes / 1024).toFixed(1).padStart(9)}${x.values.latencyMs.toFixed(3).padStart(9)}${speedup(p, x).padStart(9)}${(x.values.energyJ * 1e6).toFixed(2).padStart(11)}${(x.objective === null ? '—' : x.objective.toFixed(3)).padStart(8)}  ${x.onFront ? 'all' : ''}${x.onFront2d ? (x.onFront ? ', ' : '') + 'err-lat' : ''}${x.violates.length ? `  rejected: ${x.violates.join(', ')}` : ''}`,
    );
  }
  lines.push('');
  lines.push(`recommended model per weight vector (lowest J(w) within the hard constraints${p.budget ? ' and the budget' : ''}):`);
  for (const r of p.recommendations) {
    const pick = r.pick ? p.points.find((x) => x.runId === r.pick!.runId && x.round === r.pick!.round) : undefined;
    lines.push(
      `  ${w(r.weights).padEnd(20)} → ${pick ? `run ${pick.k} round ${pick.round} (${pick.runId})  J ${r.objective!.toFixed(3)}` : `none within the constraints${p.budget ? ' and the budget' : ''}`}`,
    );
  }
  return lines.join('\n');
}
