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

log "yonder-quickstart up: bring the cluster up, call functions, create a named counter"
"$quickstart" up Examples/quickstart.yaml
log "yonder-quickstart attach: a second process finds the counter by name"
"$quickstart" attach quickstart
log "yonder-quickstart down: remove the container, the sshd and the state"
"$quickstart" down quickstart
