#!/usr/bin/env bash
# Builds the web client into web/dist (npm ci only when the lockfile changed since the last one).
set -euo pipefail
cd "$(dirname "$0")/../web"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build
