#!/bin/bash
# embed vs head0 fine-tune at few labels on change 9 encoders: lowlab.sh SEED...
set -u
cd "$(dirname "$0")/../../.."
B=${SIMCLR:-build/simclr}
for S in "$@"; do for L in 10 25 100; do for F in embed head0; do
  R=runs/v2ft/low/s$S-l$L-$F
  [[ -f $R/final.h5 ]] && continue
  mpirun --allow-run-as-root -np 2 $B finetune conf/finetune.cfg --set seed=$S --set data.dir=runs/stl10/data \
    --set run_dir=$R --set checkpoint=runs/c9/seed$S/pretrain/final.h5 --set model.finetune_from=$F \
    --set data.labels_per_class=$L > $R.log 2>&1 || echo "failed $R"
  echo "$S $L $F $(tail -n 1 $R/metrics.jsonl | grep -o '"eval_top1":[0-9.]*') $(date -u +%T)"
done; done; done
