#!/usr/bin/env bash
# The main job of the README: sets the machine up, builds, and runs the quick start.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

log() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
log "building (release)"
swift build -c release --product quickstart-agent
swift build -c release --product yonder-quickstart
log "running the quick start"
exec "$(swift build -c release --show-bin-path)/yonder-quickstart"
