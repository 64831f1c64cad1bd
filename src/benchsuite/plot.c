#include "benchsuite/plot.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "benchsuite/results.h"
#include "benchsuite/stats.h"

extern char **environ;

typedef struct series {
    char title[160];
} series;

static void label_of(const char *path, char *out, size_t cap) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *b = basename(tmp);
    char *dot = strrchr(b, '.');
    if (dot && !strcmp(dot, ".json")) *dot = '\0';
    /* gnuplot strings are single-quoted: drop quotes rather than escape */
    size_t k = 0;
    for (char *c = b; *c && k + 1 < cap; c++)
        if (*c != '\'') out[k++] = *c;
    out[k] = '\0';
}

static double run_x(const json_t *run, const char **axis) {
    json_t *c = json_object_get(run, "concurrency"), *r = json_object_get(run, "rate");
    if (json_is_number(r) && json_number_value(r) > 0) {
        *axis = "request rate (req/s)";
        return json_number_value(r);
    }
    *axis = "concurrency (requests in flight)";
    return json_is_number(c) ? json_number_value(c) : NAN;
}

static void run_title(const char *label, const json_t *run, char *out, size_t cap) {
    const char *axis;
    double x = run_x(run, &axis);
    snprintf(out, cap, "%s %s=%g", label, axis[0] == 'r' ? "rate" : "c", x);
}

static ryot_status write_cdf(FILE *f, const json_t *run, const char *field, ryot_error *err) {
    double *v;
    size_t n;
    ryot_status st = results_samples(run, field, &v, &n, err);
    if (st != RYOT_OK) return st;
    stats_sort(v, n);
    /* at most ~2000 points per curve: every k-th order statistic */
    size_t step = n > 2000 ? n / 2000 : 1;
    for (size_t i = 0; i < n; i += step) fprintf(f, "%.6g %.6g\n", v[i], (double)(i + 1) / (double)n);
    if (n && (n - 1) % step) fprintf(f, "%.6g 1\n", v[n - 1]);
    if (n == 0) fprintf(f, "NaN NaN\n");
    fprintf(f, "\n\n");
    free(v);
    return RYOT_OK;
}

static void write_timeline(FILE *f, const json_t *run) {
    json_t *reqs = json_object_get(run, "requests"), *r;
    size_t i;
    int row = 0;
    json_array_foreach(reqs, i, r) {
        if (!json_is_true(json_object_get(r, "ok"))) continue;
        double t = json_number_value(json_object_get(r, "start_s")) + json_number_value(json_object_get(r, "ttft_ms")) / 1e3;
        fprintf(f, "%.6f %d\n", t, row);
        json_t *itl = json_object_get(r, "itl_ms"), *g;
        size_t j;
        json_array_foreach(itl, j, g) {
            t += json_number_value(g) / 1e3;
            fprintf(f, "%.6f %d\n", t, row);
        }
        row++;
    }
    if (row == 0) fprintf(f, "NaN NaN\n");
}

/* A soak's samples as "minutes RSS-MiB fds" lines; false when the result
 * has no soak.  *fit gets the RSS line's intercept and slope (MiB, MiB/min)
 * and *skip_min where the fit starts, NAN when absent. */
static bool write_soak(FILE *f, const json_t *doc, double fit[2], double *skip_min) {
    json_t *soak = json_object_get(doc, "soak"), *samples = json_object_get(soak, "samples"), *smp;
    fit[0] = fit[1] = *skip_min = NAN;
    if (!json_is_array(samples) || json_array_size(samples) == 0) return false;
    size_t i;
    json_array_foreach(samples, i, smp) {
        fprintf(f, "%.4f %.3f %lld\n", json_number_value(json_object_get(smp, "t_s")) / 60.0,
                json_number_value(json_object_get(smp, "rss_kib")) / 1024.0,
                (long long)json_integer_value(json_object_get(smp, "fds")));
    }
    json_t *rss = json_object_get(soak, "rss_kib");
    if (json_is_number(json_object_get(rss, "intercept")) && json_is_number(json_object_get(rss, "slope_per_min"))) {
        fit[0] = json_number_value(json_object_get(rss, "intercept")) / 1024.0;
        fit[1] = json_number_value(json_object_get(rss, "slope_per_min")) / 1024.0;
    }
    *skip_min = json_number_value(json_object_get(soak, "skip_s")) / 60.0;
    return true;
}

static FILE *open_in(const char *dir, const char *name, ryot_error *err) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) ryot_fail(err, RYOT_ERR_IO, "%s: %s", p, strerror(errno));
    return f;
}

