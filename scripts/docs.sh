#!/usr/bin/env bash
# Builds the API documentation of the modules a user imports with swift-docc-plugin, and fails
# on any warning (a parameter without documentation, a broken link). The archives land in
# .build/plugins/Swift-DocC/outputs/. scripts/check-docs.py checks that every public
# declaration has a doc comment at all.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/check-docs.py
status=0
for target in YonderCore Yonder YonderCluster YonderAgent; do
    output="$(swift package generate-documentation --target "$target" --analyze 2>&1)" || status=1
    # SwiftPM's notes about files a dependency's targets leave undeclared are not ours.
    if grep -E "warning:|error:" <<<"$output" | grep -v "which are unhandled; explicitly declare them as resources"; then
        echo "docs: $target has documentation warnings (above)"
        status=1
    fi
done
exit $status
