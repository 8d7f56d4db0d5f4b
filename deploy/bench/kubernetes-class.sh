#!/usr/bin/env bash
# Benchmark (prints figures; not a test): the same class of N NAT64/DNS64 labs (default 30) on
# this host's Docker engine, then on the test cluster (two kind-style nodes on this machine,
# deploy/kubernetes/test-cluster.sh), in one run: time until every lab is ready, until every
# node is gone, and the controller's memory, side by side.
set -euo pipefail
cd "$(dirname "$0")/../.."
for runtime in docker kubernetes; do
  RUNTIME=$runtime bash deploy/bench/class.sh
done
