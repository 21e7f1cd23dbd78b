#!/usr/bin/env bash
# Label-efficiency study: from ONE pretrained encoder, train linear probe, fine-tune and the
# supervised baseline at several label budgets (images per class) and seeds, then tabulate
# and plot top-1 against labels per class (analysis/label_efficiency.py).
#
# Usage: jobs/label_efficiency.sh --encoder CKPT --data DIR [--np N] [--runs DIR]
#            [--budgets 10,25,100,300] [--seeds 1,2,3] [--phases linear,finetune,baseline]
#            [--set key=value ...]
#   --encoder CKPT  a pretrain checkpoint (e.g. runs/stl10/pretrain/final.h5)
#   --data DIR      STL-10 binary layout (data.dir), e.g. runs/stl10/data from jobs/pipeline.sh
#   --np N          MPI ranks per run (default 2)
#   --runs DIR      output root (default REPO/runs/label-efficiency): DIR/lpcB-seedS/PHASE
#   --budgets LIST  data.labels_per_class values (default 10,25,100,300)
#   --seeds LIST    seeds (default 1,2,3): each seed draws its own labeled subset
#                   (data.labels_per_class keyed by seed), classifier init, shuffles, views
#   --phases LIST   default linear,finetune,baseline; add distill for self-training (SimCLR v2):
#                   the run's own finetune (lpcB-seedS/finetune/final.h5, run before it) is
#                   the teacher of conf/distill.cfg, the student starts from --encoder
#   --set k=v       config override for every run (repeatable); the keys the script sets
#                   itself (run_dir, data.dir, checkpoint, distill.init, seed,
#                   data.labels_per_class, resume, train.eval_every) are refused
# Every run is conf/PHASE.cfg with data.labels_per_class=B, seed=S, train.eval_every=1000
# (top-1 on the hold-out slice once, after the final epoch; the slice is data.eval_per_class
# per class, never trained on). Runs go seed by seed, so an interrupted study has whole
# seeds; a run whose final.h5 exists is skipped and others resume (resume=auto): rerun the
# same command to continue. Each run folder's settings (its simclr arguments and the
# encoder's SHA-256) are kept in lpcB-seedS/PHASE.cmd; a rerun with other settings (another
# encoder, epochs, --set...) into the same --runs is refused (exit 3), so one table never
# mixes two studies. --encoder must be a pretrain checkpoint (checked on the first run that
# loads it: exit 6 otherwise). The log of each run is appended to lpcB-seedS/PHASE.log.
# Exit codes: those of build/simclr (2 usage, 3 config, 4 data, 5 I/O, 6 checkpoint...),
# 1 when analysis/label_efficiency.py fails. Environment as jobs/pipeline.sh (SIMCLR,
# PYTHON, MPIRUN, BLIS_NUM_THREADS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "label_efficiency.sh: $2" >&2; exit "$1"; }
usage() { sed -n '2,/^set -euo/s/^# \{0,1\}//p' "$0"; exit "$1"; }

np=2 runs=$root/runs/label-efficiency encoder="" data="" budgets=10,25,100,300 seeds=1,2,3
phases=linear,finetune,baseline sets=()
while (($#)); do
  case $1 in
    -h|--help) usage 0 ;;
    --np|--runs|--encoder|--data|--budgets|--seeds|--phases|--set) (($# >= 2)) || die 2 "$1 needs a value (see --help)" ;;
    *) die 2 "unknown argument: $1 (see --help)" ;;
  esac
  case $1 in
    --np) np=$2 ;; --runs) runs=$2 ;; --encoder) encoder=$2 ;; --data) data=$2 ;;
    --budgets) budgets=$2 ;; --seeds) seeds=$2 ;; --phases) phases=$2 ;;
    --set) case ${2%%=*} in
             run_dir|data.dir|checkpoint|distill.init|seed|data.labels_per_class|resume|train.eval_every)
               die 2 "--set ${2%%=*}: set by this script (use --runs, --data, --encoder, --seeds, --budgets)" ;;
           esac
           sets+=(--set "$2") ;;
  esac
  shift 2
done
[[ $np =~ ^[1-9][0-9]*$ ]] || die 2 "--np wants a positive integer, not '$np'"
[[ -n $encoder ]] || die 2 "--encoder CKPT is required (see --help)"
[[ -n $data ]] || die 2 "--data DIR is required (see --help)"
[[ -f $encoder ]] || die 6 "--encoder $encoder: no such file"
[[ -d $data ]] || die 4 "--data $data: no such folder"
for list in "$budgets" "$seeds"; do
  [[ $list =~ ^[0-9]+(,[0-9]+)*$ ]] || die 2 "'$list': want a comma-separated list of integers"
