#!/usr/bin/env bash
# ryot route benchmarks (src/router/), all processes fresh and on this machine:
#  1. routing policy on the shared-prefix workload (one system prompt, USERS
#     multi-turn conversations that append the previous answer), 3 backends:
#     prefix, least-loaded and round-robin.  Reports the backends' own
#     prefix-cache hit rate (delta of ryot_prefix_cache_hits_total over
#     ryot_prefix_cache_queries_total, summed over the 3) and TTFT p50/p99.
#     Each policy gets 3 fresh backends (cold caches).
#  2. router overhead: the same streamed load (OVERHEAD_CONC concurrent
#     streams) straight to one backend and through the router in front of
#     it; TTFT and ITL (per-chunk gap) p50/p99 of both, and the difference.
#   bench/router_prefix.sh [OUTDIR]
# Env: MODEL (default SmolLM2-135M Q4_1), THREADS per backend (1), PREFIX (256 words),
#      USERS (12), TURNS (3), OUT (16), CONC (6); OVERHEAD_CONC (200), OVERHEAD_N (600),
#      OVERHEAD_OUT (32), OVERHEAD_MODEL (default: a tiny generated model, so the
#      backend is not the bottleneck); SKIP_POLICY=1 / SKIP_OVERHEAD=1 skip a part.
set -euo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-bench/results/router-$(date +%Y-%m-%d)}
MODEL=${MODEL:-$HOME/.cache/ryot/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-1}; PREFIX=${PREFIX:-256}; USERS=${USERS:-12}; TURNS=${TURNS:-3}; OUT=${OUT:-16}; CONC=${CONC:-6}
OVERHEAD_CONC=${OVERHEAD_CONC:-200}; OVERHEAD_N=${OVERHEAD_N:-600}; OVERHEAD_OUT=${OVERHEAD_OUT:-32}
RYOT=${RYOT:-build/ryot}
mkdir -p "$OUTDIR"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_ready() { for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.25; done; return 1; }
stop_all() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
# "hits queries" summed over the backends' /metrics
prefix_counters() {
    for port in "$@"; do curl -sf "http://127.0.0.1:$port/metrics"; done |
        awk '/^ryot_prefix_cache_hits_total /{h+=$2} /^ryot_prefix_cache_queries_total /{q+=$2} END{printf "%d %d\n", h, q}'
}
summary() { # label json hits queries
    python3 - "$@" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
h, q = float(sys.argv[3]), float(sys.argv[4])
m = json.load(open(path))["runs"][0]["metrics"]
t, i = m["ttft_ms"], m["itl_ms"]
print(f"{label:<14} ok {m['completed']:>4} failed {m['failed']:>3}  prefix-cache hit rate {h / q if q else 0:6.3f}"
      f"  TTFT p50 {t['median']:8.2f} p99 {t['p99']:8.2f} ms  ITL p50 {i['median']:7.3f} p99 {i['p99']:7.3f} ms")
PY
}

if [ -z "${SKIP_POLICY:-}" ]; then
    : > "$OUTDIR/policy.txt"
    for policy in prefix least-loaded round-robin; do
        ports=(8411 8412 8413)
        for p in "${ports[@]}"; do
            "$RYOT" serve -m "$MODEL" --port "$p" -t "$THREADS" --quiet --no-webui > "$OUTDIR/backend-$policy-$p.log" 2>&1 &
            pids+=($!)
        done
        for p in "${ports[@]}"; do wait_ready "$p"; done
        "$RYOT" route --port 8410 --policy "$policy" --quiet --probe-ms 100 \
            $(for p in "${ports[@]}"; do printf -- '--backend http://127.0.0.1:%s ' "$p"; done) > "$OUTDIR/router-$policy.log" 2>&1 &
        pids+=($!)
        wait_ready 8410
        read -r h0 q0 < <(prefix_counters "${ports[@]}")
        "$RYOT" bench serve --url http://127.0.0.1:8410 --endpoint chat --workload shared-prefix --prefix-len "$PREFIX" \
            --users "$USERS" --turns "$TURNS" --concurrency "$CONC" --output-len "$OUT" --seed 5 --no-progress \
            --no-metrics --label "router $policy shared-prefix" --json "$OUTDIR/policy-$policy.json" > "$OUTDIR/policy-$policy.txt"
        read -r h1 q1 < <(prefix_counters "${ports[@]}")
        curl -sf http://127.0.0.1:8410/metrics > "$OUTDIR/router-$policy.metrics"
        summary "$policy" "$OUTDIR/policy-$policy.json" $((h1 - h0)) $((q1 - q0)) | tee -a "$OUTDIR/policy.txt"
        stop_all
    done
fi

if [ -z "${SKIP_OVERHEAD:-}" ]; then
    OM=${OVERHEAD_MODEL:-}
    if [ -z "$OM" ]; then
        tmpd=$(mktemp -d)
        OM="$tmpd/tiny.gguf" # not kept in OUTDIR (28 MiB)
        "$RYOT" gen -o "$OM" --preset tiny-llama --ctx 2048 --vocab-from "$MODEL" > /dev/null
    fi
    "$RYOT" serve -m "$OM" --port 8421 -t "$THREADS" --quiet --no-webui --max-running 256 > "$OUTDIR/overhead-backend.log" 2>&1 &
    pids+=($!)
    wait_ready 8421
    "$RYOT" route --port 8420 --quiet --backend http://127.0.0.1:8421 > "$OUTDIR/overhead-router.log" 2>&1 &
    pids+=($!)
    wait_ready 8420
    : > "$OUTDIR/overhead.txt"
    for round in 1 2; do # alternate, so drift on a shared machine hits both sides
        for side in direct:8421 router:8420; do
            name=${side%%:*}; port=${side##*:}
            "$RYOT" bench serve --url "http://127.0.0.1:$port" --endpoint completions --input-len 32 \
                --output-len "$OVERHEAD_OUT" --concurrency "$OVERHEAD_CONC" --num-requests "$OVERHEAD_N" --seed 3 \
                --no-progress --no-metrics --label "router overhead $name" --json "$OUTDIR/overhead-$name-$round.json" \
                > "$OUTDIR/overhead-$name-$round.txt"
            summary "$name#$round" "$OUTDIR/overhead-$name-$round.json" 0 0 | tee -a "$OUTDIR/overhead.txt"
        done
    done
    stop_all
    [ -n "${tmpd:-}" ] && rm -rf "$tmpd"
fi
echo "results in $OUTDIR"
