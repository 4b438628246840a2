#!/usr/bin/env bash
# The `lint` stage of scripts/test.sh: the C++ format (.clang-format) and
# clang-tidy (.clang-tidy) on the layers that parse untrusted bytes and on the
# files whose mutexes carry Clang thread-safety annotations (-Wthread-safety).
# Uses build/release's compile_commands.json (configured if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/check-format.sh
if [ ! -f build/release/compile_commands.json ]; then
  cmake --preset release -Wno-dev >/dev/null
fi
# Parsers of untrusted bytes (they are also fuzzed and built with -Wconversion).
files=(src/sdp/session_description.cpp src/sdp/candidate.cpp src/dcep/dcep.cpp
       src/hub/ws_codec.cpp src/hub/message.cpp src/base/base64.cpp src/base/crc32c.cpp
       src/witness/canonical_json.cpp src/witness/format.cpp src/witness/fast_record.cpp
       src/witness/verifier.cpp src/witness/merkle.cpp)
# Files with annotated mutexes (base/thread_annotations.hpp).
mapfile -t annotated < <(git grep -l 'thread_annotations.hpp' -- 'src/*.cpp' 'apps/*.cpp' || true)
files+=("${annotated[@]}")
printf '%s\n' "${files[@]}" | sort -u | xargs -P "$(nproc)" -n 1 \
  clang-tidy -p build/release --quiet --extra-arg=-Wno-unknown-warning-option \
             --extra-arg=-Wthread-safety
echo "clang-tidy: ${#files[@]} files clean"
