#include "sched/stats.h"

#include <string.h>

static const double lat_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                                    2.5,   5.0,   7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0};
static const double itl_bounds[] = {0.001, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                                    0.1,   0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1.0,  2.5};

static void hist_init(sched_hist *h, const double *b, int n) {
    memset(h, 0, sizeof *h);
    h->bounds = b;
    h->n_bounds = n;
}

void sched_stats_init(sched_stats *s) {
    memset(s, 0, sizeof *s);
    const int nl = (int)(sizeof lat_bounds / sizeof lat_bounds[0]);
    hist_init(&s->ttft, lat_bounds, nl);
    hist_init(&s->e2e, lat_bounds, nl);
    hist_init(&s->queue, lat_bounds, nl);
    hist_init(&s->itl, itl_bounds, (int)(sizeof itl_bounds / sizeof itl_bounds[0]));
}

void sched_hist_init_latency(sched_hist *h) {
    hist_init(h, lat_bounds, (int)(sizeof lat_bounds / sizeof lat_bounds[0]));
}

void sched_hist_observe(sched_hist *h, double v) {
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

const char *sched_end_name(int end) {
    static const char *names[SCHED_END_N] = {"stop", "length", "cancelled", "timeout", "aborted"};
    return end >= 0 && end < SCHED_END_N ? names[end] : "unknown";
}
