#!/usr/bin/env bash
# Puts v6lab's images on the nodes of a Kubernetes cluster without a registry: `docker save`s the
# lab image and the controller image into one archive, then imports it into each node's
# containerd (`ctr -n k8s.io images import`), labels the images pinned (containerd 1.7 and newer
# then keep them out of the kubelet's image garbage collection) and checks they are there.
#
#   load-images.sh [OPTIONS] NODE...                   over ssh (NODE: host or user@host; needs
#                                                      root there, or --sudo with sudo -n)
#   load-images.sh [OPTIONS] --docker-nodes NAME...    kind-style node containers (docker exec)
#   load-images.sh [OPTIONS] --output FILE             writes the archive, to carry to the nodes
#
# Options:
#   --lab-image REF|none         default: the newest v6lab/node:<hash> in the Docker engine
#   --controller-image REF|none  default: the newest v6lab/controller:<hash> (controller-image.sh)
#   --ctr CMD                    the node's ctr command (default ctr; k3s: "k3s ctr")
#   --sudo                       run ctr with `sudo -n` on ssh nodes
# Nodes are loaded in parallel; the exit status is non-zero if any node failed.
set -euo pipefail
log() { printf 'load-images: %s\n' "$*" >&2; }
die() { printf 'load-images: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

lab=""; controller=""; mode=ssh; output=""; ctr=ctr; sudo=""; nodes=()
while [ $# -gt 0 ]; do
  case $1 in
    --lab-image) [ $# -ge 2 ] || usage; lab=$2; shift 2 ;;
    --controller-image) [ $# -ge 2 ] || usage; controller=$2; shift 2 ;;
    --docker-nodes) mode=docker; shift ;;
    --output) [ $# -ge 2 ] || usage; mode="file"; output=$2; shift 2 ;;
    --ctr) [ $# -ge 2 ] || usage; ctr=$2; shift 2 ;;
    --sudo) sudo="sudo -n"; shift ;;
    -h | --help) usage ;;
    -*) log "unknown option $1"; usage ;;
    *) nodes+=("$1"); shift ;;
  esac
done
case $mode in
  file) [ ${#nodes[@]} -eq 0 ] || die "--output writes a file: name no nodes" ;;
  *) [ ${#nodes[@]} -gt 0 ] || { log "name at least one node"; usage; } ;;
esac
docker info >/dev/null 2>&1 || die "the Docker engine is not running (bash deploy/setup.sh starts it)"

newest() { # REPO: its newest hash-tagged image in the engine
  docker images "$1" --format '{{.Repository}}:{{.Tag}}' | grep -vE ':(latest|<none>)$' | head -n1
}
refs=()
pick() { # WHAT REF|none|"" REPO HINT
  local ref=$2
  [ "$ref" = none ] && return 0
  [ -n "$ref" ] || ref=$(newest "$3")
  [ -n "$ref" ] || die "no $1 image $3:<hash> in the Docker engine: $4"
  [[ $ref =~ ^[A-Za-z0-9._/:@-]+$ ]] || die "not an image reference: $ref"
  docker image inspect "$ref" >/dev/null 2>&1 || die "image $ref is not in the Docker engine"
  refs+=("$ref")
}
pick lab "$lab" v6lab/node "build it with \`v6lab images build\`, or pass --lab-image REF"
pick controller "$controller" v6lab/controller "build it with deploy/kubernetes/controller-image.sh, or pass --controller-image REF"
[ ${#refs[@]} -gt 0 ] || die "nothing to load (both images are none)"

# containerd's name for a Docker reference: docker.io/ and library/ made explicit.
full_ref() {
  local r=$1 first=${1%%/*}
  if [[ $r != */* ]]; then r=docker.io/library/$r
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then r=docker.io/$r
  fi
  echo "$r"
}
full=(); for r in "${refs[@]}"; do full+=("$(full_ref "$r")"); done

work=$(mktemp -d "${TMPDIR:-/tmp}/v6lab-load-images.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "saving ${refs[*]}"
docker save -o "$work/images.tar" "${refs[@]}"

pin_cmds() { local r; for r in "${full[@]}"; do echo "$1 -n k8s.io images label $r io.cri-containerd.pinned=pinned"; done; }
if [ "$mode" = file ]; then
  mv -f "$work/images.tar" "$output"
  log "wrote $output ($(du -h "$output" | cut -f1)); on each node, as root:"
  echo "$ctr -n k8s.io images import $output"
  pin_cmds "$ctr"
  exit 0
fi

# On the node: import from stdin, pin, list what containerd holds (checked here).
remote="set -e; $sudo $ctr -n k8s.io images import - >/dev/null; $(pin_cmds "$sudo $ctr" | sed 's/$/ >\/dev\/null;/' | tr '\n' ' ') $sudo $ctr -n k8s.io images ls -q"
load() { # NODE: prints what containerd holds after the import
  local n=$1
  case $mode in
    docker) docker exec -i "$n" sh -c "$remote" <"$work/images.tar" ;;
    ssh) ssh -o BatchMode=yes -C "$n" "$remote" <"$work/images.tar" ;;
  esac
}
pids=()
for i in "${!nodes[@]}"; do
  log "loading into ${nodes[$i]}"
  load "${nodes[$i]}" >"$work/$i.out" 2>"$work/$i.err" &
  pids+=($!)
done
failed=0
for i in "${!nodes[@]}"; do
  n=${nodes[$i]}
  if ! wait "${pids[$i]}"; then
    log "$n: import failed: $(tail -n 3 "$work/$i.err" | tr '\n' ' ')"
    failed=1; continue
  fi
  for r in "${full[@]}"; do
    grep -qxF "$r" "$work/$i.out" || { log "$n: $r is missing after the import"; failed=1; }
  done
done
[ $failed -eq 0 ] || die "some nodes were not loaded (see above)"
log "loaded ${refs[*]} into ${#nodes[@]} node(s)"
