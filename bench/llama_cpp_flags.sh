#!/usr/bin/env bash
# The cmake -D flags for every llama.cpp build this repository makes: the
# llama-cpp-python reference (CMAKE_ARGS="$(bench/llama_cpp_flags.sh)") and
# bench/build-llama-server.sh (llama-server, llama-bench).  Prints them on one
# line.
#
# Why explicit flags: GGML_NATIVE=ON compiles for the build host with
# -march=native, which on AMX Xeons turns on ggml's AMX backend, and that
# crashes (SIGSEGV in ggml_backend_amx_mul_mat).  So: GGML_NATIVE off, AMX off,
# SSE4.2/AVX/AVX2/FMA/F16C always (ryot's AVX2 kernels need the same), BMI2
# and AVX-512 (F/CD/VL/DQ/BW, which GGML_AVX512 compiles for) with VNNI and
# BF16 only when this CPU has them, so that both engines use the same ISA.
# CPUINFO=FILE reads the flags from another file (to check the selection).
set -euo pipefail
cpuinfo=${CPUINFO:-/proc/cpuinfo}
flags=" $(grep -m1 '^flags' "$cpuinfo" | cut -d: -f2) "
has() {
    local f
    for f in "$@"; do
        case "$flags" in *" $f "*) ;; *) return 1 ;; esac
    done
}
onoff() { if has "$@"; then echo ON; else echo OFF; fi; }
for f in avx2 fma f16c; do
    has "$f" || echo "warning: $cpuinfo lacks $f; the build will not run on this CPU" >&2
done
avx512=$(onoff avx512f avx512cd avx512vl avx512dq avx512bw)
vnni=OFF
bf16=OFF
if [ "$avx512" = ON ]; then
    vnni=$(onoff avx512_vnni)
    bf16=$(onoff avx512_bf16)
fi
echo "-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    "-DGGML_BMI2=$(onoff bmi2) -DGGML_AVX512=$avx512 -DGGML_AVX512_VNNI=$vnni -DGGML_AVX512_BF16=$bf16" \
    "-DGGML_AVX512_VBMI=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
