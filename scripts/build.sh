#!/usr/bin/env bash
# Builds chatd. Usage: scripts/build.sh [release|asan] [ninja targets...]
#   release (default): build/      RelWithDebInfo, tests included
#   asan:              build-asan/ Debug + AddressSanitizer/UndefinedBehaviorSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
shift || true
"$(dirname "$0")/install-deps.sh"
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DCHAT_SANITIZE=ON) ;;
  *) echo "usage: $0 [release|asan] [targets...]" >&2; exit 2 ;;
esac
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
# Relative paths in the cache keys: a fresh clone elsewhere (as CI makes) still hits the cache.
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
if [ ! -f "$dir/build.ninja" ]; then
  cmake -G Ninja -S . -B "$dir" "${flags[@]}" -DCHAT_BUILD_TESTS=ON
fi
cmake --build "$dir" -- "$@"
