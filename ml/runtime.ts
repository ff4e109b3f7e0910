// Deployment runtimes (campaign `target.runtime`): where a candidate's latency is measured, never
// the backend that trained it. tfjs-wasm and tfjs-node time in a child Node process with that one
// backend (ml/runtime-child.ts); chromium-wasm and chromium-webgl time in a page of headless
// Chromium (Debian's /usr/bin/chromium driven by playwright-core) served from 127.0.0.1 with the
// stock tfjs UMD bundles from node_modules. Both run the same runner (ml/runtime-runner.ts); the
// paired-speedup estimator stays here (ml/measure.ts, ml/speedup.ts) and asks for one pair at a time.
// tflite converts the saved folders to TFLite in a child Python process (the .venv's TensorFlow) and
// times them with the TFLite interpreter (XNNPACK), the same runner protocol (ml/tflite.ts, ml/py/deploy.py).
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../platform/version';
import { RUNTIMES_NOT_YET, type RuntimeName } from './catalog';
import type { ChannelStepCurve, LatencyTable, MeasureTableOptions } from './latency-table';
import type { ChildRequest } from './runtime-child';
import { createRunner } from './runtime-runner';
import { openTflite, type DeployData } from './tflite';

/** What a latency was measured on: recorded with every latency (deployable manifest, baseline latency.json). */
export interface RuntimeInfo {
  runtime: RuntimeName;
  /** the tfjs backend timing inside the runtime (wasm, tensorflow, webgl); tflite: `tflite xnnpack` (or `tflite builtin`) */
  backend: string;
  /** the tfjs runtimes' tfjs version */
  tfjsVersion?: string;
  /** where the runner ran */
  where: 'child Node process' | 'headless Chromium page' | 'child Python process';
  host: string;
  node?: string;
  /** the native library under tfjs-node */
  library?: string;
  /** Chromium's version (playwright's browser.version()) */
  browser?: string;
  /** WebGL's UNMASKED_RENDERER_WEBGL (SwiftShader here: a software renderer, so no speed claim) */
  webglRenderer?: string;
  /** a software WebGL renderer: its timings say nothing about a GPU */
  softwareRenderer?: boolean;
  wasm?: { simd: boolean; threads: boolean };
  /** tflite: TensorFlow's version (its tf.lite.Interpreter), Python's, the interpreter's threads and delegate */
  tensorflowVersion?: string;
  python?: string;
  threads?: number;
  delegate?: string;
  /** tflite: what each timed model was converted to (float32, or int8: full-integer) */
  variants?: Record<string, string>;
  /** tflite int8: what the converter was calibrated on */
  calibration?: string;
}

/** An open runtime with the models loaded: the runner's calls (ml/runtime-runner.ts), then close. */
export interface RuntimeSession {
  info: RuntimeInfo;
  warmup(n: number): Promise<void>;
  pair(i: number): Promise<[number, number]>;
  times(n: number): Promise<number[]>;
  close(): Promise<void>;
}

export interface RuntimeModels {
  /** the baseline's model folder (absolute) */
  baseline: string;
  /** the candidate's model folder (absolute); without it only `times` works */
  candidate?: string;
  batchSize: number;
  /**
   * tflite only: time the candidate as full-integer int8 TFLite (the 8-bit variant the round deploys),
   * calibrated on `calibration` (the campaign's validation inputs, `shape` one input's) when given.
   * The tfjs runtimes load uint8 weights dequantized: their 8-bit variant runs float32 kernels.
   */
  candidateVariant?: 'float32' | 'int8';
  calibration?: DeployData & { shape: number[] };
}

/**
 * Opens `runtime` with the saved model folders loaded.
 * @throws Error one line naming the runtime and the fix (tflite: DeployError; ModelError for a layer its converter refuses)
 */
export async function openRuntime(runtime: RuntimeName, m: RuntimeModels): Promise<RuntimeSession> {
  const notYet = RUNTIMES_NOT_YET[runtime];
  if (notYet) throw new Error(`target.runtime: ${notYet}`);
  if (runtime === 'tfjs-wasm' || runtime === 'tfjs-node') return openChild(runtime, m);
  if (runtime === 'chromium-wasm' || runtime === 'chromium-webgl') return openChromium(runtime, m);
  if (runtime === 'tflite') return openTfliteRuntime(m);
  throw new Error(`target.runtime: unknown runtime "${runtime}"`);
}

// ------------------------------------------------------------------------------- child Node process

function childScript(): string {
  // compiled next to this file; from TypeScript sources (tests), the build output in dist/
  const here = path.join(__dirname, 'runtime-child.js');
  if (fs.existsSync(here)) return here;
  const built = path.join(PACKAGE_ROOT, 'dist', 'ml', 'runtime-child.js');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\``);
  return built;
}

interface Child {
  call<T>(req: ChildRequest): Promise<T>;
  close(): Promise<void>;
}

