// Recorded artifact files: listed on run pages and downloaded from <home>/artifacts only (real
// paths checked, so no symlink or `..` leads outside), and only files of artifacts the database
// records. Through the artifact store: a recorded artifact with a key is checked out into the home
// (fetched when missing, verified by sha256 on every download: a damaged copy is fetched again,
// never served). Serves bytes; never loads a model (no tfjs here).
import type { Request, Response } from 'express';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArtifactStore, type Tree } from '../blobstore';
import { ARTIFACTS_DIR } from '../core';
import { recordedArtifactOf, type Db } from '../db';
import { wildcard } from './query';

export interface ArtifactFile {
  name: string;
  href: string;
  bytes: number;
}

export interface Artifacts {
  /** the files of a recorded artifact (a file or a folder, home-relative), [] when none are there */
  files(rel: string): ArtifactFile[];
  /** GET /artifacts/*file */
  download(req: Request, res: Response): Promise<void>;
  /** the absolute path of an existing home-relative file inside the artifacts folder (reading manifests), else undefined */
  absolute(rel: string): string | undefined;
}

/** `homeDir` undefined: nothing is listed or served. `store`: the artifact store (default: PRUNEWISE_ARTIFACTS for this home). */
export function createArtifacts(db: Db, homeDir: string | undefined, store?: ArtifactStore): Artifacts {
  const artifactsRoot = homeDir ? path.join(homeDir, ARTIFACTS_DIR) : undefined;
  const st = homeDir ? (store ?? ArtifactStore.fromEnv(homeDir)) : undefined;
  /** manifests read so far (key → tree): lists files of artifacts this home has no copy of */
  const trees = new Map<string, Tree>();
  const treeOf = (key: string | null) => {
    if (!key || !st) return undefined;
    if (!trees.has(key))
      st.tree(key).then(
        (t) => trees.set(key, t),
        () => undefined,
      ); // listed on the next view
    return trees.get(key);
  };

  const inside = (abs: string) => {
    if (!artifactsRoot) return false;
    const real = fs.existsSync(abs) ? fs.realpathSync(abs) : abs;
    const root = fs.existsSync(artifactsRoot) ? fs.realpathSync(artifactsRoot) : artifactsRoot;
    return real.startsWith(root + path.sep);
  };

  const files = (rel: string): ArtifactFile[] => {
    if (!artifactsRoot || !homeDir) return [];
    const abs = path.resolve(homeDir, rel);
    if (!inside(abs)) return [];
    const href = (file: string) => `/artifacts/${path.relative(artifactsRoot, file).split(path.sep).map(encodeURIComponent).join('/')}`;
    const tree = treeOf(recordedArtifactOf(db, rel)?.key ?? null);
    if (tree) return tree.files.map((f) => ({ name: f.name, href: href(tree.type === 'folder' ? path.join(abs, f.name) : abs), bytes: f.bytes }));
    try {
      const st = fs.statSync(abs);
      if (st.isFile()) return [{ name: path.basename(abs), href: href(abs), bytes: st.size }];
      return fs
        .readdirSync(abs, { withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => ({
          name: e.name,
          href: href(path.join(abs, e.name)),
          bytes: fs.statSync(path.join(abs, e.name)).size,
        }));
    } catch {
      return []; // moved or deleted since: the page says no files
    }
  };

  const download = async (req: Request, res: Response) => {
    const parts = wildcard(req.params.file);
    const rel = path.join(ARTIFACTS_DIR, ...parts);
    if (!homeDir || parts.some((p) => p === '..' || p.includes('\0')) || !inside(path.resolve(homeDir, rel))) {
      return void res.status(403).type('text').send('refused: downloads are limited to files inside the artifacts folder\n');
    }
    const abs = path.resolve(homeDir, rel);
    const recorded = recordedArtifactOf(db, rel);
    if (!recorded) return void res.status(404).type('text').send(`no recorded artifact at ${rel}\n`);
    if (recorded.key && st) {
      try {
        await st.checkout(recorded.key, path.resolve(homeDir, recorded.path)); // verified; fetched again when damaged or missing
      } catch (e) {
        return void res
          .status(503)
          .type('text')
          .send(`${recorded.path}: the artifact store (${st.description}) cannot give it now: ${(e as Error).message.split('\n')[0]}\n`);
      }
    }
    if (!fs.existsSync(abs) || !fs.statSync(abs).isFile()) return void res.status(404).type('text').send(`${rel} is not a file (moved or deleted?)\n`);
    res.download(abs, path.basename(abs));
  };

  const absolute = (rel: string): string | undefined => {
    if (!homeDir) return undefined;
    const abs = path.resolve(homeDir, rel);
    return inside(abs) && fs.existsSync(abs) && fs.statSync(abs).isFile() ? abs : undefined;
  };

  return { files, download, absolute };
}
