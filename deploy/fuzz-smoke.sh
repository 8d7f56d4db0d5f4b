#!/usr/bin/env bash
# A short fuzzing run of the topology parser and planner (libFuzzer through cargo-fuzz), seeded
# with the sample topologies and the error fixtures. SECONDS_TO_RUN (default 60) bounds it.
set -euo pipefail
cd "$(dirname "$0")/../crates/v6lab-core"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# cargo-fuzz needs nightly features (sanitizers); the stable toolchain allows them this way.
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/plan
# New inputs go to the first (scratch) corpus; the samples and error fixtures seed it.
cargo fuzz run plan fuzz/corpus/plan ../../topologies ../../tests/fixtures/errors -- -max_total_time="${SECONDS_TO_RUN:-60}" -rss_limit_mb=2048
