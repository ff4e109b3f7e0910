// A training replica thread (see parallel.ts): holds a copy of the model, and per step computes
// the gradient of the loss on the shard it is given, at the weights it is given.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { parentPort, workerData } from 'node:worker_threads';
import { setValues } from './adam';
import { initBackend } from './backend';
import type { FromReplica, ToReplica } from './parallel';
import { shardGradients } from './train';

const port = parentPort!;
let model: tfl.LayersModel | null = null;
let vars: tf.Variable[] = [];

const reply = (m: FromReplica, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

async function handle(msg: ToReplica): Promise<void> {
  if (msg.type === 'model') {
    model?.dispose();
    model = await tfl.models.modelFromJSON(msg.topology as tfl.ModelAndWeightsConfig['modelTopology'] & object);
    vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const got = vars.map((v) => v.shape.join('x')).join(',');
    const want = msg.shapes.map((s) => s.join('x')).join(',');
    if (got !== want) throw new Error(`replica weights ${got} differ from the model's ${want}`);
    reply({ type: 'ready' });
    return;
  }
  if (!model) throw new Error('step before model');
  const t0 = performance.now();
  msg.weights.forEach((w, i) => setValues(vars[i], w));
  const { grads: out, loss } = shardGradients(model, vars, msg, msg.inputShape, msg.classes);
  reply(
    { type: 'grads', grads: out, loss, ms: performance.now() - t0 },
    out.map((g) => g.buffer as ArrayBuffer),
  );
}

(async () => {
  await initBackend(workerData.backend as string);
  port.on('message', (msg: ToReplica) => {
    handle(msg).catch((e: Error) => reply({ type: 'error', message: e.message }));
  });
  reply({ type: 'ready' });
})().catch((e: Error) => reply({ type: 'error', message: e.message }));
