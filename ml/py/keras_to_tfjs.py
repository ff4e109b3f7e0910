"""Converts a Keras model file to the tfjs layers format with the pinned converter (no network).

Usage: python keras_to_tfjs.py <input: .keras | .h5 | SavedModel folder> <output folder>

Writes <output>/model.json + weight shards with tensorflowjs 4.22's own Keras writer
(tensorflowjs.converters.keras_h5_conversion.save_keras_model, the code behind
`tensorflowjs_converter --input_format keras`), then prints one JSON line on stdout:
  {"family": "keras3" | "tf-keras", "kind": "keras" | "h5" | "savedmodel", "kerasVersion": "...",
   "converter": "tensorflowjs 4.22.0"}
The Keras 3 topology is left as Keras 3 writes it; prunewise's loader (ml/keras-json.ts) normalises it.

Exit status 2 with one line on stderr ("refused: ...") when the input is not a model Keras loads
(bad input: the line names the cause and the fix); any other failure exits 1.
tensorflowjs is installed --no-deps: its package __init__ imports the SavedModel graph converter,
which needs tensorflow_hub / tensorflow_decision_forests / jax; only the Keras writer is loaded here.
"""
import importlib
import importlib.util
import json
import os
import sys
import types
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class Refused(Exception):
    pass


def keras_writer():
    """tensorflowjs.converters.keras_h5_conversion without running tensorflowjs/__init__.py."""
    if "tensorflowjs.converters.keras_h5_conversion" in sys.modules:
        m = sys.modules["tensorflowjs.converters.keras_h5_conversion"]
        return m, sys.modules["tensorflowjs.version"].version
    spec = importlib.util.find_spec("tensorflowjs")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("tensorflowjs is not installed in this Python: run npm run setup")
    root = list(spec.submodule_search_locations)[0]
    for name, folder in (("tensorflowjs", root), ("tensorflowjs.converters", os.path.join(root, "converters"))):
        if name not in sys.modules:
            m = types.ModuleType(name)
            m.__path__ = [folder]
            sys.modules[name] = m
    version = importlib.import_module("tensorflowjs.version").version
    return importlib.import_module("tensorflowjs.converters.keras_h5_conversion"), version


def kind_of(path):
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")) or os.path.exists(os.path.join(path, "saved_model.pbtxt")):
            return "savedmodel"
        raise Refused(f"{path} is a folder without saved_model.pb: give a .keras or .h5 file, a SavedModel folder, or a tfjs model.json")
    lower = path.lower()
    if lower.endswith(".keras"):
        return "keras"
    if lower.endswith(".h5") or lower.endswith(".hdf5"):
        return "h5"
    raise Refused(f"{path}: unknown model file type: give a .keras or .h5 file, a SavedModel folder, or a tfjs model.json")


def h5_keras_version(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            v = f.attrs.get("keras_version")
            has_config = "model_config" in f.attrs
    except OSError as e:
        raise Refused(f"{path}: not an HDF5 file ({str(e).splitlines()[0]}): save the model with model.save('model.h5')")
    if isinstance(v, bytes):
        v = v.decode()
    if not has_config:
        raise Refused(f"{path}: holds weights only (no model_config): save the whole model with model.save('model.h5'), not save_weights")
    return v or ""


def keras_zip_version(path):
    if not zipfile.is_zipfile(path):
        raise Refused(f"{path}: not a .keras archive (not a zip file): save the model with model.save('model.keras')")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if "config.json" not in names:
            raise Refused(f"{path}: a zip without config.json, not a Keras model: save it with model.save('model.keras')")
        meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
    return meta.get("keras_version", "")


def load(path, kind):
    """(model, family, keras version)"""
    if kind == "keras":
        v = keras_zip_version(path)
        if v.startswith("2."):
            import tf_keras

            return tf_keras.models.load_model(path, compile=False), "tf-keras", v
        import keras

        return keras.saving.load_model(path, compile=False), "keras3", v
    if kind == "h5":
        v = h5_keras_version(path)
        if v.startswith("3."):
            import keras

            return keras.saving.load_model(path, compile=False), "keras3", v
        import tf_keras

        return tf_keras.models.load_model(path, compile=False), "tf-keras", v
    # SavedModel: only the tf-keras format (keras_metadata.pb) carries layers Keras can rebuild
    if not os.path.exists(os.path.join(path, "keras_metadata.pb")):
        raise Refused(
            f"{path}: a SavedModel not written by Keras (no keras_metadata.pb; Keras 3 model.export() and tf.saved_model.save write such graphs): "
            "its layers cannot be pruned; give the Keras model instead (model.save('model.keras') or .h5)"
        )
    import tf_keras

    m = tf_keras.models.load_model(path, compile=False)
    return m, "tf-keras", tf_keras.__version__


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 1
    src, out = argv[1], argv[2]
    try:
        kind = kind_of(src)
        model, family, version = load(src, kind)
        if not hasattr(model, "layers") or model.__class__.__name__ not in ("Functional", "Sequential", "Model"):
            raise Refused(
                f"{src}: a subclassed Keras model ({model.__class__.__name__}) has no layer graph to read: build it with the functional API or Sequential"
            )
        writer, tfjs_version = keras_writer()
        writer.save_keras_model(model, out)
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(
            f"refused: {src}: converting a Keras model needs keras, tf-keras and tensorflowjs in {sys.executable} ({e}): run npm run setup",
            file=sys.stderr,
        )
        return 2
    except (ValueError, TypeError, KeyError, OSError) as e:
        # Keras itself could not read the file: the user's input
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"refused: {src}: Keras cannot load it ({type(e).__name__}: {first})", file=sys.stderr)
        return 2
    print(json.dumps({"family": family, "kind": kind, "kerasVersion": version, "converter": f"tensorflowjs {tfjs_version}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
