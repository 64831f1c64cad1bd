/* The serving loop's counters, gauges and latency histograms.  The engine
 * thread updates them as it goes (per admitted sequence, per generated
 * token, per finished sequence, gauges once per step) under the runner's
 * lock; sched_runner_stats hands out a consistent copy, which the server
 * renders for /metrics. */
#ifndef RYOT_SCHED_STATS_H
#define RYOT_SCHED_STATS_H

#include <stdint.h>

#include "sched/sched.h"

#define SCHED_HIST_MAX 24

typedef struct sched_hist {
    int n_bounds;
    const double *bounds;               /* upper bounds, ascending (seconds) */
    uint64_t counts[SCHED_HIST_MAX + 1]; /* per bucket (last: +Inf) */
    double sum;
    uint64_t count;
} sched_hist;

/* How a sequence ended. */
enum { SCHED_END_STOP, SCHED_END_LENGTH, SCHED_END_CANCELLED, SCHED_END_TIMEOUT, SCHED_END_ABORTED, SCHED_END_N };

typedef struct sched_stats {
    int running[SCHED_N_TIERS], waiting[SCHED_N_TIERS];
    int kv_total, kv_free, kv_cached, kv_used;
    uint64_t prefix_queries, prefix_hits;  /* prompt tokens looked up / found in the prefix cache */
    uint64_t store_hits;                   /* of prefix_hits, prompt tokens loaded from the persistent store */
    uint64_t store_blocks_put;             /* KV blocks handed to the store's writer */
    uint64_t prompt_tokens, generation_tokens;
    uint64_t ended[SCHED_END_N];           /* sequences by how they ended */
    uint64_t preemptions, steps;
    uint64_t spec_drafted, spec_accepted;  /* speculative decoding: draft tokens verified / accepted */
    uint64_t target_met[SCHED_N_TIERS], target_missed[SCHED_N_TIERS];
    sched_hist ttft, itl, e2e, queue;
} sched_stats;

/* Zeroes s and sets the histograms' bucket bounds. */
void sched_stats_init(sched_stats *s);
void sched_hist_observe(sched_hist *h, double v);
/* Zeroes h with the request-latency buckets (1 ms .. 640 s). */
void sched_hist_init_latency(sched_hist *h);
const char *sched_end_name(int end); /* "stop", "length", "cancelled", "timeout", "aborted" */

#endif
