// The dashboard: Express + Handlebars, server-rendered from SQLite (through db/ only), charts by
// ECharts served from node_modules, live over Server-Sent Events. Read-only: it never writes a
// row. Binds 127.0.0.1 unless told otherwise (see cli/index.ts).
import express, { type Request, type Response } from 'express';
import Handlebars from 'handlebars';
import helmet from 'helmet';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../platform/version';
import {
  baselineOf,
  campaignOverview,
  dataVersion,
  FILTER_OPS,
  getCampaign,
  isRecordedArtifact,
  listCampaigns,
  POINT_FIELDS,
  RUN_COLUMNS,
  RUN_STATES,
  runDetail,
  runsAll,
  runsPage,
  tradeoffJson,
  tradeoffPoints,
  type BaselineRow,
  type Db,
  type RunColumn,
  type RunFilter,
  type RunQuery,
  type RunTableRow,
  type State,
} from '../db';

const VIEWS = path.join(PACKAGE_ROOT, 'dashboard', 'views');
const PUBLIC = path.join(PACKAGE_ROOT, 'dashboard', 'public');
const ECHARTS = path.join(path.dirname(require.resolve('echarts')), 'echarts.min.js');

export class BadParam extends Error {}

export const SORTABLE = Object.keys(RUN_COLUMNS) as RunColumn[];
const PAGE_SIZE = 50;
const MAX_PAGE = 500;

// ------------------------------------------------------------------ query parameters

const one = (q: Request['query'], name: string): string | undefined => {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadParam(`${name}: give it once, as text`);
  return v;
};

