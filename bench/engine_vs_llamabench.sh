#!/usr/bin/env bash
# ryot bench against llama-bench (llama.cpp built by bench/build-llama-server.sh
# with the ISA flags of bench/llama_cpp_flags.sh), same GGUF file, same run,
# same protocol: pp = one batch of P random tokens from an empty context,
# tg = N tokens one at a time; one warm-up, mean over R runs.  The two engines
# alternate ROUNDS times per (model, threads) so machine noise hits both alike;
# the table shows the mean of the rounds and the ratio ryot / llama.cpp.
#   bench/engine_vs_llamabench.sh [MODEL.gguf ...]
# Without arguments: SmolLM2-135M Q4_1 and Q8_0, Gemma-3-270M Q4_K_M.
# Env: T (thread list, default "1 2"), P (512), N (128), R (3), ROUNDS (2),
#      RYOT_ISA (passed through), LLAMA_BENCH (path).
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${LLAMA_BENCH:-$HOME/.cache/ryot/llama-server/bin/llama-bench}
M=${RYOT_MODEL_DIR:-$HOME/.cache/ryot/models}
T=${T:-1 2} P=${P:-512} N=${N:-128} R=${R:-3} ROUNDS=${ROUNDS:-2}
[ -x "$LB" ] || { echo "no llama-bench at $LB: run bench/build-llama-server.sh" >&2; exit 1; }
if [ $# -eq 0 ]; then
    [ -f "$M/SmolLM2-135M-Instruct.Q8_0.gguf" ] ||
        build/ryot quantize "$M/SmolLM2-135M-Instruct.Q4_1.gguf" "$M/SmolLM2-135M-Instruct.Q8_0.gguf" Q8_0 >/dev/null
    set -- "$M/SmolLM2-135M-Instruct.Q4_1.gguf" "$M/SmolLM2-135M-Instruct.Q8_0.gguf" "$M/gemma-3-270m-q4_k_m.gguf"
fi
# last "N ± sd" column of the rows of a markdown table whose test column is ppP / tgN
tps() { awk -F'|' -v t="$1" '$0 ~ "\\| *"t" *\\|" { split($(NF-1), a, " "); print a[1] }'; }
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') x$(nproc)," \
     "ryot $(git rev-parse --short HEAD) isa ${RYOT_ISA:-auto}, llama-bench $("$LB" --version 2>&1 | grep -o 'version: [0-9]*' | head -1)"
echo "| model | threads | test | llama.cpp t/s | ryot t/s | ratio |"
echo "|---|---:|---|---:|---:|---:|"
for m in "$@"; do
    for t in $T; do
        lp=0 lt=0 rp=0 rt=0
        for _ in $(seq "$ROUNDS"); do
            out=$("$LB" -m "$m" -p "$P" -n "$N" -r "$R" -t "$t" 2>/dev/null)
            lp=$(echo "$lp $(echo "$out" | tps "pp$P")" | awk '{print $1+$2}')
            lt=$(echo "$lt $(echo "$out" | tps "tg$N")" | awk '{print $1+$2}')
            out=$(build/ryot bench -m "$m" -p "$P" -n "$N" -r "$R" -t "$t" 2>/dev/null)
            rp=$(echo "$rp $(echo "$out" | tps "pp$P")" | awk '{print $1+$2}')
            rt=$(echo "$rt $(echo "$out" | tps "tg$N")" | awk '{print $1+$2}')
        done
        name=$(basename "$m" .gguf)
        awk -v n="$name" -v t="$t" -v k="$ROUNDS" -v a="$lp" -v b="$rp" -v tp="pp$P" \
            'BEGIN { printf "| %s | %d | %s | %.1f | %.1f | %.2f |\n", n, t, tp, a/k, b/k, b/a }'
        awk -v n="$name" -v t="$t" -v k="$ROUNDS" -v a="$lt" -v b="$rt" -v tg="tg$N" \
            'BEGIN { printf "| %s | %d | %s | %.1f | %.1f | %.2f |\n", n, t, tg, a/k, b/k, b/a }'
    done
done