function startChild(): Child {
  const child: ChildProcess = fork(childScript(), [], { execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  let next = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (msg: { id: number; ok: boolean; value?: unknown; error?: string }) => {
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.ok) p?.resolve(msg.value);
    else p?.reject(new Error(`runtime child: ${msg.error}`));
  });
  child.on('exit', (code, signal) => {
    const last = stderr.trim().split('\n').at(-1) ?? '';
    for (const p of pending.values()) p.reject(new Error(`runtime child exited (${signal ?? code})${last ? `: ${last}` : ''}`));
    pending.clear();
  });
  return {
    call<T>(req: ChildRequest) {
      return new Promise<T>((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null) return reject(new Error('runtime child is not running'));
        const id = next++;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, req });
      });
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const CHILD_BACKEND = { 'tfjs-wasm': 'wasm', 'tfjs-node': 'tensorflow' } as const;

async function openChild(runtime: 'tfjs-wasm' | 'tfjs-node', m: RuntimeModels): Promise<RuntimeSession> {
  const child = startChild();
  try {
    const opened = await child.call<Omit<RuntimeInfo, 'runtime' | 'where'>>({ op: 'open', backend: CHILD_BACKEND[runtime], ...m });
    return {
      info: { runtime, where: 'child Node process', ...opened },
      warmup: (n) => child.call({ op: 'warmup', n }),
      pair: (i) => child.call({ op: 'pair', i }),
      times: (n) => child.call({ op: 'times', n }),
      close: () => child.close(),
    };
  } catch (e) {
    await child.close();
    throw new Error(`target.runtime ${runtime}: ${(e as Error).message}`);
  }
}

/** The tflite runtime (ml/tflite.ts): the folders converted and timed in a child Python process. */
async function openTfliteRuntime(m: RuntimeModels): Promise<RuntimeSession> {
  const s = await openTflite(m);
  const { backend, tensorflowVersion, python, threads, host, library, delegate, variants, calibration } = s.info;
  return {
    info: {
      runtime: 'tflite',
      where: 'child Python process',
      backend,
      host,
      library,
      tensorflowVersion,
      python,
      threads,
      delegate,
      variants,
      ...(calibration ? { calibration } : {}),
    },
    warmup: (n) => s.call({ op: 'warmup', n }),
    pair: (i) => s.call({ op: 'pair', i }),
    times: (n) => s.call({ op: 'times', n }),
    close: () => s.close(),
  };
}

/**
 * The per-layer latency table (ml/latency-table.ts) timed on `runtime`, keyed by it. The Chromium
 * runtimes cannot time layers synchronously in a page, and tflite would need one conversion per
 * layer configuration and grid point: their table is timed in the tfjs-wasm child (the same V8 and
 * wasm kernels as chromium-wasm; only a stand-in for chromium-webgl and tflite) and says so.
 */
export async function measureLatencyTableOn(
  runtime: RuntimeName,
  modelDir: string,
  options: Omit<MeasureTableOptions, 'onProgress' | 'tfjsVersion' | 'backend'>,
): Promise<LatencyTable> {
  const notYet = RUNTIMES_NOT_YET[runtime];
  if (notYet) throw new Error(`target.runtime: ${notYet}`);
  const timedOn = runtime === 'tfjs-node' ? 'tfjs-node' : 'tfjs-wasm';
  const child = startChild();
  try {
    await child.call({ op: 'open', backend: CHILD_BACKEND[timedOn], baseline: modelDir, batchSize: options.batchSize });
    const table = await child.call<LatencyTable>({ op: 'table', model: modelDir, options });
    const why = runtime === 'tflite' ? 'layers are not timed one by one in the TFLite interpreter' : 'layers cannot be timed one by one in a page';
    return { ...table, runtime, ...(timedOn !== runtime ? { timedOn: `${timedOn} (a stand-in: ${why})` } : {}) };
  } finally {
    await child.close();
  }
}

/**
 * The channel-step probes (ml/latency-table.ts measureChannelSteps) timed on a tfjs runtime's own
 * backend in its child process (chromium-wasm: the tfjs-wasm child, the same wasm kernels): what
 * `pruning.roundTo: auto` is chosen from (chooseRoundTo; ml/round.ts AUTO_ROUND_TO).
 * `modelDir`: any saved model (the child opens one before it times).
 */
export async function measureChannelStepsOn(
  runtime: 'tfjs-wasm' | 'tfjs-node' | 'chromium-wasm',
  modelDir: string,
  o: { batchSize: number; warmupRuns: number; runs: number },
): Promise<ChannelStepCurve[]> {
  const timedOn = runtime === 'tfjs-node' ? 'tfjs-node' : 'tfjs-wasm';
  const child = startChild();
  try {
    await child.call({ op: 'open', backend: CHILD_BACKEND[timedOn], baseline: modelDir, batchSize: o.batchSize });
    return await child.call<ChannelStepCurve[]>({ op: 'steps', ...o });
  } finally {
    await child.close();
  }
}

// ------------------------------------------------------------------------------- headless Chromium

export const CHROMIUM = process.env.PRUNEWISE_CHROMIUM ?? '/usr/bin/chromium';

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html' };

