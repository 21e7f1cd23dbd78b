#!/usr/bin/env bash
# Common part of the jobs/slurm/*.sbatch scripts; sourced after `cd $SLURM_SUBMIT_DIR`
# (the repo root), never run on its own.
#
# Usage (in a .sbatch):  source jobs/slurm/common.sh
#                        train_phase PHASE [--set key=value ...]   # pretrain linear finetune baseline
#                        eval_phase PHASE [--set key=value ...]    # evaluates $RUNS/PHASE/final.h5
# Environment: RUNS (runs root, default runs/stl10), DATA (optional data.dir override),
#   SIMCLR (default build/simclr).
# Slurm sends USR1 to this batch shell 120 s before the time limit (--signal=B:USR1@120);
# it is passed on to srun, which forwards it to every rank: build/simclr then writes a
# checkpoint and exits 75, and the job requeues itself (same job id, so jobs that depend
# on it keep waiting) and resumes from LATEST (resume=auto).
set -euo pipefail

export HDF5_USE_FILE_LOCKING=FALSE
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} BLIS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
RUNS=${RUNS:-runs/stl10}
SIMCLR=${SIMCLR:-build/simclr}
data_set=()
[[ -z ${DATA:-} ]] || data_set=(--set "data.dir=$DATA")

run_simclr() {  # run_simclr ARGS...: srun build/simclr ARGS; requeue on 75, else exit with its status
  echo "[$(date '+%F %T')] job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}): $SIMCLR $*"
  srun --cpu-bind=cores "$SIMCLR" "$@" &
  child=$!
  trap 'echo "caught USR1: asking build/simclr to checkpoint and stop"; kill -USR1 "$child" || true' USR1
  while kill -0 "$child" 2> /dev/null; do wait "$child" || true; done  # wait returns early on a trap
  local rc=0
  wait "$child" || rc=$?
  trap - USR1
  if ((rc == 75)); then
    echo "build/simclr stopped after a checkpoint: requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
  fi
  echo "[$(date '+%F %T')] build/simclr exited with $rc"
  exit "$rc"
}

train_phase() {  # train_phase PHASE [--set ...]
  run_simclr "$1" "conf/$1.cfg" --set "run_dir=$RUNS/$1" --set resume=auto "${data_set[@]}" "${@:2}"
}

eval_phase() {  # eval_phase PHASE [--set ...]
  run_simclr eval conf/eval.cfg --set "checkpoint=$RUNS/$1/final.h5" --set "run_dir=$RUNS/eval-$1" \
    "${data_set[@]}" "${@:2}"
}
