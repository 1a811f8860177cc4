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
      # --resume continues from the stage's newest checkpoint when a run was cut off
      rlog train "$stage" --recipe "$RECIPE" --variant "$v" --run "$RUN" --resume
    fi
    # R-Log-fast is served as a one-pass scorer: its threshold and unsure band are fitted on
    # validation and stored beside the adapter (rlog_calibration.json) before it is evaluated.
    if [ "$v" = fast ] && [ ! -f "$RUN/$v/$stage/final/rlog_calibration.json" ]; then
      rlog train calibrate --recipe "$RECIPE" --variant fast --stage "$stage" --run "$RUN" --quiet
    fi
    if [ ! -f "$RUN/$v/eval-$stage-val.json" ]; then
      rlog train eval --recipe "$RECIPE" --variant "$v" --stage "$stage" --run "$RUN" --quiet
    fi
  done
done
rlog train ship --recipe "$RECIPE" --run "$RUN" --out "$SHIP"
