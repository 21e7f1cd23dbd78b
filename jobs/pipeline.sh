#!/usr/bin/env bash
# Local end-to-end run: data -> pretrain -> linear, finetune, baseline -> eval x3 -> report.
#
# Usage: jobs/pipeline.sh [--np N] [--data sample|shared|DIR] [--runs DIR] [--overrides FILE]
#                        [--set key=value ...]
#   --np N       MPI ranks for every phase (default 2)
#   --data WHAT  sample: import data/sample/{train,unlabeled}, plus the overrides in
#                        conf/sample.overrides (default)
#                shared: real STL-10 from $SHARED_DATA (default ../shared/data beside the
#                        repository: train split stl10_binary/ symlinked, stl10_test_pool/
#                        imported as the unlabeled split)
#                DIR:    a folder already in STL-10 binary layout, used as data.dir
#   --runs DIR   output root (default REPO/runs/sample): DIR/data, DIR/pretrain, DIR/linear,
#                DIR/finetune, DIR/baseline, DIR/eval-PHASE, DIR/report
#   --overrides FILE  overrides in the format of conf/sample.overrides (key=value or
#                PHASE:key=value, one per line, # comments), after the sample's and before
#                --set (repeatable, in order); e.g. conf/faithful.overrides: the keras.io
#                example's protocol (docs/RESULTS.md section 1)
#   --set k=v    config override passed to every phase (repeatable; wins over the
#                sample overrides and --overrides)
#   --set PHASE:k=v  the same for one phase only (pretrain, linear, finetune, baseline,
#                eval); wins over the plain --set, e.g. --set pretrain:train.epochs=60
# run_dir, data.dir and checkpoint are set by this script (refused in --set and --overrides).
# Every phase's configuration is checked (simclr ... --check) before the first step runs.
# Rerun the same command to continue a stopped run: every phase resumes (resume = auto) and
# a finished phase is skipped; a phase whose encoder checkpoint has changed since is refused
# (exit 6): remove its folder to retrain it.
# Environment: SIMCLR (default build/simclr), PYTHON (default /usr/bin/python3),
#   SHARED_DATA (--data shared: the folder holding stl10_binary/ and stl10_test_pool/),
#   MPIRUN (default "mpirun --allow-run-as-root --oversubscribe"),
#   OMP_NUM_THREADS, BLIS_NUM_THREADS (default max(1, cores / N)).
# Relative --runs/--data/SIMCLR paths are taken from the current folder; the steps
# run in the repo root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "pipeline.sh: $2" >&2; exit "$1"; }
usage() { sed -n '2,/^set -euo/s/^# \{0,1\}//p' "$0"; exit "$1"; }

phases='pretrain|linear|finetune|baseline|eval'  # the phases this script runs (PHASE: prefixes)
own_key() {  # own_key K=V WHERE: refuse the keys this script sets itself
  local k=${1%%=*}
  case ${k#*:} in
    run_dir|data.dir|checkpoint) die 2 "$2: ${k#*:} is set by this script (--runs, --data; each phase's checkpoint)" ;;
  esac
}
np=2 data=sample runs=$root/runs/sample
sets=() sample_overrides=() file_overrides=() phase_only=() overrides=()
while (($#)); do
  case $1 in
    -h|--help) usage 0 ;;
    --np|--data|--runs|--set|--overrides) (($# >= 2)) || die 2 "$1 needs a value (see --help)" ;;
    *) die 2 "unknown argument: $1 (see --help)" ;;
  esac
  case $1 in
    --np) np=$2 ;;
    --overrides) overrides+=("$2") ;;
    --data) data=$2 ;;
    --runs) runs=$2 ;;
    --set) own_key "$2" "--set $2"
           case ${2%%=*} in
             *:*) [[ ${2%%:*} =~ ^($phases)$ ]] ||
                    die 2 "--set $2: before the colon, one of ${phases//|/ }"
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
shared=$(realpath -m "${SHARED_DATA:-$root/../shared/data}")
[[ $data != shared || ( -d $shared/stl10_binary && -d $shared/stl10_test_pool ) ]] ||
  die 4 "--data shared: no stl10_binary/ and stl10_test_pool/ in $shared (${SHARED_DATA:+SHARED_DATA; }default: ../shared/data beside the repository); set SHARED_DATA=DIR to the folder that holds them"
read_overrides() {  # read_overrides FILE ARRAY: FILE's key=value lines appended to ARRAY
  local raw line n=0  # a comment starts at a # that begins the line or follows a blank;
  local -n into=$2    # blanks around the line are dropped, inside the value kept
  [[ -f $1 && -r $1 ]] || die 2 "--overrides $1: no such readable file"
  while IFS= read -r raw || [[ -n $raw ]]; do
    n=$((n + 1)) raw=${raw%$'\r'}
    ((n > 1)) || [[ $raw != $'\xef\xbb\xbf'* ]] ||
      die 2 "$1:1: starts with a UTF-8 byte-order mark (EF BB BF): save the file as UTF-8 without BOM"
    line=$(sed -E 's/(^|[[:space:]])#.*$//; s/^[[:space:]]+//; s/[[:space:]]+$//' <<< "$raw")
    [[ -z $line ]] && continue
    [[ $line =~ ^(($phases|distill):)?[A-Za-z0-9_.]+=.*$ ]] ||  # distill: for conf/sample.overrides' users
      die 2 "$1:$n: want key=value or PHASE:key=value (PHASE: ${phases//|/ } distill), not '$raw'"
    own_key "$line" "$1:$n"
    into+=("$line")
  done < "$1"
}
for f in "${overrides[@]}"; do read_overrides "$f" file_overrides; done
[[ $data != sample ]] || read_overrides "$root/conf/sample.overrides" sample_overrides

