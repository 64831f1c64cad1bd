#!/usr/bin/env bash
# Engine benchmark, ryot vs llama.cpp on the same GGUF files, same run:
# SmolLM2-135M Q4_1 (the default model), its Q8_0 re-quantization, and a
# Llama-3.2-1B-shaped model with random weights at Q4_0 and Q8_0 (ryot gen),
# at 1 and 2 threads; then the memory read bandwidth for the decode roofline.
# Needs the llama.cpp reference venv (bench/setup-reference-venv.sh):
#   PY=~/.cache/ryot/venv-ref/bin/python bench/engine_vs_llamacpp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$HOME/.cache/ryot/venv-ref/bin/python}
M=${RYOT_MODEL_DIR:-$HOME/.cache/ryot/models}
B=$HOME/.cache/ryot/bench
R=${R:-3}
mkdir -p "$B"
[ -f "$M/SmolLM2-135M-Instruct.Q8_0.gguf" ] ||
    build/ryot quantize "$M/SmolLM2-135M-Instruct.Q4_1.gguf" "$M/SmolLM2-135M-Instruct.Q8_0.gguf" Q8_0 >/dev/null
for t in Q4_0 Q8_0; do
    f=$B/llama3-1b-$(echo $t | tr A-Z a-z).gguf
    [ -f "$f" ] || build/ryot gen --preset llama3-1b --type $t -o "$f" >/dev/null
done
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x$(nproc), ryot $(git rev-parse --short HEAD)"
$PY bench/compare_llamacpp.py -m "$M/SmolLM2-135M-Instruct.Q4_1.gguf" -t 1,2 -p 512 -n 128 -r "$R"
$PY bench/compare_llamacpp.py -m "$M/SmolLM2-135M-Instruct.Q8_0.gguf" -t 1,2 -p 512 -n 128 -r "$R"
# the 1B model is ~10x the work: shorter runs
$PY bench/compare_llamacpp.py -m "$B/llama3-1b-q4_0.gguf" -t 1,2 -p 64 -n 16 -r 2
$PY bench/compare_llamacpp.py -m "$B/llama3-1b-q8_0.gguf" -t 1,2 -p 64 -n 16 -r 2
build/ryot bench membw --mib 1024 -t 1,2 -r 5
