#!/usr/bin/env bash
# The main job: install what is needed, build, and run two local peers that
# connect and exchange data (scripts/demo.py), inside a loopback-only network
# namespace when we can make one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
if scripts/netns.sh true 2>/dev/null; then
  exec scripts/netns.sh python3 scripts/demo.py build/release/apps/rtcmesh/rtcmesh
fi
exec python3 scripts/demo.py build/release/apps/rtcmesh/rtcmesh
