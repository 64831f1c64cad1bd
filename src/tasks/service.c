/* The task service (service.h): workers, heartbeat, POST/GET /v1/tasks.
 *
 * A queued message is JSON: {"kind": "task" | "batch", "endpoint", "body"
 * (the request object), "tier", "created_ms", and for tasks
 * "callback_url", for batch lines "batch_id", "line", "expires_ms"}.  A
 * result is JSON: {"status_code", "body" (the response or error object),
 * "error" (null, or {"code", "message"} when the request never ran:
 * cancelled, expired, max_attempts), "started_ms", "finished_ms",
 * "worker", "attempt"}. */
#include "tasks/service_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/clock.h"
#include "sched/sched.h"
#include "server/openai.h"

#define CLAIM_WAIT_MS 500
#define EXEC_TRIES 4

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void tasks_make_id(char *buf, size_t n, const char *prefix) {
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        const uint64_t x = (uint64_t)ryot_now_ns() * 0x9E3779B97F4A7C15ull;
        memcpy(r, &x, sizeof r);
    }
    snprintf(buf, n, "%s%012llx%02x%02x%02x%02x%02x%02x%02x%02x", prefix, (unsigned long long)ryot_wall_ms(), r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

/* ------------------------------------------------------------------ replies */

void tasks_reply_json(tasks_reply *r, int status, json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!s) {
        srv_error e;
        srv_error_set(&e, 503, NULL, "out of memory");
        tasks_reply_error(r, &e);
        return;
    }
    r->status = status;
    r->body = s;
    r->len = strlen(s);
    r->content_type = "application/json";
}

void tasks_reply_error(tasks_reply *r, const srv_error *e) {
    r->status = e->status;
    r->body = srv_json_error(e);
    r->len = r->body ? strlen(r->body) : 0;
    r->content_type = "application/json";
}

void tasks_reply_err(tasks_reply *r, int status, const char *param, const char *code, const char *fmt, ...) {
    srv_error e;
    va_list ap;
    va_start(ap, fmt);
    srv_error_setv(&e, status, param, fmt, ap);
    va_end(ap);
    if (code) e.code = code;
    tasks_reply_error(r, &e);
}

void tasks_reply_queue_error(tasks_reply *r, const ryot_error *err) {
    const int status = err->code == RYOT_ERR_BUSY ? 429 : err->code == RYOT_ERR_UNAVAILABLE ? 503 : 500;
    tasks_reply_err(r, status, NULL, status == 429 ? "queue_full" : NULL, "%s", err->msg);
}

/* ------------------------------------------------------------------ helpers */

bool tasks_endpoint_ok(const char *ep) {
    return ep && (!strcmp(ep, "/v1/chat/completions") || !strcmp(ep, "/v1/completions") || !strcmp(ep, "/v1/embeddings"));
}

int tasks_validate_body(const char *endpoint, const json_t *body, srv_error *e) {
    if (!json_is_object(body)) {
        srv_error_set(e, 400, "body", "'body' must be a JSON object (the request of %s)", endpoint);
        return -1;
    }
    if (!strcmp(endpoint, "/v1/embeddings")) {
        if (!json_object_get(body, "input")) {
            srv_error_set(e, 400, "body.input", "an embeddings request needs 'input'");
            return -1;
        }
        return 0;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text) {
        srv_error_set(e, 503, NULL, "out of memory");
        return -1;
    }
    srv_request req;
    srv_error pe;
    const int rc = srv_request_parse(text, strlen(text),
                                     !strcmp(endpoint, "/v1/completions") ? SRV_EP_COMPLETIONS : SRV_EP_CHAT, &req, &pe);
    free(text);
    if (rc) {
        char param[64];
        snprintf(param, sizeof param, "body%s%.58s", pe.param[0] ? "." : "", pe.param);
        srv_error_set(e, pe.status, param, "%s", pe.message);
        return -1;
    }
    const bool stream = req.stream;
    srv_request_free(&req);
    if (stream) {
        srv_error_set(e, 400, "body.stream", "'stream' is not supported in tasks and batches");
        return -1;
    }
    return 0;
}

json_t *tasks_kv_json(task_queue *q, const char *key) {
    char *v = NULL;
    size_t n = 0;
    ryot_error err = {0};
    if (task_kv_get(q, key, &v, &n, &err) != 1) return NULL;
    json_t *j = json_loadb(v, n, 0, NULL);
    free(v);
    return j;
}

