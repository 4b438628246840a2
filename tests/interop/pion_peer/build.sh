#!/bin/sh
# Builds the Pion interop peer offline, in GOPATH mode, against Debian's Go
# packages (golang-go, golang-github-pion-webrtc.v3-dev in /usr/share/gocode):
#
#   tests/interop/pion_peer/build.sh OUTDIR     -> OUTDIR/pion_peer
#
# No module download, no proxy, no network: GO111MODULE=off, GOPROXY=off,
# GOPATH=OUTDIR/pion_peer.gopath:/usr/share/gocode, GOCACHE inside OUTDIR.
# The source is copied into the private GOPATH next to a go.mod that is only
# there so that Go's "minimal module compatibility" resolves the /v3, /v2 import
# paths (github.com/pion/webrtc/v3 lives in .../pion/webrtc) in GOPATH mode.
# Fails (exit 1, with a message) when go or the Pion sources are missing.
set -eu

die() {
  echo "pion_peer/build.sh: FAIL: $*" >&2
  exit 1
}

[ $# -eq 1 ] || die "usage: build.sh OUTDIR"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
gocode=${RTCMESH_GOCODE:-/usr/share/gocode}

go=$(command -v go || true)
[ -n "$go" ] || [ ! -x /usr/lib/go/bin/go ] || go=/usr/lib/go/bin/go
[ -n "$go" ] || die "go not found (Debian: apt-get install golang-go)"
for pkg in github.com/pion/webrtc github.com/pion/dtls/v2 github.com/pion/sctp \
           github.com/pion/ice/v2 github.com/pion/datachannel; do
  [ -d "$gocode/src/$pkg" ] ||
    die "$gocode/src/$pkg is missing (Debian: apt-get install golang-github-pion-webrtc.v3-dev)"
done

gopath=$out/pion_peer.gopath
src=$gopath/src/rtcmesh.test/pion_peer
mkdir -p "$src"
cp "$here/main.go" "$src/main.go"
printf 'module rtcmesh.test/pion_peer\n\ngo 1.19\n' > "$src/go.mod"

cd "$src"
env GO111MODULE=off GOPATH="$gopath:$gocode" GOCACHE="$out/pion_peer.gocache" \
    GOPROXY=off GOFLAGS= GONOSUMDB= GOSUMDB=off GOTOOLCHAIN=local CGO_ENABLED=0 \
    "$go" build -trimpath -o "$out/pion_peer.tmp" . ||
  die "go build failed (GOPATH mode against $gocode)"
mv -f "$out/pion_peer.tmp" "$out/pion_peer"
