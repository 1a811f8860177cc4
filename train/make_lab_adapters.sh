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
#   SHIP=benchmarks/results/faultlab/adapters   where each finished adapter is exported (float16, as the
#                           faultlab preset names them: rlog-fast-without-<daemon>, rlog-without-<daemon>)
set -euo pipefail
CORPUS=${CORPUS:-out/lab/corpus}
DAEMONS=${DAEMONS:-apache haproxy mosquitto openssh}
RUNS=${RUNS:-runs/lab}
VARIANTS=${VARIANTS:-fast}
RLOG=${RLOG:-rlog}
SHIP=${SHIP:-benchmarks/results/faultlab/adapters}
for v in $VARIANTS; do
  for d in $DAEMONS; do
    run="$RUNS/without-$d"
    name=rlog-fast; [ "$v" = full ] && name=rlog
    shipped="$SHIP/$name-without-$d"
    if [ -f "$shipped/adapter_config.json" ]; then
      echo "[make_lab_adapters] $v without $d: kept ($shipped)" >&2
      continue
    fi
    if [ ! -f "$run/$v/sft/final/adapter_config.json" ]; then
      s=$SECONDS
      "$RLOG" train sft --recipe lab --variant "$v" --run "$run" --resume \
        --set "data.lab_corpus=$CORPUS" --set "data.lab_exclude=[$d]"
      echo "[make_lab_adapters] $v without $d: trained in $(( (SECONDS - s) / 60 )) min" >&2
    fi
    "$RLOG" train export --recipe lab --variant "$v" --source "$run/$v/sft/final" --out "$shipped" --dtype float16
    rm -f "$shipped/tokenizer.json" "$shipped/tokenizer_config.json" "$shipped/chat_template.jinja"
  done
done