/** A tiny server on 127.0.0.1: the page, the runner, the stock tfjs bundles and the two model folders. */
async function serve(m: RuntimeModels): Promise<{ url: string; close: () => Promise<void> }> {
  const tfjs = path.dirname(require.resolve('@tensorflow/tfjs/package.json'));
  const wasmDir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  const page = `<!doctype html><meta charset="utf-8"><title>prunewise runtime</title>
<script src="/tfjs/tf.min.js"></script><script src="/wasm/tf-backend-wasm.min.js"></script><script src="/runner.js"></script>`;
  const runner = `window.createRunner = ${createRunner.toString()};\n`;
  const files = (dir: string | undefined, name: string) => (dir && /^[\w.-]+$/.test(name) ? path.join(dir, name) : undefined);
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (body: string | Buffer, type: string) => {
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const [, top, name] = u.pathname.split('/');
    let file: string | undefined;
    if (u.pathname === '/') return send(page, TYPES['.html']);
    if (u.pathname === '/runner.js') return send(runner, TYPES['.js']);
    if (u.pathname === '/tfjs/tf.min.js') file = path.join(tfjs, 'dist', 'tf.min.js');
    else if (top === 'wasm' && /^(tf-backend-wasm\.min\.js|tfjs-backend-wasm[\w-]*\.wasm)$/.test(name ?? '')) file = path.join(wasmDir, name);
    else if (top === 'baseline') file = files(m.baseline, name ?? '');
    else if (top === 'candidate') file = files(m.candidate, name ?? '');
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    send(fs.readFileSync(file), TYPES[path.extname(file)] ?? 'application/octet-stream');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function openChromium(runtime: 'chromium-wasm' | 'chromium-webgl', m: RuntimeModels): Promise<RuntimeSession> {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`target.runtime ${runtime}: no Chromium at ${CHROMIUM}: install Debian's chromium (npm run setup does) or set PRUNEWISE_CHROMIUM`);
  let pw: typeof import('playwright-core');
  try {
    pw = require('playwright-core');
  } catch {
    throw new Error(`target.runtime ${runtime}: the npm package playwright-core is missing: run npm install`);
  }
  const backend = runtime === 'chromium-webgl' ? 'webgl' : 'wasm';
  const server = await serve(m);
  // WebGL on this machine: ANGLE's SwiftShader (software); wasm: no GPU at all
  const args =
    backend === 'webgl'
      ? ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist']
      : ['--no-sandbox', '--disable-gpu'];
  const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args });
  const close = async () => {
    await browser.close();
    await server.close();
  };
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    await page.goto(server.url);
    const opened = await page
      .evaluate(
        async ({ backend, batchSize, hasCandidate }) => {
          const w = globalThis as any;
          const tf = w.tf;
          if (backend === 'wasm') tf.wasm.setWasmPaths('/wasm/');
          if (!(await tf.setBackend(backend))) throw new Error(`the tfjs ${backend} backend did not initialise in the page`);
          await tf.ready();
          const baseline = await tf.loadLayersModel('/baseline/model.json');
          const candidate = hasCandidate ? await tf.loadLayersModel('/candidate/model.json') : undefined;
          w.__runner = w.createRunner(tf, baseline, candidate, batchSize);
          let webglRenderer: string | undefined;
          let wasm: { simd: boolean; threads: boolean } | undefined;
          if (backend === 'webgl') {
            const gl = tf.backend().gpgpu.gl;
            const ext = gl.getExtension('WEBGL_debug_renderer_info');
            webglRenderer = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
          } else {
            wasm = { simd: !!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')), threads: !!(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) };
          }
          return { backend: tf.getBackend() as string, tfjsVersion: tf.version.tfjs as string, webglRenderer, wasm };
        },
        { backend, batchSize: m.batchSize, hasCandidate: !!m.candidate },
      )
      .catch((e: Error) => {
        throw new Error(`${e.message.split('\n')[0]}${errors.length ? ` (page: ${errors[0]})` : ''}`);
      });
    const info: RuntimeInfo = {
      runtime,
      where: 'headless Chromium page',
      host: os.hostname(),
      backend: opened.backend,
      tfjsVersion: opened.tfjsVersion,
      browser: `Chromium ${browser.version()}`,
      ...(opened.webglRenderer !== undefined
        ? { webglRenderer: opened.webglRenderer, softwareRenderer: /swiftshader|llvmpipe|software/i.test(opened.webglRenderer) }
        : {}),
      ...(opened.wasm ? { wasm: opened.wasm } : {}),
    };
    return {
      info,
      warmup: (n) => page.evaluate((n) => (globalThis as any).__runner.warmup(n), n),
      pair: (i) => page.evaluate((i) => (globalThis as any).__runner.pair(i), i) as Promise<[number, number]>,
      times: (n) => page.evaluate((n) => (globalThis as any).__runner.times(n), n) as Promise<number[]>,
      close,
    };
  } catch (e) {
    await close();
    throw new Error(`target.runtime ${runtime}: ${(e as Error).message}`);
  }
}
