#!/usr/bin/env bash
# Benchmark (prints figures; not a test): a class of N NAT64/DNS64 labs through the controller.
# Times `class create` until every lab is ready and `class delete` until every container (pod)
# is gone, and reads the controller's idle and peak resident memory. N defaults to 30
# (STUDENTS=). RUNTIME=kubernetes runs it on the test cluster (deploy/kubernetes/test-cluster.sh
# up), in a namespace of its own; V6LAB_BIN= picks the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/../.."
students=${STUDENTS:-30}
runtime=${RUNTIME:-docker}
bash deploy/setup.sh
if [ -z "${V6LAB_BIN:-}" ]; then
  [ -x target/release/v6lab ] || cargo build --release --locked --bin v6lab
  V6LAB_BIN=$PWD/target/release/v6lab
fi
v6lab=$V6LAB_BIN
$v6lab images build >/dev/null
runtime_args=()
if [ "$runtime" = kubernetes ]; then
  bash deploy/kubernetes/test-cluster.sh up >/dev/null
  export KUBECONFIG=/var/lib/v6lab/kubernetes/admin.kubeconfig
  kubectl=/var/lib/v6lab/kubernetes/kubectl
  $kubectl apply -f deploy/kubernetes/crd.yaml >/dev/null
  ns=v6lab-bench-$$
  $kubectl create namespace "$ns" >/dev/null
  runtime_args=(--runtime kubernetes --namespace "$ns")
fi
# Objects of the class still there: containers (Docker) or pods (Kubernetes).
objects() {
  if [ "$runtime" = kubernetes ]; then
    $kubectl -n "$ns" get pods -l v6lab.dev/role=node --no-headers 2>/dev/null | grep -c "^$class-" || true
  else
    docker ps -aq --filter "label=dev.v6lab.lab" | xargs -r docker inspect -f '{{index .Config.Labels "dev.v6lab.lab"}}' 2>/dev/null | grep -c "^$class-" || true
  fi
}

dir=$(mktemp -d /tmp/v6lab-bench-class.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export V6LAB_CONTROLLER=http://127.0.0.1:$port V6LAB_STATE_DIR=$dir
class=bench$$
$v6lab "${runtime_args[@]}" serve --listen 127.0.0.1:$port --ssh-listen off --state-dir "$dir" --check-interval 0s 2>"$dir/serve.log" &
pid=$!
cleanup() {
  $v6lab class delete "$class" >/dev/null 2>&1 || true
  for l in $($v6lab "${runtime_args[@]}" ls --output json | python3 -c "import json,sys; [print(l['lab']) for l in json.load(sys.stdin) if l['lab'].startswith('$class-')]"); do
    $v6lab "${runtime_args[@]}" down "$l" --quiet || true
  done
  kill "$pid" 2>/dev/null || true
  [ "$runtime" = kubernetes ] && $kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 600); do curl -sf "$V6LAB_CONTROLLER/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/^VmRSS/{print $2}' /proc/$pid/status; }
hwm() { awk '/^VmHWM/{print $2}' /proc/$pid/status; }
idle_before=$(rss)
ms() { date +%s%3N; }

t0=$(ms)
$v6lab class create topologies/nat64-dns64.yaml --students "$students" --name "$class" --lifetime 1h --output json >/dev/null
ready() { $v6lab class show "$class" --output json | python3 -c "import json,sys; v=json.load(sys.stdin); print(sum(l['state']=='ready' for l in v['labs']), sum(l['state']=='failed' for l in v['labs']))"; }
while :; do
  read -r r f < <(ready)
  [ "$r" -eq "$students" ] && break
  [ $(( $(ms) - t0 )) -lt 600000 ] || { echo "only $r of $students labs ready after 10 min ($f failed)" >&2; exit 1; }
  sleep 0.2
done
t1=$(ms)
containers=$(objects)
# A page through NAT64 in one lab (its exercises solved first), to be sure "ready" means working.
$v6lab "${runtime_args[@]}" solve "$class-student-01" dns64 >/dev/null
$v6lab "${runtime_args[@]}" solve "$class-student-01" nat64 >/dev/null
$v6lab "${runtime_args[@]}" exec "$class-student-01" client -- curl -s -m 5 http://www.example.net/ | grep -q "hello from the IPv4-only web" \
  || { echo "the solved lab does not load the page through NAT64" >&2; exit 1; }
sleep 5 # idle: let the controller settle before reading its memory
idle_after=$(rss)

t2=$(ms)
$v6lab class delete "$class" >/dev/null
while [ "$(objects)" -gt 0 ]; do
  [ $(( $(ms) - t2 )) -lt 600000 ] || { echo "class not gone after 10 min" >&2; exit 1; }
  sleep 0.2
done
t3=$(ms)
peak=$(hwm)

awk -v rt="$runtime" -v n="$students" -v c="$containers" -v up=$((t1 - t0)) -v down=$((t3 - t2)) -v i0="$idle_before" -v i1="$idle_after" -v p="$peak" -v cores="$(nproc)" 'BEGIN {
  printf "%s: class of %d NAT64/DNS64 labs (%d node containers or pods), %d cores\n", rt, n, c, cores
  printf "  create until every lab ready: %6.1f s   (goal on 2 cores: 45 s)\n", up / 1000
  printf "  delete until every container gone: %6.1f s   (goal: 20 s)\n", down / 1000
  printf "  containers per second: up %.1f, down %.1f\n", c / (up / 1000), c / (down / 1000)
  printf "  controller RSS: idle %.1f MiB before, %.1f MiB after the class; peak %.1f MiB   (goal idle < 40 MiB)\n", i0 / 1024, i1 / 1024, p / 1024
}'
