#!/usr/bin/env bash
# test_cli.sh: the command line of build/simclr and its exit codes (README/docs: 0 ok,
# 2 usage, 3 config, 4 data, 5 I/O, 6 checkpoint): one-rank runs as MPI singletons,
# two-rank runs through mpirun, checking that an error on a 2-rank job ends both ranks
# quickly. Builds tiny data by importing data/sample. Run from the repository root
# (make test does; about 20 s):
#   BUILD=build tests/test_cli.sh
# Prints one line per check and "N passed, N failed" at the end; exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
NAME=cli
# shellcheck source=tests/lib.sh
source tests/lib.sh

# expect NAME RC [-m TEXT]... [-x TEXT]... -- CMD...: runs CMD (60 s limit), wants exit
# status RC, every -m TEXT (fixed string) in its stdout+stderr and no -x TEXT.
expect() {
  local name=$1 want=$2 texts=() absent=() out rc t0=$SECONDS missing= present=
  shift 2
  while [[ $1 == -m || $1 == -x ]]; do
    if [[ $1 == -m ]]; then texts+=("$2"); else absent+=("$2"); fi
    shift 2
  done
  [[ $1 == -- ]] && shift
  out=$(timeout 60 "$@" 2>&1); rc=$?
  for t in "${texts[@]}"; do grep -qF -- "$t" <<< "$out" || { missing=$t; break; }; done
  for t in "${absent[@]}"; do grep -qF -- "$t" <<< "$out" && { present=$t; break; }; done
  if [[ $rc == "$want" && -z $missing && -z $present ]]; then
    passed=$((passed + 1)); printf 'ok   %-58s (%ds)\n' "$name" $((SECONDS - t0))
  else
    failed=$((failed + 1))
    printf 'FAIL %s: exit %s (want %s)%s%s\n' "$name" "$rc" "$want" "${missing:+; output lacks \"$missing\"}" \
      "${present:+; output has \"$present\"}"
    printf '     + %s\n' "$*"; sed 's/^/     | /' <<< "$out" | tail -25
  fi
}

# Phase commands (+ PHASE CONFIG ARGS): one rank runs as an MPI singleton (no mpirun: the
# same code path, and 1 s faster per failing run); two ranks through mpirun.
np1=("$simclr") np2=("${mpirun[@]}" -np 2 "$simclr")

# ---- usage (no MPI) -----------------------------------------------------------------
expect "--help exits 0 and lists the phases" 0 -m pretrain -m linear -m finetune -m baseline -m eval -m import \
  -m "exit codes" -- "$simclr" --help
expect "--version" 0 -m simclr -- "$simclr" --version
expect "no arguments: usage, exit 2" 2 -m usage -- "$simclr"
expect "unknown phase: exit 2 naming it" 2 -m pretrian -- "$simclr" pretrian conf/pretrain.cfg
expect "phase without a config: exit 2" 2 -- "$simclr" pretrain
expect "unexpected argument: exit 2" 2 -m bogus -- "$simclr" pretrain conf/pretrain.cfg bogus
expect "--set without key=value: exit 2 saying so" 2 -m "key=value missing after: --set" -- "$simclr" pretrain conf/pretrain.cfg --set
many=(); for i in $(seq 257); do many+=(--set "seed=$i"); done
expect "257 --set overrides: exit 2 naming the limit" 2 -m "more than 256 --set overrides; the 257th: seed=257" -- "$simclr" pretrain conf/pretrain.cfg "${many[@]}" --check
expect "--set phase=...: exit 3 saying the phase is the command's first argument" 3 -m "--set phase: 'phase' is not a setting" -- \
  "$simclr" pretrain conf/pretrain.cfg --set phase=linear --check
expect "BLIS_ARCH_TYPE=abc (BLIS would read it as 0): exit 3 listing the arch numbers" 3 -m "BLIS_ARCH_TYPE=abc: BLIS" -m "25 generic" -- \
  env BLIS_ARCH_TYPE=abc "$simclr" eval conf/eval.cfg --set "checkpoint=$tmp/none.h5"
expect "BLIS_ARCH_TYPE=13 (armsve, not in an x86 BLIS): exit 3, not BLIS's abort" 3 -m "BLIS_ARCH_TYPE=13: BLIS cannot run these kernels here" -- \
  env BLIS_ARCH_TYPE=13 "$simclr" eval conf/eval.cfg --set "checkpoint=$tmp/none.h5"
expect "--check with BLIS_ARCH_TYPE=abc: exit 3, the same check as a run" 3 -m "BLIS_ARCH_TYPE=abc: BLIS" -- \
  env BLIS_ARCH_TYPE=abc "$simclr" pretrain conf/pretrain.cfg --check
cp conf/base.cfg "$tmp/base.cfg"; printf '@include "base.cfg"\nphase = "pretrian";\n' > "$tmp/typo.cfg"
expect "a config file whose phase is misspelt: exit 3 saying it is not a phase" 3 \
  -m "$tmp/typo.cfg:2: phase \"pretrian\" is not a phase" -- "$simclr" pretrain "$tmp/typo.cfg" --check
expect "import without --split: exit 2" 2 -- "$simclr" import data/sample/train "$tmp/x"
expect "--set of a key the phase does not read: a warning naming it; a missing checkpoint is named before bad data" 6 \
  -m "none.h5: checkpoint not found" \
  -m "warning: --set pretrain.temperature=0.5: phase eval does not use this key" -- \
  "$simclr" eval conf/eval.cfg --set pretrain.temperature=0.5 --set "checkpoint=$tmp/none.h5" --set "data.dir=$tmp/nodata"
expect "--check with a --set the phase does not read: valid, with the same warning" 0 -m "configuration valid" \
  -m "warning: --set pretrain.temperature=0.2: phase finetune does not use this key" -- \
  "$simclr" finetune conf/finetune.cfg --set pretrain.temperature=0.2 --check
expect "a phase given another phase's config file: exit 3 naming FILE:LINE" 3 \
  -m "conf/finetune.cfg:5: this configuration is written for phase finetune, not pretrain" -- \
  "$simclr" pretrain conf/finetune.cfg --check
