// The latency table's file format (ml/latency-table.ts measures and predicts with it): types, the
// canonical bytes (their sha256 is the table's key) and the check a file must pass. No tfjs: the
// campaign loader validates `target.latencyTable` with it.
import { BadInputError } from '../core/errors';
import { sha256 } from './files';

export const LATENCY_TABLE_FORMAT = 'prunewise-latency-table/1';

/**
 * The frozen table cannot predict a model: a configuration it lacks, a count outside its grid, or
 * a prediction out of bounds (negative, or more than the baseline costs). Retrying cannot help (the
 * table is frozen), so it fails the stage at once, naming the layer.
 */
export class LatencyTableError extends BadInputError {
  override name = 'LatencyTableError';
}

export interface LatencyEntry {
  /** class | input spatial shapes | config without channel counts: what the entry is looked up by */
  key: string;
  className: string;
  /** the layer's config (camelCase, as getConfig() gives it) minus name, channel counts, initializers */
  config: Record<string, unknown>;
  /** per input: its shape without batch and channels (a Dense after Flatten: []) */
  inputs: number[][];
  /** per input: its channels at the baseline (how a concatenation's input channels are split) */
  baseChannels: number[];
  /** true for Dense / Conv2D / SeparableConv2D: the output channels are a second axis */
  producer: boolean;
  /** input channels (the sum over a concatenation's inputs), ascending */
  cin: number[];
  /** output channels (producers), ascending; [] when they follow the input */
  cout: number[];
  /** ms[i][j] at cin[i] × cout[j] (ms[i][0] when cout is []) */
  ms: number[][];
  /** the baseline's layers this entry serves (for people) */
  layers: string[];
}

export interface LatencyTable {
  format: typeof LATENCY_TABLE_FORMAT;
  /** the tfjs backend it was timed on (wasm, cpu, tensorflow, …) */
  backend: string;
  /** the deployment runtime it serves (campaign target.runtime; ml/runtime.ts); absent in tables of training-backend days */
  runtime?: string;
  /** when the runtime could not time layers itself: what timed them instead, and why */
  timedOn?: string;
  /** the campaign's target name */
  target: string;
  batchSize: number;
  tfjsVersion: string;
  method: 'layer-by-layer';
  /** interpolation between grid points */
  interpolation: 'linear';
  warmupRuns: number;
  runs: number;
  /** whole-model median minus the median sum of its layers, timed side by side (ms) */
  overheadMs: number;
  /** the baseline's whole-model PREDICTION (Σ its layers + overhead, ms): no layer's prediction may exceed it */
  baselineMs: number;
  /** the baseline's whole-model latency measured while the overhead was (ms; for people) */
  measuredBaselineMs?: number;
  entries: LatencyEntry[];
}

/** JSON with object keys sorted at every level: the same table always serialises to the same bytes. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The bytes of a table file; its sha256 is the table's key. */
export const serializeLatencyTable = (t: LatencyTable): string => canonicalJson(t);
/** The table's key: sha256 of its canonical bytes (the same table → the same key). */
export const latencyTableSha256 = (t: LatencyTable): string => sha256(serializeLatencyTable(t));

// ------------------------------------------------------------------------------- reading

/** Parses and checks a table file's text. @throws Error with a one-line reason */
export function parseLatencyTable(text: string): LatencyTable {
  let t: LatencyTable;
  try {
    t = JSON.parse(text) as LatencyTable;
  } catch (e) {
    throw new Error(`not JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (!t || typeof t !== 'object' || t.format !== LATENCY_TABLE_FORMAT) throw new Error(`not a latency table (format must be "${LATENCY_TABLE_FORMAT}")`);
  for (const f of ['backend', 'target'] as const) if (typeof t[f] !== 'string' || !t[f]) throw new Error(`field "${f}" is missing`);
  for (const f of ['batchSize', 'overheadMs', 'baselineMs'] as const) if (!Number.isFinite(t[f])) throw new Error(`field "${f}" must be a number`);
  if (!(t.baselineMs > 0)) throw new Error(`baselineMs must be positive (got ${t.baselineMs})`);
  if (!Array.isArray(t.entries) || t.entries.length === 0) throw new Error('it has no entries');
  for (const e of t.entries) {
    const cols = e.producer ? e.cout?.length : 1;
    const ok =
      typeof e.key === 'string' &&
      Array.isArray(e.cin) &&
      e.cin.length > 0 &&
      Array.isArray(e.ms) &&
      e.ms.length === e.cin.length &&
      e.ms.every((row) => Array.isArray(row) && row.length === cols && row.every((v) => Number.isFinite(v) && v >= 0));
    if (!ok) throw new Error(`entry "${e.layers?.join(', ') ?? e.key}" is malformed (grid and timings must match, timings finite and ≥ 0)`);
  }
  return t;
}
