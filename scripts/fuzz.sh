#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, libraries instrumented for coverage) in
# build-fuzz/ and runs each one for a while. Fails if any target finds a crash, leak, timeout or
# out-of-memory; the reproducer is left in build-fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh [seconds per target, default 60] [target...]
# Needs clang++ and its runtimes (Debian packages `clang`, `libclang-rt-14-dev`; scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_engineio_payload fuzz_socketio_decoder fuzz_ws_frames)
dir=build-fuzz

command -v clang++ >/dev/null || { echo "clang++ not found (apt-get install clang)" >&2; exit 2; }
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -G Ninja -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCHAT_SANITIZE=ON -DCHAT_BUILD_TESTS=ON -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link"
fi
ninja -C "$dir" "${targets[@]}"

status=0
for t in "${targets[@]}"; do
  # Work on a copy of the seeds so that fuzzing never writes into the committed corpus.
  work="$dir/corpus/$t"
  artifacts="$dir/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  cp -n tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  dict=()
  case "$t" in
    fuzz_engineio_payload) dict=(-dict=tests/fuzz/engineio.dict) ;;
    fuzz_socketio_decoder) dict=(-dict=tests/fuzz/socketio.dict) ;;
  esac
  echo "== $t: ${seconds}s"
  if ! "$dir/fuzz/$t" "$work" "${dict[@]}" -max_total_time="$seconds" -max_len=4096 \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/"; then
    echo "!! $t failed; reproducer(s) in $artifacts/" >&2
    status=1
  fi
done
exit $status
