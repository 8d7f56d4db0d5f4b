#!/usr/bin/env bash
# Makes the test cluster's PKI and kubeconfigs with openssl (ECDSA P-256, valid 30 days):
# a CA, the apiserver's serving certificate, client certificates for the admin (system:masters),
# the controller-manager, the scheduler and each node (system:node:<name>, group system:nodes),
# and the service-account key pair.
#
#   usage: pki.sh DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
d=$1
mkdir -p "$d"
cd "$d"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
cert() { # NAME SUBJECT [SAN]
  local ext
  ext=$(mktemp)
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >"$ext"
  if [ -n "${3:-}" ]; then
    printf 'extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$3" >>"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >>"$ext"
  fi
  key "$1"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$ext"
}
kubeconfig() { # NAME USER
  cat >"$1.kubeconfig" <<K
apiVersion: v1
kind: Config
clusters:
- name: v6lab-test
  cluster:
    server: $K8S_API
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$1.crt")
    client-key-data: $(base64 -w0 "$1.key")
contexts:
- name: v6lab-test
  context: {cluster: v6lab-test, user: $2}
current-context: v6lab-test
K
}

key ca
openssl req -x509 -new -key ca.key -subj /CN=v6lab-test-ca -days 30 -out ca.crt 2>/dev/null
cert apiserver /CN=kube-apiserver \
  "IP:127.0.0.1,IP:$K8S_API_IP,IP:$K8S_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin /O=system:masters/CN=v6lab-admin
cert controller-manager /CN=system:kube-controller-manager
cert scheduler /CN=system:kube-scheduler
kubeconfig admin v6lab-admin
kubeconfig controller-manager system:kube-controller-manager
kubeconfig scheduler system:kube-scheduler
for n in $K8S_NODES; do
  cert "$n" "/O=system:nodes/CN=system:node:$n"
  kubeconfig "$n" "system:node:$n"
done
key sa
openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 644 ca.crt
