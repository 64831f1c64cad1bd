#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/core.h"

static const double lat_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                                    2.5,   5.0,   7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0};
static const double itl_bounds[] = {0.001, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                                    0.1,   0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1.0,  2.5};

static void hist_init(srv_hist *h, const double *b, int n) {
    memset(h, 0, sizeof *h);
    h->bounds = b;
    h->n_bounds = n;
}

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    const int nl = (int)(sizeof lat_bounds / sizeof lat_bounds[0]);
    hist_init(&m->ttft, lat_bounds, nl);
    hist_init(&m->e2e, lat_bounds, nl);
    hist_init(&m->queue, lat_bounds, nl);
    hist_init(&m->itl, itl_bounds, (int)(sizeof itl_bounds / sizeof itl_bounds[0]));
}

void srv_metrics_destroy(srv_metrics *m) { pthread_mutex_destroy(&m->lock); }

void srv_hist_observe(srv_hist *h, double v) {
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

const char *srv_end_name(int end) {
    static const char *names[SRV_END_N] = {"stop", "length", "cancelled", "timeout", "aborted"};
    return end >= 0 && end < SRV_END_N ? names[end] : "unknown";
}

static void put(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(srv_buf *b, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) srv_buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void head(srv_buf *b, const char *name, const char *type, const char *help) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist(srv_buf *b, const char *name, const char *help, const srv_hist *h) {
    head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum, name, h->sum,
        name, (unsigned long long)h->count);
}

static void per_tier_int(srv_buf *b, const char *name, const char *type, const char *help, const int *v) {
    head(b, name, type, help);
    for (int t = 0; t < SCHED_N_TIERS; t++) put(b, "%s{tier=\"%s\"} %d\n", name, sched_tier_name(t), v[t]);
}

static void per_tier_u64(srv_buf *b, const char *name, const char *help, const uint64_t *v) {
    head(b, name, "counter", help);
    for (int t = 0; t < SCHED_N_TIERS; t++)
        put(b, "%s{tier=\"%s\"} %llu\n", name, sched_tier_name(t), (unsigned long long)v[t]);
}

static void counter(srv_buf *b, const char *name, const char *help, uint64_t v) {
    head(b, name, "counter", help);
    put(b, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(srv_buf *b, const char *name, const char *help, double v) {
    head(b, name, "gauge", help);
    put(b, "%s %.6g\n", name, v);
}

void srv_metrics_render(srv_metrics *m, srv_buf *b) {
    pthread_mutex_lock(&m->lock);
    per_tier_int(b, "ryot_requests_running", "gauge", "Sequences in the running batch, by priority tier.", m->running);
    per_tier_int(b, "ryot_requests_waiting", "gauge", "Sequences waiting to be admitted, by priority tier.",
                 m->waiting);
    gauge(b, "ryot_kv_cache_usage_ratio", "Fraction of KV blocks held by running sequences.",
          m->kv_total ? (double)m->kv_used / m->kv_total : 0.0);
    gauge(b, "ryot_kv_blocks_total", "KV cache blocks allocated at start.", m->kv_total);
    gauge(b, "ryot_kv_blocks_free", "KV cache blocks on the free list.", m->kv_free);
    gauge(b, "ryot_kv_blocks_cached", "Unreferenced KV blocks kept for prefix reuse.", m->kv_cached);
    gauge(b, "ryot_kv_blocks_used", "KV blocks referenced by running sequences.", m->kv_used);
    counter(b, "ryot_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", m->prefix_queries);
    counter(b, "ryot_prefix_cache_hits_total", "Prompt tokens found in the prefix cache (prefill skipped).",
            m->prefix_hits);
    counter(b, "ryot_prompt_tokens_total", "Prompt tokens prefilled or reused.", m->prompt_tokens);
    counter(b, "ryot_generation_tokens_total", "Tokens generated.", m->generation_tokens);
    head(b, "ryot_request_success_total", "counter", "Sequences finished, by finish reason.");
    for (int i = 0; i < SRV_END_N; i++)
        put(b, "ryot_request_success_total{finished_reason=\"%s\"} %llu\n", srv_end_name(i),
            (unsigned long long)m->ended[i]);
    counter(b, "ryot_preemptions_total", "Sequences preempted for KV blocks (requeued for recompute).",
            m->preemptions);
    counter(b, "ryot_engine_steps_total", "Batched forward steps.", m->steps);
    per_tier_u64(b, "ryot_tier_target_met_total", "Sequences whose time to first token met their tier target.",
                 m->target_met);
    per_tier_u64(b, "ryot_tier_target_missed_total", "Sequences whose time to first token missed their tier target.",
                 m->target_missed);
    hist(b, "ryot_time_to_first_token_seconds", "Time from arrival to the first generated token.", &m->ttft);
    hist(b, "ryot_inter_token_latency_seconds", "Time between successive tokens of a sequence.", &m->itl);
    hist(b, "ryot_e2e_request_latency_seconds", "Time from arrival to the last token.", &m->e2e);
    hist(b, "ryot_request_queue_time_seconds", "Time from arrival to first admission.", &m->queue);
    pthread_mutex_unlock(&m->lock);
}
