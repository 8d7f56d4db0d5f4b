#!/usr/bin/env bash
# Browser tests of the web UI: headless Debian chromium driven by playwright-core, run by node's
# test runner against a real `v6lab serve` (own port and state directory) and the Docker engine.
# Installs what is missing first (deploy/setup-browser.sh). Screenshots: .artifacts/screenshots/.
# Run as root from anywhere: bash tests/browser/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

bash deploy/setup-browser.sh
bash web/vendor.sh --check
cargo build --workspace --all-targets --locked
./target/debug/v6lab images build
node --test tests/browser/
