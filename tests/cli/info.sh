#!/usr/bin/env bash
# `ryot info` on real vocab-only GGUF files, the seed corpus, malformed files
# (truncated, bad magic, bad version) and bad usage; on the default model if
# it is in the cache.  Needs $RYOT (the binary).
set -euo pipefail

RYOT=${RYOT:?set RYOT to the ryot binary}
TESTDATA=${RYOT_TESTDATA:-../shared/testdata}
VOCAB_DIR=$TESTDATA/tokenizer
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=$HERE/../fuzz/corpus/gguf
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fails=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# expect_ok FILE PATTERN...: exit 0 and stdout matches every (extended) regex.
expect_ok() {
    local file=$1
    shift
    checks=$((checks + 1))
    local rc=0
    "$RYOT" info -m "$file" >"$TMP/out" 2>"$TMP/err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "info $file: exit $rc: $(cat "$TMP/err")"
        return
    fi
    if [ -s "$TMP/err" ]; then fail "info $file: unexpected stderr: $(cat "$TMP/err")"; fi
    local pat
    for pat in "$@"; do
        grep -Eq -- "$pat" "$TMP/out" || fail "info $file: output lacks /$pat/"
    done
}

# expect_bad FILE: exit 1 (not a signal), exactly one stderr line naming the file.
expect_bad() {
    local file=$1
    checks=$((checks + 1))
    local rc=0
    "$RYOT" info -m "$file" >"$TMP/out" 2>"$TMP/err" || rc=$?
    local lines
    lines=$(wc -l <"$TMP/err")
    if [ "$rc" -ne 1 ]; then
        fail "info $file: exit $rc, expected 1 (stderr: $(head -c 300 "$TMP/err"))"
    elif [ "$lines" -ne 1 ]; then
        fail "info $file: $lines stderr lines, expected 1: $(head -c 600 "$TMP/err")"
    elif ! grep -q "^ryot info: $file: " "$TMP/err"; then
        fail "info $file: stderr is not 'ryot info: $file: ...': $(cat "$TMP/err")"
    fi
}

# expect_usage ARGS...: exit 2.
expect_usage() {
    checks=$((checks + 1))
    local rc=0
    "$RYOT" info "$@" >/dev/null 2>"$TMP/err" || rc=$?
    [ "$rc" -eq 2 ] || fail "info $*: exit $rc, expected 2"
    [ -s "$TMP/err" ] || fail "info $*: no message on stderr"
}

common=('^version: +3$' '^tensors: +0$' '^kv pairs: +[1-9][0-9]*$' '^architecture: +"[a-z0-9]+"$'
    '^  vocab size +[1-9][0-9]+$' '^  model +"[a-z0-9]+"$' '^  chat template +(yes|no)' '^  total +0 +0 +0 ')

# ---- real vocab-only files
valid=""
if [ -d "$VOCAB_DIR" ]; then
    n=0
    for f in "$VOCAB_DIR"/*.gguf; do
        [ -e "$f" ] || continue
        n=$((n + 1))
        expect_ok "$f" "${common[@]}"
        valid=${valid:-$f}
    done
    [ "$n" -gt 0 ] || fail "no .gguf files in $VOCAB_DIR"
    # a few known values
    expect_ok "$VOCAB_DIR/gpt-2.gguf" '^architecture: +"gpt2"$' '^  pre +"gpt-2"$' '^  vocab size +50257$' \
        '^  merges +50000$' '^  bos id +50256$'
    expect_ok "$VOCAB_DIR/llama-spm.gguf" '^  model +"llama"$' '^  vocab size +32000$' '^  merges +\(none\)$' \
        '^  bos id +1$' '^  eos id +2$' '^  unknown id +0$' '^  add_bos +true$'
    expect_ok "$VOCAB_DIR/bert-bge.gguf" '^architecture: +"bert"$' '^  vocab size +30522$' '^  cls id +101$'
    expect_ok "$VOCAB_DIR/llama3.gguf" '^  pre +"llama-bpe"$' '^  vocab size +128256$' \
        '^hyperparameters \(llama\.\*\):$'
    # --kv dumps every key, arrays summarized
    checks=$((checks + 1))
    "$RYOT" info --kv -m "$VOCAB_DIR/gpt-2.gguf" >"$TMP/out"
    grep -Eq '^  tokenizer\.ggml\.tokens +array +string\[50257\] \["!", ' "$TMP/out" ||
        fail "--kv: tokens array summary missing"
    grep -Eq '^  general\.architecture +string +"gpt2"$' "$TMP/out" || fail "--kv: architecture line missing"
    nkv=$(sed -n 's/^kv pairs: *//p' "$TMP/out")
    nlines=$(sed -n '/^keys (/,$p' "$TMP/out" | tail -n +2 | wc -l)
    [ "$nkv" = "$nlines" ] || fail "--kv printed $nlines keys, file has $nkv"
