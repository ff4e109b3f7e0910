// URL → query: what the dashboard reads from a request's query string and path, checked against
// allow-lists (column names reach SQL only through db/'s RUN_COLUMNS, never from a request), and
// the query strings its links carry back. Bad input is a BadParam: a 400 naming the parameter.
import type { Request } from 'express';
import { OBJECTIVES, STATES, zeroWeights, type State, type Weights } from '../core';
import { FILTER_OPS, RUN_COLUMNS, type RunColumn, type RunFilter, type RunQuery } from '../db';
import { CANDIDATE_COLUMNS, type BudgetClause, type CandidateColumn } from '../analysis';

/** A request parameter the dashboard cannot read: answered 400, the message names the parameter. */
export class BadParam extends Error {}

/** The runs table's sortable (and filterable) columns. */
export const SORTABLE = Object.keys(RUN_COLUMNS) as RunColumn[];
/** Every column a filter clause may name. */
export const FILTER_COLUMNS = ['state', ...SORTABLE];
export const PAGE_SIZE = 50;
const MAX_PAGE = 500;
/** How many runs /compare shows side by side. */
const COMPARE_MIN = 2;
const COMPARE_MAX = 6;

type Query = Request['query'];

/** A parameter given at most once, as text. */
export function one(q: Query, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadParam(`${name}: give it once, as text`);
  return v;
}

/** `filter=accuracy>=0.85,front=1,state=running`: clauses on allow-listed columns, joined by commas. */
export function parseFilter(s: string | undefined): RunFilter[] {
  if (!s) return [];
  return s.split(',').map((clause) => {
    const m = /^([a-z_]+)\s*(<=|>=|!=|=|<|>)\s*(.+)$/.exec(clause.trim());
    if (!m) throw new BadParam(`filter: cannot read "${clause}": write column, operator (${FILTER_OPS.join(' ')}), value, e.g. accuracy>=0.85`);
    const [, col, op, raw] = m;
    if (col === 'state') {
      if (op !== '=' && op !== '!=') throw new BadParam(`filter: state takes = or != (got "${op}")`);
      if (!(STATES as readonly string[]).includes(raw)) throw new BadParam(`filter: state "${raw}" is not one of ${STATES.join(', ')}`);
      return { col: 'state', op, value: raw as State };
    }
    if (!(col in RUN_COLUMNS)) throw new BadParam(`filter: unknown column "${col}": use state or one of ${SORTABLE.join(', ')}`);
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new BadParam(`filter: "${raw}" for ${col} is not a number`);
    return { col: col as RunColumn, op: op as RunFilter['op'], value } as RunFilter;
  });
}

export function formatFilter(f: RunFilter[]): string {
  return f.map((x) => `${x.col}${x.op}${x.value}`).join(',');
}

/** The runs table's query: sort, dir, filter, page cursor (`after`) and page size (`limit`). */
export function parseRunQuery(q: Query): RunQuery & { filterText: string } {
  const sort = one(q, 'sort') ?? 'objective';
  const dir = one(q, 'dir') ?? (sort === 'accuracy' || sort === 'best_accuracy' ? 'desc' : 'asc');
  if (!(SORTABLE as string[]).includes(sort)) throw new BadParam(`sort: unknown column "${sort}": use one of ${SORTABLE.join(', ')}`);
  if (dir !== 'asc' && dir !== 'desc') throw new BadParam(`dir: "${dir}" must be asc or desc`);
  const filters = parseFilter(one(q, 'filter'));
  let after: RunQuery['after'];
  const a = one(q, 'after');
  if (a !== undefined) {
    const m = /^(null|-?[0-9.e+-]+)~(\d+)$/i.exec(a);
    const value = m && m[1] !== 'null' ? Number(m[1]) : null;
    if (!m || (value !== null && !Number.isFinite(value))) throw new BadParam(`after: "${a}" is not a page cursor: use the "next page" link`);
    after = { value, k: Number(m[2]) };
  }
  const l = one(q, 'limit');
  const limit = l === undefined ? PAGE_SIZE : Number(l);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new BadParam(`limit: "${l}" must be a whole number from 1 to ${MAX_PAGE}`);
  return { sort: sort as RunColumn, dir, filters, after, limit, filterText: formatFilter(filters) };
}

/** The page cursor the "next page" link carries (read back by parseRunQuery). */
export const formatCursor = (c: { value: number | null; k: number }): string => `${c.value ?? 'null'}~${c.k}`;

/**
 * `runs=<id>,<id>,…` on /compare: 2 to 6 run ids, each optionally `@<round>` for one candidate
 * (a round of the run, as the candidates table selects); the parameter may also repeat (a form of
 * checked rows sends `runs=a&runs=b`).
 */
