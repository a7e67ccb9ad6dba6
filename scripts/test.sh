#!/usr/bin/env bash
# Builds everything and runs every test: unit + integration tests on the optimised build, each
# fuzz target for CHAT_FUZZ_SECONDS (default 60; 0 skips), then the unit + integration tests
# again under AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero on any failure.
# The cluster-mode tests (CTest label "services") start Redis, Kafka, FerretDB, nginx and
# Prometheus themselves; scripts/install-services.sh installs them first (idempotent, cached in
# ~/.cache/chatd). CHAT_SKIP_ASAN=1 skips the sanitizer pass (quicker local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/build.sh release
scripts/build-web.sh
scripts/install-services.sh
(cd build && ctest --output-on-failure -j "$jobs" --timeout 600)
fuzz_seconds=${CHAT_FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" != 0 ]; then
  scripts/fuzz.sh "$fuzz_seconds"
fi
if [ "${CHAT_SKIP_ASAN:-0}" != 1 ]; then
  scripts/build.sh asan
  # detect_leaks: the integration tests also check that chatd exits cleanly.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  (cd build-asan && ctest --output-on-failure -j "$jobs" --timeout 900)
fi
