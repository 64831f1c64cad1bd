/* Benchmark statistics: percentiles (linear interpolation rule), mean/sd,
 * Student t, Welch intervals, bootstrap reproducibility, least squares,
 * goodput counting; and what builds on them: the soak leak rule, /proc
 * sampling, Prometheus text sums, compare verdicts. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "benchsuite/compare.h"
#include "benchsuite/results.h"
#include "benchsuite/soak.h"
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

/* Samples every 5 s for an hour around a base RSS, with a trend and noise. */
static size_t soak_series(soak_sample *s, double kib_per_hour, double noise_kib, double fds_per_hour, uint64_t seed) {
    ryot_rng r;
    ryot_rng_seed(&r, seed);
    size_t n = 0;
    for (double t = 0; t <= 3600; t += 5, n++) {
        float z[2];
        ryot_rng_normal2(&r, z);
        s[n].t_s = t;
        s[n].rss_kib = (int64_t)llround(200000 + kib_per_hour * t / 3600 + noise_kib * z[0]);
        s[n].fds = 20 + (int64_t)floor(fds_per_hour * t / 3600);
    }
    return n;
}

static void test_soak_rule(void **state) {
    (void)state;
    static soak_sample s[800];
    soak_verdict v;
    /* flat with noise */
    size_t n = soak_series(s, 0, 500, 0, 1);
    soak_analyze(s, n, &v);
    assert_string_equal(v.verdict, "no-leak");
    /* 10 MiB/hour on 200 MB: significant, > 1 MiB/h and > 1% (2000 KiB/h) */
    n = soak_series(s, 10240, 500, 0, 2);
    soak_analyze(s, n, &v);
    assert_true(v.rss_leak);
    assert_string_equal(v.verdict, "leak");
    near(v.rss.slope, 10240.0 / 60, 10); /* KiB per minute */
    assert_true(v.rss.slope_lo > 0);
    /* 1.5 MiB/hour, no noise: significant and over 1 MiB/h but under 1% of RSS */
    n = soak_series(s, 1536, 0, 0, 3);
    soak_analyze(s, n, &v);
    assert_true(v.rss.slope_lo > 0);
    assert_false(v.rss_leak);
    /* descriptors: 30 per hour leak, memory flat */
    n = soak_series(s, 0, 100, 30, 4);
    soak_analyze(s, n, &v);
    assert_false(v.rss_leak);
    assert_true(v.fd_leak);
    assert_string_equal(v.verdict, "leak");
    /* too few samples */
    soak_analyze(s, 5, &v);
    assert_string_equal(v.verdict, "insufficient-data");
}

static void test_soak_read(void **state) {
    (void)state;
    char dir[] = "/tmp/ryot_soak_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[256];
    snprintf(p, sizeof p, "%s/status", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "Name:\tx\nVmPeak:\t  9999 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/fd", dir);
    mkdir(p, 0700);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/fd/%d", dir, i);
        fclose(fopen(p, "w"));
    }
    soak_sample smp;
    ryot_error err = {0};
    assert_int_equal(soak_read_dir(dir, &smp, &err), RYOT_OK);
    assert_int_equal(smp.rss_kib, 51234);
    assert_int_equal(smp.fds, 3);
    /* this process, through /proc */
    assert_int_equal(soak_read(getpid(), &smp, &err), RYOT_OK);
    assert_true(smp.rss_kib > 0 && smp.fds >= 3);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/fd/%d", dir, i);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/fd", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/status", dir);
    unlink(p);
    rmdir(dir);
}