static const char *const TERMS[][2] = {
    {"pngcairo size 1000,650 noenhanced", "png"},
    {"svg size 1000,650 dynamic noenhanced", "svg"},
};

ryot_status plot_results(const char *const *paths, size_t n, const char *outdir, const char *gnuplot,
                         int run_gnuplot, ryot_error *err) {
    if (n == 0) return ryot_fail(err, RYOT_ERR_INVALID, "no result files to plot");
    if (strchr(outdir, '\'')) return ryot_fail(err, RYOT_ERR_INVALID, "output directory name has a quote");
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST)
        return ryot_fail(err, RYOT_ERR_IO, "mkdir %s: %s", outdir, strerror(errno));
    json_t **docs = calloc(n, sizeof *docs);
    char (*labels)[128] = calloc(n, sizeof *labels);
    FILE *cdf[3] = {0}, *sweep = NULL, *tl = NULL, *gp = NULL, *sk = NULL;
    static const char *const CDF_FIELDS[3] = {"ttft_ms", "itl_ms", "e2e_ms"};
    static const char *const CDF_NAMES[3] = {"ttft", "itl", "e2e"};
    static const char *const CDF_TITLES[3] = {"time to first token", "inter-token latency", "end-to-end latency"};
    ryot_status st = RYOT_OK;
    if (!docs || !labels) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((st = results_load(paths[i], &docs[i], err)) != RYOT_OK) goto out;
        label_of(paths[i], labels[i], sizeof labels[i]);
    }
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "cdf_%s.dat", CDF_NAMES[k]);
        if (!(cdf[k] = open_in(outdir, name, err))) {
            st = err ? err->code : RYOT_ERR_IO;
            goto out;
        }
    }
    if (!(sweep = open_in(outdir, "sweep.dat", err)) || !(tl = open_in(outdir, "timeline.dat", err)) ||
        !(gp = open_in(outdir, "plots.gp", err)) || !(sk = open_in(outdir, "soak.dat", err))) {
        st = RYOT_ERR_IO;
        goto out;
    }
    const char *axis = "concurrency (requests in flight)";
    size_t n_curves = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *runs = json_object_get(docs[i], "runs"), *run;
        size_t r;
        fprintf(sweep, "# %s: x output_throughput ttft_p50 ttft_p99 request_throughput\n", labels[i]);
        json_array_foreach(runs, r, run) {
            for (int k = 0; k < 3; k++)
                if ((st = write_cdf(cdf[k], run, CDF_FIELDS[k], err)) != RYOT_OK) goto out;
            n_curves++;
            json_t *m = json_object_get(run, "metrics");
            json_t *ttft = json_object_get(m, "ttft_ms");
            double x = run_x(run, &axis);
            fprintf(sweep, "%g %.6g %.6g %.6g %.6g\n", x, json_number_value(json_object_get(m, "output_throughput")),
                    json_number_value(json_object_get(ttft, "median")), json_number_value(json_object_get(ttft, "p99")),
                    json_number_value(json_object_get(m, "request_throughput")));
        }
        fprintf(sweep, "\n\n");
    }
    json_t *runs0 = json_object_get(docs[0], "runs");
    json_t *last = json_array_get(runs0, json_array_size(runs0) - 1);
    if (last) write_timeline(tl, last);
    char tl_title[200] = "";
    if (last) run_title(labels[0], last, tl_title, sizeof tl_title);
    double fit[2], skip_min;
    const bool has_soak = write_soak(sk, docs[0], fit, &skip_min);

    fprintf(gp, "# generated by ryot bench plot\ncd '%s'\nset grid\nset key bottom right\n", outdir);
    for (size_t t = 0; t < sizeof TERMS / sizeof TERMS[0]; t++) {
        fprintf(gp, "set terminal %s\n", TERMS[t][0]);
        for (int k = 0; k < 3; k++) {
            fprintf(gp, "set output 'cdf_%s.%s'\nset title 'CDF of %s'\nset xlabel '%s (ms)'\nset ylabel 'fraction of %s'\n"
                        "set key bottom right\nset logscale x\nplot ",
                    CDF_NAMES[k], TERMS[t][1], CDF_TITLES[k], CDF_TITLES[k], k == 1 ? "token gaps" : "requests");
            size_t idx = 0;
            for (size_t i = 0; i < n; i++) {
                json_t *runs = json_object_get(docs[i], "runs"), *run;
                size_t r;
                json_array_foreach(runs, r, run) {
                    char title[200];
                    run_title(labels[i], run, title, sizeof title);
                    fprintf(gp, "%s'cdf_%s.dat' index %zu with steps title '%s'", idx ? ", \\\n     " : "", CDF_NAMES[k],
                            idx, title);
                    idx++;
                }
            }
            fprintf(gp, "\nunset logscale x\n");
        }
        fprintf(gp, "set output 'sweep_throughput.%s'\nset title 'output throughput'\nset xlabel '%s'\n"
                    "set ylabel 'output tokens/s'\nset key top left\nplot ", TERMS[t][1], axis);
        for (size_t i = 0; i < n; i++)
            fprintf(gp, "%s'sweep.dat' index %zu using 1:2 with linespoints title '%s'", i ? ", \\\n     " : "", i,
                    labels[i]);
        fprintf(gp, "\nset output 'sweep_ttft.%s'\nset title 'time to first token'\nset ylabel 'TTFT (ms)'\nplot ",
                TERMS[t][1]);
        for (size_t i = 0; i < n; i++)
            fprintf(gp, "%s'sweep.dat' index %zu using 1:3 with linespoints title '%s p50', "
                        "'sweep.dat' index %zu using 1:4 with linespoints dashtype 2 title '%s p99'",
                    i ? ", \\\n     " : "", i, labels[i], i, labels[i]);
        fprintf(gp, "\nset output 'timeline.%s'\nset title 'token arrivals: %s'\nset xlabel 'time since start (s)'\n"
                    "set ylabel 'request (completion order)'\nset key off\n"
                    "plot 'timeline.dat' using 1:2 with points pointtype 7 pointsize 0.3\nset key bottom right\n",
                TERMS[t][1], tl_title);
        if (has_soak) {
            fprintf(gp, "set output 'soak_rss.%s'\nset title 'soak: %s'\nset xlabel 'minutes since start'\n"
                        "set ylabel 'RSS (MiB)'\nset y2label 'open file descriptors'\nset ytics nomirror\n"
                        "set y2tics\nset key bottom right\nplot 'soak.dat' using 1:2 with lines title 'RSS'",
                    TERMS[t][1], labels[0]);
            if (!isnan(fit[0]))
                fprintf(gp, ", \\\n     'soak.dat' using 1:($1 >= %.6g ? %.9g + %.9g * $1 : 1/0) with lines dashtype 2 "
                            "title 'least-squares fit (%.1f KiB/min)'",
                        skip_min, fit[0], fit[1], fit[1] * 1024.0);
            fprintf(gp, ", \\\n     'soak.dat' using 1:3 axes x1y2 with steps title 'fds'\n"
                        "unset y2tics\nunset y2label\nset ytics mirror\n");
        }
    }
    fprintf(gp, "set output\n");
    (void)n_curves;
    /* everything on disk before gnuplot reads it */
    bool write_err = false;
    for (int k = 0; k < 3; k++) {
        write_err |= fclose(cdf[k]) != 0;
        cdf[k] = NULL;
    }
    write_err |= fclose(sweep) != 0;
    write_err |= fclose(tl) != 0;
    write_err |= fclose(gp) != 0;
    write_err |= fclose(sk) != 0;
    sweep = tl = gp = sk = NULL;
    if (write_err) {
        st = ryot_fail(err, RYOT_ERR_IO, "writing the plot files in %s failed", outdir);
        goto out;
    }
    if (run_gnuplot) {
        char script[1024];
        snprintf(script, sizeof script, "%s/plots.gp", outdir);
        const char *bin = gnuplot ? gnuplot : "gnuplot";
        char *argv[] = {(char *)bin, script, NULL};
        pid_t pid;
        int rc = posix_spawnp(&pid, bin, NULL, NULL, argv, environ);
        if (rc != 0) {
            st = ryot_fail(err, RYOT_ERR_IO, "cannot run %s: %s", bin, strerror(rc));
            goto out;
        }
        int ws;
        if (waitpid(pid, &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
            st = ryot_fail(err, RYOT_ERR_INTERNAL, "%s %s failed", bin, script);
            goto out;
        }
    }
out:
    for (int k = 0; k < 3; k++)
        if (cdf[k]) fclose(cdf[k]);
    if (sweep) fclose(sweep);
    if (tl) fclose(tl);
    if (gp) fclose(gp);
    if (sk) fclose(sk);
    for (size_t i = 0; docs && i < n; i++) json_decref(docs[i]);
    free(docs);
    free(labels);
    return st;
}
