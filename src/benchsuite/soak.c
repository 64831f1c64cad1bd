#include "benchsuite/soak.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ryot_status soak_read_dir(const char *dir, soak_sample *s, ryot_error *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/status", dir);
    FILE *f = fopen(path, "r");
    if (!f) return ryot_fail(err, RYOT_ERR_IO, "%s: %s", path, strerror(errno));
    char line[256];
    long long rss = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            rss = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    if (rss < 0) return ryot_fail(err, RYOT_ERR_FORMAT, "%s: no VmRSS line", path);
    snprintf(path, sizeof path, "%s/fd", dir);
    DIR *d = opendir(path);
    if (!d) return ryot_fail(err, RYOT_ERR_IO, "%s: %s", path, strerror(errno));
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    s->rss_kib = rss;
    s->fds = n;
    return RYOT_OK;
}

ryot_status soak_read(int pid, soak_sample *s, ryot_error *err) {
    if (pid <= 0) return ryot_fail(err, RYOT_ERR_INVALID, "bad pid %d", pid);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d", pid);
    return soak_read_dir(dir, s, err);
}

void soak_analyze(const soak_sample *s, size_t n, soak_verdict *v) {
    memset(v, 0, sizeof *v);
    v->n = n;
    v->verdict = "insufficient-data";
    v->rss.valid = v->fds.valid = false;
    v->rss.slope = v->fds.slope = NAN;
    v->mean_rss_kib = NAN;
    if (n == 0) return;
    double *t = malloc(n * sizeof *t), *r = malloc(n * sizeof *r), *fd = malloc(n * sizeof *fd);
    if (t && r && fd) {
        for (size_t i = 0; i < n; i++) {
            t[i] = s[i].t_s / 60.0;
            r[i] = (double)s[i].rss_kib;
            fd[i] = (double)s[i].fds;
        }
        v->mean_rss_kib = stats_mean(r, n);
        v->rss = stats_linreg(t, r, n, 0.95);
        v->fds = stats_linreg(t, fd, n, 0.95);
    }
    free(t);
    free(r);
    free(fd);
    if (n < SOAK_MIN_SAMPLES || !v->rss.valid) return;
    double rss_per_hour = v->rss.slope * 60;
    v->rss_leak = v->rss.slope_lo > 0 && rss_per_hour > SOAK_RSS_MIN_KIB_PER_HOUR &&
                  rss_per_hour > SOAK_RSS_MIN_FRAC_PER_HOUR * v->mean_rss_kib;
    v->fd_leak = v->fds.valid && v->fds.slope_lo > 0 && v->fds.slope * 60 > SOAK_FD_MIN_PER_HOUR;
    v->verdict = v->rss_leak || v->fd_leak ? "leak" : "no-leak";
}
