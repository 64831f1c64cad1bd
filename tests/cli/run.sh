#!/usr/bin/env bash
# `ryot run`, `ryot bench` and `ryot perplexity` on tiny random models made
# by `ryot gen` (llama and gemma3): exit codes, output shapes, determinism of
# greedy decoding across thread counts, and bad usage.  Needs $RYOT.
set -euo pipefail

RYOT=${RYOT:?set RYOT to the ryot binary}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fails=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
check() { checks=$((checks + 1)); }

"$RYOT" gen -o "$TMP/llama.gguf" --preset tiny-llama >/dev/null 2>&1
"$RYOT" gen -o "$TMP/gemma.gguf" --preset tiny-gemma3 >/dev/null 2>&1
head -c 4000 "$HERE/../golden/ppl.txt" >"$TMP/text.txt"

for m in llama gemma; do
    M=$TMP/$m.gguf
    # greedy ids: N of them, the same with 1 and 2 threads
    check
    a=$("$RYOT" run -m "$M" -p "hello world" -n 12 --temp 0 --ids -t 1 2>"$TMP/err") || fail "$m run -t 1: $(cat "$TMP/err")"
    b=$("$RYOT" run -m "$M" -p "hello world" -n 12 --temp 0 --ids -t 2 2>"$TMP/err") || fail "$m run -t 2: $(cat "$TMP/err")"
    [[ $a =~ ^[0-9]+( [0-9]+)*$ ]] || fail "$m run --ids printed '$a'"
    [ "$a" = "$b" ] || fail "$m greedy ids differ between 1 and 2 threads: '$a' vs '$b'"
    check
    grep -Eq 'prompt [0-9]+ tokens.*generated [0-9]+ tokens' "$TMP/err" || fail "$m run: no timing line on stderr"
    # seeded sampling is reproducible
    check
    s1=$("$RYOT" run -m "$M" -p "abc" -n 10 --temp 1 --seed 7 --ids 2>/dev/null)
    s2=$("$RYOT" run -m "$M" -p "abc" -n 10 --temp 1 --seed 7 --ids 2>/dev/null)
    [ "$s1" = "$s2" ] || fail "$m: same seed, different tokens"
    # text output and prompt from a file
    check
    printf 'once upon' >"$TMP/prompt.txt"
    "$RYOT" run -m "$M" -f "$TMP/prompt.txt" -n 4 --temp 0 >/dev/null 2>"$TMP/err" || fail "$m run -f: $(cat "$TMP/err")"
    # bench: JSON with pp and tg results
    check
    j=$("$RYOT" bench -m "$M" -p 16 -n 4 -r 2 --json 2>"$TMP/err") || fail "$m bench: $(cat "$TMP/err")"
    echo "$j" | python3 -c 'import json,sys; d=json.load(sys.stdin); r={x["test"]: x for x in d["results"]}; assert r["pp16"]["mean"] > 0 and r["tg4"]["mean"] > 0 and len(r["tg4"]["runs"]) == 2' ||
        fail "$m bench --json: $j"
    check
    "$RYOT" bench -m "$M" -p 8 -n 2 -r 1 | grep -q '| *pp8 *|' || fail "$m bench table"
    # perplexity: running values and the final line
    check
    out=$("$RYOT" perplexity -m "$M" -f "$TMP/text.txt" -c 64 --chunks 3 2>"$TMP/err") || fail "$m perplexity: $(cat "$TMP/err")"
    echo "$out" | grep -Eq '^\[3\] [0-9.]+$' || fail "$m perplexity: no running value: $out"
    echo "$out" | grep -Eq '^PPL = [0-9]+\.[0-9]{4}$' || fail "$m perplexity: no final line: $out"
done

# bad usage: exit 2
for args in "run" "run -m $TMP/llama.gguf" "run -m $TMP/llama.gguf -p x -n abc" "run -m $TMP/llama.gguf -p x --bogus" \
    "bench -m $TMP/llama.gguf -r 0" "perplexity -m $TMP/llama.gguf" "perplexity -m $TMP/llama.gguf -f $TMP/text.txt -c x"; do
    check
    rc=0
    # shellcheck disable=SC2086
    "$RYOT" $args >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "'ryot $args' exited $rc, expected 2"
done
# load failures: exit 1 with a message naming the problem
check
rc=0
"$RYOT" run -m "$TMP/missing.gguf" -p x >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "missing.gguf" "$TMP/err" || fail "run on a missing file: rc $rc, $(cat "$TMP/err")"
check
rc=0
"$RYOT" perplexity -m "$TMP/llama.gguf" -f "$TMP/prompt.txt" -c 512 >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "window" "$TMP/err" || fail "perplexity on a too-short text: rc $rc"

echo "run.sh: $((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
