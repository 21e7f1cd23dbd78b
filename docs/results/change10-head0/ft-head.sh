#!/bin/bash
# finetune from the head's first layer on a change 9 encoder: ft-head.sh SEED (runs/v2ft/seedS)
set -u
cd "$(dirname "$0")/../../.."
S=$1 B=${SIMCLR:-build/simclr} R=runs/v2ft/seed$S
mkdir -p $R
date -u +"start %F %T" >> $R/times.txt
mpirun --allow-run-as-root -np 2 $B finetune conf/finetune.cfg --set seed=$S --set data.dir=runs/stl10/data \
  --set run_dir=$R/finetune --set checkpoint=runs/c9/seed$S/pretrain/final.h5 --set model.finetune_from=head0 >> $R/finetune.log 2>&1 || { echo failed >> $R/times.txt; exit 1; }
mpirun --allow-run-as-root -np 2 $B eval conf/eval.cfg --set data.dir=runs/stl10/data --set checkpoint=$R/finetune/final.h5 --set run_dir=$R/eval-finetune >> $R/eval-finetune.log 2>&1
date -u +"finetune done %F %T" >> $R/times.txt
