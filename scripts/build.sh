#!/usr/bin/env bash
# Configures (once) and builds one CMake preset: debug, release, asan, tsan, fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
shift || true
if [ ! -f "build/$preset/build.ninja" ]; then
  cmake --preset "$preset" -Wno-dev "$@" >/dev/null
fi
cmake --build "build/$preset" -j "$(nproc)"
