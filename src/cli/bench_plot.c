/* `ryot bench plot`: gnuplot figures (PNG + SVG) from result files.
 * Exit status: 0 ok, 1 failure, 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchsuite/plot.h"
#include "cli/cli.h"

int cmd_bench_plot(int argc, char **argv) {
    const char *outdir = "bench-plots", *gnuplot = NULL;
    const char **files = calloc((size_t)argc, sizeof *files);
    size_t n = 0;
    int run = 1;
    if (!files) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ryot bench plot RESULT.json... [-o DIR] [--gnuplot BIN] [--script-only]\n"
                   "\nCDFs of TTFT, ITL and E2E, throughput and TTFT across a sweep, and the token\n"
                   "timeline of the last run of the first file, as PNG and SVG in DIR\n"
                   "(default bench-plots), with the data files and plots.gp that made them.\n");
            free(files);
            return 0;
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            outdir = argv[++i];
        } else if (!strcmp(a, "--gnuplot") && i + 1 < argc) {
            gnuplot = argv[++i];
        } else if (!strcmp(a, "--script-only")) {
            run = 0;
        } else if (a[0] != '-') {
            files[n++] = a;
        } else {
            fprintf(stderr, "ryot bench plot: unknown option '%s'\n", a);
            free(files);
            return 2;
        }
    }
    if (n == 0) {
        fprintf(stderr, "ryot bench plot: no result files\n");
        free(files);
        return 2;
    }
    ryot_error err = {0};
    int rc = 0;
    if (plot_results(files, n, outdir, gnuplot, run, &err) != RYOT_OK) {
        fprintf(stderr, "ryot bench plot: %s\n", err.msg);
        rc = 1;
    } else {
        printf("wrote %s/{cdf_ttft,cdf_itl,cdf_e2e,sweep_throughput,sweep_ttft,timeline}.{png,svg}\n", outdir);
    }
    free(files);
    return rc;
}
