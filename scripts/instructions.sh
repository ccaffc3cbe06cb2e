#!/usr/bin/env bash
# Counts the instructions of one call, in the client and in the agent, with callgrind: the
# figures that stay put on a noisy machine where times do not (BENCHMARKS.md, "Instructions
# per call").
#
#   scripts/instructions.sh [CALLS]     default 2000; needs valgrind (apt-get install valgrind)
#
# Builds yonder-bench and yonder-agent in release with DWARF 4 debug information (valgrind 3.19
# cannot read Swift's DWARF 5), runs `yonder-bench instructions` twice per kind of call under
# callgrind, with 500 calls and with 500 + CALLS, and prints the difference divided by CALLS.
# Start-up, the handshake and the first call's one-time costs cancel out. The callgrind files
# stay in .build-instructions/out/ (or $INSTRUCTIONS_SCRATCH/out/) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-2000}
scratch=${INSTRUCTIONS_SCRATCH:-.build-instructions}

command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed; run: apt-get install valgrind" >&2; exit 1; }

for product in yonder-agent yonder-bench; do
    swift build -c release --scratch-path "$scratch" --product "$product" \
        -Xswiftc -g -Xswiftc -dwarf-version=4 -Xcc -gdwarf-4
done
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)"

runtime="$(swift -print-target-info | python3 -c 'import json, sys; print(json.load(sys.stdin)["paths"]["runtimeLibraryPaths"][0])')"
hook="$scratch/drain-main-queue.so"
cc -shared -fPIC -O2 scripts/instructions/drain-main-queue.c -o "$hook" \
    -L"$runtime" -lswift_Concurrency -ldispatch -Wl,-rpath,"$runtime"

out="$scratch/out"
rm -rf "$out"
mkdir -p "$out"
for kind in ping typed; do
    for count in 500 $((500 + calls)); do
        LD_PRELOAD="$PWD/$hook" valgrind --tool=callgrind --trace-children=yes \
            --callgrind-out-file="$out/$kind-$count.%p.out" --log-file="$out/$kind-$count.%p.log" \
            "$bin/yonder-bench" instructions --kind "$kind" --calls "$count" --agent "$bin/yonder-agent"
    done
done

python3 - "$out" "$calls" <<'PY'
import glob, os, re, sys
out, calls = sys.argv[1], int(sys.argv[2])

def totals(kind, count):
    """Instructions of the client (yonder-bench) and of the agent in one run."""
    found = {}
    for path in glob.glob(os.path.join(out, f"{kind}-{count}.*.out")):
        text = open(path).read()
        command = re.search(r"^cmd: (.*)$", text, re.M).group(1)
        total = int(re.search(r"^totals: (\d+)", text, re.M).group(1))
        role = "agent" if "yonder-agent serve" in command else "client" if "yonder-bench" in command else None
        if role:
            found[role] = found.get(role, 0) + total
    return found

print(f"instructions per call (difference over {calls} calls, callgrind):")
for kind in ("ping", "typed"):
    low, high = totals(kind, 500), totals(kind, 500 + calls)
    client = (high["client"] - low["client"]) / calls
    agent = (high["agent"] - low["agent"]) / calls
    print(f"  {kind:5}  client {client:9,.0f}   agent {agent:9,.0f}   both {client + agent:9,.0f}")
PY
