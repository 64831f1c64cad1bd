#!/usr/bin/env bash
# Shared-prefix workload (one long system prompt, several users, multi-turn
# conversations that append the previous answer) against ryot serve and
# llama-server, one fresh process each, same thread count.
#   bench/shared_prefix.sh [OUTDIR]
# Env: MODEL, THREADS (2), PREFIX (512 words), USERS (8), TURNS (3), OUT (32)
set -euo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-bench/results/shared-prefix-$(date +%Y-%m-%d)}
MODEL=${MODEL:-$HOME/.cache/ryot/models/SmolLM2-135M-Instruct.Q4_1.gguf}
LS=${LLAMA_SERVER:-$HOME/.cache/ryot/llama-server/bin/llama-server}
THREADS=${THREADS:-2}; PREFIX=${PREFIX:-512}; USERS=${USERS:-8}; TURNS=${TURNS:-3}; OUT=${OUT:-32}
RYOT=${RYOT:-build/ryot}
mkdir -p "$OUTDIR"
wait_ready() { for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.5; done; return 1; }
point() {
    "$RYOT" bench serve --url "http://127.0.0.1:$2" --endpoint chat --workload shared-prefix --prefix-len "$PREFIX" \
        --users "$USERS" --turns "$TURNS" --concurrency "$USERS" --output-len "$OUT" --seed 5 --no-progress \
        --label "$1 shared-prefix" --json "$OUTDIR/$1.json" > "$OUTDIR/$1.txt"
}
"$LS" -m "$MODEL" --port 8391 -np "$USERS" -c $(( USERS * 2048 )) -t "$THREADS" --metrics > "$OUTDIR/llama-server.log" 2>&1 &
pid=$!; wait_ready 8391; point llama-server 8391; kill $pid; wait $pid 2>/dev/null || true
"$RYOT" serve -m "$MODEL" --port 8392 -t "$THREADS" --quiet > "$OUTDIR/ryot.log" 2>&1 &
pid=$!; wait_ready 8392; point ryot 8392; kill -INT $pid; wait $pid 2>/dev/null || true
