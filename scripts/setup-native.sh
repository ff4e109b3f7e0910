#!/usr/bin/env bash
# Native TensorFlow under tfjs, from PyPI: builds the binding of @tensorflow/tfjs-node against the
# C library inside PyPI's tensorflow-cpu wheel (its own libtensorflow download answers 403), so
# ml/backend.ts picks the "tensorflow" backend. Idempotent: nothing to do when the binding loads.
# Where nvidia-smi answers, the CUDA route runs instead (section "CUDA route" below): the binding of
# @tensorflow/tfjs-node-gpu against tensorflow[and-cuda] (backend "tensorflow-gpu", `prunewise worker
# --gpu`). The CUDA route has never run on the machines this project is developed on (no GPU there).
# On a user's machine a failed step prints one line and set-up goes on (tfjs falls back to wasm);
# under CI=true a failed step fails set-up. Called by scripts/setup.sh; runs on its own too.
# First, the Python side (section "Python side" below): the pinned Keras ↔ tfjs converter in .venv that
# converts users' Keras files at submit (ml/keras.ts): tensorflow-cpu with its dependencies (keras 3,
# numpy, h5py …), tf-keras, and tensorflowjs without its dependencies (ml/py/keras_to_tfjs.py loads only
# its Keras writer). A failure there is one line and set-up goes on (tfjs model.json inputs still work);
# fatal under CI=true.
set -uo pipefail
cd "$(dirname "$0")/.."

TF_WHEEL=tensorflow-cpu            # the PyPI project whose wheel carries libtensorflow_cc.so.2 + C headers
TF_WHEEL_PIN=2.21.0
TFJS_NODE_PIN=4.22.0               # keep in step with package.json (optionalDependencies)
TF_KERAS_PIN=2.21.0                # tf-keras (Keras 2) in step with the TensorFlow wheel
TFJS_PY_PIN=4.22.0                 # the tensorflowjs converter, in step with tfjs 4.22
PKG=node_modules/@tensorflow/tfjs-node
MARKER=$PKG/deps/prunewise-native.json

say() { printf '[setup] %s\n' "$*" >&2; }
start=$SECONDS
venv_kb_before=$( [ -d .venv ] && du -sk .venv | cut -f1 || echo 0)

# one line: which step failed and why; fatal only under CI=true
fail() {
  if [ "${CI:-}" = true ]; then say "native TensorFlow: step '$1' failed: $2 (CI=true: set-up fails)"; exit 1; fi
  say "native TensorFlow skipped: step '$1' failed: $2 (tfjs runs on wasm)"
  exit 0
}
# runs a step quietly; on failure, the last meaningful line of its output is the reason
run() {
  local step=$1; shift
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    # the first compiler/pip error, else the last line that says error, else the last line
    local why; why=$(grep -m1 -E '(^|: )(fatal )?error:|^ERROR:' "$log")
    [ -n "$why" ] || why=$(grep -v '^\s*$' "$log" | grep -iE 'error|fail|denied|not found|no such|cannot' | tail -1)
    [ -n "$why" ] || why=$(grep -v '^\s*$' "$log" | tail -1)
    rm -f "$log"
    fail "$step" "$(printf %.240s "${why:-exit status non-zero}")"
  fi
  rm -f "$log"
}

# the binding loads and runs one op on the tensorflow backend (no env vars)
binding_loads() {
  TF_CPP_MIN_LOG_LEVEL=3 node -e '
    const tf = require("@tensorflow/tfjs-node");
    if (tf.getBackend() !== "tensorflow" || tf.add(1, 2).dataSync()[0] !== 3) process.exit(1);
    const m = require(process.argv[1]);
    if (m.tfjsNode !== process.argv[2] || m.wheelVersion !== process.argv[3]) process.exit(1);
  ' "$PWD/$MARKER" "$TFJS_NODE_PIN" "$TF_WHEEL_PIN" >/dev/null 2>&1
}

