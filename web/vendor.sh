#!/usr/bin/env bash
# Copies the browser files of the pinned front-end packages (web/package-lock.json) into
# web/vendor/, which is committed and compiled into the v6lab binary (include_bytes!): building
# v6lab needs neither npm nor a network, and pages never load anything from elsewhere.
#
#   bash web/vendor.sh          # npm ci, then copy (after changing a version in package.json,
#                               # run `npm install` in web/ first so that the lockfile follows)
#   bash web/vendor.sh --check  # npm ci, then fail if web/vendor/ differs from the packages
set -euo pipefail
cd "$(dirname "$0")"

check=false
[[ "${1:-}" == "--check" ]] && check=true

if ! command -v npm >/dev/null; then
  echo "web/vendor.sh: npm is missing; run bash deploy/setup-browser.sh (or apt-get install npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error

out=vendor
if $check; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
# source in node_modules, name in web/vendor/
while read -r src dst; do
  # Drop the source-map comment: the maps are not shipped.
  sed '/^\/\/# sourceMappingURL=/d' "node_modules/$src" >"$out/$dst"
done <<'LIST'
@xterm/xterm/lib/xterm.mjs xterm.mjs
@xterm/xterm/css/xterm.css xterm.css
@xterm/xterm/LICENSE LICENSE.xterm
@xterm/addon-fit/lib/addon-fit.mjs addon-fit.mjs
@xterm/addon-fit/LICENSE LICENSE.addon-fit
LIST

if $check; then
  if ! diff -r "$out" vendor >/dev/null; then
    diff -rq "$out" vendor >&2 || true
    echo "web/vendor/ differs from the packages pinned in web/package-lock.json: run bash web/vendor.sh" >&2
    exit 1
  fi
  echo "web/vendor/ matches the packages pinned in web/package-lock.json"
fi