expect "--check eval with a label budget: eval has none, so the same warning" 0 -m "configuration valid" \
  -m "warning: --set data.labels_per_class=25: phase eval does not use this key" -- \
  "$simclr" eval conf/eval.cfg --set data.labels_per_class=25 --check
expect "--check with a warmup longer than the run: valid, with a warning giving the final rate" 0 -m "configuration valid" \
  -m "warning: train.warmup_epochs = 5 is more than train.epochs = 2: the learning rate rises for the whole run and ends at 0.0008, below train.lr = 0.002" -- \
  "$simclr" pretrain conf/pretrain.cfg --set train.epochs=2 --set train.warmup_epochs=5 --check
expect "--check with the warmup the run's length: no warning" 0 -m "configuration valid" -x "warning" -- \
  "$simclr" pretrain conf/pretrain.cfg --set train.epochs=3 --check
expect "import --split with a slash: exit 2" 2 -- "$simclr" import data/sample/train "$tmp/x" --split a/b
expect "import unknown option: exit 2" 2 -m --frobnicate -- "$simclr" import data/sample/train "$tmp/x" --split t --frobnicate

# ---- data ---------------------------------------------------------------------------
data=$tmp/data
expect "import labeled sample" 0 -m "250 images" -- "$simclr" import data/sample/train "$data" --split train --labels-from-folders
expect "import unlabeled sample" 0 -m "300 images" -- "$simclr" import data/sample/unlabeled "$data" --split unlabeled
[[ $(stat -c %s "$data/train_X.bin") == $((250 * 27648)) && $(stat -c %s "$data/train_y.bin") == 250 ]] \
  && ok "imported files have STL-10 sizes" || bad "imported files have STL-10 sizes" "$(ls -l "$data")"
