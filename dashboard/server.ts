// The dashboard: Express + Handlebars, server-rendered from SQLite (through db/ only), charts by
// ECharts served from node_modules, live over Server-Sent Events. Read-only: it never writes a
// row. Binds 127.0.0.1 unless told otherwise (see cli/index.ts). This file only wires the app:
// headers, views, static files, and the routes of query / present / routes / live / artifacts.
import express, { type Request, type Response } from 'express';
import Handlebars from 'handlebars';
import helmet from 'helmet';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Db } from '../db';
import { PACKAGE_ROOT } from '../platform/version';
import type { ArtifactStore } from '../blobstore';
import { createArtifacts } from './artifacts';
import { createLive } from './live';
import { registerHelpers } from './present';
import { BadParam } from './query';
import { pageRoutes, type Views } from './routes';

// Views and static files are read from the source tree (the build does not copy them into dist/).
const VIEWS = path.join(PACKAGE_ROOT, 'dashboard', 'views');
const PUBLIC = path.join(PACKAGE_ROOT, 'dashboard', 'public');
const ECHARTS = path.join(path.dirname(require.resolve('echarts')), 'echarts.min.js');
const PAGES = ['index', 'campaign', 'tradeoff', 'parallel', 'compare', 'run', 'error'];
const CHART_PAGES = ['tradeoff', 'parallel', 'compare', 'run'];

export interface DashboardOptions {
  /** the home folder: artifacts are downloaded from its artifacts/ subfolder only */
  homeDir?: string;
  /** the artifact store recorded artifacts are checked out from (default: PRUNEWISE_ARTIFACTS for homeDir) */
  store?: ArtifactStore;
  /** how often to look for writes by other processes (ms) */
  pollMs?: number;
}

export interface Dashboard extends express.Express {
  /** ends the live-update streams (call before server.close()) */
  closeStreams(): void;
}

/** Compiles every view once; partials are the `_name.hbs` files. */
function loadViews(): Views & { error(ctx: { title: string; message: string }): string } {
  const hb = Handlebars.create();
  registerHelpers(hb);
  for (const f of fs.readdirSync(VIEWS).filter((f) => f.startsWith('_'))) hb.registerPartial(f.slice(1, -4), fs.readFileSync(path.join(VIEWS, f), 'utf8'));
  const pages = Object.fromEntries(PAGES.map((n) => [n, hb.compile(fs.readFileSync(path.join(VIEWS, `${n}.hbs`), 'utf8'))]));
  return {
    render: (res, page, ctx) => res.type('html').send(pages[page]({ page, charts: CHART_PAGES.includes(page), ...ctx })),
    notFound: (res, message) =>
      res
        .status(404)
        .type('html')
        .send(pages.error({ title: 'not found', message })),
    error: (ctx) => pages.error(ctx),
  };
}

export function createDashboard(db: Db, opts: DashboardOptions = {}): Dashboard {
  const views = loadViews();
  const artifacts = createArtifacts(db, opts.homeDir ? path.resolve(opts.homeDir) : undefined, opts.store);
  const live = createLive(db, opts.pollMs);

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

  app.use(pageRoutes(db, views, artifacts));
  // artifact download: files of recorded artifacts, inside <home>/artifacts, nothing else
  app.get('/artifacts/*file', artifacts.download);
  app.get('/events', live.events);
  app.closeStreams = live.close;

  app.use((req, res) => views.notFound(res, `no page at ${req.path}`));
  app.use((err: Error, req: Request, res: Response, _next: express.NextFunction) => {
    const bad = err instanceof BadParam;
    const status = bad ? 400 : ((err as { status?: number }).status ?? 500);
    if (/\.(csv|json)$/.test(req.path)) return res.status(status).type('text').send(`${err.message}\n`);
    res
      .status(status)
      .type('html')
      .send(views.error({ title: bad ? 'bad request' : status === 404 ? 'not found' : 'error', message: err.message }));
  });
  return app;
}
