#!/usr/bin/env bash
# `ryot gen` and `ryot quantize`: tiny models of every architecture in several
# types read back with `ryot info`; determinism; re-quantization; bad usage.
# Needs $RYOT (the binary).
set -euo pipefail

RYOT=${RYOT:?set RYOT to the ryot binary}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fails=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# run_ok NAME CMD...: exit 0, output kept in $TMP/out and $TMP/err.
run_ok() {
    local name=$1
    shift
    checks=$((checks + 1))
    local rc=0
    "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name: exit $rc: $(head -c 400 "$TMP/err")"
        return 1
    fi
}

# run_rc NAME RC CMD...: exit status RC.
run_rc() {
    local name=$1 want=$2
    shift 2
    checks=$((checks + 1))
    local rc=0
    "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "$name: exit $rc, want $want"
}

# info_has FILE PATTERN...: `ryot info FILE` exits 0 and prints every pattern.
info_has() {
    local file=$1
    shift
    run_ok "info $(basename "$file")" "$RYOT" info "$file" || return 0
    for p in "$@"; do
        grep -Eq -- "$p" "$TMP/out" || fail "info $(basename "$file"): no /$p/ in output"
    done
}

# every architecture, several types
for arch in llama qwen2 gemma3; do
    for type in Q8_0 Q4_0 Q4_K F16; do
        f=$TMP/$arch-$type.gguf
        run_ok "gen $arch $type" "$RYOT" gen -o "$f" --preset "tiny-$arch" --type "$type" --seed 3 || continue
        info_has "$f" "\"$arch\"" "^  $type +[0-9]+" "block_count"
    done
done

# the other types, on one architecture
for type in Q4_1 Q5_0 Q5_1 Q5_K Q6_K BF16 F32; do
    f=$TMP/llama-$type.gguf
    run_ok "gen llama $type" "$RYOT" gen -o "$f" --arch llama --type "$type" || continue
    info_has "$f" '"llama"' "^  $type +[0-9]+"
done

# shape flags and architecture-specific keys
run_ok "gen custom shape" "$RYOT" gen -o "$TMP/custom.gguf" --arch llama --n-embd 128 --n-layer 3 --n-head 4 \
    --n-head-kv 1 --n-ff 256 --n-vocab 300 --ctx 64 --head-dim 64 --type Q8_0 --untied &&
    info_has "$TMP/custom.gguf" 'embedding_length +128' 'block_count +3' 'head_count_kv +1' \
        'attention.key_length +64' 'context_length +64' 'vocab size +300'
info_has "$TMP/gemma3-Q8_0.gguf" 'sliding_window +64' 'key_length +128'

# K-type on rows of 96: fallback types, said so
run_ok "gen fallback" "$RYOT" gen -o "$TMP/fb.gguf" --arch llama --n-embd 96 --n-head 2 --n-head-kv 1 --type Q4_K &&
    { grep -q "fallback" "$TMP/out" || fail "gen fallback: no note"; }
info_has "$TMP/fb.gguf" '^  Q5_0 ' '^  Q4_K '

# same arguments, same bytes; another seed, other bytes
run_ok "gen again" "$RYOT" gen -o "$TMP/again.gguf" --preset tiny-llama --type Q8_0 --seed 3 &&
    { cmp -s "$TMP/llama-Q8_0.gguf" "$TMP/again.gguf" || fail "gen is not deterministic"; }
run_ok "gen seed 4" "$RYOT" gen -o "$TMP/seed4.gguf" --preset tiny-llama --type Q8_0 --seed 4 &&
    { ! cmp -s "$TMP/llama-Q8_0.gguf" "$TMP/seed4.gguf" || fail "--seed has no effect"; }

# --vocab-from: tokenizer copied, n_vocab follows
run_ok "gen vocab-from" "$RYOT" gen -o "$TMP/vf.gguf" --preset tiny-qwen2 --vocab-from "$TMP/custom.gguf" &&
    info_has "$TMP/vf.gguf" 'vocab size +300'

# quantize: to Q8_0, back to F32, K-type with kept rows, --keep-output
run_ok "quantize Q8_0" "$RYOT" quantize "$TMP/llama-F16.gguf" "$TMP/q8.gguf" Q8_0 &&
    { grep -q "to Q8_0" "$TMP/out" || fail "quantize: no summary"; }
info_has "$TMP/q8.gguf" '"llama"' '^  Q8_0 +[0-9]+' 'file type: +7'
run_ok "quantize F32" "$RYOT" quantize "$TMP/q8.gguf" "$TMP/f32.gguf" f32 && info_has "$TMP/f32.gguf" 'file type: +0'
run_ok "quantize keep-output" "$RYOT" quantize "$TMP/llama-Q8_0.gguf" "$TMP/ko.gguf" Q4_K_M --keep-output &&
    info_has "$TMP/ko.gguf" '^  Q4_K ' '^  Q8_0 +1 ' 'file type: +15'
run_ok "quantize kept rows" "$RYOT" quantize "$TMP/fb.gguf" "$TMP/fb6.gguf" Q6_K &&
    { grep -q "not a multiple" "$TMP/err" || fail "quantize: no note for kept rows"; }
run_ok "quantize gemma3" "$RYOT" quantize "$TMP/gemma3-Q4_K.gguf" "$TMP/g8.gguf" Q8_0 &&
    info_has "$TMP/g8.gguf" '"gemma3"' '^  Q8_0 '

# bad usage: 2; bad input file: 1
run_rc "gen no output" 2 "$RYOT" gen --preset tiny-llama
run_rc "gen no arch" 2 "$RYOT" gen -o "$TMP/x.gguf"
run_rc "gen bad arch" 2 "$RYOT" gen -o "$TMP/x.gguf" --arch gpt9
run_rc "gen bad preset" 2 "$RYOT" gen -o "$TMP/x.gguf" --preset nope
run_rc "gen bad type" 2 "$RYOT" gen -o "$TMP/x.gguf" --arch llama --type Q3_K
run_rc "gen bad number" 2 "$RYOT" gen -o "$TMP/x.gguf" --arch llama --n-embd 12x
run_rc "gen bad shape" 2 "$RYOT" gen -o "$TMP/x.gguf" --arch llama --n-head-kv 3
run_rc "gen preset/arch mismatch" 2 "$RYOT" gen -o "$TMP/x.gguf" --preset tiny-llama --arch gemma3
run_rc "gen help" 0 "$RYOT" gen --help
run_rc "quantize usage" 2 "$RYOT" quantize "$TMP/q8.gguf"
run_rc "quantize bad type" 2 "$RYOT" quantize "$TMP/q8.gguf" "$TMP/x.gguf" Q9_9
run_rc "quantize missing input" 1 "$RYOT" quantize "$TMP/nonexistent.gguf" "$TMP/x.gguf" Q8_0
printf 'not a gguf file' >"$TMP/bad.gguf"
run_rc "quantize malformed input" 1 "$RYOT" quantize "$TMP/bad.gguf" "$TMP/x.gguf" Q8_0
run_rc "quantize help" 0 "$RYOT" quantize --help

echo "gen.sh: $checks checks, $fails failures"
[ "$fails" -eq 0 ]
