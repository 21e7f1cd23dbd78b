#!/usr/bin/env bash
# Weak and strong scaling of `simclr pretrain` (bench/SCALING.md). For each rank count p:
#   weak:   global batch = per-rank batch x p   (fixed work per rank)
#   strong: global batch = --global             (fixed work in total; p > global skipped)
# Every run: synthetic STL-10 data holding exactly global batch x steps unlabeled images
# (one epoch = --steps steps), --epochs epochs (epoch 1 = warm-up, not counted), online
# probe off, no checkpoint before the last epoch, no progress lines. Rank 0's metrics.jsonl
# gives images/s and the time in all-gather, reduce-scatter and allreduce per epoch.
# One line per run as it finishes; OUT/runs.tsv lists them; then analysis/scaling.py OUT.
#
# Usage: bench/scaling.sh [--ranks 1,2,4,8,16] [--per-rank 32] [--global 256] [--steps 4]
#          [--threads 1] [--epochs 2] [--modes weak,strong] [--out DIR] [--simclr PATH]
#          [--data DIR] [--deadline UNIX_SECONDS] [--no-analysis]
# Environment: MPIRUN (launcher; default "mpirun --allow-run-as-root --oversubscribe
#   --bind-to none"; it gets "-n P PROGRAM ARGS", so MPIRUN=srun works inside an allocation),
#   PYTHON (for analysis/scaling.py; default /usr/bin/python3, else python3 on PATH).
set -euo pipefail

ranks=1,2,4,8,16 per_rank=32 global=256 steps=4 threads=1 epochs=2 modes=weak,strong
out=build/scaling simclr=build/simclr data='' deadline=0 analysis=1

usage() { sed -n '2,16s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
die() { echo "scaling.sh: error: $*" >&2; exit 2; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer, got '$2'"; }

while (($#)); do
  case $1 in
    --ranks) ranks=${2:?}; shift 2 ;;
    --per-rank) posint "$1" "${2:-}"; per_rank=$2; shift 2 ;;
    --global) posint "$1" "${2:-}"; global=$2; shift 2 ;;
    --steps) posint "$1" "${2:-}"; steps=$2; shift 2 ;;
    --threads) posint "$1" "${2:-}"; threads=$2; shift 2 ;;
    --epochs) posint "$1" "${2:-}"; epochs=$2; shift 2 ;;
    --modes) modes=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --simclr) simclr=${2:?}; shift 2 ;;
    --data) data=${2:?}; shift 2 ;;
    --deadline) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--deadline needs Unix seconds"; deadline=$2; shift 2 ;;
    --no-analysis) analysis=0; shift ;;
    -h | --help) usage 0 ;;
    *) echo "scaling.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
IFS=, read -r -a rank_list <<< "$ranks"
IFS=, read -r -a mode_list <<< "$modes"
for p in "${rank_list[@]}"; do posint --ranks "$p"; done
for m in "${mode_list[@]}"; do [[ $m == weak || $m == strong ]] || die "--modes: '$m' is not weak or strong"; done
((epochs >= 2)) || echo "scaling.sh: warning: --epochs 1: the only epoch includes the warm-up" >&2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[[ -x $simclr ]] || die "$simclr is not an executable (make, or --simclr PATH)"
read -r -a launcher <<< "${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}"
command -v "${launcher[0]}" > /dev/null || die "launcher '${launcher[0]}' not found (set MPIRUN)"
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [[ -z $data ]]; then
  data=$(mktemp -d "${TMPDIR:-/tmp}/scaling-data.XXXXXX")
  trap 'rm -rf "$data"' EXIT
fi
mkdir -p "$data"
host=$(hostname 2> /dev/null || echo unknown)
cores=$(nproc)
record=27648  # 3 x 96 x 96 bytes per STL-10 image

# Labeled split for the evaluation hold-out the program insists on: 4 images per class,
# labels 1..10; data.eval_per_class=1 holds out one per class. Pretraining ignores it.
if [[ ! -f $data/train_y.bin ]]; then
  head -c $((40 * record)) /dev/urandom > "$data/train_X.bin"
  printf '\001\002\003\004\005\006\007\010\011\012%.0s' 1 2 3 4 > "$data/train_y.bin"
  printf 'c%s\n' 1 2 3 4 5 6 7 8 9 10 > "$data/class_names.txt"
fi

cpu_busy() {  # share of all CPUs busy (not idle or iowait) over 2 s, from /proc/stat
  local a b t0=0 t1=0 x
  [[ -r /proc/stat ]] || { echo ''; return; }
  read -r -a a < /proc/stat
  sleep 2
  read -r -a b < /proc/stat
  for x in "${a[@]:1}"; do t0=$((t0 + x)); done
  for x in "${b[@]:1}"; do t1=$((t1 + x)); done
  awk -v di=$((b[4] + b[5] - a[4] - a[5])) -v dt=$((t1 - t0)) 'BEGIN { printf "%.3f", (dt > 0) ? 1 - di / dt : 0 }'
}
busy=$(cpu_busy)
if [[ -n $busy ]] && awk -v b="$busy" 'BEGIN { exit !(b > 0.1) }'; then
  echo "scaling.sh: warning: $(awk -v b="$busy" 'BEGIN { printf "%.0f", 100 * b }') % of the CPUs busy before" \
    "starting: another job is running; the timings are NOT valid" >&2
fi

tsv=$out/runs.tsv
columns=(mode ranks threads batch per_rank steps epochs host cores cpu_busy_before oversubscribed status wall_s
  images_per_s step_s comm_share dir)
