#!/usr/bin/env bash
# Installs everything rtcmesh needs on a fresh Debian 12 machine: the build
# toolchain and libraries, the third-party test peers (Chromium, Firefox, aiortc,
# Pion's Go sources, coturn)
# and the npm packages of the browser tests. Idempotent; skips apt when all
# packages are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libnice-dev libglib2.0-dev libusrsctp-dev libssl-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev
  libboost1.81-dev prometheus-cpp-dev python3-websockets
  python3 python3-aiortc chromium coturn nftables iproute2 util-linux
  firefox-esr golang-go golang-github-pion-webrtc.v3-dev
)
# Node.js may come from elsewhere on the machine (the image has its own); only
# take Debian's when there is none.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Browser tests drive Debian's /usr/bin/chromium (playwright-core) and
# /usr/bin/firefox-esr (puppeteer-core over WebDriver BiDi); never a download.
# node-datachannel brings libdatachannel prebuilt; werift is pure TypeScript.
if [ ! -d node_modules/puppeteer-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
