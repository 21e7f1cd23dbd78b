#!/usr/bin/env bash
# The scaling measurement on the lent 16-core machine (no Open MPI there), as ONE script
# (bench/SCALING.md). Prepare here, from the repo root:
#   ../shared/tools/device-bundle simclr-bundle.tgz build/simclr      # git-ignored (*.tgz)
#   ../shared/tools/device-bundle simclr-bundle.tgz build/simclr build/gemm_bound  # for the GEMM bound
# then, with the device tool: carry ["simclr-bundle.tgz"], timeout_s 590, command
#   bash bench/device_scaling.sh
# It writes into $OUT, as the runs finish (a run cut short still leaves what was done):
#   host.txt              lscpu, nproc, CPU quota, memory, load, versions
#   device.log            everything printed
#   scaling.tgz           scaling/ packed (the tool brings back at most 8 files):
#                         bench/scaling.sh: weak (per-rank batch 32) and strong (global 256)
#                         at 1, 2, 4, 8, 16 ranks x 1 thread; runs.tsv, per-run metrics.jsonl,
#                         scaling.json (+ scaling.png where matplotlib exists)
#   layouts.tgz, layouts.tsv RANKSxTHREADS 16x1, 1x16, 4x4, 2x8, 8x2 at global batch 256 (images/s)
#   torch_twin.jsonl      bench/torch_twin.py: the same pretrain step in PyTorch fp32 on 16
#                         threads (and 1 thread at the per-rank batch), python3 of the machine
#   gemm_bound.jsonl      build/gemm_bound per layout: GEMM-only time of one step and the
#                         large-sgemm GFLOP/s on the same ranks x threads (one line per rank)
# Time: a step at per-rank batch 32 (64 views) is ~0.5 s on one core, 2 epochs x 4 steps per
# run: weak ~6 s per run, strong 256 from ~35 s (1 rank) down, layouts ~5-10 s each: about
# 2-3 minutes in all. Guard: no run starts after SCALING_BUDGET_S (480) seconds, and a run
# still going then is stopped 30 s later.
# Overrides (environment; for a test elsewhere): SCALING_RANKS (1,2,4,8,16), SCALING_PER_RANK
# (32), SCALING_GLOBAL (256), SCALING_STEPS (4), SCALING_MODES (weak,strong), SCALING_LAYOUTS
# (16x1,1x16,4x4,2x8,8x2), SCALING_TORCH (python3 with torch, or "none"; default python3
# when it imports torch),
# SCALING_BUDGET_S (480), SCALING_BUNDLE (simclr-bundle.tgz), SCALING_UNPACK (/tmp/b),
# MPIRUN (default "mpirun --oversubscribe": the bundle's mpirun adds --allow-run-as-root
# --bind-to none).
set -euo pipefail
: "${OUT:?OUT must name the output folder (the device tool sets it)}"
start=$(date +%s)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$OUT"

