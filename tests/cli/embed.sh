#!/usr/bin/env bash
# The BERT encoder against its numpy reference (tests/embed: tokenizer ids
# from tokenizer.json's rules, embeddings at cosine >= 0.9999, converter
# types and malformed safetensors), in the API tests' virtual environment
# through scripts/api-test.sh.  Without the model the tests skip (fail with CI=true).
set -euo pipefail
RYOT=${RYOT:?set RYOT to the ryot binary}
RYOT=$RYOT RYOT_TEST_DIR=tests/embed exec "$(dirname "$0")/../../scripts/api-test.sh"
