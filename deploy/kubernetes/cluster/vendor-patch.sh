#!/usr/bin/env bash
# The vendor patch Kubernetes 1.20.2 needs to run when built with Go >= 1.18: its vendored
# github.com/modern-go/reflect2 1.0.1 and github.com/json-iterator/go 1.1.10 crash
# (`fatal error: fault`, SIGSEGV in reflect2.UnsafeMapIterate) on the first custom-resource write
# or watch. Both are replaced by Debian's packaged newer releases (the same bump upstream made
# later). The build cache is keyed by a hash of this file, so changing it rebuilds.
#
#   usage: vendor-patch.sh SOURCE_TREE
set -euo pipefail
tree=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"

# package=version -> vendor directory it replaces
replacements=(
  "golang-github-modern-go-reflect2-dev=1.0.2-2 github.com/modern-go/reflect2"
  "golang-github-json-iterator-go-dev=1.1.12-1 github.com/json-iterator/go"
)
[ -d "$tree/vendor" ] || die "vendor-patch: $tree has no vendor/"
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
for r in "${replacements[@]}"; do
  pkg=${r%% *} dir=${r#* }
  deb_extract "$pkg" "$x/${pkg%%=*}"
  src=$x/${pkg%%=*}/usr/share/gocode/src/$dir
  [ -d "$src" ] || die "vendor-patch: $pkg has no $dir"
  # Only the package's own top-level sources: no tests, no sub-packages. Old files (such as
  # reflect2's go_above_17.go) must not survive, so the directory's sources go first.
  find "$tree/vendor/$dir" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  find "$src" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
    -exec cp {} "$tree/vendor/$dir/" \;
done
