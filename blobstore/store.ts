// The artifact store every worker reaches: content-addressed, immutable blobs (sha256), written
// once and verified on every read, grouped into trees (an artifact: a model folder or one file),
// named by refs (the artifact's home-relative name, e.g. `artifacts/<campaign>/run-1/round-2/finetuned`)
// and reference-counted: each ref writes one empty `holds/<blob>/<hash of its name>` object per blob it
// holds, so a blob's count is one listing of its own prefix (never a scan of the store); `unpin` drops
// refs and their holds and deletes the blobs nothing holds any more (`rm`, checkpoint clean-up).
//
// Workflows and SQLite hold only keys: `sha256:<hex>` of a tree's manifest, handed around as
// `<name>@sha256:<hex>` (what the artifact is called and exactly which bytes). A worker checks a
// tree out into its own home under the name (its local cache), verifying each file's size and
// sha256; a file that fails is fetched again from the store, never trusted.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { classifyIOError, TransientIOError } from '../core/errors';
import { LocalBackend, MissingObjectError, S3Backend, s3Location, type BlobBackend } from './backend';

export interface TreeFile {
  name: string;
  bytes: number;
  sha256: string;
}

/** A tree's manifest (itself a blob; its sha256 is the artifact's key). */
export interface Tree {
  format: 'prunewise-tree';
  version: 1;
  /** `folder`: the files sit in a folder named like the artifact; `file`: the one file is the artifact */
  type: 'folder' | 'file';
  files: TreeFile[];
}

export interface Published {
  name: string;
  /** `sha256:<hex>` of the tree's manifest */
  key: string;
  /** `<name>@<key>`: what workflows hand to the next stage */
  ref: string;
  tree: Tree;
}

/** A blob or a checkout failed verification (size or sha256): retried (the blob is fetched again, or re-made), never bad input. */
export class CorruptArtifactError extends TransientIOError {
  override name = 'CorruptArtifactError';
}

export const KEY_PATTERN = /^sha256:[0-9a-f]{64}$/;

export const formatRef = (name: string, key: string): string => `${name}@${key}`;

/** `<name>@sha256:<hex>` → both; a legacy ref (a home-relative path written before the store) has no key. */
export function parseRef(ref: string): { name: string; key?: string } {
  const at = ref.lastIndexOf('@sha256:');
  if (at < 0) return { name: ref };
  return { name: ref.slice(0, at), key: ref.slice(at + 1) };
}

const hexOf = (key: string): string => {
  if (!KEY_PATTERN.test(key)) throw new Error(`"${key}" is not an artifact key (sha256:<64 hex>)`);
  return key.slice(7);
};