expect "import a missing folder: exit 4 naming it" 4 -m "$tmp/nope" -- "$simclr" import "$tmp/nope" "$tmp/x" --split t
cats=(data/sample/train/cat/*.jpg)
mkdir -p "$tmp/badimg/cls" && cp "${cats[0]}" "$tmp/badimg/cls/" && echo garbage > "$tmp/badimg/cls/x.jpg"
expect "import a corrupt JPEG: exit 4 naming it" 4 -m "x.jpg" -- "$simclr" import "$tmp/badimg" "$tmp/bad-out" --split t --labels-from-folders
expect "import --skip-bad: skipped and counted" 0 -m "x.jpg" -m "1 skipped" -- \
  "$simclr" import "$tmp/badimg" "$tmp/bad-out" --split t --labels-from-folders --skip-bad

# Tiny model and run settings shared by the phase runs below.
tiny=(--set "data.dir=$data" --set data.eval_per_class=5 --set run.threads=1 --set model.width=8
      --set model.embed_dim=16 --set model.proj_dim=16 --set train.epochs=1 --set run.log_interval_s=100.0)

# ---- config errors ------------------------------------------------------------------
expect "missing config file: exit 3 naming it" 3 -m "$tmp/none.cfg" -- "${np1[@]}" pretrain "$tmp/none.cfg"
expect "bad --set value: exit 3 naming the key" 3 -m train.lr -- "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.lr=abc
expect "unknown --set key: exit 3 naming it and the nearest key" 3 -m train.lrate -m "did you mean 'train.lr'?" -- "${np1[@]}" pretrain conf/pretrain.cfg --set train.lrate=0.1
expect "unknown --set key far from every key: no guess (one rank: no MPI_ABORT banner)" 3 -m "unknown key 'zzz'" \
  -x "did you mean" -x MPI_ABORT -- "${np1[@]}" pretrain conf/pretrain.cfg --set zzz=1
expect "truncated --set key: the key it starts" 3 -m "did you mean 'augment.contrastive.grayscale'?" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg --set augment.contrastive.gray=0.2
expect "--set without '=': exit 2" 2 -- "${np1[@]}" pretrain conf/pretrain.cfg --set train.lr
printf 'run_dir = "r";\ndata = { dir = "d"; };\ntrain = { lr = 1; };\n' > "$tmp/int-lr.cfg"
expect "int where float expected: exit 3 with file:line" 3 -m "$tmp/int-lr.cfg:3" -m train.lr -- "${np1[@]}" pretrain "$tmp/int-lr.cfg"
expect "config error on 2 ranks: exit 3, job ends" 3 -m train.lrate -- "${np2[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.lrate=1.0
mkdir -p "$tmp/locked"  # flock(1) holds RUN_DIR/.lock as a running job would
expect "a job into a run_dir another job holds: exit 3, nothing written" 3 -m "run_dir $tmp/locked is in use by another job" \
  -m "$tmp/locked/.lock" -- flock "$tmp/locked/.lock" "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set "run_dir=$tmp/locked"
[[ $(ls -A "$tmp/locked") == .lock ]] && ok "  ... and the run_dir holds only the lock file" || bad "locked run_dir written" "$(ls -A "$tmp/locked")"
# conf/sample.overrides is applied by jobs/pipeline.sh (make demo): lines "key=value" go to
# every phase, "PHASE:key=value" to that phase. Each phase must accept its overrides (the
# run then stops at the missing data folder, exit 4, after the config passed; eval, which
# reads its checkpoint first, at the missing checkpoint, exit 6).
mapfile -t overrides < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' conf/sample.overrides)
for phase in pretrain linear finetune baseline eval; do
  args=()
  for kv in "${overrides[@]}"; do
    case $kv in
      *:*) [[ ${kv%%:*} == "$phase" ]] && args+=(--set "${kv#*:}") ;;
      *) args+=(--set "$kv") ;;
    esac
  done
  want=(4 -m "$tmp/no-data"); [[ $phase == @(eval|linear|finetune) ]] && want=(6 -m "$tmp/x.h5: checkpoint not found")
  expect "conf/sample.overrides valid for $phase" "${want[@]}" -- \
    "${np1[@]}" "$phase" "conf/$phase.cfg" --set "run_dir=$tmp/ov-$phase" --set "checkpoint=$tmp/x.h5" "${args[@]}" \
    --set "data.dir=$tmp/no-data"
done

# ---- data errors ----------------------------------------------------------------------
mkdir -p "$tmp/empty"
expect "data.dir without files: exit 4 naming the file" 4 -m "$tmp/empty/train_X.bin" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set "data.dir=$tmp/empty" --set "run_dir=$tmp/r-empty"
corrupt=$tmp/corrupt
mkdir -p "$corrupt" && cp "$data"/* "$corrupt/" && truncate -s -1000 "$corrupt/unlabeled_X.bin"
t0=$SECONDS
expect "corrupt data file on 2 ranks: both end, exit 4 naming it" 4 -m "$corrupt/unlabeled_X.bin" -- \
  "${np2[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set "data.dir=$corrupt" --set "run_dir=$tmp/r-corrupt"
((SECONDS - t0 < 30)) && ok "  ... within 30 s ($((SECONDS - t0)) s)" || bad "corrupt data on 2 ranks took $((SECONDS - t0)) s"
badlab=$tmp/badlabels
mkdir -p "$badlab" && cp "$data"/* "$badlab/" && printf '\x0b' | dd of="$badlab/train_y.bin" bs=1 seek=17 conv=notrunc status=none
expect "label 11 in train_y.bin: exit 4 naming file and record" 4 -m "$badlab/train_y.bin" -m "record 17" -- \
  "${np2[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set "data.dir=$badlab" --set "run_dir=$tmp/r-badlab"
expect "eval_per_class too large for the data: exit 3" 3 -m "data.eval_per_class = 25: class 0 of" -m "set a smaller data.eval_per_class" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set data.eval_per_class=25 --set "run_dir=$tmp/r-holdout"

# ---- I/O errors -------------------------------------------------------------------------
touch "$tmp/a-file"
expect "run_dir under a regular file: exit 5" 5 -m "$tmp/a-file" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set "run_dir=$tmp/a-file/run"

# ---- checkpoints ------------------------------------------------------------------------
pre=$tmp/pre
expect "tiny pretrain (1 epoch) for the checkpoint tests" 0 -m "BLIS kernels: " -- \
  "${np2[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=100 --set pretrain.probe_batch=0 --set "run_dir=$pre"
[[ -f $pre/final.h5 && $(cat "$pre/LATEST" 2>/dev/null) == final.h5 ]] && ok "pretrain wrote final.h5 and LATEST" \
  || bad "pretrain wrote final.h5 and LATEST" "$(ls -l "$pre" 2>&1)"
# BLIS_ARCH_TYPE (arch_t's number; 4 = sandybridge, AVX) is the user's choice of BLIS
# kernels: gemm_init leaves it alone and the banner names it
expect "BLIS_ARCH_TYPE=4 in the environment: sandybridge kernels, named in the banner" 0 \
  -m "BLIS kernels: sandybridge (set by BLIS_ARCH_TYPE=4)" -m "nothing to do" -- env BLIS_ARCH_TYPE=4 \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=100 --set pretrain.probe_batch=0 --set "run_dir=$pre"
expect "eval without a checkpoint file: exit 6 naming it" 6 -m "$tmp/missing.h5" -- \
  "${np2[@]}" eval conf/eval.cfg "${tiny[@]}" --set "checkpoint=$tmp/missing.h5" --set "run_dir=$tmp/e-missing"
expect "eval on a pretrain checkpoint: exit 6" 6 -m "$pre/final.h5" -m pretrain -- \
  "${np2[@]}" eval conf/eval.cfg "${tiny[@]}" --set "checkpoint=$pre/final.h5" --set "run_dir=$tmp/e-pre"
expect "  ... named before the data is read (a missing data dir is not reached)" 6 -m "$pre/final.h5: a pretrain checkpoint has no trained classifier" -x "nodata" -- \
  "${np1[@]}" eval conf/eval.cfg "${tiny[@]}" --set "checkpoint=$pre/final.h5" --set "data.dir=$tmp/nodata" --set "run_dir=$tmp/e-pre2"
head -c 5000 "$pre/final.h5" > "$tmp/trunc.h5"
t0=$SECONDS
expect "truncated checkpoint on 2 ranks: exit 6 naming it and saying truncated" 6 -m "$tmp/trunc.h5: truncated checkpoint" -- \
  "${np2[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=20 --set "checkpoint=$tmp/trunc.h5" --set "run_dir=$tmp/f-trunc"
((SECONDS - t0 < 30)) && ok "  ... within 30 s ($((SECONDS - t0)) s)" || bad "truncated checkpoint on 2 ranks took $((SECONDS - t0)) s"
expect "finetune from another model width: exit 6 naming tensor and shapes" 6 -m encoder.conv0.weight -m "(8,3,3,3)" -m "(4,3,3,3)" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set model.width=4 --set train.batch=20 --set "checkpoint=$pre/final.h5" --set "run_dir=$tmp/f-width"
expect "resume finetune from a pretrain checkpoint: exit 6" 6 -m "$pre/final.h5" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=20 --set "checkpoint=$pre/final.h5" --set "resume=$pre/final.h5" --set "run_dir=$tmp/f-resume"
expect "finetune train.batch above the labeled images: exit 3 naming the --set" 3 -m "--set train.batch: train.batch = 1000" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=1000 --set "checkpoint=$pre/final.h5" --set "run_dir=$tmp/f-batch"
[[ ! -e $tmp/f-batch ]] && ok "  ... the refused run leaves no trace (not even its run_dir)" \
  || bad "refused run created its run_dir" "$(ls -A "$tmp/f-batch")"
expect "  ... so another phase may use that run_dir (linear there: exit 0)" 0 -- \
  "${np1[@]}" linear conf/linear.cfg "${tiny[@]}" --set train.batch=20 --set train.epochs=1 --set "checkpoint=$pre/final.h5" --set "run_dir=$tmp/f-batch"
mkdir -p "$tmp/cfgx" && cp conf/base.cfg "$tmp/cfgx/" && sed 's/batch = 25; /batch = 1000;/' conf/finetune.cfg > "$tmp/cfgx/finetune.cfg"
bline=$(grep -n "batch = 1000;" "$tmp/cfgx/finetune.cfg" | cut -d: -f1)
expect "the same batch from a config file: exit 3 naming FILE:LINE" 3 -m "$tmp/cfgx/finetune.cfg:$bline: train.batch = 1000 is larger" -- \
  "${np1[@]}" finetune "$tmp/cfgx/finetune.cfg" "${tiny[@]}" --set "checkpoint=$pre/final.h5" --set "run_dir=$tmp/f-batch2"
expect "finetune from a missing checkpoint: exit 6" 6 -m "$tmp/no-such.h5" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=20 --set "checkpoint=$tmp/no-such.h5" --set "run_dir=$tmp/f-nockpt"
[[ ! -e $tmp/f-nockpt ]] && ok "  ... and leaves no trace (not even its run_dir)" \
  || bad "refused run created its run_dir" "$(ls -a "$tmp/f-nockpt")"

# ---- self-training (distill) ------------------------------------------------------------
ft=$tmp/ft dst=$tmp/distill
expect "tiny finetune: the teacher for distill" 0 -- \
  "${np2[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=40 --set "checkpoint=$pre/final.h5" --set "run_dir=$ft"
# finetune's default cosine schedule is set by train.epochs: a resume keeps epochs and schedule
expect "finetune (cosine) resumed with more epochs: exit 6 naming train.epochs" 6 \
  -m "written with train.epochs = 1, this run has train.epochs = 2" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=40 --set train.epochs=2 --set "checkpoint=$pre/final.h5" --set "run_dir=$ft"
expect "finetune resumed with another schedule: exit 6 naming train.schedule" 6 -m "train.schedule" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=40 --set train.schedule=constant --set "checkpoint=$pre/final.h5" --set "run_dir=$ft"
# a finished finetune is not resumed after its encoder checkpoint was trained further: its
# result would be the old encoder's (jobs/pipeline.sh reruns with --set pretrain:train.epochs=N)
cp -r "$pre" "$tmp/pre-more"
ftst=(conf/finetune.cfg "${tiny[@]}" --set train.batch=40 --set "checkpoint=$tmp/pre-more/final.h5" --set "run_dir=$tmp/ft-stale")
expect "finetune from a copy of the pretrain run" 0 -- "${np1[@]}" finetune "${ftst[@]}"
expect "  ... rerun with the encoder unchanged: nothing to do, exit 0" 0 -m "nothing to do" -- "${np1[@]}" finetune "${ftst[@]}"
expect "  ... pretraining continued to epoch 2" 0 -m "resumed from" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=100 --set pretrain.probe_batch=0 --set train.epochs=2 \
  --set "run_dir=$tmp/pre-more"
expect "  ... a rerun of the finished pretraining with another augmentation: exit 6 naming the key" 6 \
  -m "finished (epoch 2) with augment.contrastive.blur = 0, this run has augment.contrastive.blur = 0.5" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=100 --set pretrain.probe_batch=0 --set train.epochs=2 \
  --set augment.contrastive.blur=0.5 --set "run_dir=$tmp/pre-more"
expect "  ... a rerun with other threads and logging only: nothing to do, exit 0" 0 -m "nothing to do" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=100 --set pretrain.probe_batch=0 --set train.epochs=2 \
  --set run.threads=2 --set run.log_interval_s=5.0 --set "run_dir=$tmp/pre-more"
expect "  ... the finetune rerun refuses the stale result: exit 6" 6 -m "which now holds a run trained further or retrained" -m "$tmp/pre-more/final.h5" -- \
  "${np1[@]}" finetune "${ftst[@]}"
expect "distill with a pretrain checkpoint as teacher: exit 6" 6 -m "$pre/final.h5" -m "no classifier" -- \
  "${np2[@]}" distill conf/distill.cfg "${tiny[@]}" --set "checkpoint=$pre/final.h5" --set "distill.init=$pre/final.h5" --set "run_dir=$tmp/d-pre"
expect "distill without a teacher: exit 3" 3 -m checkpoint -- \
  "${np1[@]}" distill conf/distill.cfg "${tiny[@]}" --set "checkpoint=" --set "run_dir=$tmp/d-none"
expect "distill on 2 ranks: teacher soft labels, student trained, eval logged" 0 -m "soft-labelled" -m "teacher-labelled" -- \
  "${np2[@]}" distill conf/distill.cfg "${tiny[@]}" --set train.epochs=2 --set train.batch=40 --set "checkpoint=$ft/final.h5" \
  --set "distill.init=$pre/final.h5" --set distill.temperature=2.0 --set "run_dir=$dst"
grep -q '"phase":"distill","epoch":2,.*"eval_top1":0\.[0-9]' "$dst/metrics.jsonl" 2>/dev/null &&
  ok "distill metrics.jsonl has epoch 2 with eval_top1" || bad "distill metrics.jsonl has epoch 2 with eval_top1" "$(cat "$dst/metrics.jsonl" 2>&1)"
expect "distill resumed with another teacher: exit 6 naming the key" 6 -m "written with checkpoint =" -- \
  "${np1[@]}" distill conf/distill.cfg "${tiny[@]}" --set train.epochs=3 --set train.batch=40 --set "checkpoint=$dst/final.h5" \
  --set "distill.init=$pre/final.h5" --set distill.temperature=2.0 --set "run_dir=$dst"
expect "distill resumed with another seed: exit 6 naming the key" 6 -m "written with seed = 42, this run has seed = 7" -- \
  "${np1[@]}" distill conf/distill.cfg "${tiny[@]}" --set train.epochs=3 --set train.batch=40 --set "checkpoint=$ft/final.h5" \
  --set "distill.init=$pre/final.h5" --set distill.temperature=2.0 --set seed=7 --set "run_dir=$dst"
expect "distill with a missing distill.init: exit 6 naming it" 6 -m "$tmp/nope.h5" -- \
  "${np2[@]}" distill conf/distill.cfg "${tiny[@]}" --set "checkpoint=$ft/final.h5" --set "distill.init=$tmp/nope.h5" --set "run_dir=$tmp/d-noinit"
expect "eval of the distilled student" 0 -m "distill checkpoint" -- \
  "${np2[@]}" eval conf/eval.cfg "${tiny[@]}" --set "checkpoint=$dst/final.h5" --set "run_dir=$tmp/e-distill"

expect "import under mpirun -np 2: exit 2 (import is serial)" 2 -m "serial" -- \
  "${mpirun[@]}" -np 2 "$simclr" import data/sample/unlabeled "$tmp/imp-mpi" --split unlabeled
[[ ! -e $tmp/imp-mpi/unlabeled_X.bin ]] && ok "  ... and wrote nothing" || bad "import under mpirun wrote files" "$(ls -l "$tmp/imp-mpi")"
n=$(timeout 60 "${mpirun[@]}" -np 2 "$simclr" import data/sample/unlabeled "$tmp/imp-mpi" --split unlabeled 2>&1 | grep -c "serial command")
((n == 1)) && ok "  ... with one message, not one per rank" || bad "import under mpirun: $n messages (want 1)"

# ---- label-efficiency job (jobs/label_efficiency.sh + analysis/label_efficiency.py) ------
le=(jobs/label_efficiency.sh --encoder "$pre/final.h5" --data "$data" --runs "$tmp/le" --np 2 --budgets 2,5 --seeds 1,2)
le_set=(--set data.eval_per_class=5 --set run.threads=1 --set model.width=8 --set model.embed_dim=16
        --set model.proj_dim=16 --set train.epochs=1 --set train.batch=10)
expect "label_efficiency.sh without --encoder: exit 2" 2 -m "--encoder" -- jobs/label_efficiency.sh --data "$data"
expect "label_efficiency.sh distill before its finetune: exit 6" 6 -m "finetune/final.h5" -- \
  "${le[@]}" --phases distill "${le_set[@]}"
expect "label_efficiency.sh: 2 budgets x 2 seeds x linear, finetune, distill; table" 0 \
  -m "| 2 |" -m "| 5 |" -m "(n=2)" -m "self-training" -- "${le[@]}" --phases linear,finetune,distill "${le_set[@]}"
"${PYTHON:-/usr/bin/python3}" - "$tmp/le/report/label_efficiency.json" <<'EOF' > "$tmp/le.check" 2>&1 &&
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
got = sorted((r["labels_per_class"], r["method"], r["n"]) for r in rows)
want = sorted((b, m, 2) for b in (2, 5) for m in ("linear", "finetune", "distill"))
assert got == want, got
assert all(0.0 <= v <= 100.0 for r in rows for v in r["top1"]), rows
EOF
  ok "label_efficiency.json: every budget x method with 2 seeds" || bad "label_efficiency.json rows" "$(cat "$tmp/le.check")"
expect "analysis/label_efficiency.py, seeds.py, scaling.py and sweep.py unit tests (python unittest)" 0 -m "Ran 15 tests" -m "OK" -- \
  "${PYTHON:-/usr/bin/python3}" -m unittest tests/test_analysis.py
expect "label_efficiency.sh rerun: finished runs skipped" 0 -m "skip $tmp/le/lpc5-seed2/distill" -- \
  "${le[@]}" --phases linear,finetune,distill "${le_set[@]}"
expect "label_efficiency.sh rerun with other settings into the same --runs: exit 3" 3 -m "other settings" -m "train.epochs=2" -- \
  "${le[@]}" --phases linear "${le_set[@]}" --set train.epochs=2
expect "label_efficiency.sh --set of a key the script sets: exit 2" 2 -m "--set seed" -- "${le[@]}" --set seed=7
expect "label_efficiency.sh with a finetune checkpoint as --encoder: exit 6" 6 -m "not a pretrain checkpoint" -- \
  jobs/label_efficiency.sh --encoder "$ft/final.h5" --data "$data" --runs "$tmp/le-ft" --np 2 --budgets 2 --seeds 1 --phases linear "${le_set[@]}"
[[ ! -e $tmp/le-ft/lpc2-seed1/linear ]] && ok "  ... and its run is removed" || bad "run with a finetune encoder left behind" "$(ls -R "$tmp/le-ft")"

# ---- recipe study (jobs/recipes.sh + analysis/seeds.py) ----------------------------------
rs=(jobs/recipes.sh --data "$data" --runs "$tmp/rs" --np 2 --seeds 1 --recipe plain:model.batchnorm=false --recipe bn:model.batchnorm=true,pretrain:train.epochs=2)
rs_set=(--set data.eval_per_class=5 --set run.threads=1 --set model.width=8 --set model.embed_dim=16
        --set model.proj_dim=16 --set train.epochs=1 --set train.batch=40 --set pretrain.probe_batch=0)
expect "recipes.sh: 2 recipes x 1 seed, the pipeline each, paired table" 0 -m "bn (1 seed)" \
  -m "fine-tune vs plain over seeds [1]" -m "wrote $tmp/rs/recipes.json" -- "${rs[@]}" "${rs_set[@]}"
if "${PYTHON:-/usr/bin/python3}" -c "import json,sys; r=json.load(open(sys.argv[1]))['recipes']; assert set(r)=={'plain','bn'} and r['bn']['paired_vs_plain']['seeds']==[1], r" "$tmp/rs/recipes.json" 2>"$tmp/rs.check" \
   && grep -q "batchnorm = true;" "$tmp/rs/bn/seed1/pretrain/config.resolved.cfg" \
   && grep -q "batchnorm = false;" "$tmp/rs/plain/seed1/finetune/config.resolved.cfg" \
   && grep -q "^  epochs = 2;" "$tmp/rs/bn/seed1/pretrain/config.resolved.cfg" \
   && grep -q "^  epochs = 1;" "$tmp/rs/bn/seed1/finetune/config.resolved.cfg" \
   && grep -q "^  epochs = 1;" "$tmp/rs/plain/seed1/pretrain/config.resolved.cfg"; then
  ok "recipes.json pairs bn with plain; each recipe's settings (pretrain:train.epochs only in pretrain) reached its phases"
else
  bad "recipes.json / recipe settings" "$(cat "$tmp/rs.check")"
fi
expect "recipes.sh rerun: finished runs skipped" 0 -m "skip $tmp/rs/bn/seed1 (finished)" -- "${rs[@]}" "${rs_set[@]}"
expect "recipes.sh rerun with other settings: exit 3" 3 -m "other settings" -- "${rs[@]}" "${rs_set[@]}" --set train.lr=0.002
expect "recipes.sh with a malformed recipe: exit 2" 2 -m "key=value" -- jobs/recipes.sh --data "$data" --recipe "x:model.batchnorm"
expect "pipeline.sh --overrides conf/faithful.overrides (tiny settings win)" 0 -m "==== report ====" -- \
  jobs/pipeline.sh --data "$data" --runs "$tmp/pl-faithful" --np 2 --overrides conf/faithful.overrides "${rs_set[@]}"
if grep -q "batchnorm = false;" "$tmp/pl-faithful/pretrain/config.resolved.cfg" \
   && grep -q 'schedule = "constant";' "$tmp/pl-faithful/finetune/config.resolved.cfg" \
   && grep -q "^  epochs = 1;" "$tmp/pl-faithful/pretrain/config.resolved.cfg"; then
  ok "  ... its settings reached the phases (model.batchnorm = false, constant schedule), --set won over it"
else
  bad "--overrides settings in the phases" "$(grep -h "batchnorm\|schedule\|epochs" "$tmp"/pl-faithful/*/config.resolved.cfg)"