# The PyTorch fp32 twin of the same step (issue 4: "against PyTorch with 16 threads") and the
# GEMM-only bound of each layout, at the strong-scaling global batch. Each JSON line is
# appended to $OUT as soon as it is measured; nothing starts after the deadline.
compare_torch_and_gemm() {
  local cores py l r t
  cores=$(nproc)
  py=${SCALING_TORCH:-python3}
  if [[ $py != none ]] && "$py" -c 'import torch' 2> /dev/null; then
    for spec in "$cores:$global" "1:$((global / cores > 0 ? global / cores : 1))"; do
      (($(date +%s) < deadline)) || { echo "device_scaling.sh: deadline: torch twin skipped"; break; }
      echo "device_scaling.sh: PyTorch twin, ${spec%%:*} threads, batch ${spec#*:}"
      timeout 120 "$py" bench/torch_twin.py --mode pretrain --threads "${spec%%:*}" --batch "${spec#*:}" \
        --reps 5 --warmup 2 >> "$OUT/torch_twin.jsonl" || echo "device_scaling.sh: torch_twin.py exit $?"
    done
  else
    echo "device_scaling.sh: no PyTorch ($py): twin skipped"
  fi
  if [[ -x $unpack/bin/gemm_bound ]]; then
    for l in "${layout_list[@]}"; do
      (($(date +%s) < deadline)) || { echo "device_scaling.sh: deadline: gemm_bound skipped"; break; }
      r=${l%x*} t=${l#*x}
      echo "device_scaling.sh: gemm_bound $l"
      # shellcheck disable=SC2086
      timeout 120 $MPIRUN -n "$r" "$unpack/bin/gemm_bound" --mode pretrain --images $(((global + r - 1) / r)) \
        --global-images "$global" --threads "$t" --reps 5 --sgemm-n 2048 --workspace-mb 64 \
        >> "$OUT/gemm_bound.jsonl" || echo "device_scaling.sh: gemm_bound $l exit $?"
    done
  else
    echo "device_scaling.sh: gemm_bound not in the bundle: GEMM bound skipped"
  fi
}

# The device tool brings back at most 8 files from $OUT: each run folder tree becomes one
# tarball as soon as its part is done.
pack() {
  [[ -d $OUT/$1 ]] || return 0
  tar czf "$OUT/$1.tgz" -C "$OUT" "$1" && rm -rf "${OUT:?}/$1"
}

main() {
  ranks=${SCALING_RANKS:-1,2,4,8,16}
  per_rank=${SCALING_PER_RANK:-32}
  global=${SCALING_GLOBAL:-256}
  steps=${SCALING_STEPS:-4}
  modes=${SCALING_MODES:-weak,strong}
  layouts=${SCALING_LAYOUTS:-16x1,1x16,4x4,2x8,8x2}
  budget=${SCALING_BUDGET_S:-480}
  bundle=${SCALING_BUNDLE:-simclr-bundle.tgz}
  unpack=${SCALING_UNPACK:-/tmp/b}
  deadline=$((start + budget))

  if [[ ! -f $bundle ]]; then
    echo "device_scaling.sh: $bundle missing (make it with ../shared/tools/device-bundle and carry it)"
    exit 2
  fi
  mkdir -p "$unpack"
  tar xzf "$bundle" -C "$unpack"
  # shellcheck source=/dev/null
  . "$unpack/env.sh"
  export MPIRUN=${MPIRUN:-mpirun --oversubscribe}
  simclr=$unpack/bin/simclr
  data=$(mktemp -d "${TMPDIR:-/tmp}/scaling-data.XXXXXX")
  trap 'rm -rf "$data"' EXIT
  echo "device_scaling.sh: bundle unpacked in $(($(date +%s) - start)) s; budget $budget s"

  {
    echo "# date"; date -u
    echo "# hostname"; hostname || true
    echo "# nproc"; nproc
    echo "# cgroup CPU quota (cpu.max: quota period, or max)"
    cat /sys/fs/cgroup/cpu.max 2> /dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2> /dev/null || echo unknown
    echo "# lscpu"; lscpu || true
    echo "# free -m"; free -m || true
    echo "# loadavg"; cat /proc/loadavg
    echo "# uname -a"; uname -a
    echo "# mpirun --version"; mpirun --version 2>&1 | head -n 1 || true
    echo "# python3"; python3 --version 2>&1 || echo none
    python3 -c 'import matplotlib; print("matplotlib", matplotlib.__version__)' 2>&1 | tail -n 1 || true
    echo "# git"; git rev-parse --short HEAD 2> /dev/null || echo "no git"
  } > "$OUT/host.txt" 2>&1
  echo "device_scaling.sh: $(nproc) CPUs; $(grep -m1 'Model name' "$OUT/host.txt" || true)"

  bash bench/scaling.sh --modes "$modes" --ranks "$ranks" --per-rank "$per_rank" --global "$global" --steps "$steps" --threads 1 \
    --out "$OUT/scaling" --simclr "$simclr" --data "$data" --deadline "$deadline" ||
    echo "device_scaling.sh: scaling.sh exit $?"
  pack scaling

  IFS=, read -r -a layout_list <<< "$layouts"
  for l in "${layout_list[@]}"; do
    bash bench/scaling.sh --modes strong --ranks "${l%x*}" --threads "${l#*x}" --global "$global" --steps "$steps" \
      --out "$OUT/layouts" --simclr "$simclr" --data "$data" --deadline "$deadline" --no-analysis ||
      echo "device_scaling.sh: layout $l: scaling.sh exit $?"
  done
  if [[ -f $OUT/layouts/runs.tsv ]]; then
    # runs.tsv columns: 2 ranks, 3 threads, 4 batch, 11 oversubscribed, 12 status, 14 images_per_s,
    # 15 step_s, 16 comm_share
    awk -F'\t' 'BEGIN { OFS = "\t"; print "layout", "ranks", "threads", "global_batch", "images_per_s", "step_s",
                        "comm_share", "status", "oversubscribed" }
                NR > 1 { print $2 "x" $3, $2, $3, $4, $14, $15, $16, $12, $11 }' "$OUT/layouts/runs.tsv" \
      > "$OUT/layouts.tsv"
    echo "device_scaling.sh: layouts (global batch $global):"
    column -t -s $'\t' "$OUT/layouts.tsv" 2> /dev/null || cat "$OUT/layouts.tsv"
  fi
  pack layouts
  compare_torch_and_gemm
  echo "device_scaling.sh: done in $(($(date +%s) - start)) s"
}

main 2>&1 | tee -a "$OUT/device.log"
