// Weight vectors of a campaign: the explicit ones plus a simplex lattice (Scheffé's {m, k} lattice:
// every vector of weights i/k that sum to 1 over m objectives), without duplicates.
import { zeroWeights, type ObjectiveName, type Weights } from '../core';

export function simplexLattice(k: number, objectives: readonly ObjectiveName[]): Weights[] {
  const out: Weights[] = [];
  const parts = (left: number, m: number): number[][] =>
    m === 1 ? [[left]] : Array.from({ length: left + 1 }, (_, j) => left - j).flatMap((i) => parts(left - i, m - 1).map((rest) => [i, ...rest]));
  for (const p of parts(k, objectives.length)) {
    const w = zeroWeights();
    objectives.forEach((o, i) => (w[o] = p[i] / k));
    out.push(w);
  }
  return out;
}

/** The campaign's runs, in order: explicit vectors first, then the lattice's new ones (first objective heaviest first). */
export function expandWeights(explicit: Weights[], sweep?: { simplex: number; objectives: ObjectiveName[] }): Weights[] {
  const all = [...explicit, ...(sweep ? simplexLattice(sweep.simplex, sweep.objectives) : [])];
  const seen = new Set<string>();
  return all.filter((w) => {
    const key = [w.accuracy, w.size, w.latency, w.energy].map((x) => x.toFixed(9)).join('/');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
