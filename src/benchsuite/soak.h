/* Soak test: samples a server process's memory and file descriptors while
 * load runs, and decides whether they leak.
 *
 * Leak rule (docs/BENCHMARKING.md): fit a least-squares line to the samples
 * against time.  RSS leaks when the 95% confidence interval of the slope
 * excludes 0 (lower bound > 0) AND the projected growth per hour exceeds
 * both 1 MiB and 1% of the mean RSS: a significant trend that is also big
 * enough to matter (allocator noise, page-cache effects and warm-up tend to
 * give tiny but "significant" slopes).  File descriptors leak when the slope
 * CI excludes 0 and the projected growth exceeds 10 descriptors per hour.
 * Fewer than 10 samples: "insufficient-data". */
#ifndef RYOT_BENCHSUITE_SOAK_H
#define RYOT_BENCHSUITE_SOAK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "benchsuite/stats.h"
#include "core/error.h"

#define SOAK_MIN_SAMPLES 10
#define SOAK_RSS_MIN_KIB_PER_HOUR 1024.0
#define SOAK_RSS_MIN_FRAC_PER_HOUR 0.01
#define SOAK_FD_MIN_PER_HOUR 10.0

typedef struct soak_sample {
    double t_s;      /* seconds since the run started */
    int64_t rss_kib; /* VmRSS of /proc/PID/status */
    int64_t fds;     /* entries of /proc/PID/fd */
} soak_sample;

/* Reads VmRSS and the descriptor count of process pid (t_s is left alone). */
ryot_status soak_read(int pid, soak_sample *s, ryot_error *err);
/* The same from an arbitrary /proc-like directory (tests): DIR/status, DIR/fd. */
ryot_status soak_read_dir(const char *dir, soak_sample *s, ryot_error *err);

typedef struct soak_verdict {
    size_t n;
    stats_linfit rss;       /* KiB per minute */
    stats_linfit fds;       /* descriptors per minute */
    double mean_rss_kib;
    bool rss_leak, fd_leak;
    const char *verdict;    /* "leak", "no-leak", "insufficient-data" */
} soak_verdict;

void soak_analyze(const soak_sample *s, size_t n, soak_verdict *v);

#endif
