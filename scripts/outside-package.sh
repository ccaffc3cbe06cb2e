#!/usr/bin/env bash
# A package outside the repository that depends on Yonder as a user's would (README, "Use it
# in your package"): Examples/RemoteCounter, copied out of the repository. Its shared module is
# on YonderCore alone, its agent is a product that `up` builds static (the spec's agent
# product), and its app brings a local cluster up, calls a function, uses a named actor from a
# second attach, and takes the cluster down. It fails if a product is missing or does not link.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The dependency's identity is its folder's name: "yonder", as in the README's lines.
ln -s "$repo" "$work/yonder"
mkdir "$work/app"
cp -R "$repo/Examples/RemoteCounter/Sources" "$work/app/"
sed "s#path: \"../..\"#path: \"$work/yonder\"#" "$repo/Examples/RemoteCounter/Package.swift" > "$work/app/Package.swift"
grep -q "$work/yonder" "$work/app/Package.swift" || { echo "outside package: could not point the example at this repository" >&2; exit 1; }
cd "$work/app"
swift build --product MyApp
export YONDER_HOME="$work/home"
output="$(.build/debug/MyApp)"
printf '%s\n' "$output" | grep -E "^agent: |sum " | cut -c1-160
grep -q "sum 6 counter 15 then 16" <<<"$output" || { echo "outside package: unexpected output" >&2; printf '%s\n' "$output" | tail -20 >&2; exit 1; }
test -x .build-yonder-agent/release/MyAgent || { echo "outside package: up did not build the agent product" >&2; exit 1; }
if docker ps -a --format '{{.Names}}' | grep -qx 'yonder-remote-counter-0'; then
    echo "outside package: the cluster's container is still there after down" >&2
    exit 1
fi
echo "outside package: up built the agent product, ran the calls, and down left nothing"
