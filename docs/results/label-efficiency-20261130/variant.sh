#!/usr/bin/env bash
# after seed 2's distill runs: stop the study runner, then self-distillation with the student
# initialised from its teacher (distill.init = the finetune checkpoint), seed 1, 25 and 100 labels/class
cd /work/frozen/tree
S=/work/main/runs/labeff/study
while [[ ! -f $S/lpc100-seed2/distill/final.h5 ]]; do sleep 5; done
pkill -f run_all.sh; pkill -f "jobs/label_efficiency.sh"; sleep 1; pkill -f "build/simclr distill"; pkill mpirun; sleep 3
rm -rf $S/lpc25-seed3/distill $S/lpc25-seed3/distill.log
for b in 25 100; do
  t=$S/lpc$b-seed1/finetune/final.h5 out=/work/main/runs/labeff/distill-init-teacher/lpc$b-seed1/distill
  mkdir -p ${out%/*}
  mpirun --allow-run-as-root --oversubscribe -np 2 build/simclr distill conf/distill.cfg --set run_dir=$out \
    --set data.dir=/work/main/runs/stl10/data --set checkpoint=$t --set distill.init=$t \
    --set data.labels_per_class=$b --set seed=1 --set train.eval_every=1000 --set resume=auto > $out.log 2>&1
  echo "$(date -u +%H:%M:%S) variant lpc $b: $(grep -o '"eval_top1":[0-9.]*' $out/metrics.jsonl | tail -1)"
done
