#!/usr/bin/env bash
# Makes the default R-Log-fast and R-Log adapters shipped in rlog/adapters/ (CPU, tiny recipe).
# Every stage is an `rlog train` command; the model card records this file and the results.
# A stage whose output already exists is skipped, so an interrupted run continues where it stopped.
#
#   VARIANTS="fast"  re-make and re-ship R-Log-fast only (R-Log's shipped folder is kept)
#   EXPLAIN_BENCH=0  skip the explain benchmark whose figures go into R-Log's model card (minutes)
#   FAST_STAGES="sft grpo"  also run GRPO on R-Log-fast (default: SFT only; it is served as a
#                    one-pass scorer, and a few CPU GRPO steps did not move its verdicts)
set -euo pipefail
RECIPE=${RECIPE:-tiny}
RUN=${RUN:-runs/$RECIPE}
SHIP=${SHIP:-rlog/adapters}
VARIANTS=${VARIANTS:-fast full}
FAST_STAGES=${FAST_STAGES:-sft}
FULL_STAGES=${FULL_STAGES:-sft grpo}
BASE_EVAL=${BASE_EVAL:-fast}   # variants whose untrained base is evaluated too (the full one takes minutes)
PICK_LAST=${PICK_LAST:-4}      # checkpoints scored by the pick, newest first (each is one pass over validation)
t() { local s=$SECONDS; "$@"; echo "[make_default_adapters] $* : $(( (SECONDS - s) / 60 )) min" >&2; }
for v in $VARIANTS; do
  if [[ " $BASE_EVAL " == *" $v "* && ! -f "$RUN/$v/eval-base-val.json" ]]; then
    t rlog train eval --recipe "$RECIPE" --variant "$v" --stage base --run "$RUN" --quiet
  fi
  stages=$FULL_STAGES; [ "$v" = fast ] && stages=$FAST_STAGES
  for stage in $stages; do
    if [ ! -f "$RUN/$v/$stage/final/rlog_train.json" ]; then
      # --resume continues from the stage's newest checkpoint when a run was cut off
      t rlog train "$stage" --recipe "$RECIPE" --variant "$v" --run "$RUN" --resume
    fi
    if [ "$v" = fast ]; then
      # The checkpoint kept is the best on validation (average precision of the served score),
      # then R-Log-fast's threshold and unsure band are fitted on validation and stored beside
      # the adapter (rlog_calibration.json) before it is evaluated.
      [ -f "$RUN/$v/$stage/picked.json" ] || t rlog train pick --recipe "$RECIPE" --variant fast --stage "$stage" --run "$RUN" --last "$PICK_LAST" --quiet
      [ -f "$RUN/$v/$stage/final/rlog_calibration.json" ] || \
        t rlog train calibrate --recipe "$RECIPE" --variant fast --stage "$stage" --run "$RUN" --quiet
    fi
    if [ ! -f "$RUN/$v/eval-$stage-val.json" ]; then
      t rlog train eval --recipe "$RECIPE" --variant "$v" --stage "$stage" --run "$RUN" --quiet
    fi
  done
done
last() { echo "${1##* }"; }
# The alert's category model (evidence only, seconds): fitted into the R-Log run, shipped beside it.
full_final="$RUN/full/$(last "$FULL_STAGES")/final"
if [ -d "$full_final" ] && [ ! -f "$full_final/rlog_category.json" ]; then
  t rlog train category --recipe "$RECIPE" --adapter "$full_final" --quiet
fi
stage_args=(--stage "fast=$(last "$FAST_STAGES")" --stage "full=$(last "$FULL_STAGES")")
if [ "$VARIANTS" = "fast full" ] || [ "$VARIANTS" = "full fast" ]; then variant=both; else variant=$VARIANTS; fi
rlog train ship --recipe "$RECIPE" --run "$RUN" --out "$SHIP" --variant "$variant" "${stage_args[@]}"
# R-Log's explanations measured as served (held-out simulated incidents, real incidents, trajectories), then
# written into the model card: the bench loads the adapters just shipped.
if [[ " $VARIANTS " == *" full "* && "${EXPLAIN_BENCH:-1}" = 1 ]]; then
  t rlog bench --preset explain --out "$RUN/explain" --quiet
  rlog train ship --recipe "$RECIPE" --run "$RUN" --out "$SHIP" --variant "$variant" "${stage_args[@]}" \
    --explain-results "$RUN/explain/results.json"
fi
