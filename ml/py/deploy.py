#!/usr/bin/env python3
"""prunewise's Python side of "Keras and TFLite out" (issue 11 §7), run by ml/tflite.ts in a child process.

Reads a tfjs layers model folder (model.json + weights, as prunewise writes them) with the pinned
tensorflowjs 4.22 loader (tf-keras), and:

  export  writes it as a Keras file (`.keras` Keras 3, or `.h5` tf-keras) or as TFLite (float32, or
          full-integer int8 calibrated on given inputs: a representative dataset), converted by the
          pinned TensorFlow's `tf.lite.TFLiteConverter`; then loads exactly the written file again
          (Keras, or the TFLite interpreter) and measures its accuracy on the given test inputs.
  predict the outputs of a written file (.keras, .h5, .tflite) on given inputs (tests compare them).
  serve   the `tflite` deployment runtime: converts the baseline and candidate folders to TFLite and
          answers timing requests (warm-up, one ABBA pair, the baseline's runs) as JSON lines on
          stdin/stdout, like ml/runtime-runner.ts does for the tfjs runtimes. The interpreter applies
          TFLite's default CPU delegate, XNNPACK (float32 and int8 kernels).

Data files are raw little-endian: inputs float32 (n × the model's input shape, already scaled as the
model expects), labels uint8 class ids. The last stdout line is one JSON object: {"ok": true, ...} or
{"ok": false, "step": ..., "error": ..., "layer"?: ...}. Everything else (TensorFlow's logs) goes to
stderr.

Only the needed submodules of tensorflowjs are imported: it is installed --no-deps and its top-level
import reaches for tensorflow_hub, tensorflow_decision_forests and jax.
"""
import argparse
import importlib.util
import json
import os
import platform
import re
import sys
import tempfile
import time
import types
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.simplefilter("ignore")

_OUT = None


def _claim_stdout():
    """Keeps fd 1 for our JSON lines; anything else written to stdout (TF, Keras progress) goes to stderr."""
    global _OUT
    fd = os.dup(1)
    os.dup2(2, 1)
    _OUT = os.fdopen(fd, "w", buffering=1)
    sys.stdout = sys.stderr


def reply(obj):
    _OUT.write(json.dumps(obj) + "\n")
    _OUT.flush()


class StepError(Exception):
    """A failure of one named step, optionally on one named layer."""

    def __init__(self, step, message, layer=None):
        super().__init__(message)
        self.step = step
        self.message = message
        self.layer = layer


def first_line(e):
    text = str(e).strip() or type(e).__name__
    text = re.sub(r"^\S+:\d+:\d+: error: ", "", text)  # MLIR's location: our script's line, not the model's
    if "Exception encountered:" in text:  # Keras: "Error when deserializing class … config={…}. Exception encountered: <the cause>"
        text = text.split("Exception encountered:", 1)[1].strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Traceback"):
            return line[:400]
    return text[:400]


# ------------------------------------------------------------------------------------ reading tfjs


def _tfjs_loader():
    if "tensorflowjs.converters.keras_tfjs_loader" in sys.modules:
        return sys.modules["tensorflowjs.converters.keras_tfjs_loader"]
    spec = importlib.util.find_spec("tensorflowjs")
    if spec is None:
        raise StepError("import tensorflowjs", "the tensorflowjs package is not in this Python (run npm run setup)")
    root = list(spec.submodule_search_locations)[0]
    # stub packages, so that importing a submodule does not run tensorflowjs/__init__.py (it imports
    # the whole converter: tensorflow_hub, tensorflow_decision_forests, jax — not installed)
    for name, where in (("tensorflowjs", root), ("tensorflowjs.converters", os.path.join(root, "converters"))):
        if name not in sys.modules:
            m = types.ModuleType(name)
            m.__path__ = [where]
            sys.modules[name] = m
    from tensorflowjs.converters import keras_tfjs_loader  # noqa: E402

    return keras_tfjs_loader


