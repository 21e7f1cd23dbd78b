#!/usr/bin/env bash
# label-efficiency study then self-training, from the frozen worktree /work/frozen/tree (its conf, script, binary)
cd /work/frozen/tree
enc=/work/main/runs/labeff/encoder/pretrain-seed42-8dff167.h5 data=/work/main/runs/stl10/data runs=/work/main/runs/labeff/study
jobs/label_efficiency.sh --encoder $enc --data $data --runs $runs --budgets 10,25,100,300 --seeds 1,2,3 --phases linear,finetune,baseline
jobs/label_efficiency.sh --encoder $enc --data $data --runs $runs --budgets 25,100 --seeds 1,2,3 --phases finetune,distill