export function parseCompareRuns(q: Query): Array<{ runId: string; round?: number }> {
  const v = q.runs;
  if (v !== undefined && typeof v !== 'string' && !(Array.isArray(v) && v.every((x) => typeof x === 'string')))
    throw new BadParam('runs: give run ids as text, separated by commas');
  const ids = ([] as string[])
    .concat((v as string | string[] | undefined) ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length < COMPARE_MIN || ids.length > COMPARE_MAX)
    throw new BadParam(`runs: select ${COMPARE_MIN} to ${COMPARE_MAX} runs or candidates to compare (got ${ids.length})`);
  return ids.map((id) => {
    const m = /^(.+)@(\d+)$/.exec(id);
    return m ? { runId: m[1], round: Number(m[2]) } : { runId: id };
  });
}

/** The candidates table's columns (sort and filter). */
export const CANDIDATE_SORTABLE = Object.keys(CANDIDATE_COLUMNS) as CandidateColumn[];
export const CANDIDATE_PAGE = 100;

/** `filter=latency<=0.45,bytes<=20000,accuracy>=0.85` on the candidates view: numeric clauses on its columns. */
export function parseBudget(s: string | undefined): BudgetClause[] {
  if (!s) return [];
  return s.split(',').map((clause) => {
    const m = /^([a-z_]+)\s*(<=|>=|!=|=|<|>)\s*(.+)$/.exec(clause.trim());
    if (!m) throw new BadParam(`filter: cannot read "${clause}": write column, operator (${FILTER_OPS.join(' ')}), value, e.g. latency<=0.45`);
    const [, col, op, raw] = m;
    if (!(col in CANDIDATE_COLUMNS)) throw new BadParam(`filter: unknown column "${col}": use one of ${CANDIDATE_SORTABLE.join(', ')}`);
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new BadParam(`filter: "${raw}" for ${col} is not a number`);
    return { col: col as CandidateColumn, op: op as BudgetClause['op'], value };
  });
}

/** The candidates view's query: sort, dir, budget filter, page (1-based). */
export function parseCandidateQuery(q: Query): { sort: CandidateColumn; dir: 'asc' | 'desc'; clauses: BudgetClause[]; filterText: string; page: number } {
  const sort = one(q, 'sort') ?? 'objective';
  if (!(CANDIDATE_SORTABLE as string[]).includes(sort)) throw new BadParam(`sort: unknown column "${sort}": use one of ${CANDIDATE_SORTABLE.join(', ')}`);
  const dir = one(q, 'dir') ?? (sort === 'accuracy' || sort === 'front' ? 'desc' : 'asc');
  if (dir !== 'asc' && dir !== 'desc') throw new BadParam(`dir: "${dir}" must be asc or desc`);
  const clauses = parseBudget(one(q, 'filter'));
  const p = one(q, 'page') ?? '1';
  const page = Number(p);
  if (!Number.isInteger(page) || page < 1) throw new BadParam(`page: "${p}" must be a whole number ≥ 1`);
  return { sort: sort as CandidateColumn, dir, clauses, filterText: clauses.map((c) => `${c.col}${c.op}${c.value}`).join(','), page };
}

/** A `/*name` wildcard's segments (Express 5 gives an array), e.g. the run id in /runs/<campaign>/run-3. */
export const wildcard = (v: unknown): string[] => ([] as string[]).concat(v as string[]);

/** `?a=1&b=2` from the given parameters (empty and undefined ones left out), or '' when none. */
export function queryString(params: Record<string, string | number | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

/**
 * `weights=accuracy=0.6,size=0.2,latency=0.2` on the candidates view: one weight vector, with the
 * campaign file's rules (known objectives, each 0–1, missing = 0, sum 1 within 1e-6; campaign/schema
 * `weightsSchema`, which `export --recommended --weights` uses).
 */
export function parseWeights(text: string | undefined): Weights | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const w = zeroWeights();
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z]+)\s*=\s*(.+)$/.exec(part);
    if (!m) throw new BadParam(`weights: "${part}" is not name=value: give e.g. accuracy=0.6,size=0.2,latency=0.2`);
    if (!(OBJECTIVES as readonly string[]).includes(m[1])) throw new BadParam(`weights: unknown objective "${m[1]}": use ${OBJECTIVES.join(', ')}`);
    const v = Number(m[2]);
    if (!Number.isFinite(v) || v < 0 || v > 1) throw new BadParam(`weights: ${m[1]} must be a number from 0 to 1 (got "${m[2]}")`);
    w[m[1] as keyof Weights] = v;
  }
  const sum = OBJECTIVES.reduce((a, o) => a + w[o], 0);
  if (Math.abs(sum - 1) > 1e-6) throw new BadParam(`weights: weights must sum to 1 (got ${+sum.toFixed(6)})`);
  return w;
}
