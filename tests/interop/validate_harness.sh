#!/bin/sh
# Runs the interop harness against itself (aiortc_peer.py and chromium_peer.mjs
# in every pairing, every scenario and channel mode), each pair in its own
# loopback-only network namespace. No rtcmesh needed.
#
#   tests/interop/validate_harness.sh [quick]
#
# Prints one line per pair with its time and a closing "N passed, M failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
A="$py $here/aiortc_peer.py connect --loopback"
C="node $here/chromium_peer.mjs connect --loopback"
pass=0
fail=0

run() { # name scenario offerer answerer [pair options...]   (sh has no locals: r_*)
  r_name=$1 r_scenario=$2 r_off=$3 r_ans=$4
  shift 4
  r_start=$(date +%s%N)
  if r_out=$("$py" "$here/pair.py" --isolate --timeout 45 --scenario "$r_scenario" \
      --offerer "$r_off" --answerer "$r_ans" "$@" 2>&1); then
    pass=$((pass + 1)); r_verdict=PASS
  else
    fail=$((fail + 1)); r_verdict=FAIL
  fi
  r_ms=$(( ($(date +%s%N) - r_start) / 1000000 ))
  r_res=$(printf '%s\n' "$r_out" | sed -n 's/^pair: .* selftest result: //p')
  printf '%s %-58s %3d.%02ds %s\n' "$r_verdict" "$r_name" $((r_ms / 1000)) $((r_ms % 1000 / 10)) "$r_res"
  if [ "$r_verdict" = FAIL ]; then printf '%s\n' "$r_out" | sed 's/^/    /'; fi
}

for pairing in "aiortc-aiortc:A:A" "aiortc-chromium:A:C" "chromium-aiortc:C:A" "chromium-chromium:C:C"; do
  name=${pairing%%:*}
  o=$(echo "$pairing" | cut -d: -f2)
  a=$(echo "$pairing" | cut -d: -f3)
  eval "off=\$$o ans=\$$a"
  checked=8
  [ "$o" = A ] || [ "$a" = A ] && checked=6
  run "$name lines" lines "$off --offer" "$ans --answer"
  run "$name close-by-offerer" close-by-offerer "$off --offer" "$ans --answer"
  run "$name close-by-answerer" close-by-answerer "$off --offer" "$ans --answer"
  run "$name selftest offerer+close-after" selftest "$off --offer --selftest --close-after" \
    "$ans --answer --echo" --expect-checked $checked
  run "$name selftest answerer+remote-close" selftest "$off --offer --echo" \
    "$ans --answer --selftest --expect-remote-close" --expect-checked $checked
  [ "${1:-}" = quick ] && continue
  for mode in "--unordered" "--max-retransmits 0" "--max-packet-life-time 100" "--negotiated-id 7" \
      "--negotiated-id 7 --unordered --max-retransmits 0"; do
    run "$name selftest $mode" selftest "$off --offer --selftest $mode" "$ans --answer --echo $mode" \
      --expect-checked $checked
  done
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
