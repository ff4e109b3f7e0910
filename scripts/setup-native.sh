#!/usr/bin/env bash
# Native TensorFlow under tfjs, from PyPI: builds the binding of @tensorflow/tfjs-node against the
# C library inside PyPI's tensorflow-cpu wheel (its own libtensorflow download answers 403), so
# ml/backend.ts picks the "tensorflow" backend. Idempotent: nothing to do when the binding loads.
# On a user's machine a failed step prints one line and set-up goes on (tfjs falls back to wasm);
# under CI=true a failed step fails set-up. Called by scripts/setup.sh; runs on its own too.
set -uo pipefail
cd "$(dirname "$0")/.."

TF_WHEEL=tensorflow-cpu            # the PyPI project whose wheel carries libtensorflow_cc.so.2 + C headers
TF_WHEEL_PIN=2.21.0
TFJS_NODE_PIN=4.22.0               # keep in step with package.json (optionalDependencies)
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

if binding_loads; then
  say "native TensorFlow: tfjs-node $TFJS_NODE_PIN on $TF_WHEEL $TF_WHEEL_PIN already loads"
  exit 0
fi
say "native TensorFlow: building tfjs-node $TFJS_NODE_PIN against $TF_WHEEL==$TF_WHEEL_PIN from PyPI"
nm_kb_before=$(du -sk node_modules 2>/dev/null | cut -f1)

# 1. the venv (shared with the Temporal CLI) and the wheel. --no-deps: only its C library and
#    headers are used, never `import tensorflow`, so keras, numpy, grpcio… are not needed.
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
