#!/usr/bin/env bash
# ryot serve against llama.cpp's llama-server on the same GGUF file and
# machine: aggregate output tok/s and TTFT at several concurrencies, one
# fresh server process per point (no cache carried between points), each
# server with the same thread count; llama-server gets -np equal to the
# concurrency.  Also records ryot serve's RSS after each point.
#
#   bench/build-llama-server.sh            # once
#   bench/serve_vs_llamaserver.sh [OUTDIR]
# Env: MODEL, CONC ("1 8 32"), THREADS (2), IN (128), OUT (64), NREQ_MULT (4, requests = max(8, mult x conc))
set -euo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-bench/results/serve-$(date +%Y-%m-%d)}
MODEL=${MODEL:-$HOME/.cache/ryot/models/SmolLM2-135M-Instruct.Q4_1.gguf}
LS=${LLAMA_SERVER:-$HOME/.cache/ryot/llama-server/bin/llama-server}
CONC=${CONC:-"1 8 32"}
THREADS=${THREADS:-2}
IN=${IN:-128}
OUT=${OUT:-64}
MULT=${NREQ_MULT:-4}
RYOT=${RYOT:-build/ryot}
mkdir -p "$OUTDIR"
[ -x "$LS" ] || { echo "no llama-server at $LS (run bench/build-llama-server.sh)" >&2; exit 1; }

wait_ready() { for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.5; done; return 1; }

run_point() { # name port conc
    local n=$(( $3 * MULT )); [ $n -lt 8 ] && n=8
    "$RYOT" bench serve --url "http://127.0.0.1:$2" --endpoint completions --concurrency "$3" \
        --num-requests "$n" --warmup 2 --input-len "$IN" --output-len "$OUT" --seed 7 --no-progress \
        --label "$1 c=$3" --json "$OUTDIR/$1-c$3.json" > "$OUTDIR/$1-c$3.txt"
}

for c in $CONC; do
    ctx=$(( c * (IN * 2 + OUT + 64) ))
    "$LS" -m "$MODEL" --port 8391 -np "$c" -c "$ctx" -t "$THREADS" --metrics > "$OUTDIR/llama-server-c$c.log" 2>&1 &
    pid=$!
    wait_ready 8391
    run_point llama-server 8391 "$c"
    kill $pid; wait $pid 2>/dev/null || true

    "$RYOT" serve -m "$MODEL" --port 8392 -t "$THREADS" --quiet > "$OUTDIR/ryot-c$c.log" 2>&1 &
    pid=$!
    wait_ready 8392
    run_point ryot 8392 "$c"
    grep -E 'VmRSS|VmHWM' /proc/$pid/status > "$OUTDIR/ryot-c$c.rss"
    kill -INT $pid; wait $pid 2>/dev/null || true
    echo "c=$c done" >&2
done
