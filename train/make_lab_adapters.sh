#!/usr/bin/env bash
# Leave-one-daemon-out R-Log-fast adapters for the faultlab benchmark (CPU, recipe `lab`): for every
# daemon of the corpus, an adapter trained on the other daemons' first 14 runs and two simulated runs,
# never on that daemon. `rlog bench --preset faultlab` then scores each on the daemon it left out
# (`rlog-fast +lab`, `rlog +lab`). A finished adapter is kept, an interrupted one resumes from its
# newest checkpoint, so the script can be run again after a stop.
#
#   CORPUS=out/lab/corpus   the corpus (`rlog lab corpus -o out/lab/corpus --seeds 1-28 --rate 6`)
#   DAEMONS="apache ..."    which adapters to make (default: the four of the reference corpus)
#   RUNS=runs/lab           where the runs go (runs/lab/without-<daemon>/<variant>/sft/final)
#   VARIANTS="fast full"    also R-Log (the injector's cause and fix as references; about as long again)
set -euo pipefail
CORPUS=${CORPUS:-out/lab/corpus}
DAEMONS=${DAEMONS:-apache haproxy mosquitto openssh}
RUNS=${RUNS:-runs/lab}
VARIANTS=${VARIANTS:-fast}
RLOG=${RLOG:-rlog}
for v in $VARIANTS; do
  for d in $DAEMONS; do
    run="$RUNS/without-$d"
    if [ -f "$run/$v/sft/final/adapter_config.json" ]; then
      echo "[make_lab_adapters] $v without $d: kept ($run/$v/sft/final)" >&2
      continue
    fi
    s=$SECONDS
    "$RLOG" train sft --recipe lab --variant "$v" --run "$run" --resume \
      --set "data.lab_corpus=$CORPUS" --set "data.lab_exclude=[$d]"
    echo "[make_lab_adapters] $v without $d: trained in $(( (SECONDS - s) / 60 )) min" >&2
  done
done