ryot_status tasks_kv_put_json(task_queue *q, const char *key, const json_t *v, ryot_error *err) {
    char *s = json_dumps(v, JSON_COMPACT);
    if (!s) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    ryot_status st = task_kv_put(q, key, s, strlen(s), false, NULL, err);
    free(s);
    return st;
}

static json_t *result_json(task_queue *q, const char *id) {
    char *v = NULL;
    size_t n = 0;
    ryot_error err = {0};
    if (task_queue_result(q, id, &v, &n, &err) != 1) return NULL;
    json_t *j = json_loadb(v, n, 0, NULL);
    free(v);
    return j;
}

/* ------------------------------------------------------------------ /v1/tasks */

/* The task object: meta (as stored at submit), its result or its claim. */
static json_t *task_object(tasks_service *s, const char *id, json_t *meta) {
    json_t *o = json_object();
    json_t *res = result_json(s->q, id);
    if (!meta && !res) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string("task"));
    const char *keys[] = {"endpoint", "priority", "created_at", "callback_url", "metadata"};
    for (size_t i = 0; meta && i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(meta, keys[i]);
        json_object_set(o, keys[i], v ? v : json_null());
    }
    const int64_t created_ms = meta ? json_integer_value(json_object_get(meta, "created_ms")) : 0;
    if (res) {
        const int code = (int)json_integer_value(json_object_get(res, "status_code"));
        json_t *err = json_object_get(res, "error");
        const bool ok = code == 200 && (!err || json_is_null(err));
        json_object_set_new(o, "status", json_string(ok ? "completed" : "failed"));
        const int64_t st = json_integer_value(json_object_get(res, "started_ms"));
        const int64_t fin = json_integer_value(json_object_get(res, "finished_ms"));
        json_object_set_new(o, "started_at", st ? json_integer(st / 1000) : json_null());
        json_object_set_new(o, "completed_at", json_integer(fin / 1000));
        json_t *r = json_object();
        json_object_set(r, "status_code", json_object_get(res, "status_code"));
        json_object_set(r, "body", json_object_get(res, "body") ? json_object_get(res, "body") : json_null());
        json_object_set_new(o, "result", r);
        json_object_set(o, "error", err ? err : json_null());
        json_object_set(o, "worker", json_object_get(res, "worker"));
        json_object_set(o, "attempts", json_object_get(res, "attempt"));
        if (created_ms && st)
            json_object_set_new(o, "timings", json_pack("{s:I,s:I}", "queued_ms", (json_int_t)(st - created_ms),
                                                        "run_ms", (json_int_t)(fin - st)));
        json_decref(res);
        return o;
    }
    char key[TASK_ID_MAX + 16];
    snprintf(key, sizeof key, "task:%s:started", id);
    json_t *started = tasks_kv_json(s->q, key);
    json_object_set_new(o, "status", json_string(started ? "in_progress" : "queued"));
    json_object_set_new(o, "started_at", started ? json_integer(json_integer_value(json_object_get(started, "at")) / 1000)
                                                 : json_null());
    json_object_set_new(o, "completed_at", json_null());
    json_object_set_new(o, "result", json_null());
    json_object_set_new(o, "error", json_null());
    if (started) {
        json_object_set(o, "worker", json_object_get(started, "worker"));
        json_object_set(o, "attempts", json_object_get(started, "attempt"));
    }
    json_decref(started);
    return o;
}

static int parse_tier(const json_t *v, int dflt, srv_error *e) {
    if (!v || json_is_null(v)) return dflt;
    int t = -1;
    if (json_is_string(v)) t = sched_tier_parse(json_string_value(v));
    else if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < SCHED_N_TIERS)
        t = (int)json_integer_value(v);
    if (t < 0) srv_error_set(e, 400, "priority", "'priority' must be critical, high, normal, low, background or 0..4");
    return t;
}

