#!/usr/bin/env bash
# Command 1 of the README: set up, then run the quickstart campaign end to end on the embedded
# Temporal dev server (left running; `npx prunewise server --stop` stops it), then show its
# Pareto front and the model recommended for each weight vector.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# `npm run demo -- --home DIR` (or --home=DIR): the later commands use that home too
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --home) export PRUNEWISE_HOME="${args[$((i + 1))]:-}" ;;
    --home=*) export PRUNEWISE_HOME="${args[$i]#--home=}" ;;
  esac
done
node bin/prunewise.js run examples/quickstart.yaml "$@"
id=$(node bin/prunewise.js ls --json | node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8"))[0].id)')
echo
echo "== prunewise pareto $id"
node bin/prunewise.js pareto "$id"
echo
if [ -t 0 ] && [ -t 1 ] || [ "${PRUNEWISE_DEMO_SERVE:-}" = 1 ]; then
  # interactive: serve the dashboard until Ctrl-C (it prints its URL)
  echo "this campaign: /campaigns/$id (trade-off: /campaigns/$id/tradeoff)"
  exec node bin/prunewise.js dashboard
else
  echo "dashboard: npx prunewise dashboard${PRUNEWISE_HOME:+ --home $PRUNEWISE_HOME}   (then open http://127.0.0.1:8787/campaigns/$id; PRUNEWISE_DEMO_SERVE=1 serves it here)"
fi