# shellcheck source=jobs/local_env.sh
source "$root/jobs/local_env.sh"

# Exit codes of build/simclr, to name the reason when a step fails.
reasons=([2]=usage [3]=config [4]=data [5]=I/O [6]=checkpoint [7]="diverged: non-finite loss"
         [75]="stopped by a signal after writing a checkpoint; rerun the same command to continue")

step() {  # step NAME COMMAND...: print a header, run COMMAND, stop the pipeline if it fails
  local name=$1 rc=0; shift
  printf '\n==== %s ====\n+ %s\n' "$name" "$*"
  "$@" || rc=$?
  ((rc == 0)) || die "$rc" "step '$name' failed with exit $rc${reasons[rc]:+ (${reasons[rc]})}"
}

link_shared() {  # the real STL-10 labelled train split into $1: images and labels symlinked
  local src f      # (read-only use), class_names.txt copied (a small file nothing may write through)
  src=$(realpath -e "$shared/stl10_binary") || return 4
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
[[ $data == sample || $data == shared ]] || datadir=$data
sample_overrides+=("${file_overrides[@]}")
sets=(--set "data.dir=$datadir" "${sets[@]}")

phase_sets() {  # phase_sets PHASE: the sample overrides (all phases, then PHASE: lines) as --set
  local kv       # args in phase_args; the command line's PHASE:k=v for PHASE in own_args
  phase_args=() own_args=()
  for kv in "${sample_overrides[@]}"; do
    if [[ ${kv%%=*} != *:* ]]; then phase_args+=(--set "$kv")    # PHASE: only in the key
    elif [[ ${kv%%:*} == "$1" ]]; then phase_args+=(--set "${kv#*:}"); fi
  done
  for kv in "${phase_only[@]}"; do
    if [[ ${kv%%:*} == "$1" ]]; then own_args+=(--set "${kv#*:}"); fi
  done
}
args_of() {  # args_of PHASE [FROM]: the config arguments of PHASE in cmd_args (FROM: the run evaluated)
  phase_sets "$1"
  local cfg=$1 dir=$runs/$1 ck=()
  case $1 in
    linear|finetune) ck=(--set "checkpoint=$runs/pretrain/final.h5") ;;
    eval) ck=(--set "checkpoint=$runs/$2/final.h5") dir=$runs/eval-$2 ;;
  esac
  cmd_args=("$1" "conf/$cfg.cfg" --set "run_dir=$dir" "${ck[@]}" "${phase_args[@]}" "${sets[@]}" "${own_args[@]}")
}
train() {  # train PHASE: run PHASE into $runs/PHASE
  args_of "$1"
  step "$1" "${mpirun[@]}" -np "$np" "$SIMCLR" "${cmd_args[@]}"
}
evaluate() {  # evaluate PHASE: evaluate $runs/PHASE/final.h5 into $runs/eval-PHASE
  args_of eval "$1"
  step "eval $1" "${mpirun[@]}" -np "$np" "$SIMCLR" "${cmd_args[@]}"
}

# every phase's configuration first (keys, values, types): a typo fails now, not hours later
for phase in ${phases//|/ }; do
  args_of "$phase" linear
  out=$("$SIMCLR" "${cmd_args[@]}" --check 2>&1) || { rc=$?; echo "$out" >&2; die "$rc" "the $phase configuration is invalid (nothing was run)"; }
done

mkdir -p "$runs"
case $data in
  sample)
    step "import sample train" "$SIMCLR" import data/sample/train "$datadir" --split train --labels-from-folders
    step "import sample unlabeled" "$SIMCLR" import data/sample/unlabeled "$datadir" --split unlabeled ;;
  shared)
    mkdir -p "$datadir"
    step "link shared STL-10 train split" link_shared "$datadir"
    if [[ -e $datadir/unlabeled_X.bin ]]; then
      printf '\n==== import shared unlabeled ====\nskipped: %s exists\n' "$datadir/unlabeled_X.bin"
    else
      step "import shared unlabeled" "$SIMCLR" import "$shared/stl10_test_pool" "$datadir" --split unlabeled
    fi ;;
esac

train pretrain
train linear
train finetune
train baseline
for phase in linear finetune baseline; do evaluate "$phase"; done
step "report" "$PYTHON" analysis/compare.py "$runs"
[[ $data != sample ]] || echo "pipeline: sample data (conf/sample.overrides: 50 eval images, 4 epochs): a smoke test of the pipeline, not a measurement; real-data figures: docs/RESULTS.md"