# ============================================================================= Python side
# The converter behind `model: x.keras | x.h5 | SavedModel/` (ml/py/keras_to_tfjs.py), in .venv:
# - tensorflow-cpu==2.21.0 WITH its dependencies: keras 3.15, numpy, h5py, ml_dtypes … (~250 MB on disk
#   besides the wheel's own tensorflow/, which the native route below needs anyway)
# - tf-keras==2.21.0 --no-deps: its one requirement, `tensorflow`, is the same code as tensorflow-cpu
#   (installing it would download a second ~600 MB wheel into the same site-packages/tensorflow)
# - tensorflowjs==4.22.0 --no-deps: its dependencies (jax, flax, tensorflow_hub, decision forests) serve
#   converters we do not use; only its Keras writer is imported
# Idempotent: nothing is installed when the pinned versions are there and the converter imports.
python_ready() {
  .venv/bin/python - "$TF_WHEEL_PIN" "$TF_KERAS_PIN" "$TFJS_PY_PIN" >/dev/null 2>&1 <<'PY'
import importlib.metadata as md, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
want = {"tensorflow-cpu": sys.argv[1], "tf-keras": sys.argv[2], "tensorflowjs": sys.argv[3]}
for name, v in want.items():
    if md.version(name) != v: sys.exit(1)
sys.path.insert(0, "ml/py")
import keras, tf_keras, keras_to_tfjs
keras_to_tfjs.keras_writer()
PY
}
python_side() {
  local why=""
  pystep() { # like run, but returns instead of exiting: a failure here must not skip the native build
    local step=$1; shift
    local log; log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
      why="step '$step' failed: $(grep -m1 -E '^ERROR:|error:' "$log" || grep -v '^\s*$' "$log" | tail -1)"
      rm -f "$log"; return 1
    fi
    rm -f "$log"
  }
  if [ -x .venv/bin/python ] && python_ready; then
    say "Keras converter: tensorflow-cpu $TF_WHEEL_PIN, tf-keras $TF_KERAS_PIN, tensorflowjs $TFJS_PY_PIN already in .venv"
    return 0
  fi
  local t0=$SECONDS kb0; kb0=$( [ -d .venv ] && du -sk .venv | cut -f1 || echo 0)
  say "Keras converter: pip install tensorflow-cpu==$TF_WHEEL_PIN (with dependencies), tf-keras==$TF_KERAS_PIN and tensorflowjs==$TFJS_PY_PIN (--no-deps) into .venv"
  { [ -x .venv/bin/python ] || pystep venv python3 -m venv .venv; } &&
    pystep "pip install $TF_WHEEL==$TF_WHEEL_PIN" .venv/bin/python -m pip install -q "$TF_WHEEL==$TF_WHEEL_PIN" &&
    pystep "pip install tf-keras==$TF_KERAS_PIN" .venv/bin/python -m pip install -q --no-deps "tf-keras==$TF_KERAS_PIN" &&
    pystep "pip install tensorflowjs==$TFJS_PY_PIN" .venv/bin/python -m pip install -q --no-deps "tensorflowjs==$TFJS_PY_PIN" &&
    { python_ready || { why="the converter does not import: .venv/bin/python ml/py/keras_to_tfjs.py shows why"; false; }; }
  local ok=$?
  if [ $ok -ne 0 ]; then
    if [ "${CI:-}" = true ]; then say "Keras converter: $(printf %.240s "$why") (CI=true: set-up fails)"; exit 1; fi
    say "Keras converter skipped: $(printf %.240s "$why") (.keras/.h5/SavedModel inputs are refused at submit; tfjs model.json works)"
    return 0
  fi
  say "Keras converter ready in $((SECONDS - t0)) s; .venv +$((($(du -sk .venv | cut -f1) - kb0) / 1024)) MB"
}
python_side

