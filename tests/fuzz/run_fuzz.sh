#!/usr/bin/env bash
# run_fuzz.sh SECONDS NAME...: runs each libFuzzer harness $FUZZ_BUILD/NAME (make fuzz
# builds them) for SECONDS, starting from a copy of tests/fuzz/corpus/NAME (new inputs go
# to $FUZZ_BUILD/corpus/NAME; the committed seeds are not touched). Prints one summary line
# per harness (runs, exec/s, coverage, corpus size) and exits 1 when any harness found a
# crash, a sanitizer report, a timeout or an out-of-memory (the input is kept in
# $FUZZ_BUILD/artifacts/, the log in $FUZZ_BUILD/NAME.log). Sanitizer reports of forked
# child processes (the import's decoder children) are listed too, but are not failures:
# the harness saw the child's failure handled as a refusal.
#
# ASAN_OPTIONS=detect_leaks=0: a refused input leaves the memory its fatal() exit would
# have freed (the harnesses longjmp out of fatal()); leaks are not what is fuzzed here.
# -close_fd_mask=3: the code under test prints a message per refused input; libFuzzer
# still prints its own and the sanitizers' reports.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
secs=${1:?usage: run_fuzz.sh SECONDS NAME...}
shift
build=${FUZZ_BUILD:-build-fuzz}
mkdir -p "$build/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
found=0
root=$PWD
for name in "$@"; do
  work=$root/$build/corpus/$name seeds=$root/tests/fuzz/corpus/$name log=$root/$build/$name.log
  [[ $name == fuzz_decode ]] && seeds=$root/tests/fuzz/corpus/fuzz_import # the same images
  # The harness runs in a scratch folder (also its TMPDIR, for its temporary files): a
  # sanitizer report of a forked child (the import decodes in a child process) cannot use
  # libFuzzer's stderr and is written to ./.PID there.
  scratch=$root/$build/scratch-$name
  rm -rf "$scratch" && mkdir -p "$work" "$scratch"
  (cd "$scratch" && TMPDIR=$scratch "$root/$build/$name" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
    -seed="${FUZZ_SEED:-1}" -close_fd_mask=3 -detect_leaks=0 -artifact_prefix="$root/$build/artifacts/$name-" -print_final_stats=1 \
    "$work" "$seeds") > "$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' "$log" | tail -1)
  if ((rc == 0)); then
    printf 'ok   %-12s %ss: %s runs, %s exec/s, %s\n' "$name" "$secs" "${runs:-?}" "${speed:-?}" "$cov"
  else
    found=1
    printf 'FAIL %-12s exit %d after %s runs (log %s):\n' "$name" "$rc" "${runs:-?}" "$log"
    grep -E 'ERROR: |SUMMARY: |runtime error|Test unit written|==[0-9]+==' "$log" | head -12 | sed 's/^/     | /'
  fi
  # sanitizer reports of child processes: contained by the harness (a refusal), listed
  reports=$(grep -l 'ERROR: ' "$scratch"/.[0-9]* 2> /dev/null | wc -l)
  warnings=$(grep -L 'ERROR: ' "$scratch"/.[0-9]* 2> /dev/null | wc -l)
  if ((reports > 0)); then
    echo "     $reports sanitizer error report(s) from child processes (contained: the parent refused the input), in $scratch:"
    cat "$scratch"/.[0-9]* | grep -hE '^SUMMARY:' | sed 's/ *(BuildId[^)]*)//g; s/^/       /' | sort | uniq -c | sort -rn | head -8
  fi
  hdf5=$(find "$scratch" -maxdepth 1 -name 'hdf5-bug-*.h5' | wc -l)
  if ((hdf5 > 0)); then
    echo "     $hdf5 input(s) on which HDF5 itself faulted (library bug, not a failure): $scratch/hdf5-bug-*.h5"
  fi
  if ((warnings > 0)); then
    echo "     $warnings sanitizer warning(s) from child processes, e.g.: $(grep -h WARNING "$scratch"/.[0-9]* | head -1 | sed 's/^==[0-9]*==//')"
  fi
done
exit $found
