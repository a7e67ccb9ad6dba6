#!/usr/bin/env bash
# Builds chatd and runs it in the embedded default (SQLite under ./data, no external service)
# on http://localhost:5000. Extra arguments go to chatd (see build/bin/chatd --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release chatd
exec build/bin/chatd "$@"
