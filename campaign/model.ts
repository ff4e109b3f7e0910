// The campaign's `model:` checked at submit, before anything starts: a Keras file or SavedModel is converted
// into the home (ml/keras.ts, cached by the sha256 of its bytes), a tfjs model.json copied there, and the
// result is loaded as every stage will load it (format, Keras 3 normalisation, tfjs-layers deserialisation,
// weights). Any failure is one line: `<file>: model: <where>: <cause>: <fix>`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CampaignError } from '../core/errors';
import { initBackend } from '../ml/backend';
import { prepareUserModel, type ModelSource } from '../ml/keras';
import { loadModel, probeModel } from '../ml/models';
import { isModelPath } from './load';
import type { CampaignSpec } from './schema';

/**
 * Prepares and loads the campaign's own model; on success `spec.model` is the prepared model.json in
 * `cacheRoot` (what the workers load) and the returned source says which Keras wrote it.
 * @returns undefined for a zoo model
 * @throws CampaignError one line naming the campaign file, the model and the layer or field at fault
 */
export async function checkModel(spec: CampaignSpec, file: string, cacheRoot: string): Promise<ModelSource | undefined> {
  if (!isModelPath(spec.model)) return undefined;
  const bad = (e: unknown) => new CampaignError(`${file}: model: ${String((e as Error).message ?? e).replace(/^model: /, '')}`);
  let prepared;
  try {
    prepared = await prepareUserModel(spec.model, cacheRoot);
  } catch (e) {
    throw bad(e);
  }
  await initBackend();
  try {
    const model = await loadModel(prepared.modelJson);
    try {
      probeModel(model, prepared.modelJson);
    } finally {
      model.dispose();
    }
  } catch (e) {
    if (!prepared.cached) fs.rmSync(path.dirname(prepared.modelJson), { recursive: true, force: true }); // keep no copy of a model that does not load
    // name the user's file, not our copy of it
    throw new CampaignError(
      `${file}: model: ${String((e as Error).message)
        .split(prepared.modelJson)
        .join(spec.model)}`,
    );
  }
  spec.model = prepared.modelJson;
  return prepared.source;
}
