#!/usr/bin/env bash
# Measures the two candidate designs of a lab segment on the running test cluster
# (test-cluster.sh up): ONE segment of 3 members, 2 pods on node A and 1 on node B, built
#  (a) "mesh":   each member has a VXLAN device (one VNI) with static all-zero FDB entries to every
#                other member's pod IP (head-end replication), learning on;
#  (b) "switch": a switch pod holds a Linux bridge with one VXLAN spoke per member (own VNI, remote =
#                member pod IP); each member has one VXLAN device to the switch pod.
# For each: radvd on member 1 (AdvDefaultLifetime 0: no default route), SLAAC on members 2 and 3,
# DAD (member 1's address added on member 3 must become dadfailed), ping6 between all pairs,
# ff02::1 answered by all, the MTU, OSPFv3 adjacency (FRR ospf6d) member 1 <-> member 3, and a
# member pod deleted and recreated with a new IP: what must be updated, where, and how long it takes.
# Prints figures; exits non-zero when something that must work does not. Cleans up its namespace.
# Pods: the lab image, NET_ADMIN + NET_RAW only, pinned with spec.nodeName.
# SEG_KEEP=1 leaves the namespace; SEG_SWITCH_NODE=a|b places the switch pod (default b, so the two
# members on A reach each other through node B: the worst case).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"

[ -f "$K8S_STATE/cluster.env" ] || die "segments: no test cluster (bash deploy/kubernetes/test-cluster.sh up)"
bin=$(sed -n 's/^BIN=//p' "$K8S_STATE/cluster.env")
image=$(sed -n 's/^LAB_IMAGE=//p' "$K8S_STATE/cluster.env")
ns=v6lab-segments-$$
kc() { "$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" -n "$ns" "$@"; }
ex() { local pod=$1; shift; kc exec "$pod" -- "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
say() { printf 'segments: %s\n' "$*"; }
fail() { printf 'segments: FAIL %s\n' "$*" >&2; exit 1; }
cleanup() {
  rm -f "/tmp/$ns.yaml"
  kc delete pods --all --grace-period=1 --wait=false >/dev/null 2>&1 || true
  kc wait --for=delete pod --all --timeout=60s >/dev/null 2>&1 || true
  "$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}
[ -n "${SEG_KEEP:-}" ] || trap cleanup EXIT
read -r -a nodes <<<"$K8S_NODES"
A=${nodes[0]} B=${nodes[1]}
case ${SEG_SWITCH_NODE:-b} in a) SWN=$A ;; b) SWN=$B ;; *) die "SEG_SWITCH_NODE must be a or b" ;; esac
PORT=4789

pod_yaml() { # NAME NODE [SYSCTL_YAML]
  cat <<Y
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {app: v6lab-segments}}
spec:
  nodeName: $2
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
${3:-}
  containers:
  - name: node
    image: $image
    imagePullPolicy: Never
    command: [sleep, infinity]
    securityContext:
      capabilities: {add: [NET_ADMIN, NET_RAW]}
