// What people see: models against the unpruned baseline (deltas), the runs table's columns and
// the CSV/JSON export columns, the shapes the run and compare pages draw, and the Handlebars
// formatting helpers. Pure: no I/O, no request, no SQL.
import type Handlebars from 'handlebars';
import { OBJECTIVES } from '../core';
import { POINT_FIELDS, type BaselineRow, type CampaignOverview, type RunDetail, type RunQuery, type RunTableRow } from '../db';
import { queryString } from './query';

// ------------------------------------------------------------------ against the baseline

export interface ShownRow extends RunTableRow {
  /** people's tags and note for the run (dashboard run page) */
  tags?: string[];
  note?: string;
  deltaPoints: number | null;
  sizeX: number | null;
  latencyX: number | null;
  energyX: number | null;
  /** what accuracy, size and energy were compared with: the baseline's float32 or its 8-bit (uint8) variant */
  vs: 'float32' | 'uint8';
}

type Deltas = Omit<ShownRow, keyof RunTableRow>;
type ModelValues = { accuracy: number | null; bytes: number | null; latencyMs: number | null; energyJ: number | null; deployedInt8?: boolean };

/**
 * A model against the unpruned baseline, like with like: accuracy change in points and how many
 * times smaller / faster / cheaper, an 8-bit model against the baseline's 8-bit variant and a
 * float32 model against the float32 baseline (`vs` says which). Latency is always against the
 * baseline as timed (tfjs dequantizes 8-bit weights at load: the same float32 arithmetic runs).
 */
export function vsBaseline(v: ModelValues | null | undefined, b: BaselineRow | undefined): Deltas {
  const ratio = (base: number | null | undefined, x: number | null | undefined) => (base != null && x ? base / x : null);
  const ref = v?.deployedInt8 && b?.int8 ? { ...b, ...b.int8 } : b;
  return {
    deltaPoints: v && v.accuracy !== null && ref?.accuracy != null ? (v.accuracy - ref.accuracy) * 100 : null,
    sizeX: ratio(ref?.bytes, v?.bytes),
    latencyX: ratio(b?.latencyMs, v?.latencyMs),
    energyX: ratio(ref?.energyJ, v?.energyJ),
    vs: v?.deployedInt8 && b?.int8 ? 'uint8' : 'float32',
  };
}

/** The summary cards: each best model against the baseline's same variant (like with like). */
export function bestCards(best: CampaignOverview['best'], b: BaselineRow | undefined) {
  const acc = vsBaseline({ ...best, deployedInt8: best.accuracyInt8 }, b);
  const size = vsBaseline({ ...best, deployedInt8: best.bytesInt8 }, b);
  const energy = vsBaseline({ ...best, deployedInt8: best.energyInt8 }, b);
  return {
    accuracy: best.accuracy,
    deltaPoints: acc.deltaPoints,
    accuracyVs: acc.vs,
    sizeX: size.sizeX,
    sizeVs: size.vs,
    latencyX: size.latencyX,
    energyX: energy.energyX,
    energyVs: energy.vs,
  };
}

export function withDeltas(r: RunTableRow, b: BaselineRow | undefined): ShownRow {
  return { ...r, ...vsBaseline(r, b) };
}

/** How the latencies on a page were obtained (`sideBySide`: say what they were timed against). */
export function latencyNote(b: BaselineRow | undefined, sideBySide = false): string {
  if (b?.latencyEstimated) return 'estimated (roofline model of the target profile)';
  return sideBySide
    ? "the baseline's median ÷ the model's speedup timed in interleaved pairs with it on the worker (≈ baseline: its 95 % interval contains 1)"
    : "the baseline's median ÷ the paired speedup, measured on the worker";
}

// ------------------------------------------------------------------ the runs table

const TABLE_COLUMNS: Array<[string, string]> = [
  ['run', 'run'],
  ['w_accuracy', 'w acc'],
  ['w_size', 'w size'],
  ['w_latency', 'w lat'],
  ['w_energy', 'w energy'],
  ['rounds', 'rounds'],
  ['accuracy', 'test acc'],
  ['error', 'val error'],
  ['bytes', 'size'],
  ['latency', 'latency'],
  ['energy', 'energy'],
  ['objective', 'J'],
];

/** The sortable header cells: each links to the table sorted by it (toggling the direction if it is the sort now). */
export function tableColumns(q: Pick<RunQuery, 'sort' | 'dir'>, keep: Record<string, string | number | undefined>) {
  return TABLE_COLUMNS.map(([col, label]) => {
    const active = q.sort === col;
    const nextDir = active && q.dir === 'asc' ? 'desc' : 'asc';
    return {
      col,
      label,
      active,
      dir: q.dir,
      href: queryString({ sort: col, dir: nextDir, ...keep }),
      aria: active ? (q.dir === 'asc' ? 'ascending' : 'descending') : 'none',
    };
  });
}

/** One line of the parallel-coordinates chart: run, its weights (OBJECTIVES order), then its objectives. */
export const parallelRow = (r: RunTableRow): unknown[] => [r.k, ...OBJECTIVES.map((o) => r.weights[o] ?? 0), r.accuracy, r.bytes, r.latencyMs, r.energyJ];

