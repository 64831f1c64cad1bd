#!/usr/bin/env bash
# Response cache on a workload with repeats: the same `ryot bench serve`
# synthetic workload (--repeat-ratio, temperature 0) against `ryot serve`
# with --cache-mb 0 (off) and with the cache, alternating, plus a run where
# every request after the first repeats it (all hits: the hit latency seen
# by a client, HTTP included).  Usage: bench/cache_repeats.sh [MODEL]
# Env: RYOT (build/ryot), REPEAT (0.5), N (120), CONC (4), IN (64), OUT (32), ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
RYOT=${RYOT:-build/ryot}
MODEL=${1:-}
REPEAT=${REPEAT:-0.5} N=${N:-120} CONC=${CONC:-4} IN=${IN:-64} OUT=${OUT:-32} ROUNDS=${ROUNDS:-2}
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

serve() { # serve CACHE_MB -> URL in $URL
    "$RYOT" serve ${MODEL:+-m "$MODEL"} --port 0 --ctx 2048 --quiet --cache-mb "$1" >"$TMP/serve.log" 2>&1 &
    PID=$!
    URL=
    for _ in $(seq 600); do
        URL=$(sed -n 's|.*listening on \(http://[0-9.]*:[0-9]*\).*|\1|p' "$TMP/serve.log" | head -1)
        [ -n "$URL" ] && curl -sf "$URL/health" >/dev/null && return 0
        sleep 0.1
    done
    echo "server did not start" >&2
    exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

run() { # run LABEL REPEAT N [WARMUP]
    "$RYOT" bench serve --url "$URL" --repeat-ratio "$2" --num-requests "$3" --warmup "${4:-0}" --concurrency "$CONC" \
        --input-len "$IN" --output-len "$OUT" --no-progress --no-metrics --json "$TMP/$1.json" >/dev/null
    python3 - "$1" "$TMP/$1.json" <<'EOF'
import json, sys
label, path = sys.argv[1:3]
r = json.load(open(path))["runs"][0]
m = r["metrics"]
print(f"{label:12s} req/s {m['request_throughput']:8.2f}  out tok/s {m['output_throughput']:8.1f}  "
      f"TTFT p50 {m['ttft_ms']['median']:8.2f} ms  p99 {m['ttft_ms']['p99']:8.2f} ms  E2E p50 {m['e2e_ms']['median']:8.2f} ms")
EOF
}

for round in $(seq "$ROUNDS"); do
    serve 0; run "off-r$round" "$REPEAT" "$N"; stop
    serve 256; run "cache-r$round" "$REPEAT" "$N"; stop
done
serve 256; run "all-hits" 1.0 "$N" 1; stop # the warm-up request is the one miss
