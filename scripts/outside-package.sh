#!/usr/bin/env bash
# A package outside the repository that depends on Yonder as a user's would (README, "Use it
# in your package"): a shared module on YonderCore alone, a custom agent linked static, and an
# app that brings a local cluster up, calls a function, uses a named actor from a second
# attach, and takes the cluster down. It fails if a product is missing or does not link.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The dependency's identity is its folder's name: "yonder", as in the README's lines.
ln -s "$repo" "$work/yonder"
mkdir "$work/app"
cp -R "$repo/Tests/OutsidePackage/Sources" "$work/app/"
sed "s#YONDER_PATH#$work/yonder#" "$repo/Tests/OutsidePackage/Package.swift.template" > "$work/app/Package.swift"
cd "$work/app"
swift build --product MyApp
swift build -c release --scratch-path .build-static --product MyAgent -Xswiftc -static-executable -Xlinker -s
export YONDER_HOME="$work/home"
output="$(.build/debug/MyApp "$PWD/.build-static/release/MyAgent")"
printf '%s\n' "$output" | tail -n 3
grep -q "sum 6 counter 15 then 16" <<<"$output" || { echo "outside package: unexpected output" >&2; exit 1; }
if docker ps -a --format '{{.Names}}' | grep -qx 'yonder-outside-0'; then
    echo "outside package: the cluster's container is still there after down" >&2
    exit 1
fi
