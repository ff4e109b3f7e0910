// The dashboard: Express + Handlebars, server-rendered from SQLite (through db/ only).
// First slice: campaigns list, campaign page with every candidate model (baseline pinned on top,
// deltas against it, Pareto badges, weights as columns), server-side sort in the URL, CSV/JSON
// export of the rows in the view's order. Binds 127.0.0.1 unless told otherwise.
import express, { type Request, type Response } from 'express';
import Handlebars from 'handlebars';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../activities/version';
import { computePareto, getCampaign, listCampaigns, type Db, type ParetoSummary } from '../db';

const VIEWS = path.join(PACKAGE_ROOT, 'dashboard', 'views');

export const SORTABLE = ['run', 'round', 'accuracy', 'error', 'bytes', 'latency', 'energy', 'objective'] as const;
type SortKey = (typeof SORTABLE)[number];

export class BadParam extends Error {}

export interface Row {
  run: number;
  runId: string;
  round: number;
  baseline: boolean;
  weights: Record<string, number> | null;
  accuracy: number | null;
  deltaPoints: number | null;
  error: number;
  bytes: number;
  sizeX: number;
  latency: number;
  latencyX: number;
  energy: number;
  energyX: number;
  energyMeasured: boolean;
  objective: number | null;
  onFront: boolean;
  onFront2d: boolean;
  rejected: string;
}

/** Every candidate as a row, relative to the baseline (which `rows` returns first, always). */
export function rowsOf(p: ParetoSummary, sort: SortKey, dir: 'asc' | 'desc'): Row[] {
  const base = p.points.find((x) => x.round === 0);
  const baseAcc = base?.accuracy ?? null;
  const all = p.points.map<Row>((x) => ({
    run: x.k,
    runId: x.runId,
    round: x.round,
    baseline: x.round === 0,
    weights: x.weights,
    accuracy: x.accuracy,
    deltaPoints: x.accuracy !== null && baseAcc !== null ? (x.accuracy - baseAcc) * 100 : null,
    error: x.values.error,
    bytes: x.values.bytes,
    sizeX: p.baseline.bytes / x.values.bytes,
    latency: x.values.latencyMs,
    latencyX: p.baseline.latencyMs / x.values.latencyMs,
    energy: x.values.energyJ,
    energyX: p.baseline.energyJ / x.values.energyJ,
    energyMeasured: x.energyMeasured,
    objective: x.objective,
    onFront: x.onFront,
    onFront2d: x.onFront2d,
    rejected: x.violates.join(', '),
  }));
  const key: Record<SortKey, (r: Row) => number> = {
    run: (r) => r.run,
    round: (r) => r.round,
    accuracy: (r) => r.accuracy ?? -1,
    error: (r) => r.error,
    bytes: (r) => r.bytes,
    latency: (r) => r.latency,
    energy: (r) => r.energy,
    objective: (r) => r.objective ?? Infinity,
  };
  const sign = dir === 'asc' ? 1 : -1;
  const rest = all.filter((r) => !r.baseline).sort((a, b) => sign * (key[sort](a) - key[sort](b)) || a.run - b.run || a.round - b.round);
  return [...all.filter((r) => r.baseline), ...rest];
}