---
Y
}
# Member 1 is the router: radvd wants forwarding on. Members 2 and 3 keep forwarding off (else the
# kernel ignores RAs) and the default accept_dad=1.
router_sysctls='  securityContext: {sysctls: [{name: net.ipv6.conf.all.forwarding, value: "1"}]}'
pod_of() { # DESIGN MEMBER -> pod name, node
  case $2 in 1) echo "$1-1 $A" ;; 2) echo "$1-2 $A" ;; 3) echo "$1-3 $B" ;; sw) echo "$1-sw $SWN" ;; esac
}
member_yaml() { # DESIGN MEMBER
  local p n; read -r p n <<<"$(pod_of "$1" "$2")"
  if [ "$2" = 1 ]; then pod_yaml "$p" "$n" "$router_sysctls"; else pod_yaml "$p" "$n"; fi
}
wait_running() { # POD...: polls until every pod is Running (deadline 120 s)
  local deadline=$((SECONDS + 120)) p
  for p in "$@"; do
    until [ "$(kc get pod "$p" -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; do
      ((SECONDS < deadline)) || { kc get pods -o wide >&2; fail "pod $p not Running in 120 s"; }
      sleep 0.2
    done
  done
}
podip() { kc get pod "$1" -o jsonpath='{.status.podIP}'; }

seg() { ex "$1" sh -ec "$2" || fail "segment commands failed in $1"; } # POD SCRIPT: one exec
radvd_start() { # POD PREFIX
  ex "$1" sh -ec "cat >/tmp/radvd.conf <<C
interface seg0 {
  AdvSendAdvert on;
  MinRtrAdvInterval 3;
  MaxRtrAdvInterval 4;
  AdvDefaultLifetime 0;
  prefix $2 { AdvOnLink on; AdvAutonomous on; };
};
C
radvd -C /tmp/radvd.conf -p /tmp/radvd.pid -m logfile -l /tmp/radvd.log </dev/null >/dev/null 2>&1" \
    || fail "radvd does not start in $1"
}
slaac_of() { # POD PREFIX_START -> the non-tentative global address on seg0, or nothing
  ex "$1" sh -c "ip -6 -o addr show dev seg0 scope global" 2>/dev/null \
    | awk -v p="${2%:}" '$4 ~ "^"p && !/tentative|dadfailed/ && !n++ { sub("/.*", "", $4); print $4 }' || true
}
ll_of() { ex "$1" sh -c "ip -6 -o addr show dev seg0 scope link" | awk '!n++ { sub("/.*", "", $4); print $4 }'; }
wait_usable() { # DESIGN PREFIX_START DEADLINE_S MEMBER...: SLAAC on each member, member 1 pings it
  local d=$1 pfx=$2 deadline=$((SECONDS + $3)) m a; shift 3
  for m in "$@"; do
    a=""
    until [ -n "$a" ] && ex "$d-1" ping -6 -c 1 -W 1 -q "$a" >/dev/null 2>&1; do
      ((SECONDS < deadline)) || return 1
      a=$(slaac_of "$d-$m" "$pfx")
      [ -n "$a" ] || sleep 0.2
    done
  done
}

# --- the pods (both designs at once; each design's clock starts when its pods are Running) ---
{
  for m in 1 2 3; do member_yaml mesh "$m"; member_yaml switch "$m"; done
  read -r p n <<<"$(pod_of switch sw)"; pod_yaml "$p" "$n"
} >"/tmp/$ns.yaml"
"$bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" create namespace "$ns" >/dev/null
for _ in $(seq 1 100); do kc get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
t=$(now)
kc apply -f "/tmp/$ns.yaml" >/dev/null
wait_running mesh-1 mesh-2 mesh-3 switch-1 switch-2 switch-3 switch-sw
say "7 pods Running in $(since "$t") s (mesh-1,2 and switch-1,2 on $A; mesh-3, switch-3 on $B; switch-sw on $SWN)"
eth_mtu=$(ex mesh-1 cat /sys/class/net/eth0/mtu)

declare -A IP
for p in mesh-1 mesh-2 mesh-3 switch-1 switch-2 switch-3 switch-sw; do IP[$p]=$(podip "$p"); done

mesh_member_script() { # MEMBER: seg0 with one all-zero FDB entry per other member
  local m=$1 o
  echo "ip link add seg0 type vxlan id 100 dstport $PORT dev eth0 learning"
  for o in 1 2 3; do [ "$o" = "$m" ] || echo "bridge fdb append 00:00:00:00:00:00 dev seg0 dst ${IP[mesh-$o]}"; done
  [ "$m" != 1 ] || echo "ip -6 addr add 2001:db8:10::1/64 dev seg0"
  echo "ip link set seg0 up"
}
switch_member_script() { # MEMBER: seg0 to the switch pod, VNI 200+MEMBER
  local m=$1
  echo "ip link add seg0 type vxlan id $((200 + m)) dstport $PORT remote ${IP[switch-sw]} dev eth0"
  [ "$m" != 1 ] || echo "ip -6 addr add 2001:db8:20::1/64 dev seg0"
  echo "ip link set seg0 up"
}
switch_script() { # the bridge (no address, no MLD snooping as on Docker) and one spoke per member
  local m
  echo "ip link add br0 type bridge mcast_snooping 0"
  echo "ip link set br0 addrgenmode none"
  for m in 1 2 3; do
    echo "ip link add sp$m type vxlan id $((200 + m)) dstport $PORT remote ${IP[switch-$m]} dev eth0 nolearning"
    echo "ip link set sp$m addrgenmode none master br0 up"
  done
  echo "ip link set br0 up"
}

declare -A RESULT
ospf_start() { # POD ROUTER_ID: zebra + ospf6d (as user frr) with seg0 in area 0, hello 1 s, dead 4 s.
  # FRR asks for CAP_SYS_ADMIN, which lab pods lack: the lab image's capshim drops it from the wish
  # list (the Docker runtime starts FRR the same way, see ARCHITECTURE.md).
  ex "$1" sh -ec "printf 'interface seg0\n ipv6 ospf6 area 0\n ipv6 ospf6 hello-interval 1\n ipv6 ospf6 dead-interval 4\n!\nrouter ospf6\n ospf6 router-id 198.18.0.$2\n!\n' >/tmp/frr.conf
chmod 644 /tmp/frr.conf; mkdir -p /var/run/frr; chown frr:frr /var/run/frr
export LD_PRELOAD=/usr/lib/v6lab/libcapshim.so
/usr/lib/frr/zebra -d -f /tmp/frr.conf </dev/null >/tmp/zebra.log 2>&1
for _ in \$(seq 1 50); do [ -S /var/run/frr/zserv.api ] && break; sleep 0.1; done
/usr/lib/frr/ospf6d -d -f /tmp/frr.conf </dev/null >/tmp/ospf6d.log 2>&1"
}
ospf_full() { # POD PEER_ID: the neighbour 198.18.0.PEER_ID is Full
  ex "$1" vtysh -c "show ipv6 ospf6 neighbor" 2>/dev/null \
    | awk -v r="198.18.0.$2" '$1 == r && $4 ~ /^Full/ { f = 1 } END { exit !f }'
}

measure() { # DESIGN PREFIX_START
  local d=$1 pfx=$2 t m o p out rtt pids=() CMDS EXECS
  t=$(now)
  if [ "$d" = mesh ]; then
    for m in 1 2 3; do seg "mesh-$m" "$(mesh_member_script "$m")" & pids+=($!); done
  else
    seg switch-sw "$(switch_script)" & pids+=($!)
    for m in 1 2 3; do seg "switch-$m" "$(switch_member_script "$m")" & pids+=($!); done
  fi
  for p in "${pids[@]}"; do wait "$p" || exit 1; done
  # The segment's cost: one exec per pod; its `ip link`/`bridge` commands (addresses not counted).
  if [ "$d" = mesh ]; then
    CMDS=$(for m in 1 2 3; do mesh_member_script "$m"; done | grep -cE '^(ip link|bridge) ' ); EXECS=3
  else
    CMDS=$( { switch_script; for m in 1 2 3; do switch_member_script "$m"; done; } | grep -cE '^(ip link|bridge) ' ); EXECS=4
  fi
  local t_cfg; t_cfg=$(since "$t")
  radvd_start "$d-1" "${pfx%::}::/64"
  wait_usable "$d" "$pfx" 30 2 3 || fail "$d: members 2 and 3 have no SLAAC address reachable from member 1 in 30 s"
  say "$d: usable (SLAAC on 2 and 3, member 1 pings both) $(since "$t") s after Running; configuration $t_cfg s ($EXECS execs, $CMDS ip/bridge commands in parallel)"
  RESULT[$d.usable]=$(since "$t") RESULT[$d.cmds]=$CMDS RESULT[$d.execs]=$EXECS

  declare -A G L
  G[1]=${pfx}1
  for m in 2 3; do G[$m]=$(slaac_of "$d-$m" "$pfx"); done
  for m in 1 2 3; do L[$m]=$(ll_of "$d-$m"); done
  say "$d: addresses 1=${G[1]} 2=${G[2]} 3=${G[3]}"

  for m in 1 2 3; do for o in 1 2 3; do
    [ "$m" != "$o" ] || continue
    out=$(ex "$d-$m" ping -6 -c 5 -i 0.2 -W 2 -q "${G[$o]}") || fail "$d: member $m cannot ping member $o (${G[$o]})"
    rtt=$(awk -F/ '/^rtt/ { print $5 }' <<<"$out")
    say "$d: ping6 $m -> $o ok, avg RTT $rtt ms"
    RESULT[$d.rtt.$m$o]=$rtt
  done; done
  out=$(ex "$d-2" ip -6 neigh show dev seg0)
  grep -qE "^${G[3]} .*(REACHABLE|STALE|DELAY|PROBE)" <<<"$out" \
    || fail "$d: member 2 has no neighbour entry for member 3 (ND)"

  for m in 1 2 3; do
    out=$(ex "$d-$m" ping -6 -c 2 -W 2 "ff02::1%seg0" || true)
    for o in 1 2 3; do
      [ "$m" = "$o" ] || grep -q "from ${L[$o]}" <<<"$out" || fail "$d: ff02::1 from member $m not answered by member $o (${L[$o]})"
    done
  done
  say "$d: ping6 ff02::1%seg0 from each member answered by all others"

  local mtu; mtu=$(ex "$d-1" cat /sys/class/net/seg0/mtu)
  ex "$d-1" ping -6 -c 1 -W 2 -M do -s $((mtu - 48)) -q "${G[3]}" >/dev/null \
    || fail "$d: a full-size packet (MTU $mtu) from member 1 to 3 does not pass"
  if ex "$d-1" ping -6 -c 1 -W 2 -M do -s $((mtu - 47)) -q "${G[3]}" >/dev/null 2>&1; then
    fail "$d: a packet over the MTU $mtu passed unfragmented"
  fi
  say "$d: MTU $mtu (pod eth0 $eth_mtu): $((mtu - 48)) bytes of ICMPv6 payload pass across nodes, one more does not"
  RESULT[$d.mtu]=$mtu

  ex "$d-3" ip -6 addr add "${G[1]}/64" dev seg0 || fail "$d: cannot add member 1's address on member 3"
  local deadline=$((SECONDS + 10))
  until ex "$d-3" ip -6 addr show dev seg0 | grep "${G[1]}/" | grep dadfailed >/dev/null; do
    ((SECONDS < deadline)) || fail "$d: duplicate ${G[1]} on member 3 not detected (no dadfailed in 10 s)"
    sleep 0.2
  done
  ex "$d-3" ip -6 addr del "${G[1]}/64" dev seg0
  ex "$d-1" ip -6 addr show dev seg0 | grep "${G[1]}/" | grep -v dadfailed >/dev/null || fail "$d: member 1 lost its address"
  say "$d: DAD: member 1's ${G[1]} added on member 3 becomes dadfailed"

  t=$(now)
  ospf_start "$d-1" 1 && ospf_start "$d-3" 3 || fail "$d: FRR (zebra, ospf6d) does not start"
  deadline=$((SECONDS + 30))
  until ospf_full "$d-1" 3 && ospf_full "$d-3" 1; do
    ((SECONDS < deadline)) || { ex "$d-1" vtysh -c "show ipv6 ospf6 neighbor" >&2 || true; fail "$d: no OSPFv3 adjacency 1 <-> 3 in 30 s"; }
    sleep 0.5
  done
  say "$d: OSPFv3 (ospf6d) adjacency member 1 <-> member 3 Full in $(since "$t") s"
  RESULT[$d.ospf]=$(since "$t")
  for m in 1 3; do ex "$d-$m" sh -c 'kill $(cat /var/run/frr/ospf6d.pid /var/run/frr/zebra.pid)' || true; done
}

measure mesh 2001:db8:10::
measure switch 2001:db8:20::

# --- a member pod deleted and recreated: it comes back with a new pod IP ---
recreate() { # DESIGN PREFIX_START
  local d=$1 pfx=$2 old new t a stale mll out p1 p2
  old=${IP[$d-3]}
  kc delete pod "$d-3" --grace-period=1 --wait=true >/dev/null
  member_yaml "$d" 3 | kc apply -f - >/dev/null
  wait_running "$d-3"
  new=$(podip "$d-3") IP[$d-3]=$new
  [ "$new" != "$old" ] || say "$d: NOTE member 3 came back with the same pod IP $new"
  t=$(now)
  # The new member alone first: its peers still send to the old IP.
  if [ "$d" = mesh ]; then seg "$d-3" "$(mesh_member_script 3)"; else seg "$d-3" "$(switch_member_script 3)"; fi
  stale="no SLAAC address"
  if wait_usable "$d" "$pfx" 6 3; then stale="usable"; fi
  mll=$(ll_of "$d-3")
  out=$(ex "$d-1" ping -6 -c 2 -W 1 "ff02::1%seg0" || true)
  grep -q "from $mll" <<<"$out" && stale="$stale, ff02::1 answered" || stale="$stale, ff02::1 not answered"
  say "$d: member 3 recreated ($old -> $new), only itself configured: after 6 s $stale"
  # Now what the other side must change.
  local u t2; t2=$(now)
  if [ "$d" = mesh ]; then
    u="bridge fdb del 00:00:00:00:00:00 dev seg0 dst $old
bridge fdb append 00:00:00:00:00:00 dev seg0 dst $new"
    seg mesh-1 "$u" & p1=$!; seg mesh-2 "$u" & p2=$!
    wait "$p1" && wait "$p2" || exit 1
    RESULT[$d.update]="2 peers (n-1): 2 execs, 4 commands (fdb del + append in each)"
  else
    # (`bridge fdb replace` refuses the all-zero entry: "Cannot replace non-unicast fdb entries")
    u="bridge fdb del 00:00:00:00:00:00 dev sp3 dst $old
bridge fdb append 00:00:00:00:00:00 dev sp3 dst $new"
    seg switch-sw "$u"
    RESULT[$d.update]="the switch pod only: 1 exec, 2 commands (fdb del + append on spoke sp3)"
  fi
  wait_usable "$d" "$pfx" 30 3 2 || fail "$d: recreated member 3 not usable 30 s after its peers were updated"
  a=$(slaac_of "$d-3" "$pfx")
  ex "$d-2" ping -6 -c 1 -W 2 -q "$a" >/dev/null || fail "$d: member 2 cannot reach the recreated member 3"
  RESULT[$d.recreate]=$(since "$t2")
  say "$d: recreated member 3 usable again ($a) ${RESULT[$d.recreate]} s after the update (Running + 6 s stale check + update + SLAAC: $(since "$t") s); updated: ${RESULT[$d.update]}"
}
recreate mesh 2001:db8:10::
recreate switch 2001:db8:20::

# --- summary ---
echo
say "summary (3 members, 2 on $A, 1 on $B; switch pod on $SWN)"
printf '%-8s %9s %6s %6s %8s %8s %8s %6s %8s %10s\n' design usable_s execs cmds "rtt12" "rtt13" "rtt23" mtu ospf_s recreate_s
for d in mesh switch; do
  printf '%-8s %9s %6s %6s %8s %8s %8s %6s %8s %10s\n' "$d" "${RESULT[$d.usable]}" "${RESULT[$d.execs]}" "${RESULT[$d.cmds]}" \
    "${RESULT[$d.rtt.12]}" "${RESULT[$d.rtt.13]}" "${RESULT[$d.rtt.23]}" "${RESULT[$d.mtu]}" "${RESULT[$d.ospf]}" "${RESULT[$d.recreate]}"
done
echo
say "objects and commands per segment of N members (formulas; N=3 is what ran above)"
printf '%-5s | %-44s | %-44s\n' N "mesh: pods / vxlan devs / static FDB / cmds" "switch: pods / vxlan devs / static FDB / cmds"
for n in 3 10 30 100; do
  printf '%-5s | %6s / %6s / %7s / %7s %14s | %6s / %6s / %7s / %7s\n' "$n" \
    "$n" "$n" "$((n * (n - 1)))" "$((n * (n + 1)))" "" \
    "$((n + 1))" "$((2 * n))" "$((2 * n))" "$((4 * n + 3))"
done
say "a member pod recreated with a new IP: mesh updates every other member (n-1 pods, 2 commands each);"
say "switch updates the switch pod only (2 commands); a recreated switch pod updates all n members"
say "all checks passed"
