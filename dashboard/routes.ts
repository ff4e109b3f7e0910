// The page and data routes: read through db/, shape with present, render with the views. Every
// handler is a read; bad query parameters throw BadParam (400), unknown ids answer 404.
import { Router, type Request, type Response } from 'express';
import {
  baselineOf,
  campaignOverview,
  getCampaign,
  listCampaigns,
  POINT_FIELDS,
  runDetail,
  runsAll,
  runsPage,
  tradeoffJson,
  tradeoffPoints,
  type BaselineRow,
  type CampaignRow,
  type Db,
} from '../db';
import type { Artifacts } from './artifacts';
import {
  channelTable,
  compareCards,
  compareCurves,
  differingSettings,
  flatten,
  latencyNote,
  parallelRow,
  pointsCsv,
  retriedStages,
  runRounds,
  runsCsv,
  tableColumns,
  vsBaseline,
  bestCards,
  withDeltas,
} from './present';
import { BadParam, FILTER_COLUMNS, formatCursor, PAGE_SIZE, parseCompareRuns, parseRunQuery, queryString, wildcard } from './query';
import { recommendedPerWeights } from '../analysis';

/** The compiled views (see server.ts). */
export interface Views {
  render(res: Response, page: string, ctx: Record<string, unknown>): void;
  notFound(res: Response, message: string): void;
}

