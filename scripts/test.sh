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
swift build -c release --scratch-path .build-static --product yonder-agent -Xswiftc -static-executable -Xlinker -s
export YONDER_STATIC_AGENT="$PWD/.build-static/release/yonder-agent"
log "building the quick start's agent the same way (the CLI tests call its functions)"
swift build -c release --scratch-path .build-static --product quickstart-agent -Xswiftc -static-executable -Xlinker -s
export YONDER_QUICKSTART_AGENT="$PWD/.build-static/release/quickstart-agent"

log "API documentation: every public declaration documented, DocC without warnings"
bash scripts/docs.sh

log "conformance: an independent Python client written from protocol/PROTOCOL.md"
python3 Tests/Conformance/conformance.py "$(swift build --show-bin-path)/yonder-test-agent"

log "running tests"
swift test --skip-build --skip SSHTests --skip SSHTunnelConnectionTests --skip ClusterUpTests --skip RegistryTests --skip CLITests --skip TeardownTests --skip CLIFaultTests --skip ClusterFaultTests --skip AWSClusterTests --skip AutostopTests --skip TaskTests --skip ImageBuildTests

# The SSH and cluster tests start their own sshd servers and containers and move hundreds of
# MiB each; one suite at a time keeps their connect and keep-alive bounds meaningful on a
# two-core machine.
log "running SSH and cluster tests (one suite at a time)"
swift test --skip-build --no-parallel --filter SSHTests --filter SSHTunnelConnectionTests --filter ClusterUpTests --filter RegistryTests --filter CLITests --filter TeardownTests --filter CLIFaultTests --filter ClusterFaultTests --filter AWSClusterTests --filter AutostopTests --filter TaskTests --filter ImageBuildTests

log "a package outside the repository that depends on Yonder as a user's would"
bash scripts/outside-package.sh

# AddressSanitizer over the SSH layer's failure and teardown paths. The session loop frees
# libssh2 sessions on its own thread while callers await or exit; a use-after-free, double
# free or leak there (and, through the probe process, a crash on exit after a failed connect)
# shows up only now and then in a plain build. A separate scratch folder keeps the plain
# build. The subset: connects that time out (50 times over, in process and in a process that
# exits at once), frozen and killed servers, refused host keys and logins; under a minute
# of tests on two cores, after the instrumented build. ASan's exit code 86 sets its
# failures apart from the probe's own exit status; the suppressions cover leaks of the
# toolchain's libraries only. Of TrustTests, the key-type and agent tests stay out for time,
# and unreachableRefusedAndTimeouts because libssh2 1.10 leaks the curve25519 keys of a key
# exchange abandoned midway (its handshake with an echo server is).
log "AddressSanitizer: building into .build-asan"
swift build --build-tests --scratch-path .build-asan -Xswiftc -sanitize=address
log "AddressSanitizer: failed connects, dead peers and teardown"
ASAN_OPTIONS=detect_leaks=1:exitcode=86 LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt" \
    swift test --skip-build --scratch-path .build-asan --no-parallel --filter FailedConnectTests --filter DeadPeerTests \
    --filter 'TrustTests/(changedKey|unknownHost|pinnedKeys|wrongKey)'

# The frame decoder and the message codec under libFuzzer and ASan, for a minute, seeded
# from protocol/vectors/ (scripts/fuzz.sh SECONDS fuzzes longer by hand).
log "fuzzing the frame decoder and message codec for 60 s"
# (libFuzzer's line per new input is left out of the log; pipefail keeps its exit status.)
bash scripts/fuzz.sh 60 2>&1 | { grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse) ' || true; }
