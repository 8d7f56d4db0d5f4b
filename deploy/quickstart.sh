#!/usr/bin/env bash
# From a fresh machine to a running NAT64/DNS64 lab: set-up, build, lab image, `v6lab up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
cargo build --release --locked --bin v6lab
install -m 0755 target/release/v6lab /usr/local/bin/v6lab
v6lab down nat64-dns64 --quiet
v6lab up topologies/nat64-dns64.yaml
