// How a campaign's hardware target is measured (pure: the workflow imports it).
import type { CampaignSpec } from './schema';

/** On the compute worker (local), by roofline estimate from a profile, or by a worker on the device. */
export function measureOf(t: CampaignSpec['target']): 'local' | 'estimate' | 'worker' {
  return t.measure ?? (t.name === 'local' ? 'local' : 'estimate');
}