def topology_layers(model_dir):
    """[(name, class_name)] of the tfjs model.json's layers (nested models flattened)."""
    with open(os.path.join(model_dir, "model.json")) as f:
        j = json.load(f)
    out = []

    def walk(cfg):
        layers = cfg.get("config", {}).get("layers") if isinstance(cfg.get("config"), dict) else None
        for layer in layers or []:
            name = layer.get("config", {}).get("name") or layer.get("name")
            out.append((name, layer.get("class_name")))
            if isinstance(layer.get("config"), dict) and "layers" in layer["config"]:
                walk(layer)

    topo = j.get("modelTopology", {})
    walk(topo.get("model_config", topo))
    return out


def layer_in(text, layers):
    """The model layer an error message is about: the longest layer name it mentions (as a name or a path part)."""
    import re

    best = None
    for name, cls in layers:
        if not name:
            continue
        if re.search(r"(^|[^\w])" + re.escape(name) + r"($|[^\w])", text):
            if best is None or len(name) > len(best[0]):
                best = (name, cls)
    if best is None:  # a class the message names, when only one layer has it
        for name, cls in layers:
            if cls and re.search(r"\b" + re.escape(cls) + r"\b", text) and sum(1 for _, c in layers if c == cls) == 1:
                return (name, cls)
    return best


def fail_on_layer(step, e, layers):
    msg = first_line(e)
    hit = layer_in(str(e), layers)
    if hit:
        return StepError(step, msg, layer='"%s" (%s)' % hit)
    return StepError(step, msg)


def load_tfjs(model_dir):
    """The tfjs layers model as a tf-keras model (the tensorflowjs 4.22 loader)."""
    layers = topology_layers(model_dir)
    loader = _tfjs_loader()
    try:
        return loader.load_keras_model(os.path.join(model_dir, "model.json")), layers
    except Exception as e:
        raise fail_on_layer("read the tfjs model with tensorflowjs", e, layers)


# ------------------------------------------------------------------------------------ Keras files

# tf-keras layer config keys Keras 3 refuses, and the values tf-keras always writes for them (its
# depthwise and separable layers inherit `groups` and the unused `kernel_*` of Conv): dropped only
# with these values, so any other value still fails, naming the layer.
_ANY = object()
_SEPARABLE = {"groups": 1, "kernel_initializer": _ANY, "kernel_regularizer": None, "kernel_constraint": None}
_KERAS3_DROP = {
    "DepthwiseConv1D": {"groups": 1},
    "DepthwiseConv2D": {"groups": 1},
    "Conv1DTranspose": {"groups": 1},
    "Conv2DTranspose": {"groups": 1},
    "Conv3DTranspose": {"groups": 1},
    "SeparableConv1D": _SEPARABLE,
    "SeparableConv2D": _SEPARABLE,
}


def _patch_for_keras3(cfg):
    if isinstance(cfg, dict):
        cls = cfg.get("class_name")
        if cls in _KERAS3_DROP and isinstance(cfg.get("config"), dict):
            for k, v in _KERAS3_DROP[cls].items():
                if k in cfg["config"] and (v is _ANY or cfg["config"][k] == v):
                    cfg["config"].pop(k)
        for v in cfg.values():
            _patch_for_keras3(v)
    elif isinstance(cfg, list):
        for v in cfg:
            _patch_for_keras3(v)
    return cfg


def _keras3_culprit(model_config, layers):
    """Deserializes the layers one by one with Keras 3: the first that fails, named."""
    import keras

    cfg = model_config.get("config", {})
    for layer in cfg.get("layers", []) if isinstance(cfg, dict) else []:
        name = layer.get("config", {}).get("name") or layer.get("name")
        if layer.get("class_name") == "InputLayer":
            continue
        try:
            keras.layers.deserialize({"class_name": layer["class_name"], "config": layer["config"]})
        except Exception as e:  # noqa: BLE001
            return StepError("build the Keras 3 model", first_line(e), layer='"%s" (%s)' % (name, layer.get("class_name")))
    return None