export function pageRoutes(db: Db, views: Views, artifacts: Artifacts): Router {
  const r = Router();
  const { render, notFound } = views;

  const campaignOr404 = (req: Request, res: Response): CampaignRow | undefined => {
    const c = getCampaign(db, req.params.id as string);
    if (!c) notFound(res, `campaign "${req.params.id}" not found: the list at / has every campaign in this home`);
    return c;
  };

  // ---- campaigns list
  r.get('/', (_req, res) => {
    const campaigns = listCampaigns(db).map((c) => {
      const o = campaignOverview(db, c.id);
      return {
        id: c.id,
        name: c.name,
        state: c.state,
        runs: o.runs,
        runStates: o.runStates,
        pareto: o.pareto,
        best: o.best,
        lastUpdate: o.lastUpdate ?? c.updated_at,
      };
    });
    render(res, 'index', { title: 'campaigns', live: true, campaigns });
  });

  // ---- campaign page and runs table (same view; /runs is the table's own stable URL)
  const runsView = (req: Request, res: Response, tab: 'runs' | 'parallel') => {
    const c = campaignOr404(req, res);
    if (!c) return;
    const q = parseRunQuery(req.query);
    const baseline = baselineOf(db, c.id);
    const page = runsPage(db, c.id, q);
    const rows = page.rows.map((x) => withDeltas(x, baseline));
    const keep = { filter: q.filterText, limit: q.limit === PAGE_SIZE ? undefined : q.limit };
    const base = { sort: q.sort, dir: q.dir, ...keep };
    const o = campaignOverview(db, c.id, { activity: true });
    render(res, tab === 'runs' ? 'campaign' : 'parallel', {
      title: tab === 'runs' ? c.name : `${c.name} · parallel coordinates`,
      live: true,
      tab,
      campaign: c,
      overview: o,
      best: bestCards(o.best, baseline),
      recommended: tab === 'runs' ? recommendedPerWeights(db, c.id, 20) : [],
      baseline,
      latencyNote: latencyNote(baseline, true),
      rows,
      columns: tableColumns(q, keep),
      filterText: q.filterText,
      sort: q.sort,
      dir: q.dir,
      total: page.total,
      shown: rows.length,
      next: page.next ? queryString({ ...base, after: formatCursor(page.next) }) : null,
      first: q.after ? queryString(base) : null,
      exportQuery: queryString({ sort: q.sort, dir: q.dir, filter: q.filterText }),
      filterColumns: FILTER_COLUMNS.join(', '),
      parallelRows:
        tab === 'parallel'
          ? runsAll(db, c.id, { sort: 'run', dir: 'asc', filters: [] })
              .filter((x) => x.rounds > 0)
              .map(parallelRow)
          : null,
    });
  };
  r.get('/campaigns/:id', (req, res) => runsView(req, res, 'runs'));
  r.get('/campaigns/:id/runs', (req, res) => runsView(req, res, 'runs'));
  r.get('/campaigns/:id/parallel', (req, res) => runsView(req, res, 'parallel'));

  // ---- the runs table's rows, every page of it
  const exportRows = (req: Request, res: Response) => {
    const c = campaignOr404(req, res);
    if (!c) return null;
    const q = parseRunQuery(req.query);
    const baseline = baselineOf(db, c.id);
    return { c, rows: runsAll(db, c.id, q).map((x) => withDeltas(x, baseline)) };
  };
  r.get('/campaigns/:id/runs.json', (req, res) => {
    const x = exportRows(req, res);
    if (x) res.json(x.rows);
  });
  r.get('/campaigns/:id/runs.csv', (req, res) => {
    const x = exportRows(req, res);
    if (x) res.type('text/csv').attachment(`${x.c.id}-runs.csv`).send(runsCsv(x.rows));
  });

  // ---- trade-off: every candidate (every round of every run, and the baseline)
  r.get('/campaigns/:id/tradeoff', (req, res) => {
    const c = campaignOr404(req, res);
    if (!c) return;
    const baseline = baselineOf(db, c.id);
    render(res, 'tradeoff', { title: `${c.name} · trade-off`, live: true, tab: 'tradeoff', campaign: c, baseline, latencyNote: latencyNote(baseline) });
  });
  r.get('/campaigns/:id/tradeoff.json', (req, res) => {
    const c = campaignOr404(req, res);
    if (!c) return;
    const { points, weights } = tradeoffJson(db, c.id);
    const b = baselineOf(db, c.id);
    const head = JSON.stringify({ fields: POINT_FIELDS, baseline: b ?? null, runPrefix: `${c.id}/run-`, baselineRun: b?.runId ?? null });
    res.type('json').send(`${head.slice(0, -1)},"weights":${weights},"points":${points}}`);
  });
  r.get('/campaigns/:id/points.csv', (req, res) => {
    const c = campaignOr404(req, res);
    if (c)
      res
        .type('text/csv')
        .attachment(`${c.id}-points.csv`)
        .send(pointsCsv(tradeoffPoints(db, c.id)));
  });

  // ---- compare 2–6 runs
  r.get('/compare', (req, res) => {
    const runs = parseCompareRuns(req.query).map((id) => {
      const d = runDetail(db, id);
      if (!d) throw new BadParam(`runs: no run "${id}": copy ids from a campaign's runs table`);
      return d;
    });
    const settings = runs.map((x) => ({
      ...flatten(JSON.parse(getCampaign(db, x.campaignId)!.spec_json), 'spec'),
      ...flatten(x.weights, 'weights'),
      campaign: JSON.stringify(x.campaignId),
    }));
    const baselines = new Map<string, BaselineRow | undefined>();
    for (const x of runs) if (!baselines.has(x.campaignId)) baselines.set(x.campaignId, baselineOf(db, x.campaignId));
    const cards = compareCards(runs, baselines);
    const curves = compareCurves(
      runs,
      cards.map((c) => c.label),
      baselines,
    );
    render(res, 'compare', { title: 'compare runs', runs: cards, differing: differingSettings(settings), curves, curvesData: { curves } });
  });

  // ---- one run
  r.get('/runs/*id', (req, res) => {
    const id = wildcard(req.params.id).join('/');
    const d = runDetail(db, id);
    if (!d) return notFound(res, `run "${id}" not found: run ids look like <campaign>/run-3`);
    const b = baselineOf(db, d.campaignId);
    const rounds = runRounds(d, b);
    const roundNos = d.rounds.filter((x) => x.round > 0).map((x) => x.round);
    render(res, 'run', {
      title: d.kind === 'baseline' ? `${d.campaignName} · baseline` : `${d.campaignName} · run-${d.k}`,
      live: true,
      run: d,
      rounds,
      roundNos,
      channels: channelTable(d, roundNos),
      retried: retriedStages(d),
      artifacts: d.artifacts.map((a) => ({ ...a, files: artifacts.files(a.path) })),
      latencyNote: latencyNote(b),
      chartData: {
        rounds: rounds
          .filter((x) => x.point)
          .map((x) => ({ round: x.round, accuracy: x.point!.accuracy, sizeX: x.sizeX, latencyX: x.latencyX, energyX: x.energyX })),
        series: d.series,
      },
    });
  });

  return r;
}
