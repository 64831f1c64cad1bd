#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: dependencies, models,
# optimized build + tests, then the ASan+UBSan build + tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-models.sh
jobs=$(nproc)
make -j"$jobs" all
make -j"$jobs" test
make -j"$jobs" asan
echo "ryot: all tests passed"
