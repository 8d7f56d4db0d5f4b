#!/bin/bash
# The cluster node container's entrypoint (run by docker-init as PID 1's child). Its settings come
# from /k8s (bind-mounted read-only, written by test-cluster.sh): node.env, ca.crt, kubeconfig,
# kubelet.yaml, containerd.toml, cni.conflist and the image tarballs in /k8s/images.
set -euo pipefail
. /k8s/node.env   # NODE_NAME NODE_IP POD_SUBNET POD_CIDR ROUTES ("CIDR,VIA ...")
say() { echo "node-entry $NODE_NAME: $*"; }

# What `--privileged` would give, emulated (this host lacks CAP_SYS_RESOURCE, so Docker cannot
# run privileged containers): shared mount propagation for the kubelet's volume mounts, and
# writable /sys and cgroup v1 hierarchies for containerd's pods.
mount --make-rshared /
mount -o remount,rw /sys
for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d" 2>/dev/null || true; done

# Cross-node pod routing: each node routes the other nodes' pod subnets to them; pods reach
# anything outside the pod range (the control plane) masqueraded behind this node's address.
sysctl -qw net.ipv4.ip_forward=1
for r in $ROUTES; do ip route replace "${r%,*}" via "${r#*,}"; done
iptables -t nat -A POSTROUTING -s "$POD_SUBNET" ! -d "$POD_CIDR" -j MASQUERADE

mkdir -p /etc/containerd /etc/cni/net.d /var/log/pods /var/lib/kubelet
cp /k8s/containerd.toml /etc/containerd/config.toml
cp /k8s/cni.conflist /etc/cni/net.d/10-v6lab.conflist
containerd --config /etc/containerd/config.toml >/var/log/containerd.log 2>&1 &
for _ in $(seq 1 300); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr version >/dev/null 2>&1 || { tail -20 /var/log/containerd.log; say "containerd did not start"; exit 1; }

# No registry: every image the pods use is imported here, before the kubelet registers the node,
# so "node Ready" implies "images present".
for t in /k8s/images/*.tar; do
  ctr -n k8s.io images import "$t" >/dev/null || { say "import of $t failed"; exit 1; }
done
say "images imported"

exec kubelet --config=/k8s/kubelet.yaml --kubeconfig=/k8s/kubeconfig \
  --container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock \
  --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --node-labels="v6lab.dev/test-node=$NODE_NAME" \
  --v=1
