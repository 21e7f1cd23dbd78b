#!/usr/bin/env bash
# Runs the cmocka test programs named on the command line (from $BUILD, default build/),
# then prints one summary line "N passed, N failed" over all of their tests.
set -uo pipefail
build=${BUILD:-build}
passed=0 failed=0
for t in "$@"; do
  echo "==== $t"
  out=$("$build/$t" 2>&1); rc=$?
  echo "$out"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<< "$out" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<< "$out" | tail -1)
  passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); echo "$t exited $rc"; fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
