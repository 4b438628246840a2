#!/usr/bin/env bash
# The main job: a local swarm. Installs what is needed, builds, then
#  - on a terminal: starts a hub with the web page on http://127.0.0.1:8000/ and a
#    native peer on this terminal (open the page in two tabs to join it);
#  - without a terminal (CI, pipes) or with --check: a hub and three native peers
#    form a mesh, chat and send a file, inside a loopback-only network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
bin=build/release/apps/rtcmesh/rtcmesh
if [ "${1:-}" = "--check" ] || [ -n "${CI:-}" ] || ! [ -t 0 ]; then
  if scripts/netns.sh true 2>/dev/null; then
    exec scripts/netns.sh /usr/bin/python3 scripts/demo.py "$bin" --check
  fi
  exec /usr/bin/python3 scripts/demo.py "$bin" --check
fi
exec /usr/bin/python3 scripts/demo.py "$bin"
