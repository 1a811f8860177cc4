#!/usr/bin/env bash
# Makes the default R-Log-fast and R-Log adapters shipped in rlog/adapters/ (CPU, tiny recipe).
# Every stage is an `rlog train` command; the model card records this file and the results.
set -euo pipefail
RECIPE=${RECIPE:-tiny}
RUN=${RUN:-runs/$RECIPE}
SHIP=${SHIP:-rlog/adapters}
for v in fast full; do
  if [ ! -f "$RUN/$v/eval-base-val.json" ]; then
    rlog train eval --recipe "$RECIPE" --variant "$v" --stage base --run "$RUN" --quiet
  fi
  if [ ! -f "$RUN/$v/sft/final/rlog_train.json" ]; then
    rlog train sft --recipe "$RECIPE" --variant "$v" --run "$RUN"
  fi
  rlog train eval --recipe "$RECIPE" --variant "$v" --stage sft --run "$RUN" --quiet
  rlog train grpo --recipe "$RECIPE" --variant "$v" --run "$RUN"
  rlog train eval --recipe "$RECIPE" --variant "$v" --stage grpo --run "$RUN" --quiet
done
rlog train ship --recipe "$RECIPE" --run "$RUN" --out "$SHIP"
