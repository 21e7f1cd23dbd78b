#!/usr/bin/env bash
# Recipe study: the whole pipeline (pretrain -> linear, finetune, baseline -> eval) once per
# recipe and seed, where a recipe is a list of config changes against conf/*.cfg; then
# analysis/seeds.py tabulates baseline, linear probe and fine-tune per recipe (mean +- sd
# over seeds) and pairs every recipe with the FIRST one seed by seed. Change one thing per
# recipe to record its effect (issue 6's "one change at a time").
#
# Usage: jobs/recipes.sh --data DIR --recipe NAME[:k=v,k=v...] [--recipe ...] [--seeds 43,44]
#            [--np N] [--runs DIR] [--set k=v ...]
#   --data DIR     STL-10 binary layout (data.dir), e.g. runs/stl10/data from jobs/pipeline.sh
#   --recipe SPEC  NAME (letters, digits, - _ .) then, after a colon, comma-separated config
#                  overrides for every phase, or PHASE:key=value for one phase (as
#                  jobs/pipeline.sh --set; values cannot contain commas); repeatable; the
#                  first recipe is the reference, e.g. --recipe default (conf/ as it is)
#                  --recipe blur:augment.contrastive.blur=0.5 --recipe e60:pretrain:train.epochs=60
#   --seeds LIST   seeds (default 43); each seed keys weights, shuffles and augmentations
#   --np N         MPI ranks per phase (default 2)
#   --runs DIR     output root (default REPO/runs/recipes): DIR/NAME/seedS is one pipeline
#                  run (jobs/pipeline.sh --runs), DIR/recipes.json the summary
#   --set k=v      override for every recipe (repeatable), e.g. train.epochs=5 for a quick study
# A run whose report/summary.json exists is skipped, others continue (every phase resumes
# with resume=auto): rerun the same command after an interruption. Each run's settings are
# kept in DIR/NAME/seedS.cmd; a rerun with other settings into the same --runs is refused
# (exit 3), so a table never mixes two definitions of one recipe name. Runs go seed by seed.
# Exit codes: those of jobs/pipeline.sh / build/simclr (2 usage, 3 config, 4 data, ...), 1
# when analysis/seeds.py fails. Environment as jobs/pipeline.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "recipes.sh: $2" >&2; exit "$1"; }
usage() { sed -n '2,/^set -euo/s/^# \{0,1\}//p' "$0"; exit "$1"; }

np=2 runs=$root/runs/recipes data="" seeds=43 specs=() sets=()
while (($#)); do
  case $1 in
    -h|--help) usage 0 ;;
    --np|--runs|--data|--seeds|--recipe|--set) (($# >= 2)) || die 2 "$1 needs a value (see --help)" ;;
    *) die 2 "unknown argument: $1 (see --help)" ;;
  esac
  case $1 in
    --np) np=$2 ;; --runs) runs=$2 ;; --data) data=$2 ;; --seeds) seeds=$2 ;;
    --recipe) specs+=("$2") ;;
    --set) case ${2%%=*} in
             run_dir|data.dir|seed|checkpoint|*:run_dir|*:data.dir|*:seed|*:checkpoint)
               die 2 "--set ${2%%=*}: set by this script or the pipeline" ;;
           esac
           sets+=(--set "$2") ;;
  esac
  shift 2