# ============================================================================= CUDA route
# Taken only where `nvidia-smi` answers (a driver and a GPU); everything below this section is the
# CPU route, unchanged. NOT EXERCISED on the project's machines (no GPU): written to mirror the CPU
# route step for step; the load check at its end is the proof on a machine that has a GPU.
# - its own venv, .venv-cuda: `tensorflow` and `tensorflow-cpu` both install site-packages/tensorflow/,
#   so they cannot share .venv; tensorflow[and-cuda] pulls the NVIDIA wheels (cudart, cublas, cudnn …)
# - the wheel's CUDA libraries are dlopen'ed by libtensorflow at run time: deps/lib links every
#   nvidia/*/lib/*.so* next to libtensorflow (found through its $ORIGIN runpath), and deps/nvidia links
#   the wheels' folder (the $ORIGIN/../nvidia/<lib>/lib runpaths TensorFlow's CUDA wheels carry)
CUDA_WHEEL=tensorflow              # with the and-cuda extra
CUDA_VENV=.venv-cuda
GPU_PKG=node_modules/@tensorflow/tfjs-node-gpu
GPU_MARKER=$GPU_PKG/deps/prunewise-native.json
rel() { python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$1" "$2"; } # as on the CPU route (step 3)

gpu_binding_loads() {
  TF_CPP_MIN_LOG_LEVEL=3 node -e '
    const tf = require("@tensorflow/tfjs-node-gpu");
    if (tf.getBackend() !== "tensorflow" || tf.add(1, 2).dataSync()[0] !== 3) process.exit(1);
    const m = require(process.argv[1]);
    if (m.tfjsNode !== process.argv[2] || m.wheelVersion !== process.argv[3] || m.wheel !== "tensorflow[and-cuda]") process.exit(1);
  ' "$PWD/$GPU_MARKER" "$TFJS_NODE_PIN" "$TF_WHEEL_PIN" >/dev/null 2>&1
}

# TensorFlow names the devices it created at log level 0: a GPU device, or why not (the first such line)
gpu_device_check() {
  local out; out=$(TF_CPP_MIN_LOG_LEVEL=0 node -e '
    const tf = require("@tensorflow/tfjs-node-gpu");
    tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync();
  ' 2>&1)
  grep -q 'device:GPU:0' <<<"$out" && return 0
  fail "GPU device check" "$(grep -m1 -iE 'cannot dlopen|could not load|cuda_error|failed call to cuInit|error' <<<"$out" || echo 'TensorFlow created no GPU device')"
}

cuda_route() {
  if gpu_binding_loads; then
    say "native TensorFlow (CUDA): tfjs-node-gpu $TFJS_NODE_PIN on $CUDA_WHEEL[and-cuda] $TF_WHEEL_PIN already loads"
    gpu_device_check
    exit 0
  fi
  say "native TensorFlow (CUDA, nvidia-smi answers): building tfjs-node-gpu $TFJS_NODE_PIN against $CUDA_WHEEL[and-cuda]==$TF_WHEEL_PIN from PyPI into $CUDA_VENV"
  # 1. the venv and the wheels, with their dependencies (the NVIDIA wheels are dependencies of the extra)
  [ -x "$CUDA_VENV/bin/python" ] || run "venv ($CUDA_VENV)" python3 -m venv "$CUDA_VENV"
  local site; site=$("$CUDA_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null) ||
    fail "venv ($CUDA_VENV)" "$CUDA_VENV/bin/python does not run"
  local tfdir=$site/tensorflow
  local have; have=$("$CUDA_VENV/bin/python" -m pip show "$CUDA_WHEEL" 2>/dev/null | sed -n 's/^Version: //p')
  if [ ! -f "$tfdir/libtensorflow_cc.so.2" ] || [ "$have" != "$TF_WHEEL_PIN" ] || ! compgen -G "$site/nvidia/*/lib/*.so*" >/dev/null; then
    run "pip install $CUDA_WHEEL[and-cuda]==$TF_WHEEL_PIN" "$CUDA_VENV/bin/python" -m pip install -q "$CUDA_WHEEL[and-cuda]==$TF_WHEEL_PIN"
  fi
  for f in libtensorflow_cc.so.2 libtensorflow_framework.so.2 include/tensorflow/c/c_api.h include/tensorflow/c/eager/c_api.h; do
    [ -e "$tfdir/$f" ] || fail "wheel layout" "$CUDA_WHEEL $TF_WHEEL_PIN has no tensorflow/$f"
  done
  compgen -G "$site/nvidia/*/lib/*.so*" >/dev/null || fail "wheel layout" "no NVIDIA wheel libraries under $site/nvidia"

  # 2. the npm package, without its install script (that one downloads libtensorflow-gpu)
  if [ "$(node -p 'require("@tensorflow/tfjs-node-gpu/package.json").version' 2>/dev/null)" != "$TFJS_NODE_PIN" ] ||
     ! node -e 'for (const d of ["@mapbox/node-pre-gyp", "google-protobuf", "adm-zip"]) require.resolve(d, { paths: [require("path").dirname(require.resolve("@tensorflow/tfjs-node-gpu/package.json"))] })' 2>/dev/null; then
    run "npm install @tensorflow/tfjs-node-gpu@$TFJS_NODE_PIN" npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error "@tensorflow/tfjs-node-gpu@$TFJS_NODE_PIN"
  fi

  # 3. deps/ as binding.gyp expects it (as on the CPU route), plus the NVIDIA libraries
  rm -rf "$GPU_PKG/deps" && mkdir -p "$GPU_PKG/deps/lib" || fail "deps links" "cannot write $GPU_PKG/deps"
  ln -s "$(rel "$tfdir/include" "$GPU_PKG/deps")" "$GPU_PKG/deps/include" || fail "deps links" "ln -s include"
  for pair in libtensorflow.so:libtensorflow_cc.so.2 libtensorflow_cc.so.2:libtensorflow_cc.so.2 \
              libtensorflow_framework.so:libtensorflow_framework.so.2 libtensorflow_framework.so.2:libtensorflow_framework.so.2; do
    ln -s "$(rel "$tfdir/${pair#*:}" "$GPU_PKG/deps/lib")" "$GPU_PKG/deps/lib/${pair%%:*}" || fail "deps links" "ln -s ${pair%%:*}"
  done
  ln -s "$(rel "$site/nvidia" "$GPU_PKG/deps")" "$GPU_PKG/deps/nvidia" || fail "deps links" "ln -s nvidia"
  for so in "$site"/nvidia/*/lib/*.so*; do
    [ -e "$GPU_PKG/deps/lib/$(basename "$so")" ] || ln -s "$(rel "$so" "$GPU_PKG/deps/lib")" "$GPU_PKG/deps/lib/$(basename "$so")" ||
      fail "deps links" "ln -s $(basename "$so")"
  done

  # 4. the binding, with node-gyp, into the folder node-pre-gyp looks in (as on the CPU route)
  local binding; binding=$(node -p 'require(require.resolve("@mapbox/node-pre-gyp", { paths: [process.argv[1]] })).find(process.argv[1] + "/package.json")' "$PWD/$GPU_PKG" 2>/dev/null) ||
    fail "binding path" "node-pre-gyp cannot name the binding's folder"
  local napi; napi=$(basename "$(dirname "$binding")"); napi=${napi#napi-v}
  local gyp; gyp=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js
  [ -f "$gyp" ] || gyp=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
  local nodedir; nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  local gyp_args=(rebuild --module_name=tfjs_binding "--module_path=$(dirname "$binding")" "--napi_build_version=$napi" -j 2)
  [ -f "$nodedir/include/node/node_api.h" ] && gyp_args+=("--nodedir=$nodedir")
  if [ -f "$gyp" ]; then
    run "node-gyp build (gpu)" bash -c 'cd "$1" && shift && node "$@"' _ "$GPU_PKG" "$gyp" "${gyp_args[@]}"
  else
    run "node-gyp build (gpu)" bash -c 'cd "$1" && shift && npx --yes node-gyp@11 "$@"' _ "$GPU_PKG" "${gyp_args[@]}"
  fi
  rm -rf "$GPU_PKG/build/Release/obj.target"

  # 5. the note ml/backend.ts reports, then the proof: it loads, runs an op, and TensorFlow creates a GPU device
  printf '{"library": "%s %s (PyPI wheel, CUDA)", "wheel": "%s", "wheelVersion": "%s", "tfjsNode": "%s"}\n' \
    "$CUDA_WHEEL[and-cuda]" "$TF_WHEEL_PIN" "tensorflow[and-cuda]" "$TF_WHEEL_PIN" "$TFJS_NODE_PIN" >"$GPU_MARKER"
  gpu_binding_loads || fail "load check (gpu)" "$(TF_CPP_MIN_LOG_LEVEL=3 node -e 'require("@tensorflow/tfjs-node-gpu")' 2>&1 | grep -m1 -iE 'error' || echo 'the binding does not run an op')"
  gpu_device_check
  say "native TensorFlow (CUDA) ready in $((SECONDS - start)) s: \`prunewise worker --gpu\` serves the gpu queue here"
  exit 0
}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  cuda_route
fi
# ============================================================================= CPU route

if binding_loads; then
  say "native TensorFlow: tfjs-node $TFJS_NODE_PIN on $TF_WHEEL $TF_WHEEL_PIN already loads"
  exit 0
fi
say "native TensorFlow: building tfjs-node $TFJS_NODE_PIN against $TF_WHEEL==$TF_WHEEL_PIN from PyPI"
nm_kb_before=$(du -sk node_modules 2>/dev/null | cut -f1)

# 1. the venv (shared with the Temporal CLI and the Keras converter) and the wheel: the Python side above
#    installed it with its dependencies; if that failed, --no-deps here is enough for the native backend
#    (only the wheel's C library and headers are used, never `import tensorflow`).
[ -x .venv/bin/python ] || run venv python3 -m venv .venv
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null) || fail venv ".venv/bin/python does not run"
tfdir=$site/tensorflow
have=$(.venv/bin/python -m pip show "$TF_WHEEL" 2>/dev/null | sed -n 's/^Version: //p')
if [ ! -f "$tfdir/libtensorflow_cc.so.2" ] || [ "$have" != "$TF_WHEEL_PIN" ]; then
  run "pip install $TF_WHEEL==$TF_WHEEL_PIN" .venv/bin/python -m pip install -q --no-deps "$TF_WHEEL==$TF_WHEEL_PIN"
fi
for f in libtensorflow_cc.so.2 libtensorflow_framework.so.2 include/tensorflow/c/c_api.h include/tensorflow/c/eager/c_api.h; do
  [ -e "$tfdir/$f" ] || fail "wheel layout" "$TF_WHEEL $TF_WHEEL_PIN has no tensorflow/$f"
done

# 2. the npm package, without its install script (that one downloads libtensorflow), with its
#    runtime deps deduplicated against ours (it must register on our one tfjs-core)
if [ "$(node -p 'require("@tensorflow/tfjs-node/package.json").version' 2>/dev/null)" != "$TFJS_NODE_PIN" ] ||
   ! node -e 'for (const d of ["@mapbox/node-pre-gyp", "google-protobuf", "adm-zip"]) require.resolve(d, { paths: [require("path").dirname(require.resolve("@tensorflow/tfjs-node/package.json"))] })' 2>/dev/null; then
  run "npm install @tensorflow/tfjs-node@$TFJS_NODE_PIN" npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error "@tensorflow/tfjs-node@$TFJS_NODE_PIN"
fi
# npm brings the -gpu twin along (an optional dependency too); unbuilt it can never load: drop it
[ -e node_modules/@tensorflow/tfjs-node-gpu/lib ] || rm -rf node_modules/@tensorflow/tfjs-node-gpu

# 3. deps/ as binding.gyp expects it, as relative symlinks into the wheel: headers in deps/include;
#    in deps/lib the link-time names (libtensorflow.so is the wheel's libtensorflow_cc, which exports
#    the C API) and the sonames the loader looks up through the binding's rpath $ORIGIN/../../deps/lib
rel() { python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$1" "$2"; }
rm -rf "$PKG/deps" && mkdir -p "$PKG/deps/lib" || fail "deps links" "cannot write $PKG/deps"
ln -s "$(rel "$tfdir/include" "$PKG/deps")" "$PKG/deps/include" || fail "deps links" "ln -s include"
for pair in libtensorflow.so:libtensorflow_cc.so.2 libtensorflow_cc.so.2:libtensorflow_cc.so.2 \
            libtensorflow_framework.so:libtensorflow_framework.so.2 libtensorflow_framework.so.2:libtensorflow_framework.so.2; do
  ln -s "$(rel "$tfdir/${pair#*:}" "$PKG/deps/lib")" "$PKG/deps/lib/${pair%%:*}" || fail "deps links" "ln -s ${pair%%:*}"
done

# 4. the binding, with node-gyp (npm's own copy; Node's headers from this Node's prefix, as the
#    machine cannot download them), into the folder node-pre-gyp looks in (lib/napi-v<N>)
binding=$(node -p 'require(require.resolve("@mapbox/node-pre-gyp", { paths: [process.argv[1]] })).find(process.argv[1] + "/package.json")' "$PWD/$PKG" 2>/dev/null) ||
  fail "binding path" "node-pre-gyp cannot name the binding's folder"
napi=$(basename "$(dirname "$binding")"); napi=${napi#napi-v}
gyp=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js
[ -f "$gyp" ] || gyp=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
gyp_args=(rebuild --module_name=tfjs_binding "--module_path=$(dirname "$binding")" "--napi_build_version=$napi" -j 2)
[ -f "$nodedir/include/node/node_api.h" ] && gyp_args+=("--nodedir=$nodedir")
if [ -f "$gyp" ]; then
  run "node-gyp build" bash -c 'cd "$1" && shift && node "$@"' _ "$PKG" "$gyp" "${gyp_args[@]}"
else
  run "node-gyp build" bash -c 'cd "$1" && shift && npx --yes node-gyp@11 "$@"' _ "$PKG" "${gyp_args[@]}"
fi
rm -rf "$PKG/build/Release/obj.target" # objects: only the .node file is needed

# 5. say where it comes from (ml/backend.ts reports it), then the proof: it loads with no env vars
printf '{"library": "%s %s (PyPI wheel)", "wheel": "%s", "wheelVersion": "%s", "tfjsNode": "%s"}\n' \
  "$TF_WHEEL" "$TF_WHEEL_PIN" "$TF_WHEEL" "$TF_WHEEL_PIN" "$TFJS_NODE_PIN" >"$MARKER"
binding_loads || fail "load check" "$(TF_CPP_MIN_LOG_LEVEL=3 node -e 'require("@tensorflow/tfjs-node")' 2>&1 | grep -m1 -iE 'error' || echo 'the binding does not run an op')"

venv_kb=$(du -sk .venv | cut -f1); nm_kb=$(du -sk node_modules | cut -f1)
say "native TensorFlow ready in $((SECONDS - start)) s; disk: .venv +$(((venv_kb - venv_kb_before) / 1024)) MB (the wheel's tensorflow/ $(($(du -sk "$tfdir" | cut -f1) / 1024)) MB), node_modules +$(((nm_kb - ${nm_kb_before:-0}) / 1024)) MB"
