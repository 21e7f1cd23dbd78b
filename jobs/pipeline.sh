#!/usr/bin/env bash
# Local end-to-end run: data -> pretrain -> linear, finetune, baseline -> eval x3 -> report.
#
# Usage: jobs/pipeline.sh [--np N] [--data sample|shared|DIR] [--runs DIR] [--overrides FILE]
#                        [--set key=value ...]
#   --np N       MPI ranks for every phase (default 2)
#   --data WHAT  sample: import data/sample/{train,unlabeled}, plus the overrides in
#                        conf/sample.overrides (default)
#                shared: real STL-10 from ../shared/data (train split symlinked,
#                        ../shared/data/stl10_test_pool imported as the unlabeled split)
#                DIR:    a folder already in STL-10 binary layout, used as data.dir
#   --runs DIR   output root (default REPO/runs/sample): DIR/data, DIR/pretrain, DIR/linear,
#                DIR/finetune, DIR/baseline, DIR/eval-PHASE, DIR/report
#   --overrides FILE  overrides in the format of conf/sample.overrides (key=value or
#                PHASE:key=value, one per line), after the sample's and before --set; e.g.
#                conf/faithful.overrides: the keras.io example's protocol (docs/RESULTS.md 1)
#   --set k=v    config override passed to every phase (repeatable; wins over the
#                sample overrides and --overrides). E.g. --set resume=auto to continue a stopped run.
#   --set PHASE:k=v  the same for one phase only (pretrain, linear, finetune, baseline,
#                eval); wins over the plain --set, e.g. --set pretrain:train.epochs=40
# Environment: SIMCLR (default build/simclr), PYTHON (default /usr/bin/python3),
#   MPIRUN (default "mpirun --allow-run-as-root --oversubscribe"),
#   OMP_NUM_THREADS, BLIS_NUM_THREADS (default max(1, cores / N)).
# Relative --runs/--data/SIMCLR paths are taken from the current folder; the steps
# run in the repo root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "pipeline.sh: $2" >&2; exit "$1"; }
usage() { sed -n '2,/^set -euo/s/^# \{0,1\}//p' "$0"; exit "$1"; }

np=2 data=sample runs=$root/runs/sample
sets=() sample_overrides=() file_overrides=() phase_only=() overrides=""
while (($#)); do
  case $1 in
    -h|--help) usage 0 ;;
    --np|--data|--runs|--set|--overrides) (($# >= 2)) || die 2 "$1 needs a value (see --help)" ;;
    *) die 2 "unknown argument: $1 (see --help)" ;;
  esac
  case $1 in
    --np) np=$2 ;;
    --overrides) overrides=$2 ;;
    --data) data=$2 ;;
    --runs) runs=$2 ;;
    --set) case ${2%%=*} in
             *:*) [[ ${2%%:*} =~ ^(pretrain|linear|finetune|baseline|eval)$ ]] ||
                    die 2 "--set $2: before the colon, one of pretrain linear finetune baseline eval"
                  phase_only+=("$2") ;;
             *) sets+=(--set "$2") ;;
           esac ;;
  esac
  shift 2
done
[[ $np =~ ^[1-9][0-9]*$ ]] || die 2 "--np wants a positive integer, not '$np'"
if [[ $data != sample && $data != shared ]]; then
  [[ -d $data ]] || die 2 "--data $data: not sample, shared or a folder"
  data=$(realpath "$data")
