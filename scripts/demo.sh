#!/usr/bin/env bash
# The main job of the README: sets the machine up, builds, and runs the quick start on a
# `local` cluster: a Debian container on this machine, reached through a private sshd.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

log() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
log "building the quick start's agent (release, static: it runs in any image)"
swift build -c release --scratch-path .build-static --product quickstart-agent -Xswiftc -static-executable -Xlinker -s
export YONDER_AGENT="$PWD/.build-static/release/quickstart-agent"
log "building the quick start (release)"
swift build -c release --product yonder-quickstart
quickstart="$(swift build -c release --show-bin-path)/yonder-quickstart"
log "building the yonder command (release)"
swift build -c release --product yonder
yonder="$(swift build -c release --show-bin-path)/yonder"

log "yonder-quickstart up: bring the cluster up, call functions, create a named counter"
"$quickstart" up Examples/quickstart.yaml
log "yonder-quickstart attach: a second process finds the counter by name"
"$quickstart" attach quickstart
log "the yonder command on the same cluster"
"$yonder" status quickstart
"$yonder" call quickstart Add '[1, 2, 3]'
"$yonder" objects quickstart
"$yonder" exec quickstart -- sh -c 'echo "exec: $(hostname), Debian $(cat /etc/debian_version)"'
"$yonder" ssh quickstart -- sh -c 'echo "ssh: node $YONDER_NODE_RANK of $YONDER_NUM_NODES in cluster $YONDER_CLUSTER"'
"$yonder" logs quickstart --tail 3
log "yonder-quickstart down: remove the container, the sshd and the state"
"$quickstart" down quickstart
