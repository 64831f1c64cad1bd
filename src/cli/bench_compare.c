/* `ryot bench compare A.json B.json`: B against A, per metric with 95%
 * intervals.  Exit status: 0 no regression, 1 a regression, 2 bad usage or
 * unreadable result files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchsuite/compare.h"
#include "benchsuite/results.h"
#include "cli/cli.h"

static void compare_usage(FILE *out) {
    fprintf(out,
            "usage: ryot bench compare A.json B.json [--threshold SPEC] [--seed N]\n"
            "\n"
            "The change of each metric from A to B with a 95%% confidence interval (Welch's t\n"
            "for means, bootstrap for percentiles), runs paired by position.  Exit status 1\n"
            "when a metric regresses past its threshold with the interval on the bad side\n"
            "of 0.\n"
            "  --threshold SPEC   METRIC=PERCENT,... (default throughput=-5,ttft_p99=10,errors=1;\n"
            "                     errors is B's absolute error rate in percent)\n"
            "  --seed N           bootstrap seed (default 12345)\n");
}

int cmd_bench_compare(int argc, char **argv) {
    const char *files[2] = {0}, *spec = NULL;
    int n_files = 0;
    uint64_t seed = 12345;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            compare_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--threshold") && i + 1 < argc) {
            spec = argv[++i];
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            double d;
            if (!cli_parse_double(argv[++i], 0, 9e15, &d)) {
                fprintf(stderr, "ryot bench compare: bad seed\n");
                return 2;
            }
            seed = (uint64_t)d;
        } else if (a[0] != '-' && n_files < 2) {
            files[n_files++] = a;
        } else {
            compare_usage(stderr);
            return 2;
        }
    }
    if (n_files != 2) {
        compare_usage(stderr);
        return 2;
    }
    ryot_error err = {0};
    compare_threshold th[COMPARE_MAX_THRESHOLDS];
    size_t n_th;
    if (compare_parse_thresholds(spec, th, &n_th, &err) != RYOT_OK) {
        fprintf(stderr, "ryot bench compare: %s\n", err.msg);
        return 2;
    }
    json_t *a = NULL, *b = NULL;
    if (results_load(files[0], &a, &err) != RYOT_OK || results_load(files[1], &b, &err) != RYOT_OK) {
        fprintf(stderr, "ryot bench compare: %s\n", err.msg);
        json_decref(a);
        return 2;
    }
    json_t *ra = json_object_get(a, "runs"), *rb = json_object_get(b, "runs");
    size_t n = json_array_size(ra) < json_array_size(rb) ? json_array_size(ra) : json_array_size(rb);
    if (json_array_size(ra) != json_array_size(rb))
        fprintf(stderr, "ryot bench compare: A has %zu runs, B %zu: comparing the first %zu\n", json_array_size(ra),
                json_array_size(rb), n);
    int rc = 0, regressions = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(ra, i), *y = json_array_get(rb, i);
        compare_row *rows;
        size_t n_rows;
        if (compare_runs(x, y, th, n_th, seed, &rows, &n_rows, &err) != RYOT_OK) {
            fprintf(stderr, "ryot bench compare: %s\n", err.msg);
            rc = 2;
            break;
        }
        json_t *c = json_object_get(x, "concurrency"), *r = json_object_get(x, "rate");
        if (json_is_number(c))
            printf("== run %zu: concurrency %g\n", i, json_number_value(c));
        else
            printf("== run %zu: rate %g/s\n", i, json_number_value(r));
        printf("| %-22s | %12s | %12s | %9s | %-21s | %-9s | %9s | %-10s |\n", "metric", "A", "B", "change",
               "95% CI of change", "method", "threshold", "verdict");
        printf("|%s|\n", "------------------------|-------------:|-------------:|----------:|-----------------------|"
                         "-----------|----------:|------------");
        for (size_t k = 0; k < n_rows; k++) {
            compare_row *w = &rows[k];
            char ci[40] = "n/a", thr[16] = "", verdict[16] = "", change[16] = "n/a";
            if (!isnan(w->change_pct)) snprintf(change, sizeof change, "%+.1f%%", w->change_pct);
            if (!isnan(w->lo_pct)) snprintf(ci, sizeof ci, "[%+.1f%%, %+.1f%%]", w->lo_pct, w->hi_pct);
            if (w->has_threshold)
                snprintf(thr, sizeof thr, "%s%g%%", strcmp(w->metric, "error_rate") ? "" : "> ", w->threshold);
            snprintf(verdict, sizeof verdict, "%s", w->regression ? "REGRESSION" : w->significant ? "changed" : "");
            printf("| %-22s | %12.3f | %12.3f | %9s | %-21s | %-9s | %9s | %-10s |\n", w->metric, w->a, w->b, change,
                   ci, w->method, thr, verdict);
            regressions += w->regression;
        }
        free(rows);
    }
    if (rc == 0 && regressions) {
        printf("%d regression(s)\n", regressions);
        rc = 1;
    } else if (rc == 0) {
        printf("no regression\n");
    }
    json_decref(a);
    json_decref(b);
    return rc;
}
