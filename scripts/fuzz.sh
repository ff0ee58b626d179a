#!/bin/sh
# Longer fuzzing campaigns than the test suite's bounded runs.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 300 s; event cell labels)
# Builds the libFuzzer targets into build/ (needs clang and, on Debian,
# libclang-rt-14-dev), runs each for the time given on all cores, keeps new
# inputs in build/tests/fuzz/corpus-<target>/ and writes crashes to
# build/tests/fuzz/crashes/. Worth keeping: copy minimized inputs that reach
# new code into tests/fuzz/corpus/<target>/.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SIGPROBE_BUILD_DIR:-$root/build}
secs=${1:-300}
[ $# -gt 0 ] && shift
targets=${*:-event cell labels}
case $secs in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$secs'" >&2; exit 2 ;; esac
[ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" >/dev/null
jobs=$(nproc 2>/dev/null || echo 2)
status=0
for t in $targets; do
  cmake --build "$build" --target "fuzz_${t}_build" >/dev/null || {
    echo "fuzz.sh: cannot build fuzz_$t (is clang with libFuzzer installed?)" >&2; exit 2; }
  exe=$build/tests/fuzz/fuzz_$t
  work=$build/tests/fuzz/corpus-$t
  crashes=$build/tests/fuzz/crashes/$t
  mkdir -p "$work" "$crashes"
  echo "fuzz.sh: fuzz_$t for $secs s on $jobs cores" >&2
  "$exe" -max_total_time="$secs" -max_len=8192 -timeout=10 -fork="$jobs" -ignore_crashes=0 \
    -artifact_prefix="$crashes/" -print_final_stats=1 "$work" "$root/tests/fuzz/corpus/$t" || status=1
done
[ $status -eq 0 ] && echo "fuzz.sh: no crash" >&2 || echo "fuzz.sh: crashes in $build/tests/fuzz/crashes/" >&2
exit $status
