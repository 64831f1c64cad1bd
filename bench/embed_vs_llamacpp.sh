#!/usr/bin/env bash
# Sentence-embedding throughput, ryot vs llama.cpp, same run, same GGUF
# (all-MiniLM-L6-v2 from scripts/fetch-models.sh minilm, converted to F32,
# F16 and Q8_0 by `ryot convert`), same 256 sentences (8-24 words), batches
# of 32, at 1 and 2 threads; median of R passes after a warm-up.
#   PY=~/.cache/ryot/venv-ref/bin/python bench/embed_vs_llamacpp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$HOME/.cache/ryot/venv-ref/bin/python}
M=${RYOT_MODEL_DIR:-$HOME/.cache/ryot/models}
B=$HOME/.cache/ryot/bench
R=${R:-3}
RYOT=${RYOT:-build/ryot}
mkdir -p "$B"
"$PY" -c "
import random
random.seed(1)
W='the a cat dog sat on mat market prices rose fell today after news of strong weak results people walk in park every morning city council voted to build new bridge over river children play football school yard'.split()
for i in range(256): print(' '.join(random.choice(W) for _ in range(random.randint(8, 24))) + '.')" >"$B/sentences.txt"
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x$(nproc), ryot $(git rev-parse --short HEAD)"
for ty in F32 F16 Q8_0; do
    f=$B/minilm.$(echo $ty | tr A-Z a-z).gguf
    "$RYOT" convert "$M/all-MiniLM-L6-v2" -o "$f" --type $ty >/dev/null
    for t in 1 2; do
        r=$("$RYOT" bench embed -m "$f" -f "$B/sentences.txt" -b 32 -r "$R" -t $t | sed -n 's/.* \([0-9.]*\) sentences\/s.*/\1/p')
        l=$("$PY" bench/llama_embed_bench.py "$f" $t "$B/sentences.txt" 32 "$R" 2>/dev/null | sed -n 's/.* \([0-9.]*\) sentences\/s/\1/p')
        echo "$ty t=$t: ryot $r sentences/s, llama.cpp $l sentences/s, ratio $(awk -v a="$r" -v b="$l" 'BEGIN{printf "%.2f", a/b}')"
    done
done