fi
# bad_overrides NAME CONTENT LINE DESCRIPTION [TEXT...]: pipeline.sh refuses $tmp/NAME.overrides
# (CONTENT, printf escapes) with exit 2, naming the file, LINE and each TEXT
bad_overrides() {
  local f=$tmp/$1.overrides line=$3 what=$4 ms=()
  printf "$2" > "$f"
  shift 4
  ms=(-m "$f:$line"); for t in "$@"; do ms+=(-m "$t"); done
  expect "pipeline.sh --overrides $what" 2 "${ms[@]}" -- jobs/pipeline.sh --data "$data" --runs "$tmp/pl-bad" --overrides "$f"
}
bad_overrides bad 'model.batchnorm=false\nthis is wrong\n' 2 "with a malformed line: exit 2 naming file and line" "this is wrong"
bad_overrides bom '\xef\xbb\xbfmodel.batchnorm=false\n' 1 "with a UTF-8 byte-order mark: exit 2 saying so" "byte-order mark"
bad_overrides typo 'pretrian:train.epochs=2\n' 1 "with a misspelled phase: exit 2 naming file and line"
bad_overrides rundir '# comment\nrun_dir=/elsewhere\n' 2 "setting run_dir: exit 2 naming file and line" "set by this script"
printf 'eval:model.bogus=1\n' > "$tmp/bogus.overrides"
expect "pipeline.sh: an unknown key for the last phase fails before any step: exit 3" 3 -m "model.bogus" -m "nothing was run" -- \
  jobs/pipeline.sh --data "$data" --runs "$tmp/pl-bogus" --overrides "$tmp/bogus.overrides"