// ------------------------------------------------------------------ exports

const EXPORT_COLUMNS: Array<[string, (x: ShownRow) => unknown]> = [
  ['run', (x) => x.k],
  ['run_id', (x) => x.runId],
  ['state', (x) => x.state],
  ...OBJECTIVES.map((o): [string, (x: ShownRow) => unknown] => [`w_${o}`, (x) => x.weights[o]]),
  ['rounds', (x) => x.rounds],
  ['best_round', (x) => x.bestRound],
  ['test_accuracy', (x) => x.accuracy],
  ['best_test_accuracy', (x) => x.bestAccuracy],
  ['delta_points', (x) => x.deltaPoints],
  ['val_error', (x) => x.valError],
  ['bytes', (x) => x.bytes],
  ['size_x', (x) => x.sizeX],
  ['latency_ms', (x) => x.latencyMs],
  ['latency_x', (x) => x.latencyX],
  ['energy_j', (x) => x.energyJ],
  ['energy_x', (x) => x.energyX],
  ['compared_with', (x) => (x.vs === 'uint8' ? 'uint8 baseline' : 'float32 baseline')],
  ['deployed', (x) => (x.deployedInt8 ? 'uint8' : 'float32')],
  ['energy_measured', (x) => x.energyMeasured],
  ['objective', (x) => x.objective],
  ['pareto', (x) => x.onFront],
  ['front_rounds', (x) => x.frontRounds],
  ['rejected', (x) => x.rejected],
  ['tags', (x) => (x.tags ?? []).join(';')],
  ['note', (x) => x.note ?? ''],
];

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

const csv = (header: readonly string[], rows: unknown[][]) => [header.join(','), ...rows.map((r) => r.map(csvCell).join(','))].join('\n') + '\n';

/** The runs table as CSV, one line per run, columns as EXPORT_COLUMNS. */
export const runsCsv = (rows: ShownRow[]): string =>
  csv(
    EXPORT_COLUMNS.map(([h]) => h),
    rows.map((row) => EXPORT_COLUMNS.map(([, f]) => f(row))),
  );

/** Every candidate model as CSV, fields in POINT_FIELDS order. */
export const pointsCsv = (points: unknown[][]): string => csv(POINT_FIELDS, points);

// ------------------------------------------------------------------ one run

/** The run's rounds against the baseline, led by the baseline itself as round 0 (runs only). */
export function runRounds(d: RunDetail, b: BaselineRow | undefined) {
  return [
    ...(d.kind === 'run' && b
      ? [
          {
            round: 0,
            state: 'completed',
            objective: null,
            label: 'baseline',
            point: { accuracy: b.accuracy, valError: b.valError, bytes: b.bytes, latencyMs: b.latencyMs, energyJ: b.energyJ, onFront: b.onFront, violates: '' },
            flops: b.flops,
            params: b.params,
          },
        ]
      : []),
    ...d.rounds.map((r) => ({
      ...r,
      label: d.kind === 'baseline' ? 'baseline' : `round ${r.round}`,
      flops: r.metrics.flops ?? null,
      params: r.metrics.params ?? null,
    })),
  ].map((r) => ({ ...r, ...vsBaseline(r.point, b) }));
}

/** Per layer: the baseline's width, each round's, and the share kept after the last round. */
export function channelTable(d: RunDetail, roundNos: number[]) {
  return d.channels
    .map((c) => ({
      layer: c.layer,
      before: c.before,
      after: roundNos.map((n) => c.after[n] ?? null),
      last: roundNos.length ? (c.after[roundNos[roundNos.length - 1]] ?? null) : null,
    }))
    .map((c) => ({ ...c, keptPct: c.last !== null && c.before ? (100 * c.last) / c.before : null, shrank: c.last !== null && c.last < c.before }));
}

/** How many stages took more than one attempt, resumed from a checkpoint, or failed. */
export const retriedStages = (d: RunDetail): number =>
  d.stages.filter((s) => (s.attempts ?? 1) > 1 || (s.resumedFromStep ?? 0) > 0 || s.state === 'failed').length;

// ------------------------------------------------------------------ compare

