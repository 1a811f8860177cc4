#!/usr/bin/env bash
# Makes the default R-Log-fast and R-Log adapters shipped in rlog/adapters/ (CPU, tiny recipe).
# Every stage is an `rlog train` command; the model card records this file and the results.
# A stage whose output already exists is skipped, so an interrupted run continues where it stopped.
set -euo pipefail
RECIPE=${RECIPE:-tiny}
RUN=${RUN:-runs/$RECIPE}
SHIP=${SHIP:-rlog/adapters}
BASE_EVAL=${BASE_EVAL:-fast}   # variants whose untrained base is evaluated too (the full one takes minutes)
for v in fast full; do
  if [[ " $BASE_EVAL " == *" $v "* && ! -f "$RUN/$v/eval-base-val.json" ]]; then
    rlog train eval --recipe "$RECIPE" --variant "$v" --stage base --run "$RUN" --quiet
  fi
  for stage in sft grpo; do
    if [ ! -f "$RUN/$v/$stage/final/rlog_train.json" ]; then
      rlog train "$stage" --recipe "$RECIPE" --variant "$v" --run "$RUN"
    fi
    if [ ! -f "$RUN/$v/eval-$stage-val.json" ]; then
      rlog train eval --recipe "$RECIPE" --variant "$v" --stage "$stage" --run "$RUN" --quiet
    fi
  done
done
rlog train ship --recipe "$RECIPE" --run "$RUN" --out "$SHIP"