def to_keras3(tfk_model, layers, tmp):
    """The tf-keras model as a Keras 3 model: saved as legacy HDF5, its config made Keras-3 readable, loaded by Keras 3."""
    import h5py
    import keras

    h5 = os.path.join(tmp, "legacy.h5")
    tfk_model.save(h5)
    with h5py.File(h5, "r+") as f:
        raw = f.attrs["model_config"]
        config = _patch_for_keras3(json.loads(raw.decode() if isinstance(raw, bytes) else raw))
        f.attrs["model_config"] = json.dumps(config).encode()
    try:
        return keras.models.load_model(h5, compile=False)
    except Exception as e:
        import re

        m = re.search(r"deserializing class '(\w+)' using config=\{'name': '([^']+)'", str(e))
        if m:
            raise StepError("build the Keras 3 model", first_line(e), layer='"%s" (%s)' % (m.group(2), m.group(1)))
        culprit = _keras3_culprit(config, layers)
        raise culprit or fail_on_layer("build the Keras 3 model", e, layers)


def load_keras_file(path):
    if path.endswith(".h5"):
        import tf_keras

        return tf_keras.models.load_model(path, compile=False)
    import keras

    return keras.models.load_model(path, compile=False)


def keras_predict(model, x, batch=256):
    import numpy as np

    outs = []
    for i in range(0, len(x), batch):
        y = model(x[i : i + batch], training=False)
        if isinstance(y, (list, tuple)):
            y = y[0]
        outs.append(np.asarray(y))
    return np.concatenate(outs) if outs else np.zeros((0,))


# ------------------------------------------------------------------------------------ TFLite


def to_tflite(tfk_model, layers, calib=None):
    """TFLite flatbuffer bytes of the tf-keras model: float32, or full-integer int8 (int8 inputs and
    outputs) calibrated on `calib` (the representative dataset, one example per step)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(tfk_model)
    if calib is not None:

        def representative():
            for i in range(len(calib)):
                yield [calib[i : i + 1]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    step = "convert to TFLite" + (" int8" if calib is not None else "")
    try:
        return conv.convert()
    except Exception as e:
        err = fail_on_layer(step, e, layers)
        if err.layer is None:
            hit = _layer_of_ops(tfk_model, str(e), layers)
            if hit:
                err = StepError(step, first_line(e), layer='"%s" (%s)' % hit)
        err.message += ": TFLite's converter cannot take this model as it is (deploy it as tfjs or keras, or change that layer)"
        raise err


def _layer_of_ops(tfk_model, text, layers):
    """The layer whose ops the converter refused: the op types its message names ('tf.X' op), found
    in the model's traced graph (and the graphs of its functions, e.g. a recurrent layer's loop),
    whose op names carry the layer's name scope."""
    import re

    import tensorflow as tf

    types_ = set(re.findall(r"'tf\.(\w+)' op", text))
    if not types_:
        return None
    try:
        spec = [tf.TensorSpec(t.shape, t.dtype) for t in tfk_model.inputs]
        graph = tf.function(lambda *x: tfk_model(list(x) if len(x) > 1 else x[0], training=False)).get_concrete_function(*spec).graph
    except Exception:  # noqa: BLE001
        return None
    names = [op.name for op in graph.get_operations() if op.type in types_]
    for fn in getattr(graph, "_functions", {}).values():
        fg = getattr(fn, "graph", None)
        if fg is not None:
            names += ["%s/%s" % (fn.name, op.name) for op in fg.get_operations() if op.type in types_]
    for name in names:
        hit = layer_in(name.replace("/", " "), layers)
        if hit:
            return hit
    return None


