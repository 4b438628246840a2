#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run calls this script).
#   scripts/test.sh                 all stages
#   scripts/test.sh release tsan    only the named stages
# Stages: lint (.clang-format over every C++ file; clang-tidy on the parsers and
# the files with thread-safety annotations), release (every test), asan (every rtcmesh test under AddressSanitizer +
# UndefinedBehaviorSanitizer), tsan (the multi-threaded integration tests under
# ThreadSanitizer: in-process and multi-process integration tests), fuzz (each libFuzzer target for RTCMESH_FUZZ_SECONDS, default 20).
# Network tests run in a fresh network namespace that has only loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
((${#stages[@]})) || stages=(lint release asan tsan fuzz)

scripts/install-deps.sh

jobs=$(nproc)
run_ctest() {
  local preset=$1
  shift
  # Nodes started by the tests keep their keys and witness logs here, not in ~.
  rm -rf "build/$preset/test-data"
  mkdir -p "build/$preset/test-data"
  XDG_DATA_HOME="$PWD/build/$preset/test-data" scripts/netns.sh ctest --test-dir "build/$preset" --output-on-failure --no-tests=error -j "$jobs" "$@"
}

for stage in "${stages[@]}"; do
  echo "=== stage: $stage ==="
  start=$(date +%s)
  case "$stage" in
    lint)
      scripts/lint.sh
      ;;
    release)
      scripts/build.sh release
      run_ctest release
      ;;
    asan)
      scripts/build.sh asan
      ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}" \
      LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0" \
      UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        run_ctest asan -LE harness  # the harness self-checks run no rtcmesh code
      ;;
    tsan)
      scripts/build.sh tsan
      TSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/tsan.supp:halt_on_error=1:second_deadlock_stack=1" \
        run_ctest tsan -L integration
      ;;
    fuzz)
      # Only the fuzz targets (clang, libFuzzer); configure every time so the
      # fuzzing time follows RTCMESH_FUZZ_SECONDS.
      cmake --preset fuzz -Wno-dev -DRTCMESH_FUZZ_SECONDS="${RTCMESH_FUZZ_SECONDS:-20}" >/dev/null
      cmake --build build/fuzz --target fuzzers -j "$jobs"
      run_ctest fuzz -L fuzz
      ;;
    *)
      echo "unknown stage '$stage'" >&2
      exit 2
      ;;
  esac
  echo "=== stage $stage passed in $(($(date +%s) - start)) s ==="
done
