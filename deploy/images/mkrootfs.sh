#!/usr/bin/env bash
# Builds the v6lab node image's root filesystem as a tarball, from Debian packages only (no container
# registry): mmdebstrap (Debian bookworm, variant minbase, the same base as the debian:bookworm image)
# from the host's configured Debian mirror, plus the packages of packages.txt, plus the rootfs/
# overlay, then rootfs/usr/lib/v6lab/image-finalize run inside it.
#
#   usage: mkrootfs.sh OUT.tar          (then: docker import OUT.tar v6lab/node:TAG)
#
# Prints nothing on success. On failure prints the reason and the end of mmdebstrap's log on stderr
# and exits non-zero; OUT.tar is only written (renamed into place) when the build succeeded.
# Environment: V6LAB_DEBIAN_MIRROR (e.g. http://deb.debian.org/debian) and V6LAB_DEBIAN_SECURITY
# (e.g. http://deb.debian.org/debian-security, or "none") override the mirrors read from the host.
# The Dockerfile next to this script builds the same contents for users who have a registry.
set -euo pipefail

die() { echo "mkrootfs: $*" >&2; exit 1; }

[ $# -eq 1 ] && [ -n "$1" ] || die "usage: $0 OUT.tar"
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=bookworm
[ -f "$here/packages.txt" ] || die "missing $here/packages.txt"
[ -d "$here/rootfs" ] || die "missing $here/rootfs/"
[ -x "$here/rootfs/usr/lib/v6lab/image-finalize" ] || die "missing or not executable: $here/rootfs/usr/lib/v6lab/image-finalize"
command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap, or run deploy/setup.sh)"
[ "$(id -u)" -eq 0 ] || command -v unshare >/dev/null || die "run as root (or install util-linux unshare for mmdebstrap's unshare mode)"
outdir=$(dirname -- "$out")
[ -d "$outdir" ] && [ -w "$outdir" ] || die "cannot write into $outdir"

# Packages: one per line, '#' comments, blank lines ignored.
pkgs=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$here/packages.txt" | paste -sd, -)
[ -n "$pkgs" ] || die "no packages in $here/packages.txt"

# Mirrors: the host's configured Debian mirror (deb822 .sources or one-line .list files). The main
# archive is the first URI not serving a *-security suite; the security archive the first that does.
sources_uris() { # prints "URI SUITE" pairs
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN{IGNORECASE=1}
         /^[[:space:]]*$/ { flush() ; next }
         /^Types:/  { types=$0 }
         /^URIs:/   { sub(/^URIs:[[:space:]]*/, ""); uris=$0 }
         /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites=$0 }
         /^Enabled:[[:space:]]*no/ { disabled=1 }
         function flush(   u, s, nu, ns, i, j) {
           if (uris != "" && types ~ /[[:space:]]deb([[:space:]]|$)/ && !disabled) {
             nu = split(uris, u, /[[:space:]]+/); ns = split(suites, s, /[[:space:]]+/)
             for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) if (u[i] != "" && s[j] != "") print u[i], s[j]
           }
           types=""; uris=""; suites=""; disabled=0
         }
         END { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
  done
}
mirror=${V6LAB_DEBIAN_MIRROR:-}
security=${V6LAB_DEBIAN_SECURITY:-}
if [ -z "$mirror" ] || [ -z "$security" ]; then
  pairs=$(sources_uris | grep -i debian || true)
  [ -n "$mirror" ] || mirror=$(awk '$2 !~ /-security$/ { print $1; exit }' <<<"$pairs")
  [ -n "$security" ] || security=$(awk '$2 ~ /-security$/ { print $1; exit }' <<<"$pairs")
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d/}; set V6LAB_DEBIAN_MIRROR"
mirror=${mirror%/}
sources=("deb $mirror $suite main" "deb $mirror $suite-updates main")
if [ -n "$security" ] && [ "$security" != none ]; then
  sources+=("deb ${security%/} $suite-security main")
fi

# apt settings of the host that the build needs too: a proxy (apt-cacher-ng, ...) and snapshot
# mirrors whose Release files are past Valid-Until. They are used for the build only and are not
# left in the image (the customize hook removes mmdebstrap's apt.conf.d/99mmdebstrap).
aptopts=()
if command -v apt-config >/dev/null; then
  while IFS= read -r line; do
    case $line in
      'Acquire::http::Proxy '*|'Acquire::https::Proxy '*|'Acquire::Check-Valid-Until '*|'Acquire::Check-Date '*)
        aptopts+=("--aptopt=${line}") ;;
    esac
  done < <(apt-config dump 2>/dev/null)
fi

log=$(mktemp "${TMPDIR:-/tmp}/v6lab-mkrootfs.XXXXXX.log")
partial=$outdir/.$(basename -- "$out").partial.$$
trap 'rm -f "$log" "$partial"' EXIT

# The overlay goes in with root ownership and sane modes whatever the checkout's owner and umask;
# existing directories (/, /etc, ...) keep their metadata.
overlay_hook="tar -C '$here/rootfs' --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w --exclude=.gitkeep -cf - . | tar -C \"\$1\" --no-overwrite-dir -xpf -"

if ! mmdebstrap \
    --variant=minbase \
    --format=tar \
    --include="$pkgs" \
    --dpkgopt="$here/rootfs/etc/dpkg/dpkg.cfg.d/01-v6lab-nodoc" \
    "${aptopts[@]}" \
    --customize-hook="$overlay_hook" \
    --customize-hook='chroot "$1" /usr/lib/v6lab/image-finalize' \
    --customize-hook='rm -f "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap" "$1/etc/apt/apt.conf.d/99mmdebstrap"' \
    "$suite" "$partial" "${sources[@]}" >"$log" 2>&1; then
  echo "mkrootfs: mmdebstrap failed (mirror $mirror, security ${security:-none}); last lines of its log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
[ -s "$partial" ] || die "mmdebstrap succeeded but wrote no tarball"
mv -f "$partial" "$out" || die "cannot write $out"
