/* Benchmark statistics: percentiles (linear interpolation rule), mean/sd,
 * Student t, Welch intervals, bootstrap reproducibility, least squares,
 * goodput counting. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "benchsuite/stats.h"
#include "core/rng.h"

#define EPS 1e-9

static void near(double got, double want, double tol) {
    if (!(fabs(got - want) <= tol)) fail_msg("got %.12g, want %.12g (tol %g)", got, want, tol);
}

static void test_percentile_rule(void **state) {
    (void)state;
    const double a[] = {1, 2, 3, 4};
    near(stats_percentile(a, 4, 0), 1, EPS);
    near(stats_percentile(a, 4, 50), 2.5, EPS);   /* h = 1.5 */
    near(stats_percentile(a, 4, 90), 3.7, EPS);   /* h = 2.7 */
    near(stats_percentile(a, 4, 100), 4, EPS);
    const double b[] = {50, 15, 40, 35, 20};      /* unsorted on purpose */
    near(stats_percentile(b, 5, 40), 29, EPS);    /* h = 1.6: 20 + 0.6 * 15 */
    near(stats_percentile(b, 5, 99), 49.6, EPS);  /* h = 3.96: 40 + 0.96 * 10 */
    near(stats_percentile(b, 5, 25), 20, EPS);    /* h = 1 exactly */
    const double one[] = {7};
    near(stats_percentile(one, 1, 99), 7, EPS);
    assert_true(isnan(stats_percentile(NULL, 0, 50)));
    /* p99 of 1..100: h = 98.01 -> 99.01 */
    double c[100];
    for (int i = 0; i < 100; i++) c[99 - i] = i + 1;
    near(stats_percentile(c, 100, 99), 99.01, EPS);
    near(stats_percentile(c, 100, 50), 50.5, EPS);
}

static void test_mean_sd_summary(void **state) {
    (void)state;
    const double x[] = {2, 4, 4, 4, 5, 5, 7, 9};
    near(stats_mean(x, 8), 5, EPS);
    near(stats_sd(x, 8), sqrt(32.0 / 7.0), EPS);
    near(stats_sd(x, 1), 0, 0);
    stats_summary s;
    ryot_error err = {0};
    assert_int_equal(stats_summarize(x, 8, &s, &err), RYOT_OK);
    assert_int_equal(s.n, 8);
    near(s.mean, 5, EPS);
    near(s.min, 2, 0);
    near(s.max, 9, 0);
    near(s.p50, 4.5, EPS);
    near(s.p90, 7.6, EPS); /* h = 6.3: 7 + 0.3 * 2 */
    near(s.p99, 8.86, EPS);
    assert_int_equal(stats_summarize(NULL, 0, &s, &err), RYOT_OK);
    assert_int_equal(s.n, 0);
    assert_true(isnan(s.mean) && isnan(s.p99));
}

static void test_student_t(void **state) {
    (void)state;
    /* exact forms: df 1 is Cauchy, df 2 has a closed-form CDF */
    for (double t = -20; t <= 20; t += 0.37) {
        near(stats_t_cdf(t, 1), 0.5 + atan(t) / M_PI, 1e-10);
        near(stats_t_cdf(t, 2), 0.5 + t / (2 * sqrt(2 + t * t)), 1e-10);
    }
    /* published two-sided 95% critical values */
    near(stats_t_quantile(0.975, 1), 12.7062047362, 1e-7);
    near(stats_t_quantile(0.975, 5), 2.5705818366, 1e-7);
    near(stats_t_quantile(0.975, 10), 2.2281388520, 1e-7);
    near(stats_t_quantile(0.975, 30), 2.0422724563, 1e-7);
    near(stats_t_quantile(0.995, 3), 5.8409093097, 1e-6);
    near(stats_t_quantile(0.025, 10), -2.2281388520, 1e-7);
    near(stats_t_quantile(0.975, 1e7), 1.959963985, 1e-6); /* -> normal */
    near(stats_t_quantile(0.5, 4), 0, 0);
    assert_true(isnan(stats_t_quantile(1.0, 4)));
}

static void test_welch_fixed(void **state) {
    (void)state;
    const double a[] = {1, 2, 3, 4, 5}, b[] = {2, 4, 6, 8, 10};
    stats_diff d = stats_welch(a, 5, b, 5, 0.95);
    assert_true(d.valid);
    near(d.a, 3, EPS);
    near(d.b, 6, EPS);
    near(d.diff, 3, EPS);
    /* var a = 2.5, var b = 10: se^2 = 0.5 + 2; df = 2.5^2 / (0.5^2/4 + 2^2/4) */
    near(d.df, 6.25 / 1.0625, 1e-9);
    double q = stats_t_quantile(0.975, d.df);
    assert_true(q < 2.5705818366 && q > 2.4469118511); /* between df 5 and df 6 */
    near(d.hi - d.diff, q * sqrt(2.5), 1e-9);
    near(d.diff - d.lo, q * sqrt(2.5), 1e-9);
    /* identical constant samples: a zero-width interval at the difference */
    const double c1[] = {4, 4, 4}, c2[] = {5, 5, 5, 5};
    d = stats_welch(c1, 3, c2, 4, 0.95);
    near(d.lo, 1, 0);
    near(d.hi, 1, 0);
    /* too few samples: no interval */
    d = stats_welch(a, 1, b, 5, 0.95);
    assert_false(d.valid);
    near(d.diff, 5, EPS);
}

