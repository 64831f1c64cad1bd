/* `ryot bench compare`: the change from result A to result B per metric,
 * with a 95% confidence interval, and a regression verdict.
 *
 *   means (ttft_mean, tpot_mean, itl_mean, e2e_mean): Welch's t interval over
 *       the per-request samples;
 *   percentiles (*_p50, *_p99): percentile bootstrap (independent resamples
 *       of A and B, fixed seed, COMPARE_BOOT_REPS resamples);
 *   throughputs and error_rate: point values (one number per run, no
 *       interval).
 * Changes are percentages of A's value (the interval too: A is treated as
 * fixed in the denominator).
 *
 * Thresholds: `metric=PCT`.  PCT < 0 flags a decrease beyond PCT (throughput),
 * PCT > 0 an increase beyond PCT (latencies); error_rate's threshold is
 * absolute: B's failed requests in percent.  A metric regresses when its
 * change crosses the threshold AND, where an interval exists, the interval
 * lies entirely on the bad side of 0 (so noise alone does not fail a
 * comparison).  Defaults: output_throughput=-5, ttft_p99=10, error_rate=1;
 * aliases: throughput = output_throughput, errors = error_rate. */
#ifndef RYOT_BENCHSUITE_COMPARE_H
#define RYOT_BENCHSUITE_COMPARE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define COMPARE_BOOT_REPS 2000
#define COMPARE_MAX_THRESHOLDS 32

typedef struct compare_threshold {
    char metric[32];
    double pct;
} compare_threshold;

typedef struct compare_row {
    char metric[32];
    const char *method; /* "welch", "bootstrap", "point" */
    double a, b;
    double change_pct;       /* (b - a) / a * 100; NAN when a == 0 */
    double lo_pct, hi_pct;   /* 95% CI of the change; NAN without one */
    bool significant;        /* the CI excludes 0 */
    bool has_threshold;
    double threshold;
    bool regression;
} compare_row;

/* Fills th with the defaults overridden by spec ("a=1,b=-2"; NULL: only the
 * defaults). */
ryot_status compare_parse_thresholds(const char *spec, compare_threshold *th, size_t *n, ryot_error *err);

/* Compares two run objects ("runs"[i] of result files).  *rows is malloc'd. */
ryot_status compare_runs(const json_t *a, const json_t *b, const compare_threshold *th, size_t n_th,
                         uint64_t seed, compare_row **rows, size_t *n_rows, ryot_error *err);

#endif
