#include "server/metrics.h"


static void head(ryot_buf *b, const char *name, const char *type, const char *help) {
    ryot_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist(ryot_buf *b, const char *name, const char *help, const sched_hist *h) {
    head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        ryot_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    ryot_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum, name, h->sum,
        name, (unsigned long long)h->count);
}

static void per_tier_int(ryot_buf *b, const char *name, const char *type, const char *help, const int *v) {
    head(b, name, type, help);
    for (int t = 0; t < SCHED_N_TIERS; t++) ryot_buf_printf(b, "%s{tier=\"%s\"} %d\n", name, sched_tier_name(t), v[t]);
}

static void per_tier_u64(ryot_buf *b, const char *name, const char *help, const uint64_t *v) {
    head(b, name, "counter", help);
    for (int t = 0; t < SCHED_N_TIERS; t++)
        ryot_buf_printf(b, "%s{tier=\"%s\"} %llu\n", name, sched_tier_name(t), (unsigned long long)v[t]);
}

static void counter(ryot_buf *b, const char *name, const char *help, uint64_t v) {
    head(b, name, "counter", help);
    ryot_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(ryot_buf *b, const char *name, const char *help, double v) {
    head(b, name, "gauge", help);
    ryot_buf_printf(b, "%s %.6g\n", name, v);
}

void srv_metrics_render(const sched_stats *m, ryot_buf *b) {
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
    for (int i = 0; i < SCHED_END_N; i++)
        ryot_buf_printf(b, "ryot_request_success_total{finished_reason=\"%s\"} %llu\n", sched_end_name(i),
            (unsigned long long)m->ended[i]);
    counter(b, "ryot_spec_drafted_tokens_total", "Draft tokens (prompt lookup) verified by speculative decoding.",
            m->spec_drafted);
    counter(b, "ryot_spec_accepted_tokens_total", "Draft tokens the model agreed with (emitted without a step of their own).",
            m->spec_accepted);
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
}

/* A gauge that is a count: printed exactly (%.6g would round bytes). */
static void gauge_u64(ryot_buf *b, const char *name, const char *help, uint64_t v) {
    head(b, name, "gauge", help);
    ryot_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void srv_metrics_render_cache(const cache_l1_stats *c, const cache_sem_stats *sem, ryot_buf *b) {
    head(b, "ryot_cache_requests_total", "counter", "Response-cache lookups, by tier and result.");
    ryot_buf_printf(b, "ryot_cache_requests_total{tier=\"l1\",result=\"hit\"} %llu\n", (unsigned long long)c->hits);
    ryot_buf_printf(b, "ryot_cache_requests_total{tier=\"l1\",result=\"miss\"} %llu\n",
                    (unsigned long long)c->misses);
    if (sem) {
        ryot_buf_printf(b, "ryot_cache_requests_total{tier=\"semantic\",result=\"hit\"} %llu\n",
                        (unsigned long long)sem->hits);
        ryot_buf_printf(b, "ryot_cache_requests_total{tier=\"semantic\",result=\"miss\"} %llu\n",
                        (unsigned long long)sem->misses);
        gauge_u64(b, "ryot_cache_semantic_entries", "Questions in the semantic cache's index.", sem->entries);
        counter(b, "ryot_cache_semantic_evictions_total",
                "Semantic index entries dropped: to make room, or their answer had left the cache.",
                sem->evictions + sem->removed);
        counter(b, "ryot_cache_semantic_graph_searches_total",
                "Semantic searches answered through a context's HNSW graph (contexts past 1024 questions).",
                sem->graph_searches);
    }
    counter(b, "ryot_cache_expired_total", "Lookups that found an expired entry (counted as misses too).", c->expired);
    counter(b, "ryot_cache_stores_total", "Answers stored in the response cache.", c->stores);
    counter(b, "ryot_cache_too_big_total", "Answers not stored: larger than an eighth of the cache.", c->too_big);
    counter(b, "ryot_cache_evictions_total", "Entries evicted to make room.", c->evictions);
    gauge_u64(b, "ryot_cache_entries", "Entries in the response cache.", c->entries);
    gauge_u64(b, "ryot_cache_bytes", "Bytes charged to the response cache (values and per-entry overhead).", c->bytes);
    gauge_u64(b, "ryot_cache_capacity_bytes", "The response cache's byte bound (--cache-mb).", c->max_bytes);
}

void srv_metrics_render_redis(const cache_l2_stats *c, ryot_buf *b) {
    head(b, "ryot_cache_l2_requests_total", "counter", "Redis (L2) cache lookups, by result.");
    ryot_buf_printf(b, "ryot_cache_l2_requests_total{result=\"hit\"} %llu\n", (unsigned long long)c->hits);
    ryot_buf_printf(b, "ryot_cache_l2_requests_total{result=\"miss\"} %llu\n", (unsigned long long)c->misses);
    counter(b, "ryot_cache_l2_stores_total", "Answers stored in Redis.", c->stores);
    counter(b, "ryot_cache_redis_errors_total", "Failed or timed-out Redis connects and commands.", c->errors);
    counter(b, "ryot_cache_redis_corrupt_total", "Redis records that did not decode (treated as misses).", c->corrupt);
    counter(b, "ryot_cache_redis_reconnects_total", "Reconnects to Redis after a failure.", c->reconnects);
    gauge_u64(b, "ryot_cache_redis_up", "1 while connected to Redis.", c->up);
}

void srv_metrics_render_tasks(const tasks_stats *t, ryot_buf *b) {
    counter(b, "ryot_tasks_submitted_total", "Tasks accepted by POST /v1/tasks.", t->submitted);
    counter(b, "ryot_tasks_batch_requests_submitted_total", "Requests queued by POST /v1/batches (one per input line).",
            t->batch_lines);
    head(b, "ryot_tasks_finished_total", "counter",
         "Queued requests this instance finished, by result: ok (200), failed (an error response), dead (never ran: "
         "delivered too often or malformed).");
    ryot_buf_printf(b, "ryot_tasks_finished_total{result=\"ok\"} %llu\n", (unsigned long long)t->completed);
    ryot_buf_printf(b, "ryot_tasks_finished_total{result=\"failed\"} %llu\n", (unsigned long long)t->failed);
    ryot_buf_printf(b, "ryot_tasks_finished_total{result=\"dead\"} %llu\n", (unsigned long long)t->dead);
    counter(b, "ryot_tasks_retries_total", "Runs the server refused for now (429, 503), tried again.", t->retried);
    counter(b, "ryot_tasks_duplicates_total",
            "Queued requests finished again after a redelivery; the first result stands.", t->duplicates);
    head(b, "ryot_tasks_callbacks_total", "counter", "Completion callbacks posted, by result.");
    ryot_buf_printf(b, "ryot_tasks_callbacks_total{result=\"ok\"} %llu\n", (unsigned long long)t->callbacks_ok);
    ryot_buf_printf(b, "ryot_tasks_callbacks_total{result=\"failed\"} %llu\n", (unsigned long long)t->callbacks_failed);
    gauge(b, "ryot_tasks_running", "Queued requests this instance's workers are running.", t->running);
    hist(b, "ryot_task_queue_wait_seconds", "Time from a request's submission to a worker starting it.", &t->wait);
    hist(b, "ryot_task_run_seconds", "Time from a worker starting a queued request to its response.", &t->run);
}

void srv_metrics_render_store(const store_stats *s, const sched_stats *m, ryot_buf *b) {
    counter(b, "ryot_store_hits_total", "KV blocks loaded from the persistent store.", s->hits);
    counter(b, "ryot_store_misses_total", "KV block lookups the store could not serve (absent or failed).", s->misses);
    counter(b, "ryot_store_auth_failures_total",
            "Store records that failed authentication or decoding (tampered, truncated, wrong key): never loaded.",
            s->auth_failures);
    counter(b, "ryot_store_writes_total", "KV blocks committed to the store.", s->writes);
    counter(b, "ryot_store_write_failures_total", "KV blocks or sessions the store failed to commit.",
            s->write_failures);
    counter(b, "ryot_store_dropped_total", "KV block writes dropped: the writer queue was full.", s->dropped);
    counter(b, "ryot_store_evictions_total", "Store records evicted for the size budget (LRU).", s->evictions);
    counter(b, "ryot_store_bytes_written_total", "Sealed bytes committed to the store.", s->bytes_written);
    counter(b, "ryot_store_raw_bytes_written_total", "F16 KV bytes those records hold.", s->raw_bytes_written);
    counter(b, "ryot_store_bytes_read_total", "Sealed bytes of store hits.", s->bytes_read);
    counter(b, "ryot_store_prompt_tokens_total", "Prompt tokens loaded from the store instead of prefilled.",
            m->store_hits);
    gauge_u64(b, "ryot_store_records", "Records in the store.", s->records);
    gauge_u64(b, "ryot_store_used_bytes", "Bytes of the store's KV pages.", s->used_bytes);
    gauge_u64(b, "ryot_store_budget_bytes", "The store's size budget (--store-gb).", s->budget_bytes);
    gauge_u64(b, "ryot_store_queue_bytes", "Bytes waiting in the store's writer queue.", s->queue_bytes);
}
