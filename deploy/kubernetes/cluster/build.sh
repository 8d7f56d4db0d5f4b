#!/usr/bin/env bash
# Builds Kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet) from Debian
# bookworm's `kubernetes` source package with Debian's Go 1.19, once: the binaries are cached under
# $K8S_CACHE/bin/<key>, where <key> is the version plus a hash of the vendor patch. etcd, etcdctl
# and kubectl 1.20 come from Debian's binary packages (extracted, not installed). With the cache
# present this prints the directory and returns at once.
#
#   usage: build.sh            prints the binary directory on stdout
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"

key=$K8S_VERSION-$(sha256sum "$here/vendor-patch.sh" | cut -c1-12)
bin=$K8S_CACHE/bin/$key
if [ -x "$bin/kubelet" ]; then echo "$bin"; exit 0; fi

mkdir -p "$K8S_CACHE"
exec 9>"$K8S_CACHE/build.lock"
flock 9
if [ -x "$bin/kubelet" ]; then echo "$bin"; exit 0; fi   # built while we waited

t0=$(date +%s)
apt_install golang-1.19-go make gcc libc6-dev rsync   # make uses rsync for its tools
[ -x "$K8S_GO/go" ] || die "Go 1.19 missing at $K8S_GO after installing golang-1.19-go"

# The source package, through a private apt source list (the host's apt configuration keeps no
# deb-src entry because of us).
apt_dir=$K8S_CACHE/apt
mirror=$(debian_mirror)
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
printf 'deb-src %s bookworm main\ndeb-src %s bookworm-updates main\n' "$mirror" "$mirror" >"$apt_dir/sources.list"
aptsrc=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=/nonexistent
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o Acquire::Retries=5)
work=$K8S_CACHE/build
src=$work/kubernetes-${K8S_VERSION#v}
rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"
log "downloading the kubernetes $K8S_DEB_VERSION source package from $mirror"
apt-get "${aptsrc[@]}" update -qq >/dev/null || die "apt-get update of the deb-src list failed"
(cd "$work" && apt-get "${aptsrc[@]}" source -qq --download-only "kubernetes=$K8S_DEB_VERSION" >/dev/null 2>&1) \
  || die "apt-get source kubernetes=$K8S_DEB_VERSION failed (is bookworm on the mirror $mirror?)"
tar -C "$work" -xzf "$work"/kubernetes_*.orig.tar.gz
[ -d "$src/vendor" ] || die "the source package did not unpack to $src"

log "applying the vendor patch"
"$here/vendor-patch.sh" "$src"

# GOPATH mode, as Debian's own debian/rules and hack/lib/init.sh do (module mode with
# -mod=vendor fails on this tree). No network: GOPROXY=off.
cat >"$work/version" <<V
KUBE_GIT_VERSION='$K8S_VERSION'
KUBE_GIT_COMMIT='$K8S_COMMIT'
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
V
export PATH=$K8S_GO:$PATH GOPROXY=off GOFLAGS= CGO_ENABLED=0 KUBE_GIT_VERSION_FILE=$work/version
cd "$src"
step() { # NAME COMMAND...: runs at low priority, logs, reports the time
  local s=$(date +%s) name=$1; shift
  if ! nice -n 10 "$@" >>"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    die "build step $name failed; full log: $work/build.log"
  fi
  log "built $name in $(( $(date +%s) - s ))s"
}
log "building $K8S_VERSION (about 5-11 minutes on 2 cores; log: $work/build.log)"
step generated_files make generated_files
for b in $K8S_SERVER_BINS; do step "$b" make WHAT=cmd/"$b"; done

tmp=$K8S_CACHE/bin/.$key.partial
rm -rf "$tmp"
mkdir -p "$tmp"
for b in $K8S_SERVER_BINS; do cp "_output/bin/$b" "$tmp/"; done
x=$work/debs
deb_extract etcd-server "$x"
deb_extract etcd-client "$x"
deb_extract "kubernetes-client=$K8S_DEB_VERSION" "$x"
cp "$x/usr/bin/etcd" "$x/usr/bin/etcdctl" "$x/usr/bin/kubectl" "$tmp/"
"$tmp/kube-apiserver" --version | grep -qx "Kubernetes $K8S_VERSION" || die "kube-apiserver --version is not $K8S_VERSION"
mv "$tmp" "$bin"
cd /
rm -rf "$work"   # 3 GB of tree and Go cache; the binaries are all that is reused
log "build of $K8S_VERSION done in $(( $(date +%s) - t0 ))s: $bin"
echo "$bin"