[[ ! -e $tmp/pl-bogus/pretrain ]] && ok "  ... and no phase ran" || bad "a phase ran before the config check failed" "$(ls "$tmp/pl-bogus")"
# --data shared reads $SHARED_DATA (default ../shared/data beside the repository): here a
# stand-in with the sample's train split and unlabeled JPEGs in the shared layout.
mkdir -p "$tmp/shared/stl10_binary" && cp -r data/sample/unlabeled "$tmp/shared/stl10_test_pool"
for f in train_X.bin train_y.bin class_names.txt; do cp "$data/$f" "$tmp/shared/stl10_binary/"; done
expect "pipeline.sh --data shared with SHARED_DATA: links, imports, runs" 0 -m "==== import shared unlabeled ====" \
  -m "$tmp/shared/stl10_test_pool" -m "==== report ====" -- \
  env SHARED_DATA="$tmp/shared" jobs/pipeline.sh --data shared --runs "$tmp/pl-shared" --np 2 "${rs_set[@]}"
[[ $(readlink "$tmp/pl-shared/data/train_X.bin") == "$tmp/shared/stl10_binary/train_X.bin" ]] \
  && ok "  ... its train split is a link into SHARED_DATA" || bad "shared train split link" "$(ls -l "$tmp/pl-shared/data")"