done
[[ $np =~ ^[1-9][0-9]*$ ]] || die 2 "--np wants a positive integer, not '$np'"
[[ -n $data ]] || die 2 "--data DIR is required (see --help)"
[[ -d $data ]] || die 4 "--data $data: no such folder"
((${#specs[@]})) || die 2 "give at least one --recipe (see --help)"
[[ $seeds =~ ^[0-9]+(,[0-9]+)*$ ]] || die 2 "--seeds '$seeds': want a comma-separated list of integers"
data=$(realpath "$data") runs=$(realpath -m "$runs")
[[ ! -e $runs || -d $runs ]] || die 2 "--runs $runs: exists and is not a folder"
names=() declare -A recipe_sets=()
for spec in "${specs[@]}"; do
  name=${spec%%:*} changes=""
  [[ $spec == *:* ]] && changes=${spec#*:}
  [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die 2 "--recipe '$spec': the name must be letters, digits, - _ . (then :k=v,...)"
  [[ -z ${recipe_sets[$name]+x} ]] || die 2 "--recipe $name given twice"
  if [[ -n $changes ]]; then
    ph='((pretrain|linear|finetune|baseline|eval):)?'
    [[ $changes =~ ^$ph[A-Za-z0-9_.]+=[^,]*(,$ph[A-Za-z0-9_.]+=[^,]*)*$ ]] ||
      die 2 "--recipe '$spec': after the colon, comma-separated key=value or PHASE:key=value pairs (PHASE: pretrain linear finetune baseline eval)"
    IFS=, read -ra kv <<< "$changes"
    for x in "${kv[@]}"; do
      x=${x%%=*}
      case ${x#*:} in
        run_dir|data.dir|seed|checkpoint) die 2 "--recipe '$spec': ${x#*:} is set by this script or the pipeline (--seeds, --data)" ;;
      esac
    done
  fi
  names+=("$name") recipe_sets[$name]=$changes
done
IFS=, read -ra S <<< "$seeds"
# shellcheck source=jobs/local_env.sh
source "$root/jobs/local_env.sh"

mkdir -p "$runs"
echo "recipes: ${names[*]} seeds=$seeds np=$np data=$data runs=$runs"
for seed in "${S[@]}"; do
  seed=$((10#$seed))
  for name in "${names[@]}"; do
    dir=$runs/$name/seed$seed rset=()
    IFS=, read -ra kv <<< "${recipe_sets[$name]}"
    for x in "${kv[@]}"; do rset+=(--set "$x"); done
    args=(--np "$np" --data "$data" --runs "$dir" --set "seed=$seed" "${rset[@]}" "${sets[@]}")
    record=$(printf '%s\n' "${args[@]}")
    if [[ -f $dir.cmd ]]; then
      [[ $(< "$dir.cmd") == "$record" ]] || die 3 "$dir was run with other settings than now (see $dir.cmd; diff: $(diff <(printf '%s\n' "$record") "$dir.cmd" | grep '^[<>]' | head -4 | tr '\n' ' ')): use another --runs or recipe name, or remove that run"
    fi
    if [[ -f $dir/report/summary.json ]]; then echo "skip $dir (finished)"; continue; fi
    mkdir -p "$dir"; t0=$SECONDS rc=0
    printf '%s\n' "$record" > "$dir.cmd"
    printf '\n==== %s jobs/pipeline.sh %s\n' "$(date -u +%FT%TZ)" "${args[*]}" >> "$dir.log"
    "$root/jobs/pipeline.sh" "${args[@]}" >> "$dir.log" 2>&1 || rc=$?
    if ((rc != 0)); then
      # refused before any phase ran (usage, or the pipeline's config check): not a record
      if ((rc == 2 || rc == 3)) && [[ ! -e $dir/pretrain ]]; then rm -f "$dir.cmd"; fi
      grep -m1 'error:' "$dir.log" >&2 || tail -5 "$dir.log" >&2
      die "$rc" "recipe $name, seed $seed failed (exit $rc): $dir.log"
    fi
    echo "$(date -u +%H:%M:%S) $name seed $seed: $(grep -h '^eval: .* top-1' "$dir.log" | tail -3 | sed 's/^eval: //; s/ checkpoint .*: top-1 / /; s/ on .*//' | paste -sd ';') ($((SECONDS - t0)) s)"
  done
done
args=()
for name in "${names[@]}"; do
  args+=(--recipe "$name")
  for seed in "${S[@]}"; do args+=("$runs/$name/seed$((10#$seed))"); done
done
"$PYTHON" analysis/seeds.py "${args[@]}" --json "$runs/recipes.json" || die 1 "analysis/seeds.py failed"
