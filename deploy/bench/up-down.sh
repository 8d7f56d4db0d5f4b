#!/usr/bin/env bash
# Benchmark (prints figures; it is not a test): the NAT64/DNS64 lab brought up until its IPv6-only
# client loads the IPv4-only page by name, then removed, with v6lab and with the compose peer the
# founders provided (/work/shared/bench/peers). Runs alternate (v6lab, peer, v6lab, peer, ...).
#
#   bash deploy/bench/up-down.sh            # 5 runs of each
#   RUNS=9 bash deploy/bench/up-down.sh
#
# Environment: RUNS (default 5), PEERS (the peer folder, default /work/shared/bench/peers),
# READY_TIMEOUT (seconds one lab may take to load the page, default 120).
# Needs root. Creates only the lab `bench-nat64` and the compose project `peernat64`, and removes
# both on exit, on error and on Ctrl-C. Never touches other labs.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

RUNS=${RUNS:-5}
PEERS=${PEERS:-/work/shared/bench/peers}
READY_TIMEOUT=${READY_TIMEOUT:-120}
LAB=bench-nat64
TOPOLOGY=topologies/nat64-dns64.yaml
V6LAB=$root/target/release/v6lab
V6LAB_PAGE="hello from the IPv4-only web"
PEER_PROJECT=peernat64
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 2; }