done
[[ ,$budgets, != *,0,* ]] || die 2 "--budgets: 0 (all labels) is not a budget; list images per class"
[[ $phases =~ ^(linear|finetune|baseline|distill)(,(linear|finetune|baseline|distill))*$ ]] ||
  die 2 "--phases '$phases': a comma-separated subset of linear,finetune,baseline,distill"
encoder=$(realpath "$encoder") data=$(realpath "$data") runs=$(realpath -m "$runs")
[[ ! -e $runs || -d $runs ]] || die 2 "--runs $runs: exists and is not a folder"
B=() S=()  # 007 and 7 are the same budget: one folder name
IFS=, read -ra list <<< "$budgets"; for b in "${list[@]}"; do B+=($((10#$b))); done
IFS=, read -ra list <<< "$seeds"; for v in "${list[@]}"; do S+=($((10#$v))); done
IFS=, read -ra P <<< "$phases"
# shellcheck source=jobs/local_env.sh
source "$root/jobs/local_env.sh"

mkdir -p "$runs"
echo "label_efficiency: encoder=$encoder data=$data budgets=$budgets seeds=$seeds phases=$phases np=$np runs=$runs"
enc_sha=$(sha256sum < "$encoder") enc_checked=0
for seed in "${S[@]}"; do
  for b in "${B[@]}"; do
    for phase in "${P[@]}"; do
      dir=$runs/lpc$b-seed$seed/$phase from=(--set "checkpoint=$encoder")
      if [[ $phase == distill ]]; then  # teacher: this budget's and seed's fine-tuned model
        [[ -f ${dir%/*}/finetune/final.h5 ]] || die 6 "distill at $b labels per class, seed $seed needs ${dir%/*}/finetune/final.h5 (list finetune before distill in --phases)"
        from=(--set "checkpoint=${dir%/*}/finetune/final.h5" --set "distill.init=$encoder")
      fi
      args=("$phase" "conf/$phase.cfg" --set "run_dir=$dir" --set "data.dir=$data" "${from[@]}"
            --set "data.labels_per_class=$b" --set "seed=$seed" --set train.eval_every=1000 --set resume=auto "${sets[@]}")
      record=$(printf 'encoder sha256 %s\n' "${enc_sha%% *}"; printf '%s\n' "${args[@]}")
      if [[ -f $dir.cmd ]]; then
        [[ $(< "$dir.cmd") == "$record" ]] || die 3 "$dir was run with other settings than now (see $dir.cmd; diff: $(diff <(printf '%s\n' "$record") "$dir.cmd" | grep '^[<>]' | head -4 | tr '\n' ' ')): use another --runs, or remove that run"
      elif [[ -e $dir ]]; then
        echo "note: $dir has no $dir.cmd (made by an older script): its settings are not checked"
      fi
      if [[ -f $dir/final.h5 ]]; then echo "skip $dir (final.h5 exists)"; continue; fi
      mkdir -p "${dir%/*}"; t0=$SECONDS rc=0
      printf '%s\n' "$record" > "$dir.cmd"
      printf '\n==== %s %s\n' "$(date -u +%FT%TZ)" "${args[*]}" >> "$dir.log"
      "${mpirun[@]}" -np "$np" "$SIMCLR" "${args[@]}" >> "$dir.log" 2>&1 || rc=$?
      if ((rc != 0)); then
        grep -m1 'error:' "$dir.log" >&2 || tail -5 "$dir.log" >&2
        die "$rc" "$phase at $b labels per class, seed $seed failed (exit $rc): $dir.log"
      fi
      if ((!enc_checked)) && [[ $phase == linear || $phase == finetune ]]; then
        if ! grep -qF "encoder from $encoder (pretrain," "$dir.log"; then
          what=$(grep -o "encoder from .*" "$dir.log" | tail -1)
          rm -rf "$dir" "$dir.cmd"  # not a result of this study
          die 6 "--encoder $encoder is not a pretrain checkpoint ($what): the study needs an encoder trained without labels"
        fi
        enc_checked=1
      fi
      echo "$(date -u +%H:%M:%S) lpc $b seed $seed $phase: $(grep -o '"eval_top1":[0-9.]*' "$dir/metrics.jsonl" | tail -1) ($((SECONDS - t0)) s)"
    done
  done
done
"$PYTHON" analysis/label_efficiency.py "$runs"
