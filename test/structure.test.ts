// The layout's rules, checked on the source: arrows between folders only point down (ARCHITECTURE.md),
// no cycles between folders, core/ pure; and the structural pieces that keep a long-lived worker
// healthy: a bounded dataset cache, and errors classified as bad input only when they are the user's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(__dirname, '..');

/** Folder → the folders of ours it may import (ARCHITECTURE.md, "Allowed imports"). */
const ALLOWED: Record<string, string[]> = {
  core: [],
  platform: [],
  ml: ['core', 'platform'],
  campaign: ['core', 'ml'],
  db: ['core'],
  blobstore: ['core'],
  analysis: ['core', 'db', 'platform'],
  activities: ['core', 'ml', 'campaign', 'db', 'analysis', 'blobstore', 'platform'],
  workflows: ['core', 'campaign', 'activities', 'db'],
  dashboard: ['core', 'db', 'analysis', 'blobstore', 'platform'],
  cli: ['core', 'ml', 'campaign', 'db', 'analysis', 'blobstore', 'activities', 'workflows', 'dashboard', 'platform'],
};
/** Imports a workflow may make only as types (the bundle must stay free of I/O and tfjs). */
const TYPE_ONLY_FOR_WORKFLOWS = ['activities', 'db', 'campaign/schema'];

