#!/usr/bin/env bash
# `ryot run --chat` feeds the model the same prompt as the server: for each
# default model in the cache, `ryot run --chat --print-prompt` must print
# exactly what a `ryot serve` of that model answers to POST /apply-template
# with the same text as one user message (both go through ryot_chat_apply).
# A missing model is skipped, unless CI=true, where it fails.  Needs $RYOT
# and python3.
set -euo pipefail

RYOT=${RYOT:?set RYOT to the ryot binary}
MODEL_DIR=${RYOT_MODEL_DIR:-$HOME/.cache/ryot/models}
TMP=$(mktemp -d)
SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop_server; rm -rf "$TMP"' EXIT

fails=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# a prompt with a newline, quotes and non-ASCII text, to catch escaping slips
PROMPT=$(printf 'Say "hello" in Fran\xc3\xa7ais,\nplease.')

# http_ok URL: GET answers 200.
http_ok() {
    python3 -c 'import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=5).status != 200)' \
        "$1" 2>/dev/null
}

# start_server MODEL: `ryot serve` on a free port, up once /health is 200;
# sets SERVER_PID and URL.
start_server() {
    "$RYOT" serve -m "$1" --port 0 --ctx 256 --threads 1 --quiet >"$TMP/serve.log" 2>&1 &
    SERVER_PID=$!
    URL=
    for _ in $(seq 600); do
        URL=$(sed -n 's|.*listening on \(http://[0-9.]*:[0-9]*\).*|\1|p' "$TMP/serve.log" | head -1)
        if [ -n "$URL" ] && http_ok "$URL/health"; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    fail "ryot serve did not come up: $(tail -c 400 "$TMP/serve.log")"
    stop_server
    return 1
}

for file in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
    M=$MODEL_DIR/$file
    if [ ! -f "$M" ]; then
        if [ "${CI:-}" = true ]; then fail "model $file missing in $MODEL_DIR"; else echo "SKIP $file: not in $MODEL_DIR"; fi
        continue
    fi
    checks=$((checks + 1))
    "$RYOT" run -m "$M" --chat --print-prompt -p "$PROMPT" >"$TMP/run.txt" 2>"$TMP/err" ||
        { fail "$file: ryot run --chat --print-prompt: $(cat "$TMP/err")"; continue; }
    start_server "$M" || continue
    python3 - "$URL/apply-template" "$PROMPT" "$TMP/server.txt" <<'EOF' || fail "$file: POST /apply-template failed"
import json, sys, urllib.request
url, prompt, out = sys.argv[1:4]
body = json.dumps({"messages": [{"role": "user", "content": prompt}], "add_generation_prompt": True}).encode()
req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    text = json.load(r)["prompt"]
with open(out, "wb") as f:
    f.write(text.encode())
EOF
    stop_server
    if ! cmp -s "$TMP/run.txt" "$TMP/server.txt"; then
        fail "$file: ryot run --chat and /apply-template differ: $(od -c "$TMP/run.txt" | head -5) vs $(od -c "$TMP/server.txt" | head -5)"
    elif ! grep -q 'Fran' "$TMP/run.txt"; then
        fail "$file: the rendered prompt lacks the message: $(cat "$TMP/run.txt")"
    fi
done

# the same messages give the same text at temperature 0: `ryot run --chat
# --system` against /v1/chat/completions (both stop at the end of the turn or
# after 48 tokens)
GEN_SYSTEM="You are a helpful assistant."
GEN_USER="What is the capital of France?"
for file in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
    M=$MODEL_DIR/$file
    [ -f "$M" ] || continue # reported above
    checks=$((checks + 1))
    "$RYOT" run -m "$M" --chat --system "$GEN_SYSTEM" --temp 0 -n 48 -t 1 -c 256 -p "$GEN_USER" \
        >"$TMP/run_gen.txt" 2>"$TMP/err" || { fail "$file: ryot run --chat --system: $(cat "$TMP/err")"; continue; }
    start_server "$M" || continue
    python3 - "$URL/v1/chat/completions" "$GEN_SYSTEM" "$GEN_USER" "$TMP/server_gen.txt" <<'EOF' ||
import json, sys, urllib.request
url, system, user, out = sys.argv[1:5]
body = json.dumps({"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                   "temperature": 0, "max_tokens": 48}).encode()
req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    text = json.load(r)["choices"][0]["message"]["content"]
with open(out, "wb") as f:
    f.write(text.encode())
EOF
        fail "$file: POST /v1/chat/completions failed"
    stop_server
    printf '\n' >>"$TMP/server_gen.txt" # ryot run ends its output with a newline
    if ! cmp -s "$TMP/run_gen.txt" "$TMP/server_gen.txt"; then
        fail "$file: run --chat and the server generate different text: [$(cat "$TMP/run_gen.txt")] vs [$(cat "$TMP/server_gen.txt")]"
    elif [ "$(wc -c <"$TMP/run_gen.txt")" -lt 4 ]; then
        fail "$file: run --chat generated nothing"
    fi
done

# --system without --chat is a usage error
checks=$((checks + 1))
rc=0
"$RYOT" run --system x -p hi >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--system" "$TMP/err" || fail "--system without --chat: rc $rc, $(cat "$TMP/err")"

# a model without any chat format: --chat is refused with a message (exit 1)
checks=$((checks + 1))
"$RYOT" gen -o "$TMP/tiny.gguf" --preset tiny-llama >/dev/null 2>&1
rc=0
"$RYOT" run -m "$TMP/tiny.gguf" --chat --print-prompt -p hi >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "chat" "$TMP/err" || fail "--chat on a model without a format: rc $rc, $(cat "$TMP/err")"

echo "chat.sh: $((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