/** A nested object as dotted keys → JSON text (`spec.pruning.rounds` → `5`). */
export function flatten(o: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (o && typeof o === 'object' && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = JSON.stringify(o);
  return out;
}

/** The settings (flattened) that are not the same for every run, each with every run's value. */
export function differingSettings(settings: Array<Record<string, string>>): Array<{ key: string; values: string[] }> {
  const keys = [...new Set(settings.flatMap((s) => Object.keys(s)))].sort();
  return keys
    .filter((k) => new Set(settings.map((s) => s[k] ?? '—')).size > 1)
    .map((k) => ({ key: k, values: settings.map((s) => (s[k] === undefined ? '—' : s[k].replace(/^"(.*)"$/, '$1'))) }));
}

/**
 * One card per selected run: the round selected (a candidate), else its best round (as in the runs
 * table), with absolute values and against its campaign's baseline. Labels carry the campaign's
 * name when the runs come from more than one campaign.
 */
export function compareCards(runs: RunDetail[], baselines: Map<string, BaselineRow | undefined>, rounds: Array<number | undefined> = []) {
  const many = new Set(runs.map((r) => r.campaignId)).size > 1;
  return runs.map((r, i) => {
    const chosen = rounds[i] ?? (r.kind === 'baseline' ? 0 : r.bestRound);
    const best = r.rounds.find((x) => x.round === chosen);
    const who = r.kind === 'baseline' ? 'baseline' : `run-${r.k}`;
    return {
      runId: r.runId,
      campaignId: r.campaignId,
      campaignName: r.campaignName,
      label: `${many ? `${r.campaignName} ` : ''}${who}${rounds[i] !== undefined && r.kind !== 'baseline' ? ` r${rounds[i]}` : ''}`,
      state: r.state,
      bestRound: best?.round ?? null,
      selectedRound: rounds[i] !== undefined,
      point: best?.point ?? null,
      flops: best?.metrics.flops ?? null,
      ...vsBaseline(best?.point, baselines.get(r.campaignId)),
      objective: best?.objective ?? null,
    };
  });
}

/** Per-round curves, each run starting from its baseline (round 0). */
export function compareCurves(runs: RunDetail[], labels: string[], baselines: Map<string, BaselineRow | undefined>) {
  return runs.map((r, i) => {
    const b = baselines.get(r.campaignId);
    const rows = [
      { round: 0, accuracy: b?.accuracy ?? null, flops: b?.flops ?? null, latencyMs: b?.latencyMs ?? null },
      ...r.rounds
        .filter((x) => x.point)
        .map((x) => ({ round: x.round, accuracy: x.point!.accuracy, flops: x.metrics.flops ?? null, latencyMs: x.point!.latencyMs })),
    ];
    return { label: labels[i], runId: r.runId, rows };
  });
}

// ------------------------------------------------------------------ Handlebars helpers

/** The formatting helpers every view uses ('—' for a missing number). */
export function registerHelpers(hb: typeof Handlebars): void {
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  hb.registerHelper('pct', (v: number | null) => (num(v) ? `${(v! * 100).toFixed(2)} %` : '—'));
  hb.registerHelper('fix', (v: number | null, d: number) => (num(v) ? v!.toFixed(d) : '—'));
  hb.registerHelper('signed', (v: number | null) => (num(v) ? `${v! >= 0 ? '+' : ''}${v!.toFixed(2)}` : '—'));
  hb.registerHelper('kb', (v: number | null) => (num(v) ? `${(v! / 1024).toFixed(1)} KB` : '—'));
  hb.registerHelper('energy', (v: number | null) => (num(v) ? (v! >= 1e-3 ? `${(v! * 1e3).toFixed(3)} mJ` : `${(v! * 1e6).toFixed(2)} µJ`) : '—'));
  hb.registerHelper('lat', (v: number | null) => (num(v) ? `${v!.toFixed(3)} ms` : '—'));
  hb.registerHelper('x', (v: number | null) => (num(v) ? `${v!.toFixed(2)}×` : '—'));
  // a latency ratio of exactly 1 is a paired speedup whose interval contains 1 (core/latency.ts)
  hb.registerHelper('latx', (v: number | null) => (num(v) ? (v === 1 ? '≈ baseline' : `${v!.toFixed(2)}×`) : '—'));
  hb.registerHelper('w', (w: Record<string, number> | null, k: string) => (w && w[k] !== undefined ? String(w[k]) : '—'));
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hb.registerHelper('vsOf', (p: { deployedInt8?: boolean } | null) => (p?.deployedInt8 ? 'uint8' : 'float32'));
  // like with like: an 8-bit model's ratio is against the baseline's 8-bit variant, and says so
  hb.registerHelper(
    'vs',
    (v: string) =>
      new hb.SafeString(v === 'uint8' ? ` <abbr class="muted" title="an 8-bit (uint8) model, compared with the baseline's uint8 variant">u8</abbr>` : ''),
  );
  hb.registerHelper('get', (o: Record<string, unknown> | null, k: string) => (o ? o[k] : undefined));
  hb.registerHelper(
    'json',
    (v: unknown) =>
      // data for scripts, in a <script type="application/json"> block: nothing in it can close the element
      new hb.SafeString(
        JSON.stringify(v)
          .replace(/</g, '\\u003c')
          .replace(/>/g, '\\u003e')
          .replace(/&/g, '\\u0026')
          .replace(/\u2028/g, '\\u2028')
          .replace(/\u2029/g, '\\u2029'),
      ),
  );
  hb.registerHelper('time', (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '—'));
  hb.registerHelper('times', (a: number, b: number) => a * b);
  hb.registerHelper('ms', (v: number | null) => (num(v) ? (v! >= 1000 ? `${(v! / 1000).toFixed(1)} s` : `${v!.toFixed(0)} ms`) : '—'));
}
