// The dashboard in a real browser: Debian's Chromium driven by playwright-core, over a real SQLite
// file seeded through db/ (a synthetic campaign of 300 runs × 5 rounds, three still running).
// Saves a screenshot of each view in light and dark: under docs/screenshots/ with PRUNEWISE_SCREENSHOTS=1
// (to refresh the README's pictures), else in a temporary folder (a test run leaves the clone clean).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Server } from 'node:http';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCampaign } from '../bench/seed-campaign';
import { createDashboard, type Dashboard } from '../dashboard/server';
import { openDb } from '../db';
import { tmpHome } from './helpers';

const CHROMIUM = process.env.PRUNEWISE_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.PRUNEWISE_SCREENSHOTS ? path.join(__dirname, '..', 'docs', 'screenshots') : fs.mkdtempSync(path.join(os.tmpdir(), 'pw-shots-'));
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const DEMO = 'lenet-sweep-20261128-101500-5eed';
const XSS = 'xss-20261128-101500-0bad';
const XSS_NAME = '<script>alert(1)</script>';

let home: string;
let app: Dashboard;
let server: Server;
let base: string;
let browser: Browser;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (npm run setup does) or set PRUNEWISE_CHROMIUM`);
  home = tmpHome('browser');
  const db = openDb(path.join(home, 'prunewise.db'));
  seedCampaign(db, { id: DEMO, name: 'lenet-sweep', runs: 300, rounds: 5, running: 3, seed: 7 });
  seedCampaign(db, { id: XSS, name: XSS_NAME, runs: 3, rounds: 2, seed: 3 });
  app = createDashboard(db, { homeDir: home, pollMs: 150 });
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  fs.mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  app?.closeStreams();
  server?.close();
  server?.closeAllConnections();
});

interface Watch {
  problems: string[];
}

/** A page that records console errors, page errors, CSP violations and any request off this machine. */
async function open(ctx: BrowserContext): Promise<{ page: Page; watch: Watch }> {
  const page = await ctx.newPage();
  const watch: Watch = { problems: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') watch.problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => watch.problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const host = new URL(r.url()).hostname;
    if (!['127.0.0.1', 'localhost'].includes(host) && !r.url().startsWith('data:')) watch.problems.push(`request off this machine: ${r.url()}`);
  });
  page.on('dialog', (d) => {
    watch.problems.push(`dialog opened: ${d.message()}`);
    void d.dismiss();
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  return { page, watch };
}

const VIEWS: Array<[string, string, string | null]> = [
  ['campaigns', '/', null],
  ['campaign', `/campaigns/${DEMO}`, null],
  ['candidates', `/campaigns/${DEMO}/candidates?filter=${encodeURIComponent('latency<=0.5,accuracy>=0.86')}`, null],
  ['tradeoff', `/campaigns/${DEMO}/tradeoff`, '#tradeoff-chart[data-ready]'],
  ['parallel', `/campaigns/${DEMO}/parallel`, '#parallel-chart[data-ready]'],
  ['compare', `/compare?runs=${DEMO}/run-4,${DEMO}/run-9@2,${XSS}/run-1`, '#compare-flops canvas'],
  ['run', `/runs/${DEMO}/run-4`, '#run-rounds-chart canvas'],
];

const rowsOnScreen = (page: Page) => page.$$eval('#runs tbody tr[data-run]', (trs) => trs.map((t) => Number(t.getAttribute('data-run'))));

describe('dashboard in Chromium', () => {
  for (const theme of ['light', 'dark'] as const) {
    it(`every view loads (${theme}): no console errors, no CSP violations, nothing fetched off this machine, no serious axe violations`, async () => {
      const ctx = await browser.newContext({ colorScheme: theme, viewport: { width: 1400, height: 900 } });
      const { page, watch } = await open(ctx);
      for (const [name, url, ready] of VIEWS) {
        const r = await page.goto(base + url);
        expect(r?.status(), url).toBe(200);
        if (ready) await page.waitForSelector(ready, { timeout: 20_000 });
        if (await page.$('#live-state')) await page.waitForSelector('#live-state[data-state="live"]', { timeout: 10_000 });
        expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe(theme === 'dark' ? 'rgb(13, 17, 23)' : 'rgb(255, 255, 255)');
        await page.evaluate(AXE);
        const violations = (await page.evaluate(async () => {
          const res = await (
            window as unknown as { axe: { run: (d: Document, o: object) => Promise<{ violations: Array<{ id: string; impact: string; nodes: unknown[] }> }> } }
          ).axe.run(document, { resultTypes: ['violations'] });
          return res.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
        })) as Array<{ id: string; impact: string }>;
        expect(
          violations.filter((v) => v.impact === 'serious' || v.impact === 'critical'),
          `${name} (${theme})`,
        ).toEqual([]);
        await page.screenshot({ path: path.join(SHOTS, `${name}-${theme}.png`) });
      }
      expect(watch.problems).toEqual([]);
      await ctx.close();
    });
  }

  it('sort, filter and pagination round-trip through the URL; the CSV starts with the rows on screen', async () => {
    const ctx = await browser.newContext();
    const { page, watch } = await open(ctx);
    await page.goto(`${base}/campaigns/${DEMO}`);
    await page.click('#runs thead a:text-is("latency")');
    await page.waitForURL(/sort=latency&dir=asc/);
    const first = await rowsOnScreen(page);
    expect(first).toHaveLength(50);
    await page.click('#next-page');
    await page.waitForURL(/after=/);
    const second = await rowsOnScreen(page);
    expect(second).toHaveLength(50);
    expect(second.some((k) => first.includes(k))).toBe(false);
    const secondUrl = page.url();
    const again = await ctx.newPage();
    await again.goto(secondUrl);
    expect(await rowsOnScreen(again)).toEqual(second); // a shared link reproduces the view
    await page.fill('#filter', 'front=1,accuracy>=0.86');
    await page.click('form.filter button[type="submit"]');
    await page.waitForURL(/filter=front%3D1%2Caccuracy%3E%3D0\.86/);
    expect(page.url()).toContain('sort=latency');
    const filtered = await rowsOnScreen(page);
    expect(filtered.length).toBeGreaterThan(0);
    expect(await page.$$eval('#runs tbody tr[data-run]', (trs) => trs.every((t) => t.querySelector('.badge')?.textContent === 'front'))).toBe(true);
    const csvHref = await page.getAttribute('a:text-is("CSV")', 'href');
    const csv = (await (await fetch(base + csvHref!)).text()).trim().split('\n');
    expect(csv.slice(1, 1 + filtered.length).map((l) => Number(l.split(',')[0]))).toEqual(filtered);
    expect(watch.problems).toEqual([]);
    await ctx.close();
  });

  it('a run written to SQLite by another process appears on the open page over SSE', async () => {
    const ctx = await browser.newContext();
    const { page, watch } = await open(ctx);
    await page.goto(`${base}/campaigns/${DEMO}/runs?sort=run&dir=desc`);
    await page.waitForSelector('#live-state[data-state="live"]');
    expect(await page.$('tr[data-run="301"]')).toBeNull();
    // a separate Node process writes as a worker's record activity does
    const db = require.resolve('../dist/db');
    execFileSync(process.execPath, [
      '-e',
      `const d = require(${JSON.stringify(db)}); const db = d.openDb(${JSON.stringify(path.join(home, 'prunewise.db'))});
       d.applyRecord(db, [{ op: 'run', campaignId: ${JSON.stringify(DEMO)}, runId: ${JSON.stringify(`${DEMO}/run-301`)}, k: 301, kind: 'run', weights: { accuracy: 1, size: 0, latency: 0, energy: 0 }, state: 'running' },
         { op: 'stage', runId: ${JSON.stringify(`${DEMO}/run-301`)}, round: 1, stage: 'score', state: 'running', attempts: 1 }]); db.close();`,
    ]);
    await page.waitForSelector('tr[data-run="301"]', { timeout: 15_000 });
    expect(await page.textContent('tr[data-run="301"]')).toContain('round 1 score');
    expect(watch.problems).toEqual([]);
    await ctx.close();
  });

  it('clicking a point on the Pareto front opens that run', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const { page, watch } = await open(ctx);
    await page.goto(`${base}/campaigns/${DEMO}/tradeoff?x=bytes&y=error`);
    await page.waitForSelector('#tradeoff-chart[data-ready]');
    expect(await page.inputValue('#x-axis')).toBe('bytes'); // axes come from the URL
    // a front point at least 12 px from every other point of the front and the baseline
    const target = await page.evaluate(() => {
      const el = document.getElementById('tradeoff-chart')!;
      const chart = (window as unknown as { echarts: { getInstanceByDom: (e: HTMLElement) => any } }).echarts.getInstanceByDom(el);
      const front = chart.getOption().series[1].data as number[][];
      const px = front.map((v) => chart.convertToPixel({ seriesIndex: 1 }, [v[0], v[1]]) as number[]);
      const i = px.findIndex((p, a) => px.every((q, b) => a === b || Math.hypot(p[0] - q[0], p[1] - q[1]) > 12));
      const box = el.getBoundingClientRect();
      return { x: box.left + px[i][0], y: box.top + px[i][1], k: front[i][3], round: front[i][4] };
    });
    expect(target.k).toBeGreaterThan(0);
    await page.mouse.click(target.x, target.y);
    await page.waitForURL(/\/runs\//);
    expect(decodeURIComponent(new URL(page.url()).pathname)).toBe(`/runs/${DEMO}/run-${target.k}`);
    expect(await page.textContent('h1')).toContain(`run-${target.k}`);
    expect(watch.problems).toEqual([]);
    await ctx.close();
  });

  it('a range selected on a parallel-coordinates axis filters the runs table', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const { page, watch } = await open(ctx);
    await page.goto(`${base}/campaigns/${DEMO}/parallel`);
    await page.waitForSelector('#parallel-chart[data-ready]');
    const before = await page.textContent('#runs-part p');
    // the same action a drag on the test-accuracy axis dispatches
    await page.evaluate(() => {
      const chart = (window as unknown as { echarts: { getInstanceByDom: (e: HTMLElement) => any } }).echarts.getInstanceByDom(
        document.getElementById('parallel-chart')!,
      );
      chart.dispatchAction({ type: 'axisAreaSelect', parallelAxisId: 'ax-4', intervals: [[0.875, 0.9]] });
    });
    await page.waitForFunction((b) => document.querySelector('#runs-part p')?.textContent !== b, before);
    expect(page.url()).toContain('filter=accuracy%3E%3D0.875%2Caccuracy%3C%3D0.9');
    const accs = await page.$$eval('#runs tbody tr[data-run] td:nth-child(8)', (tds) => tds.map((t) => parseFloat(t.textContent!)));
    expect(accs.length).toBeGreaterThan(0);
    for (const a of accs) expect(a).toBeGreaterThanOrEqual(87.5);
    expect(await page.getAttribute('#parallel-link', 'href')).toContain('/runs?');
    // the shared link shows the same selection on the axis again
    const shown = await rowsOnScreen(page);
    await page.goto(page.url());
    await page.waitForSelector('#parallel-chart[data-ready]');
    expect(await rowsOnScreen(page)).toEqual(shown);
    const active = await page.evaluate(() => {
      const chart = (window as unknown as { echarts: { getInstanceByDom: (e: HTMLElement) => any } }).echarts.getInstanceByDom(
        document.getElementById('parallel-chart')!,
      );
      return chart.getModel().getComponent('parallelAxis', 4).activeIntervals;
    });
    expect(active).toEqual([[0.875, 0.9]]);
    expect(watch.problems).toEqual([]);
    await ctx.close();
  });

  it('the theme toggle is remembered across pages and reloads', async () => {
    const ctx = await browser.newContext({ colorScheme: 'light' });
    const { page, watch } = await open(ctx);
    await page.goto(`${base}/`);
    expect(await page.textContent('#theme-toggle')).toBe('theme: system');
    await page.click('#theme-toggle'); // system → light
    await page.click('#theme-toggle'); // light → dark
    expect(await page.getAttribute('html', 'data-theme')).toBe('dark');
    await page.goto(`${base}/campaigns/${DEMO}/tradeoff`);
    await page.waitForSelector('#tradeoff-chart[data-ready]');
    expect(await page.getAttribute('html', 'data-theme')).toBe('dark');
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(13, 17, 23)');
    await page.reload();
    expect(await page.textContent('#theme-toggle')).toBe('theme: dark');
    await page.click('#theme-toggle'); // dark → system
    expect(await page.getAttribute('html', 'data-theme')).toBeNull();
    expect(watch.problems).toEqual([]);
    await ctx.close();
  });

  it('candidates view: a budget typed in the filter keeps only the models inside it, highlights the recommendation, and draws the budget on the trade-off chart', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const { page, watch } = await open(ctx);
    const all = (await (await fetch(`${base}/campaigns/${DEMO}/candidates.json`)).json()) as {
      candidates: Array<{ latencyMs: number; bytes: number; violates: string[] }>;
    };
    // a bound that leaves models within the hard constraints (heavily pruned ones break the accuracy limit)
    const okLats = all.candidates.filter((c) => c.violates.length === 0).map((c) => c.latencyMs);
    const lat = okLats.sort((a, b) => a - b)[Math.floor(okLats.length / 2)];
    await page.goto(`${base}/campaigns/${DEMO}/candidates`);
    await page.click('nav.tabs a:text-is("candidates")');
    await page.fill('#filter', `latency<=${lat}`);
    await page.click('form.filter button[type="submit"]');
    await page.waitForURL(/filter=latency%3C%3D/);
    const count = await page.textContent('#candidates-count');
    const n = Number(/^(\d+) of (\d+) candidates fit/.exec(count!.trim())![1]);
    expect(n).toBe(all.candidates.filter((c) => c.latencyMs <= lat).length);
    expect(n).toBeGreaterThan(100); // several rounds per run, not one row per run
    // every row on screen is inside the budget (latency column, ms)
    const lats = await page.$$eval('#candidates tbody tr td:nth-child(7)', (tds) => tds.map((t) => parseFloat(t.textContent!)));
    expect(lats.length).toBe(100);
    for (const l of lats) expect(l).toBeLessThanOrEqual(lat + 5e-4);
    // sort by size: the column header link keeps the budget
    await page.click('#candidates thead a:text-is("size")');
    await page.waitForURL(/sort=bytes/);
    expect(page.url()).toContain('filter=latency');
    // the recommendation per weight vector is highlighted in the table when it is on this page
    const picks = await page.$$eval('#recommended a[data-pick]', (as) => as.map((a) => a.getAttribute('data-pick')));
    expect(picks.length).toBeGreaterThan(0);
    // narrowed to the first pick's run (a subset holding the pick: it stays the lowest J there), its row is highlighted
    const k = /run-(\d+)@/.exec(picks[0]!)![1];
    await page.goto(`${base}/campaigns/${DEMO}/candidates?filter=${encodeURIComponent(`latency<=${lat},run=${k}`)}`);
    const highlighted = await page.$$eval('#candidates tr.recommended-row', (trs) => trs.map((t) => t.getAttribute('data-candidate')));
    expect(highlighted).toContain(picks[0]);
    expect(await page.textContent(`#candidates tr[data-candidate="${picks[0]}"]`)).toContain('★ recommended for');
    await page.goto(`${base}/campaigns/${DEMO}/candidates?filter=${encodeURIComponent(`latency<=${lat}`)}`);
    // the budget on the trade-off chart: a dashed line at the latency bound, dominated points toggled off and on
    await page.click('a:text-is("Show the budget on the trade-off chart")');
    await page.waitForSelector('#tradeoff-chart[data-ready]');
    expect(await page.getAttribute('#tradeoff-chart', 'data-budget-lines')).toBe('1');
    expect(await page.textContent('#tradeoff-count')).toContain(`${n} within the budget`);
    const dominatedShown = () =>
      page.evaluate(() => {
        const chart = (window as unknown as { echarts: { getInstanceByDom: (e: HTMLElement) => any } }).echarts.getInstanceByDom(
          document.getElementById('tradeoff-chart')!,
        );
        return chart.getOption().legend[0].selected.dominated;
      });
    expect(await dominatedShown()).toBe(true);
    await page.uncheck('#show-dominated');
    expect(await dominatedShown()).toBe(false);
    expect(page.url()).toContain('dominated=0');
    expect(watch.problems).toEqual([]);
    await ctx.close();
  });

  it('compare from a selection: checked rows → compare, absolute values and deltas, readable for two campaigns', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const { page, watch } = await open(ctx);
    await page.goto(`${base}/campaigns/${DEMO}/runs?sort=run&dir=asc`);
    await page.check('#runs tr[data-run="2"] input[type="checkbox"]');
    await page.check('#runs tr[data-run="5"] input[type="checkbox"]');
    await page.check('#runs tr.baseline input[type="checkbox"]');
    await page.click('#compare-selected');
    await page.waitForURL(/\/compare\?/);
    await page.waitForSelector('#compare-flops canvas');
    const labels = await page.$$eval('#objectives tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
    expect(labels).toEqual(['baseline', 'run-2', 'run-5']);
    // absolute values beside the deltas: test accuracy in %, size in KB, latency in ms
    const first = await page.$$eval('#objectives tbody tr:nth-child(2) td', (tds) => tds.map((t) => t.textContent));
    expect(first[4]).toMatch(/^\d+\.\d\d %$/);
    expect(first[6]).toMatch(/KB$/);
    expect(first[8]).toMatch(/ms$/);
    // candidates of two campaigns (one named like an attack): everything fits the window, the name stays text
    await page.goto(`${base}/campaigns/${XSS}/candidates`);
    await page.check(`#candidates tr[data-candidate="${XSS}/run-1@2"] input`);
    await page.check(`#candidates tr[data-candidate="${XSS}/run-2@1"] input`);
    await page.click('#compare-selected');
    await page.waitForURL(/\/compare\?/);
    expect((await page.$$eval('#objectives tbody tr td:first-child', (tds) => tds.map((t) => t.textContent))).sort()).toEqual(['run-1 r2', 'run-2 r1']);
    await page.goto(`${base}/compare?runs=${DEMO}/run-4,${DEMO}/run-9@2,${XSS}/run-1@1`);
    await page.waitForSelector('#compare-latency canvas');
    expect(await page.textContent('#objectives')).toContain(`${XSS_NAME} run-1 r1`);
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    expect(watch.problems).toEqual([]);
    await ctx.close();
  });

  it('a note with an HTML payload is saved from the run page and shown as text, with its tags in the runs table', async () => {
    const ctx = await browser.newContext();
    const { page, watch } = await open(ctx);
    const payload = '<img src=x onerror="alert(1)"><b>bold?</b> </textarea><script>alert(2)</script>';
    await page.goto(`${base}/runs/${DEMO}/run-7`);
    await page.click('#note-edit summary');
    await page.fill('#note-input', payload);
    await page.fill('#tags-input', 'keep, <i>tag</i>');
    await page.click('#note-save');
    await page.waitForURL(/run-7#notes$/);
    expect(await page.textContent('#note-text')).toBe(payload);
    expect(await page.$$eval('#note-tags .tag', (ts) => ts.map((t) => t.textContent))).toEqual(['keep', '<i>tag</i>']);
    expect(await page.$('#notes img')).toBeNull();
    expect(await page.$('#notes b')).toBeNull();
    expect(await page.inputValue('#note-input')).toBe(payload); // the form holds it again, intact
    expect(await page.textContent('#note-edit summary')).toBe('edit the note and tags');
    await page.goto(`${base}/campaigns/${DEMO}/runs?sort=run&dir=asc`);
    expect(await page.$$eval('#runs tr[data-run="7"] .tag', (ts) => ts.map((t) => t.textContent))).toEqual(['keep', '<i>tag</i>']);
    expect(watch.problems).toEqual([]); // no dialog opened, no CSP violation
    await ctx.close();
  });

  it('a campaign named <script>alert(1)</script> renders as text', async () => {
    const ctx = await browser.newContext();
    const { page, watch } = await open(ctx);
    for (const url of ['/', `/campaigns/${XSS}`, `/runs/${XSS}/run-1`]) {
      await page.goto(base + url);
      expect(await page.textContent('body')).toContain(XSS_NAME);
      expect(await page.$$eval('script', (ss) => ss.filter((s) => s.textContent?.includes('alert(1)')).length)).toBe(0);
    }
    expect(watch.problems).toEqual([]); // no dialog opened
    await ctx.close();
  });
});
