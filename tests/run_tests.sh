#!/usr/bin/env bash
# Runs the tests named on the command line, then prints ONE summary line "N passed, N failed"
# over all of them. A name ending in .sh is a shell test in tests/ that prints its own
# "N passed, N failed" line; any other name is a cmocka program in $BUILD (default build/).
set -uo pipefail
build=${BUILD:-build}
passed=0 failed=0
for t in "$@"; do
  echo "==== $t"
  if [[ $t == *.sh ]]; then cmd=(tests/"$t"); else cmd=("$build/$t"); fi
  out=$(BUILD=$build "${cmd[@]}" 2>&1); rc=$?
  echo "$out"
  if [[ $t == *.sh ]]; then
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<< "$out" | tail -1)
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  else
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<< "$out" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<< "$out" | tail -1)
  fi
  passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then failed=$((failed + 1)); echo "$t exited $rc"; fi
done
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
