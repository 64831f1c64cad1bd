#!/usr/bin/env bash
# Speculative decoding by prompt lookup on a copying workload: greedy chat
# requests whose answer repeats a passage of the prompt ("Repeat the
# following text exactly"), one at a time, against ryot serve with
# --spec-draft 0 and with each N given; prints decode tok/s (completion
# tokens over the time after the first streamed token), the speed-up, and
# the acceptance rate from /metrics.  Each server is a fresh process.
#   bench/spec_lookup.sh [N...]        (default: 4)
# Env: MODEL, THREADS (2), REQS (3), MAXTOK (160)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-$HOME/.cache/ryot/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-2}; REQS=${REQS:-3}; MAXTOK=${MAXTOK:-160}
RYOT=${RYOT:-build/ryot}
PORT=8397
DRAFTS=("$@"); [ ${#DRAFTS[@]} -gt 0 ] || DRAFTS=(4)
wait_ready() { for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && return 0; sleep 0.5; done; return 1; }
# one point: prints "tok/s acceptance% drafted"
point() {
    "$RYOT" serve -m "$MODEL" --port $PORT -t "$THREADS" --quiet --spec-draft "$1" >/dev/null 2>&1 &
    local pid=$!
    trap "kill -INT $pid 2>/dev/null || true" EXIT
    wait_ready
    python3 - "$PORT" "$REQS" "$MAXTOK" <<'PY'
import json, re, sys, time, urllib.request
port, reqs, maxtok = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
passages = [
    "The committee met on Tuesday to review the budget for the coming year. After a long discussion, "
    "the members agreed to increase funding for the library, to repair the roof of the town hall, and "
    "to hire two more teachers for the primary school. The mayor thanked everyone for their work.",
    "To install the package, first download the archive from the project page. Unpack it into a folder "
    "of your choice, open a terminal in that folder, and run the setup script. When the script finishes, "
    "restart your computer and check that the program starts from the menu.",
    "Once upon a time there was a small village at the edge of a great forest. Every morning the baker "
    "opened his shop, the children walked to school, and the old miller watched the river turn his wheel.",
]
def metrics():
    t = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    g = lambda n: float(re.search(rf"^{n} (\S+)$", t, re.M).group(1))
    return g("ryot_spec_drafted_tokens_total"), g("ryot_spec_accepted_tokens_total")
model = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models"))["data"][0]["id"]
toks = secs = 0.0
for i in range(reqs):
    body = {"model": model, "temperature": 0, "max_tokens": maxtok, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Repeat the following text exactly: " + passages[i % len(passages)]}]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    first = None; n = 0
    with urllib.request.urlopen(req) as r:
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]": continue
            ev = json.loads(line[6:])
            if ev.get("usage"): n = ev["usage"]["completion_tokens"]
            if first is None and ev.get("choices") and ev["choices"][0]["delta"].get("content"): first = time.monotonic()
    end = time.monotonic()
    toks += n - 1; secs += end - first
d, a = metrics()
print(f"{toks / secs:.1f} {100 * a / d if d else 0:.1f} {int(d)}")
PY
    kill -INT $pid; wait $pid 2>/dev/null || true
}
r=$(point 0); read -r base _ _ <<< "$r"  # $(): waits for the server to exit
printf "%-12s %8s %8s %10s\n" spec-draft "tok/s" speedup acceptance
printf "%-12s %8.1f %8s %10s\n" 0 "$base" 1.00x -
for n in "${DRAFTS[@]}"; do
    r=$(point "$n"); read -r tps acc _ <<< "$r"
    printf "%-12s %8.1f %7.2fx %9.1f%%\n" "$n" "$tps" "$(echo "$tps / $base" | bc -l)" "$acc"
done
