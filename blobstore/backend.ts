// Where the artifact store's objects live: a local folder (the embedded default, or a shared
// mount) or any S3-compatible object store. Both hold the same layout under their root:
//   blobs/sha256/<2 hex>/<64 hex>   immutable file contents, named by their sha256
//   refs/<name>.ref                 a small JSON: which tree a named artifact is, and the blobs it holds
//   holds/<64 hex>/<40 hex>         empty: one ref (hash of its name) holds that blob — the reference count
// A backend moves bytes and lists names; hashing and verifying is the store's job (store.ts).
// Credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else the SDK's
// default chain) straight into the S3 client: no message, description, log line, SQLite row or
// workflow input ever carries them.
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { TransientIOError } from '../core/errors';

export interface BlobBackend {
  /** where the store is, for people: never a secret */
  readonly description: string;
  /** whether the store answers and may be written: @throws StoreConfigError / TransientIOError */
  check(): Promise<void>;
  /** size of an object, undefined when there is none */
  size(key: string): Promise<number | undefined>;
  /** uploads a local file as `key` (overwrites) */
  putFile(key: string, file: string): Promise<void>;
  putBytes(key: string, data: Uint8Array | string): Promise<void>;
  /** streams `key` into a writable file path (caller verifies); @throws MissingObjectError */
  getToFile(key: string, file: string): Promise<void>;
  getBytes(key: string): Promise<Buffer>;
  /** every object key under a prefix, with its size and last change */
  list(prefix: string): Promise<Array<{ key: string; bytes: number; modified: Date }>>;
  delete(keys: string[]): Promise<void>;
}

/** The object is not in the store. */
export class MissingObjectError extends Error {
  override name = 'MissingObjectError';
}

/** The store's configuration is wrong (bucket missing, access denied, bad URL): one line saying which setting to fix. */
export class StoreConfigError extends Error {
  override name = 'StoreConfigError';
}

// ------------------------------------------------------------------------------ local folder