function sortParams(q: Request['query']): { sort: SortKey; dir: 'asc' | 'desc' } {
  const sort = (q.sort ?? 'objective') as string;
  const dir = (q.dir ?? 'asc') as string;
  if (!(SORTABLE as readonly string[]).includes(sort)) throw new BadParam(`sort: unknown column "${sort}": use one of ${SORTABLE.join(', ')}`);
  if (dir !== 'asc' && dir !== 'desc') throw new BadParam(`dir: "${dir}" must be asc or desc`);
  return { sort: sort as SortKey, dir };
}

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function createDashboard(db: Db): express.Express {
  const hb = Handlebars.create();
  hb.registerHelper('pct', (v: number | null) => (v === null || v === undefined ? '—' : `${(v * 100).toFixed(2)} %`));
  hb.registerHelper('fix', (v: number | null, d: number) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d)));
  hb.registerHelper('signed', (v: number | null) => (v === null || v === undefined ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(2)}`));
  hb.registerHelper('kb', (v: number) => (v / 1024).toFixed(1));
  hb.registerHelper('w', (w: Record<string, number> | null, k: string) => (w ? String(w[k]) : '—'));
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hb.registerPartial('layout', fs.readFileSync(path.join(VIEWS, 'layout.hbs'), 'utf8'));
  const view = (name: string) => hb.compile(fs.readFileSync(path.join(VIEWS, `${name}.hbs`), 'utf8'));
  const pages = { index: view('index'), campaign: view('campaign'), error: view('error') };

  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.set('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'");
    res.set('X-Content-Type-Options', 'nosniff');
    next();
  });

  app.get('/', (_req, res) => {
    const campaigns = listCampaigns(db).map((c) => {
      const p = computePareto(db, c.id);
      return { id: c.id, name: c.name, state: c.state, updatedAt: c.updated_at, points: p?.points.length ?? 0, front: p?.front2d ?? 0, hypervolume: p?.hypervolume ?? null };
    });
    res.type('html').send(pages.index({ title: 'campaigns', campaigns }));
  });

  const campaignRows = (req: Request) => {
    const id = req.params.id as string;
    const c = getCampaign(db, id);
    if (!c) return null;
    const { sort, dir } = sortParams(req.query);
    const p = computePareto(db, id);
    return { c, p, sort, dir, rows: p ? rowsOf(p, sort, dir) : [] };
  };

  app.get('/campaigns/:id', (req, res) => {
    const r = campaignRows(req);
    if (!r) return notFound(res, `campaign "${req.params.id}" not found`);
    const q = (col: string) => `?sort=${col}&dir=${r.sort === col && r.dir === 'asc' ? 'desc' : 'asc'}`;
    const columns = SORTABLE.map((col) => ({ col, href: q(col), active: r.sort === col, dir: r.dir }));
    res.type('html').send(
      pages.campaign({ title: r.c.name, campaign: r.c, pareto: r.p, rows: r.rows, columns, exportQuery: `sort=${r.sort}&dir=${r.dir}`, latencyNote: r.p?.latencyEstimated ? 'estimated (roofline of the target profile)' : 'measured on the worker, side by side with the baseline' }),
    );
  });

  app.get('/campaigns/:id/rows.json', (req, res) => {
    const r = campaignRows(req);
    if (!r) return notFound(res, `campaign "${req.params.id}" not found`);
    res.json(r.rows);
  });

  app.get('/campaigns/:id/rows.csv', (req, res) => {
    const r = campaignRows(req);
    if (!r) return notFound(res, `campaign "${req.params.id}" not found`);
    const cols: Array<[string, (x: Row) => unknown]> = [
      ['run', (x) => x.run], ['run_id', (x) => x.runId], ['round', (x) => x.round], ['baseline', (x) => x.baseline],
      ['w_accuracy', (x) => x.weights?.accuracy], ['w_size', (x) => x.weights?.size], ['w_latency', (x) => x.weights?.latency], ['w_energy', (x) => x.weights?.energy],
      ['test_accuracy', (x) => x.accuracy], ['delta_points', (x) => x.deltaPoints], ['val_error', (x) => x.error], ['bytes', (x) => x.bytes], ['size_x', (x) => x.sizeX],
      ['latency_ms', (x) => x.latency], ['latency_x', (x) => x.latencyX], ['energy_j', (x) => x.energy], ['energy_x', (x) => x.energyX], ['energy_measured', (x) => x.energyMeasured],
      ['objective', (x) => x.objective], ['pareto', (x) => x.onFront], ['pareto_err_lat', (x) => x.onFront2d], ['rejected', (x) => x.rejected],
    ];
    const lines = [cols.map(([h]) => h).join(','), ...r.rows.map((row) => cols.map(([, f]) => csvCell(f(row))).join(','))];
    res.type('text/csv').attachment(`${r.c.id}.csv`).send(`${lines.join('\n')}\n`);
  });

  app.use((req, res) => notFound(res, `no page at ${req.path}`));
  app.use((err: Error, _req: Request, res: Response, _next: express.NextFunction) => {
    const bad = err instanceof BadParam;
    res.status(bad ? 400 : 500).type('html').send(pages.error({ title: bad ? 'bad request' : 'error', message: err.message }));
  });

  function notFound(res: Response, message: string) {
    res.status(404).type('html').send(pages.error({ title: 'not found', message }));
  }
  return app;
}
