#!/usr/bin/env bash
# Installs and starts everything Yonder's demo and tests need on a fresh Debian 12
# machine, as root. Safe to run again: each step is skipped when already done.
#   apt packages · dockerd (started in the background when no init system runs it)
#   · the base image yonder/debian:bookworm, built with debootstrap (no Docker Hub needed)
set -euo pipefail

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

BASE_IMAGE="${YONDER_BASE_IMAGE:-yonder/debian:bookworm}"
PACKAGES=(docker.io openssh-server openssh-client libssh2-1-dev pkg-config debootstrap
          docker-registry apache2-utils tmux ca-certificates git)

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (it installs apt packages and starts dockerd)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# botocore: the reference the AWS request signer is tested against; moto_server: the AWS
# emulator the AWS provider is tested against.
if ! python3 -c "import botocore, moto.server, flask" 2>/dev/null; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        log "installing python3-pip"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    fi
    log "installing botocore and moto[server] (pip)"
    python3 -m pip install --quiet --disable-pip-version-check botocore "moto[server]" >/dev/null 2>&1 \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages botocore "moto[server]" >/dev/null
fi

if ! command -v swift >/dev/null; then
    echo "setup.sh: the Swift toolchain (6.1 or newer) is not on PATH; install it and run again" >&2
    exit 1
fi

# The docker.io package's client may be shadowed by another docker CLI on PATH; both work.
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    mkdir -p /var/log
    nohup dockerd >/var/log/yonder-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "setup.sh: dockerd did not start; see /var/log/yonder-dockerd.log" >&2; exit 1; }
fi
log "docker $(docker version --format '{{.Server.Version}}') is up"

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "building $BASE_IMAGE with debootstrap (about a minute)"
    rootfs="$(mktemp -d)"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" >/dev/null
    tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi
log "base image $BASE_IMAGE is ready"
