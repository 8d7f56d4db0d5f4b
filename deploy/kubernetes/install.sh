#!/usr/bin/env bash
# Installs v6lab on a Kubernetes cluster from this directory: applies crd.yaml, namespace.yaml,
# rbac.yaml and controller.yaml in that order, checks the controller's permissions, waits
# (polling, with a deadline) until the controller is ready, and prints how to reach it.
# Re-running it upgrades in place (a new controller image rolls the Deployment).
#
#   install.sh [--controller-image REF] [--ephemeral-state] [--pod-mtu N [--pod-ipv6]]
#              [--api-server HOST:PORT] [--timeout SECONDS] [--skip-permission-check]
#   install.sh --check-permissions     only checks what the controller may and may not do
#
#   --controller-image REF  default: the newest v6lab/controller:<hash> in the local Docker engine
#   --ephemeral-state       the state directory on an emptyDir instead of the PersistentVolumeClaim
#                           v6lab-state (for clusters without a default storage class; a new
#                           controller pod starts with an empty store: see docs/kubernetes.md)
#   --timeout SECONDS       how long to wait for the controller (default 300)
#   --api-server HOST:PORT  where the controller reaches the API server, for clusters whose pods
#                           cannot use its Service address (no kube-proxy, as the test cluster)
#   --pod-mtu N             the pod network's MTU, when it is not 1500 (segments get N - 50)
#   --pod-ipv6              pod addresses are IPv6 (segments get N - 70)
#
# Needs kubectl ($KUBECTL, else kubectl on PATH) as a cluster administrator (KUBECONFIG or
# ~/.kube/config), and the images on the nodes first (load-images.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

NS=v6lab
LABS_NS=v6lab-labs
SA=system:serviceaccount:$NS:v6lab-controller
DEPLOY=v6lab-controller
SELECTOR=app.kubernetes.io/name=v6lab-controller
PLACEHOLDER=v6lab/controller:set-by-install.sh

image=""; ephemeral=0; timeout=300; check=1; only_check=0; api=""; pod_mtu=1500; pod_ipv6=0
while [ $# -gt 0 ]; do
  case $1 in
    --controller-image) [ $# -ge 2 ] || usage; image=$2; shift 2 ;;
    --ephemeral-state) ephemeral=1; shift ;;
    --timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
    --api-server) [ $# -ge 2 ] || usage; api=$2; shift 2 ;;
    --pod-mtu) [ $# -ge 2 ] || usage; pod_mtu=$2; shift 2 ;;
    --pod-ipv6) pod_ipv6=1; shift ;;
    --skip-permission-check) check=0; shift ;;
    --check-permissions) only_check=1; shift ;;
    -h | --help) usage ;;
    *) log "unknown argument $1"; usage ;;
  esac