expect "pipeline.sh --data shared without the data: exit 4 naming the folder and SHARED_DATA" 4 -m "$tmp/none" \
  -m "SHARED_DATA=DIR" -m "stl10_test_pool" -x "====" -- env SHARED_DATA="$tmp/none" jobs/pipeline.sh --data shared --runs "$tmp/pl-none"
expect "pipeline.sh --set with an unknown phase before the colon: exit 2" 2 -m "--set pretrian:train.epochs=2" -- \
  jobs/pipeline.sh --data "$data" --runs "$tmp/pl-bad" --set pretrian:train.epochs=2
expect "recipes.sh --set PHASE:seed: exit 2" 2 -m "set by this script" -- jobs/recipes.sh --data "$data" --recipe a --set pretrain:seed=3

# ---- hostile inputs (issue 5; docs/ERRORS.md) -------------------------------------------
expect "data.dir is a regular file: exit 4 naming it" 4 -m "$tmp/a-file/train_X.bin" -m "Not a directory" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set "data.dir=$tmp/a-file" --set "run_dir=$tmp/r-dirfile"
expect "import into a path under a regular file: exit 5" 5 -m "$tmp/a-file" -- \
  "$simclr" import data/sample/unlabeled "$tmp/a-file/out" --split u
expect "labels_per_class above the labeled images: exit 3 naming the key" 3 -m "--set data.labels_per_class: data.labels_per_class = 30" -- \
  "${np1[@]}" baseline conf/baseline.cfg "${tiny[@]}" --set data.labels_per_class=30 --set train.batch=20 --set "run_dir=$tmp/b-lpc"
