// How a campaign's hardware target is measured (pure: the workflow imports it).
import type { CampaignSpec } from './schema';

/** On the compute worker (local), by roofline estimate from a profile, or by a worker on the device. */
export function measureOf(t: CampaignSpec['target']): 'local' | 'estimate' | 'worker' {
  return t.measure ?? (t.name === 'local' ? 'local' : 'estimate');
}

/**
 * Whether the campaign's rounds decide from a latency table (weight-driven allocation): the table
 * is then measured (or read from target.latencyTable) once after the baseline.
 */
export function usesLatencyTable(spec: Pick<CampaignSpec, 'pruning'>): boolean {
  return (spec.pruning.allocation ?? (spec.pruning.schedule === 'per-round' ? 'weights' : 'uniform')) === 'weights';
}