export function sha256File(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

const sha256Of = (data: Uint8Array | string) => crypto.createHash('sha256').update(data).digest('hex');

/** Manifest JSON in one canonical form (files sorted by name), so one content has one key. */
function treeJson(t: Tree): string {
  const files = [...t.files].sort((a, b) => (a.name < b.name ? -1 : 1)).map((f) => ({ name: f.name, bytes: f.bytes, sha256: f.sha256 }));
  return JSON.stringify({ format: t.format, version: t.version, type: t.type, files });
}

/** The ref object of a name (`artifacts/<campaign>/…`: home-relative, so the same on every worker). */
const refKeyOf = (name: string): string => {
  const n = name.replace(/\/+$/, '');
  if (!n || n.startsWith('/') || n.split('/').some((p) => p === '..' || p === '.' || p === '')) throw new Error(`"${name}" is not an artifact name`);
  return `refs/${n}.ref`;
};
const nameOfRefKey = (key: string): string => key.slice('refs/'.length, -'.ref'.length);
export const blobKey = (hex: string): string => `blobs/sha256/${hex.slice(0, 2)}/${hex}`;
/** One ref's hold on one blob (an empty object; the count of a blob is how many there are under holds/<hex>/). */
const holdKey = (hex: string, name: string): string => `holds/${hex}/${sha256Of(name).slice(0, 40)}`;

interface RefObject {
  key: string;
  /** every blob the tree holds: its manifest and its files (what the ref counts) */
  blobs: string[];
  /** written before the blobs and the manifest, removed by the last write of a publish: a ref still pending names a tree that may not be whole (its publish was killed); readers pass it over, clean-up drops it and its holds */
  pending?: true;
}

export interface StoreOptions {
  /** delete unreferenced blobs only when older than this (ms): a blob being published by another worker is not yet held (default 0) */
  graceMs?: number;
}

export class ArtifactStore {
  private readonly trees = new Map<string, Tree>();
  constructor(
    readonly backend: BlobBackend,
    readonly opts: StoreOptions = {},
  ) {}

  /**
   * The store a process uses: PRUNEWISE_ARTIFACTS = `s3://bucket/prefix` (S3-compatible, see
   * backend.ts s3Location for the variables), an absolute folder (a shared mount), or unset: the
   * folder `<home>/store`. @throws StoreConfigError for a malformed setting
   */
  static fromEnv(home: string, env: NodeJS.ProcessEnv = process.env): ArtifactStore {
    const url = env.PRUNEWISE_ARTIFACTS?.trim();
    if (!url) return new ArtifactStore(new LocalBackend(path.join(home, 'store')));
    if (url.startsWith('s3://')) return new ArtifactStore(new S3Backend(s3Location(url, env), env));
    const dir = url.startsWith('file://') ? url.slice(7) : url;
    if (!path.isAbsolute(dir)) throw new Error(`PRUNEWISE_ARTIFACTS: "${url}" is neither s3://<bucket>/<prefix> nor an absolute folder`);
    return new ArtifactStore(new LocalBackend(dir));
  }

  get description(): string {
    return this.backend.description;
  }

  /** Hashes a folder's files (or one file) into a tree. */
  static treeOf(abs: string): Tree {
    const st = fs.statSync(abs);
    const list = st.isDirectory()
      ? fs
          .readdirSync(abs, { withFileTypes: true })
          .filter((e) => e.isFile() && !/\.(tmp|old)-\d+-/.test(e.name))
          .map((e) => path.join(abs, e.name))
      : [abs];
    const files = list.map((f) => ({ name: path.basename(f), bytes: fs.statSync(f).size, sha256: sha256File(f) }));
    return { format: 'prunewise-tree', version: 1, type: st.isDirectory() ? 'folder' : 'file', files };
  }

  /**
   * Puts a written folder or file (`abs`) into the store as the artifact `name`: the holds first (so
   * a concurrent clean-up sees the blobs are wanted) and the ref marked pending, then each blob not
   * there yet, then the manifest, and last the ref without the mark: readers (resolve, checkout by
   * name, the resume of a training) see a ref only once its tree is whole; a publish killed midway
   * leaves a pending ref, which `rm` and checkpoint clean-up drop with its holds and blobs. The files are hashed once; each is checked against its hash again just before upload.
   * @throws TransientIOError (store away, disk fault), CorruptArtifactError (the file changed while read)
   */
  async publish(name: string, abs: string): Promise<Published> {
    let tree: Tree;
    try {
      tree = ArtifactStore.treeOf(abs);
    } catch (e) {
      throw classifyIOError(e, `reading ${abs}`);
    }
    const json = treeJson(tree);
    const hex = sha256Of(json);
    const key = `sha256:${hex}`;
    const ref: RefObject = { key, blobs: [...new Set([hex, ...tree.files.map((f) => f.sha256)])] };
    const before = await this.readRef(name); // a retry that wrote other bytes under the same name
    // holds first (a concurrent clean-up sees the blobs are wanted), the ref pending, then the blobs and the manifest, the ref whole last
    for (const b of ref.blobs) await this.backend.putBytes(holdKey(b, name), name);
    // the same tree again (a retry, a checkpoint published anew): its whole ref is not taken back meanwhile
    const again = before?.key === key && !before.pending;
    if (!again) await this.backend.putBytes(refKeyOf(name), JSON.stringify({ ...ref, pending: true }));
    for (const f of tree.files) {
      const file = tree.type === 'folder' ? path.join(abs, f.name) : abs;
      if ((await this.backend.size(blobKey(f.sha256))) === f.bytes) continue; // written once
      await this.backend.putFile(blobKey(f.sha256), file);
      if ((await this.backend.size(blobKey(f.sha256))) !== f.bytes)
        throw new CorruptArtifactError(`${name}: ${f.name} was not stored whole in ${this.description}`);
    }
    if ((await this.backend.size(blobKey(hex))) !== Buffer.byteLength(json)) await this.backend.putBytes(blobKey(hex), json);
    await this.backend.putBytes(refKeyOf(name), JSON.stringify(ref));
    this.trees.set(key, tree);
    if (before && before.key !== key)
      await this.release(
        name,
        before.blobs.filter((b) => !ref.blobs.includes(b)),
      );
    return { name, key, ref: formatRef(name, key), tree };
  }

  /** The manifest of a key, verified. @throws MissingObjectError, CorruptArtifactError */
  async tree(key: string): Promise<Tree> {
    const cached = this.trees.get(key);
    if (cached) return cached;
    const hex = hexOf(key);
    const bytes = await this.backend.getBytes(blobKey(hex));
    if (sha256Of(bytes) !== hex)
      throw new CorruptArtifactError(`artifact ${key}: its manifest in ${this.description} fails its sha256: the stage that made it must run again`);
    const tree = JSON.parse(bytes.toString('utf8')) as Tree;
    this.trees.set(key, tree);
    return tree;
  }

  /** The files of `abs` (a checkout of `tree`) that do not match it (missing, other size or sha256). */
  static badFiles(abs: string, tree: Tree): TreeFile[] {
    return tree.files.filter((f) => {
      const file = tree.type === 'folder' ? path.join(abs, f.name) : abs;
      try {
        return fs.statSync(file).size !== f.bytes || sha256File(file) !== f.sha256;
      } catch {
        return true;
      }
    });
  }

  /**
   * Makes `abs` hold exactly the artifact `key` (a folder of its files, or the one file), verified:
   * files already there that match are kept (read and hashed: verified on every read); the others
   * are fetched from the store, checked, and the whole put in place by one rename.
   * @throws CorruptArtifactError when the store's copy fails its sha256, MissingObjectError, TransientIOError
   */
  async checkout(key: string, abs: string): Promise<Tree> {
    const tree = await this.tree(key);
    const bad = ArtifactStore.badFiles(abs, tree);
    if (bad.length === 0) return tree;
    const tmp = `${abs}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    try {
      fs.mkdirSync(tree.type === 'folder' ? tmp : path.dirname(abs), { recursive: true });
      for (const f of tree.files) {
        const dest = tree.type === 'folder' ? path.join(tmp, f.name) : tmp;
        const have = tree.type === 'folder' ? path.join(abs, f.name) : abs;
        if (!bad.includes(f)) {
          fs.copyFileSync(have, dest, fs.constants.COPYFILE_FICLONE);
          continue;
        }
        await this.backend.getToFile(blobKey(f.sha256), dest);
        const got = fs.statSync(dest).size;
        if (got !== f.bytes || sha256File(dest) !== f.sha256)
          throw new CorruptArtifactError(
            `artifact ${key}: ${f.name} in ${this.description} fails its check (${got} of ${f.bytes} bytes, or another sha256): not used; the stage that made it must run again`,
          );
      }
      if (fs.existsSync(abs)) {
        const old = `${abs}.old-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
        fs.renameSync(abs, old);
        fs.renameSync(tmp, abs);
        fs.rmSync(old, { recursive: true, force: true });
      } else {
        fs.renameSync(tmp, abs);
      }
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw classifyIOError(e, `fetching ${key} into ${abs}`);
    }
    return tree;
  }

  /** The key a name's ref holds, undefined when none (or its publish never finished: pending). */
  async resolve(name: string): Promise<string | undefined> {
    const r = await this.readRef(name);
    return r && !r.pending ? r.key : undefined;
  }

  /**
   * Names (and keys) of the refs under a name prefix (`artifacts/<campaign>/` …); `pending`: a publish
   * that never finished (its tree may not be whole: not to be read; clean-up drops it).
   */
  async refs(prefix: string): Promise<Array<{ name: string; key: string; blobs: string[]; pending: boolean }>> {
    const objs = (await this.backend.list(`refs/${prefix}`)).filter((o) => o.key.endsWith('.ref'));
    const out: Array<{ name: string; key: string; blobs: string[]; pending: boolean }> = [];
    for (const o of objs) {
      try {
        const r = JSON.parse((await this.backend.getBytes(o.key)).toString('utf8')) as RefObject;
        out.push({ name: nameOfRefKey(o.key), key: r.key, blobs: r.blobs, pending: r.pending === true });
      } catch (e) {
        if (!(e instanceof MissingObjectError)) throw e; // deleted meanwhile
      }
    }
    return out;
  }

  private async readRef(name: string): Promise<RefObject | undefined> {
    try {
      return JSON.parse((await this.backend.getBytes(refKeyOf(name))).toString('utf8')) as RefObject;
    } catch (e) {
      if (e instanceof MissingObjectError) return undefined;
      throw e;
    }
  }

  /** How many refs hold a blob (its reference count). */
  async refCount(hex: string): Promise<number> {
    return (await this.backend.list(`holds/${hex}/`)).length;
  }

  /** Every blob's reference count (hex → count; one listing of holds/: for diagnostics and tests). */
  async refCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const o of await this.backend.list('holds/')) {
      const hex = o.key.split('/')[1];
      counts.set(hex, (counts.get(hex) ?? 0) + 1);
    }
    return counts;
  }

  /** Drops `name`'s holds on `blobs` and deletes those nothing holds any more. */
  private async release(name: string, blobs: string[]): Promise<{ blobs: number; bytes: number }> {
    await this.backend.delete(blobs.map((b) => holdKey(b, name)));
    let n = 0;
    let bytes = 0;
    for (const b of blobs) {
      if ((await this.refCount(b)) > 0) continue;
      const size = await this.backend.size(blobKey(b));
      if (size === undefined) continue;
      await this.backend.delete([blobKey(b)]);
      this.trees.delete(`sha256:${b}`);
      n++;
      bytes += size;
    }
    return { blobs: n, bytes };
  }

  /**
   * Drops the refs of `names` (exact names, or every name under a prefix ending in "/") with their
   * holds, and deletes the blobs nothing holds any more. Returns what was deleted. Each ref is marked
   * pending first (readers pass it over) and deleted last, so a clean-up killed midway leaves a
   * pending ref that the next clean-up finishes — never held blobs that no ref names (a leak).
   */
  async unpin(names: string[]): Promise<{ refs: number; blobs: number; bytes: number }> {
    const dropped: Array<{ name: string; key: string; blobs: string[]; pending: boolean }> = [];
    for (const n of names) {
      if (n.endsWith('/')) dropped.push(...(await this.refs(n)));
      else {
        const r = await this.readRef(n);
        if (r) dropped.push({ name: n, key: r.key, blobs: r.blobs, pending: r.pending === true });
      }
    }
    const out = { refs: dropped.length, blobs: 0, bytes: 0 };
    for (const d of dropped) {
      if (!d.pending) await this.backend.putBytes(refKeyOf(d.name), JSON.stringify({ key: d.key, blobs: d.blobs, pending: true } satisfies RefObject));
      const r = await this.release(d.name, d.blobs);
      await this.backend.delete([refKeyOf(d.name)]);
      out.blobs += r.blobs;
      out.bytes += r.bytes;
    }
    return out;
  }

  /** Deletes every blob nothing holds that is older than the grace period (left by crashed publishes). */
  async sweep(): Promise<{ blobs: number; bytes: number }> {
    const counts = await this.refCounts();
    const grace = this.opts.graceMs ?? 0;
    const dead = (await this.backend.list('blobs/sha256/')).filter(
      (o) => !counts.has(o.key.slice(o.key.lastIndexOf('/') + 1)) && Date.now() - o.modified.getTime() >= grace,
    );
    await this.backend.delete(dead.map((o) => o.key));
    for (const d of dead) this.trees.delete(`sha256:${d.key.slice(d.key.lastIndexOf('/') + 1)}`);
    return { blobs: dead.length, bytes: dead.reduce((a, o) => a + o.bytes, 0) };
  }
}
