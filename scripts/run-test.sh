#!/usr/bin/env bash
# Builds (incrementally) and runs the tests whose names match a regex, the way
# scripts/test.sh runs them (loopback-only network namespace, test data under
# the build folder).
#   scripts/run-test.sh 'connect\.lines_both_ways'          one test, release build
#   scripts/run-test.sh 'Sdp' asan                          under ASan+UBSan
#   scripts/run-test.sh 'interop\.aiortc' release -j2        extra arguments go to ctest
# `ctest --test-dir build/release -N` lists every test name; `-L unit.<layer>`
# selects one layer's unit tests (pass it after the preset, with an empty regex).
set -euo pipefail
cd "$(dirname "$0")/.."
regex="${1?usage: scripts/run-test.sh REGEX [PRESET] [ctest arguments...]}"
preset="${2:-release}"
shift $(( $# >= 2 ? 2 : 1 ))
scripts/build.sh "$preset"
mkdir -p "build/$preset/test-data"
regex_args=()
[ -n "$regex" ] && regex_args=(-R "$regex")
XDG_DATA_HOME="$PWD/build/$preset/test-data" exec scripts/netns.sh \
  ctest --test-dir "build/$preset" --output-on-failure --no-tests=error "${regex_args[@]}" "$@"
