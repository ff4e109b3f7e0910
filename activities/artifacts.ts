// Our own artifacts: written into this worker's home under their name (`artifacts/<campaign>/…`),
// published to the artifact store (blobstore/: content-addressed, every worker reaches it) and
// handed on as `<name>@sha256:<hex>`; read back by checking the key out into this home, verified
// file by file (a file that fails its sha256 is fetched again, never trusted). An error reading
// one of OUR artifacts is not bad input (the file may be re-made, or its store or disk come
// back): it is rethrown as a retryable ArtifactError. Only the user's model is bad input.
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArtifactStore, parseRef, type Published } from '../blobstore';
import { isBadInput, ModelError, TransientIOError } from '../core';
import type { ArtifactRef } from '../db/types';
import { loadModel, sha256 } from '../ml';

/** Reading one of prunewise's own artifacts failed: retried, never reported as the user's fault. */
export class ArtifactError extends Error {
  override name = 'ArtifactError';
}

export class Artifacts {
  readonly store: ArtifactStore;
  constructor(
    readonly home: string,
    store?: ArtifactStore,
  ) {
    this.store = store ?? ArtifactStore.fromEnv(home);
  }

  /** Absolute path of a name (home-relative) in this worker's home. */
  abs(name: string): string {
    return path.join(this.home, parseRef(name).name);
  }

  /**
   * The local path of an artifact, checked out from the store and verified: `ref` is
   * `<name>@sha256:<hex>`, or a bare name (histories from before the store; found through its ref,
   * else the home's own file as it is).
   * @throws ArtifactError (retryable) when it is nowhere or fails its check
   */
  async local(ref: string): Promise<string> {
    const { name, key } = parseRef(ref);
    const abs = path.join(this.home, name);
    try {
      const k = key ?? (await this.store.resolve(name));
      if (!k) {
        if (fs.existsSync(abs)) return abs; // a home from before the store, not migrated: its own file
        throw new ArtifactError(`artifact ${name} is neither in the artifact store (${this.store.description}) nor in ${this.home}`);
      }
      await this.store.checkout(k, abs);
      return abs;
    } catch (e) {
      if (e instanceof ArtifactError) throw e;
      throw new ArtifactError(`artifact ${name}: ${(e as Error).message}`);
    }
  }

  /** Publishes what was just written under `name` in this home; returns `<name>@<key>`. @throws TransientIOError */
  async publish(name: string): Promise<Published> {
    try {
      return await this.store.publish(name, this.abs(name));
    } catch (e) {
      if (e instanceof TransientIOError) throw e;
      throw new TransientIOError(`artifact ${name}: storing it in ${this.store.description} failed: ${(e as Error).message}`);
    }
  }

  /** Publishes a model folder just written: its ArtifactRef (bytes and sha256 of the weights as the saver gave them) and its ref. */
  async publishModel(kind: string, name: string, saved: { bytes: number; sha256: string }): Promise<ArtifactRef & { ref: string }> {
    const p = await this.publish(name);
    return { kind, path: name, bytes: saved.bytes, sha256: saved.sha256, key: p.key, ref: p.ref };
  }

  /** Publishes one file just written (JSON, text): its ArtifactRef and ref. */
  async publishFile(kind: string, name: string): Promise<ArtifactRef & { ref: string }> {
    const p = await this.publish(name);
    return { kind, path: name, bytes: p.tree.files[0].bytes, sha256: p.tree.files[0].sha256, key: p.key, ref: p.ref };
  }

  /** Loads a model we wrote (a ref). @throws ArtifactError (retryable) when it cannot be fetched or read */
  async loadModel(ref: string): Promise<tfl.LayersModel> {
    const dir = await this.local(ref);
    try {
      return await loadModel(dir);
    } catch (e) {
      throw new ArtifactError(`artifact ${parseRef(ref).name}: ${(e as Error).message}`);
    }
  }

  /** Loads the user's model (`model:` of the campaign file). @throws ModelError (bad input) when tfjs cannot read it */
  async loadUserModel(file: string): Promise<tfl.LayersModel> {
    try {
      return await loadModel(file);
    } catch (e) {
      if (isBadInput(e)) throw /^model: /.test(e.message) ? e : new ModelError(`model: ${e.message}`); // loadModel's line names the file and layer
      throw new ModelError(`model: ${file}: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  /** Reads a JSON file we wrote (a ref). @throws ArtifactError (retryable) */
  async readJson<T>(ref: string): Promise<T> {
    const text = await this.readText(ref);
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new ArtifactError(`artifact ${parseRef(ref).name}: ${(e as Error).message}`);
    }
  }

  /** Reads a text file we wrote (a ref). @throws ArtifactError (retryable) */
  async readText(ref: string): Promise<string> {
    const file = await this.local(ref);
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new ArtifactError(`artifact ${parseRef(ref).name}: ${(e as Error).message}`);
    }
  }

  /** Describes a model folder another step wrote (bytes and sha256 of its weights.bin) and publishes it. */
  async describe(kind: string, name: string): Promise<ArtifactRef & { ref: string }> {
    const data = fs.readFileSync(path.join(this.abs(name), 'weights.bin'));
    return this.publishModel(kind, name, { bytes: data.byteLength, sha256: sha256(data) });
  }
}
