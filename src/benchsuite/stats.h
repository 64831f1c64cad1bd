/* Statistics for the serving benchmark: summaries, confidence intervals,
 * least-squares trends.  Pure functions over double arrays; nothing here
 * allocates except the bootstrap (scratch) and nothing prints.
 *
 * Percentile rule (documented in docs/BENCHMARKING.md): linear interpolation
 * between closest ranks over the sorted sample x[0..n-1], with rank
 * h = (n - 1) * p / 100; the value is x[floor(h)] + (h - floor(h)) *
 * (x[floor(h)+1] - x[floor(h)]).  This is NumPy's default ("linear"), which
 * is what vLLM's `bench serve` reports, so figures are comparable. */
#ifndef RYOT_BENCHSUITE_STATS_H
#define RYOT_BENCHSUITE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct stats_summary {
    size_t n;
    double mean, sd; /* sd: sample standard deviation (n - 1); 0 when n < 2 */
    double min, max;
    double p50, p90, p95, p99;
} stats_summary;

/* Percentile p in [0, 100] of an ascending array (rule above); NAN if n == 0. */
double stats_percentile_sorted(const double *sorted, size_t n, double p);
/* Same on an unsorted array (copies and sorts; NAN on n == 0 or no memory). */
double stats_percentile(const double *x, size_t n, double p);
double stats_mean(const double *x, size_t n);
/* Sample standard deviation (divides by n - 1); 0 when n < 2. */
double stats_sd(const double *x, size_t n);
/* Fills every field; all NAN (n = 0) on an empty sample. */
ryot_status stats_summarize(const double *x, size_t n, stats_summary *out, ryot_error *err);
void stats_sort(double *x, size_t n);

/* Student's t distribution: CDF and quantile (inverse CDF) for df > 0. */
double stats_t_cdf(double t, double df);
double stats_t_quantile(double p, double df);

/* A change between two samples, B minus A, with a two-sided CI. */
typedef struct stats_diff {
    double a, b;       /* the statistic on A and on B */
    double diff;       /* b - a */
    double lo, hi;     /* confidence interval of diff */
    double df;         /* Welch-Satterthwaite degrees of freedom (welch only) */
    bool valid;        /* false: too few samples for an interval */
} stats_diff;

/* Welch's unequal-variance t interval for mean(B) - mean(A) at confidence
 * `conf` (e.g. 0.95).  Needs na, nb >= 2; otherwise valid = false and only
 * the point values are set. */
stats_diff stats_welch(const double *a, size_t na, const double *b, size_t nb, double conf);

/* Percentile bootstrap interval for pct(B) - pct(A) (percentile p): `reps`
 * resamples of each (with replacement), from a xoshiro stream seeded with
 * `seed`, so a seed reproduces the interval exactly. */
ryot_status stats_bootstrap_pct_diff(const double *a, size_t na, const double *b, size_t nb, double p,
                                     double conf, int reps, uint64_t seed, stats_diff *out, ryot_error *err);

/* Ordinary least squares y = intercept + slope * x, with the two-sided
 * confidence interval of the slope (t with n - 2 df).  valid = false if
 * n < 3 or all x are equal. */
typedef struct stats_linfit {
    double slope, intercept;
    double slope_se, slope_lo, slope_hi;
    size_t n;
    bool valid;
} stats_linfit;
stats_linfit stats_linreg(const double *x, const double *y, size_t n, double conf);

/* Requests meeting every SLO: ttft_ms[i] <= slo_ttft_ms and tpot_ms[i] <=
 * slo_tpot_ms, where a limit <= 0 means "no SLO on that metric".  NAN tpot
 * (one-token outputs) passes the TPOT SLO.  Only entries with ok[i] count
 * (ok may be NULL: all). */
size_t stats_goodput_count(const double *ttft_ms, const double *tpot_ms, const bool *ok, size_t n,
                           double slo_ttft_ms, double slo_tpot_ms);

#endif
