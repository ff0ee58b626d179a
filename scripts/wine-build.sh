#!/bin/sh
# Builds the Windows side with MinGW-w64 into build-win/ and runs its tests
# under Wine, with one Wine prefix per build tree (build-win/wineprefix).
#
#   scripts/wine-build.sh            configure, build, ctest
#   scripts/wine-build.sh --cells    also run every Windows cell once and write
#                                    build-win/cells.jsonl (one outcome a line)
#
# Environment: BUILD_DIR (default <repo>/build-win), SIGPROBE_WERROR (ON).
# The script starts one wineserver for the batch (`wineserver -p`) and stops
# it by its prefix (`wineserver -k`) on every exit path; the probes' Job
# Objects already end every probe with its runner. Nothing is killed by name.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$repo/build-win}
run_cells=0
for arg in "$@"; do
  case $arg in
    --cells) run_cells=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "wine-build.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

# Address-space randomisation off for the whole Wine tree, which inherits it:
# with it on, a Wine process now and then dies at start (Debian's Wine has no
# preloader; src/sigprobe/runners/winelaunch.py says why).
if [ -z "${SP_WINE_NO_ASLR:-}" ] && command -v setarch >/dev/null 2>&1; then
  SP_WINE_NO_ASLR=1 exec setarch "$(uname -m)" -R "$0" "$@"
fi

for tool in x86_64-w64-mingw32-gcc wine wineserver cmake ctest; do
  command -v "$tool" >/dev/null 2>&1 || { echo "wine-build.sh: $tool not found (apt-get install gcc-mingw-w64-x86-64 wine wine64 cmake)" >&2; exit 1; }
done

cmake -S "$repo" -B "$build" \
  -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchain-mingw64.cmake" \
  -DSIGPROBE_TESTS=OFF -DSIGPROBE_WIN_TESTS=ON -DSIGPROBE_WERROR="${SIGPROBE_WERROR:-ON}"
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)"

WINEPREFIX=$build/wineprefix
WINEDEBUG=-all
export WINEPREFIX WINEDEBUG

stop_wineserver() {
  # -k ends the wineserver of this prefix (and whatever still runs in it).
  wineserver -k 2>/dev/null || true
  wineserver -w 2>/dev/null || true
}
trap stop_wineserver EXIT
trap 'exit 130' INT TERM

if [ ! -f "$WINEPREFIX/system.reg" ]; then
  echo "wine-build.sh: creating the Wine prefix $WINEPREFIX (about 8 s, once per build tree)"
  # wineboot's own status is not reliable headless (it can fail after the
  # prefix is made); the prefix's registry is what tells.
  wineboot -i >/dev/null 2>&1 || true
  wineserver -w 2>/dev/null || true
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "wine-build.sh: could not create the Wine prefix $WINEPREFIX (wineboot -i)" >&2
    exit 1
  fi
fi
wineserver -p
# The first Wine process of a server starts Wine's background services
# (services.exe, winedevice, explorer), which inherit its stdout and keep it
# open for as long as the server lives: ctest would wait on the first test's
# output until its timeout. Start them here with stdio on /dev/null.
wine "$build/sigprobe-run.exe" --list </dev/null >/dev/null 2>&1

status=0
(cd "$build" && ctest --output-on-failure) || status=$?

if [ "$run_cells" = 1 ] && [ "$status" = 0 ]; then
  out=$build/cells.jsonl
  : > "$out"
  start=$(date +%s.%N)
  wine "$build/sigprobe-run.exe" --list | tr -d '\r' | while read -r cell; do
    wine "$build/sigprobe-run.exe" "$cell" | tr -d '\r' >> "$out"
  done
  end=$(date +%s.%N)
  echo "wine-build.sh: $(wc -l < "$out") cells in $(echo "$end - $start" | bc) s -> $out"
fi
exit $status
