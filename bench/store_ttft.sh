#!/usr/bin/env bash
# Time to first token of a long prompt on `ryot serve --store`: cold (no
# cache anywhere: full prefill), warm (the same prompt again: RAM prefix
# cache hit), and after a restart (RAM empty, the prefix loaded from the
# store).  Each request is a non-streaming completion with max_tokens 1, so
# its wall time is the time to the first token; the median of ROUNDS
# distinct prompts per case is printed, with cached_tokens of each.
#
# usage: bench/store_ttft.sh [TOKENS (default 2048)] [ROUNDS (default 3)] [extra serve flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
RYOT=${RYOT:-build/ryot}
TOKENS=${1:-2048}
ROUNDS=${2:-3}
shift 2 2>/dev/null || shift $#
DIR=$(mktemp -d /tmp/ryot-store-ttft-XXXXXX)
PORT=${PORT:-18740}
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT

"$RYOT" store keygen "$DIR/key" 2>/dev/null
start() {
    "$RYOT" serve --port "$PORT" --ctx 4096 --threads 2 --quiet --store "$DIR/kv" --store-key-file "$DIR/key" "$@" \
        >"$DIR/serve.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do curl -sf "localhost:$PORT/health" >/dev/null && return; sleep 0.1; done
    echo "server did not start" >&2; cat "$DIR/serve.log" >&2; exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" || true; }

# a prompt of about TOKENS tokens, different per round (the first words differ)
prompt() {
    python3 -c "
import json, sys
r, n = int(sys.argv[1]), int(sys.argv[2])
words = ' '.join(f'Item {i}: crate {i * 31 % 977} goes to dock {i % 23}.' for i in range(n // 12 + 1))
print(json.dumps({'prompt': f'Manifest {r}. ' + words, 'max_tokens': 1, 'temperature': 0}))" "$1" "$TOKENS"
}
ask() { # $1 round -> "seconds cached_tokens prompt_tokens"
    prompt "$1" >"$DIR/req.json"
    curl -s -o "$DIR/resp.json" -w '%{time_total}' "localhost:$PORT/v1/completions" \
        -H 'Content-Type: application/json' --data-binary @"$DIR/req.json" >"$DIR/t"
    python3 -c "
import json; b = json.load(open('$DIR/resp.json')); u = b['usage']
print(open('$DIR/t').read().strip(), u['prompt_tokens_details']['cached_tokens'], u['prompt_tokens'])"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -a cold warm restart
start "$@"
for r in $(seq "$ROUNDS"); do
    read -r t c n < <(ask "$r"); cold+=("$t"); echo "round $r cold:    ${t}s cached $c of $n"
    read -r t c n < <(ask "$r"); warm+=("$t"); echo "round $r warm:    ${t}s cached $c of $n"
done
stop
start "$@"
for r in $(seq "$ROUNDS"); do
    read -r t c n < <(ask "$r"); restart+=("$t"); echo "round $r restart: ${t}s cached $c of $n"
done
stop
"$RYOT" store stats "$DIR/kv" --store-key-file "$DIR/key"
mc=$(printf '%s\n' "${cold[@]}" | median); mw=$(printf '%s\n' "${warm[@]}" | median)
mr=$(printf '%s\n' "${restart[@]}" | median)
python3 -c "
c, w, r = $mc, $mw, $mr
print(f'TTFT median over $ROUNDS: cold {c*1e3:.0f} ms, warm (RAM) {w*1e3:.0f} ms, after restart (store) {r*1e3:.0f} ms; '
      f'restart/warm {r/w:.2f}x, cold/restart {c/r:.1f}x')"
