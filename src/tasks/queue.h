/* The task queue under /v1/tasks and /v1/batches: at-least-once delivery of
 * opaque task bodies to any number of consumers, with results stored once.
 *
 * Two backends with the same semantics:
 *  - Redis Streams (task_queue_open_redis): one stream per tier
 *    ("ryot:tasks:q:<tier>"), one consumer group ("ryot") that every ryot
 *    instance joins under its own consumer name; XREADGROUP delivers,
 *    XAUTOCLAIM hands a task whose consumer went quiet for visibility_ms to
 *    another, XACK + XDEL removes a finished one.  Pushes and completions
 *    are Lua scripts, so a capacity check and its XADD, or a result's
 *    SET NX, its counter and its XACK, happen atomically.
 *  - An embedded LMDB environment in a directory (task_queue_open_dir): the
 *    same operations in LMDB transactions (several processes may share the
 *    directory on one machine; LMDB locks).
 *
 * Semantics (both):
 *  - claim returns the lowest-tier (most urgent) task first, FIFO inside a
 *    tier; a task claimed longer than visibility_ms ago without being
 *    completed or touched is delivered again (its consumer died or hung);
 *    every delivery counts an attempt, and the caller sends a task whose
 *    attempt exceeds its retry cap to the dead-letter list (task_queue_dead).
 *  - complete stores the result under the task id only if none is stored
 *    yet (first wins: a task done twice is reported once) and removes the
 *    task; *first says whether this call stored it.
 *  - outstanding tasks (queued + claimed) are bounded by max_tasks: a push
 *    past it is RYOT_ERR_BUSY, all-or-nothing for a push of several.
 *  - a small key-value space (kv_*) and ordered indexes (index_*) hold the
 *    API's objects (tasks, files, batches) next to the queue, shared the
 *    same way.
 * A backend that is down (Redis unreachable) answers RYOT_ERR_UNAVAILABLE;
 * the Redis backend reconnects with backoff (100 ms to 5 s).  Thread-safe. */
#ifndef RYOT_TASKS_QUEUE_H
#define RYOT_TASKS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define TASK_ID_MAX 96
#define TASK_TIERS 5

typedef struct task_queue task_queue;

typedef struct task_queue_params {
    const char *consumer;   /* this instance's consumer name (default "HOST-PID") */
    int64_t visibility_ms;  /* claimed and silent this long: delivered again (default 30000) */
    int64_t max_tasks;      /* outstanding tasks allowed (default 100000; 0: no limit) */
    int timeout_ms;         /* Redis: bound of each connect and command (default 2000) */
} task_queue_params;

typedef struct task_msg {
    char id[TASK_ID_MAX];  /* the caller's task id */
    char ref[48];          /* the backend's entry (stream entry id, LMDB key) */
    int tier;              /* 0..4 */
    int attempt;           /* deliveries so far, this one included (1: first) */
    char *body;            /* malloc'd, NUL-terminated; len bytes */
    size_t len;
} task_msg;
void task_msg_free(task_msg *m);

typedef struct task_queue_stats {
    int64_t outstanding;   /* queued + claimed */
    int64_t dead;          /* tasks in the dead-letter list */
} task_queue_stats;

/* url: redis://HOST[:PORT][/DB].  Connects on first use. */
ryot_status task_queue_open_redis(const char *url, const task_queue_params *p, task_queue **out, ryot_error *err);
/* dir: created when missing; the LMDB files live in it. */
ryot_status task_queue_open_dir(const char *dir, const task_queue_params *p, task_queue **out, ryot_error *err);
void task_queue_free(task_queue *q);
const char *task_queue_backend(const task_queue *q); /* "redis" or "lmdb" */
const char *task_queue_consumer(const task_queue *q);
int64_t task_queue_visibility_ms(const task_queue *q);

/* Queues n tasks (ids[i], bodies[i] of lens[i] bytes) in tier, all or none:
 * RYOT_ERR_BUSY when they would take the outstanding tasks past max_tasks. */
ryot_status task_queue_push(task_queue *q, int n, const char *const *ids, int tier, const char *const *bodies,
                            const size_t *lens, ryot_error *err);
/* Waits up to wait_ms for a task: 1 and *out filled (task_msg_free), 0 when
 * none came, -1 on error (*err). */
int task_queue_claim(task_queue *q, int wait_ms, task_msg *out, ryot_error *err);
/* Resets m's visibility clock (a long task still running). */
ryot_status task_queue_touch(task_queue *q, const task_msg *m, ryot_error *err);
/* Stores result under m->id unless a result is stored already, removes the
 * task, and when this call stored it and count_key is not NULL adds 1 to
 * the counter count_key (kv space).  *first: this call stored it. */
ryot_status task_queue_complete(task_queue *q, const task_msg *m, const char *result, size_t len, const char *count_key,
                                bool *first, ryot_error *err);
/* Like complete (the result is the failure record), and the task's body goes
 * to the dead-letter list. */
ryot_status task_queue_dead(task_queue *q, const task_msg *m, const char *result, size_t len, const char *count_key,
                            bool *first, ryot_error *err);
/* The stored result of task id: 1 and *val (malloc'd, NUL-terminated), 0
 * when none, -1 on error. */
int task_queue_result(task_queue *q, const char *id, char **val, size_t *len, ryot_error *err);
ryot_status task_queue_stats_get(task_queue *q, task_queue_stats *out, ryot_error *err);

/* Key-value space: get (1 found with *val malloc'd and NUL-terminated, 0
 * missing, -1 error); put (nx: only when missing, *stored says whether it
 * was; stored may be NULL); counter read (0 when missing). */
int task_kv_get(task_queue *q, const char *key, char **val, size_t *len, ryot_error *err);
ryot_status task_kv_put(task_queue *q, const char *key, const char *val, size_t len, bool nx, bool *stored,
                        ryot_error *err);
ryot_status task_kv_counter(task_queue *q, const char *key, int64_t *out, ryot_error *err);

/* Ordered index of members (ids that sort by creation time): add, and list
 * up to limit members in descending order, starting after `after` (NULL:
 * from the newest); *more when members remain past those. */
ryot_status task_index_add(task_queue *q, const char *index, const char *member, ryot_error *err);
ryot_status task_index_list(task_queue *q, const char *index, const char *after, int limit, char ***members, int *n,
                            bool *more, ryot_error *err);
void task_index_list_free(char **members, int n);

#endif
