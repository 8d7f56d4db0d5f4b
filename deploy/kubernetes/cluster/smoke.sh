#!/usr/bin/env bash
# Smoke test of the running test cluster (test-cluster.sh up): what the Kubernetes runtime relies
# on. Exits non-zero at the first failed check; cleans up its namespace either way.
#  1. a lab-image pod on each node (pinned by kubernetes.io/hostname), imagePullPolicy Never,
#     capabilities NET_ADMIN + NET_RAW only, IPv6 sysctls set at pod level;
#  2. kubectl exec; pod-to-pod across the nodes (busybox image);
#  3. a VXLAN link between the two pods carrying IPv6 unicast and ff02::1 multicast;
#  4. /dev/net/tun in a pod (what tayga needs): through a hostPath CharDevice volume, and made by
#     the pod itself with mknod (no volume);
#  5. a sysctl outside the kubelet's allowed list is refused (SysctlForbidden);
#  6. a custom resource is written and watched, and the apiserver stays up.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"

[ -f "$K8S_STATE/cluster.env" ] || die "smoke: no test cluster (bash deploy/kubernetes/test-cluster.sh up)"
bin=$(sed -n 's/^BIN=//p' "$K8S_STATE/cluster.env")
image=$(sed -n 's/^LAB_IMAGE=//p' "$K8S_STATE/cluster.env")
ns=v6lab-smoke-$$
crd_group=s$$.smoke.v6lab.dev
kc() { "$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" -n "$ns" "$@"; }
ex() { local pod=$1; shift; kc exec "$pod" -- "$@"; }
t0=$(date +%s.%N)
ok() { awk -v a="$t0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN { printf "smoke: ok  %-62s %6.1f s\n", m, b - a }'; }
fail() { echo "smoke: FAIL $*" >&2; exit 1; }
cleanup() {
  local c0=$(date +%s.%N)
  # Pods and the custom resource first (pods in parallel, 1 s grace: `sleep` ignores SIGTERM),
  # then the empty namespace, then the CRD.
  kc delete pods --all --grace-period=1 --wait=false >/dev/null 2>&1 || true
  kc wait --for=delete pod --all --timeout=60s >/dev/null 2>&1 || true
  kc delete "probes.$crd_group" --all >/dev/null 2>&1 || true
  # The namespace controller finishes on its own (5-40 s, its discovery has a backoff).
  "$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  "$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" delete crd "probes.$crd_group" --ignore-not-found >/dev/null 2>&1 || true
  awk -v a="$c0" -v b="$(date +%s.%N)" 'BEGIN { printf "smoke: cleanup (pods, namespace) %.1f s\n", b - a }'
}
[ -n "${SMOKE_KEEP:-}" ] || trap cleanup EXIT   # SMOKE_KEEP=1 leaves the namespace for inspection
read -r -a nodes <<<"$K8S_NODES"
a=${nodes[0]} b=${nodes[1]}

"$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" create namespace "$ns" >/dev/null
# The service account must exist before pods are admitted.
for _ in $(seq 1 100); do kc get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done

labpod() { # NAME NODE [EXTRA_YAML]: a lab-image pod with the lab nodes' capabilities and sysctls
  cat <<Y
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  nodeSelector: {kubernetes.io/hostname: $2}
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  securityContext:
    sysctls:
    - {name: net.ipv6.conf.all.disable_ipv6, value: "0"}
    - {name: net.ipv6.conf.default.disable_ipv6, value: "0"}
    - {name: net.ipv6.conf.default.accept_dad, value: "0"}
    - {name: net.ipv6.conf.all.forwarding, value: "1"}
  containers:
  - name: node
    image: $image
    imagePullPolicy: Never
    command: [sleep, infinity]
    securityContext:
      capabilities: {add: [NET_ADMIN, NET_RAW]}
${3:-}
Y
}
tun_mount='    volumeMounts: [{name: tun, mountPath: /dev/net/tun}]
  volumes: [{name: tun, hostPath: {path: /dev/net/tun, type: CharDevice}}]'
{
  labpod lab-a "$a" "$tun_mount"; echo ---
  labpod lab-b "$b"; echo ---
  cat <<Y
apiVersion: v1
kind: Pod
metadata: {name: bb-b}
spec:
  nodeSelector: {kubernetes.io/hostname: $b}
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers:
  - {name: bb, image: $K8S_BUSYBOX_IMAGE, imagePullPolicy: Never, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: forbidden-sysctl}
spec:
  nodeSelector: {kubernetes.io/hostname: $a}
  automountServiceAccountToken: false
  securityContext: {sysctls: [{name: net.core.somaxconn, value: "1024"}]}
  containers:
  - {name: bb, image: $K8S_BUSYBOX_IMAGE, imagePullPolicy: Never, command: [sleep, "3600"]}
Y
} | kc apply -f - >/dev/null
kc wait --for=condition=Ready pod/lab-a pod/lab-b pod/bb-b --timeout=120s >/dev/null \
  || { kc get pods -o wide >&2; kc describe pods >&2; fail "pods not Ready in 120 s"; }
for p in lab-a:$a lab-b:$b bb-b:$b; do
  [ "$(kc get pod "${p%%:*}" -o jsonpath='{.spec.nodeName}')" = "${p#*:}" ] || fail "pod ${p%%:*} is not on ${p#*:}"
done
ok "3 pods Ready, pinned to $a and $b, images imported (no pull)"

[ "$(ex lab-a cat /proc/sys/net/ipv6/conf/all/forwarding)" = 1 ] || fail "pod sysctl net.ipv6.conf.all.forwarding is not 1"
[ "$(ex lab-b cat /proc/sys/net/ipv6/conf/default/accept_dad)" = 0 ] || fail "pod sysctl net.ipv6.conf.default.accept_dad is not 0"
ok "kubectl exec; pod-level net.ipv6.conf.* sysctls applied"

capeff=$(ex lab-a awk '/^CapEff/ {print $2}' /proc/self/status)
# NET_ADMIN is bit 12, NET_RAW bit 13; SYS_ADMIN (bit 21) must be absent.
(( (0x$capeff >> 12) & 1 && (0x$capeff >> 13) & 1 )) || fail "lab pod lacks NET_ADMIN/NET_RAW (CapEff $capeff)"
(( ((0x$capeff >> 21) & 1) == 0 )) || fail "lab pod has SYS_ADMIN (CapEff $capeff)"
ok "capabilities NET_ADMIN+NET_RAW, not SYS_ADMIN (CapEff $capeff)"
if ex bb-b ip link set lo mtu 1400 >/dev/null 2>&1; then fail "a pod without NET_ADMIN could change a link"; fi
ok "a pod without NET_ADMIN cannot change its links"

ip_a=$(kc get pod lab-a -o jsonpath='{.status.podIP}')
ip_b=$(kc get pod lab-b -o jsonpath='{.status.podIP}')
ip_bb=$(kc get pod bb-b -o jsonpath='{.status.podIP}')
ex lab-a ping -c 3 -W 2 -q "$ip_bb" >/dev/null || fail "pod on $a cannot ping the busybox pod on $b ($ip_bb)"
ok "pod to pod across nodes: $ip_a -> $ip_bb"

for side in "lab-a $ip_b 1" "lab-b $ip_a 2"; do
  set -- $side
  ex "$1" sh -ec "ip link add vx0 type vxlan id 42 dstport 4789 remote $2 dev eth0
                  ip -6 addr add 2001:db8:42::$3/64 dev vx0
                  ip link set vx0 up" || fail "cannot make the VXLAN link in $1"
done
mtu=$(ex lab-a cat /sys/class/net/vx0/mtu)
ex lab-a ping -6 -c 3 -W 2 -q 2001:db8:42::2 >/dev/null || fail "no IPv6 unicast over VXLAN ($a -> $b)"
ok "VXLAN (VNI 42, UDP 4789, MTU $mtu) carries IPv6 unicast"
ll_b=$(ex lab-b sh -c "ip -6 -o addr show dev vx0 scope link" | awk '{print $4}' | cut -d/ -f1)
[ -n "$ll_b" ] || fail "no link-local address on lab-b's vx0"
replies=$(ex lab-a ping -6 -c 3 -W 2 ff02::1%vx0 || true)
grep -q "from $ll_b" <<<"$replies" || fail "ff02::1 on vx0 not answered by the peer's link-local $ll_b"
ok "VXLAN carries ff02::1 multicast (answered by $ll_b)"

ex lab-a sh -ec 'ip tuntap add dev tun6 mode tun && ip link show tun6 >/dev/null && ip tuntap del dev tun6 mode tun' \
  || fail "/dev/net/tun unusable in a pod with a hostPath CharDevice volume"
ok "/dev/net/tun via hostPath CharDevice + NET_ADMIN: tun device created"
# Least privilege: no volume at all. containerd 1.6 allows the tun device (c 10:200) in every
# container's device cgroup and MKNOD is a default capability, so the pod makes the node itself.
ex lab-b sh -ec 'mkdir -p /dev/net; [ -e /dev/net/tun ] || mknod /dev/net/tun c 10 200
                 ip tuntap add dev tun6 mode tun && ip tuntap del dev tun6 mode tun' \
  || fail "/dev/net/tun cannot be made by mknod in a pod with NET_ADMIN"
ok "/dev/net/tun by mknod in the pod (default MKNOD + NET_ADMIN, no volume)"

reason=""
for _ in $(seq 1 60); do
  reason=$(kc get pod forbidden-sysctl -o jsonpath='{.status.reason}')
  [ -n "$reason" ] && break
  sleep 0.5
done
[ "$reason" = SysctlForbidden ] || fail "a pod with net.core.somaxconn was not refused (reason '$reason')"
ok "a sysctl outside allowedUnsafeSysctls is refused: $reason"

# A custom resource written and watched: the apiserver survives it (the vendor patch's purpose).
cat <<Y | "$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" apply -f - >/dev/null
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: "probes.$crd_group"}
spec:
  group: "$crd_group"
  scope: Namespaced
  names: {plural: probes, singular: probe, kind: Probe}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
Y
"$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" wait --for=condition=Established "crd/probes.$crd_group" --timeout=30s >/dev/null \
  || fail "the test CRD was not established"
printf 'apiVersion: %s/v1\nkind: Probe\nmetadata: {name: p1}\ndata: {a: [1, 2], b: {c: d}}\n' "$crd_group" | kc apply -f - >/dev/null \
  || fail "cannot create a custom resource"
kc get --raw "/apis/$crd_group/v1/namespaces/$ns/probes?watch=1&timeoutSeconds=2" | grep -q '"name":"p1"' \
  || fail "watching the custom resource did not show it"
kc get --raw /readyz >/dev/null || fail "the apiserver is not ready after a custom-resource write and watch"
ok "a custom resource written and watched; the apiserver stays up"
echo "smoke: all checks passed"
