#!/usr/bin/env bash
# Submit the whole chain to Slurm and print the job ids:
#   pretrain -> linear, finetune;  baseline (independent);  each -> its eval;  evals -> compare
# Usage: jobs/slurm/submit_all.sh [--set key=value ...]   (--set goes to every phase)
# Environment (passed on to the jobs): RUNS (default runs/stl10), DATA (data.dir), SIMCLR.
# A job stopped near its time limit requeues itself under the same id, so the jobs
# waiting on it (--dependency=afterok) keep waiting. The report job runs once every
# eval has ended, even if one failed (afterany): compare.py reports what it finds.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUNS=${RUNS:-runs/stl10}
mkdir -p logs  # Slurm does not create the --output folder

submit() {  # submit [SBATCH_OPTIONS] SCRIPT [ARGS]: print the new job's id
  local id
  id=$(sbatch --parsable "$@")
  echo "${id%%;*}"  # --parsable prints "id" or "id;cluster"
}
after() { echo "--dependency=afterok:$1"; }

pre=$(submit jobs/slurm/pretrain.sbatch "$@")
lin=$(submit "$(after "$pre")" jobs/slurm/linear.sbatch "$@")
fin=$(submit "$(after "$pre")" jobs/slurm/finetune.sbatch "$@")
base=$(submit jobs/slurm/baseline.sbatch "$@")
ev_lin=$(submit "$(after "$lin")" --job-name=simclr-eval-linear jobs/slurm/eval.sbatch linear "$@")
ev_fin=$(submit "$(after "$fin")" --job-name=simclr-eval-finetune jobs/slurm/eval.sbatch finetune "$@")
ev_base=$(submit "$(after "$base")" --job-name=simclr-eval-baseline jobs/slurm/eval.sbatch baseline "$@")
report=$(submit --dependency="afterany:$ev_lin:$ev_fin:$ev_base" --job-name=simclr-compare \
  --ntasks=1 --cpus-per-task=1 --time=00:10:00 --output=logs/%x-%j.out \
  --wrap="/usr/bin/python3 analysis/compare.py $(printf %q "$RUNS")")

printf '%-14s %s\n' pretrain "$pre" linear "$lin" finetune "$fin" baseline "$base" \
  eval-linear "$ev_lin" eval-finetune "$ev_fin" eval-baseline "$ev_base" compare "$report"
echo "results: $RUNS/report/report.html  (logs in logs/; watch with: squeue -u \$USER)"