static void tasks_create(tasks_service *s, const char *body, size_t len, tasks_reply *out) {
    json_error_t je;
    json_t *in = json_loadb(body, len, 0, &je);
    srv_error e;
    if (!json_is_object(in)) {
        json_decref(in);
        tasks_reply_err(out, 400, NULL, NULL, "the body must be a JSON object: %s", in ? "not an object" : je.text);
        return;
    }
    const json_t *ep = json_object_get(in, "endpoint");
    const char *endpoint = ep ? json_string_value(ep) : "/v1/chat/completions";
    const json_t *rb = json_object_get(in, "body");
    const json_t *cb = json_object_get(in, "callback_url");
    const json_t *md = json_object_get(in, "metadata");
    const int tier = parse_tier(json_object_get(in, "priority"), SCHED_LOW, &e);
    int rc = 0;
    if (!tasks_endpoint_ok(endpoint)) {
        srv_error_set(&e, 400, "endpoint", "'endpoint' must be /v1/chat/completions, /v1/completions or /v1/embeddings");
        rc = -1;
    } else if (!rb) {
        srv_error_set(&e, 400, "body", "'body' (the request to run) is required");
        rc = -1;
    } else if (tier < 0) {
        rc = -1;
    } else if (cb && !json_is_null(cb) && !json_is_string(cb)) {
        srv_error_set(&e, 400, "callback_url", "'callback_url' must be a string");
        rc = -1;
    } else if (md && !json_is_null(md) && !json_is_object(md)) {
        srv_error_set(&e, 400, "metadata", "'metadata' must be an object");
        rc = -1;
    } else {
        rc = tasks_validate_body(endpoint, rb, &e);
    }
    char why[160];
    if (!rc && json_is_string(cb) && !tasks_callback_allowed(json_string_value(cb), s->allow, s->n_allow, why, sizeof why)) {
        srv_error_set(&e, 400, "callback_url", "%s", why);
        rc = -1;
    }
    if (rc) {
        json_decref(in);
        tasks_reply_error(out, &e);
        return;
    }
    char id[TASK_ID_MAX];
    tasks_make_id(id, sizeof id, "task_");
    const int64_t now = ryot_wall_ms();
    json_t *msg = json_pack("{s:s,s:s,s:O,s:i,s:I}", "kind", "task", "endpoint", endpoint, "body", rb, "tier", tier,
                            "created_ms", (json_int_t)now);
    if (msg && json_is_string(cb)) json_object_set(msg, "callback_url", (json_t *)cb);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (!text) {
        json_decref(in);
        tasks_reply_err(out, 503, NULL, NULL, "out of memory");
        return;
    }
    const char *ids[1] = {id}, *bodies[1] = {text};
    const size_t lens[1] = {strlen(text)};
    ryot_error err = {0};
    ryot_status st = task_queue_push(s->q, 1, ids, tier, bodies, lens, &err);
    free(text);
    if (st) {
        json_decref(in);
        tasks_reply_queue_error(out, &err);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->st.submitted++;
    pthread_mutex_unlock(&s->mu);
    /* after the push: a refused task leaves nothing behind */
    json_t *meta = json_pack("{s:s,s:s,s:I,s:I}", "endpoint", endpoint, "priority", sched_tier_name(tier), "created_at",
                             (json_int_t)(now / 1000), "created_ms", (json_int_t)now);
    if (meta && json_is_string(cb)) json_object_set(meta, "callback_url", (json_t *)cb);
    if (meta && json_is_object(md)) json_object_set(meta, "metadata", (json_t *)md);
    char key[TASK_ID_MAX + 8];
    snprintf(key, sizeof key, "task:%s", id);
    if (meta) tasks_kv_put_json(s->q, key, meta, &err);
    json_t *o = task_object(s, id, meta);
    json_decref(meta);
    json_decref(in);
    tasks_reply_json(out, 202, o);
}

static void tasks_get(tasks_service *s, const char *id, tasks_reply *out) {
    char key[TASK_ID_MAX + 8];
    if (strlen(id) >= TASK_ID_MAX) {
        tasks_reply_err(out, 404, NULL, "not_found", "no task '%.100s'", id);
        return;
    }
    snprintf(key, sizeof key, "task:%s", id);
    json_t *meta = tasks_kv_json(s->q, key);
    json_t *o = strncmp(id, "task_", 5) ? NULL : task_object(s, id, meta);
    json_decref(meta);
    if (!o) {
        tasks_reply_err(out, 404, NULL, "not_found", "no task '%.100s'", id);
        return;
    }
    tasks_reply_json(out, 200, o);
}

/* ------------------------------------------------------------------ workers */

static void count(tasks_service *s, uint64_t *field) {
    pthread_mutex_lock(&s->mu);
    (*field)++;
    pthread_mutex_unlock(&s->mu);
}

/* Stores the result, retrying while the queue is unreachable (the result
 * would be lost otherwise; until it is stored the task stays claimed).
 * false when the service stopped first. */
static bool store_result(tasks_service *s, const task_msg *m, json_t *res, const char *count_key, bool dead, bool *first) {
    char *text = json_dumps(res, JSON_COMPACT);
    if (!text) return false;
    bool ok = false;
    for (int i = 0;; i++) {
        ryot_error err = {0};
        ryot_status st = dead ? task_queue_dead(s->q, m, text, strlen(text), count_key, first, &err)
                              : task_queue_complete(s->q, m, text, strlen(text), count_key, first, &err);
        if (!st) {
            ok = true;
            break;
        }
        if (i == 0) fprintf(stderr, "ryot tasks: storing the result of %s: %s (retrying)\n", m->id, err.msg);
        if (atomic_load(&s->stop) && i > 50) break;
        sleep_ms(i < 10 ? 100 : 500);
    }
    free(text);
    return ok;
}

static json_t *skip_result(const tasks_service *s, const task_msg *m, const char *code, const char *msg) {
    const int64_t now = ryot_wall_ms();
    return json_pack("{s:i,s:n,s:{s:s,s:s},s:I,s:I,s:s,s:i}", "status_code", code[0] == 'm' ? 500 : 400, "body", "error",
                     "code", code, "message", msg, "started_ms", (json_int_t)0, "finished_ms", (json_int_t)now,
                     "worker", task_queue_consumer(s->q), "attempt", m->attempt);
}

static void callback(tasks_service *s, const char *id, const char *url) {
    char key[TASK_ID_MAX + 8];
    snprintf(key, sizeof key, "task:%s", id);
    json_t *meta = tasks_kv_json(s->q, key);
    json_t *o = task_object(s, id, meta);
    json_decref(meta);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    const bool ok = text && tasks_callback_post(url, text, strlen(text));
    free(text);
    count(s, ok ? &s->st.callbacks_ok : &s->st.callbacks_failed);
    if (!ok) fprintf(stderr, "ryot tasks: callback for %s to %s failed\n", id, url);
}

static void set_inflight(tasks_service *s, int slot, task_msg *m) {
    pthread_mutex_lock(&s->mu);
    s->inflight[slot] = m;
    s->st.running += m ? 1 : -1;
    pthread_mutex_unlock(&s->mu);
}

static void run_msg(tasks_service *s, int slot, task_msg *m) {
    json_t *msg = json_loadb(m->body, m->len, 0, NULL);
    const char *kind = json_string_value(json_object_get(msg, "kind"));
    const char *endpoint = json_string_value(json_object_get(msg, "endpoint"));
    const char *batch = json_string_value(json_object_get(msg, "batch_id"));
    const char *cb = json_string_value(json_object_get(msg, "callback_url"));
    const json_t *body = json_object_get(msg, "body");
    const int tier = (int)json_integer_value(json_object_get(msg, "tier"));
    const bool is_batch = kind && !strcmp(kind, "batch") && batch;
    const int64_t created = json_integer_value(json_object_get(msg, "created_ms"));
    char ok_key[TASK_ID_MAX + 16], fail_key[TASK_ID_MAX + 16], skip_key[TASK_ID_MAX + 16];
    snprintf(ok_key, sizeof ok_key, "batch:%s:ok", batch ? batch : "");
    snprintf(fail_key, sizeof fail_key, "batch:%s:fail", batch ? batch : "");
    snprintf(skip_key, sizeof skip_key, "batch:%s:skip", batch ? batch : "");
    bool first = false;
    if (!msg || !endpoint || !json_is_object(body) || !kind || tier < 0 || tier >= TASK_TIERS) {
        json_t *r = skip_result(s, m, "max_attempts", "the queued task is malformed");
        store_result(s, m, r, is_batch ? fail_key : NULL, true, &first);
        json_decref(r);
        json_decref(msg);
        count(s, &s->st.dead);
        return;
    }
    if (m->attempt > s->p.max_attempts) {
        char why[160];
        snprintf(why, sizeof why, "the task was delivered %d times without finishing (its workers died or hung)",
                 m->attempt - 1);
        json_t *r = skip_result(s, m, "max_attempts", why);
        store_result(s, m, r, is_batch ? fail_key : NULL, true, &first);
        json_decref(r);
        count(s, &s->st.dead);
        if (first && cb) callback(s, m->id, cb);
        if (first && is_batch) tasks_batch_progress(s, batch);
        json_decref(msg);
        return;
    }
    if (is_batch) {
        const char *why = tasks_batch_stopped(s, batch, json_integer_value(json_object_get(msg, "expires_ms")));
        if (why) {
            json_t *r = skip_result(s, m, !strcmp(why, "expired") ? "batch_expired" : "batch_cancelled",
                                    !strcmp(why, "expired") ? "the batch expired before this request ran"
                                                            : "the batch was cancelled before this request ran");
            store_result(s, m, r, skip_key, false, &first);
            json_decref(r);
            if (first) tasks_batch_progress(s, batch);
            json_decref(msg);
            return;
        }
    } else {
        char key[TASK_ID_MAX + 16];
        snprintf(key, sizeof key, "task:%s:started", m->id);
        json_t *st = json_pack("{s:s,s:I,s:i}", "worker", task_queue_consumer(s->q), "at",
                               (json_int_t)ryot_wall_ms(), "attempt", m->attempt);
        ryot_error err = {0};
        if (st) tasks_kv_put_json(s->q, key, st, &err);
        json_decref(st);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    set_inflight(s, slot, m);
    const int64_t started = ryot_wall_ms();
    int status = 503;
    char *resp = NULL;
    for (int t = 0; text && t < EXEC_TRIES; t++) {
        free(resp);
        resp = NULL;
        status = s->exec(s->ctx, endpoint, text, strlen(text), tier, &resp);
        if ((status != 429 && status != 503) || atomic_load(&s->stop)) break;
        count(s, &s->st.retried);
        sleep_ms(250 << t);
    }
    const int64_t finished = ryot_wall_ms();
    set_inflight(s, slot, NULL);
    free(text);
    if (status == 429 || status == 503) {
        /* refused for now (busy, draining): left claimed, so it is delivered again */
        free(resp);
        json_decref(msg);
        return;
    }
    json_t *rb = resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    json_t *r = json_pack("{s:i,s:o,s:n,s:I,s:I,s:s,s:i}", "status_code", status, "body", rb ? rb : json_null(), "error",
                          "started_ms", (json_int_t)started, "finished_ms", (json_int_t)finished, "worker",
                          task_queue_consumer(s->q), "attempt", m->attempt);
    if (r && store_result(s, m, r, is_batch ? (status == 200 ? ok_key : fail_key) : NULL, false, &first)) {
        pthread_mutex_lock(&s->mu);
        if (!first) {
            s->st.duplicates++;
        } else {
            (*(status == 200 ? &s->st.completed : &s->st.failed))++;
            if (created > 0 && started >= created) sched_hist_observe(&s->st.wait, (double)(started - created) / 1e3);
            sched_hist_observe(&s->st.run, (double)(finished - started) / 1e3);
        }
        pthread_mutex_unlock(&s->mu);
        if (first && cb) callback(s, m->id, cb);
        if (first && is_batch) tasks_batch_progress(s, batch);
    }
    json_decref(r);
    json_decref(msg);
}

typedef struct worker_arg {
    tasks_service *s;
    int slot;
} worker_arg;

static void *worker_main(void *arg) {
    tasks_service *s = ((worker_arg *)arg)->s;
    const int slot = ((worker_arg *)arg)->slot;
    free(arg);
    while (!atomic_load(&s->stop)) {
        task_msg m;
        ryot_error err = {0};
        const int r = task_queue_claim(s->q, CLAIM_WAIT_MS, &m, &err);
        if (r < 0) {
            sleep_ms(200);
            continue;
        }
        if (r == 0) continue;
        run_msg(s, slot, &m);
        task_msg_free(&m);
    }
    return NULL;
}

/* Keeps running tasks' claims alive. */
static void *beat_main(void *arg) {
    tasks_service *s = arg;
    const int64_t period = task_queue_visibility_ms(s->q) / 3 > 0 ? task_queue_visibility_ms(s->q) / 3 : 1;
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->stop) || s->st.running) {
        const struct timespec dl = ryot_deadline_ms(period);
        pthread_cond_timedwait(&s->cv, &s->mu, &dl);
        for (int i = 0; i < s->p.workers; i++)
            if (s->inflight[i]) {
                ryot_error err = {0};
                task_queue_touch(s->q, s->inflight[i], &err);
            }
        if (atomic_load(&s->stop) && !s->st.running) break;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

ryot_status tasks_service_new(const tasks_params *p, task_queue *q, tasks_exec_fn exec, void *ctx, tasks_service **out,
                              ryot_error *err) {
    *out = NULL;
    tasks_service *s = calloc(1, sizeof *s);
    if (!s) {
        task_queue_free(q);
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    s->q = q;
    s->p = *p;
    if (s->p.workers < 0) s->p.workers = 4;
    if (s->p.max_attempts <= 0) s->p.max_attempts = 3;
    if (s->p.max_batch_lines <= 0) s->p.max_batch_lines = 50000;
    s->exec = exec;
    s->ctx = ctx;
    sched_hist_init_latency(&s->st.wait);
    sched_hist_init_latency(&s->st.run);
    atomic_init(&s->stop, false);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->inflight = calloc((size_t)(s->p.workers > 0 ? s->p.workers : 1), sizeof *s->inflight);
    s->allow = calloc((size_t)(p->n_callback_allow > 0 ? p->n_callback_allow : 1), sizeof *s->allow);
    if (!s->inflight || !s->allow) {
        tasks_service_free(s);
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < p->n_callback_allow; i++)
        if ((s->allow[s->n_allow] = strdup(p->callback_allow[i]))) s->n_allow++;
    s->p.callback_allow = NULL;
    s->p.n_callback_allow = 0;
    *out = s;
    return RYOT_OK;
}

ryot_status tasks_service_start(tasks_service *s, ryot_error *err) {
    if (s->p.workers <= 0) return RYOT_OK;
    s->threads = calloc((size_t)s->p.workers, sizeof *s->threads);
    if (!s->threads) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->p.workers; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a) break;
        *a = (worker_arg){s, i};
        if (pthread_create(&s->threads[i], NULL, worker_main, a)) {
            free(a);
            break;
        }
        s->n_threads++;
    }
    if (!pthread_create(&s->beat, NULL, beat_main, s)) s->beat_started = true;
    if (s->n_threads < s->p.workers) return ryot_fail(err, RYOT_ERR_NOMEM, "cannot start the task workers");
    return RYOT_OK;
}

void tasks_service_quiesce(tasks_service *s) {
    if (s) atomic_store(&s->stop, true);
}

void tasks_service_stop(tasks_service *s) {
    if (!s) return;
    atomic_store(&s->stop, true);
    for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i], NULL);
    s->n_threads = 0;
    if (s->beat_started) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->beat, NULL);
        s->beat_started = false;
    }
}

