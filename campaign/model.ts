// The campaign's `model:` checked at submit, before anything starts: a Keras file or SavedModel is converted
// into the home (ml/keras.ts, cached by the sha256 of its bytes), a tfjs model.json copied there, and the
// result is loaded as every stage will load it (format, Keras 3 normalisation, tfjs-layers deserialisation,
// weights). Any failure is one line: `<file>: model: <where>: <cause>: <fix>`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CampaignError } from '../core/errors';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { modelKind, prepareUserModel, type ModelSource } from '../ml/keras';
import { loadModel, probeModel } from '../ml/models';
import { supportProblems } from '../ml/graph';
import { topologyProblems } from '../ml/support';
import { ModelError } from '../core/errors';
import { checkTaskAndInput, isModelPath } from './load';
import type { CampaignSpec } from './schema';

/**
 * Prepares and loads the campaign's own model; on success `spec.model` is the prepared model.json in
 * `cacheRoot` (what the workers load) and the returned source says which Keras wrote it.
 * @returns undefined for a zoo model
 * @throws CampaignError one line naming the campaign file, the model and the layer or field at fault
 */
export async function checkModel(spec: CampaignSpec, file: string, cacheRoot: string): Promise<ModelSource | undefined> {
  if (!isModelPath(spec.model)) return undefined;
  const bad = (e: unknown, shown: string, real?: string) =>
    new CampaignError(
      `${file}: model: ${(real
        ? String((e as Error).message)
            .split(real)
            .join(shown)
        : String((e as Error).message ?? e)
      ).replace(/^model: /, '')}`,
    );
  // the check computes on the quiet pure-JS backend: loading libtensorflow here would print its start-up
  // lines before a one-line error (the workers' initBackend picks the training backend afterwards)
  if (!tf.engine().backendName) {
    await tf.setBackend('cpu');
    // chosen on purpose for this check: tfjs-backend-cpu's first-use "install our node backend" banner would be noise
    (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  }
  const user = spec.model;
  if (modelKind(user) === 'tfjs') await loads(user).catch((e) => Promise.reject(bad(e, user))); // before copying anything into the home
  let prepared;
  try {
    prepared = await prepareUserModel(user, cacheRoot);
  } catch (e) {
    throw bad(e, user);
  }
  if (prepared.source.kind !== 'tfjs') {
    try {
      await loads(prepared.modelJson);
    } catch (e) {
      if (!prepared.cached) fs.rmSync(path.dirname(prepared.modelJson), { recursive: true, force: true }); // keep no copy of a model that does not load
      throw bad(e, `${user} (converted to ${prepared.modelJson})`, prepared.modelJson);
    }
  }
  spec.model = prepared.modelJson;
  // what load.ts could not read from a Keras file: the task against its outputs, an image folder's size from its input
  if (prepared.source.kind !== 'tfjs') checkTaskAndInput(spec, file);
  return prepared.source;
}

/**
 * Loads a model.json as the workers will, runs it once, and checks it against the support matrix
 * (ml/support.ts: fields tfjs-layers would drop, layers that cannot be pruned or are refused).
 * @throws ModelError one line per problem, naming the layer and field
 */
async function loads(modelJson: string): Promise<void> {
  let topology: unknown;
  try {
    topology = JSON.parse(fs.readFileSync(modelJson, 'utf8')).modelTopology;
  } catch {
    topology = undefined; // unreadable: loadModel says so
  }
  const early = topologyProblems(topology);
  if (early.length) throw new ModelError(early.join('; '));
  const model = await loadModel(modelJson);
  try {
    probeModel(model, modelJson);
    const problems = supportProblems(model);
    if (problems.length) throw new ModelError(problems.join('; '));
  } finally {
    model.dispose();
  }
}
