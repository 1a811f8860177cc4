#!/usr/bin/env bash
# Reproduce the README's benchmark table on this machine and store it under benchmarks/results/.
#   bash benchmarks/reproduce.sh            # the standard preset (about half an hour on 2 CPU cores)
#   bash benchmarks/reproduce.sh quick      # the smoke-sized preset (minutes)
# Needs ../shared/data (Loghub samples) beside the checkout, or RLOG_SHARED_DATA; datasets that
# need it are skipped, with the reason in the results, when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${1:-standard}"
RLOG="${RLOG:-.venv/bin/rlog}"
[ -x "$RLOG" ] || RLOG=rlog
OUT="benchmarks/results/$PRESET"
mkdir -p "$OUT"
"$RLOG" bench --preset "$PRESET" --out "out/bench/$PRESET" "${@:2}"
# keep the figures people read; the raw run folder (simulated logs, worker log) stays in out/
cp "out/bench/$PRESET/results.json" "out/bench/$PRESET/results.md" "$OUT/"
cp out/bench/"$PRESET"/*.png "$OUT/"
echo "benchmarks/reproduce.sh: results in $OUT"