void tasks_service_free(tasks_service *s) {
    if (!s) return;
    tasks_service_stop(s);
    free(s->threads);
    free(s->inflight);
    for (int i = 0; i < s->n_allow; i++) free(s->allow[i]);
    free(s->allow);
    task_queue_free(s->q);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

task_queue *tasks_service_queue(tasks_service *s) { return s->q; }

void tasks_service_stats(tasks_service *s, tasks_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ routing */

bool tasks_route(const char *path) {
    static const char *const roots[] = {"/v1/tasks", "/v1/files", "/v1/batches"};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        const size_t n = strlen(roots[i]);
        if (!strncmp(path, roots[i], n) && (path[n] == 0 || path[n] == '/')) return true;
    }
    return false;
}

void tasks_handle(tasks_service *s, const char *method, const char *path, const char *after, const char *limit,
                  const char *body, size_t len, const tasks_upload *up, tasks_reply *out) {
    memset(out, 0, sizeof *out);
    if (!strncmp(path, "/v1/tasks", 9)) {
        const char *rest = path + 9;
        if (!*rest && !strcmp(method, "POST")) tasks_create(s, body, len, out);
        else if (*rest == '/' && rest[1] && !strchr(rest + 1, '/') && !strcmp(method, "GET")) tasks_get(s, rest + 1, out);
        else if (!*rest || (*rest == '/' && rest[1] && !strchr(rest + 1, '/')))
            tasks_reply_err(out, 405, NULL, NULL, "%.16s is not allowed on %.80s (use %s)", method, path,
                            *rest ? "GET" : "POST");
        else tasks_reply_err(out, 404, NULL, "not_found", "unknown route %.120s %.16s", path, method);
    } else if (!strncmp(path, "/v1/files", 9)) {
        tasks_files_handle(s, method, path, after, limit, up, out);
    } else {
        tasks_batches_handle(s, method, path, after, limit, body, len, out);
    }
    if (!out->body) tasks_reply_err(out, 503, NULL, NULL, "out of memory");
}
