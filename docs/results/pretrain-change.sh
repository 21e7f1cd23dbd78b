#!/bin/bash
# One pretraining change of docs/RESULTS.md section 7 at one seed: pretrain from scratch (the
# default recipe plus the given --set flags), then the default linear probe and fine-tune on its
# encoder, and their evals; the baseline does not depend on pretraining (copy the default's).
# Usage: docs/results/pretrain-change.sh NAME SEED [--set key=value ...]   -> runs/NAME/seedSEED
#   SIMCLR: the binary (default /work/exp/bin/simclr, a frozen copy of build/simclr)
# Rerun the same command to continue after a stop: every phase resumes (resume = auto). Logs and
# times.txt append, so a resumed run keeps its history.
set -u
cd "$(dirname "$0")/../.."
N=$1 S=$2
shift 2
B=${SIMCLR:-/work/exp/bin/simclr}
R=runs/$N/seed$S
mkdir -p "$R"
date -u +"start %F %T" >> "$R/times.txt"
mpirun --allow-run-as-root -np 2 "$B" pretrain conf/pretrain.cfg --set seed="$S" \
    --set data.dir=runs/stl10/data --set run_dir="$R/pretrain" "$@" >> "$R/pretrain.log" 2>&1 ||
    { echo pretrain failed >> "$R/times.txt"; exit 1; }
date -u +"pretrain done %F %T" >> "$R/times.txt"
for P in linear finetune; do
  mpirun --allow-run-as-root -np 2 "$B" $P conf/$P.cfg --set seed="$S" --set data.dir=runs/stl10/data \
      --set run_dir="$R/$P" --set checkpoint="$R/pretrain/final.h5" >> "$R/$P.log" 2>&1 ||
      { echo $P failed >> "$R/times.txt"; exit 1; }
  mpirun --allow-run-as-root -np 2 "$B" eval conf/eval.cfg --set data.dir=runs/stl10/data \
      --set checkpoint="$R/$P/final.h5" --set run_dir="$R/eval-$P" >> "$R/eval-$P.log" 2>&1
  date -u +"$P done %F %T" >> "$R/times.txt"
done