done
[[ $timeout =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] || die "--timeout takes a number of seconds, not '$timeout'"
[[ $pod_mtu =~ ^[0-9]+$ ]] && [ "$pod_mtu" -ge 1330 ] && [ "$pod_mtu" -le 65535 ] \
  || die "--pod-mtu takes the pod network's MTU, at least 1330 (IPv6 needs 1280 after VXLAN's 50 bytes), not '$pod_mtu'"
[ "$pod_ipv6" = 0 ] || [ "$pod_mtu" -ge 1350 ] || die "--pod-mtu with --pod-ipv6 takes at least 1350 (VXLAN over IPv6 costs 70 bytes), not $pod_mtu"
if [ -n "$api" ]; then
  [[ $api =~ ^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):([0-9]+)$ ]] || die "--api-server takes HOST:PORT ([IPv6]:PORT), not '$api'"
  api_host=${BASH_REMATCH[1]} api_port=${BASH_REMATCH[2]}
  api_host=${api_host#[}; api_host=${api_host%]}
fi
kubectl=${KUBECTL:-kubectl}
command -v "$kubectl" >/dev/null || die "no kubectl (install it, or set KUBECTL to its path)"
kc() { "$kubectl" "$@"; }
kc version >/dev/null 2>&1 || die "kubectl cannot reach the cluster: $(kc version 2>&1 | tail -n1) (set KUBECONFIG)"

# What the controller must be allowed (namespace, verb, resource) and what it must not.
ALLOWED="
$LABS_NS create,get,list,watch,delete,deletecollection pods
$LABS_NS create,get pods/exec
$LABS_NS create,get,list,delete,deletecollection configmaps
$LABS_NS create,get,list,delete,deletecollection networkpolicies.networking.k8s.io
$LABS_NS get,list,watch,create,update,patch,delete labs.v6lab.dev
$LABS_NS get,update,patch labs.v6lab.dev/status
- get,list nodes
"
REFUSED="
$LABS_NS get,list,watch,create secrets
$LABS_NS update,patch pods
$LABS_NS create pods/attach
$LABS_NS create pods/portforward
$LABS_NS get pods/log
$LABS_NS update,patch configmaps
$LABS_NS create services
$LABS_NS create serviceaccounts/token
$LABS_NS create,update rolebindings.rbac.authorization.k8s.io
$NS get,list secrets
$NS create,list pods
$NS create pods/exec
$NS get,list labs.v6lab.dev
default create,list,delete pods
default create pods/exec
default get,list secrets
default list labs.v6lab.dev
kube-system get,list secrets
kube-system create,list pods
- update,patch,delete nodes
- create namespaces
- list secrets
- create clusterrolebindings.rbac.authorization.k8s.io
"
can_i() { # NAMESPACE|- VERB RESOURCE[/SUBRESOURCE]: exit status of `kubectl auth can-i`
  local ns=$1 verb=$2 res=$3 args=()
  if [ "$ns" = - ]; then args+=(--all-namespaces); else args+=(-n "$ns"); fi
  case $res in
    */*) args+=("${res%%/*}" --subresource "${res#*/}") ;;
    *) args+=("$res") ;;
  esac
  kc auth can-i "$verb" "${args[@]}" --as "$SA" >/dev/null 2>&1
}
check_permissions() { # prints a line per failure; non-zero if any
  local ns verbs res verb bad=0 n=0
  while read -r ns verbs res; do
    [ -n "$ns" ] || continue
    for verb in ${verbs//,/ }; do
      n=$((n + 1))
      can_i "$ns" "$verb" "$res" || { log "missing: $verb $res in ${ns/#-/every namespace}"; bad=1; }
    done
  done <<<"$ALLOWED"
  while read -r ns verbs res; do
    [ -n "$ns" ] || continue
    for verb in ${verbs//,/ }; do
      n=$((n + 1))
      ! can_i "$ns" "$verb" "$res" || { log "too much: $verb $res in ${ns/#-/every namespace}"; bad=1; }
    done
  done <<<"$REFUSED"
  [ $bad -eq 0 ] && log "permissions of $SA: as required ($n checks)"
  return $bad
}
if [ $only_check -eq 1 ]; then
  check_permissions || die "the controller's permissions are not as rbac.yaml grants them (an admission webhook or another binding?)"
  exit 0
fi

# The controller image: given, or the newest one controller-image.sh built here.
if [ -z "$image" ]; then
  command -v docker >/dev/null && image=$(docker images v6lab/controller --format '{{.Repository}}:{{.Tag}}' 2>/dev/null \
    | grep -vE ':(latest|<none>)$' | head -n1 || true)
  [ -n "$image" ] || die "no controller image: build it with controller-image.sh and load it with load-images.sh, or pass --controller-image REF"
fi
[[ $image =~ ^[A-Za-z0-9._/:@-]+$ ]] || die "not an image reference: $image"
for f in crd.yaml namespace.yaml rbac.yaml controller.yaml; do
  [ -f "$here/$f" ] || die "missing $here/$f"
done
grep -q "image: $PLACEHOLDER\$" "$here/controller.yaml" || die "controller.yaml no longer names the image $PLACEHOLDER"

# Is the image on any node? (A node reports at most 50 of its images: a warning only.)
if ! kc get nodes -o jsonpath='{range .items[*]}{range .status.images[*]}{range .names[*]}{@}{"\n"}{end}{end}{end}' 2>/dev/null \
    | grep -qE "^(docker\.io/)?$(printf '%s' "$image" | sed 's/[.]/\\./g')\$"; then
  log "warning: no node reports holding $image (yet: nodes report their images every few seconds); load it first (load-images.sh), or the pod waits in ErrImageNeverPull"
fi

log "applying crd.yaml"
kc apply -f "$here/crd.yaml" >/dev/null
kc wait --for condition=established --timeout=60s crd/labs.v6lab.dev >/dev/null \
  || die "the Lab CRD (labs.v6lab.dev) was not established within 60 s"
log "applying namespace.yaml, rbac.yaml"
kc apply -f "$here/namespace.yaml" >/dev/null
kc apply -f "$here/rbac.yaml" >/dev/null
if [ $check -eq 1 ]; then
  check_permissions || die "the controller's permissions are not as rbac.yaml grants them; fix that, or --skip-permission-check"
fi

# controller.yaml with the image set; with --ephemeral-state, without the claim and with an
# emptyDir as the state volume; the pod network; with --api-server, the address the in-cluster
# client uses.
render() {
  local m
  m=$(sed -e "s|image: $PLACEHOLDER\$|image: $image|" \
    -e "/- name: V6LAB_POD_MTU\$/{n;s|value: .*|value: \"$pod_mtu\"|}" \
    -e "/- name: V6LAB_POD_IPV6\$/{n;s|value: .*|value: \"$pod_ipv6\"|}" "$here/controller.yaml")
  grep -qx "              value: \"$pod_mtu\"" <<<"$m" || die "controller.yaml changed: cannot set V6LAB_POD_MTU"
  if [ -n "$api" ]; then
    m=$(awk -v h="$api_host" -v p="$api_port" '{ print } !done && /^          env:$/ {
          print "            - {name: KUBERNETES_SERVICE_HOST, value: \"" h "\"}"
          print "            - {name: KUBERNETES_SERVICE_PORT, value: \"" p "\"}"
          done = 1 }' <<<"$m")
    grep -q KUBERNETES_SERVICE_HOST <<<"$m" || die "controller.yaml changed: --api-server cannot set the address"
  fi
  if [ $ephemeral -eq 1 ]; then
    m=$(awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/kind: PersistentVolumeClaim/' <<<"$m" \
      | sed -e '/^          persistentVolumeClaim:$/{N;s/.*/          emptyDir: {}/}')
    ! grep -qi persistentVolumeClaim <<<"$m" || die "controller.yaml changed: --ephemeral-state cannot replace its claim"
  fi
  printf '%s\n' "$m"
}
log "applying controller.yaml (image $image$([ $ephemeral -eq 0 ] || echo ', state on an emptyDir')$([ -z "$api" ] || echo ", API server $api"))"
render | kc apply -f - >/dev/null

# Waits until the Deployment's current generation has its one pod ready and no other pod left,
# telling the usual reasons it will not from the pod's state.
t0=$(date +%s)
end=$((t0 + timeout))
said=""
say_once() { [ "$said" = "$1" ] || { log "$1"; said=$1; }; }
pods() { # replica set, name, node, phase, waiting reason, restarts, deleted since, per pod
  kc -n "$NS" get pods -l "$SELECTOR" -o jsonpath='{range .items[*]}{.metadata.ownerReferences[0].name}{"\t"}{.metadata.name}{"\t"}{.spec.nodeName}{"\t"}{.status.phase}{"\t"}{.status.containerStatuses[0].state.waiting.reason}{"\t"}{.status.containerStatuses[0].restartCount}{"\t"}{.metadata.deletionTimestamp}{"\n"}{end}'
}
current_pods() { # pods() of the replica set that is to run (after the Deployment saw the change)
  local rs
  rs=$(kc -n "$NS" get rs -l "$SELECTOR" -o jsonpath='{range .items[?(@.spec.replicas>0)]}{.metadata.name}{"\n"}{end}')
  [ -n "$rs" ] || return 0
  pods | awk -F'\t' -v rs="$rs" 'BEGIN { split(rs, a, "\n"); for (i in a) want[a[i]] = 1 } ($1 in want) && $7 == ""'
}
while :; do
  gen="" observed="" updated="" ready="" total=""
  read -r gen observed updated ready total < <(kc -n "$NS" get deploy "$DEPLOY" \
    -o jsonpath='{.metadata.generation} {.status.observedGeneration} {.status.updatedReplicas} {.status.readyReplicas} {.status.replicas}{"\n"}') || true
  if [ "${observed:-0}" -ge "${gen:-1}" ] && [ "${updated:-0}" = 1 ] && [ "${ready:-0}" = 1 ] && [ "${total:-0}" = 1 ]; then
    break
  fi
  if [ "$(date +%s)" -ge "$end" ]; then
    pods >&2 || true
    die "the controller is not ready after $timeout s (kubectl -n $NS describe pod -l $SELECTOR)"
  fi
  # Once the Deployment has seen the change: the new pod's state, the claim.
  if [ "${observed:-0}" -ge "${gen:-1}" ]; then
    while IFS=$'\t' read -r _ pod node phase reason restarts _; do
      case $reason in
        ErrImageNeverPull)
          die "node $node does not hold $image: load it (load-images.sh) into every node the controller may run on, then run install.sh again" ;;
        CrashLoopBackOff | Error | CreateContainerError | CreateContainerConfigError | RunContainerError)
          if [ "${restarts:-0}" -ge 2 ] || [ "$reason" != CrashLoopBackOff ]; then
            log "pod $pod: $reason; its last log lines:"
            kc -n "$NS" logs "$pod" --previous --tail 20 >&2 2>/dev/null || kc -n "$NS" logs "$pod" --tail 20 >&2 || true
            die "the controller does not start (kubectl -n $NS describe pod $pod)"
          fi ;;
      esac
      if [ "$phase" = Pending ] && [ -z "$node" ]; then
        msg=$(kc -n "$NS" get pod "$pod" -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].message}')
        [ -z "$msg" ] || say_once "pod $pod not scheduled yet: $msg"
      fi
    done < <(current_pods)
    if [ $ephemeral -eq 0 ] && [ $(($(date +%s) - t0)) -ge 20 ] \
        && [ "$(kc -n "$NS" get pvc v6lab-state -o jsonpath='{.status.phase}' 2>/dev/null)" = Pending ]; then
      if ! kc get storageclass -o jsonpath='{range .items[*]}{.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}{"\n"}{end}' 2>/dev/null | grep -qx true; then
        die "the claim v6lab-state stays Pending: the cluster has no default storage class. Set storageClassName in controller.yaml, or run install.sh --ephemeral-state"
      fi
      say_once "waiting for the claim v6lab-state to be bound (kubectl -n $NS describe pvc v6lab-state)"
    fi
  fi
  sleep 2