class Tflite:
    """A TFLite interpreter on a file, XNNPACK applied (TFLite's default CPU delegate), batch resizable."""

    def __init__(self, path, threads):
        import tensorflow as tf

        self.it = tf.lite.Interpreter(model_path=path, num_threads=threads)
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        self.batch = None

    def delegated(self):
        try:
            self.it.allocate_tensors()
            return any(o.get("op_name") == "DELEGATE" for o in self.it._get_ops_details())
        except Exception:  # noqa: BLE001 (a private API: unknown is not an error)
            return None

    def prepare(self, x):
        """x float32 (model scale) → the interpreter's input dtype (int8: quantized with the input's scale, zero point)."""
        import numpy as np

        dt = self.inp["dtype"]
        if dt == np.float32:
            return x.astype(np.float32)
        scale, zero = self.inp["quantization"]
        info = np.iinfo(dt)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dt)

    def resize(self, n):
        if self.batch != n:
            self.it.resize_tensor_input(self.inp["index"], [n] + list(self.inp["shape"][1:]))
            self.it.allocate_tensors()
            self.batch = n

    def run(self, xq):
        self.resize(len(xq))
        self.it.set_tensor(self.inp["index"], xq)
        self.it.invoke()
        return self.it.get_tensor(self.out["index"])

    def output_float(self, y):
        import numpy as np

        if self.out["dtype"] == np.float32:
            return y
        scale, zero = self.out["quantization"]
        return (y.astype(np.float32) - zero) * scale

    def predict(self, x, batch=256):
        import numpy as np

        outs = [self.output_float(self.run(self.prepare(x[i : i + batch])).copy()) for i in range(0, len(x), batch)]
        return np.concatenate(outs) if outs else np.zeros((0,))


def tflite_threads():
    return int(os.environ.get("PRUNEWISE_TFLITE_THREADS", "1"))


# ------------------------------------------------------------------------------------ data


def read_x(path, shape):
    import numpy as np

    x = np.fromfile(path, dtype="<f4")
    per = int(np.prod(shape))
    if per == 0 or x.size % per:
        raise StepError("read inputs", "%s: %d floats are not a whole number of %s examples" % (path, x.size, shape))
    return x.reshape([-1] + list(shape))


def accuracy(pred, y):
    import numpy as np

    if pred.ndim != 2 or pred.shape[1] < 2:
        raise StepError("measure accuracy", "the model's output has shape %s: accuracy needs class scores (n × classes)" % (list(pred.shape),))
    return float(np.mean(np.argmax(pred, axis=1) == y))


def versions():
    import tensorflow as tf

    v = {"tensorflow": tf.__version__, "python": platform.python_version()}
    try:
        import keras

        v["keras"] = keras.__version__
    except Exception:  # noqa: BLE001
        pass
    try:
        import tf_keras

        v["tfKeras"] = tf_keras.__version__
    except Exception:  # noqa: BLE001
        pass
    return v


