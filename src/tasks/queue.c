/* The task queue's front (queue.h): argument checks, waiting, dispatch to
 * the backend (queue_redis.c, queue_lmdb.c). */
#include "tasks/queue_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


void task_msg_free(task_msg *m) {
    if (!m) return;
    free(m->body);
    memset(m, 0, sizeof *m);
}

void task_queue_init_common(task_queue *q, const task_queue_ops *ops, const task_queue_params *p) {
    q->ops = ops;
    if (p) q->p = *p;
    if (q->p.visibility_ms <= 0) q->p.visibility_ms = 30000;
    if (q->p.max_tasks < 0) q->p.max_tasks = 0;
    if (!p) q->p.max_tasks = 100000;
    if (q->p.timeout_ms <= 0) q->p.timeout_ms = 2000;
    if (q->p.consumer && *q->p.consumer) {
        snprintf(q->consumer, sizeof q->consumer, "%s", q->p.consumer);
    } else {
        char host[64] = "ryot";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = 0;
        snprintf(q->consumer, sizeof q->consumer, "%s-%d", host, (int)getpid());
    }
    q->p.consumer = q->consumer;
}

ryot_status task_queue_open_redis(const char *url, const task_queue_params *p, task_queue **out, ryot_error *err) {
    return task_queue_redis_open(url, p, out, err);
}

ryot_status task_queue_open_dir(const char *dir, const task_queue_params *p, task_queue **out, ryot_error *err) {
    return task_queue_lmdb_open(dir, p, out, err);
}

void task_queue_free(task_queue *q) {
    if (q) q->ops->free(q);
}

const char *task_queue_backend(const task_queue *q) { return q->ops->name; }
const char *task_queue_consumer(const task_queue *q) { return q->consumer; }
int64_t task_queue_visibility_ms(const task_queue *q) { return q->p.visibility_ms; }

static bool id_ok(const char *id) {
    const size_t n = id ? strlen(id) : 0;
    return n > 0 && n < TASK_ID_MAX;
}

ryot_status task_queue_push(task_queue *q, int n, const char *const *ids, int tier, const char *const *bodies,
                            const size_t *lens, ryot_error *err) {
    if (n <= 0) return RYOT_OK;
    if (tier < 0 || tier >= TASK_TIERS) return ryot_fail(err, RYOT_ERR_INVALID, "tier %d outside 0..4", tier);
    for (int i = 0; i < n; i++)
        if (!id_ok(ids[i])) return ryot_fail(err, RYOT_ERR_INVALID, "task id empty or longer than %d", TASK_ID_MAX - 1);
    return q->ops->push(q, n, ids, tier, bodies, lens, err);
}

int task_queue_claim(task_queue *q, int wait_ms, task_msg *out, ryot_error *err) {
    memset(out, 0, sizeof *out);
    return q->ops->claim(q, wait_ms < 0 ? 0 : wait_ms, out, err);
}

ryot_status task_queue_touch(task_queue *q, const task_msg *m, ryot_error *err) { return q->ops->touch(q, m, err); }

ryot_status task_queue_complete(task_queue *q, const task_msg *m, const char *result, size_t len, const char *count_key,
                                bool *first, ryot_error *err) {
    bool f = false;
    ryot_status st = q->ops->complete(q, m, result, len, count_key, false, &f, err);
    if (first) *first = f;
    return st;
}

ryot_status task_queue_dead(task_queue *q, const task_msg *m, const char *result, size_t len, const char *count_key,
                            bool *first, ryot_error *err) {
    bool f = false;
    ryot_status st = q->ops->complete(q, m, result, len, count_key, true, &f, err);
    if (first) *first = f;
    return st;
}

int task_queue_result(task_queue *q, const char *id, char **val, size_t *len, ryot_error *err) {
    return q->ops->kv_get(q, TASK_NS_RESULT, id, val, len, err);
}

ryot_status task_queue_stats_get(task_queue *q, task_queue_stats *out, ryot_error *err) {
    memset(out, 0, sizeof *out);
    return q->ops->stats(q, out, err);
}

int task_kv_get(task_queue *q, const char *key, char **val, size_t *len, ryot_error *err) {
    return q->ops->kv_get(q, TASK_NS_KV, key, val, len, err);
}

ryot_status task_kv_put(task_queue *q, const char *key, const char *val, size_t len, bool nx, bool *stored,
                        ryot_error *err) {
    bool s = false;
    ryot_status st = q->ops->kv_put(q, key, val, len, nx, &s, err);
    if (stored) *stored = s;
    return st;
}

ryot_status task_kv_counter(task_queue *q, const char *key, int64_t *out, ryot_error *err) {
    char *v = NULL;
    size_t n = 0;
    *out = 0;
    int r = q->ops->kv_get(q, TASK_NS_KV, key, &v, &n, err);
    if (r < 0) return err ? err->code : RYOT_ERR_IO;
    if (r) *out = strtoll(v, NULL, 10);
    free(v);
    return RYOT_OK;
}

ryot_status task_index_add(task_queue *q, const char *index, const char *member, ryot_error *err) {
    return q->ops->index_add(q, index, member, err);
}

ryot_status task_index_list(task_queue *q, const char *index, const char *after, int limit, char ***members, int *n,
                            bool *more, ryot_error *err) {
    *members = NULL;
    *n = 0;
    *more = false;
    if (limit <= 0) return RYOT_OK;
    return q->ops->index_list(q, index, after, limit, members, n, more, err);
}

void task_index_list_free(char **members, int n) {
    for (int i = 0; i < n; i++) free(members[i]);
    free(members);
}
