#!/usr/bin/env bash
# Runs every test of v6lab on this machine, set-up included: installs what is missing (Debian
# packages), starts the Docker engine, builds v6lab and the lab image, then runs each tier: unit,
# real-engine, browser, Kubernetes (on a test cluster it builds once and caches). Every tier runs even when an earlier one fails; the command exits non-zero
# if any failed, and prints a summary with each tier's time. Run as root (labs need the Docker
# engine and netlink).
set -uo pipefail
cd "$(dirname "$0")/.."

set -e
bash deploy/setup.sh
if ! command -v cargo >/dev/null; then
  echo "v6lab test: cargo is missing; install a Rust toolchain (1.85 or newer), e.g. with rustup" >&2
  exit 1
fi

echo "== build"
cargo build --workspace --all-targets --locked

echo "== lab image (built once from Debian packages, shared by every real-engine test)"
./target/debug/v6lab images build
set +e

failed=()
summary=()
tier() {
  local name=$1
  shift
  echo "== tests: $name"
  local start=$SECONDS
  "$@"
  local rc=$?
  local took=$((SECONDS - start))
  if [ $rc -eq 0 ]; then
    summary+=("ok      $name (${took}s)")
  else
    summary+=("FAILED  $name (${took}s, exit $rc)")
    failed+=("$name")
  fi
}

# Every tier selects with --workspace, so dependencies keep the features of the build above and
# nothing is compiled twice. The unit tier needs nothing but the source tree.
tier "unit" cargo test --workspace --locked --lib --bins --no-fail-fast
# Integration tests: the core's (golden plans, error fixtures, properties; pure) and the
# real-engine ones (runtime, labs, exercises, controller, SSH, adversarial). Labs of different
# tests run concurrently; each test names its labs uniquely.
tier "integration and real engine" \
  cargo test --workspace --locked --no-fail-fast --test '*' -- --test-threads 4
tier "browser (headless chromium)" bash tests/browser/run.sh
# The Kubernetes runtime on a real two-node cluster (deploy/kubernetes/test-cluster.sh: built
# once from Debian's source package and cached in /var/cache/v6lab, then up in about a minute).
# A cluster that was not running before is taken down again after.
kubernetes_tier() {
  local was_up=0 rc
  bash deploy/kubernetes/test-cluster.sh status >/dev/null 2>&1 && was_up=1
  bash deploy/kubernetes/test-cluster.sh up >/dev/null || return 1
  /var/lib/v6lab/kubernetes/kubectl apply -f deploy/kubernetes/crd.yaml >/dev/null || return 1
  KUBECONFIG=/var/lib/v6lab/kubernetes/admin.kubeconfig V6LAB_SPREAD=1 \
    cargo test --workspace --locked --no-fail-fast --test kubernetes -- --ignored --test-threads 4
  rc=$?
  [ "$was_up" = 1 ] || bash deploy/kubernetes/test-cluster.sh down >/dev/null
  return $rc
}
tier "kubernetes (test cluster)" kubernetes_tier

echo "== summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "v6lab test: ${#failed[@]} tier(s) failed: ${failed[*]}" >&2
  exit 1
fi