[[ -s $tsv ]] || (IFS=$'\t'; echo "${columns[*]}") > "$tsv"

drop_row() {  # drop_row NAME: forget an earlier row of run folder NAME (a rerun into the same --out replaces it)
  awk -F'\t' -v n="$1" 'NR == 1 || $NF != n' "$tsv" > "$tsv.tmp" && mv "$tsv.tmp" "$tsv"
}

field() {  # field KEY LINE: a number from a metrics.jsonl line
  sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" <<< "$2"
}

run_one() {  # run_one MODE P BATCH
  local mode=$1 p=$2 g=$3 name rd split status=ok rc=0 left t0 t1 wall line ips secs comm step share over=no
  name=$mode-p$p-t$threads
  rd=$out/$name
  split=u$g-s$steps
  ((p * threads <= cores)) || over=yes
  if ((deadline > 0)); then
    left=$((deadline - $(date +%s)))
    if ((left < 5)); then
      echo "scaling.sh: $name skipped: time budget spent"
      drop_row "$name"
      printf '%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s\tskipped\t\t\t\t\t%s\n' "$mode" "$p" "$threads" \
        "$g" $(((g + p - 1) / p)) "$steps" "$epochs" "$host" "$cores" "$busy" "$over" "$name" >> "$tsv"
      return 0
    fi
  fi
  [[ -f $data/${split}_X.bin ]] || head -c $((g * steps * record)) /dev/urandom > "$data/${split}_X.bin"
  rm -rf "$rd"
  mkdir -p "$rd"
  local cmd=("${launcher[@]}" -n "$p" "$simclr" pretrain conf/pretrain.cfg
    --set "run_dir=$rd" --set "data.dir=$data" --set resume=none --set data.split=train
    --set "data.unlabeled_split=$split" --set data.unlabeled_use_train=false --set data.eval_per_class=1
    --set "train.batch=$g" --set "train.epochs=$epochs" --set pretrain.probe_batch=0
    --set "run.threads=$threads" --set run.checkpoint_every=1000000 --set run.log_interval_s=1000000.0)
  printf '%q ' "${cmd[@]}" > "$rd/command.txt"
  echo >> "$rd/command.txt"
  t0=$(date +%s.%N)
  if ((deadline > 0)); then
    timeout --kill-after=15 $((left + 30)) "${cmd[@]}" > "$rd/log.txt" 2>&1 || rc=$?
  else
    "${cmd[@]}" > "$rd/log.txt" 2>&1 || rc=$?
  fi
  t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  rm -f "$rd"/*.h5 "$rd/LATEST"  # checkpoints: not needed, 10 MB each
  ((rc == 0)) || status=failed-$rc
  ((rc != 124 && rc != 137)) || status=timeout
  line=$(grep '"phase":"pretrain"' "$rd/metrics.jsonl" 2> /dev/null | tail -n 1 || true)
  ips=$(field images_per_s "$line") secs=$(field seconds "$line") comm=$(field comm_s "$line")
  step='' share=''
  if [[ -n $secs && -n $comm ]]; then
    step=$(awk -v s="$secs" -v n="$steps" 'BEGIN { printf "%.4f", s / n }')
    share=$(awk -v c="$comm" -v s="$secs" 'BEGIN { printf "%.4f", (s > 0) ? c / s : 0 }')
  fi
  drop_row "$name"
  printf '%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$p" "$threads" \
    "$g" $(((g + p - 1) / p)) "$steps" "$epochs" "$host" "$cores" "$busy" "$over" "$status" "$wall" "$ips" "$step" \
    "$share" "$name" >> "$tsv"
  if [[ $status == ok && -n $ips ]]; then
    printf 'scaling.sh: %-6s p=%-3d t=%d G=%-5d %9.2f img/s  step %.4f s  comm %5.1f %%  (run %s s)%s\n' \
      "$mode" "$p" "$threads" "$g" "$ips" "$step" "$(awk -v x="$share" 'BEGIN { print 100 * x }')" "$wall" \
      "$([[ $over == yes ]] && echo '  [oversubscribed]')"
  else
    echo "scaling.sh: $mode p=$p t=$threads G=$g: $status after $wall s; log: $rd/log.txt"
    tail -n 5 "$rd/log.txt" | sed 's/^/    /'
  fi
}

echo "scaling.sh: $host, $cores CPUs (${busy:-?} busy before); ranks $ranks, threads $threads, modes $modes," \
  "per-rank $per_rank, global $global, $steps steps x $epochs epochs; out $out; launcher: ${launcher[*]}"
for mode in "${mode_list[@]}"; do
  for p in "${rank_list[@]}"; do
    if [[ $mode == weak ]]; then
      run_one weak "$p" $((per_rank * p))
    elif ((p <= global)); then
      run_one strong "$p" "$global"
    else
      echo "scaling.sh: strong p=$p skipped: global batch $global < $p ranks"
    fi
  done
done

((analysis)) || exit 0
py=${PYTHON:-}
if [[ -z $py ]]; then
  if [[ -x /usr/bin/python3 ]]; then py=/usr/bin/python3; else py=$(command -v python3 || true); fi
fi
if [[ -z $py ]]; then
  echo "scaling.sh: no python3: run analysis/scaling.py $out elsewhere"
  exit 0
fi
"$py" analysis/scaling.py "$out" --json "$out/scaling.json" --plot "$out/scaling.png"
