// Campaign, run and round ids, and where a campaign's artifacts live (paths relative to the home
// folder). One definition each: the CLI, the activities and the dashboard all call these.

/** Campaign ids are `<name>-<yyyymmdd-hhmmss>-<4 hex>` (UTC), unique per submit. */
export function formatCampaignId(name: string, at: Date, hex4: string): string {
  const t = at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${name}-${t}-${hex4}`;
}

/** The baseline run of a campaign: `<campaign>/baseline` (its one round is round 0). */
export const baselineRunId = (campaignId: string): string => `${campaignId}/baseline`;

/** The k-th run (one weight vector, k ≥ 1) of a campaign: `<campaign>/run-<k>`. */
export const runIdOf = (campaignId: string, k: number): string => `${campaignId}/run-${k}`;

/** Splits a run id into its campaign and its run part; undefined when it is not a run id. */
export function parseRunId(runId: string): { campaignId: string; k: number } | undefined {
  const m = /^(.+)\/(?:run-(\d+)|baseline)$/.exec(runId);
  if (!m) return undefined;
  return { campaignId: m[1], k: m[2] === undefined ? 0 : Number(m[2]) };
}

/** Root of all artifacts, relative to the home folder. */
export const ARTIFACTS_DIR = 'artifacts';

/** A campaign's artifact folder. */
export const campaignDir = (campaignId: string): string => `${ARTIFACTS_DIR}/${campaignId}`;

/** The baseline's folder (its model and training checkpoints). */
export const baselineDir = (campaignId: string): string => `${campaignDir(campaignId)}/baseline`;

/** The unpruned model every run starts from and is compared to (tfjs model.json + weights.bin). */
export const baselineModelDir = (campaignId: string): string => `${baselineDir(campaignId)}/model`;

/** The campaign's latency table (ml/latency-table.ts): measured once after the baseline, then frozen; its sha256 is its key. */
export const latencyTablePath = (campaignId: string): string => `${campaignDir(campaignId)}/latency-table.json`;

/** One round's folder: scores, allocation, pruned, fine-tuned, int8 and deployable models. */
export const roundDir = (runId: string, round: number): string => `${ARTIFACTS_DIR}/${runId}/round-${round}`;

/** A round's deployable artifact (what hardware-adapt measured, with prunewise.json). */
export const deployableDir = (runId: string, round: number): string => `${roundDir(runId, round)}/deployable`;
