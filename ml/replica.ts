// A training replica thread (see parallel.ts): holds a copy of the model, and per step computes
// the gradient of the loss on the shard it is given, at the weights it was last given.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { parentPort, workerData } from 'node:worker_threads';
import { setValues } from './adam';
import { initBackend } from './backend';
import type { FromReplica, ToReplica } from './parallel';
import { randomLayersOf, shardGradients, type RandomLayers } from './train';

const port = parentPort!;
let model: tfl.LayersModel | null = null;
let vars: tf.Variable[] = [];
let layers: RandomLayers = { batchNorms: [], dropouts: [] };

const reply = (m: FromReplica, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

async function handle(msg: ToReplica): Promise<void> {
  if (msg.type === 'model') {
    model?.dispose();
    model = await tfl.models.modelFromJSON(msg.topology as tfl.ModelAndWeightsConfig['modelTopology'] & object);
    vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const got = vars.map((v) => v.shape.join('x')).join(',');
    const want = msg.shapes.map((s) => s.join('x')).join(',');
    if (got !== want) throw new Error(`replica weights ${got} differ from the model's ${want}`);
    layers = randomLayersOf(model);
    reply({ type: 'ready' });
    return;
  }
  if (!model) throw new Error('step before model');
  msg.weights?.forEach((w, i) => setValues(vars[i], w));
  const { grads, loss, stats } = shardGradients(model, vars, msg, msg.inputShape, msg.task, layers, msg.dropoutSeed, msg.loss);
  reply(
    { type: 'grads', grads, loss, stats },
    [...grads, ...stats].map((g) => g.buffer as ArrayBuffer),
  );
}

(async () => {
  await initBackend(workerData.backend as string);
  port.on('message', (msg: ToReplica) => {
    handle(msg).catch((e: Error) => reply({ type: 'error', message: e.message }));
  });
  reply({ type: 'ready' });
})().catch((e: Error) => reply({ type: 'error', message: e.message }));