done
log "controller ready after $(($(date +%s) - t0)) s"

# The pod network as the controller's own pod sees it, against what labs are planned for.
pod=$(kc -n "$NS" get pods -l "$SELECTOR" --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}')
seen_mtu=$(kc -n "$NS" exec "$pod" -- cat /sys/class/net/eth0/mtu 2>/dev/null | tr -dc 0-9) || true
seen_ipv6=1
[[ " $(kc -n "$NS" get pod "$pod" -o jsonpath='{.status.podIPs[*].ip}') " == *.* ]] && seen_ipv6=0
if [ -n "$seen_mtu" ]; then
  planned=$((pod_mtu - (pod_ipv6 ? 70 : 50))) fits=$((seen_mtu - (seen_ipv6 ? 70 : 50)))
  again="install.sh again with --pod-mtu $seen_mtu$([ "$seen_ipv6" = 0 ] || echo ' --pod-ipv6')"
  if [ "$fits" -lt "$planned" ]; then
    log "warning: the pod network (MTU $seen_mtu$([ "$seen_ipv6" = 0 ] || echo ', IPv6')) carries segments of $fits bytes, labs are planned with $planned: they will not start until you run $again"
  elif [ "$fits" -gt "$planned" ]; then
    log "note: labs are planned with segments of $planned bytes, the pod network (MTU $seen_mtu) carries $fits: run $again to use them"
  fi
