#!/usr/bin/env bash
# valgrind.sh (make valgrind): valgrind memcheck over a tiny pipeline on the bundled sample
# images, one rank (MPI singleton), model width 8:
#   import of 20 labeled images (2 classes; the decoding child processes are checked too),
#   pretrain 1 epoch (batch 8, online probe 4), finetune 1 epoch from it, distill 1 epoch
#   (the finetuned model as teacher), eval, all with model.batchnorm = false (the keras
#   model); then pretrain, finetune and eval again with model.batchnorm = true (the default),
#   a linear probe on the conv features with its eval, and a finetune from the projection
#   head's first layer (model.finetune_from = "head0") with its eval.
# Each step runs under
#   valgrind --error-exitcode=1 --leak-check=full --suppressions=tests/valgrind.supp
# and must exit 0 with "ERROR SUMMARY: 0 errors"; the suppressions cover only Open MPI's,
# BLIS's and libgomp's own memory (leaks), no memory error of any kind. About 1 minute.
# Logs: $OUT (default a temporary folder, removed on success).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
build=${BUILD:-build}
simclr=$build/simclr
command -v valgrind > /dev/null || { echo "valgrind.sh: valgrind not installed"; exit 1; }
[[ -x $simclr ]] || { echo "valgrind.sh: $simclr not built (make)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/simclr-valgrind-XXXXXX")
vg=(valgrind --error-exitcode=1 --leak-check=full --num-callers=40 --suppressions=tests/valgrind.supp)
failed=0
step() {  # step NAME CMD...
  local name=$1 t0=$SECONDS rc
  shift
  "${vg[@]}" --log-file="$tmp/$name.vg.%p" "$@" > "$tmp/$name.out" 2>&1; rc=$?
  local summary
  summary=$(grep -h "ERROR SUMMARY" "$tmp/$name".vg.* | sed 's/^==[0-9]*== //' | sort | uniq -c | sed 's/^ *//' | paste -sd ';')
  if ((rc == 0)) && ! grep -h "ERROR SUMMARY" "$tmp/$name".vg.* | grep -qv "ERROR SUMMARY: 0 errors"; then
    printf 'ok   %-9s %3ds  %s\n' "$name" $((SECONDS - t0)) "$summary"
  else
    failed=1
    printf 'FAIL %-9s exit %d  %s (logs in %s)\n' "$name" "$rc" "$summary" "$tmp"
    tail -5 "$tmp/$name.out" | sed 's/^/     | /'
  fi
}
mkdir -p "$tmp/src/airplane" "$tmp/src/bird"
cp $(ls -d data/sample/train/airplane/* | head -10) "$tmp/src/airplane/"
cp $(ls -d data/sample/train/bird/* | head -10) "$tmp/src/bird/"
tiny=(--set "data.dir=$tmp/data" --set data.unlabeled_split= --set data.num_classes=2 --set data.eval_per_class=2
      --set model.width=8 --set model.embed_dim=16 --set model.proj_dim=16 --set train.epochs=1 --set run.threads=1
      --set run.log_interval_s=100.0 --set model.batchnorm=false)
step import "$simclr" import "$tmp/src" "$tmp/data" --split train --labels-from-folders
step pretrain "$simclr" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=8 --set pretrain.probe_batch=4 --set "run_dir=$tmp/pre"
step finetune "$simclr" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=4 --set "checkpoint=$tmp/pre/final.h5" --set "run_dir=$tmp/fine"
step distill "$simclr" distill conf/distill.cfg "${tiny[@]}" --set train.batch=4 --set "checkpoint=$tmp/fine/final.h5" \
  --set "distill.init=$tmp/pre/final.h5" --set "run_dir=$tmp/distill"
step eval "$simclr" eval conf/eval.cfg "${tiny[@]}" --set "checkpoint=$tmp/fine/final.h5" --set "run_dir=$tmp/eval"
bn=(--set model.batchnorm=true)  # the default; the steps above run the plain model (tiny sets false)
step bn-pre "$simclr" pretrain conf/pretrain.cfg "${tiny[@]}" "${bn[@]}" --set train.batch=8 --set pretrain.probe_batch=4 --set "run_dir=$tmp/bnpre"
step bn-fine "$simclr" finetune conf/finetune.cfg "${tiny[@]}" "${bn[@]}" --set train.batch=4 --set "checkpoint=$tmp/bnpre/final.h5" --set "run_dir=$tmp/bnfine"
step bn-eval "$simclr" eval conf/eval.cfg "${tiny[@]}" "${bn[@]}" --set "checkpoint=$tmp/bnfine/final.h5" --set "run_dir=$tmp/bneval"
# the linear probe on the conv features (model.probe_features = "conv", the default) and its
# eval, which reads the checkpoint's stored configuration to build that classifier
step bn-linear "$simclr" linear conf/linear.cfg "${tiny[@]}" "${bn[@]}" --set train.batch=4 --set "checkpoint=$tmp/bnpre/final.h5" --set "run_dir=$tmp/bnlin"
step bn-lineval "$simclr" eval conf/eval.cfg "${tiny[@]}" "${bn[@]}" --set "checkpoint=$tmp/bnlin/final.h5" --set "run_dir=$tmp/bnlineval"
# fine-tuning from the projection head's first layer (model.finetune_from = "head0") and its eval
step bn-headfine "$simclr" finetune conf/finetune.cfg "${tiny[@]}" "${bn[@]}" --set train.batch=4 --set model.finetune_from=head0 \
  --set "checkpoint=$tmp/bnpre/final.h5" --set "run_dir=$tmp/bnhead"
step bn-headeval "$simclr" eval conf/eval.cfg "${tiny[@]}" "${bn[@]}" --set "checkpoint=$tmp/bnhead/final.h5" --set "run_dir=$tmp/bnheadeval"
if ((failed)); then echo "valgrind: memcheck errors (logs kept in $tmp)"; exit 1; fi
rm -rf "$tmp"
echo "valgrind: 0 errors in every step"