/** `filter=accuracy>=0.85,front=1,state=running`: clauses on allow-listed columns, joined by commas. */
export function parseFilter(s: string | undefined): RunFilter[] {
  if (!s) return [];
  return s.split(',').map((clause) => {
    const m = /^([a-z_]+)\s*(<=|>=|!=|=|<|>)\s*(.+)$/.exec(clause.trim());
    if (!m) throw new BadParam(`filter: cannot read "${clause}": write column, operator (${FILTER_OPS.join(' ')}), value, e.g. accuracy>=0.85`);
    const [, col, op, raw] = m;
    if (col === 'state') {
      if (op !== '=' && op !== '!=') throw new BadParam(`filter: state takes = or != (got "${op}")`);
      if (!(RUN_STATES as string[]).includes(raw)) throw new BadParam(`filter: state "${raw}" is not one of ${RUN_STATES.join(', ')}`);
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

export function parseRunQuery(q: Request['query']): RunQuery & { filterText: string } {
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

const qs = (params: Record<string, string | number | undefined>) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
};

// ------------------------------------------------------------------ rows shown to people

export interface ShownRow extends RunTableRow {
  deltaPoints: number | null;
  sizeX: number | null;
  latencyX: number | null;
  energyX: number | null;
}

type Objectives = { accuracy: number | null; bytes: number | null; latencyMs: number | null; energyJ: number | null };

/** A model against the unpruned baseline: accuracy change in points, and how many times smaller / faster / cheaper. */
export function vsBaseline(v: Objectives | null | undefined, b: BaselineRow | undefined): Omit<ShownRow, keyof RunTableRow> {
  const ratio = (base: number | undefined, x: number | null | undefined) => (base !== undefined && x ? base / x : null);
  return {
    deltaPoints: v && v.accuracy !== null && b?.accuracy != null ? (v.accuracy - b.accuracy) * 100 : null,
    sizeX: ratio(b?.bytes, v?.bytes),
    latencyX: ratio(b?.latencyMs, v?.latencyMs),
    energyX: ratio(b?.energyJ, v?.energyJ),
  };
}

export function withDeltas(r: RunTableRow, b: BaselineRow | undefined): ShownRow {
  return { ...r, ...vsBaseline(r, b) };
}

const EXPORT_COLUMNS: Array<[string, (x: ShownRow) => unknown]> = [
  ['run', (x) => x.k], ['run_id', (x) => x.runId], ['state', (x) => x.state],
  ['w_accuracy', (x) => x.weights.accuracy], ['w_size', (x) => x.weights.size], ['w_latency', (x) => x.weights.latency], ['w_energy', (x) => x.weights.energy],
  ['rounds', (x) => x.rounds], ['best_round', (x) => x.bestRound], ['test_accuracy', (x) => x.accuracy], ['best_test_accuracy', (x) => x.bestAccuracy],
  ['delta_points', (x) => x.deltaPoints], ['val_error', (x) => x.valError], ['bytes', (x) => x.bytes], ['size_x', (x) => x.sizeX],
  ['latency_ms', (x) => x.latencyMs], ['latency_x', (x) => x.latencyX], ['energy_j', (x) => x.energyJ], ['energy_x', (x) => x.energyX],
  ['energy_measured', (x) => x.energyMeasured], ['objective', (x) => x.objective], ['pareto', (x) => x.onFront], ['front_rounds', (x) => x.frontRounds],
  ['rejected', (x) => x.rejected],
];

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

function flatten(o: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (o && typeof o === 'object' && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = JSON.stringify(o);
  return out;
}

// ------------------------------------------------------------------ the app

export interface DashboardOptions {
  /** the home folder: artifacts are downloaded from its artifacts/ subfolder only */
  homeDir?: string;
  /** how often to look for writes by other processes (ms) */
  pollMs?: number;
}

export interface Dashboard extends express.Express {
  /** ends the live-update streams (call before server.close()) */
  closeStreams(): void;
}

export function createDashboard(db: Db, opts: DashboardOptions = {}): Dashboard {
  const hb = Handlebars.create();
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  hb.registerHelper('pct', (v: number | null) => (num(v) ? `${(v! * 100).toFixed(2)} %` : '—'));
  hb.registerHelper('fix', (v: number | null, d: number) => (num(v) ? v!.toFixed(d) : '—'));
  hb.registerHelper('signed', (v: number | null) => (num(v) ? `${v! >= 0 ? '+' : ''}${v!.toFixed(2)}` : '—'));
  hb.registerHelper('kb', (v: number | null) => (num(v) ? `${(v! / 1024).toFixed(1)} KB` : '—'));
  hb.registerHelper('energy', (v: number | null) => (num(v) ? (v! >= 1e-3 ? `${(v! * 1e3).toFixed(3)} mJ` : `${(v! * 1e6).toFixed(2)} µJ`) : '—'));
  hb.registerHelper('lat', (v: number | null) => (num(v) ? `${v!.toFixed(3)} ms` : '—'));
  hb.registerHelper('x', (v: number | null) => (num(v) ? `${v!.toFixed(2)}×` : '—'));
  hb.registerHelper('w', (w: Record<string, number> | null, k: string) => (w && w[k] !== undefined ? String(w[k]) : '—'));
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hb.registerHelper('get', (o: Record<string, unknown> | null, k: string) => (o ? o[k] : undefined));
  hb.registerHelper('json', (v: unknown) =>
    // data for scripts, in a <script type="application/json"> block: nothing in it can close the element
    new hb.SafeString(JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')),
  );
  hb.registerHelper('time', (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '—'));
  hb.registerHelper('ms', (v: number | null) => (num(v) ? (v! >= 1000 ? `${(v! / 1000).toFixed(1)} s` : `${v!.toFixed(0)} ms`) : '—'));
  for (const f of fs.readdirSync(VIEWS).filter((f) => f.startsWith('_'))) hb.registerPartial(f.slice(1, -4), fs.readFileSync(path.join(VIEWS, f), 'utf8'));
  const view = (name: string) => hb.compile(fs.readFileSync(path.join(VIEWS, `${name}.hbs`), 'utf8'));
  const pages = Object.fromEntries(['index', 'campaign', 'tradeoff', 'parallel', 'compare', 'run', 'error'].map((n) => [n, view(n)]));
  const homeDir = opts.homeDir ? path.resolve(opts.homeDir) : undefined;
  const artifactsRoot = homeDir ? path.join(homeDir, 'artifacts') : undefined;

  const app = express() as Dashboard;
  app.disable('x-powered-by');
  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          // ECharts positions its tooltip with style attributes; no inline <style> or script anywhere
          styleSrcAttr: ["'unsafe-inline'"],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          fontSrc: ["'self'"],
          objectSrc: ["'none'"],
          baseUri: ["'none'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
        },
      },
      crossOriginEmbedderPolicy: false,
    }),
  );
  app.use('/static', express.static(PUBLIC, { maxAge: '1h', fallthrough: false }));
  app.get('/vendor/echarts.min.js', (_req, res) => res.sendFile(ECHARTS, { maxAge: '1d' }));

  const CHART_PAGES = ['tradeoff', 'parallel', 'compare', 'run'];
  const render = (res: Response, page: string, ctx: Record<string, unknown>) => res.type('html').send(pages[page]({ page, charts: CHART_PAGES.includes(page), ...ctx }));

  // ---- campaigns list
  app.get('/', (_req, res) => {
    const campaigns = listCampaigns(db).map((c) => {
      const o = campaignOverview(db, c.id);
      return { id: c.id, name: c.name, state: c.state, runs: o.runs, runStates: o.runStates, pareto: o.pareto, best: o.best, lastUpdate: o.lastUpdate ?? c.updated_at };
    });
    render(res, 'index', { title: 'campaigns', live: true, campaigns });
  });

  const campaignOr404 = (req: Request, res: Response) => {
    const c = getCampaign(db, req.params.id as string);
    if (!c) notFound(res, `campaign "${req.params.id}" not found: the list at / has every campaign in this home`);
    return c;
  };

  // ---- campaign page and runs table (same view; /runs is the table's own stable URL)
  const runsView = (req: Request, res: Response, tab: 'runs' | 'parallel') => {
    const c = campaignOr404(req, res);
    if (!c) return;
    const q = parseRunQuery(req.query);
    const baseline = baselineOf(db, c.id);
    const page = runsPage(db, c.id, q);
    const rows = page.rows.map((r) => withDeltas(r, baseline));
    const keep = { filter: q.filterText, limit: q.limit === PAGE_SIZE ? undefined : q.limit };
    const columns = [
      ['run', 'run'], ['w_accuracy', 'w acc'], ['w_size', 'w size'], ['w_latency', 'w lat'], ['w_energy', 'w energy'], ['rounds', 'rounds'],
      ['accuracy', 'test acc'], ['error', 'val error'], ['bytes', 'size'], ['latency', 'latency'], ['energy', 'energy'], ['objective', 'J'],
    ].map(([col, label]) => {
      const active = q.sort === col;
      const nextDir = active && q.dir === 'asc' ? 'desc' : 'asc';
      return { col, label, active, dir: q.dir, href: qs({ sort: col, dir: nextDir, ...keep }), aria: active ? (q.dir === 'asc' ? 'ascending' : 'descending') : 'none' };
    });
    const base = { sort: q.sort, dir: q.dir, ...keep };
    const exportQuery = qs({ sort: q.sort, dir: q.dir, filter: q.filterText });
    const next = page.next ? qs({ ...base, after: `${page.next.value ?? 'null'}~${page.next.k}` }) : null;
    const first = q.after ? qs(base) : null;
    const o = campaignOverview(db, c.id, { activity: true });
    const bestVsBase = { accuracy: o.best.accuracy, ...vsBaseline(o.best, baseline) };
    render(res, tab === 'runs' ? 'campaign' : 'parallel', {
      title: tab === 'runs' ? c.name : `${c.name} · parallel coordinates`,
      live: true,
      tab,
      campaign: c,
      overview: o,
      best: bestVsBase,
      baseline,
      latencyNote: baseline?.latencyEstimated ? 'estimated (roofline model of the target profile)' : 'measured on the worker, side by side with the baseline',
      rows,
      columns,
      filterText: q.filterText,
      sort: q.sort,
      dir: q.dir,
      total: page.total,
      shown: rows.length,
      next,
      first,
      exportQuery,
      filterColumns: ['state', ...SORTABLE].join(', '),
      parallelRows: tab === 'parallel' ? parallelData(c.id) : null,
    });
  };
  const parallelData = (id: string) => runsAll(db, id, { sort: 'run', dir: 'asc', filters: [] }).filter((r) => r.rounds > 0).map((r) => [r.k, r.weights.accuracy ?? 0, r.weights.size ?? 0, r.weights.latency ?? 0, r.weights.energy ?? 0, r.accuracy, r.bytes, r.latencyMs, r.energyJ]);

  app.get('/campaigns/:id', (req, res) => runsView(req, res, 'runs'));
  app.get('/campaigns/:id/runs', (req, res) => runsView(req, res, 'runs'));
  app.get('/campaigns/:id/parallel', (req, res) => runsView(req, res, 'parallel'));

  const exportRows = (req: Request, res: Response) => {
    const c = campaignOr404(req, res);
    if (!c) return null;
    const q = parseRunQuery(req.query);
    const baseline = baselineOf(db, c.id);
    const rows = runsAll(db, c.id, q).map((r) => withDeltas(r, baseline));
    return { c, rows };
  };
  app.get('/campaigns/:id/runs.json', (req, res) => {
    const r = exportRows(req, res);
    if (r) res.json(r.rows);
  });
  app.get('/campaigns/:id/runs.csv', (req, res) => {
    const r = exportRows(req, res);
    if (!r) return;
    const lines = [EXPORT_COLUMNS.map(([h]) => h).join(','), ...r.rows.map((row) => EXPORT_COLUMNS.map(([, f]) => csvCell(f(row))).join(','))];
    res.type('text/csv').attachment(`${r.c.id}-runs.csv`).send(`${lines.join('\n')}\n`);
  });

  // ---- trade-off: every candidate (every round of every run, and the baseline)
  app.get('/campaigns/:id/tradeoff', (req, res) => {
    const c = campaignOr404(req, res);
    if (!c) return;
    const baseline = baselineOf(db, c.id);
    render(res, 'tradeoff', {
      title: `${c.name} · trade-off`,
      live: true,
      tab: 'tradeoff',
      campaign: c,
      baseline,
      latencyNote: baseline?.latencyEstimated ? 'estimated (roofline model of the target profile)' : 'measured on the worker',
    });
  });
  app.get('/campaigns/:id/tradeoff.json', (req, res) => {
    const c = campaignOr404(req, res);
    if (!c) return;
    const { points, weights } = tradeoffJson(db, c.id);
    const b = baselineOf(db, c.id);
    const head = JSON.stringify({ fields: POINT_FIELDS, baseline: b ?? null, runPrefix: `${c.id}/run-`, baselineRun: b?.runId ?? null });
    res.type('json').send(`${head.slice(0, -1)},"weights":${weights},"points":${points}}`);
  });
  app.get('/campaigns/:id/points.csv', (req, res) => {
    const c = campaignOr404(req, res);
    if (!c) return;
    const points = tradeoffPoints(db, c.id);
    res.type('text/csv').attachment(`${c.id}-points.csv`).send([POINT_FIELDS.join(','), ...points.map((p) => p.map(csvCell).join(','))].join('\n') + '\n');
  });

  // ---- compare 2–6 runs
  app.get('/compare', (req, res) => {
    const ids = (one(req.query, 'runs') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (ids.length < 2 || ids.length > 6) throw new BadParam(`runs: give 2 to 6 run ids separated by commas (got ${ids.length})`);
    const runs = ids.map((id) => {
      const d = runDetail(db, id);
      if (!d) throw new BadParam(`runs: no run "${id}": copy ids from a campaign's runs table`);
      return d;
    });
    const settings = runs.map((r) => {
      const c = getCampaign(db, r.campaignId)!;
      const out: Record<string, string> = { ...flatten(JSON.parse(c.spec_json), 'spec'), ...flatten(r.weights, 'weights'), campaign: JSON.stringify(r.campaignId) };
      return out;
    });
    const keys = [...new Set(settings.flatMap((s) => Object.keys(s)))].sort();
    const differing = keys
      .filter((k) => new Set(settings.map((s) => s[k] ?? '—')).size > 1)
      .map((k) => ({ key: k, values: settings.map((s) => (s[k] === undefined ? '—' : s[k].replace(/^"(.*)"$/, '$1'))) }));
    const baselines = new Map<string, BaselineRow | undefined>();
    for (const r of runs) if (!baselines.has(r.campaignId)) baselines.set(r.campaignId, baselineOf(db, r.campaignId));
    const cards = runs.map((r) => {
      const best = r.rounds.find((x) => x.round === r.bestRound); // as in the runs table
      return {
        runId: r.runId,
        label: `${r.campaignId === runs[0].campaignId ? '' : `${r.campaignName} `}run-${r.k}`,
        state: r.state,
        bestRound: best?.round ?? null,
        ...vsBaseline(best?.point, baselines.get(r.campaignId)),
        objective: best?.objective ?? null,
      };
    });
    // per-round curves, each run starting from its baseline (round 0)
    const curves = runs.map((r, i) => {
      const b = baselines.get(r.campaignId);
      const rows = [
        { round: 0, accuracy: b?.accuracy ?? null, flops: b?.flops ?? null, latencyMs: b?.latencyMs ?? null },
        ...r.rounds.filter((x) => x.point).map((x) => ({ round: x.round, accuracy: x.point!.accuracy, flops: x.metrics.flops ?? null, latencyMs: x.point!.latencyMs })),
      ];
      return { label: cards[i].label, runId: r.runId, rows };
    });
    render(res, 'compare', { title: 'compare runs', runs: cards, differing, curves, curvesData: { curves } });
  });

  // ---- one run
  app.get('/runs/*id', (req, res) => {
    const id = ([] as string[]).concat(req.params.id as unknown as string[]).join('/');
    const d = runDetail(db, id);
    if (!d) return notFound(res, `run "${id}" not found: run ids look like <campaign>/run-3`);
    const b = baselineOf(db, d.campaignId);
    const rounds = [
      ...(d.kind === 'run' && b ? [{ round: 0, state: 'completed', objective: null, label: 'baseline', point: { accuracy: b.accuracy, valError: b.valError, bytes: b.bytes, latencyMs: b.latencyMs, energyJ: b.energyJ, onFront: true, violates: '' }, flops: b.flops, params: b.params }] : []),
      ...d.rounds.map((r) => ({ ...r, label: d.kind === 'baseline' ? 'baseline' : `round ${r.round}`, flops: r.metrics.flops ?? null, params: r.metrics.params ?? null })),
    ].map((r) => ({ ...r, ...vsBaseline(r.point, b) }));
    const roundNos = d.rounds.filter((r) => r.round > 0).map((r) => r.round);
    const channels = d.channels.map((c) => ({
      layer: c.layer,
      before: c.before,
      after: roundNos.map((n) => c.after[n] ?? null),
      last: roundNos.length ? (c.after[roundNos[roundNos.length - 1]] ?? null) : null,
    })).map((c) => ({ ...c, keptPct: c.last !== null && c.before ? (100 * c.last) / c.before : null, shrank: c.last !== null && c.last < c.before }));
    const retried = d.stages.filter((s) => (s.attempts ?? 1) > 1 || (s.resumedFromStep ?? 0) > 0 || s.state === 'failed').length;
    const artifacts = d.artifacts.map((a) => ({ ...a, files: artifactFiles(a.path) }));
    render(res, 'run', {
      title: d.kind === 'baseline' ? `${d.campaignName} · baseline` : `${d.campaignName} · run-${d.k}`,
      live: true,
      run: d,
      rounds,
      roundNos,
      channels,
      retried,
      artifacts,
      latencyNote: b?.latencyEstimated ? 'estimated (roofline model of the target profile)' : 'measured on the worker',
      chartData: {
        rounds: rounds.filter((r) => r.point).map((r) => ({ round: r.round, accuracy: r.point!.accuracy, sizeX: r.sizeX, latencyX: r.latencyX, energyX: r.energyX })),
        series: d.series,
      },
    });
  });

  const artifactFiles = (rel: string) => {
    if (!artifactsRoot || !homeDir) return [];
    const abs = path.resolve(homeDir, rel);
    if (!inside(abs)) return [];
    try {
      const st = fs.statSync(abs);
      const href = (file: string) => `/artifacts/${path.relative(artifactsRoot, file).split(path.sep).map(encodeURIComponent).join('/')}`;
      if (st.isFile()) return [{ name: path.basename(abs), href: href(abs), bytes: st.size }];
      return fs.readdirSync(abs, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => ({
        name: e.name,
        href: href(path.join(abs, e.name)),
        bytes: fs.statSync(path.join(abs, e.name)).size,
      }));
    } catch {
      return []; // moved or deleted since: the page says no files
    }
  };
  const inside = (abs: string) => {
    if (!artifactsRoot) return false;
    const real = fs.existsSync(abs) ? fs.realpathSync(abs) : abs;
    const root = fs.existsSync(artifactsRoot) ? fs.realpathSync(artifactsRoot) : artifactsRoot;
    return real.startsWith(root + path.sep);
  };

  // ---- artifact download: files of recorded artifacts, inside <home>/artifacts, nothing else
  app.get('/artifacts/*file', (req, res) => {
    const parts = ([] as string[]).concat(req.params.file as unknown as string[]);
    const rel = path.join('artifacts', ...parts);
    if (!homeDir || parts.some((p) => p === '..' || p.includes('\0')) || !inside(path.resolve(homeDir, rel))) {
      return res.status(403).type('text').send('refused: downloads are limited to files inside the artifacts folder\n');
    }
    const abs = path.resolve(homeDir, rel);
    if (!isRecordedArtifact(db, rel)) {
      return res.status(404).type('text').send(`no recorded artifact at ${rel}\n`);
    }
    if (!fs.existsSync(abs) || !fs.statSync(abs).isFile()) return res.status(404).type('text').send(`${rel} is not a file (moved or deleted?)\n`);
    res.download(abs, path.basename(abs));
  });

  // ---- live updates: one poll of SQLite's data_version for all listeners
  const listeners = new Set<Response>();
  let version = dataVersion(db);
  let sent = 0;
  const timer = setInterval(() => {
    if (listeners.size === 0) return;
    const v = dataVersion(db);
    const beat = Date.now() - sent > 15000;
    if (v === version && !beat) return;
    const msg = v !== version ? `event: change\ndata: ${JSON.stringify({ version: v })}\n\n` : ': keep-alive\n\n';
    version = v;
    sent = Date.now();
    for (const l of listeners) l.write(msg);
  }, opts.pollMs ?? 500);
  timer.unref();
  app.get('/events', (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ version })}\n\n`);
    listeners.add(res);
    req.on('close', () => listeners.delete(res));
  });
  app.closeStreams = () => {
    clearInterval(timer);
    for (const l of listeners) l.end();
    listeners.clear();
  };

  app.use((req, res) => notFound(res, `no page at ${req.path}`));
  app.use((err: Error, req: Request, res: Response, _next: express.NextFunction) => {
    const bad = err instanceof BadParam;
    const status = bad ? 400 : ((err as { status?: number }).status ?? 500);
    if (/\.(csv|json)$/.test(req.path)) return res.status(status).type('text').send(`${err.message}\n`);
    res.status(status).type('html').send(pages.error({ title: bad ? 'bad request' : status === 404 ? 'not found' : 'error', message: err.message }));
  });

  function notFound(res: Response, message: string) {
    res.status(404).type('html').send(pages.error({ title: 'not found', message }));
  }
  return app;
}
