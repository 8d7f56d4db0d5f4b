#!/usr/bin/env bash
# Builds the v6lab controller's image without a registry: Debian bookworm minbase and
# ca-certificates by mmdebstrap (from the host's Debian mirror, as the lab image), plus the v6lab
# binary at /usr/local/bin/v6lab and the lab image's recipe (deploy/images) at
# /usr/share/v6lab/images, from which the controller knows the lab image's tag; `docker import`ed
# as v6lab/controller:<hash>, where <hash> is taken from the binary, the recipe and this script.
# Entrypoint `v6lab serve`; runs as uid/gid 65532 (user `v6lab`, no login, no home) and needs
# nothing writable but its state directory /var/lib/v6lab.
#
#   usage: controller-image.sh [BINARY]    prints the image reference on stdout
#
# BINARY defaults to target/release/v6lab, else target/debug/v6lab, of this checkout. The base
# (the mmdebstrap tarball, about 135 MB) is cached by a hash of this script under
# $V6LAB_IMAGE_CACHE (default /var/cache/v6lab/controller-image), so a new binary costs one
# `docker import`. Environment: V6LAB_DEBIAN_MIRROR overrides the mirror, V6LAB_DEBIAN_SECURITY
# the security archive ("none": without it).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/cluster/common.sh"
log() { printf 'controller-image: %s\n' "$*" >&2; }
die() { printf 'controller-image: %s\n' "$*" >&2; exit 1; }

REPO=v6lab/controller
UID_GID=65532
cache=${V6LAB_IMAGE_CACHE:-/var/cache/v6lab/controller-image}

case ${1:-} in -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || die "usage: $0 [BINARY]"
root=$(cd "$here/../.." && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
  for c in "$root/target/release/v6lab" "$root/target/debug/v6lab"; do
    [ -x "$c" ] && { bin=$c; break; }
  done
  [ -n "$bin" ] || die "no v6lab binary in $root/target/{release,debug}: build it (cargo build --release -p v6lab) or name it"
fi
[ -f "$bin" ] && [ -x "$bin" ] || die "$bin is not an executable file"
"$bin" --version >/dev/null 2>&1 || die "$bin does not run here (is it a v6lab binary for this machine?)"
if ldd "$bin" 2>/dev/null | grep -q 'not found'; then
  die "$bin needs libraries this machine lacks: $(ldd "$bin" | grep 'not found' | tr -s ' \t' ' ')"
fi
"$bin" serve --help 2>/dev/null | grep -q -- '--runtime' \
  || log "warning: $bin has no \`serve --runtime\`: it cannot run controller.yaml (built before the Kubernetes runtime?)"
docker info >/dev/null 2>&1 || die "the Docker engine is not running (bash deploy/setup.sh starts it)"

sum=$(sha256sum "$bin" | cut -d' ' -f1)
# The lab image's dpkg filter: no documentation but copyright files, no manual pages, no translations.
nodoc=$root/deploy/images/rootfs/etc/dpkg/dpkg.cfg.d/01-v6lab-nodoc
[ -f "$nodoc" ] || die "missing $nodoc"
recipe=$root/deploy/images
[ -f "$recipe/packages.txt" ] && [ -f "$recipe/mkrootfs.sh" ] || die "missing the lab image's recipe in $recipe"
recipe_sum=$(cd "$recipe" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
hash=$( { echo "$sum $recipe_sum"; cat "$0" "$nodoc"; } | sha256sum | cut -c1-12)
ref=$REPO:$hash
if docker image inspect "$ref" >/dev/null 2>&1; then echo "$ref"; exit 0; fi

# The base, once per version of this script and of the dpkg filter.
base_key=$(cat "$0" "$nodoc" | sha256sum | cut -c1-12)
base=$cache/base-$base_key.tar
mkdir -p "$cache"
exec 8>"$cache/.lock"
flock 8
if [ ! -s "$base" ]; then
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  mirror=$(debian_mirror)
  security=${V6LAB_DEBIAN_SECURITY:-}
  if [ -z "$security" ]; then
    # The host's security archive, as deploy/images/mkrootfs.sh finds it (deb822 or one-line).
    security=$(awk 'BEGIN{IGNORECASE=1} /^URIs:/{u=$2} /^Suites:/ && /bookworm-security/ && u!="" {print u; exit}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$security" ] || security=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" && $3 == "bookworm-security" { print $2; exit }')
  fi
  sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main")
  [ -z "$security" ] || [ "$security" = none ] || sources+=("deb ${security%/} bookworm-security main")
  log "building the base with mmdebstrap (bookworm minbase + ca-certificates from $mirror)"
  partial=$cache/.base-$base_key.tar.partial
  # The user the controller runs as; its state directory; nothing of apt's or dpkg's caches.
  user_hook="echo 'v6lab:x:$UID_GID:$UID_GID:v6lab controller:/nonexistent:/usr/sbin/nologin' >>\"\$1/etc/passwd\";
    echo 'v6lab:x:$UID_GID:' >>\"\$1/etc/group\";
    install -d -m 0700 -o $UID_GID -g $UID_GID \"\$1/var/lib/v6lab\";
    rm -rf \"\$1\"/var/cache/apt/* \"\$1\"/var/lib/apt/lists/*"
  # The host's apt proxy and snapshot settings, for the build only (as mkrootfs.sh).
  aptopts=()
  while IFS= read -r line; do
    case $line in
      'Acquire::http::Proxy '* | 'Acquire::https::Proxy '* | 'Acquire::Check-Valid-Until '* | 'Acquire::Check-Date '*)
        aptopts+=("--aptopt=$line") ;;
    esac
  done < <(apt-config dump 2>/dev/null || true)
  if ! mmdebstrap --variant=minbase --format=tar --include=ca-certificates "${aptopts[@]}" \
      --dpkgopt="$nodoc" \
      --customize-hook="$user_hook" \
      --customize-hook='rm -f "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap" "$1/etc/apt/apt.conf.d/99mmdebstrap"' \
      bookworm "$partial" "${sources[@]}" >"$cache/mmdebstrap.log" 2>&1; then
    tail -n 30 "$cache/mmdebstrap.log" >&2
    rm -f "$partial"
    die "mmdebstrap failed (mirror $mirror); log: $cache/mmdebstrap.log"
  fi
  mv -f "$partial" "$base"
  rm -f "$cache/mmdebstrap.log"
  find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "base-$base_key.tar" -delete   # older recipes

fi

# The base plus the binary, imported.
work=$(mktemp -d "${TMPDIR:-/tmp}/v6lab-controller-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$base" "$work/image.tar"
install -D -m 0755 "$bin" "$work/root/usr/local/bin/v6lab"
mkdir -p "$work/root/usr/share/v6lab"
cp -R "$recipe" "$work/root/usr/share/v6lab/images"
tar -C "$work/root" --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w \
  -rf "$work/image.tar" ./usr/local/bin/v6lab ./usr/share/v6lab
docker import \
  --change 'ENTRYPOINT ["/usr/local/bin/v6lab", "serve"]' \
  --change "USER $UID_GID:$UID_GID" \
  --change 'WORKDIR /var/lib/v6lab' \
  --change 'EXPOSE 7464/tcp 2222/tcp' \
  --change "LABEL dev.v6lab.binary-sha256=$sum" \
  "$work/image.tar" "$ref" >/dev/null
log "built $ref from $bin"
echo "$ref"
