#!/usr/bin/env bash
# Build llama.cpp's llama-server (the comparison server for `ryot bench serve`)
# and llama-bench (engine figures like for like with `ryot bench`) from the
# llama.cpp sources vendored in the llama-cpp-python sdist, with the ISA flags
# of bench/llama_cpp_flags.sh (GGML_NATIVE and AMX off: a native build crashes
# on AMX Xeons).  Installs into ~/.cache/ryot/llama-server/ (override with
# PREFIX=...), never into the repository; the flags used go to
# $PREFIX/llama_cpp_flags.txt.  Idempotent: does nothing when both binaries
# exist (FORCE=1 rebuilds).  DRY_RUN=1 prints the cmake commands only.  Slow
# on 2 cores; run it niced in the background:
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
tree=$SRC/llama_cpp_python-$VERSION
LLAMA=$tree/vendor/llama.cpp
read -r -a ISA <<<"$(bash "$(dirname "$0")/llama_cpp_flags.sh")"
CONFIGURE=(cmake -S "$LLAMA" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_CURL=OFF "${ISA[@]}"
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF)
BUILD=(cmake --build "$SRC/build" --target llama-server llama-bench -j "$JOBS")
if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "${CONFIGURE[*]}"
    echo "${BUILD[*]}"
    exit 0
fi
if [ -x "$BIN" ] && [ -x "$PREFIX/bin/llama-bench" ] && [ "${FORCE:-0}" != 1 ]; then
    echo "llama-server and llama-bench already built in $PREFIX/bin"
    exit 0
fi
mkdir -p "$SRC" "$PREFIX/bin"
sdist=$(ls "$SRC"/llama_cpp_python-"$VERSION".tar.gz 2>/dev/null || true)
if [ -z "$sdist" ]; then
    "$PIP" download --no-deps --no-binary :all: -d "$SRC" "llama-cpp-python==$VERSION"
    sdist=$(ls "$SRC"/llama_cpp_python-"$VERSION".tar.gz)
fi
[ -d "$LLAMA" ] || tar -xzf "$sdist" -C "$SRC"
[ -f "$LLAMA/CMakeLists.txt" ] || { echo "no llama.cpp sources in $tree/vendor" >&2; exit 1; }
"${CONFIGURE[@]}"
"${BUILD[@]}"
install -m 0755 "$SRC/build/bin/llama-server" "$BIN"
install -m 0755 "$SRC/build/bin/llama-bench" "$PREFIX/bin/llama-bench"
echo "${ISA[*]}" > "$PREFIX/llama_cpp_flags.txt"
echo "built $BIN and $PREFIX/bin/llama-bench with: ${ISA[*]}"
"$BIN" --version 2>&1 | head -n 2 || true