function sources(dir: string): string[] {
  if (!fs.existsSync(path.join(ROOT, dir))) return [];
  return fs
    .readdirSync(path.join(ROOT, dir), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

function imports(file: string): Array<{ spec: string; typeOnly: boolean }> {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const out: Array<{ spec: string; typeOnly: boolean }> = [];
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gms)) out.push({ spec: m[3], typeOnly: !!m[2] });
  for (const m of text.matchAll(/(?:import|require)\(\s*'([^']+)'\s*\)/g)) out.push({ spec: m[1], typeOnly: false });
  for (const m of text.matchAll(/^import\s+'([^']+)'/gm)) out.push({ spec: m[1], typeOnly: false }); // side-effect imports
  return out;
}

const ourFolder = (from: string, spec: string): string | undefined => {
  if (!spec.startsWith('.')) return undefined;
  const rel = path.relative(ROOT, path.resolve(path.join(ROOT, path.dirname(from)), spec));
  return rel.split(path.sep)[0];
};

describe('the layout (ARCHITECTURE.md)', () => {
  const folders = Object.keys(ALLOWED);
  const edges = new Map<string, Set<string>>(folders.map((f) => [f, new Set()]));
  const violations: string[] = [];
  for (const folder of folders) {
    for (const file of sources(folder)) {
      for (const imp of imports(file)) {
        const to = ourFolder(file, imp.spec);
        if (!to || to === folder || !(to in ALLOWED)) continue;
        edges.get(folder)!.add(to);
        if (!ALLOWED[folder].includes(to)) violations.push(`${file} imports ${imp.spec} (${folder} → ${to} is not allowed)`);
        if (
          folder === 'workflows' &&
          !imp.typeOnly &&
          TYPE_ONLY_FOR_WORKFLOWS.some((t) => path.relative(ROOT, path.resolve(ROOT, folder, imp.spec)).startsWith(t))
        ) {
          violations.push(`${file} imports ${imp.spec} as a value: workflows import activities, db and the schema as types only`);
        }
      }
    }
  }

  it('every import between folders points down the allowed arrows', () => {
    expect(violations).toEqual([]);
  });

  it('no cycle between folders', () => {
    const seen = new Set<string>();
    const onPath: string[] = [];
    const cycles: string[] = [];
    const visit = (f: string) => {
      if (onPath.includes(f)) return void cycles.push([...onPath.slice(onPath.indexOf(f)), f].join(' → '));
      if (seen.has(f)) return;
      seen.add(f);
      onPath.push(f);
      for (const t of edges.get(f) ?? []) visit(t);
      onPath.pop();
    };
    for (const f of folders) visit(f);
    expect(cycles).toEqual([]);
  });

  it('core/ is pure: no node built-ins, no packages, no clock or randomness', () => {
    const impure: string[] = [];
    for (const file of sources('core')) {
      for (const imp of imports(file)) if (!imp.spec.startsWith('./')) impure.push(`${file}: ${imp.spec}`);
      const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
      if (/\b(Date\.now|Math\.random|process\.|performance\.now)\b/.test(text)) impure.push(`${file}: uses the clock, randomness or the process`);
    }
    expect(impure).toEqual([]);
  });

  it('the guard itself works: an upward import is reported', () => {
    const fake = 'db/__probe.ts';
    fs.writeFileSync(path.join(ROOT, fake), "import { createDashboard } from '../dashboard/server';\n");
    try {
      const to = imports(fake).map((i) => ourFolder(fake, i.spec));
      expect(to).toEqual(['dashboard']);
      expect(ALLOWED.db.includes('dashboard')).toBe(false);
    } finally {
      fs.rmSync(path.join(ROOT, fake));
    }
  });
});

describe('dataset cache of a long-lived worker', () => {
  it('stays within its bounds, least recently used out first', async () => {
    const { datasetCacheStats, loadDataset, setDatasetCacheLimit } = await import('../ml/data');
    const spec = (trainLimit: number) => ({ name: 'mnist' as const, trainLimit, testLimit: 100, validationFraction: 0.1 });
    const one = loadDataset(spec(500), 1);
    const oneBytes = datasetCacheStats().bytes;
    expect(oneBytes).toBeGreaterThan(500 * 784 * 4 * 0.9);
    setDatasetCacheLimit(oneBytes * 2.5, 10);
    loadDataset(spec(500), 2);
    expect(loadDataset(spec(500), 1)).toBe(one); // a hit, and now the most recently used
    loadDataset(spec(500), 3); // a third one: the least recently used (seed 2) goes
    expect(datasetCacheStats().entries).toBe(2);
    expect(datasetCacheStats().bytes).toBeLessThanOrEqual(oneBytes * 2.5);
    expect(loadDataset(spec(500), 1)).toBe(one);
    setDatasetCacheLimit(oneBytes * 10, 1);
    expect(datasetCacheStats().entries).toBe(1);
    setDatasetCacheLimit(oneBytes / 2, 4); // smaller than one dataset: nothing kept, still served
    expect(loadDataset(spec(400), 1).train.n).toBe(360);
    expect(datasetCacheStats()).toEqual({ entries: 0, bytes: 0 });
  });
});

describe('bad input vs our own artifacts', () => {
  it("the user's unreadable model is bad input; the same file as one of our artifacts is retryable", async () => {
    const { isBadInput } = await import('../core');
    const { Artifacts, ArtifactError } = await import('../activities/artifacts');
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-structure-'));
    fs.mkdirSync(path.join(home, 'm'));
    fs.writeFileSync(
      path.join(home, 'm', 'model.json'),
      '{"modelTopology": {"class_name": "Sequential", "config": {"layers": [{"class_name": "NoSuchLayer", "config": {}}]}}, "weightsManifest": []}',
    );
    const art = new Artifacts(home);
    const user = await art.loadUserModel(path.join(home, 'm')).catch((e) => e);
    expect(isBadInput(user)).toBe(true);
    expect(user.message).toMatch(/^model: /);
    const ours = await art.loadModel('m').catch((e) => e);
    expect(ours).toBeInstanceOf(ArtifactError);
    expect(isBadInput(ours)).toBe(false);
    expect(ours.message).toContain('artifact m');
    fs.rmSync(home, { recursive: true, force: true });
  });

  it("the engine's structural errors share the bad-input base class", async () => {
    const { BadInputError } = await import('../core');
    const ml = await import('../ml');
    const { GraphError } = await import('../ml/graph');
    const { PruneError } = await import('../ml/prune');
    const { ImportanceError } = await import('../ml/importance');
    for (const E of [ml.ModelError, ml.DataError, GraphError, PruneError, ImportanceError]) expect(new E('x')).toBeInstanceOf(BadInputError);
    expect(() => ml.buildZooModel('nope', 1, [28, 28, 1], 10)).toThrow(BadInputError);
  });
});
