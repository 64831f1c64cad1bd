#!/usr/bin/env bash
# Tokenizer encode throughput (MB/s, load excluded) on a few MB of mixed text
# built from files on this machine: English prose (license texts), C code (20
# libc headers), multilingual prose (vim tutors in Japanese, Chinese, Korean,
# Russian, Greek) and an emoji line.
#
#   bench/tokenizer_speed.sh [VOCAB.gguf ...]
#
# Defaults to the gpt-2, llama3, llama-spm and bert-bge test vocabs (and the SmolLM2 and
# Gemma 3 models when present).  Env: RYOT_TESTDATA (../shared/testdata),
# SIZE_MB (4), REPS (3, best run reported), BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DATA=${RYOT_TESTDATA:-../shared/testdata}/tokenizer
SIZE_MB=${SIZE_MB:-4}
TEXT=${TMPDIR:-/tmp}/ryot_tokenizer_bench.txt

make -s -j2 "$BUILD/libryot.a"
mkdir -p "$BUILD/bench"
cc -std=gnu11 -O2 -march=x86-64-v2 -Isrc -Iinclude -D_GNU_SOURCE -o "$BUILD/bench/tokenizer_speed" \
    bench/tokenizer_speed.c "$BUILD/libryot.a" $(pkg-config --libs libpcre2-8 jansson) -lm -lpthread

# One round of the mix, then repeated up to SIZE_MB.
round=$(mktemp)
trap 'rm -f "$round"' EXIT
{
    cat /usr/share/common-licenses/* 2>/dev/null || true
    for h in stdio stdlib string unistd pthread signal time math wchar locale fcntl dirent errno elf \
        stdint inttypes ctype dlfcn sched search; do
        cat "/usr/include/$h.h" 2>/dev/null || true
    done
    for l in ja zh ko ru el; do
        cat /usr/share/vim/vim9*/tutor/tutor.$l.utf-8 2>/dev/null || true
    done
    printf 'Emoji 🦙🦙 (llama) 😶‍🌫️ 👩‍👩‍👧‍👦 🇯🇵 ✅ 🚀 → ∞ ≠ ∑ x² ½ …\n'
} > "$round"
: > "$TEXT"
while [ "$(stat -c %s "$TEXT")" -lt $((SIZE_MB * 1000000)) ]; do cat "$round" >> "$TEXT"; done

if [ $# -eq 0 ]; then
    set -- "$DATA/gpt-2.gguf" "$DATA/llama3.gguf" "$DATA/llama-spm.gguf" "$DATA/bert-bge.gguf"
    models=${RYOT_MODEL_DIR:-$HOME/.cache/ryot/models}
    for m in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
        [ -f "$models/$m" ] && set -- "$@" "$models/$m"
    done
fi
echo "text: $TEXT ($(stat -c %s "$TEXT") bytes; one round $(stat -c %s "$round") bytes)"
"$BUILD/bench/tokenizer_speed" "$TEXT" "$@"