fi

# How to reach it.
node=$(kc -n "$NS" get pod "$pod" -o jsonpath='{.spec.nodeName}')
node_ip=$(kc get node "$node" -o jsonpath='{.status.addresses[?(@.type=="ExternalIP")].address}')
[ -n "$node_ip" ] || node_ip=$(kc get node "$node" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
lb=$(kc -n "$NS" get svc v6lab -o jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}')
web_port=$(kc -n "$NS" get svc v6lab -o jsonpath='{.spec.ports[?(@.name=="web")].nodePort}')
ssh_port=$(kc -n "$NS" get svc v6lab -o jsonpath='{.spec.ports[?(@.name=="ssh")].nodePort}')
fingerprint=$(kc -n "$NS" logs "$pod" 2>/dev/null | sed -n 's/.*fingerprint (SHA-256): \([0-9A-F:]*\).*/\1/p' | tail -n1)
[[ $lb == *:* ]] && lb="[$lb]"
[[ $node_ip == *:* ]] && node_ip="[$node_ip]"
if [ -n "$lb" ]; then
  url="https://$lb:7464"
  echo "web UI and API: $url"
  echo "SSH gateway:    ssh -p 2222 STUDENT@${lb//[\[\]]/}"
else
  url="https://$node_ip:$web_port"
  echo "no load balancer address (yet): service v6lab has no external IP; use the node ports on $node (the node running the controller):"
  echo "web UI and API: $url"
  echo "SSH gateway:    ssh -p $ssh_port STUDENT@${node_ip//[\[\]]/}"
fi
echo "TLS certificate fingerprint (SHA-256): ${fingerprint:-see kubectl -n $NS logs $pod}"
echo "the CLI, e.g. v6lab class create ..., with:"
echo "  export V6LAB_CONTROLLER=$url V6LAB_TLS_FINGERPRINT=${fingerprint:-...}"
echo "  export V6LAB_TOKEN=\$($kubectl -n $NS exec deploy/$DEPLOY -- cat /var/lib/v6lab/state/admin.token)"
