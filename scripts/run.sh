#!/usr/bin/env bash
# Builds chatd and the web client and runs them in the embedded default (SQLite under ./data, no external service)
# on http://localhost:5000. Extra arguments go to chatd (see build/bin/chatd --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release chatd
scripts/build-web.sh
exec build/bin/chatd --web-dir web/dist "$@"
