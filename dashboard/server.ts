// The dashboard: Express + Handlebars, server-rendered from SQLite (through db/ only), charts by
// ECharts served from node_modules, live over Server-Sent Events. It writes one thing: people's
// notes and tags per run (POST, checked against a per-process CSRF token; refused with
// `readOnly`). Binds 127.0.0.1 unless told otherwise (see cli/index.ts); with `token` every request
// must carry it (the URL printed at start sets a cookie). This file only wires the app: headers,
// access, views, static files, and the routes of query / present / routes / live / artifacts / ship.
import express, { type Request, type Response } from 'express';
import Handlebars from 'handlebars';
import helmet from 'helmet';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { damagedLine, isCorruptError, quickCheck, type Db } from '../db';
import { PACKAGE_ROOT } from '../platform/version';
import type { ArtifactStore } from '../blobstore';
import { createArtifacts } from './artifacts';
import { createLive } from './live';
import { registerHelpers } from './present';
import { BadParam } from './query';
import { pageRoutes, type StageProgress, type Views } from './routes';

export type { StageProgress };

// Views and static files are read from the source tree (the build does not copy them into dist/).
const VIEWS = path.join(PACKAGE_ROOT, 'dashboard', 'views');
const PUBLIC = path.join(PACKAGE_ROOT, 'dashboard', 'public');
const ECHARTS = path.join(path.dirname(require.resolve('echarts')), 'echarts.min.js');
const PAGES = ['index', 'campaign', 'candidates', 'tradeoff', 'parallel', 'compare', 'run', 'ship', 'error'];
const CHART_PAGES = ['tradeoff', 'parallel', 'compare', 'run'];

export interface DashboardOptions {
  /** the home folder: artifacts are downloaded from its artifacts/ subfolder only */
  homeDir?: string;
  /** the artifact store recorded artifacts are checked out from (default: PRUNEWISE_ARTIFACTS for homeDir) */
  store?: ArtifactStore;
  /** how often to look for writes by other processes (ms) */
  pollMs?: number;
  /** refuse every write (notes and tags): `prunewise dashboard --read-only` */
  readOnly?: boolean;
  /**
   * every request must carry this token: `?token=` once (it then lives in an HttpOnly, SameSite=Strict
   * cookie), the cookie, or `Authorization: Bearer`. The CLI sets one when --host is not loopback.
   */
  token?: string;
  /**
   * liveness and progress of the stages running now, from the running activities' heartbeats in
   * Temporal (the CLI's reader); without it the dashboard shows what SQLite says ("running").
   */
  stageProgress?: (campaignId: string) => Promise<StageProgress[]>;
}

const TOKEN_COOKIE = 'prunewise_token';

/** Constant-time string equality (tokens). */
function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function cookieOf(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

/** The access check of a dashboard started with a token (see DashboardOptions.token). */
function requireToken(token: string) {
  return (req: Request, res: Response, next: express.NextFunction) => {
    const q = typeof req.query.token === 'string' ? req.query.token : undefined;
    if (q !== undefined && same(q, token)) {
      res.cookie(TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/' });
      const u = new URL(req.originalUrl, 'http://x');
      u.searchParams.delete('token');
      return res.redirect(303, u.pathname + u.search);
    }
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const c = cookieOf(req, TOKEN_COOKIE);
    if ((auth !== undefined && same(auth, token)) || (c !== undefined && same(c, token))) return next();
    res.status(401).type('text').send('this dashboard asks for the token it printed at start: open the URL `prunewise dashboard` printed (…/?token=…)\n');
  };
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
  if (opts.token) app.use(requireToken(opts.token));
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

  // a damaged database (PRAGMA quick_check at start, or SQLite reporting corruption while serving):
  // every page says so, with what to do, instead of answering 500 or showing nothing
  let damaged = quickCheck(db);
  const damagedPage = (res: Response) => {
    const message = damagedLine(db.name, damaged);
    res.status(503);
    return /\.(csv|json)$/.test(res.req.path)
      ? res.type('text').send(`${message}\n`)
      : res.type('html').send(views.error({ title: 'database damaged', message }));
  };
  app.use((_req, res, next) => (damaged.length ? damagedPage(res) : next()));

  // writes (notes): a form of this server's pages only — its per-process CSRF token, and a same-origin request
  const csrf = crypto.randomBytes(24).toString('base64url');
  app.use(express.urlencoded({ extended: false, limit: '64kb' }));
  app.use((req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next();
    const site = req.headers['sec-fetch-site'];
    const origin = req.headers.origin;
    const given = typeof req.body?._csrf === 'string' ? (req.body._csrf as string) : (req.headers['x-csrf-token'] as string | undefined);
    // (with helmet's Referrer-Policy: no-referrer, Chromium sends `Origin: null` on same-origin form posts; Sec-Fetch-Site still tells)
    const crossSite =
      (site !== undefined && site !== 'same-origin' && site !== 'none') ||
      (origin !== undefined && origin !== 'null' && origin !== `${req.protocol}://${req.get('host')}`);
    if (crossSite || given === undefined || !same(given, csrf))
      return void res
        .status(403)
        .type('text')
        .send('refused: a write must come from a form of this dashboard (missing or wrong CSRF token); reload the page and try again\n');
    next();
  });

  app.use(pageRoutes(db, views, artifacts, { readOnly: !!opts.readOnly, csrf, stageProgress: opts.stageProgress }));
  // artifact download: files of recorded artifacts, inside <home>/artifacts, nothing else
  app.get('/artifacts/*file', artifacts.download);
  app.get('/events', live.events);
  app.closeStreams = live.close;

  app.use((req, res) => views.notFound(res, `no page at ${req.path}`));
  app.use((err: Error, req: Request, res: Response, _next: express.NextFunction) => {
    if (isCorruptError(err)) {
      damaged = quickCheck(db);
      if (!damaged.length) damaged = [err.message];
      return damagedPage(res);
    }
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
