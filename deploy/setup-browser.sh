#!/usr/bin/env bash
# Makes a fresh Debian 12 machine ready for the browser tests of the web UI
# (bash tests/browser/run.sh): Debian's chromium, Node.js and npm when missing (Debian's own
# packages), then the npm packages pinned by the lockfiles in web/ and tests/browser/.
# Nothing else is downloaded: playwright-core drives /usr/bin/chromium, it fetches no browser.
# Run as root (apt-get); idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[[ -x /usr/bin/chromium ]] || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
# Fonts for page text and the terminal (Debian's chromium only recommends them).
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || need+=(fonts-dejavu-core)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-browser: run as root to install ${need[*]}" >&2
    exit 1
  fi
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 18)); then
  echo "setup-browser: Node.js $(node --version) is too old; the tests need 18 or newer" >&2
  exit 1
fi

for dir in web tests/browser; do
  echo "== npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
echo "browser tests ready: $(/usr/bin/chromium --version 2>/dev/null), node $(node --version)"
