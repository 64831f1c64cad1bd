#include "benchsuite/compare.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchsuite/results.h"
#include "benchsuite/stats.h"

static const char *canonical(const char *m) {
    if (!strcmp(m, "throughput")) return "output_throughput";
    if (!strcmp(m, "errors")) return "error_rate";
    return m;
}

static const char *const KNOWN[] = {
    "output_throughput", "request_throughput", "total_token_throughput", "goodput", "error_rate",
    "ttft_mean", "ttft_p50", "ttft_p99", "tpot_mean", "tpot_p50", "tpot_p99",
    "itl_mean", "itl_p50", "itl_p99", "e2e_mean", "e2e_p50", "e2e_p99",
};
#define N_KNOWN (sizeof KNOWN / sizeof KNOWN[0])

static void set_threshold(compare_threshold *th, size_t *n, const char *metric, double pct) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(th[i].metric, metric)) {
            th[i].pct = pct;
            return;
        }
    snprintf(th[*n].metric, sizeof th[*n].metric, "%s", metric);
    th[(*n)++].pct = pct;
}

ryot_status compare_parse_thresholds(const char *spec, compare_threshold *th, size_t *n, ryot_error *err) {
    *n = 0;
    set_threshold(th, n, "output_throughput", -5);
    set_threshold(th, n, "ttft_p99", 10);
    set_threshold(th, n, "error_rate", 1);
    if (!spec) return RYOT_OK;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return ryot_fail(err, RYOT_ERR_INVALID, "bad threshold '%s' (METRIC=PERCENT)", tok);
        *eq = '\0';
        const char *m = canonical(tok);
        bool known = false;
        for (size_t i = 0; i < N_KNOWN; i++) known = known || !strcmp(KNOWN[i], m);
        if (!known) return ryot_fail(err, RYOT_ERR_INVALID, "unknown metric '%s' in thresholds", tok);
        char *end;
        errno = 0;
        double v = strtod(eq + 1, &end);
        if (errno || end == eq + 1 || *end || !isfinite(v))
            return ryot_fail(err, RYOT_ERR_INVALID, "bad threshold value '%s'", eq + 1);
        if (*n >= COMPARE_MAX_THRESHOLDS) return ryot_fail(err, RYOT_ERR_INVALID, "too many thresholds");
        set_threshold(th, n, m, v);
    }
    return RYOT_OK;
}

static double metric_of(const json_t *run, const char *name) {
    json_t *m = json_object_get(run, "metrics");
    json_t *v = json_object_get(m, name);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static double pct(double delta, double base) { return base != 0 && isfinite(base) ? delta / base * 100 : NAN; }

ryot_status compare_runs(const json_t *a, const json_t *b, const compare_threshold *th, size_t n_th,
                         uint64_t seed, compare_row **rows_out, size_t *n_rows, ryot_error *err) {
    *rows_out = NULL;
    *n_rows = 0;
    compare_row *rows = calloc(N_KNOWN, sizeof *rows);
    if (!rows) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    static const char *const FIELDS[] = {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"};
    double *sa[4] = {0}, *sb[4] = {0};
    size_t na[4] = {0}, nb[4] = {0};
    ryot_status st = RYOT_OK;
    for (int f = 0; f < 4; f++)
        if ((st = results_samples(a, FIELDS[f], &sa[f], &na[f], err)) != RYOT_OK ||
            (st = results_samples(b, FIELDS[f], &sb[f], &nb[f], err)) != RYOT_OK)
            goto out;
    size_t n = 0;
    for (size_t k = 0; k < N_KNOWN; k++) {
        compare_row *r = &rows[n++];
        const char *m = KNOWN[k];
        snprintf(r->metric, sizeof r->metric, "%s", m);
        r->lo_pct = r->hi_pct = NAN;
        const char *us = strrchr(m, '_');
        int f = -1;
        if (!strncmp(m, "ttft_", 5)) f = 0;
        else if (!strncmp(m, "tpot_", 5)) f = 1;
        else if (!strncmp(m, "itl_", 4)) f = 2;
        else if (!strncmp(m, "e2e_", 4)) f = 3;
        if (f < 0) {
            r->method = "point";
            r->a = metric_of(a, m);
            r->b = metric_of(b, m);
        } else if (!strcmp(us, "_mean")) {
            r->method = "welch";
            stats_diff d = stats_welch(sa[f], na[f], sb[f], nb[f], 0.95);
            r->a = d.a;
            r->b = d.b;
            if (d.valid) {
                r->lo_pct = pct(d.lo, d.a);
                r->hi_pct = pct(d.hi, d.a);
            }
        } else {
            r->method = "bootstrap";
            double p = !strcmp(us, "_p50") ? 50 : 99;
            stats_diff d;
            if ((st = stats_bootstrap_pct_diff(sa[f], na[f], sb[f], nb[f], p, 0.95, COMPARE_BOOT_REPS, seed + k, &d,
                                               err)) != RYOT_OK)
                goto out;
            r->a = d.a;
            r->b = d.b;
            if (d.valid) {
                r->lo_pct = pct(d.lo, d.a);
                r->hi_pct = pct(d.hi, d.a);
            }
        }
        r->change_pct = pct(r->b - r->a, r->a);
        r->significant = !isnan(r->lo_pct) && (r->lo_pct > 0 || r->hi_pct < 0);
        for (size_t t = 0; t < n_th; t++) {
            if (strcmp(th[t].metric, m)) continue;
            r->has_threshold = true;
            r->threshold = th[t].pct;
            bool has_ci = !isnan(r->lo_pct);
            if (!strcmp(m, "error_rate"))
                r->regression = r->b > th[t].pct;
            else if (th[t].pct < 0)
                r->regression = r->change_pct < th[t].pct && (!has_ci || r->hi_pct < 0);
            else
                r->regression = r->change_pct > th[t].pct && (!has_ci || r->lo_pct > 0);
        }
    }
    *rows_out = rows;
    *n_rows = n;
    rows = NULL;
out:
    for (int f = 0; f < 4; f++) {
        free(sa[f]);
        free(sb[f]);
    }
    free(rows);
    return st;
}
