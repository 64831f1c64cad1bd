/* Micro benchmarks behind `ryot bench kernels` and `ryot bench tokenizer`
 * (the logic of bench/membw.c, bench/kernel_bench.c and
 * bench/tokenizer_speed.c, callable from the CLI).  Times are the best of
 * several repetitions, each at least MICRO_MIN_REP_S long: the best run is
 * the one least disturbed by other load on a shared machine. */
#ifndef RYOT_BENCHSUITE_MICRO_H
#define RYOT_BENCHSUITE_MICRO_H

#include <stddef.h>

#include "core/error.h"
#include "core/types.h"
#include "kernels/kernels.h"

#define MICRO_MIN_REP_S 0.02

/* Read bandwidth (GB/s, 10^9 bytes) summing a `bytes` buffer of 64-bit
 * words with n_threads threads (each its slice), best of `passes`. */
ryot_status micro_membw(size_t bytes, int n_threads, int passes, double *gbps, ryot_error *err);

typedef struct micro_kernel_result {
    ryot_type type;
    kernel_isa isa;
    double dot_gbps;      /* vec_dot over rows x n weights (one activation row), weight bytes/s */
    double dot_l2_gbps;   /* the same over 64 rows (cache resident) */
    double rows_gflops;   /* vec_dot_rows, nrx x n weights times nry activation rows */
    size_t weight_bytes;  /* of the big matrix */
} micro_kernel_result;

/* One type at one ISA: rows x n weights (e.g. 2048 x 2048), nrx = 256,
 * nry = 64 for the tile.  RYOT_ERR_UNSUPPORTED when the ISA or type has no
 * kernel on this CPU. */
ryot_status micro_kernel(ryot_type t, kernel_isa isa, int64_t rows, int64_t n, micro_kernel_result *out,
                         ryot_error *err);

typedef struct micro_tok_result {
    size_t bytes, tokens;
    double cached_mbps;   /* MB/s (10^6 bytes) in thread CPU time, fresh scratch per run */
    double nocache_mbps;  /* without a scratch (every pre-token merged) */
    double wall_mbps;     /* the cached best run in wall-clock time */
} micro_tok_result;

/* Encode text[0..n) with the tokenizer of a GGUF file, best of reps. */
ryot_status micro_tokenizer(const char *gguf_path, const char *text, size_t n, int reps, micro_tok_result *out,
                            ryot_error *err);

#endif
