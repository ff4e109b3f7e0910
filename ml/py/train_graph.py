#!/usr/bin/env python3
"""prunewise's training step as one TensorFlow graph (the native backend's graph mode), run by
ml/train-graph.ts in a child process of the project's .venv (tensorflow-cpu 2.21, tf-keras 2.21).

Usage: python train_graph.py <spec.json> <out folder>

spec.json: {"topology": <the tfjs model's Keras topology, model.toJSON()>,
            "task": {"type": "classification" | "regression" | "multilabel", "outputs": "logits" | "probabilities", "units": K},
            "weights": [[layer name, index in the layer's weights, shape, trainable], ...] in the tfjs model's order}

Writes a TensorFlow SavedModel to <out folder> with three signatures over one set of variables
(the model's weights, then Adam's first and second moments of each trainable weight):

  train_step(x [n, ...input], y [n, K], t [n, K] teacher logits (zeros when not distilling),
             lr, b1p, b2p, eps_hat, ls_keep, ls_add, hard_scale, kd_scale, inv_t, dseed [2] int32) -> {loss}
      One Adam step (TensorFlow's ResourceApplyAdam: Kingma & Ba 2015, with tfjs's epsilon
      placement eps_hat = eps·sqrt(1 − β2^t), as ml/adam.ts NativeAdam) on the recipe's loss
      (ml/recipe.ts recipeLoss, ml/task.ts taskLoss — the same formulas, the constants passed in as
      ml/train-graph.ts computes them):
        target = y·ls_keep + ls_add (label smoothing; ls_keep 1, ls_add 0 without it)
        loss = hard_scale · taskLoss(out, target) + kd_scale · KL(softmax(t·inv_t) ‖ softmax(z·inv_t))
      Dropout and SpatialDropout1D/2D/3D draw their masks statelessly from dseed (the step's dropout
      seed) and the layer's index, with tfjs's rule x / keep · floor(u + keep): a function of the
      seed and the step only, so a resume draws the same masks (not tfjs's masks: its generator differs).
      Batch norm in training mode is TensorFlow's FusedBatchNormV3, its moving averages updated as
      tfjs-layers does (x ← x − (x − value)·(1 − momentum), value the batch mean and biased variance),
      as ml/native-kernels.ts does on the eager path.
      With "attention": [[layer, H·W], ...] in the spec (attention transfer, ml/attention.ts) it also takes
      at [n, Σ H·W] (the teacher's normalised maps of those layers, in order) and at_scale (β/2), and adds
        at_scale · Σ_layers mean((Q_s − Q_t)²),  Q = mean over channels of a², unit L2 norm per example
      (Zagoruyko & Komodakis, ICLR 2017), a the layer's output in training mode.
      With "sparsity": {"channels": C, "groups": G, "groupOf": [C group indices],
      "slices": [[weight index, "in" | "out", axis, [channel id or -1 per index along the axis]], ...]}
      (ml/recipe.ts GroupPenalty.slices) it also takes sp_lambda (λ(t)) and sp_alpha (α) and applies the
      growing group-norm sparsity penalty as ml/train.ts does on the eager path, decoupled from Adam:
      from the step's starting weights, n_k = ‖W_k‖₂ per channel, γ_k = 2^(α·(n_max − n_k)/(n_max − n_min))
      within its group (1 when the group's norms are equal), d = λ · Σ_slots γ_channel · w; after Adam's
      step w ← w − lr · d (float32 here; float64 norms on the eager path).
  get_state() -> {w0.., m0.., v0..}
  set_state(w0.., m0.., v0..) -> {ok}

The last stdout line is one JSON object: {"ok": true, "seconds": …} or {"ok": false, "step": …,
"error": …, "layer"?: …}. TensorFlow's logs go to stderr.
"""
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.simplefilter("ignore")

FORMAT = 1


