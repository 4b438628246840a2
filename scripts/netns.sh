#!/usr/bin/env bash
# Runs a command inside a fresh network namespace that has only loopback, so
# WebRTC stacks (which gather candidates on every interface) can only ever send
# to 127.0.0.1. Needs root (or an unprivileged user namespace).
set -euo pipefail
if [ "${RTCMESH_IN_NETNS:-}" = 1 ]; then exec "$@"; fi
if [ "$(id -u)" -eq 0 ]; then
  exec unshare --net -- env RTCMESH_IN_NETNS=1 sh -c 'ip link set lo up && exec "$@"' sh "$@"
else
  exec unshare --map-root-user --net -- env RTCMESH_IN_NETNS=1 sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