else
    echo "info.sh: $VOCAB_DIR not found: skipping the real vocab files" >&2
fi

# ---- files from the repository's seed corpus (always present)
expect_ok "$CORPUS/vocab.gguf" '^version: +3$' '^  vocab size +5$' '^  merges +2$' \
    '^  context_length +2048$' '^  rope\.freq_base +10000$' '^  add_bos +true$'
expect_ok "$CORPUS/tensors.gguf" '^version: +2$' '^tensors: +4$' '^alignment: +64$' '^  F32 +1 +8 +32 ' \
    '^  Q4_0 +1 +32 +18 ' '^  F16 +1 +6 +12 ' '^  Q8_0 +1 +32 +34 ' '^  total +4 +78 +96 '
expect_ok "$CORPUS/nested.gguf" '^architecture: +\(none\)$'
valid=${valid:-$CORPUS/vocab.gguf}

# ---- malformed files, cut from a valid one
size=$(wc -c <"$valid")
for n in 0 3 4 7 8 23 24 40 100 $((size / 2)) $((size - 1)); do
    [ "$n" -lt "$size" ] || continue
    head -c "$n" "$valid" >"$TMP/trunc-$n.gguf"
    expect_bad "$TMP/trunc-$n.gguf"
done
cp "$valid" "$TMP/magic.gguf"
printf 'GGUX' | dd of="$TMP/magic.gguf" bs=1 seek=0 conv=notrunc status=none
expect_bad "$TMP/magic.gguf"
grep -q "magic" "$TMP/err" || fail "bad magic: message does not say magic: $(cat "$TMP/err")"
cp "$valid" "$TMP/version.gguf"
printf '\x63\x00\x00\x00' | dd of="$TMP/version.gguf" bs=1 seek=4 conv=notrunc status=none
expect_bad "$TMP/version.gguf"
grep -q "version 99" "$TMP/err" || fail "version 99: message does not say so: $(cat "$TMP/err")"
cp "$valid" "$TMP/nkv.gguf"
printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of="$TMP/nkv.gguf" bs=1 seek=16 conv=notrunc status=none
expect_bad "$TMP/nkv.gguf"
expect_bad "$TMP/does-not-exist.gguf"
expect_bad "$TMP"

# ---- usage
expect_usage --no-such-flag
expect_usage -m
expect_usage -m a.gguf b.gguf
checks=$((checks + 1))
"$RYOT" info --help >"$TMP/out" || fail "--help: nonzero exit"
for flag in -m --kv --help; do grep -q -- "$flag" "$TMP/out" || fail "--help does not describe $flag"; done

# ---- the default model, if fetched
model=${RYOT_MODEL_DIR:-$HOME/.cache/ryot/models}/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$model" ]; then
    expect_ok "$model" '^architecture: +"llama"$' '^  Q4_1 +[0-9]+ ' '^  embedding_length +576$' '^  block_count +30$'
    checks=$((checks + 1))
    env -u RYOT_MODEL "$RYOT" info >"$TMP/out" 2>"$TMP/err" || fail "info without -m: exit $?: $(cat "$TMP/err")"
    grep -q 'Q4_1' "$TMP/out" || fail "info without -m does not describe the default model"
else
    echo "info.sh: default model $model absent: skipping its checks" >&2
fi

if [ "$fails" -ne 0 ]; then
    echo "info.sh: $fails failures in $checks checks" >&2
    exit 1
fi
echo "info.sh: $checks checks passed"