# data.val_per_class: a validation slice out of the labeled images, the same at every seed
# and label budget, disjoint from the training labels and from the hold-out, scored as val_top1.
expect "val_per_class too large for the labeled images: exit 3 naming the key" 3 -m "--set data.val_per_class: data.val_per_class = 20" -- \
  "${np1[@]}" baseline conf/baseline.cfg "${tiny[@]}" --set data.val_per_class=20 --set train.batch=20 --set "run_dir=$tmp/b-val20"
for v in "all 1 0" "s1 1 10" "s2 2 10"; do
  read -r name seed lpc <<< "$v"
  expect "baseline with a validation slice ($name): val top-1 on the console" 0 -m "val top-1" -m "validation: 30 images" -- \
    "${np1[@]}" baseline conf/baseline.cfg "${tiny[@]}" --set data.val_per_class=3 --set data.labels_per_class="$lpc" \
    --set seed="$seed" --set train.batch=20 --set "run_dir=$tmp/b-val-$name"
done
if out=$(/usr/bin/python3 - "$tmp" "$data" 2>&1 <<'PYEOF'
import json, sys
t, data = sys.argv[1:3]
def idx(run, f):
    return [int(l) for l in open("%s/b-val-%s/%s" % (t, run, f)) if not l.startswith("#")]
val = {r: idx(r, "validation_indices.txt") for r in ("all", "s1", "s2")}
lab = {r: idx(r, "labeled_indices.txt") for r in ("all", "s1", "s2")}
assert val["all"] == val["s1"] == val["s2"], "the validation slice depends on seed or budget"
assert len(val["all"]) == 30, len(val["all"])
# 250 sample images - 50 held out - 30 validation = 170 to train on: none of the slice, none of the hold-out
assert len(lab["all"]) == 170 and not set(lab["all"]) & set(val["all"]), (len(lab["all"]),)
assert len(lab["s1"]) == 100 and not set(lab["s1"]) & set(val["all"]), len(lab["s1"])
assert lab["s1"] != lab["s2"], "seed does not draw the label budget"
labels = open(data + "/train_y.bin", "rb").read()
per = [0] * 10
for i in val["all"]:
    per[labels[i] - 1] += 1
assert per == [3] * 10, per
m = [json.loads(l) for l in open(t + "/b-val-s1/metrics.jsonl")][-1]
assert 0 <= m["val_top1"] <= 1, m
PYEOF
); then ok "validation slice: 3 per class, one slice at every seed and budget, disjoint from training and hold-out"
else bad "validation slice" "$out"; fi

printf 'run_dir = "%s";\ndata = { dir = "%s"; };\ntrain = { batch = 4294967360; };\n' "$tmp/r-big" "$data" > "$tmp/bigint.cfg"
expect "integer literal over 32 bits (libconfig would wrap it to 64): exit 3" 3 -m "$tmp/bigint.cfg:3" -m "train.batch = 4294967360" -- \
  "${np1[@]}" pretrain "$tmp/bigint.cfg"
expect "checkpoint is a folder: exit 6" 6 -m "$tmp/empty" -m "not a regular file" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=20 --set "checkpoint=$tmp/empty" --set "run_dir=$tmp/f-dir"

# LC_NUMERIC with a decimal comma: the program never calls setlocale, so libconfig and
# --set parse "0.25" the same under any LANG/LC_ALL. A de_DE locale is compiled with
# localedef when none is installed (LOCPATH).
loc=
for l in de_DE.UTF-8 de_DE.utf8; do locale -a 2>/dev/null | grep -qx "$l" && loc=$l && break; done
if [[ -z $loc ]] && [[ -e /usr/share/i18n/locales/de_DE ]] && mkdir -p "$tmp/locale" && localedef -i de_DE -f UTF-8 "$tmp/locale/de_DE.UTF-8" > /dev/null 2>&1; then
  export LOCPATH=$tmp/locale; loc=de_DE.UTF-8
fi
if [[ -n $loc ]] && [[ $(LC_ALL=$loc /usr/bin/printf '%.1f' 0.5) == 0,5 ]]; then
  expect "LC_ALL=$loc (decimal comma): tiny pretrain, config parsed as in the C locale" 0 -- \
    env LC_ALL=$loc "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=100 --set pretrain.probe_batch=0 \
    --set train.lr=0.25 --set "run_dir=$tmp/r-locale"
  grep -q 'lr = 0.25;' "$tmp/r-locale/config.resolved.cfg" && grep -q 'temperature = 0.1;' "$tmp/r-locale/config.resolved.cfg" \
    && ok "  ... config.resolved.cfg has lr = 0.25 and temperature = 0.1" \
    || bad "LC_ALL=$loc: config.resolved.cfg" "$(grep -E 'lr =|temperature' "$tmp/r-locale/config.resolved.cfg" 2>&1)"
else
  ok "SKIPPED: no decimal-comma locale, and localedef could not compile de_DE"
fi

# kill -9 during a checkpoint write: a torn NAME.tmp and LATEST.tmp are left, LATEST still
# names the last complete checkpoint; resume=auto continues from it (here with
# run.hdf5_file_locking = false, which must work too).
killed=$tmp/killed
cp -r "$pre" "$killed"
head -c 3000 "$pre/final.h5" > "$killed/ckpt-epoch0002.h5.tmp"
printf 'ckpt-ep' > "$killed/LATEST.tmp"
expect "after kill -9 mid-write: resume=auto from LATEST, with hdf5_file_locking=false" 0 \
  -m "resumed from $killed/final.h5 (epochs done: 1;" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=100 --set pretrain.probe_batch=0 --set train.epochs=2 \
  --set run.hdf5_file_locking=false --set "run_dir=$killed"
grep -q '"epoch":2' "$killed/metrics.jsonl" && [[ $(cat "$killed/LATEST") == final.h5 && ! -e $killed/LATEST.tmp ]] \
  && ok "  ... epoch 2 done, LATEST = final.h5, no LATEST.tmp" || bad "resume after kill -9" "$(ls -l "$killed"; cat "$killed/LATEST")"
