#!/usr/bin/env bash
# npm run bench:setup — PyTorch (CPU) for bench:train's comparison column and Torch-Pruning for bench:quality's, in a bench-only venv
# (bench/.venv-torch; never needed by prunewise or its tests). PyPI's torch wheel for Linux is the
# CUDA build and brings its nvidia-* wheels (several GB): this gives up after TORCH_SETUP_TIMEOUT
# seconds (default 900), and bench:train then prints pytorch as null, saying why.
set -uo pipefail
cd "$(dirname "$0")/.."
TORCH_PIN=${TORCH_PIN:-torch}       # e.g. TORCH_PIN=torch==2.9.1
VENV=bench/.venv-torch
say() { printf '[bench:setup] %s\n' "$*" >&2; }
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import torch, torch_pruning' 2>/dev/null; then
  say "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') already in $VENV"; exit 0
fi
start=$SECONDS
python3 -m venv "$VENV" || { say "python3 -m venv $VENV failed"; exit 1; }
if ! timeout "${TORCH_SETUP_TIMEOUT:-900}" "$VENV/bin/python" -m pip install -q "$TORCH_PIN" torch-pruning==1.6.1 numpy; then
  say "pip install $TORCH_PIN failed or took over ${TORCH_SETUP_TIMEOUT:-900} s: bench:train leaves pytorch null"; exit 1
fi
"$VENV/bin/python" -c 'import torch; torch.ones(2).sum()' || { say "torch installed but does not import"; exit 1; }
say "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') in $VENV: $((SECONDS - start)) s, $(du -sh "$VENV" | cut -f1)"
