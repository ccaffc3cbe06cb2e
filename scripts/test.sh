#!/usr/bin/env bash
# The test command of the README: sets the machine up, builds, and runs every test
# against real processes (sshd, dockerd, a registry) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

log() { printf '[test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

log "building (debug, with tests)"
swift build --build-tests

log "building the static agent (release, -static-executable)"
swift build -c release --product yonder-agent -Xswiftc -static-executable
export YONDER_STATIC_AGENT="$(swift build -c release --show-bin-path)/yonder-agent"

log "running tests"
swift test --skip-build
