#!/bin/bash
# Change 9: peak rate 2e-3 after a 3-epoch warmup, then constant, in pretraining (60 epochs), seed S; frozen build f94cf19
# (seed 42 ran with ">" logs; from seed 43 on, logs and times.txt append, so a run resumed after a stop keeps its history)
set -u
cd /work/main
S=${1:-42}
B=/work/exp/bin/simclr
R=runs/c9/seed$S
mkdir -p $R
date -u +"start %F %T" >> $R/times.txt
mpirun --allow-run-as-root -np 2 $B pretrain conf/pretrain.cfg --set seed=$S \
    --set data.dir=runs/stl10/data --set run_dir=$R/pretrain \
    --set train.lr=0.002 --set train.warmup_epochs=3 >> $R/pretrain.log 2>&1 || { echo pretrain failed >> $R/times.txt; exit 1; }
date -u +"pretrain done %F %T" >> $R/times.txt
for P in linear finetune; do
  mpirun --allow-run-as-root -np 2 $B $P conf/$P.cfg --set seed=$S --set data.dir=runs/stl10/data \
      --set run_dir=$R/$P --set checkpoint=$R/pretrain/final.h5 >> $R/$P.log 2>&1 || { echo $P failed >> $R/times.txt; exit 1; }
  mpirun --allow-run-as-root -np 2 $B eval conf/eval.cfg --set data.dir=runs/stl10/data \
      --set checkpoint=$R/$P/final.h5 --set run_dir=$R/eval-$P >> $R/eval-$P.log 2>&1
  date -u +"$P done %F %T" >> $R/times.txt
done
