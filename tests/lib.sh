# tests/lib.sh: the common part of the shell tests (sourced by test_cli.sh and test_mpi.sh
# after `cd` to the repository root, with NAME set to the test's short name): the
# program, the mpirun command, a temporary folder removed at exit, and the ok/bad counters
# whose totals each test prints as "N passed, N failed".
build=${BUILD:-build}
simclr=$build/simclr
export SIMCLR=$PWD/$simclr  # the job scripts (pipeline.sh, recipes.sh...) run the same build (asan, ubsan)
read -ra mpirun <<< "${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
# Under make asan: Open MPI's own allocations (MCA components, unloaded at exit) read as
# leaks and would turn every successful run into exit 1; memory errors are still caught.
export ASAN_OPTIONS=${ASAN_OPTIONS-detect_leaks=0}
[[ -x $simclr ]] || { echo "test_$NAME.sh: $simclr not built (make)"; echo "0 passed, 1 failed"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/simclr-$NAME-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 t_start=$SECONDS
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; [[ $# -lt 2 ]] || sed 's/^/     | /' <<< "$2" | tail -30; }
