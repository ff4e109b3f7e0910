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
  runNote,
  runNotes,
  setRunNote,
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
import {
  BadParam,
  CANDIDATE_PAGE,
  CANDIDATE_SORTABLE,
  FILTER_COLUMNS,
  formatCursor,
  PAGE_SIZE,
  parseCandidateQuery,
  parseCompareRuns,
  parseRunQuery,
  parseWeights,
  one,
  queryString,
  wildcard,
} from './query';
import { candidatesView, recommendedPerWeights } from '../analysis';
import { inputContract, readmeOf, shipVariants } from './ship';

/** The compiled views (see server.ts). */
export interface Views {
  render(res: Response, page: string, ctx: Record<string, unknown>): void;
  notFound(res: Response, message: string): void;
}

/**
 * A stage's liveness and progress as the running activity's heartbeats in Temporal tell it (issue
 * 15 §4). The dashboard reads no Temporal itself: the CLI passes a provider (see DashboardOptions).
 */
export interface StageProgress {
  runId: string;
  round: number;
  stage: string;
  /** 'lost': the last heartbeat is older than the heartbeat timeout ("worker lost — retrying when a worker polls") */
  liveness: 'running' | 'lost';
  /** e.g. "epoch 2/3, batch 40/157, 1 234 samples/s" */
  progress?: string;
  /** seconds left in the stage, estimated */
  etaSeconds?: number;
}

/** What the routes need besides the database: writes allowed?, the CSRF token forms carry, and progress. */
export interface RouteOptions {
  readOnly: boolean;
  csrf: string;
  stageProgress?: (campaignId: string) => Promise<StageProgress[]>;
}

/** The weights of a row as one short text: a/s/l/e. */
const wText = (w: Record<string, number> | null) => (w ? `${w.accuracy ?? 0}/${w.size ?? 0}/${w.latency ?? 0}/${w.energy ?? 0}` : '');

