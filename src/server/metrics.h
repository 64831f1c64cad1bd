/* Server metrics, rendered in Prometheus' text format with the ryot_ prefix
 * (names modeled on vLLM's).  The engine thread updates them once per step
 * or per finished sequence; /metrics reads them; one mutex guards all. */
#ifndef RYOT_SERVER_METRICS_H
#define RYOT_SERVER_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "sched/sched.h"

#define SRV_HIST_MAX 24

typedef struct srv_hist {
    int n_bounds;
    const double *bounds;             /* upper bounds, ascending (seconds) */
    uint64_t counts[SRV_HIST_MAX + 1]; /* per bucket (last: +Inf) */
    double sum;
    uint64_t count;
} srv_hist;

enum { SRV_END_STOP, SRV_END_LENGTH, SRV_END_CANCELLED, SRV_END_TIMEOUT, SRV_END_ABORTED, SRV_END_N };

typedef struct srv_metrics {
    pthread_mutex_t lock;
    int running[SCHED_N_TIERS], waiting[SCHED_N_TIERS];
    int kv_total, kv_free, kv_cached, kv_used;
    uint64_t prefix_queries, prefix_hits;  /* prompt tokens looked up / found in the prefix cache */
    uint64_t prompt_tokens, generation_tokens;
    uint64_t ended[SRV_END_N];             /* sequences by how they ended */
    uint64_t preemptions, steps;
    uint64_t target_met[SCHED_N_TIERS], target_missed[SCHED_N_TIERS];
    srv_hist ttft, itl, e2e, queue;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_hist_observe(srv_hist *h, double v); /* caller holds the lock */
const char *srv_end_name(int end);            /* "stop", "length", "cancelled", "timeout", "aborted" */

struct srv_buf;
/* Appends the exposition text (caller must not hold the lock). */
void srv_metrics_render(srv_metrics *m, struct srv_buf *b);

#endif
