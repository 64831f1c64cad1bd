/* Internals shared by service.c (workers, /v1/tasks), batch.c (/v1/files,
 * /v1/batches) and callback.c. */
#ifndef RYOT_TASKS_SERVICE_IMPL_H
#define RYOT_TASKS_SERVICE_IMPL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "server/request.h"
#include "tasks/service.h"

struct tasks_service {
    task_queue *q;
    tasks_params p;
    tasks_exec_fn exec;
    void *ctx;
    pthread_t *threads;
    int n_threads;
    pthread_t beat;
    bool beat_started;
    atomic_bool stop;
    pthread_mutex_t mu; /* inflight, the heartbeat's wait, stats */
    pthread_cond_t cv;
    task_msg **inflight; /* p.workers slots; NULL: free */
    char **allow;
    int n_allow;
    tasks_stats st;
};

/* prefix + 12 hex digits of the wall clock in ms + 16 random hex digits:
 * unique, and ids of one prefix sort by creation time. */
void tasks_make_id(char *buf, size_t n, const char *prefix);

/* The reply helpers: a JSON value (taken over), an error, raw bytes. */
void tasks_reply_json(tasks_reply *r, int status, json_t *v);
void tasks_reply_error(tasks_reply *r, const srv_error *e);
void tasks_reply_err(tasks_reply *r, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A queue error as a reply: BUSY 429, UNAVAILABLE 503, others 500. */
void tasks_reply_queue_error(tasks_reply *r, const ryot_error *err);

/* "/v1/chat/completions", "/v1/completions", "/v1/embeddings": true. */
bool tasks_endpoint_ok(const char *endpoint);
/* Checks a request body for endpoint as the endpoint would (400 errors);
 * param_prefix names the field holding it ("body", "line 3 body"). */
int tasks_validate_body(const char *endpoint, const json_t *body, srv_error *e);

/* A JSON value from a stored text (NULL when missing or not JSON). */
json_t *tasks_kv_json(task_queue *q, const char *key);
ryot_status tasks_kv_put_json(task_queue *q, const char *key, const json_t *v, ryot_error *err);

/* batch.c */
void tasks_batches_handle(tasks_service *s, const char *method, const char *path, const char *after, const char *limit,
                          const char *body, size_t len, tasks_reply *out);
void tasks_files_handle(tasks_service *s, const char *method, const char *path, const char *after, const char *limit,
                        const tasks_upload *up, tasks_reply *out);
/* A batch line's task finished (or was skipped): completes the batch when
 * it was the last. */
void tasks_batch_progress(tasks_service *s, const char *batch_id);
/* "cancelled" / "expired" when the batch's remaining lines should not run,
 * else NULL (static strings); expires_ms: the batch's deadline. */
const char *tasks_batch_stopped(tasks_service *s, const char *batch_id, int64_t expires_ms);

/* callback.c: POSTs body to url (http:// only), a few tries; true on a 2xx. */
bool tasks_callback_post(const char *url, const char *body, size_t len);
/* url is http://HOST[:PORT]/... with HOST loopback or one of allow; else
 * false with the reason in why. */
bool tasks_callback_allowed(const char *url, char *const *allow, int n_allow, char *why, size_t why_n);

#endif