export function pageRoutes(db: Db, views: Views, artifacts: Artifacts, opts: RouteOptions = { readOnly: true, csrf: '' }): Router {
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
  const runsView = async (req: Request, res: Response, tab: 'runs' | 'parallel') => {
    const c = campaignOr404(req, res);
    if (!c) return;
    const q = parseRunQuery(req.query);
    const baseline = baselineOf(db, c.id);
    const page = runsPage(db, c.id, q);
    const notes = runNotes(
      db,
      page.rows.map((x) => x.runId),
    );
    const rows = page.rows.map((x) => ({ ...withDeltas(x, baseline), tags: notes.get(x.runId)?.tags ?? [], note: notes.get(x.runId)?.note ?? '' }));
    const keep = { filter: q.filterText, limit: q.limit === PAGE_SIZE ? undefined : q.limit };
    const base = { sort: q.sort, dir: q.dir, ...keep };
    const o = campaignOverview(db, c.id, { activity: true });
    await withProgress(c.id, o.running);
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
  /** Adds liveness and progress from the provider (when the CLI gave one) to the stages running now. */
  const withProgress = async (campaignId: string, running: Array<Record<string, unknown>>) => {
    if (!opts.stageProgress || running.length === 0) return;
    let live: StageProgress[];
    try {
      live = await opts.stageProgress(campaignId);
    } catch {
      for (const x of running) x.progress = 'progress unknown: Temporal did not answer';
      return;
    }
    for (const x of running) {
      const p = live.find((l) => l.runId === x.runId && l.round === x.round && l.stage === x.stage);
      if (!p) continue;
      x.lost = p.liveness === 'lost';
      x.progress = p.progress;
      x.eta = p.etaSeconds;
    }
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
    const all = runsAll(db, c.id, q);
    const notes = runNotes(
      db,
      all.map((x) => x.runId),
    );
    return { c, rows: all.map((x) => ({ ...withDeltas(x, baseline), tags: notes.get(x.runId)?.tags ?? [], note: notes.get(x.runId)?.note ?? '' })) };
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
    const budget = parseCandidateQuery({ filter: req.query.filter }).filterText; // checked like the candidates view's
    render(res, 'tradeoff', {
      title: `${c.name} · trade-off`,
      live: true,
      tab: 'tradeoff',
      campaign: c,
      baseline,
      latencyNote: latencyNote(baseline),
      filterText: budget,
    });
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

  // ---- candidates: every (run, round, deployed variant) and the baseline, within a budget
  const candidates = (req: Request, res: Response) => {
    const c = campaignOr404(req, res);
    if (!c) return null;
    const q = parseCandidateQuery(req.query);
    const weights = parseWeights(one(req.query, 'weights'));
    const view = candidatesView(db, c.id, q.clauses, { col: q.sort, dir: q.dir }, 20, weights);
    return { c, q, view, weights };
  };
  r.get('/campaigns/:id/candidates', (req, res) => {
    const x = candidates(req, res);
    if (!x) return;
    const { c, q, view } = x;
    const baseline = baselineOf(db, c.id);
    const picks = new Map<object, string[]>();
    for (const rec of view?.recommendations ?? []) if (rec.pick) picks.set(rec.pick, [...(picks.get(rec.pick) ?? []), wText(rec.weights)]);
    const pts = view?.points ?? [];
    const start = (q.page - 1) * CANDIDATE_PAGE;
    const shownPts = pts.slice(start, start + CANDIDATE_PAGE);
    const notes = runNotes(db, [...new Set(shownPts.map((p) => p.runId))]);
    const rows = shownPts.map((p) => ({
      ...p,
      id: `${p.runId}@${p.round}`,
      label: p.round === 0 ? 'baseline' : `run-${p.k} round ${p.round}`,
      ship: `/ship/${p.runId}/round-${p.round}`,
      weightsText: wText(p.weights),
      recommendedFor: picks.get(p) ?? [],
      tags: notes.get(p.runId)?.tags ?? [],
      ...vsBaseline({ ...p.values, accuracy: p.accuracy, deployedInt8: p.deployedInt8 }, baseline),
    }));
    const weightsText = typeof req.query.weights === 'string' && x.weights ? req.query.weights : undefined;
    const keep = { filter: q.filterText || undefined, weights: weightsText };
    const columns = CANDIDATE_SORTABLE.map((col) => {
      const active = q.sort === col;
      return {
        col,
        label: {
          run: 'model',
          round: 'round',
          accuracy: 'test acc',
          error: 'val error',
          bytes: 'size',
          latency: 'latency',
          energy: 'energy',
          objective: 'J (own w)',
          front: 'front',
        }[col],
        active,
        dir: q.dir,
        aria: active ? (q.dir === 'asc' ? 'ascending' : 'descending') : 'none',
        href: queryString({ sort: col, dir: active && q.dir === 'asc' ? 'desc' : 'asc', ...keep }),
      };
    });
    const pages = Math.max(1, Math.ceil(pts.length / CANDIDATE_PAGE));
    render(res, 'candidates', {
      title: `${c.name} · candidates`,
      live: true,
      tab: 'candidates',
      campaign: c,
      baseline,
      latencyNote: latencyNote(baseline),
      analysed: !!view,
      rows,
      columns,
      weightsText,
      recommended: (view?.recommendations ?? []).map((rec) => ({
        ...rec,
        mine: rec.runId === '',
        weightsText: wText(rec.weights),
        pickLabel: rec.pick ? (rec.pick.round === 0 ? 'the baseline' : `run-${rec.pick.k} round ${rec.pick.round}`) : null,
      })),
      total: pts.length,
      all: view?.all ?? 0,
      shown: rows.length,
      filterText: q.filterText,
      sort: q.sort,
      dir: q.dir,
      page: q.page,
      pages,
      next: q.page < pages ? queryString({ sort: q.sort, dir: q.dir, ...keep, page: q.page + 1 }) : null,
      prev: q.page > 1 ? queryString({ sort: q.sort, dir: q.dir, ...keep, page: q.page - 1 }) : null,
      exportQuery: queryString({ sort: q.sort, dir: q.dir, ...keep }),
      tradeoffQuery: queryString({ filter: keep.filter }),
      filterColumns: CANDIDATE_SORTABLE.join(', '),
      filterPlaceholder: 'e.g. latency<=0.45,bytes<=20000,accuracy>=0.85',
      filterHelp: 'accuracy (test) and error (validation) as fractions, bytes of the deployed weights, latency in ms, J',
    });
  });
  r.get('/campaigns/:id/candidates.json', (req, res) => {
    const x = candidates(req, res);
    if (!x) return;
    res.json({
      campaignId: x.c.id,
      budget: x.q.filterText,
      candidates: (x.view?.points ?? []).map((p) => ({
        runId: p.runId,
        k: p.k,
        round: p.round,
        weights: p.weights,
        accuracy: p.accuracy,
        ...p.values,
        objective: p.objective,
        onFront: p.onFront,
        deployed: p.deployedInt8 ? 'uint8' : 'float32',
        violates: p.violates,
      })),
      recommendations: (x.view?.recommendations ?? []).map((rec) => ({
        runId: rec.runId || null, // null: the vector given as ?weights=
        weights: rec.weights,
        pick: rec.pick ? { runId: rec.pick.runId, round: rec.pick.round } : null,
        objective: rec.objective,
      })),
    });
  });

  // ---- ship one candidate: its deployable variants, input contract, provenance, README
  const shipOf = (parts: string[], req: Request, res: Response) => {
    const last = parts[parts.length - 1] ?? '';
    const m = /^round-(\d+)$/.exec(last);
    if (!m) {
      notFound(res, `no candidate at ${req.path}: candidate pages look like /ship/<campaign>/run-3/round-2`);
      return null;
    }
    const runId = parts.slice(0, -1).join('/');
    const round = Number(m[1]);
    const d = runDetail(db, runId);
    const rd = d?.rounds.find((x) => x.round === round);
    if (!d || !rd) {
      notFound(res, `no candidate ${runId} round ${round}: pick one in a campaign's candidates table`);
      return null;
    }
    const c = getCampaign(db, d.campaignId)!;
    const variants = shipVariants(d, round, artifacts);
    const title = `${d.campaignName} · ${d.kind === 'baseline' ? 'baseline' : `run-${d.k} round ${round}`}`;
    const provenance: Array<[string, string]> = [
      ['campaign', c.id],
      ['run', d.runId],
      ['round', String(round)],
      ['weights (accuracy/size/latency/energy)', wText(d.kind === 'baseline' ? null : d.weights) || '— (the unpruned baseline)'],
      ['seed', String(c.seed)],
      ['campaign file sha256', c.spec_hash],
      ['prunewise', c.prunewise_version ?? '—'],
      ['tfjs', c.tfjs_version ?? '—'],
      ['training backend', c.backend ?? '—'],
    ];
    return { d, rd, c, round, variants, title, provenance };
  };
  r.get('/ship/*id', (req, res) => {
    const parts = wildcard(req.params.id);
    if (parts[parts.length - 1] === 'README.md') {
      const s = shipOf(parts.slice(0, -1), req, res);
      if (!s) return;
      const kind = typeof req.query.variant === 'string' ? req.query.variant : undefined;
      const v = kind ? s.variants.find((x) => x.kind === kind) : s.variants.find((x) => x.modelJson);
      if (!v)
        return void res
          .status(404)
          .type('text')
          .send(`no ${kind ?? 'tfjs'} variant recorded for this candidate\n`);
      const url = v.modelJson ? `${req.protocol}://${req.get('host')}${v.modelJson}` : null;
      res
        .type('text/markdown')
        .attachment('README.md')
        .send(readmeOf({ title: `${s.title} (${v.dtype})`, v, contract: inputContract(v, artifacts), url, provenance: s.provenance }));
      return;
    }
    const s = shipOf(parts, req, res);
    if (!s) return;
    const b = baselineOf(db, s.d.campaignId);
    const point = s.rd.point;
    render(res, 'ship', {
      title: `ship ${s.title}`,
      campaign: { id: s.c.id, name: s.c.name },
      heading: s.title,
      run: { runId: s.d.runId, kind: s.d.kind, k: s.d.k, campaignId: s.c.id, campaignName: s.c.name },
      round: s.round,
      point,
      objective: s.rd.objective,
      ...vsBaseline(point, b),
      latencyNote: latencyNote(b),
      variants: s.variants.map((v) => ({
        ...v,
        contract: inputContract(v, artifacts),
        readme: `/ship/${s.d.runId}/round-${s.round}/README.md?variant=${encodeURIComponent(v.kind)}`,
        manifestText: v.manifest ? JSON.stringify(v.manifest, null, 2) : null,
      })),
      provenance: s.provenance.map(([k, v]) => ({ k, v })),
      snippet: s.variants.find((v) => v.modelJson)
        ? readmeOf({
            title: s.title,
            v: s.variants.find((v) => v.modelJson)!,
            contract: inputContract(
              s.variants.find((v) => v.modelJson)!,
              artifacts,
            ),
            url: null,
            provenance: [],
          })
            .split('## Node, stock @tensorflow/tfjs (no tfjs-node)')[1]
            ?.trim()
        : null,
    });
  });

  // ---- notes and tags: the one thing the dashboard writes (CSRF-checked in server.ts; off with --read-only)
  r.post('/notes/*id', (req, res) => {
    const runId = wildcard(req.params.id).join('/');
    if (opts.readOnly) return void res.status(403).type('text').send('refused: this dashboard runs with --read-only (notes cannot be written)\n');
    const body = (req.body ?? {}) as Record<string, unknown>;
    const note = typeof body.note === 'string' ? body.note.replace(/\r\n/g, '\n') : '';
    const tags = typeof body.tags === 'string' ? body.tags : '';
    let ok: boolean;
    try {
      ok = setRunNote(db, runId, note, tags);
    } catch (e) {
      throw new BadParam((e as Error).message);
    }
    if (!ok) return notFound(res, `run "${runId}" not found: run ids look like <campaign>/run-3`);
    res.redirect(303, `/runs/${runId.split('/').map(encodeURIComponent).join('/')}#notes`);
  });

  // ---- compare 2–6 runs
  r.get('/compare', (req, res) => {
    const selection = parseCompareRuns(req.query);
    const runs = selection.map(({ runId: id, round }) => {
      const d = runDetail(db, id);
      if (!d) throw new BadParam(`runs: no run "${id}": select rows in a campaign's runs or candidates table`);
      if (round !== undefined && !d.rounds.some((x) => x.round === round && x.point)) throw new BadParam(`runs: run "${id}" has no completed round ${round}`);
      return d;
    });
    const settings = runs.map((x) => ({
      ...flatten(JSON.parse(getCampaign(db, x.campaignId)!.spec_json), 'spec'),
      ...flatten(x.weights, 'weights'),
      campaign: JSON.stringify(x.campaignId),
    }));
    const baselines = new Map<string, BaselineRow | undefined>();
    for (const x of runs) if (!baselines.has(x.campaignId)) baselines.set(x.campaignId, baselineOf(db, x.campaignId));
    const cards = compareCards(
      runs,
      baselines,
      selection.map((x) => x.round),
    );
    const curves = compareCurves(
      runs,
      cards.map((c) => c.label),
      baselines,
    );
    const campaignCount = new Set(runs.map((x) => x.campaignId)).size;
    render(res, 'compare', {
      title: 'compare runs',
      runs: cards,
      differing: differingSettings(settings),
      curves,
      curvesData: { curves },
      manyCampaigns: campaignCount > 1,
      campaignCount,
      latencyNote: latencyNote(baselines.get(runs[0].campaignId)),
    });
  });

  // ---- one run
  r.get('/runs/*id', (req, res) => {
    const id = wildcard(req.params.id).join('/');
    const d = runDetail(db, id);
    if (!d) return notFound(res, `run "${id}" not found: run ids look like <campaign>/run-3`);
    const b = baselineOf(db, d.campaignId);
    const rounds = runRounds(d, b).map((x) => ({
      ...x,
      ship: x.round === 0 && d.kind === 'run' && b ? `/ship/${b.runId}/round-0` : `/ship/${d.runId}/round-${x.round}`,
    }));
    const roundNos = d.rounds.filter((x) => x.round > 0).map((x) => x.round);
    render(res, 'run', {
      title: d.kind === 'baseline' ? `${d.campaignName} · baseline` : `${d.campaignName} · run-${d.k}`,
      live: true,
      run: d,
      notes: runNote(db, d.runId),
      readOnly: opts.readOnly,
      csrf: opts.csrf,
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
