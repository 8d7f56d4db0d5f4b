#!/usr/bin/env bash
# Makes a fresh Debian 12 (or Ubuntu) machine ready for v6lab: installs what is missing from the
# distribution's packages and starts the Docker engine when it is not running. Idempotent.
set -euo pipefail

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v ip >/dev/null || need+=(iproute2)
command -v tini >/dev/null || [ -e /usr/bin/docker-init ] || need+=(tini)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/share/doc/ca-certificates ] || need+=(ca-certificates)
# The SSH gateway's tests log in with the real OpenSSH client (the password through SSH_ASKPASS).
command -v ssh >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  echo "v6lab setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The engine: Debian's docker.io. Started through the init system when there is one, else directly.
if ! docker info >/dev/null 2>&1; then
  echo "v6lab setup: starting the Docker engine" >&2
  if [ -d /run/systemd/system ]; then
    systemctl start docker
  else
    mkdir -p /var/log
    # An engine killed hard leaves its pid file behind, and dockerd refuses to start while the
    # pid in it names a process, even a zombie: remove it unless a live dockerd owns it.
    if [ -f /var/run/docker.pid ]; then
      pid=$(cat /var/run/docker.pid 2>/dev/null || true)
      state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
      comm=$(ps -o comm= -p "$pid" 2>/dev/null || true)
      if [ "$comm" != dockerd ] || [ "${state#Z}" != "$state" ]; then
        rm -f /var/run/docker.pid
      fi
    fi
    nohup dockerd >/var/log/v6lab-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 300); do
    docker info >/dev/null 2>&1 && break
    sleep 0.1
  done
  docker info >/dev/null 2>&1 || { echo "v6lab setup: the Docker engine did not start; see /var/log/v6lab-dockerd.log" >&2; exit 1; }
fi