def write_atomic(out, write):
    """write(tmp_path) then rename onto `out` (the same folder, the same extension: Keras checks it)."""
    d = os.path.dirname(os.path.abspath(out))
    base = os.path.basename(out)
    tmp = os.path.join(d, ".partial-%d-%s" % (os.getpid(), base))
    try:
        write(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------------------------ commands


def cmd_export(a):
    import numpy as np

    shape = json.loads(a.shape)
    tfk, layers = load_tfjs(a.model)
    result = {"format": a.format, "file": os.path.abspath(a.out), "versions": versions(), "layers": len(layers)}
    with tempfile.TemporaryDirectory() as tmp:
        if a.format == "keras":
            if a.family == "keras3":
                model = to_keras3(tfk, layers, tmp)
                if not a.out.endswith(".keras"):
                    raise StepError("save the Keras file", "a Keras 3 file must end in .keras (got %s)" % a.out)
            else:
                model = tfk
                if not a.out.endswith(".h5"):
                    raise StepError("save the Keras file", "a tf-keras file must end in .h5 (got %s)" % a.out)
            try:
                write_atomic(a.out, lambda p: model.save(p))
            except StepError:
                raise
            except Exception as e:
                raise fail_on_layer("save the Keras file", e, layers)
            try:
                written = load_keras_file(a.out)
            except Exception as e:
                raise fail_on_layer("load the written Keras file", e, layers)
            result["loader"] = "keras %s keras.models.load_model" % result["versions"].get("keras") if a.family == "keras3" else (
                "tf_keras %s tf_keras.models.load_model" % result["versions"].get("tfKeras")
            )
            predict = lambda x: keras_predict(written, x)  # noqa: E731
        else:
            calib = None
            if a.format == "tflite-int8":
                if not a.calib_x:
                    raise StepError("convert to TFLite int8", "full-integer int8 needs calibration inputs (the validation split)")
                calib = read_x(a.calib_x, shape)
                result["calibration"] = {"examples": int(len(calib)), "split": a.calib_split}
            flat = to_tflite(tfk, layers, calib)
            write_atomic(a.out, lambda p: open(p, "wb").write(flat))
            try:
                interp = Tflite(a.out, tflite_threads())
            except Exception as e:
                raise StepError("load the written TFLite file", first_line(e))
            result["loader"] = "tf.lite.Interpreter (TensorFlow %s), XNNPACK %s" % (
                result["versions"]["tensorflow"],
                {True: "applied", False: "not applied", None: "unknown"}[interp.delegated()],
            )
            result["input"] = {"dtype": np.dtype(interp.inp["dtype"]).name, "quantization": [float(q) for q in interp.inp["quantization"]]}
            result["output"] = {"dtype": np.dtype(interp.out["dtype"]).name, "quantization": [float(q) for q in interp.out["quantization"]]}
            predict = interp.predict
        result["bytes"] = os.path.getsize(a.out)
        if a.test_x:
            x = read_x(a.test_x, shape)
            y = np.fromfile(a.test_y, dtype=np.uint8)
            if len(y) != len(x):
                raise StepError("read inputs", "%d labels for %d test inputs" % (len(y), len(x)))
            try:
                pred = predict(x)
            except StepError:
                raise
            except Exception as e:
                raise fail_on_layer("run the written file", e, layers)
            result["accuracy"] = accuracy(pred, y)
            result["examples"] = int(len(x))
    return result


def cmd_predict(a):
    x = read_x(a.x, json.loads(a.shape))
    shapes = []
    for i, file in enumerate(a.file):
        if file.endswith(".tflite"):
            pred = Tflite(file, tflite_threads()).predict(x)
        else:
            pred = keras_predict(load_keras_file(file), x)
        pred.astype("<f4").tofile("%s.%d" % (a.out, i))
        shapes.append(list(pred.shape))
    return {"shapes": shapes}


# ------------------------------------------------------------------------------------ the runtime


class Runtime:
    """The `tflite` deployment runtime's runner: the same protocol as ml/runtime-runner.ts."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="prunewise-tflite-")
        self.models = {}

    def open(self, r):
        import numpy as np

        threads = int(r.get("threads") or tflite_threads())
        calib = None
        if r.get("calibration"):
            calib = read_x(r["calibration"]["x"], r["calibration"]["shape"])
        info = {"variants": {}}
        for role in ("baseline", "candidate"):
            src = r.get(role)
            if not src:
                continue
            variant = r.get(role + "Variant") or "float32"
            if src.endswith(".tflite"):
                path = src
            else:
                tfk, layers = load_tfjs(src)
                c = None
                if variant == "int8":
                    if calib is None:
                        # timing only: the int8 kernels' speed does not depend on the calibration values
                        shape = [d if d else 1 for d in tfk.inputs[0].shape[1:]]
                        calib = np.random.RandomState(7).rand(64, *shape).astype(np.float32)
                        info["calibration"] = "64 random inputs in [0, 1) (timing only: accuracy is not measured on this file)"
                    c = calib
                path = os.path.join(self.tmp.name, role + ".tflite")
                with open(path, "wb") as f:
                    f.write(to_tflite(tfk, layers, c))
            m = Tflite(path, threads)
            shape = [r["batchSize"]] + [d if d > 0 else 1 for d in m.inp["shape_signature"][1:]]
            x = np.random.RandomState(7).rand(*shape).astype(np.float32)
            m.resize(shape[0])
            m.x = m.prepare(x)
            self.models[role] = m
            info["variants"][role] = variant
            info.setdefault("delegate", "XNNPACK" if m.delegated() else "none (TFLite built-in kernels)")
        v = versions()
        info.update(
            {
                "backend": "tflite " + ("xnnpack" if info.get("delegate") == "XNNPACK" else "builtin"),
                "tensorflowVersion": v["tensorflow"],
                "python": v["python"],
                "threads": threads,
                "host": platform.node(),
                "library": "tf.lite.Interpreter of tensorflow-cpu %s (PyPI wheel)" % v["tensorflow"],
            }
        )
        return info

    def once(self, role):
        m = self.models[role]
        t0 = time.perf_counter()
        m.it.set_tensor(m.inp["index"], m.x)
        m.it.invoke()
        m.it.get_tensor(m.out["index"])
        return (time.perf_counter() - t0) * 1000

    def handle(self, r):
        op = r["op"]
        if op == "open":
            return self.open(r)
        if op == "warmup":
            for _ in range(r["n"]):
                self.once("baseline")
                if "candidate" in self.models:
                    self.once("candidate")
            return None
        if op == "pair":
            if "candidate" not in self.models:
                raise StepError("time", "runner: no candidate model to pair with the baseline")
            if r["i"] % 2 == 0:
                b = self.once("baseline")
                return [b, self.once("candidate")]
            c = self.once("candidate")
            return [self.once("baseline"), c]
        if op == "times":
            return [self.once("baseline") for _ in range(r["n"])]
        raise StepError("time", "unknown request %s" % op)


def cmd_serve(_a):
    rt = Runtime()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        try:
            reply({"id": msg["id"], "ok": True, "value": rt.handle(msg["req"])})
        except StepError as e:
            reply({"id": msg["id"], "ok": False, "step": e.step, "error": e.message, **({"layer": e.layer} if e.layer else {})})
        except Exception as e:  # noqa: BLE001
            reply({"id": msg["id"], "ok": False, "step": msg["req"].get("op"), "error": first_line(e)})
    rt.tmp.cleanup()
    return None


def main():
    _claim_stdout()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--model", required=True, help="tfjs model folder")
    e.add_argument("--format", required=True, choices=["keras", "tflite", "tflite-int8"])
    e.add_argument("--family", default="keras3", choices=["keras3", "tf-keras"])
    e.add_argument("--out", required=True)
    e.add_argument("--shape", required=True, help="one input's shape, JSON")
    e.add_argument("--test-x")
    e.add_argument("--test-y")
    e.add_argument("--calib-x")
    e.add_argument("--calib-split", default="validation")
    q = sub.add_parser("predict")
    q.add_argument("--file", required=True, action="append", help="a .keras, .h5 or .tflite file (repeatable)")
    q.add_argument("--x", required=True)
    q.add_argument("--shape", required=True)
    q.add_argument("--out", required=True, help="outputs go to <out>.<i>, float32, one per --file")
    sub.add_parser("serve")
    a = p.parse_args()
    step = a.cmd
    try:
        result = {"export": cmd_export, "predict": cmd_predict, "serve": cmd_serve}[a.cmd](a)
        if result is not None:
            reply({"ok": True, **result})
    except StepError as e:
        reply({"ok": False, "step": e.step, "error": e.message, **({"layer": e.layer} if e.layer else {})})
        sys.exit(1)
    except Exception as e:  # noqa: BLE001
        reply({"ok": False, "step": step, "error": first_line(e)})
        sys.exit(1)


if __name__ == "__main__":
    main()
