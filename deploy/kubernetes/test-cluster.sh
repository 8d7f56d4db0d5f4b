#!/usr/bin/env bash
# A real two-node Kubernetes for tests, offline, from Debian packages (kind-style):
#   - control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) as host
#     processes, the apiserver bound to the gateway address of one Docker network;
#   - two cluster nodes, each a container on that network running containerd and a kubelet.
# Kubernetes is built once from Debian bookworm's source package and cached (cluster/build.sh).
#
#   usage: test-cluster.sh up [--image REF] | down [--purge] | status
#
# `up` prints the admin kubeconfig's path (always $K8S_KUBECONFIG). Idempotent: a running
# cluster is left as it is. `down` removes everything `up` made and keeps the build cache
# (`--purge` removes that too). Details and measurements: docs/kubernetes.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cl=$here/cluster
. "$cl/common.sh"

usage() { die "usage: $0 up [--image REF] | down [--purge] | status"; }
[ "$(id -u)" -eq 0 ] || die "run as root (it starts the control plane and Docker containers)"

# Processes by pid file; a pid is only trusted when its command line still names the binary.
pid_of() { # NAME -> pid if running
  local f=$K8S_STATE/run/$1.pid p
  [ -f "$f" ] || return 1
  p=$(cat "$f")
  [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "/$1 " && echo "$p"
}
start() { # NAME ARGS...: starts $bin/NAME in the background, logging to run/NAME.log
  local name=$1; shift
  # fd 7 (the up/down lock) is closed: a daemon holding it would block every later `down`.
  nohup "$bin/$name" "$@" >"$K8S_STATE/run/$name.log" 2>&1 </dev/null 7>&- &
  echo $! >"$K8S_STATE/run/$name.pid"
}
stop() { # NAME [SECONDS]: TERM, then KILL after SECONDS (10)
  local p i
  p=$(pid_of "$1") || { rm -f "$K8S_STATE/run/$1.pid"; return 0; }
  kill "$p" 2>/dev/null || true
  for i in $(seq 1 $(( ${2:-10} * 10 ))); do [ -d "/proc/$p" ] || break; sleep 0.1; done
  [ -d "/proc/$p" ] && kill -9 "$p" 2>/dev/null || true
  for i in $(seq 1 50); do [ -d "/proc/$p" ] || break; sleep 0.1; done
  rm -f "$K8S_STATE/run/$1.pid"
}
wait_for() { # SECONDS WHAT COMMAND...: polls COMMAND every 0.5 s until it succeeds
  local secs=$1 what=$2 end; shift 2
  end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.5
  done
}
kc() { "$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" "$@"; }

# The lab image: --image REF, else the newest hash-tagged v6lab/node image in the engine.
lab_image() {
  if [ -n "${image:-}" ]; then echo "$image"; return; fi
  docker images v6lab/node --format '{{.Repository}}:{{.Tag}}' | grep -v ':latest$' | grep -v ':<none>$' | head -n1
}

# Nothing of ours may overlap a route or Docker network already there.
check_free() {
  local c r
  if docker network inspect "$K8S_NET" >/dev/null 2>&1; then return 0; fi
  for c in $K8S_NET_CIDR $K8S_POD_CIDR $K8S_SERVICE_CIDR; do
    # Routes containing the range (but the default route) or inside it.
    r=$( { ip -4 route show match "$c" table all; ip -4 route show root "$c" table all; } 2>/dev/null \
         | grep -vE '^(default|local|broadcast) ' | head -n1 || true)
    [ -z "$r" ] || die "$c overlaps the route '$r' on this host; the test cluster needs it free"
  done
}

all_nodes_ready() {
  local n s
  for n in $K8S_NODES; do
    s=$(kc get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) || return 1
    [ "$s" = True ] || return 1
  done
}

write_node_config() { # NODE: the files bind-mounted read-only at /k8s in the node container
  local n=$1 d=$K8S_STATE/nodes/$1 routes="" m
  mkdir -p "$d/images"   # mount point of the shared image archives
  for m in $K8S_NODES; do [ "$m" = "$n" ] || routes="$routes $(node_pods "$m"),$(node_ip "$m")"; done
  cat >"$d/node.env" <<E
NODE_NAME=$n
NODE_IP=$(node_ip "$n")
POD_SUBNET=$(node_pods "$n")
POD_CIDR=$K8S_POD_CIDR
ROUTES="${routes# }"
E
  cp "$K8S_STATE/pki/ca.crt" "$d/ca.crt"
  cp "$K8S_STATE/pki/$n.kubeconfig" "$d/kubeconfig"
  cp "$cl/node-entry.sh" "$d/entry.sh"
  cat >"$d/containerd.toml" <<E
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$K8S_PAUSE_IMAGE"
  # The host lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below the node's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
E
  local sub gw
  sub=$(node_pods "$n"); gw=${sub%.0/24}.1
  cat >"$d/cni.conflist" <<E
{
  "cniVersion": "0.4.0",
  "name": "v6lab-test",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$sub", "gateway": "$gw"}]],
              "routes": [{"dst": "$K8S_POD_CIDR"}, {"dst": "$K8S_NET_CIDR"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
E
  cat >"$d/kubelet.yaml" <<E
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $(node_ip "$n")
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: /k8s/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
resolvConf: ""
clusterDomain: cluster.local
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
# Images are imported, never pulled: the kubelet must never collect them, however full the host's
# disk is (above its default 85% it deleted the pause, busybox and lab images minutes after up).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Namespaced sysctls that Kubernetes 1.20 does not consider safe but lab nodes set (as on Docker).
allowedUnsafeSysctls: ["net.ipv6.conf.*", "net.ipv6.neigh.*", "net.ipv4.conf.*", "net.ipv4.ip_forward"]
E
}

cmd_up() {
  image=""
  while [ $# -gt 0 ]; do
    case $1 in
      --image) [ $# -ge 2 ] || usage; image=$2; shift 2 ;;
      --image=*) image=${1#--image=}; shift ;;
      *) usage ;;
    esac
  done
  docker info >/dev/null 2>&1 || die "the Docker engine is not running (bash deploy/setup.sh starts it)"
  # The node images (mmdebstrap, mostly I/O) build while Kubernetes compiles.
  local imgout
  imgout=$(mktemp)
  "$cl/images.sh" >"$imgout" &
  local imgpid=$!
  bin=$("$cl/build.sh") || { wait "$imgpid" || true; rm -f "$imgout"; die "the Kubernetes build failed"; }
  wait "$imgpid" || { rm -f "$imgout"; die "the node images could not be built"; }
  node_ref=$(cat "$imgout"); rm -f "$imgout"
  if [ -f "$K8S_STATE/cluster.env" ] && pid_of kube-apiserver >/dev/null && all_nodes_ready; then
    ensure_lab_image "$(lab_image)"
    log "already up"; echo "$K8S_KUBECONFIG"; return 0
  fi
  [ -d "$K8S_STATE" ] && { log "cleaning up a previous, incomplete cluster"; cmd_down; }
  local t0 ref n
  t0=$(date +%s.%N)
  ref=$(lab_image)
  [ -n "$ref" ] || die "no lab image: build it with ./target/debug/v6lab images build, or pass --image REF"
  docker image inspect "$ref" >/dev/null 2>&1 || die "image $ref is not in the Docker engine"
  check_free

  mkdir -p "$K8S_STATE/run" "$K8S_STATE/images"
  chmod 700 "$K8S_STATE"
  echo "BIN=$bin" >"$K8S_STATE/cluster.env"
  echo "LAB_IMAGE=$ref" >>"$K8S_STATE/cluster.env"
  # The kubelet sets these host-wide (they are not namespaced); `down` puts them back.
  local s
  for s in $K8S_HOST_SYSCTLS; do echo "$s=$(sysctl -n "$s")"; done >"$K8S_STATE/host-sysctls"

  # The images each node imports: the lab image, the pod sandbox and busybox.
  docker save -o "$K8S_STATE/images/lab.tar" "$ref"
  local imgdir=$K8S_CACHE/images/${node_ref##*:}
  cp "$imgdir/pause.tar" "$imgdir/busybox.tar" "$K8S_STATE/images/"

  docker network create --driver bridge --subnet "$K8S_NET_CIDR" --gateway "$K8S_API_IP" \
    -o com.docker.network.bridge.name="$K8S_BRIDGE" \
    -o com.docker.network.bridge.enable_ip_masquerade=false \
    --label dev.v6lab.k8s-test=1 "$K8S_NET" >/dev/null

  "$cl/pki.sh" "$K8S_STATE/pki"
  cp "$K8S_STATE/pki/admin.kubeconfig" "$K8S_KUBECONFIG"
  local p=$K8S_STATE/pki
  # etcd listens on loopback only: nothing in a node or pod can reach it.
  start etcd --name v6lab-test --data-dir "$K8S_STATE/etcd" \
    --listen-client-urls http://127.0.0.1:$K8S_ETCD_PORT --advertise-client-urls http://127.0.0.1:$K8S_ETCD_PORT \
    --listen-peer-urls http://127.0.0.1:$((K8S_ETCD_PORT + 1)) \
    --initial-advertise-peer-urls http://127.0.0.1:$((K8S_ETCD_PORT + 1)) \
    --initial-cluster v6lab-test=http://127.0.0.1:$((K8S_ETCD_PORT + 1)) --log-level warn
  wait_for 30 etcd "$bin/etcdctl" --endpoints "127.0.0.1:$K8S_ETCD_PORT" endpoint health \
    || die "etcd did not become healthy; see $K8S_STATE/run/etcd.log"
  start kube-apiserver --etcd-servers=http://127.0.0.1:$K8S_ETCD_PORT \
    --bind-address="$K8S_API_IP" --advertise-address="$K8S_API_IP" --secure-port=6443 --insecure-port=0 \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="$K8S_SERVICE_CIDR" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --kubelet-client-certificate="$p/admin.crt" --kubelet-client-key="$p/admin.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname
  wait_for 60 apiserver kc get --raw /readyz || die "kube-apiserver not ready; see $K8S_STATE/run/kube-apiserver.log"
  start kube-controller-manager --kubeconfig="$p/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$p/controller-manager.kubeconfig" --authorization-kubeconfig="$p/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --allocate-node-cidrs=false --service-cluster-ip-range="$K8S_SERVICE_CIDR" --leader-elect=false
  start kube-scheduler --kubeconfig="$p/scheduler.kubeconfig" \
    --authentication-kubeconfig="$p/scheduler.kubeconfig" --authorization-kubeconfig="$p/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --leader-elect=false
  log "control plane up ($(elapsed "$t0"))"

  for n in $K8S_NODES; do
    write_node_config "$n"
    # "Privileged", emulated: every capability but SYS_RESOURCE (which this host's bounding set
    # lacks, so --privileged fails), all devices, no seccomp, writable /proc/sys and /sys.
    docker run -d --name "$n" --hostname "$n" --label dev.v6lab.k8s-test=1 --init \
      --cap-add ALL --cap-drop SYS_RESOURCE \
      --security-opt seccomp=unconfined --security-opt systempaths=unconfined \
      --device-cgroup-rule 'a *:* rwm' --device /dev/kmsg --device /dev/net/tun --cgroupns=private \
      --network "$K8S_NET" --ip "$(node_ip "$n")" \
      -v /var --tmpfs /run:rw,exec,mode=755,size=256m --tmpfs /tmp:rw,exec \
      -v "$bin/kubelet:/usr/local/bin/kubelet:ro" \
      -v "$K8S_STATE/nodes/$n:/k8s:ro" -v "$K8S_STATE/images:/k8s/images:ro" \
      "$node_ref" /k8s/entry.sh >/dev/null
  done
  if ! wait_for 300 nodes all_nodes_ready; then
    for n in $K8S_NODES; do docker logs --tail 20 "$n" 2>&1 | sed "s/^/$n: /" >&2 || true; done
    die "the nodes did not become Ready in 300 s (test-cluster.sh status; docker logs v6k8s-a)"
  fi
  for n in $K8S_NODES; do kc patch node "$n" -p "{\"spec\":{\"podCIDR\":\"$(node_pods "$n")\"}}" >/dev/null; done
  log "both nodes Ready ($(elapsed "$t0")); lab image $ref"
  write_kubectl
  echo "$K8S_KUBECONFIG"
}

# $K8S_STATE/kubectl: the cluster's own kubectl with its kubeconfig (what tests and people use).
write_kubectl() {
  printf '#!/bin/sh\nexec %s --kubeconfig %s "$@"\n' "$bin/kubectl" "$K8S_KUBECONFIG" >"$K8S_STATE/kubectl"
  chmod 755 "$K8S_STATE/kubectl"
}

# A running cluster gets the lab image `ref` imported into each node if it lacks it (a new
# recipe since `up`).
ensure_lab_image() {
  local ref=$1 n
  [ -n "$ref" ] || return 0
  write_kubectl
  grep -qx "LAB_IMAGE=$ref" "$K8S_STATE/cluster.env" && return 0
  docker image inspect "$ref" >/dev/null 2>&1 || die "image $ref is not in the Docker engine"
  log "importing $ref into the nodes"
  for n in $K8S_NODES; do
    docker save "$ref" | docker exec -i "$n" ctr -n k8s.io images import - >/dev/null \
      || die "importing $ref into $n failed"
  done
  sed -i '/^LAB_IMAGE=/d' "$K8S_STATE/cluster.env"
  echo "LAB_IMAGE=$ref" >>"$K8S_STATE/cluster.env"
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

cmd_down() {
  local purge=0 n c
  [ "${1:-}" = --purge ] && purge=1
  # Killing a node container's init kills its kubelet, containerd and every pod; the pods'
  # network namespaces, mounts and cgroups live inside it and go with it.
  for c in $(docker ps -aq --filter label=dev.v6lab.k8s-test=1); do docker rm -f -v "$c" >/dev/null; done
  docker network inspect "$K8S_NET" >/dev/null 2>&1 && docker network rm "$K8S_NET" >/dev/null
  # The apiserver drains its watches for up to a minute on TERM; its state is discarded anyway.
  stop kube-scheduler; stop kube-controller-manager; stop kube-apiserver 2; stop etcd
  if [ -f "$K8S_STATE/host-sysctls" ]; then
    while IFS= read -r s; do sysctl -qw "$s" || log "could not restore $s"; done <"$K8S_STATE/host-sysctls"
  fi
  rm -rf "$K8S_STATE"
  if [ $purge -eq 1 ]; then
    for c in $(docker images "$K8S_NODE_IMAGE_REPO" -q | sort -u); do docker rmi -f "$c" >/dev/null; done
    rm -rf "$K8S_CACHE"
  fi
  local left
  left=$(iptables-save 2>/dev/null | grep -E "$K8S_BRIDGE|${K8S_NET_CIDR%.0/24}\." || true)
  [ -z "$left" ] || log "warning: iptables rules left: $left"
  log "down"
}

cmd_status() {
  local n p bin=""
  [ -f "$K8S_STATE/cluster.env" ] && bin=$(sed -n 's/^BIN=//p' "$K8S_STATE/cluster.env")
  for n in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    if p=$(pid_of "$n"); then echo "$n: running (pid $p)"; else echo "$n: not running"; fi
  done
  docker ps -a --filter label=dev.v6lab.k8s-test=1 --format '{{.Names}}: {{.Status}} ({{.Image}})'
  docker network inspect "$K8S_NET" >/dev/null 2>&1 && echo "network $K8S_NET ($K8S_NET_CIDR, bridge $K8S_BRIDGE)"
  if [ -n "$bin" ] && pid_of kube-apiserver >/dev/null; then
    echo "kubeconfig: $K8S_KUBECONFIG"
    kc get nodes -o wide 2>&1 || true
  fi
  echo "build cache: $(ls "$K8S_CACHE/bin" 2>/dev/null | tr '\n' ' ')"
  # Exit status: 0 when the cluster is up.
  [ -n "$bin" ] && pid_of kube-apiserver >/dev/null
}

# One `up` or `down` at a time on this host.
mkdir -p /run/lock
exec 7>/run/lock/v6lab-test-cluster.lock
case ${1:-} in up | down) flock 7 ;; esac
case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  *) usage ;;
esac
