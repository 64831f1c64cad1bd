#!/usr/bin/env bash
# `ryot tokenize` against llama.cpp's vocab test vectors (.inp texts split on
# "\n__ggml_vocab_test__\n", .out one id line per text) and our own
# (tests/unit/data/tokenizer, ids from llama.cpp), --bos/--eos/--special/
# --pieces, malformed and unsupported files, bad usage.  Needs $RYOT.
set -euo pipefail

RYOT=${RYOT:?set RYOT to the ryot binary}
TESTDATA=${RYOT_TESTDATA:-../shared/testdata}
V=$TESTDATA/tokenizer
OWN=$(dirname "$0")/../unit/data/tokenizer
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fails=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# split_cases DIR NAME: writes the texts of DIR/NAME.inp to $TMP/NAME.N (N
# from 1) and prints their count.
split_cases() {
    perl -0777 -ne '
        my @t = split /\n__ggml_vocab_test__\n/, $_, -1;
        pop @t;  # what follows the last marker (nothing)
        for my $i (0 .. $#t) {
            open(my $f, ">", "'"$TMP"'/'"$2"'." . ($i + 1)) or die;
            print $f $t[$i];
            close $f;
        }
        print scalar(@t), "\n";' "$1/$2.inp"
}

# check_dir DIR NAME OUT MAX [FLAG...]: the first MAX (0: all) texts of
# DIR/NAME.inp tokenized by `ryot tokenize -m $V/NAME.gguf FLAG...` against
# the lines of DIR/OUT.
check_dir() {
    local dir=$1 name=$2 out=$3 max=$4 n i want got
    shift 4
    n=$(split_cases "$dir" "$name")
    [ "$max" -gt 0 ] && [ "$max" -lt "$n" ] && n=$max
    for ((i = 1; i <= n; i++)); do
        checks=$((checks + 1))
        want=$(sed -n "${i}p" "$dir/$out" | sed 's/^ *//; s/ *$//')
        if ! got=$("$RYOT" tokenize -m "$V/$name.gguf" "$@" <"$TMP/$name.$i" 2>"$TMP/err"); then
            fail "$name $* case $i: exit status $?: $(cat "$TMP/err")"
            continue
        fi
        [ "$got" = "$want" ] || fail "$name $* case $i: got '$got', want '$want'"
    done
}

# check_vectors NAME [MAX]: the first MAX (default all) cases of llama.cpp's NAME.
check_vectors() { check_dir "$V" "$1" "$1.out" "${2:-0}"; }

check_vectors gpt-2
check_vectors llama-spm
check_vectors llama3 8
check_vectors deepseek-coder 8
check_vectors bert-bge 8
# gpt-neox: no tokenizer.ggml.pre, llama.cpp's default pre-tokenizer; phi-3:
# "</s>" is text without --special, token 2 with it.
check_dir "$OWN" gpt-neox gpt-neox.out 0
check_dir "$OWN" phi-3 phi-3.out 0
check_dir "$OWN" phi-3 phi-3.special.out 0 --special

# expect NAME WANT CMD...: stdout equals WANT, exit 0, stderr empty.
expect() {
    local name=$1 want=$2 got rc=0
    shift 2
    checks=$((checks + 1))
    got=$("$@" 2>"$TMP/err") || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name: exit $rc: $(cat "$TMP/err")"
        return
    fi
    [ -s "$TMP/err" ] && fail "$name: unexpected stderr: $(cat "$TMP/err")"
    [ "$got" = "$want" ] || fail "$name: got '$got', want '$want'"
}

tok() { printf '%s' "$1" | "$RYOT" tokenize "${@:2}"; }

expect "plain" "15496 995" tok "Hello world" -m "$V/gpt-2.gguf"
expect "--bos" "50256 15496 995" tok "Hello world" -m "$V/gpt-2.gguf" --bos
expect "--bos --eos" "50256 15496 995 50256" tok "Hello world" -m "$V/gpt-2.gguf" --bos --eos
expect "--bos spm" "1 15043 3186" tok "Hello world" -m "$V/llama-spm.gguf" --bos
expect "--special" "64 50256 65" tok "a<|endoftext|>b" -m "$V/gpt-2.gguf" --special
checks=$((checks + 1))
out=$(tok "a<|endoftext|>b" -m "$V/gpt-2.gguf")
case " $out " in *" 50256 "*) fail "specials parsed without --special: $out" ;; esac
expect "empty input" "" tok "" -m "$V/gpt-2.gguf"
expect "--pieces" "$(printf '15496 995 198\n15496\tHello\n995\t world\n198\t\\n')" tok $'Hello world\n' -m "$V/gpt-2.gguf" --pieces
expect "--pieces bytes" "$(printf '29871 243 162 171 156\n29871\t \n243\t\\xf0\n162\t\\x9f\n171\t\\xa8\n156\t\\x99')" \
    tok $'\xf0\x9f\xa8\x99' -m "$V/llama-spm.gguf" --pieces
# Invalid UTF-8 is tokenized, not rejected.
checks=$((checks + 1))
printf 'a\xffb\xc3' | "$RYOT" tokenize -m "$V/gpt-2.gguf" >"$TMP/out" 2>"$TMP/err" || fail "invalid UTF-8: exit $?"

# expect_fail NAME RC PATTERN CMD...: exit RC, exactly one stderr line matching PATTERN.
expect_fail() {
    local name=$1 want=$2 pat=$3 rc=0
    shift 3
    checks=$((checks + 1))
    "$@" </dev/null >"$TMP/out" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "$name: exit $rc, want $want"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$name: want one stderr line, got: $(cat "$TMP/err")"
    grep -Eq -- "$pat" "$TMP/err" || fail "$name: stderr lacks /$pat/: $(cat "$TMP/err")"
}

head -c 100000 "$V/gpt-2.gguf" >"$TMP/truncated.gguf"
# A vocab whose tokenizer.ggml.model value is unknown: patch "gpt2" (same length).
perl -0777 -pe 's/(tokenizer\.ggml\.model\x08\x00\x00\x00\x04\x00{7})gpt2/${1}wxyz/' "$V/gpt-2.gguf" >"$TMP/wordsoup.gguf"
expect_fail "truncated file" 1 "truncated.gguf" "$RYOT" tokenize -m "$TMP/truncated.gguf"
printf 'GGUF\x03\x00\x00\x00' >"$TMP/short.gguf"
expect_fail "short file" 1 "short.gguf" "$RYOT" tokenize -m "$TMP/short.gguf"
expect_fail "missing file" 1 "nonexistent" "$RYOT" tokenize -m "$TMP/nonexistent.gguf"
expect_fail "unsupported model" 1 "unsupported tokenizer model" "$RYOT" tokenize -m "$TMP/wordsoup.gguf"
expect_fail "bad option" 2 "unknown option" "$RYOT" tokenize --frobnicate
expect_fail "-m without file" 2 "needs a file" "$RYOT" tokenize -m

checks=$((checks + 1))
"$RYOT" tokenize --help >"$TMP/out" || fail "--help: exit $?"
for flag in -m --bos --eos --special --pieces --help; do
    grep -q -- "$flag" "$TMP/out" || fail "--help does not describe $flag"
done

echo "tokenize.sh: $((checks - fails))/$checks checks passed"
[ "$fails" -eq 0 ]
