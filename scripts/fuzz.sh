#!/usr/bin/env bash
# Fuzzes the frame decoder and the message codec with libFuzzer (and AddressSanitizer),
# seeded from protocol/vectors/ and the regression inputs in Tests/Fuzz/corpus/.
#
#   scripts/fuzz.sh [SECONDS]      default 60 (what CI runs); by hand e.g. scripts/fuzz.sh 3600
#
# A crash or a failed check leaves the input in .build-fuzz/findings/ and exits non-zero: add
# the input to Tests/Fuzz/corpus/ (every run, CI's too, starts by running each input there
# through the checks) and, once fixed, a vector to protocol/vectors/ for what it showed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

swift build --scratch-path .build-fuzz --product yonder-fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
    -Xswiftc -DYONDER_FUZZ
binary="$(swift build --scratch-path .build-fuzz --show-bin-path)/yonder-fuzz"

seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
python3 - "$seeds" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
count = 0
for path in sorted(glob.glob("protocol/vectors/*.json")):
    for vector in json.load(open(path)).get("vectors", []):
        if "hex" not in vector:
            continue
        stream = bytes.fromhex(vector["hex"])
        # The first byte of an input sets the size of each read: whole, and byte by byte.
        for piece in (255, 0):
            with open(os.path.join(out, f"{count:04d}"), "wb") as f:
                f.write(bytes([piece]) + stream)
            count += 1
print(f"fuzz: {count} seeds from protocol/vectors")
PY
mkdir -p .build-fuzz/findings .build-fuzz/corpus
"$binary" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=.build-fuzz/findings/ -print_final_stats=1 \
    .build-fuzz/corpus "$seeds" Tests/Fuzz/corpus
