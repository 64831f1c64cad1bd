#!/usr/bin/env bash
# Build llama.cpp's llama-server (the comparison server for `ryot bench serve`)
# from the llama.cpp sources vendored in the llama-cpp-python sdist.
# Installs into ~/.cache/ryot/llama-server/ (override with PREFIX=...), never
# into the repository.  Idempotent: does nothing when the binary exists
# (FORCE=1 rebuilds).  Slow on 2 cores; run it niced in the background:
#   nice bash bench/build-llama-server.sh > /tmp/llama-server-build.log 2>&1 &
# Then:
#   ~/.cache/ryot/llama-server/bin/llama-server \
#       -m ~/.cache/ryot/models/SmolLM2-135M-Instruct.Q4_1.gguf --port 8090 -np 4 -c 8192
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
PREFIX=${PREFIX:-$HOME/.cache/ryot/llama-server}
JOBS=${JOBS:-2}
PIP=${PIP:-pip}
BIN=$PREFIX/bin/llama-server
SRC=$PREFIX/src
if [ -x "$BIN" ] && [ "${FORCE:-0}" != 1 ]; then
    echo "llama-server already built: $BIN"
    exit 0
fi
mkdir -p "$SRC" "$PREFIX/bin"
sdist=$(ls "$SRC"/llama_cpp_python-"$VERSION".tar.gz 2>/dev/null || true)
if [ -z "$sdist" ]; then
    "$PIP" download --no-deps --no-binary :all: -d "$SRC" "llama-cpp-python==$VERSION"
    sdist=$(ls "$SRC"/llama_cpp_python-"$VERSION".tar.gz)
fi
tree=$SRC/llama_cpp_python-$VERSION
[ -d "$tree/vendor/llama.cpp" ] || tar -xzf "$sdist" -C "$SRC"
LLAMA=$tree/vendor/llama.cpp
[ -f "$LLAMA/CMakeLists.txt" ] || { echo "no llama.cpp sources in $tree/vendor" >&2; exit 1; }
cmake -S "$LLAMA" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF
cmake --build "$SRC/build" --target llama-server -j "$JOBS"
install -m 0755 "$SRC/build/bin/llama-server" "$BIN"
echo "built $BIN"
"$BIN" --version 2>&1 | head -n 2 || true