fi
runs=$(realpath -m "$runs")
read_overrides() {  # read_overrides FILE ARRAY: FILE's key=value lines appended to ARRAY
  local raw line n=0
  local -n into=$2
  while IFS= read -r raw || [[ -n $raw ]]; do
    n=$((n + 1)) line=${raw%%#*} line=${line//[[:space:]]/}
    [[ -z $line ]] && continue
    [[ $line =~ ^([a-z]+:)?[A-Za-z0-9_.]+=.*$ ]] || die 2 "$1:$n: want key=value or PHASE:key=value, not '$raw'"
    into+=("$line")
  done < "$1"
}
if [[ -n $overrides ]]; then
  [[ -f $overrides && -r $overrides ]] || die 2 "--overrides $overrides: no such readable file"
  read_overrides "$overrides" file_overrides
fi

# shellcheck source=jobs/local_env.sh
source "$root/jobs/local_env.sh"

# Exit codes of build/simclr, to name the reason when a step fails.
reasons=([2]=usage [3]=config [4]=data [5]=I/O [6]=checkpoint [7]="diverged: non-finite loss"
         [75]="stopped by a signal after writing a checkpoint; rerun with --set resume=auto")

step() {  # step NAME COMMAND...: print a header, run COMMAND, stop the pipeline if it fails
  local name=$1 rc=0; shift
  printf '\n==== %s ====\n+ %s\n' "$name" "$*"
  "$@" || rc=$?
  ((rc == 0)) || die "$rc" "step '$name' failed with exit $rc${reasons[rc]:+ (${reasons[rc]})}"
}

link_shared() {  # the real STL-10 labelled train split into $1: images and labels symlinked
  local src f      # (read-only use), class_names.txt copied (a small file nothing may write through)
  src=$(realpath -e ../shared/data/stl10_binary) || return 4
  for f in train_X.bin train_y.bin class_names.txt; do
    [[ -s $src/$f ]] || { echo "missing or empty: $src/$f" >&2; return 4; }
  done
  ln -sfn "$src/train_X.bin" "$1/train_X.bin"
  ln -sfn "$src/train_y.bin" "$1/train_y.bin"
  rm -f "$1/class_names.txt"
  cp "$src/class_names.txt" "$1/class_names.txt"
}

echo "pipeline: np=$np data=$data runs=$runs OMP_NUM_THREADS=$OMP_NUM_THREADS BLIS_NUM_THREADS=$BLIS_NUM_THREADS"
datadir=$runs/data
mkdir -p "$runs"
case $data in
  sample)
    step "import sample train" "$SIMCLR" import data/sample/train "$datadir" --split train --labels-from-folders
    step "import sample unlabeled" "$SIMCLR" import data/sample/unlabeled "$datadir" --split unlabeled
    read_overrides conf/sample.overrides sample_overrides ;;
  shared)
    mkdir -p "$datadir"
    step "link shared STL-10 train split" link_shared "$datadir"
    if [[ -e $datadir/unlabeled_X.bin ]]; then
      printf '\n==== import shared unlabeled ====\nskipped: %s exists\n' "$datadir/unlabeled_X.bin"
    else
      step "import shared unlabeled" "$SIMCLR" import ../shared/data/stl10_test_pool "$datadir" --split unlabeled
    fi ;;
  *) datadir=$data ;;
esac
sample_overrides+=("${file_overrides[@]}")
sets=(--set "data.dir=$datadir" "${sets[@]}")

phase_sets() {  # phase_sets PHASE: the sample overrides (all phases, then PHASE: lines) as --set
  local kv       # args in phase_args; the command line's PHASE:k=v for PHASE in own_args
  phase_args=() own_args=()
  for kv in "${sample_overrides[@]}"; do
    case $kv in
      *:*) if [[ ${kv%%:*} == "$1" ]]; then phase_args+=(--set "${kv#*:}"); fi ;;
      *) phase_args+=(--set "$kv") ;;
    esac
  done
  for kv in "${phase_only[@]}"; do
    if [[ ${kv%%:*} == "$1" ]]; then own_args+=(--set "${kv#*:}"); fi
  done
}
train() {  # train PHASE [--set ...]: run PHASE into $runs/PHASE
  phase_sets "$1"
  step "$1" "${mpirun[@]}" -np "$np" "$SIMCLR" "$1" "conf/$1.cfg" --set "run_dir=$runs/$1" "${@:2}" \
    "${phase_args[@]}" "${sets[@]}" "${own_args[@]}"
}
evaluate() {  # evaluate PHASE: evaluate $runs/PHASE/final.h5 into $runs/eval-PHASE
  phase_sets eval
  step "eval $1" "${mpirun[@]}" -np "$np" "$SIMCLR" eval conf/eval.cfg \
    --set "checkpoint=$runs/$1/final.h5" --set "run_dir=$runs/eval-$1" "${phase_args[@]}" "${sets[@]}" "${own_args[@]}"
}

train pretrain
train linear --set "checkpoint=$runs/pretrain/final.h5"
train finetune --set "checkpoint=$runs/pretrain/final.h5"
train baseline
for phase in linear finetune baseline; do evaluate "$phase"; done
step "report" "$PYTHON" analysis/compare.py "$runs"
