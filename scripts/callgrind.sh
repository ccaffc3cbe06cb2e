#!/bin/bash
# Instructions one no-op call costs in the client and in the agent, counted by callgrind:
# `yonder-bench instructions` runs twice, with 1,000 and 3,000 sequential calls, each side
# under valgrind; the difference of the totals over 2,000 is the per-call cost (start-up and
# shutdown cancel out). Repeatable to a fraction of a percent, however busy the machine.
#
#   bash scripts/callgrind.sh [PRODUCTS_FOLDER] [ping|echo]
#
# PRODUCTS_FOLDER holds release builds of yonder-bench and yonder-agent (default: the one
# `swift build -c release --scratch-path .build-client-release` makes).
set -euo pipefail
bin=${1:-.build-client-release/release}
call=${2:-ping}
command -v valgrind >/dev/null || { echo "callgrind.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for count in 1000 3000; do
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/$count.%p" \
        "$bin/yonder-bench" instructions --count "$count" --call "$call" --agent "$bin/yonder-agent" >/dev/null 2>"$out/log.$count" \
        || { cat "$out/log.$count" >&2; exit 1; }
done
# Each run leaves one file per process: the benchmark (the client) and the agent.
total() {  # COUNT PROGRAM -> instructions
    for file in "$out/$1".*; do
        if grep -q "^cmd: .*$2" "$file"; then
            grep -m1 -E '^(summary|totals):' "$file" | awk '{print $2}'
            return
        fi
    done
    echo "no callgrind output for $2" >&2; exit 1
}
for side in yonder-bench:client yonder-agent:agent; do
    program=${side%%:*}
    name=${side##*:}
    low=$(total 1000 "$program")
    high=$(total 3000 "$program")
    echo "$name: $(( (high - low) / 2000 )) instructions per $call call"
done
