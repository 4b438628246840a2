#!/usr/bin/env bash
# The `lint` stage of scripts/test.sh: the C++ format (.clang-format) and
# clang-tidy (.clang-tidy) on the layers that parse untrusted bytes and on the
# files whose mutexes carry Clang thread-safety annotations (-Wthread-safety).
# Uses build/release's compile_commands.json (configured if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/check-format.sh
# (Re)configure: the compile database and the layers' include views must match
# this tree; nothing is built.
cmake --preset release -Wno-dev >/dev/null
# Parsers of untrusted bytes (they are also fuzzed and built with -Wconversion).
files=(src/sdp/session_description.cpp src/sdp/candidate.cpp src/dcep/dcep.cpp
       src/hub/ws_codec.cpp src/hub/message.cpp src/base/base64.cpp src/base/crc32c.cpp
       src/witness/canonical_json.cpp src/witness/format.cpp src/witness/fast_record.cpp
       src/witness/verifier.cpp src/witness/merkle.cpp)
# Files with annotated mutexes (base/thread_annotations.hpp).
# A header that uses them is checked through its .cpp.
while read -r f; do
  f="${f%.hpp}.cpp"
  [ -f "$f" ] && files+=("$f")
done < <(git grep -l -e 'base::Mutex' -e 'RTCMESH_GUARDED_BY' -- 'src/*.[ch]pp' 'apps/*.[ch]pp' |
         grep -v thread_annotations.hpp || true)
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 1 \
  clang-tidy -p build/release --quiet --extra-arg=-Wno-unknown-warning-option \
             --extra-arg=-Wthread-safety >"$log" 2>&1 || status=$?
grep -v ' warnings\? generated\.$' "$log" || true
if ((status != 0)); then
  echo "clang-tidy: findings above (.clang-tidy)" >&2
  exit 1
fi
echo "clang-tidy: ${#files[@]} files clean"
