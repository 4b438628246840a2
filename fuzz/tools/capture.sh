#!/bin/sh
# Captures real SDP from aiortc, Chromium and Firefox into fuzz/corpus/sdp/ (and Chromium's
# trickled candidate strings into fuzz/corpus/candidate/). Usage: capture.sh [corpus_dir]
#
# Everything runs inside a fresh network namespace (needs root / CAP_SYS_ADMIN):
# loopback plus a veth pair whose both ends stay in the namespace, with a default
# route into it, so the stacks find a "real" interface to gather host candidates
# on (IPv4 192.168.77.10 and IPv6 fd00:77::10) but no packet can leave the machine.
# Re-capturing changes ids, ports and credentials: update the expectations in
# src/sdp/session_description_test.cpp (SdpRealWorld) to match.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../corpus}
mkdir -p "$out/sdp"
exec unshare --net sh -eu -c '
  ip link set lo up
  ip link add v0 type veth peer name v1
  ip addr add 192.168.77.10/24 dev v0
  ip -6 addr add fd00:77::10/64 dev v0 nodad
  ip link set v0 up
  ip link set v1 up
  ip route add default via 192.168.77.11 dev v0
  ip -6 route add default via fd00:77::11 dev v0
  node "$1/capture_chromium.mjs" "$2"
  node "$1/capture_firefox.mjs" "$2"
  /usr/bin/python3 "$1/capture_aiortc.py" "$2/sdp" "$2/sdp/chromium_offer.sdp"
' capture "$here" "$out"