say() { echo "bench: $*" >&2; }
now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---------------------------------------------------------------- clean-up, whatever happens
tmp=$(mktemp -d /tmp/bench-up-down.XXXXXX)
peer_dir=$tmp/compose-nat64
cleaned=0
cleanup() {
  [ "$cleaned" = 1 ] && return
  cleaned=1
  if [ -x "$V6LAB" ]; then "$V6LAB" down "$LAB" --quiet >/dev/null 2>&1 || say "warning: \`v6lab down $LAB\` failed"; fi
  if [ -x "$V6LAB" ]; then "$V6LAB" down bench-forty --quiet >/dev/null 2>&1 || true; fi
  if [ -f "$peer_dir/docker-compose.yml" ] && command -v docker-compose >/dev/null; then
    (cd "$peer_dir" && docker-compose -p "$PEER_PROJECT" down -t 0 >/dev/null 2>&1) || say "warning: removing the compose peer failed"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say "interrupted; removing both labs"; cleanup; exit 130' INT TERM

# ---------------------------------------------------------------- preparation (not timed)
bash deploy/setup.sh
if [ ! -x "$V6LAB" ]; then
  say "building target/release/v6lab (once; a few minutes on 2 cores)"
  cargo build --release --bin v6lab
fi
[ -x /usr/bin/time ] || { say "installing time"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if ! command -v docker-compose >/dev/null; then
  say "installing docker-compose (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
fi
say "lab image: v6lab images build"
"$V6LAB" images build
say "peer image: $PEERS/build-node-image.sh"
bash "$PEERS/build-node-image.sh"
# A private copy of the peer: the shared folder is read-only for most users, and the copy keeps
# whatever compose writes away from it. The project name is fixed (-p peernat64) by its scripts.
cp -r "$PEERS/compose-nat64" "$tmp/"
chmod -R u+w "$tmp"

# Leftovers of an earlier, killed run of this script (only our own names).
"$V6LAB" down "$LAB" --quiet >/dev/null 2>&1 || true
(cd "$peer_dir" && docker-compose -p "$PEER_PROJECT" down -t 0 >/dev/null 2>&1) || true

# Memory in use by the given containers, in MiB (docker stats prints e.g. "12.3MiB / 256MiB").
containers_mib() {
  [ $# -gt 0 ] || { echo 0; return; }
  docker stats --no-stream --format '{{.MemUsage}}' "$@" | awk '
    { v = $1; u = v; sub(/[0-9.]+/, "", u); n = v + 0
      f = (u == "B") ? 1/1048576 : (u == "KiB" || u == "kB") ? 1/1024 : (u == "MiB" || u == "MB") ? 1 : (u == "GiB" || u == "GB") ? 1024 : 0
      s += n * f }
    END { printf "%.1f", s }'
}

# ---------------------------------------------------------------- one run of each tool
# Each appends "up down total" to a results file and prints one line.
run_v6lab() {
  local i=$1 t0 t1 t2 t3 polls=0 out rss
  t0=$(now)
  if ! /usr/bin/time -v -o "$tmp/time.txt" "$V6LAB" up "$TOPOLOGY" --complete --name "$LAB" --quiet; then
    say "v6lab run $i: \`v6lab up\` failed"; return 1
  fi
  # Poll until the page loads; no sleeps, a deadline.
  local deadline
  deadline=$(awk -v t="$t0" -v d="$READY_TIMEOUT" 'BEGIN { printf "%d", t + d }')
  while :; do
    polls=$((polls + 1))
    out=$("$V6LAB" exec "$LAB" client -- curl -s -m 1 http://www.example.net/ 2>/dev/null || true)
    [[ $out == *"$V6LAB_PAGE"* ]] && break
    if [ "${EPOCHREALTIME%.*}" -ge "$deadline" ]; then
      say "v6lab run $i: the page did not load within ${READY_TIMEOUT}s (last answer: ${out:-nothing})"; return 1
    fi
  done
  t1=$(now)
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/time.txt")
  # Not timed: memory of the lab's containers once ready.
  local mem
  mem=$(containers_mib $(docker ps -q --filter "label=dev.v6lab.lab=$LAB"))
  t2=$(now)
  "$V6LAB" down "$LAB" --quiet || { say "v6lab run $i: \`v6lab down\` failed"; return 1; }
  t3=$(now)
  local up down
  up=$(secs "$t0" "$t1"); down=$(secs "$t2" "$t3")
  echo "$up $down $(awk -v a="$up" -v b="$down" -v r="$rss" 'BEGIN { printf "%.3f %.1f", a + b, r / 1024 }') $mem" >>"$tmp/v6lab.txt"
  printf 'run %d v6lab: up-until-ready %6.2fs  down %5.2fs  (%d page polls, CLI peak RSS %d KiB, lab containers %s MiB, load %s)\n' \
    "$i" "$up" "$down" "$polls" "$rss" "$mem" "$(cut -d' ' -f1 /proc/loadavg)"
}

run_peer() {
  local i=$1 t0 t1 t2 t3
  t0=$(now)
  bash "$peer_dir/up-ready.sh" || { say "peer run $i: up-ready.sh failed"; return 1; }
  t1=$(now)
  local mem
  mem=$(containers_mib $(docker ps -q --filter "label=com.docker.compose.project=$PEER_PROJECT"))
  t2=$(now)
  bash "$peer_dir/down.sh" || { say "peer run $i: down.sh failed"; return 1; }
  t3=$(now)
  local up down
  up=$(secs "$t0" "$t1"); down=$(secs "$t2" "$t3")
  echo "$up $down $(awk -v a="$up" -v b="$down" 'BEGIN { printf "%.3f", a + b }') 0 $mem" >>"$tmp/peer.txt"
  printf 'run %d peer : up-until-ready %6.2fs  down %5.2fs  (lab containers %s MiB, load %s)\n' \
    "$i" "$up" "$down" "$mem" "$(cut -d' ' -f1 /proc/loadavg)"
}

# ---------------------------------------------------------------- the runs
others=$(docker ps -q | wc -l)
say "$RUNS runs of each, alternating; $others other containers running on this engine; load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$RUNS"); do
  run_v6lab "$i"
  run_peer "$i"
done

# ---------------------------------------------------------------- figures
# stats FILE COLUMN -> "median min max"
stats() {
  awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '
    { v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}
row() { # tool phase file column unit
  read -r med min max < <(stats "$3" "$4")
  printf '%-6s %-15s %8.2f %8.2f %8.2f  %s\n' "$1" "$2" "$med" "$min" "$max" "$5"
}
med() { stats "$1" "$2" | cut -d' ' -f1; }

echo
echo "NAT64/DNS64 lab, up until the IPv6-only client loads the IPv4-only page, then down"
echo "$RUNS runs of each, alternating; $(nproc) cores, Docker $(docker version --format '{{.Server.Version}}'), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
printf '%-6s %-15s %8s %8s %8s\n' tool phase median min max
for t in v6lab peer; do
  row "$t" up-until-ready "$tmp/$t.txt" 1 s
  row "$t" down "$tmp/$t.txt" 2 s
  row "$t" total "$tmp/$t.txt" 3 s
done
echo
awk -v pu="$(med "$tmp/peer.txt" 1)" -v vu="$(med "$tmp/v6lab.txt" 1)" \
    -v pd="$(med "$tmp/peer.txt" 2)" -v vd="$(med "$tmp/v6lab.txt" 2)" \
    -v pt="$(med "$tmp/peer.txt" 3)" -v vt="$(med "$tmp/v6lab.txt" 3)" 'BEGIN {
  printf "ratio of medians, peer / v6lab (above 1: v6lab is faster)\n"
  printf "  up-until-ready %.2f\n  down           %.2f\n  total          %.2f\n", pu / vu, pd / vd, pt / vt }'
echo
row v6lab "CLI peak RSS" "$tmp/v6lab.txt" 4 "MiB (the \`v6lab up\` process, /usr/bin/time -v)"
row v6lab "containers mem" "$tmp/v6lab.txt" 5 "MiB (sum over the lab's 3 containers once ready, docker stats)"
row peer "containers mem" "$tmp/peer.txt" 5 "MiB (same, the peer's 3 containers)"

# A generated 40-node lab: 4 routers, 36 hosts on 4 IPv6-only LANs and a dual-stack core; time
# per node of `up` (until every node is ready) and of `down`.
big=$tmp/forty.yaml
{
  echo "name: bench-forty"
  echo "segments:"
  echo "  core: {family: dual-stack, ra: none}"
  for s in 1 2 3 4; do echo "  lan$s: ipv6-only"; done
  echo "nodes:"
  for r in 1 2 3 4; do printf '  r%s: {role: router, interfaces: {eth1: core, eth2: lan%s}}\n' "$r" "$r"; done
  for h in $(seq 1 36); do printf '  h%s: {role: host, interfaces: {eth1: lan%s}}\n' "$h" $(( (h - 1) % 4 + 1 )); done
} > "$big"
"$V6LAB" down bench-forty --quiet >/dev/null 2>&1 || true
t0=$(date +%s%N)
"$V6LAB" up "$big" --quiet
t1=$(date +%s%N)
"$V6LAB" down bench-forty --quiet
t2=$(date +%s%N)
awk -v up=$(( (t1 - t0) / 1000000 )) -v down=$(( (t2 - t1) / 1000000 )) 'BEGIN {
  printf "\n40-node lab (4 routers, 36 SLAAC hosts): up %.1f s (%.0f ms per node), down %.1f s (%.0f ms per node)\n", up / 1000, up / 40, down / 1000, down / 40 }'
