#!/usr/bin/env bash
# The HTTP API tests (tests/api: pytest + the openai SDK against a live
# `ryot serve`), through scripts/api-test.sh.  Needs $RYOT; skipped in the
# ASan build ($BUILD build-asan), where generation is too slow for their
# timing-relative checks.
set -euo pipefail
RYOT=${RYOT:?set RYOT to the ryot binary}
if [ "${BUILD:-}" = build-asan ]; then
    echo "api.sh: skipped under ASan (scripts/api-test.sh runs them on the optimized build)"
    exit 0
fi
RYOT=$RYOT exec "$(dirname "$0")/../../scripts/api-test.sh"
