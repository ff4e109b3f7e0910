// Our own artifacts under the home folder: paths, descriptions (bytes, sha256) and loading. An
// error reading one of OUR artifacts is not bad input (the file may be re-made, or its disk come
// back): it is rethrown as a retryable ArtifactError. Only the user's model is bad input.
import type * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isBadInput, ModelError } from '../core';
import type { ArtifactRef } from '../db/types';
import { loadModel, sha256 } from '../ml';

/** Reading one of prunewise's own artifacts failed: retried, never reported as the user's fault. */
export class ArtifactError extends Error {
  override name = 'ArtifactError';
}

export class Artifacts {
  constructor(readonly home: string) {}

  /** Absolute path of a path relative to the home folder. */
  abs(rel: string): string {
    return path.join(this.home, rel);
  }

  /** Loads a model we wrote (relative path). @throws ArtifactError (retryable) when it cannot be read */
  async loadModel(rel: string): Promise<tfl.LayersModel> {
    try {
      return await loadModel(this.abs(rel));
    } catch (e) {
      throw new ArtifactError(`artifact ${rel}: ${(e as Error).message}`);
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

  /** Reads a JSON file we wrote. @throws ArtifactError (retryable) */
  readJson<T>(rel: string): T {
    try {
      return JSON.parse(fs.readFileSync(this.abs(rel), 'utf8')) as T;
    } catch (e) {
      throw new ArtifactError(`artifact ${rel}: ${(e as Error).message}`);
    }
  }

  /** Reads a text file we wrote. @throws ArtifactError (retryable) */
  readText(rel: string): string {
    try {
      return fs.readFileSync(this.abs(rel), 'utf8');
    } catch (e) {
      throw new ArtifactError(`artifact ${rel}: ${(e as Error).message}`);
    }
  }

  /** Describes a model folder another step wrote (savers return bytes and hash themselves). */
  describe(kind: string, rel: string): ArtifactRef {
    const data = fs.readFileSync(path.join(this.abs(rel), 'weights.bin'));
    return { kind, path: rel, bytes: data.byteLength, sha256: sha256(data) };
  }
}
