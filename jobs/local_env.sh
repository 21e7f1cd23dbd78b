# jobs/local_env.sh: the common set-up of the local job scripts (pipeline.sh,
# label_efficiency.sh), sourced after they parsed their options into `np` (ranks):
# SIMCLR (default build/simclr; a bare name is looked up in PATH), PYTHON (default
# /usr/bin/python3, which sees Debian's matplotlib), the mpirun command in array `mpirun`
# (MPIRUN, default "mpirun --allow-run-as-root --oversubscribe"), OMP_NUM_THREADS and
# BLIS_NUM_THREADS (default max(1, cores / np)); then cd to the repository root `root`.
# Needs `root` and `die CODE MESSAGE` defined by the caller.
SIMCLR=${SIMCLR:-$root/build/simclr}
[[ $SIMCLR != */* ]] || SIMCLR=$(realpath -m "$SIMCLR")  # keep bare command names for PATH
PYTHON=${PYTHON:-/usr/bin/python3}
read -ra mpirun <<< "${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
threads=$(( $(nproc) / np )); ((threads >= 1)) || threads=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads} BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-$threads}
cd "$root" || die 2 "cannot enter $root"
command -v "$SIMCLR" > /dev/null || die 2 "$SIMCLR not found: run make first (or set SIMCLR)"