# LATEST naming a damaged checkpoint (not what a kill leaves, but a bad disk): exit 6
damaged=$tmp/damaged
mkdir -p "$damaged" && head -c 4000 "$pre/final.h5" > "$damaged/final.h5" && echo final.h5 > "$damaged/LATEST"
expect "resume=auto with LATEST naming a truncated file: exit 6 naming it" 6 -m "$damaged/final.h5" -- \
  "${np1[@]}" pretrain conf/pretrain.cfg "${tiny[@]}" --set train.batch=100 --set pretrain.probe_batch=0 --set "run_dir=$damaged"

# HDF5 file locking refused (another process holds an exclusive flock on the checkpoint,
# as HDF5 sees a filesystem without locks): exit 6 with the hint; run.hdf5_file_locking =
# false or HDF5_USE_FILE_LOCKING=FALSE then load it.
if command -v flock > /dev/null; then
  flock -x "$pre/final.h5" sleep 60 > /dev/null 2>&1 &  # no inherited stdout: run_tests.sh waits for it
  lockpid=$!
  for _ in $(seq 50); do flock -xn "$pre/final.h5" true 2> /dev/null || break; sleep 0.1; done
  fine1=("${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=20 --set "checkpoint=$pre/final.h5")
  expect "checkpoint locked by another process: exit 6 with the locking hint" 6 -m "$pre/final.h5" \
    -m "run.hdf5_file_locking = false" -m "HDF5_USE_FILE_LOCKING=FALSE" -- "${fine1[@]}" --set "run_dir=$tmp/f-locked"
  expect "  ... loads with run.hdf5_file_locking = false" 0 -m "encoder from $pre/final.h5" -- \
    "${fine1[@]}" --set run.hdf5_file_locking=false --set "run_dir=$tmp/f-nolock"
  expect "  ... loads with HDF5_USE_FILE_LOCKING=FALSE" 0 -m "encoder from $pre/final.h5" -- \
    env HDF5_USE_FILE_LOCKING=FALSE "${fine1[@]}" --set "run_dir=$tmp/f-nolock-env"
  pkill -P "$lockpid" 2> /dev/null; kill "$lockpid" 2> /dev/null; wait "$lockpid" 2> /dev/null
else
  ok "no flock(1): file-locking check skipped"
fi

# The eval images must be ones the checkpoint never saw: a classifier phase or eval whose
# hold-out differs from the checkpoint's is refused (exit 6), and so is evaluating on the
# training split itself (exit 3).
expect "finetune with another data.holdout_seed than its pretrain checkpoint: exit 6" 6 -m "eval set" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=20 --set data.holdout_seed=99 \
  --set "checkpoint=$pre/final.h5" --set "run_dir=$tmp/f-holdout"
expect "linear with data.eval_split = data.split: exit 3" 3 -m "data.eval_split = data.split" -- \
  "${np1[@]}" linear conf/linear.cfg "${tiny[@]}" --set train.batch=20 --set data.eval_split=train \
  --set "checkpoint=$pre/final.h5" --set "run_dir=$tmp/l-same-split"
expect "a phase in another phase's run_dir: exit 3 before writing there" 3 -m "holds a pretrain run" -- \
  "${np1[@]}" baseline conf/baseline.cfg "${tiny[@]}" --set train.batch=20 --set "run_dir=$pre"

# A corrupted tensor (8 bytes inverted in the middle of the stored data of
# params/encoder.conv1.weight, located with h5py) fails its Fletcher-32 checksum.
cp "$pre/final.h5" "$tmp/flipped.h5"
/usr/bin/python3 -c 'import sys, h5py
p = sys.argv[1]
with h5py.File(p, "r") as f:
    d = f["params/encoder.conv1.weight"].id
    c = d.get_chunk_info(0) if d.get_num_chunks() else None
    o = (c.byte_offset + c.size // 2) if c else d.get_offset() + d.get_storage_size() // 2
b = bytearray(open(p, "rb").read()); b[o:o + 8] = bytes(x ^ 0xFF for x in b[o:o + 8]); open(p, "wb").write(b)' "$tmp/flipped.h5"
expect "bit flips inside a checkpoint tensor: exit 6 naming the tensor and the checksum" 6 -m "checksum does not match" \
  -m "encoder.conv1.weight" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=20 --set "checkpoint=$tmp/flipped.h5" \
  --set "run_dir=$tmp/f-flipped"
expect "--set with a quoted string value: the quotes are syntax" 0 -m "encoder from $pre/final.h5" -- \
  "${np1[@]}" finetune conf/finetune.cfg "${tiny[@]}" --set train.batch=20 --set train.epochs=1 \
  --set "checkpoint=\"$pre/final.h5\"" --set "run_dir=$tmp/f-quoted"

# bench/scaling.sh: a rerun into the same --out replaces its rows (one row per run folder),
# and the table splits collective time into own cost (xfer) and waiting.
sc=(bash bench/scaling.sh --ranks 1,2 --modes weak --per-rank 2 --global 4 --steps 1 --simclr "$simclr"
  --data "$tmp/sc-data" --out "$tmp/sc" --no-analysis)
expect "bench/scaling.sh smoke run" 0 -m "weak   p=2" -- "${sc[@]}"
expect "bench/scaling.sh rerun into the same --out" 0 -m "weak   p=2" -- "${sc[@]}"
if [[ $(grep -c '^weak' "$tmp/sc/runs.tsv") == 2 ]]; then ok "  ... runs.tsv keeps one row per run (2, not 4)"
else bad "scaling.sh rerun: runs.tsv rows" "$(cat "$tmp/sc/runs.tsv")"; fi
expect "analysis/scaling.py: xfer % and wait % columns" 0 -m "xfer %" -m "wait %" -- \
  "${PYTHON:-/usr/bin/python3}" analysis/scaling.py "$tmp/sc"

echo "test_cli.sh: $((SECONDS - t_start)) s"
echo "$passed passed, $failed failed"
((failed == 0))