static void test_prom_sum(void **state) {
    (void)state;
    const char *text = "# HELP ryot_prefix_cache_hits_total hits\n"
                       "# TYPE ryot_prefix_cache_hits_total counter\n"
                       "ryot_prefix_cache_hits_total{tier=\"a}b\"} 30\n"
                       "ryot_prefix_cache_hits_total{tier=\"c\"} 12\n"
                       "ryot_prefix_cache_hits_created 1.7e9\n"
                       "ryot_prefix_cache_queries_total 100\n"
                       "llamacpp:kv_cache_usage_ratio 0.25\n";
    double v = 0;
    assert_true(prom_sum(text, "prefix_cache_hits", &v));
    near(v, 42, 0);
    assert_true(prom_sum(text, "prefix_cache_queries", &v));
    near(v, 100, 0);
    assert_true(prom_sum(text, "kv_cache_usage", &v));
    near(v, 0.25, 0);
    assert_false(prom_sum(text, "nothing_like_this", &v));
}

/* A run object with n requests whose ttft is base + i % 10 (ms). */
static json_t *fake_run(int n, double ttft_base, double out_tp, int failed) {
    json_t *run = json_object(), *m = json_object(), *reqs = json_array();
    json_object_set_new(m, "output_throughput", json_real(out_tp));
    json_object_set_new(m, "request_throughput", json_real(out_tp / 100));
    json_object_set_new(m, "error_rate", json_real(100.0 * failed / n));
    for (int i = 0; i < n; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "ok", json_boolean(i >= failed));
        json_object_set_new(r, "ttft_ms", json_real(ttft_base + i % 10));
        json_object_set_new(r, "tpot_ms", json_real(20 + (i % 3)));
        json_object_set_new(r, "e2e_ms", json_real(ttft_base + 2000 + i % 7));
        json_t *itl = json_array();
        for (int k = 0; k < 2; k++) json_array_append_new(itl, json_real(20 + (i + k) % 4));
        json_object_set_new(r, "itl_ms", itl);
        json_array_append_new(reqs, r);
    }
    json_object_set_new(run, "metrics", m);
    json_object_set_new(run, "requests", reqs);
    return run;
}

static const compare_row *row_of(const compare_row *rows, size_t n, const char *m) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rows[i].metric, m)) return &rows[i];
    fail_msg("no row %s", m);
    return NULL;
}

static void test_compare_verdicts(void **state) {
    (void)state;
    compare_threshold th[COMPARE_MAX_THRESHOLDS];
    size_t n_th;
    ryot_error err = {0};
    assert_int_equal(compare_parse_thresholds(NULL, th, &n_th, &err), RYOT_OK);
    assert_int_equal(n_th, 3);
    json_t *a = fake_run(60, 100, 1000, 0);
    /* B: same latencies, throughput -10%: a regression (point metric) */
    json_t *b = fake_run(60, 100, 900, 0);
    compare_row *rows;
    size_t n;
    assert_int_equal(compare_runs(a, b, th, n_th, 1, &rows, &n, &err), RYOT_OK);
    assert_true(row_of(rows, n, "output_throughput")->regression);
    near(row_of(rows, n, "output_throughput")->change_pct, -10, 1e-9);
    assert_false(row_of(rows, n, "ttft_p99")->regression);
    near(row_of(rows, n, "ttft_mean")->change_pct, 0, 1e-9);
    free(rows);
    json_decref(b);
    /* B: TTFT +50 ms on ~105 ms (+48%): significant p99 regression */
    b = fake_run(60, 150, 1000, 0);
    assert_int_equal(compare_runs(a, b, th, n_th, 1, &rows, &n, &err), RYOT_OK);
    const compare_row *r = row_of(rows, n, "ttft_p99");
    assert_true(r->regression);
    assert_true(r->lo_pct > 10);
    assert_string_equal(r->method, "bootstrap");
    r = row_of(rows, n, "ttft_mean");
    assert_string_equal(r->method, "welch");
    assert_true(r->significant);
    assert_false(row_of(rows, n, "output_throughput")->regression);
    free(rows);
    json_decref(b);
    /* B: 1 of 60 requests failed (1.7%); an override of the throughput threshold */
    b = fake_run(60, 100, 960, 1);
    assert_int_equal(compare_parse_thresholds("throughput=-3,errors=5", th, &n_th, &err), RYOT_OK);
    assert_int_equal(compare_runs(a, b, th, n_th, 1, &rows, &n, &err), RYOT_OK);
    assert_false(row_of(rows, n, "error_rate")->regression); /* 1.7% <= 5% */
    assert_true(row_of(rows, n, "output_throughput")->regression); /* -4% < -3% */
    free(rows);
    assert_int_equal(compare_parse_thresholds("errors=1", th, &n_th, &err), RYOT_OK);
    assert_int_equal(compare_runs(a, b, th, n_th, 1, &rows, &n, &err), RYOT_OK);
    assert_true(row_of(rows, n, "error_rate")->regression); /* 1.7% > 1% */
    free(rows);
    json_decref(b);
    assert_int_equal(compare_parse_thresholds("bogus=3", th, &n_th, &err), RYOT_ERR_INVALID);
    json_decref(a);
}

static void test_serve_metrics(void **state) {
    (void)state;
    double itl_a[] = {10, 30}, itl_b[] = {20, 20, 20};
    lg_result r[4] = {
        {.ok = true, .ttft_ms = 100, .tpot_ms = 20, .e2e_ms = 140, .itl_ms = itl_a, .n_itl = 2, .input_tokens = 10,
         .output_tokens = 3, .http_status = 200, .tier = 0},
        {.ok = true, .ttft_ms = 300, .tpot_ms = 20, .e2e_ms = 360, .itl_ms = itl_b, .n_itl = 3, .input_tokens = 20,
         .output_tokens = 4, .http_status = 200, .tier = 1},
        {.ok = false, .ttft_ms = NAN, .tpot_ms = NAN, .e2e_ms = 5, .http_status = 500, .tier = 1},
        {.ok = false, .ttft_ms = NAN, .tpot_ms = NAN, .e2e_ms = 5, .http_status = 0, .tier = 0},
    };
    serve_metrics m;
    ryot_error err = {0};
    serve_slo slo = {.ttft_ms = 200, .tpot_ms = 0};
    assert_int_equal(serve_metrics_compute(r, 4, 2.0, slo, RESULTS_ALL_TIERS, &m, &err), RYOT_OK);
    assert_int_equal(m.n_ok, 2);
    assert_int_equal(m.n_failed, 2);
    assert_int_equal(m.output_tokens, 7);
    assert_int_equal(m.input_tokens, 30);
    near(m.request_throughput, 1.0, EPS);
    near(m.output_throughput, 3.5, EPS);
    near(m.total_token_throughput, 18.5, EPS);
    near(m.goodput, 0.5, EPS); /* only the first meets TTFT <= 200 */
    near(m.ttft.mean, 200, EPS);
    near(m.ttft.p50, 200, EPS);
    assert_int_equal(m.itl.n, 5); /* pooled over requests */
    near(m.itl.mean, 20, EPS);
    near(m.e2e.p99, 140 + 0.99 * 220, 1e-9);
    near(serve_metrics_get(&m, "error_rate"), 50, EPS);
    near(serve_metrics_get(&m, "ttft_p50"), 200, EPS);
    assert_int_equal(m.n_error_kinds, 2);
    /* one tier */
    assert_int_equal(serve_metrics_compute(r, 4, 2.0, slo, 1, &m, &err), RYOT_OK);
    assert_int_equal(m.n_total, 2);
    assert_int_equal(m.n_ok, 1);
    near(m.ttft.mean, 300, EPS);
    assert_int_equal(m.n_good, 0);
    assert_int_equal(m.errors[0].status, 500);
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
        cmocka_unit_test(test_soak_rule),
        cmocka_unit_test(test_soak_read),
        cmocka_unit_test(test_prom_sum),
        cmocka_unit_test(test_compare_verdicts),
        cmocka_unit_test(test_serve_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
