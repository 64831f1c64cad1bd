/* The task queue's backend seam (queue.h): a vtable per backend. */
#ifndef RYOT_TASKS_QUEUE_IMPL_H
#define RYOT_TASKS_QUEUE_IMPL_H

#include "tasks/queue.h"

typedef struct task_queue_ops {
    const char *name;
    void (*free)(task_queue *q);
    ryot_status (*push)(task_queue *q, int n, const char *const *ids, int tier, const char *const *bodies,
                        const size_t *lens, ryot_error *err);
    /* the first claimable task, waiting up to wait_ms for one */
    int (*claim)(task_queue *q, int wait_ms, task_msg *out, ryot_error *err);
    ryot_status (*touch)(task_queue *q, const task_msg *m, ryot_error *err);
    ryot_status (*complete)(task_queue *q, const task_msg *m, const char *result, size_t len, const char *count_key,
                            bool dead, bool *first, ryot_error *err);
    int (*kv_get)(task_queue *q, const char *ns, const char *key, char **val, size_t *len, ryot_error *err);
    ryot_status (*kv_put)(task_queue *q, const char *key, const char *val, size_t len, bool nx, bool *stored,
                          ryot_error *err);
    ryot_status (*stats)(task_queue *q, task_queue_stats *out, ryot_error *err);
    ryot_status (*index_add)(task_queue *q, const char *index, const char *member, ryot_error *err);
    ryot_status (*index_list)(task_queue *q, const char *index, const char *after, int limit, char ***members, int *n,
                              bool *more, ryot_error *err);
} task_queue_ops;

/* Every backend's object starts with this. */
struct task_queue {
    const task_queue_ops *ops;
    task_queue_params p;
    char consumer[128];
};

/* fills q->p's defaults and q->consumer */
void task_queue_init_common(task_queue *q, const task_queue_ops *ops, const task_queue_params *p);

ryot_status task_queue_lmdb_open(const char *dir, const task_queue_params *p, task_queue **out, ryot_error *err);
ryot_status task_queue_redis_open(const char *url, const task_queue_params *p, task_queue **out, ryot_error *err);

/* namespaces of kv_get */
#define TASK_NS_KV "kv"
#define TASK_NS_RESULT "result"

#endif
