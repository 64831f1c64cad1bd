#!/usr/bin/env bash
# Creates the llama.cpp reference: a venv with llama-cpp-python built from
# source with the ISA flags of bench/llama_cpp_flags.sh (never GGML_NATIVE,
# never AMX), plus numpy.  Used by tests/golden/*.py, tests/unit/data/
# gen_tokenizer_vectors.py and bench/compare_llamacpp.py.
#   bash bench/setup-reference-venv.sh     # ~20-40 min on 2 cores; run it niced
# VENV=DIR (default ~/.cache/ryot/venv-ref), LLAMA_CPP_PYTHON_VERSION (0.3.36),
# FORCE=1 rebuilds, DRY_RUN=1 prints the install command only.  The flags used
# are written to $VENV/llama_cpp_flags.txt.  --no-cache-dir: pip's wheel cache
# is keyed by version, not by CMAKE_ARGS, and would hand back a wheel built
# with other flags.
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
VENV=${VENV:-$HOME/.cache/ryot/venv-ref}
flags=$(bash "$(dirname "$0")/llama_cpp_flags.sh")
cmd=("$VENV/bin/pip" install --no-cache-dir --no-binary llama-cpp-python)
[ "${FORCE:-0}" = 1 ] && cmd+=(--force-reinstall --no-deps)
cmd+=("llama-cpp-python==$VERSION")
if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "CMAKE_ARGS=\"$flags\" ${cmd[*]}"
    exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if [ "${FORCE:-0}" != 1 ] &&
    "$VENV/bin/python" -c "import llama_cpp, numpy, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
    echo "llama-cpp-python $VERSION already in $VENV (built with: $(cat "$VENV/llama_cpp_flags.txt" 2>/dev/null || echo unknown flags))"
    exit 0
fi
"$VENV/bin/pip" install numpy
CMAKE_ARGS="$flags" nice "${cmd[@]}"
echo "$flags" > "$VENV/llama_cpp_flags.txt"
echo "llama-cpp-python $VERSION installed in $VENV with: $flags"
