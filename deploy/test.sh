#!/usr/bin/env bash
# Runs every test of v6lab on this machine, set-up included: installs what is missing (Debian
# packages), starts the Docker engine, builds v6lab and the lab image, then runs the unit tier and
# the real-engine tier. Run as root (labs need the Docker engine and netlink).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
if ! command -v cargo >/dev/null; then
  echo "v6lab test: cargo is missing; install a Rust toolchain (1.85 or newer), e.g. with rustup" >&2
  exit 1
fi

echo "== build"
cargo build --workspace --all-targets --locked

echo "== lab image (built once from Debian packages, shared by every real-engine test)"
./target/debug/v6lab images build

echo "== tests: unit tier and real-engine tier"
# Labs of different tests run concurrently; each test names its labs uniquely.
cargo test --workspace --locked -- --test-threads 4

echo "== tests: the web UI in a real browser (headless chromium)"
bash tests/browser/run.sh