def reply(obj):
    sys.__stdout__.write(json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def main(spec_path, out):
    step = "import TensorFlow"
    try:
        sys.stdout = sys.stderr
        import tensorflow as tf
        import tf_keras

        step = "read the spec"
        with open(spec_path) as f:
            spec = json.load(f)
        task = spec["task"]

        class GraphBatchNorm(tf_keras.layers.BatchNormalization):
            """tf-keras's batch norm; in training mode TensorFlow's fused op and tfjs-layers' moving-average rule."""

            def call(self, inputs, training=None):
                axis = self.axis[0] if isinstance(self.axis, (list, tuple)) else self.axis
                rank = inputs.shape.rank
                if axis < 0:
                    axis += rank
                if not training or rank not in (2, 4) or axis != rank - 1 or not (self.center and self.scale):
                    return super().call(inputs, training=training)
                x4 = inputs if rank == 4 else tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]])
                empty = tf.constant([], tf.float32)
                y, _, _, r1, r2, _ = tf.raw_ops.FusedBatchNormV3(
                    x=x4, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
                    epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
                decay = tf.constant(1.0 - self.momentum, tf.float32)
                self.moving_mean.assign(self.moving_mean - (self.moving_mean - r1) * decay)
                self.moving_variance.assign(self.moving_variance - (self.moving_variance - r2) * decay)
                return y if rank == 4 else tf.reshape(y, tf.shape(inputs))

        # dropout masks from the step's seed (an input), so a step's masks are a function of (seed, step)
        # and a resume draws the same ones: stateless uniform noise per layer, tfjs's rule
        # (tf.dropout: x / keep · floor(u + keep), keep = 1 − rate)
        step_seed = {"tensor": None}
        dropout_layers = []

        def seeded(base):
            class GraphDropout(base):
                def __init__(self, *a, **k):
                    super().__init__(*a, **k)
                    self._index = len(dropout_layers)
                    dropout_layers.append(self)

                def call(self, inputs, training=None):
                    if not training or self.rate == 0:
                        return tf.identity(inputs)
                    shape = self._get_noise_shape(inputs)
                    shape = tf.shape(inputs) if shape is None else shape
                    seed = step_seed["tensor"] + tf.constant([0, 7919 * (self._index + 1)], tf.int32)
                    u = tf.random.stateless_uniform(shape, seed=seed, dtype=inputs.dtype)
                    keep = 1.0 - self.rate
                    return inputs / keep * tf.floor(u + keep)

            GraphDropout.__name__ = base.__name__
            return GraphDropout

        layers_module = tf_keras.layers
        custom = {"BatchNormalization": GraphBatchNorm}
        for name in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"):
            custom[name] = seeded(getattr(layers_module, name))

        step = "build the model with tf-keras"
        topology = spec["topology"]
        topology = topology.get("model_config", topology)
        with tf_keras.utils.custom_object_scope(custom):
            model = tf_keras.models.model_from_json(json.dumps(topology))

        step = "match the weights"
        layers = {}

        def walk(ls):
            for layer in ls:
                layers.setdefault(layer.name, layer)
                if hasattr(layer, "layers"):
                    walk(layer.layers)

        walk(model.layers)
        weights, trainable = [], []
        for name, index, shape, train in spec["weights"]:
            layer = layers.get(name)
            if layer is None or index >= len(layer.weights):
                raise ValueError("weight %d of layer %s is not in the tf-keras model" % (index, name))
            w = layer.weights[index]
            if list(w.shape) != list(shape):
                raise ValueError("weight %d of layer %s: tf-keras has shape %s, tfjs %s" % (index, name, list(w.shape), shape))
            weights.append(w)
            if train:
                trainable.append(w)
        if len({id(w) for w in weights}) != len(model.weights):
            raise ValueError("%d weights given, the tf-keras model has %d" % (len(weights), len(model.weights)))

        step = "trace the training step"
        # attention transfer: [[layer name, H·W], ...] whose outputs the loss matches to the teacher's maps (input "at")
        attention = [(name, int(size)) for name, size in spec.get("attention", [])]
        for name, _ in attention:
            if name not in layers:
                raise ValueError("attention layer %s is not in the tf-keras model" % name)
        features = tf_keras.Model(model.inputs, [model.outputs[0]] + [layers[name].output for name, _ in attention]) if attention else None
        # the group-norm sparsity penalty (ml/recipe.ts): per penalised weight, its marks per slot
        sparsity = spec.get("sparsity")
        marks = {}
        if sparsity:
            n_channels, n_groups = int(sparsity["channels"]), int(sparsity["groups"])
            trainable_ids = {id(w) for w in trainable}
            for index, slot, axis, chan in sparsity["slices"]:
                if not (0 <= index < len(weights)) or id(weights[index]) not in trainable_ids:
                    raise ValueError("sparsity: weight %d is not a trainable weight of the model" % index)
                if len(chan) != weights[index].shape[axis]:
                    raise ValueError("sparsity: weight %d has %d entries on axis %d, the penalty maps %d"
                                     % (index, weights[index].shape[axis], axis, len(chan)))
                marks.setdefault(index, {}).setdefault(slot, []).append((int(axis), [int(c) for c in chan]))

        def channel_map(w, slot_marks):
            # int32 of w's shape: each element's channel id in this slot, n_channels where it has none
            m = None
            for axis, chan in slot_marks:
                shape = [1] * w.shape.rank
                shape[axis] = len(chan)
                c = tf.broadcast_to(tf.reshape(tf.constant(chan, tf.int32), shape), w.shape)
                m = c if m is None else tf.where(c >= 0, c, m)
            return tf.where(m >= 0, m, n_channels)

        def penalty_decay(sp_lambda, sp_alpha):
            # d per penalised weight, from the weights as they are now (before the step)
            values = {i: tf.identity(weights[i].read_value()) for i in sorted(marks)}
            maps = {i: [channel_map(values[i], marks[i][slot]) for slot in sorted(marks[i])] for i in sorted(marks)}
            sq = tf.zeros([n_channels + 1], tf.float32)
            for i in sorted(marks):
                flat = tf.reshape(tf.square(values[i]), [-1])
                for m in maps[i]:
                    sq += tf.math.unsorted_segment_sum(flat, tf.reshape(m, [-1]), n_channels + 1)
            norms = tf.sqrt(sq[:n_channels])
            group_of = tf.constant(sparsity["groupOf"], tf.int32)
            lo = tf.gather(tf.math.unsorted_segment_min(norms, group_of, n_groups), group_of)
            hi = tf.gather(tf.math.unsorted_segment_max(norms, group_of, n_groups), group_of)
            span = hi - lo
            gamma = tf.where(span > 0, tf.pow(2.0, sp_alpha * (hi - norms) / tf.where(span > 0, span, 1.0)), 1.0)
            scale = tf.concat([sp_lambda * gamma, tf.zeros([1], tf.float32)], 0)
            return {i: tf.add_n([tf.gather(scale, m) * values[i] for m in maps[i]]) for i in sorted(marks)}

        ms = [tf.Variable(tf.zeros(w.shape), name="adam_m_%d" % k) for k, w in enumerate(trainable)]
        vs = [tf.Variable(tf.zeros(w.shape), name="adam_v_%d" % k) for k, w in enumerate(trainable)]
        units = int(task["units"])
        in_shape = [None] + [d if d is not None else 1 for d in model.inputs[0].shape[1:]]
        logits = task.get("outputs") == "logits"

        def task_loss(out, target):
            if task["type"] == "regression":
                return tf.reduce_mean(tf.math.squared_difference(out, target))
            if task["type"] == "classification":
                logp = tf.nn.log_softmax(out) if logits else tf.math.log(tf.clip_by_value(out, 1e-7, 1.0))
                return -tf.reduce_mean(tf.reduce_sum(target * logp, -1))
            if logits:
                z = out
                return tf.reduce_mean(tf.nn.relu(z) - z * target + tf.math.log1p(tf.exp(-tf.abs(z))))
            p = tf.clip_by_value(out, 1e-7, 1 - 1e-7)
            return -tf.reduce_mean(target * tf.math.log(p) + (1 - target) * tf.math.log(1 - p))

        scalar = lambda name: tf.TensorSpec([], tf.float32, name=name)  # noqa: E731
        beta1 = tf.constant(0.9, tf.float32)
        beta2 = tf.constant(0.999, tf.float32)

        class Trainer(tf.Module):
            def __init__(self):
                super().__init__()
                # the variables only: the Keras model itself is not tracked, so saving traces no Keras layer
                # functions (faster; and they could not capture the step's dropout seed)
                self.ws = list(weights)
                self.ms = ms
                self.vs = vs

            def step_body(self, x, y, t, lr, b1p, b2p, eps_hat, ls_keep, ls_add, hard_scale, kd_scale, inv_t, dseed, at=None, at_scale=None,
                          sp_lambda=None, sp_alpha=None):
                step_seed["tensor"] = dseed
                decay = penalty_decay(sp_lambda, sp_alpha) if marks else {}
                with tf.GradientTape() as tape:
                    if at is None:
                        out = model(x, training=True)
                    else:
                        outs = features(x, training=True)
                        out = outs[0]
                    hard = task_loss(out, y * ls_keep + ls_add if task["type"] == "classification" else y)
                    if task["type"] == "classification":
                        z = out if logits else tf.math.log(tf.clip_by_value(out, 1e-7, 1.0))
                        p = tf.nn.softmax(t * inv_t)
                        log_p = tf.nn.log_softmax(t * inv_t)
                        log_q = tf.nn.log_softmax(z * inv_t)
                        kl = tf.reduce_mean(tf.reduce_sum(p * (log_p - log_q), -1))
                        loss = hard * hard_scale + kl * kd_scale
                    else:
                        loss = hard
                    if at is not None:
                        # attention transfer: Σ_layers mean((Q_s − Q_t)²), Q = mean_c(a²) per position, unit L2 norm per example
                        at_loss, offset = 0.0, 0
                        for (name, size), a in zip(attention, outs[1:]):
                            q = tf.reshape(tf.reduce_mean(tf.square(a), -1), [-1, size])
                            q = q / tf.maximum(tf.norm(q, axis=1, keepdims=True), 1e-12)
                            at_loss += tf.reduce_mean(tf.square(q - at[:, offset:offset + size]))
                            offset += size
                        loss = loss + at_loss * at_scale
                grads = tape.gradient(loss, trainable)
                for w, m, v, g in zip(trainable, self.ms, self.vs, grads):
                    if g is None:
                        g = tf.zeros_like(w)
                    tf.raw_ops.ResourceApplyAdam(var=w.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                                                 lr=lr, beta1=beta1, beta2=beta2, epsilon=eps_hat, grad=g, use_locking=False)
                for i, d in decay.items():
                    weights[i].assign_sub(lr * d)
                return {"loss": loss}

            step_inputs = [
                tf.TensorSpec(in_shape, tf.float32, name="x"), tf.TensorSpec([None, units], tf.float32, name="y"),
                tf.TensorSpec([None, units], tf.float32, name="t"), scalar("lr"), scalar("b1p"), scalar("b2p"),
                scalar("eps_hat"), scalar("ls_keep"), scalar("ls_add"), scalar("hard_scale"), scalar("kd_scale"),
                scalar("inv_t"), tf.TensorSpec([2], tf.int32, name="dseed")]
            # optional inputs after the common ones: attention transfer's, then the sparsity penalty's
            extra_specs = []
            if attention:
                extra_specs += [tf.TensorSpec([None, sum(size for _, size in attention)], tf.float32, name="at"), scalar("at_scale")]
            if sparsity:
                extra_specs += [scalar("sp_lambda"), scalar("sp_alpha")]

            @tf.function(input_signature=step_inputs + extra_specs)
            def train_step(self, x, y, t, lr, b1p, b2p, eps_hat, ls_keep, ls_add, hard_scale, kd_scale, inv_t, dseed, *extra):
                extra = list(extra)
                at, at_scale = (extra.pop(0), extra.pop(0)) if attention else (None, None)
                sp_lambda, sp_alpha = (extra.pop(0), extra.pop(0)) if sparsity else (None, None)
                return self.step_body(x, y, t, lr, b1p, b2p, eps_hat, ls_keep, ls_add, hard_scale, kd_scale, inv_t, dseed,
                                      at, at_scale, sp_lambda, sp_alpha)

            @tf.function(input_signature=[])
            def get_state(self):
                out = {"w%d" % k: tf.identity(w.read_value()) for k, w in enumerate(weights)}
                out.update({"m%d" % k: tf.identity(m.read_value()) for k, m in enumerate(self.ms)})
                out.update({"v%d" % k: tf.identity(v.read_value()) for k, v in enumerate(self.vs)})
                return out

            @tf.function(input_signature=[tf.TensorSpec(w.shape, tf.float32, name="w%d" % k) for k, w in enumerate(weights)]
                         + [tf.TensorSpec(w.shape, tf.float32, name="m%d" % k) for k, w in enumerate(trainable)]
                         + [tf.TensorSpec(w.shape, tf.float32, name="v%d" % k) for k, w in enumerate(trainable)])
            def set_state(self, *values):
                for var, value in zip(weights + self.ms + self.vs, values):
                    var.assign(value)
                return {"ok": tf.constant(0, tf.int32)}

        t0 = time.time()
        trainer = Trainer()
        step = "save the SavedModel"
        tf.saved_model.save(trainer, out, signatures={
            "train_step": trainer.train_step.get_concrete_function(),
            "get_state": trainer.get_state.get_concrete_function(),
            "set_state": trainer.set_state.get_concrete_function(),
        })
        reply({"ok": True, "format": FORMAT, "seconds": round(time.time() - t0, 3), "weights": len(weights), "trainable": len(trainable)})
    except Exception as e:  # one line for the Node side
        text = (str(e).strip() or type(e).__name__).splitlines()
        reply({"ok": False, "step": step, "error": (text[0] if text else type(e).__name__)[:400]})
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        reply({"ok": False, "step": "read the arguments", "error": "usage: train_graph.py <spec.json> <out folder>"})
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
