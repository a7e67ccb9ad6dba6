#!/usr/bin/env bash
# Installs the Debian packages chatd needs to build and test (clang and its sanitizer/libFuzzer
# runtimes, libclang-rt-14-dev: for the fuzz targets; a new machine may have clang without them).
# Idempotent; runs as root or via sudo.
set -euo pipefail
PKGS=(build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libhiredis-dev librdkafka-dev libmongoc-dev libsqlite3-dev prometheus-cpp-dev
  libspdlog-dev libfmt-dev libsodium-dev libcrypt-dev libssl-dev libgtest-dev
  zlib1g-dev libbrotli-dev libjemalloc-dev clang libclang-rt-14-dev chromium nodejs npm
  python3 procps)  # the bench scripts and their tests (bench_sched_slice), the service scripts
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian (e.g. nodesource or a preinstalled toolchain): accept them.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi
