#include "benchsuite/stats.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

void stats_sort(double *x, size_t n) {
    if (n > 1) qsort(x, n, sizeof *x, cmp_double);
}

double stats_percentile_sorted(const double *s, size_t n, double p) {
    if (n == 0) return NAN;
    if (p <= 0) return s[0];
    if (p >= 100) return s[n - 1];
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n) return s[n - 1];
    return s[lo] + (h - (double)lo) * (s[lo + 1] - s[lo]);
}

double stats_percentile(const double *x, size_t n, double p) {
    if (n == 0) return NAN;
    double *s = malloc(n * sizeof *s);
    if (!s) return NAN;
    memcpy(s, x, n * sizeof *s);
    stats_sort(s, n);
    double v = stats_percentile_sorted(s, n, p);
    free(s);
    return v;
}

double stats_mean(const double *x, size_t n) {
    if (n == 0) return NAN;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

double stats_sd(const double *x, size_t n) {
    if (n < 2) return 0.0;
    double m = stats_mean(x, n), ss = 0;
    for (size_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    return sqrt(ss / (double)(n - 1));
}

ryot_status stats_summarize(const double *x, size_t n, stats_summary *out, ryot_error *err) {
    stats_summary s = {.n = n, .mean = NAN, .sd = NAN, .min = NAN, .max = NAN,
                       .p50 = NAN, .p90 = NAN, .p95 = NAN, .p99 = NAN};
    if (n == 0) {
        *out = s;
        return RYOT_OK;
    }
    double *c = malloc(n * sizeof *c);
    if (!c) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory summarizing %zu samples", n);
    memcpy(c, x, n * sizeof *c);
    stats_sort(c, n);
    s.mean = stats_mean(c, n);
    s.sd = stats_sd(c, n);
    s.min = c[0];
    s.max = c[n - 1];
    s.p50 = stats_percentile_sorted(c, n, 50);
    s.p90 = stats_percentile_sorted(c, n, 90);
    s.p95 = stats_percentile_sorted(c, n, 95);
    s.p99 = stats_percentile_sorted(c, n, 99);
    free(c);
    *out = s;
    return RYOT_OK;
}

/* Continued fraction for the regularized incomplete beta function (modified
 * Lentz's method); converges quickly for x < (a + 1) / (a + b + 2). */
static double betacf(double a, double b, double x) {
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return h;
}

/* I_x(a, b). */
static double inc_beta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    double bt = exp(lbt);
    if (x < (a + 1) / (a + b + 2)) return bt * betacf(a, b, x) / a;
    return 1 - bt * betacf(b, a, 1 - x) / b;
}

double stats_t_cdf(double t, double df) {
    if (isnan(t) || !(df > 0)) return NAN;
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    double x = df / (df + t * t);
    double tail = 0.5 * inc_beta(df / 2, 0.5, x); /* P(T > |t|) */
    return t >= 0 ? 1 - tail : tail;
}

double stats_t_quantile(double p, double df) {
    if (!(p > 0 && p < 1) || !(df > 0)) return NAN;
    if (p == 0.5) return 0;
    if (p < 0.5) return -stats_t_quantile(1 - p, df);
    /* Bracket then bisect: the CDF is monotone, and 200 halvings of a
     * bracket reach double precision. */
    double lo = 0, hi = 1;
    while (stats_t_cdf(hi, df) < p && hi < 1e12) hi *= 2;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (stats_t_cdf(mid, df) < p)
            lo = mid;
        else
            hi = mid;
        if (hi - lo <= 1e-13 * hi) break;
    }
    return 0.5 * (lo + hi);
}

stats_diff stats_welch(const double *a, size_t na, const double *b, size_t nb, double conf) {
    stats_diff d = {.a = stats_mean(a, na), .b = stats_mean(b, nb), .lo = NAN, .hi = NAN, .df = NAN};
    d.diff = d.b - d.a;
    if (na < 2 || nb < 2) return d;
    double va = stats_sd(a, na), vb = stats_sd(b, nb);
    va = va * va / (double)na;
    vb = vb * vb / (double)nb;
    double se = sqrt(va + vb);
    if (se == 0) {
        d.lo = d.hi = d.diff;
        d.df = (double)(na + nb - 2);
        d.valid = true;
        return d;
    }
    d.df = (va + vb) * (va + vb) / (va * va / (double)(na - 1) + vb * vb / (double)(nb - 1));
    double q = stats_t_quantile(0.5 + conf / 2, d.df);
    d.lo = d.diff - q * se;
    d.hi = d.diff + q * se;
    d.valid = true;
    return d;
}

ryot_status stats_bootstrap_pct_diff(const double *a, size_t na, const double *b, size_t nb, double p,
                                     double conf, int reps, uint64_t seed, stats_diff *out, ryot_error *err) {
    stats_diff d = {.a = stats_percentile(a, na, p), .b = stats_percentile(b, nb, p), .lo = NAN, .hi = NAN,
                    .df = NAN};
    d.diff = d.b - d.a;
    if (na < 2 || nb < 2 || reps < 10) {
        *out = d;
        return RYOT_OK;
    }
    size_t nmax = na > nb ? na : nb;
    double *buf = malloc(nmax * sizeof *buf);
    double *diffs = malloc((size_t)reps * sizeof *diffs);
    if (!buf || !diffs) {
        free(buf);
        free(diffs);
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory for the bootstrap");
    }
    ryot_rng rng;
    ryot_rng_seed(&rng, seed);
    for (int r = 0; r < reps; r++) {
        double pa, pb;
        for (size_t i = 0; i < na; i++) buf[i] = a[ryot_rng_next(&rng) % na];
        stats_sort(buf, na);
        pa = stats_percentile_sorted(buf, na, p);
        for (size_t i = 0; i < nb; i++) buf[i] = b[ryot_rng_next(&rng) % nb];
        stats_sort(buf, nb);
        pb = stats_percentile_sorted(buf, nb, p);
        diffs[r] = pb - pa;
    }
    stats_sort(diffs, (size_t)reps);
    double alpha = (1 - conf) / 2 * 100;
    d.lo = stats_percentile_sorted(diffs, (size_t)reps, alpha);
    d.hi = stats_percentile_sorted(diffs, (size_t)reps, 100 - alpha);
    d.valid = true;
    free(buf);
    free(diffs);
    *out = d;
    return RYOT_OK;
}

stats_linfit stats_linreg(const double *x, const double *y, size_t n, double conf) {
    stats_linfit f = {.slope = NAN, .intercept = NAN, .slope_se = NAN, .slope_lo = NAN, .slope_hi = NAN, .n = n};
    if (n < 2) return f;
    double mx = stats_mean(x, n), my = stats_mean(y, n), sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        sxy += (x[i] - mx) * (y[i] - my);
    }
    if (sxx <= 0) return f;
    f.slope = sxy / sxx;
    f.intercept = my - f.slope * mx;
    if (n < 3) return f;
    double sse = 0;
    for (size_t i = 0; i < n; i++) {
        double r = y[i] - (f.intercept + f.slope * x[i]);
        sse += r * r;
    }
    f.slope_se = sqrt(sse / (double)(n - 2) / sxx);
    double q = stats_t_quantile(0.5 + conf / 2, (double)(n - 2));
    f.slope_lo = f.slope - q * f.slope_se;
    f.slope_hi = f.slope + q * f.slope_se;
    f.valid = true;
    return f;
}

size_t stats_goodput_count(const double *ttft_ms, const double *tpot_ms, const bool *ok, size_t n,
                           double slo_ttft_ms, double slo_tpot_ms) {
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        if (ok && !ok[i]) continue;
        if (slo_ttft_ms > 0 && !(ttft_ms[i] <= slo_ttft_ms)) continue;
        if (slo_tpot_ms > 0 && !isnan(tpot_ms[i]) && !(tpot_ms[i] <= slo_tpot_ms)) continue;
        good++;
    }
    return good;
}
