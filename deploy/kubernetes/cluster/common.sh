# Shared settings of the test cluster's scripts (sourced, not run).
# Every path, name and address the test cluster uses is defined here, once.

# The build cache survives `down`; the state directory is what one running cluster holds.
K8S_CACHE=${V6LAB_K8S_CACHE:-/var/cache/v6lab/kubernetes}
K8S_STATE=${V6LAB_K8S_STATE:-/var/lib/v6lab/kubernetes}
K8S_KUBECONFIG=$K8S_STATE/admin.kubeconfig

# Kubernetes from Debian bookworm's source package (complete upstream tree with vendor/).
K8S_VERSION=v1.20.2
K8S_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
K8S_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
K8S_GO=/usr/lib/go-1.19/bin
K8S_SERVER_BINS="kube-apiserver kube-controller-manager kube-scheduler kubelet"

# Addresses: 198.18.0.0/15 only, in its middle (labs allocate segments from 198.18.0.0 upward and
# NAT64 pools from 198.19.255.0 downward, so pod addresses never meet a lab's own).
K8S_NET=v6lab-k8s                 # docker network of the cluster nodes
K8S_BRIDGE=v6k8s0                 # its bridge on the host
K8S_NET_CIDR=198.18.200.0/24
K8S_API_IP=198.18.200.1           # the docker network's gateway: the control plane binds here
K8S_API=https://$K8S_API_IP:6443
K8S_ETCD_PORT=2379
K8S_POD_CIDR=198.18.128.0/23      # all pods; one /24 per node below
K8S_SERVICE_CIDR=198.19.128.0/24
K8S_SERVICE_IP=198.19.128.1
# Cluster nodes: name, node address, pod /24.
K8S_NODES="v6k8s-a v6k8s-b"
node_ip() { case $1 in v6k8s-a) echo 198.18.200.10 ;; v6k8s-b) echo 198.18.200.11 ;; esac; }
node_pods() { case $1 in v6k8s-a) echo 198.18.128.0/24 ;; v6k8s-b) echo 198.18.129.0/24 ;; esac; }

# Images built locally (no registry). Pods must use imagePullPolicy: Never.
K8S_PAUSE_IMAGE=docker.io/v6lab/k8s-pause:1
K8S_BUSYBOX_IMAGE=docker.io/v6lab/k8s-busybox:1
K8S_NODE_IMAGE_REPO=v6lab/k8s-node   # tagged by a hash of its recipe

# Host sysctls the kubelet sets (not namespaced): saved at `up`, restored at `down`.
K8S_HOST_SYSCTLS="vm.overcommit_memory kernel.panic kernel.panic_on_oops"

log() { printf 'test-cluster: %s\n' "$*" >&2; }
die() { printf 'test-cluster: %s\n' "$*" >&2; exit 1; }

# The host's Debian mirror (first deb822 URI serving bookworm), or V6LAB_DEBIAN_MIRROR.
debian_mirror() {
  if [ -n "${V6LAB_DEBIAN_MIRROR:-}" ]; then echo "${V6LAB_DEBIAN_MIRROR%/}"; return; fi
  local m
  m=$(awk 'BEGIN{IGNORECASE=1} /^URIs:/{u=$2} /^Suites:/ && /bookworm([[:space:]]|$)/ && u!="" {print u; exit}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }')
  [ -n "$m" ] || die "no Debian bookworm mirror in /etc/apt/sources.list{,.d/}; set V6LAB_DEBIAN_MIRROR"
  echo "${m%/}"
}

# Installs the named Debian packages that are missing (no services are started by these).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "apt-get install ${missing[*]} failed"
}

# Downloads one binary package (pinned version, from the host's configured sources) and extracts it
# into DIR. Used for packages whose installation would start a service (etcd-server) or conflict
# with an installed one (kubernetes-client vs kubectl).
deb_extract() { # PACKAGE[=VERSION] DIR
  local tmp
  tmp=$(mktemp -d) && chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -qq -o Acquire::Retries=5 "$1" >/dev/null 2>&1) \
    || { apt-get update -qq && (cd "$tmp" && apt-get download -qq -o Acquire::Retries=5 "$1" >/dev/null 2>&1); } \
    || { rm -rf "$tmp"; die "apt-get download $1 failed"; }
  dpkg-deb -x "$tmp"/*.deb "$2"
  rm -rf "$tmp"
}
