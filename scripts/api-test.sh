#!/usr/bin/env bash
# Black-box HTTP API tests of `ryot serve` (tests/api: pytest + the official
# openai SDK).  Creates a virtual environment at ~/.cache/ryot/venv-api
# ($RYOT_API_VENV) when missing, installs tests/api/requirements.txt into it
# when that file changed, and runs pytest against $RYOT (default build/ryot).
# Extra arguments go to pytest (e.g. -k prefix, -x, -v).  RYOT_TEST_DIR picks
# another directory of pytest tests run the same way (tests/embed).
set -euo pipefail
cd "$(dirname "$0")/.."

RYOT=${RYOT:-build/ryot}
case $RYOT in
*/*) RYOT=$(realpath "$RYOT") ;;
esac
[ -x "$RYOT" ] || { echo "api-test: $RYOT is not an executable (build it first: make)" >&2; exit 1; }
export RYOT

VENV=${RYOT_API_VENV:-$HOME/.cache/ryot/venv-api}
REQ=tests/api/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
    echo "api-test: creating $VENV"
    python3 -m venv "$VENV"
fi
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "api-test: installing $REQ"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" >"$VENV/.requirements.sha256"
fi

# no .pytest_cache in the tree; a hung server cannot block CI forever
export PYTHONDONTWRITEBYTECODE=1
exec timeout -k 10 900 "$VENV/bin/python" -m pytest -p no:cacheprovider -q -rfEs "${RYOT_TEST_DIR:-tests/api}" "$@"
