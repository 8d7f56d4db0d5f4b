#!/usr/bin/env bash
# Builds the test cluster's images from Debian packages, without a registry, once (cached):
#  - the cluster-node image (containerd, runc, CNI plugins, iproute2, iptables) by mmdebstrap,
#    imported into Docker as v6lab/k8s-node:<hash of this recipe>;
#  - the pod sandbox ("pause") image: pause.c compiled static, FROM scratch;
#  - a busybox image from busybox-static;
# the last two saved as tarballs for `ctr images import` inside each node.
#
#   usage: images.sh      prints the node image reference on stdout
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"

hash=$(cat "$here/images.sh" "$here/pause.c" | sha256sum | cut -c1-12)
dir=$K8S_CACHE/images/$hash
node_ref=$K8S_NODE_IMAGE_REPO:$hash
mkdir -p "$K8S_CACHE/images"
exec 8>"$K8S_CACHE/images.lock"
flock 8

if [ ! -s "$dir/pause.tar" ] || [ ! -s "$dir/busybox.tar" ] || [ ! -s "$dir/node.tar" ]; then
  apt_install busybox-static gcc libc6-dev mmdebstrap
  tmp=$K8S_CACHE/images/.$hash.partial
  rm -rf "$tmp"
  mkdir -p "$tmp/pause" "$tmp/busybox/bin"
  # One docker-save archive per image; the Docker copies are removed again.
  save() { # NAME REF ROOTFS_DIR CHANGE...
    local name=$1 ref=$2 root=$3; shift 3
    tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . | docker import "$@" - "$ref" >/dev/null
    docker save -o "$tmp/$name.tar" "$ref"
    docker rmi "$ref" >/dev/null
  }
  gcc -Os -static -o "$tmp/pause/pause" "$here/pause.c"
  save pause "$K8S_PAUSE_IMAGE" "$tmp/pause" --change 'ENTRYPOINT ["/pause"]'
  cp /bin/busybox "$tmp/busybox/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$tmp/busybox/bin/$a"; done
  mkdir -p "$tmp/busybox/tmp" "$tmp/busybox/etc"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/busybox/etc/passwd"
  save busybox "$K8S_BUSYBOX_IMAGE" "$tmp/busybox" --change 'CMD ["sh"]'
  log "building the cluster-node image with mmdebstrap"
  mirror=$(debian_mirror)
  mmdebstrap --variant=minbase --format=tar \
    --include=containerd,runc,containernetworking-plugins,iproute2,iptables,mount,kmod,procps,iputils-ping,ca-certificates \
    --customize-hook='rm -f "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap" "$1/etc/apt/apt.conf.d/99mmdebstrap"' \
    bookworm "$tmp/node.tar" "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    >"$tmp/mmdebstrap.log" 2>&1 || { tail -n 30 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap of the node image failed"; }
  rm -rf "$tmp/pause" "$tmp/busybox" "$tmp/mmdebstrap.log"
  rm -rf "$dir"
  mv "$tmp" "$dir"
fi
if ! docker image inspect "$node_ref" >/dev/null 2>&1; then
  docker import "$dir/node.tar" "$node_ref" >/dev/null
fi
echo "$node_ref"