export class LocalBackend implements BlobBackend {
  readonly description: string;
  constructor(readonly root: string) {
    this.description = `folder ${root}`;
  }
  private abs(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }
  async check(): Promise<void> {
    fs.mkdirSync(this.root, { recursive: true });
    fs.accessSync(this.root, fs.constants.W_OK);
  }
  async size(key: string): Promise<number | undefined> {
    try {
      return fs.statSync(this.abs(key)).size;
    } catch {
      return undefined;
    }
  }
  async putFile(key: string, file: string): Promise<void> {
    // a reflink where the file system has them, else a copy
    replaceAtomically(this.abs(key), (tmp) => fs.copyFileSync(file, tmp, fs.constants.COPYFILE_FICLONE));
  }
  async putBytes(key: string, data: Uint8Array | string): Promise<void> {
    replaceAtomically(this.abs(key), (tmp) => {
      const fd = fs.openSync(tmp, 'w');
      try {
        const b = typeof data === 'string' ? Buffer.from(data) : data;
        let off = 0;
        while (off < b.byteLength) off += fs.writeSync(fd, b, off, b.byteLength - off); // short writes continued
      } finally {
        fs.closeSync(fd);
      }
    });
  }
  async getToFile(key: string, file: string): Promise<void> {
    const src = this.abs(key);
    if (!fs.existsSync(src)) throw new MissingObjectError(`${key} is not in the store (${this.description})`);
    fs.copyFileSync(src, file, fs.constants.COPYFILE_FICLONE);
  }
  async getBytes(key: string): Promise<Buffer> {
    try {
      return fs.readFileSync(this.abs(key));
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw new MissingObjectError(`${key} is not in the store (${this.description})`);
      throw e;
    }
  }
  async list(prefix: string): Promise<Array<{ key: string; bytes: number; modified: Date }>> {
    // the prefix names a folder (ends in "/") or a folder and the start of a name
    const slash = prefix.lastIndexOf('/');
    const base = this.abs(prefix.slice(0, slash + 1));
    const out: Array<{ key: string; bytes: number; modified: Date }> = [];
    const walk = (dir: string) => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const abs = path.join(dir, e.name);
        if (e.isDirectory()) walk(abs);
        else if (e.isFile() && !/\.tmp-\d+-/.test(e.name)) {
          const key = path.relative(this.root, abs).split(path.sep).join('/');
          if (!key.startsWith(prefix)) continue;
          const st = fs.statSync(abs);
          out.push({ key, bytes: st.size, modified: st.mtime });
        }
      }
    };
    walk(base);
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }
  async delete(keys: string[]): Promise<void> {
    for (const k of keys) {
      fs.rmSync(this.abs(k), { force: true });
      // and the folders it leaves empty (refs/<campaign>/…, holds/<blob>/)
      for (let dir = path.dirname(this.abs(k)); dir.startsWith(this.root + path.sep); dir = path.dirname(dir)) {
        try {
          fs.rmdirSync(dir);
        } catch {
          break; // not empty (or gone)
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------ S3

export interface S3Location {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region: string;
  pathStyle: boolean;
}

/**
 * `s3://bucket/prefix` with the standard variables: AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL;
 * unset = AWS itself), AWS_REGION (default us-east-1), and PRUNEWISE_S3_PATH_STYLE (1/true: path-style
 * URLs, which most self-hosted servers need; default true when an endpoint is given). Keys are read
 * by the S3 client's own credential chain, never here.
 * @throws StoreConfigError for a malformed URL
 */
export function s3Location(url: string, env: NodeJS.ProcessEnv = process.env): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new StoreConfigError(`PRUNEWISE_ARTIFACTS: "${url}" is not s3://<bucket>/<prefix> (bucket: 3-63 lowercase letters, digits, "." or "-")`);
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const ps = env.PRUNEWISE_S3_PATH_STYLE;
  const pathStyle = ps === undefined || ps === '' ? !!endpoint : /^(1|true|yes)$/i.test(ps);
  return { bucket: m[1], prefix: (m[2] ?? '').replace(/^\/+|\/+$/g, ''), endpoint, region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1', pathStyle };
}

const TRANSIENT_S3 = /^(InternalError|ServiceUnavailable|SlowDown|RequestTimeout|RequestTimeTooSkewed|ThrottlingException|TooManyRequests)$/;

export class S3Backend implements BlobBackend {
  readonly description: string;
  private readonly client: S3Client;
  /** `env`: where the keys are read (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); unset: the SDK's default chain (profiles, instance roles) */
  constructor(
    readonly loc: S3Location,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    // the pinned SDK (engines: node >= 20) would print a notice about its future releases on every command
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const credentials =
      env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN || undefined }
        : undefined;
    this.description = `s3://${loc.bucket}${loc.prefix ? `/${loc.prefix}` : ''}${loc.endpoint ? ` at ${loc.endpoint}` : ''}`;
    this.client = new S3Client({
      region: loc.region,
      endpoint: loc.endpoint,
      forcePathStyle: loc.pathStyle,
      credentials,
      // checksums only where the API requires them (self-hosted servers differ in which they support); prunewise verifies sha256 itself
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }
  private k(key: string): string {
    return this.loc.prefix ? `${this.loc.prefix}/${key}` : key;
  }
  /** An SDK error as one line that names the store and what to fix; never the request's credentials. */
  private fail(e: unknown, what: string): Error {
    const err = e as Error & { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    const name = err.name ?? 'Error';
    if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
      if (name === 'NoSuchBucket') return new StoreConfigError(`${this.description}: the bucket does not exist: create it or fix PRUNEWISE_ARTIFACTS`);
      return new MissingObjectError(`${what} is not in the store (${this.description})`);
    }
    if (name === 'NoSuchBucket') return new StoreConfigError(`${this.description}: the bucket does not exist: create it or fix PRUNEWISE_ARTIFACTS`);
    if (status === 403 || /^(AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|CredentialsProviderError)$/.test(name))
      return new StoreConfigError(`${this.description}: access refused (${name}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy`);
    if (e instanceof S3ServiceException && status !== undefined && status < 500 && !TRANSIENT_S3.test(name))
      return new StoreConfigError(`${this.description}: ${what}: ${name} (HTTP ${status}): ${err.message.split('\n')[0]}`);
    return new TransientIOError(`artifact store ${this.description} did not answer (${what}: ${name}${status ? ` HTTP ${status}` : ''}): retried`, name);
  }
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.loc.bucket }));
    } catch (e) {
      const f = this.fail(e, 'the bucket');
      throw f instanceof MissingObjectError ? new StoreConfigError(`${this.description}: the bucket does not exist: create it or fix PRUNEWISE_ARTIFACTS`) : f;
    }
  }
  async size(key: string): Promise<number | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key) }));
      return r.ContentLength ?? 0;
    } catch (e) {
      const f = this.fail(e, key);
      if (f instanceof MissingObjectError) return undefined;
      throw f;
    }
  }
  async putFile(key: string, file: string): Promise<void> {
    const bytes = fs.statSync(file).size;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key), Body: fs.createReadStream(file), ContentLength: bytes }));
    } catch (e) {
      throw this.fail(e, key);
    }
  }
  async putBytes(key: string, data: Uint8Array | string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key), Body: typeof data === 'string' ? Buffer.from(data) : data }));
    } catch (e) {
      throw this.fail(e, key);
    }
  }
  async getToFile(key: string, file: string): Promise<void> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key) }));
      await pipeline(r.Body as Readable, fs.createWriteStream(file));
    } catch (e) {
      throw this.fail(e, key);
    }
  }
  async getBytes(key: string): Promise<Buffer> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key) }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (e) {
      throw this.fail(e, key);
    }
  }
  async list(prefix: string): Promise<Array<{ key: string; bytes: number; modified: Date }>> {
    const out: Array<{ key: string; bytes: number; modified: Date }> = [];
    let token: string | undefined;
    const strip = this.loc.prefix ? this.loc.prefix.length + 1 : 0;
    try {
      do {
        const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: this.k(prefix), ContinuationToken: token }));
        for (const o of r.Contents ?? []) out.push({ key: o.Key!.slice(strip), bytes: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      throw this.fail(e, `listing ${prefix}`);
    }
    return out;
  }
  async delete(keys: string[]): Promise<void> {
    // one DeleteObject each: the batch call needs a Content-MD5 that self-hosted servers handle differently
    for (const key of keys) {
      try {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key) }));
      } catch (e) {
        const f = this.fail(e, key);
        if (!(f instanceof MissingObjectError)) throw f;
      }
    }
  }
}

/** Writes `dest` through a temporary sibling that `fill` writes, fsync'd and then renamed into place; the temporary is removed on failure. */
function replaceAtomically(dest: string, fill: (tmp: string) => void): void {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  try {
    fill(tmp);
    const fd = fs.openSync(tmp, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
