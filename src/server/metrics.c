#include "server/metrics.h"

#include <stddef.h>
#include <stdio.h>


static void head(ryot_buf *b, const char *name, const char *type, const char *help) {
    ryot_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The label set {model="NAME",extra} (either part may be absent; "" when
 * both are), the name escaped as the text format wants. */
static void labels(char *out, size_t n, const char *model, const char *extra) {
    size_t k = 0;
    out[0] = 0;
    if (!model && !extra) return;
    out[k++] = '{';
    if (model) {
        k += (size_t)snprintf(out + k, n - k, "model=\"");
        for (const char *c = model; *c && k + 4 < n; c++) {
            if (*c == '\\' || *c == '"') out[k++] = '\\', out[k++] = *c;
            else if (*c == '\n') out[k++] = '\\', out[k++] = 'n';
            else out[k++] = *c;
        }
        out[k++] = '"';
        if (extra) out[k++] = ',';
    }
    if (extra && k < n) k += (size_t)snprintf(out + k, n - k, "%s", extra);
    if (k + 2 > n) k = n - 2;
    out[k++] = '}';
    out[k] = 0;
}

#define LBL_MAX 1024

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

/* One model's series of a family: model NULL for none (one model served). */
typedef struct fam {
    const sched_stats *m;
    const char *const *names; /* NULL: no model label */
    int n;
} fam;

static const char *name_of(const fam *f, int i) { return f->names ? f->names[i] : NULL; }

static void hist_f(ryot_buf *b, const fam *f, const char *name, const char *help, size_t off) {
    head(b, name, "histogram", help);
    char l[LBL_MAX], le[48];
    for (int k = 0; k < f->n; k++) {
        const sched_hist *h = (const sched_hist *)((const char *)&f->m[k] + off);
        uint64_t cum = 0;
        for (int i = 0; i < h->n_bounds; i++) {
            cum += h->counts[i];
            snprintf(le, sizeof le, "le=\"%g\"", h->bounds[i]);
            labels(l, sizeof l, name_of(f, k), le);
            ryot_buf_printf(b, "%s_bucket%s %llu\n", name, l, (unsigned long long)cum);
        }
        cum += h->counts[h->n_bounds];
        labels(l, sizeof l, name_of(f, k), "le=\"+Inf\"");
        ryot_buf_printf(b, "%s_bucket%s %llu\n", name, l, (unsigned long long)cum);
        labels(l, sizeof l, name_of(f, k), NULL);
        ryot_buf_printf(b, "%s_sum%s %.6f\n%s_count%s %llu\n", name, l, h->sum, name, l, (unsigned long long)h->count);
    }
}

static void per_tier_int(ryot_buf *b, const fam *f, const char *name, const char *type, const char *help, size_t off) {
    head(b, name, type, help);
    char l[LBL_MAX], t[48];
    for (int k = 0; k < f->n; k++) {
        const int *v = (const int *)((const char *)&f->m[k] + off);
        for (int i = 0; i < SCHED_N_TIERS; i++) {
            snprintf(t, sizeof t, "tier=\"%s\"", sched_tier_name(i));
            labels(l, sizeof l, name_of(f, k), t);
            ryot_buf_printf(b, "%s%s %d\n", name, l, v[i]);
        }
    }
}

static void per_tier_u64(ryot_buf *b, const fam *f, const char *name, const char *help, size_t off) {
    head(b, name, "counter", help);
    char l[LBL_MAX], t[48];
    for (int k = 0; k < f->n; k++) {
        const uint64_t *v = (const uint64_t *)((const char *)&f->m[k] + off);
        for (int i = 0; i < SCHED_N_TIERS; i++) {
            snprintf(t, sizeof t, "tier=\"%s\"", sched_tier_name(i));
            labels(l, sizeof l, name_of(f, k), t);
            ryot_buf_printf(b, "%s%s %llu\n", name, l, (unsigned long long)v[i]);
        }
    }
}

static void counter(ryot_buf *b, const char *name, const char *help, uint64_t v) {
    head(b, name, "counter", help);
    ryot_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(ryot_buf *b, const char *name, const char *help, double v) {
    head(b, name, "gauge", help);
    ryot_buf_printf(b, "%s %.6g\n", name, v);
}

static void counter_f(ryot_buf *b, const fam *f, const char *name, const char *help, size_t off) {
    head(b, name, "counter", help);
    char l[LBL_MAX];
    for (int k = 0; k < f->n; k++) {
        labels(l, sizeof l, name_of(f, k), NULL);
        ryot_buf_printf(b, "%s%s %llu\n", name, l, (unsigned long long)*(const uint64_t *)((const char *)&f->m[k] + off));
    }
}

static void gauge_int_f(ryot_buf *b, const fam *f, const char *name, const char *help, size_t off) {
    head(b, name, "gauge", help);
    char l[LBL_MAX];
    for (int k = 0; k < f->n; k++) {
        labels(l, sizeof l, name_of(f, k), NULL);
        ryot_buf_printf(b, "%s%s %.6g\n", name, l, (double)*(const int *)((const char *)&f->m[k] + off));
    }
}

#define OFF(field) offsetof(sched_stats, field)

static void render(const fam *f, ryot_buf *b) {
    char l[LBL_MAX];
    per_tier_int(b, f, "ryot_requests_running", "gauge", "Sequences in the running batch, by priority tier.", OFF(running));
    per_tier_int(b, f, "ryot_requests_waiting", "gauge", "Sequences waiting to be admitted, by priority tier.",
                 OFF(waiting));
    head(b, "ryot_kv_cache_usage_ratio", "gauge", "Fraction of KV blocks held by running sequences.");
    for (int k = 0; k < f->n; k++) {
        labels(l, sizeof l, name_of(f, k), NULL);
        const sched_stats *m = &f->m[k];
        ryot_buf_printf(b, "ryot_kv_cache_usage_ratio%s %.6g\n", l, m->kv_total ? (double)m->kv_used / m->kv_total : 0.0);
    }
    gauge_int_f(b, f, "ryot_kv_blocks_total", "KV cache blocks allocated at start.", OFF(kv_total));
    gauge_int_f(b, f, "ryot_kv_blocks_free", "KV cache blocks on the free list.", OFF(kv_free));
    gauge_int_f(b, f, "ryot_kv_blocks_cached", "Unreferenced KV blocks kept for prefix reuse.", OFF(kv_cached));
    gauge_int_f(b, f, "ryot_kv_blocks_used", "KV blocks referenced by running sequences.", OFF(kv_used));
    counter_f(b, f, "ryot_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", OFF(prefix_queries));
    counter_f(b, f, "ryot_prefix_cache_hits_total", "Prompt tokens found in the prefix cache (prefill skipped).",
              OFF(prefix_hits));
    counter_f(b, f, "ryot_prompt_tokens_total", "Prompt tokens prefilled or reused.", OFF(prompt_tokens));
    counter_f(b, f, "ryot_generation_tokens_total", "Tokens generated.", OFF(generation_tokens));
    head(b, "ryot_request_success_total", "counter", "Sequences finished, by finish reason.");
    for (int k = 0; k < f->n; k++)
        for (int i = 0; i < SCHED_END_N; i++) {
            char r[64];
            snprintf(r, sizeof r, "finished_reason=\"%s\"", sched_end_name(i));
            labels(l, sizeof l, name_of(f, k), r);
            ryot_buf_printf(b, "ryot_request_success_total%s %llu\n", l, (unsigned long long)f->m[k].ended[i]);
        }
    counter_f(b, f, "ryot_spec_drafted_tokens_total", "Draft tokens (prompt lookup) verified by speculative decoding.",
              OFF(spec_drafted));
    counter_f(b, f, "ryot_spec_accepted_tokens_total",
              "Draft tokens the model agreed with (emitted without a step of their own).", OFF(spec_accepted));
    counter_f(b, f, "ryot_preemptions_total", "Sequences preempted for KV blocks (requeued for recompute).",
              OFF(preemptions));
    counter_f(b, f, "ryot_engine_steps_total", "Batched forward steps.", OFF(steps));
    per_tier_u64(b, f, "ryot_tier_target_met_total", "Sequences whose time to first token met their tier target.",
                 OFF(target_met));
    per_tier_u64(b, f, "ryot_tier_target_missed_total", "Sequences whose time to first token missed their tier target.",
                 OFF(target_missed));
    hist_f(b, f, "ryot_time_to_first_token_seconds", "Time from arrival to the first generated token.", OFF(ttft));
    hist_f(b, f, "ryot_inter_token_latency_seconds", "Time between successive tokens of a sequence.", OFF(itl));
    hist_f(b, f, "ryot_e2e_request_latency_seconds", "Time from arrival to the last token.", OFF(e2e));
    hist_f(b, f, "ryot_request_queue_time_seconds", "Time from arrival to first admission.", OFF(queue));
}

void srv_metrics_render(const sched_stats *m, ryot_buf *b) {
    const fam f = {.m = m, .names = NULL, .n = 1};
    render(&f, b);
}

void srv_metrics_render_models(const sched_stats *m, const char *const *names, int n, ryot_buf *b) {
    const fam f = {.m = m, .names = names, .n = n};
    render(&f, b);
}

void srv_metrics_render_registry(const srv_model_status *ms, int n, uint64_t budget, ryot_buf *b) {
    char l[LBL_MAX];
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"ryot_model_loaded", "gauge", "1 while the model is loaded (its weights mapped, its engine running)."},
        {"ryot_model_resident_bytes", "gauge",
         "Bytes the model counts against --mem-gb while loaded: its file (mapped weights), KV pool and logits."},
        {"ryot_model_requests_in_flight", "gauge", "Requests holding the model (queued, running, or streaming)."},
        {"ryot_model_loads_total", "counter", "Loads of the model."},
        {"ryot_model_unloads_total", "counter", "Unloads of the model for the memory budget (LRU)."},
        {"ryot_model_load_failures_total", "counter", "Loads of the model that failed."},
        {"ryot_model_load_seconds", "gauge", "Seconds the model's last load took."},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        head(b, fams[f].name, fams[f].type, fams[f].help);
        for (int i = 0; i < n; i++) {
            labels(l, sizeof l, ms[i].name, NULL);
            const bool ready = ms[i].state == SRV_MODEL_READY;
            switch (f) {
            case 0: ryot_buf_printf(b, "%s%s %d\n", fams[f].name, l, ready); break;
            case 1: ryot_buf_printf(b, "%s%s %llu\n", fams[f].name, l, ready ? (unsigned long long)ms[i].bytes : 0ull); break;
            case 2: ryot_buf_printf(b, "%s%s %d\n", fams[f].name, l, ms[i].refs); break;
            case 3: ryot_buf_printf(b, "%s%s %llu\n", fams[f].name, l, (unsigned long long)ms[i].loads); break;
            case 4: ryot_buf_printf(b, "%s%s %llu\n", fams[f].name, l, (unsigned long long)ms[i].unloads); break;
            case 5: ryot_buf_printf(b, "%s%s %llu\n", fams[f].name, l, (unsigned long long)ms[i].load_failures); break;
            default: ryot_buf_printf(b, "%s%s %.6f\n", fams[f].name, l, ms[i].last_load_s); break;
            }
        }
    }
    uint64_t sum = 0;
    for (int i = 0; i < n; i++)
        if (ms[i].state == SRV_MODEL_READY) sum += ms[i].bytes;
    head(b, "ryot_models_resident_bytes", "gauge", "Sum of the loaded models' resident bytes.");
    ryot_buf_printf(b, "ryot_models_resident_bytes %llu\n", (unsigned long long)sum);
    head(b, "ryot_models_budget_bytes", "gauge", "The models' memory budget (--mem-gb; 0: none).");
    ryot_buf_printf(b, "ryot_models_budget_bytes %llu\n", (unsigned long long)budget);
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
