/* The asynchronous task API over the task queue (queue.h): POST/GET
 * /v1/tasks (one request, optional callback), and the OpenAI Batch API
 * (/v1/files, /v1/batches: batch.c), plus the worker threads that run
 * queued requests.
 *
 * A worker claims a task, runs its request through `exec` (the server's
 * own request path, srv_http_execute: same parsing, cache and response as
 * the endpoint, without HTTP), and stores the response as the task's
 * result (first result wins).  While it runs, a heartbeat keeps the claim
 * alive (task_queue_touch every visibility/3); a worker that dies leaves
 * the task to be claimed again after the visibility timeout, by this or
 * another instance.  A task delivered more than max_attempts times goes to
 * the dead-letter list with a failed result.  Requests the server refuses
 * for now (429, 503) are retried a few times, then left for redelivery.
 * Batch lines run at the background tier; tasks at their "priority"
 * (default low).  At most `workers` tasks run at once per instance, so
 * queued work never fills the scheduler: interactive requests keep their
 * slots and, by tier order, the first turn.
 *
 * This module knows no HTTP library: tasks_handle takes a parsed request
 * and returns the reply; server/tasks_http.c wires it to libmicrohttpd. */
#ifndef RYOT_TASKS_SERVICE_H
#define RYOT_TASKS_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "sched/stats.h"
#include "tasks/queue.h"

typedef struct tasks_service tasks_service;

/* Runs a request: returns the HTTP status, *json the malloc'd response body. */
typedef int (*tasks_exec_fn)(void *ctx, const char *endpoint, const char *body, size_t len, int tier, char **json);

typedef struct tasks_params {
    int workers;            /* tasks run at once by this instance (default 4; 0 = submit only) */
    int max_attempts;       /* deliveries before the dead-letter list (default 3) */
    const char *const *callback_allow; /* hosts a callback_url may name besides loopback */
    int n_callback_allow;
    int max_batch_lines;    /* lines of one batch input file (default 50000) */
} tasks_params;

/* Takes q over (freed with the service). */
ryot_status tasks_service_new(const tasks_params *p, task_queue *q, tasks_exec_fn exec, void *ctx, tasks_service **out,
                              ryot_error *err);
/* Starts the workers and the heartbeat. */
ryot_status tasks_service_start(tasks_service *s, ryot_error *err);
/* Workers stop claiming (returns at once; a server then drains its runner). */
void tasks_service_quiesce(tasks_service *s);
/* Workers stop claiming; those running a task finish it (or leave it for
 * redelivery when the server is draining).  Joins them. */
void tasks_service_stop(tasks_service *s);
void tasks_service_free(tasks_service *s);
task_queue *tasks_service_queue(tasks_service *s);

typedef struct tasks_stats {
    uint64_t submitted;   /* tasks accepted by POST /v1/tasks */
    uint64_t batch_lines; /* requests queued by POST /v1/batches */
    uint64_t completed, failed, dead, retried, duplicates, callbacks_ok, callbacks_failed;
    int running;
    sched_hist wait; /* queued -> a worker started it (seconds), tasks and batch lines run by this instance */
    sched_hist run;  /* started -> its response was ready */
} tasks_stats;
void tasks_service_stats(tasks_service *s, tasks_stats *out);

/* A multipart upload's fields (POST /v1/files). */
typedef struct tasks_upload {
    const char *purpose;   /* NULL when absent */
    const char *filename;  /* NULL when absent */
    const char *data;      /* the file part; NULL when absent */
    size_t len;
    bool bad;              /* the body was not multipart/form-data or did not parse */
} tasks_upload;

typedef struct tasks_reply {
    int status;
    char *body;                /* malloc'd */
    size_t len;
    const char *content_type;  /* static */
} tasks_reply;

/* Whether path is one of this module's routes (/v1/tasks, /v1/files, /v1/batches and below). */
bool tasks_route(const char *path);
/* Serves one request: method, path (no query), the query's "after" and
 * "limit" (NULL when absent), the body, and for POST /v1/files the upload. */
void tasks_handle(tasks_service *s, const char *method, const char *path, const char *after, const char *limit,
                  const char *body, size_t len, const tasks_upload *up, tasks_reply *out);

#endif
