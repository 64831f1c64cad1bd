/* /metrics: the serving loop's counters, gauges and histograms
 * (sched/stats.h) in Prometheus' text format with the ryot_ prefix (names
 * modeled on vLLM's). */
#ifndef RYOT_SERVER_METRICS_H
#define RYOT_SERVER_METRICS_H

#include "cache/l1.h"
#include "cache/l2.h"
#include "cache/semantic.h"
#include "core/buf.h"
#include "sched/stats.h"
#include "server/registry.h"
#include "store/store.h"
#include "tasks/service.h"

/* Appends the exposition text of one snapshot to b. */
void srv_metrics_render(const sched_stats *m, ryot_buf *b);
/* The same series for n models (several served), each sample labelled
 * model="names[i]" (escaped), a family's samples together. */
void srv_metrics_render_models(const sched_stats *m, const char *const *names, int n, ryot_buf *b);
/* The registry's per-model series (loaded, resident bytes, in flight,
 * loads, unloads, failures, last load time) and the budget. */
void srv_metrics_render_registry(const srv_model_status *ms, int n, uint64_t budget, ryot_buf *b);
/* Appends the response cache's series (only when the cache is on); sem:
 * the semantic index's, NULL when it is off. */
void srv_metrics_render_cache(const cache_l1_stats *c, const cache_sem_stats *sem, ryot_buf *b);
/* Appends the Redis cache's series (only with --redis). */
void srv_metrics_render_redis(const cache_l2_stats *c, ryot_buf *b);
/* Appends the persistent store's series (only with --store). */
void srv_metrics_render_store(const store_stats *s, const sched_stats *m, ryot_buf *b);
/* The task service (/v1/tasks, /v1/batches) and its workers. */
void srv_metrics_render_tasks(const tasks_stats *t, ryot_buf *b);

#endif
