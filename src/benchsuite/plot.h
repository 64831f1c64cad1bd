/* `ryot bench plot`: figures from result files with gnuplot.  Writes data
 * files and one gnuplot script (plots.gp) into outdir, then runs
 * `gnuplot plots.gp` there.  Figures, each as PNG and SVG:
 *   cdf_ttft, cdf_itl, cdf_e2e   empirical CDFs, one curve per run of every file
 *   sweep_throughput             output tok/s vs concurrency (or rate), one line per file
 *   sweep_ttft                   TTFT p50 and p99 vs concurrency (or rate)
 *   timeline                     token arrival times of the last run of the
 *                                first file: one row per request, one dot per token */
#ifndef RYOT_BENCHSUITE_PLOT_H
#define RYOT_BENCHSUITE_PLOT_H

#include <stddef.h>

#include "core/error.h"

/* gnuplot: the binary to run (NULL: "gnuplot" from PATH); run_gnuplot = 0
 * only writes the data and the script. */
ryot_status plot_results(const char *const *paths, size_t n, const char *outdir, const char *gnuplot,
                         int run_gnuplot, ryot_error *err);

#endif