static void normal_sample(ryot_rng *r, double *x, size_t n, double mu, double sd) {
    for (size_t i = 0; i < n; i += 2) {
        float z[2];
        ryot_rng_normal2(r, z);
        x[i] = mu + sd * z[0];
        if (i + 1 < n) x[i + 1] = mu + sd * z[1];
    }
}

static void test_welch_covers_known_difference(void **state) {
    (void)state;
    enum { NA = 60, NB = 45, TRIALS = 400 };
    double a[NA], b[NB];
    ryot_rng r;
    ryot_rng_seed(&r, 20240601);
    normal_sample(&r, a, NA, 10, 2);
    normal_sample(&r, b, NB, 12, 3);
    stats_diff d = stats_welch(a, NA, b, NB, 0.95);
    assert_true(d.lo <= 2 && 2 <= d.hi);
    assert_true(d.lo > 0); /* and it detects the change */
    /* coverage over many seeded trials is close to 95% (binomial sd 1.1%) */
    int covered = 0;
    for (int t = 0; t < TRIALS; t++) {
        normal_sample(&r, a, NA, 10, 2);
        normal_sample(&r, b, NB, 12, 3);
        d = stats_welch(a, NA, b, NB, 0.95);
        covered += d.lo <= 2 && 2 <= d.hi;
    }
    double cov = (double)covered / TRIALS;
    if (cov < 0.91 || cov > 0.99) fail_msg("coverage %.3f", cov);
}

static void test_bootstrap(void **state) {
    (void)state;
    enum { N = 300 };
    double a[N], b[N];
    ryot_rng r;
    ryot_rng_seed(&r, 7);
    normal_sample(&r, a, N, 100, 10);
    for (int i = 0; i < N; i++) b[i] = a[i] + 25; /* p99 shifts by exactly 25 */
    ryot_error err = {0};
    stats_diff d1, d2, d3;
    assert_int_equal(stats_bootstrap_pct_diff(a, N, b, N, 99, 0.95, 1000, 42, &d1, &err), RYOT_OK);
    assert_int_equal(stats_bootstrap_pct_diff(a, N, b, N, 99, 0.95, 1000, 42, &d2, &err), RYOT_OK);
    assert_int_equal(stats_bootstrap_pct_diff(a, N, b, N, 99, 0.95, 1000, 43, &d3, &err), RYOT_OK);
    assert_true(d1.valid);
    near(d1.diff, 25, 1e-9);
    /* the same seed reproduces the interval bit for bit */
    assert_true(d1.lo == d2.lo && d1.hi == d2.hi);
    assert_true(d1.lo != d3.lo || d1.hi != d3.hi);
    assert_true(d1.lo < 25 && 25 < d1.hi);
    assert_true(d1.lo > 0); /* a 25-unit shift of sd-10 data is detected */
    /* median of identical samples: the interval straddles 0 */
    assert_int_equal(stats_bootstrap_pct_diff(a, N, a, N, 50, 0.95, 1000, 42, &d1, &err), RYOT_OK);
    assert_true(d1.lo < 0 && d1.hi > 0);
    near(d1.diff, 0, 0);
}

static void test_linreg(void **state) {
    (void)state;
    const double x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 5, 4, 5};
    stats_linfit f = stats_linreg(x, y, 5, 0.95);
    assert_true(f.valid);
    near(f.slope, 0.6, EPS);
    near(f.intercept, 2.2, EPS);
    /* SSE 2.4, s^2 = 0.8, Sxx = 10: se = sqrt(0.08); t(0.975, 3) = 3.1824463053 */
    near(f.slope_se, sqrt(0.08), EPS);
    near(f.slope_lo, 0.6 - 3.1824463053 * sqrt(0.08), 1e-7);
    near(f.slope_hi, 0.6 + 3.1824463053 * sqrt(0.08), 1e-7);
    /* an exact line: zero standard error */
    const double y2[] = {5, 7, 9, 11, 13};
    f = stats_linreg(x, y2, 5, 0.95);
    near(f.slope, 2, EPS);
    near(f.intercept, 3, EPS);
    near(f.slope_se, 0, 1e-12);
    /* degenerate inputs */
    const double same[] = {1, 1, 1};
    assert_false(stats_linreg(same, y, 3, 0.95).valid);
    assert_false(stats_linreg(x, y, 2, 0.95).valid);
}

static void test_goodput(void **state) {
    (void)state;
    const double ttft[] = {100, 250, 90, 400, 50, 80};
    const double tpot[] = {20, 10, 60, 10, NAN, 30};
    const bool ok[] = {true, true, true, true, true, false};
    /* ttft <= 200 and tpot <= 50: #0, #4 (NAN tpot passes); #5 failed */
    assert_int_equal(stats_goodput_count(ttft, tpot, ok, 6, 200, 50), 2);
    /* no TPOT SLO: #0, #2, #4 */
    assert_int_equal(stats_goodput_count(ttft, tpot, ok, 6, 200, 0), 3);
    /* no SLOs: every successful request */
    assert_int_equal(stats_goodput_count(ttft, tpot, ok, 6, 0, 0), 5);
    assert_int_equal(stats_goodput_count(ttft, tpot, NULL, 6, 0, 0), 6);
    /* boundary values meet the SLO (<=) */
    assert_int_equal(stats_goodput_count(ttft, tpot, ok, 6, 250, 10), 2); /* #1 and #4 */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile_rule),
        cmocka_unit_test(test_mean_sd_summary),
        cmocka_unit_test(test_student_t),
        cmocka_unit_test(test_welch_fixed),
        cmocka_unit_test(test_welch_covers_known_difference),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_linreg),
        cmocka_unit_test(test_goodput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
