#!/usr/bin/env bash
# Command 1 of the README: set up, then run the quickstart campaign end to end on the embedded
# Temporal dev server (left running; `npx prunewise server --stop` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node bin/prunewise.js run examples/quickstart.yaml "$@"
