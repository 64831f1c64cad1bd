/* The OpenAI Batch API over the task queue (service.h): /v1/files (JSONL
 * input files, validated line by line; output and error files) and
 * /v1/batches (create, retrieve, cancel, list).
 *
 * Stored (task_kv_*): "file:<id>" the file object, "filedata:<id>" its
 * bytes, "batch:<id>" the batch object, counters "batch:<id>:ok" / ":fail"
 * / ":skip" (requests answered 200 / answered otherwise / never run:
 * cancelled, expired), and "batch:<id>:stop" ("cancelled" or "expired")
 * that stops its remaining lines.  Indexes "files" and "batches" list them
 * newest first (ids sort by creation time).
 *
 * Status machine: validating (every line's url and body are checked as
 * the endpoint would; any bad line: failed, with errors.data naming each
 * line) -> in_progress (every line queued as a task "<batch>-<n>" at the
 * background tier, all or none: a full queue is failed with code
 * queue_full and a 429) -> finalizing (once every line has a result: the
 * output and error files are written in input order) -> completed, or
 * cancelled after a cancel (cancelling meanwhile), or expired when
 * completion_window passed first.  Whoever sees the last result (the
 * worker that stored it, or a GET) finalizes; a second finalizer writes
 * the same files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "sched/sched.h"
#include "tasks/service_impl.h"

#define MAX_LINE_ERRORS 100
#define MAX_CUSTOM_ID 512

/* ------------------------------------------------------------------ JSONL */

/* Calls fn for each non-blank line: its 1-based line number, its ordinal
 * among non-blank lines, the text (CR stripped).  Stops when fn returns false. */
typedef bool (*line_fn)(void *arg, int lineno, int ordinal, const char *text, size_t len);
static void each_line(const char *data, size_t len, line_fn fn, void *arg) {
    int lineno = 0, ord = 0;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(data + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (data + off)) : len - off;
        const char *t = data + off;
        off += n + (nl ? 1 : 0);
        lineno++;
        if (n && t[n - 1] == '\r') n--;
        size_t k = 0;
        while (k < n && (t[k] == ' ' || t[k] == '\t')) k++;
        if (k == n) continue;
        if (!fn(arg, lineno, ord++, t, n)) return;
    }
}

typedef struct line_check {
    json_t *seen;   /* custom ids */
    json_t *errors; /* [{line, message, param}] */
    int n_errors, n_lines, max_lines;
    const char *endpoint; /* batch creation: each line's url must be it, and its body must parse */
    tasks_service *s;
} line_check;

static void line_error(line_check *c, int lineno, const char *param, const char *msg) {
    if (++c->n_errors > MAX_LINE_ERRORS) return;
    json_array_append_new(c->errors, json_pack("{s:s,s:s,s:s?,s:i}", "code", "invalid_request", "message", msg, "param",
                                               param, "line", lineno));
}

static bool check_line(void *arg, int lineno, int ordinal, const char *text, size_t len) {
    (void)ordinal;
    line_check *c = arg;
    if (++c->n_lines > c->max_lines) return false;
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    char msg[400];
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "line %d is not a JSON object%s%s", lineno, o ? "" : ": ", o ? "" : je.text);
        line_error(c, lineno, NULL, msg);
        json_decref(o);
        return true;
    }
    const json_t *cid = json_object_get(o, "custom_id"), *method = json_object_get(o, "method"),
                 *url = json_object_get(o, "url"), *body = json_object_get(o, "body");
    if (!json_is_string(cid) || !json_string_length(cid) || json_string_length(cid) > MAX_CUSTOM_ID) {
        snprintf(msg, sizeof msg, "line %d: 'custom_id' must be a non-empty string of at most %d bytes", lineno,
                 MAX_CUSTOM_ID);
        line_error(c, lineno, "custom_id", msg);
    } else if (json_object_get(c->seen, json_string_value(cid))) {
        snprintf(msg, sizeof msg, "line %d: 'custom_id' \"%.100s\" is used by an earlier line (they must be unique)",
                 lineno, json_string_value(cid));
        line_error(c, lineno, "custom_id", msg);
    } else if (!json_is_string(method) || strcmp(json_string_value(method), "POST")) {
        snprintf(msg, sizeof msg, "line %d: 'method' must be \"POST\"", lineno);
        line_error(c, lineno, "method", msg);
    } else if (!json_is_string(url) || !tasks_endpoint_ok(json_string_value(url))) {
        snprintf(msg, sizeof msg, "line %d: 'url' must be /v1/chat/completions, /v1/completions or /v1/embeddings",
                 lineno);
        line_error(c, lineno, "url", msg);
    } else if (!json_is_object(body)) {
        snprintf(msg, sizeof msg, "line %d: 'body' must be a JSON object", lineno);
        line_error(c, lineno, "body", msg);
    } else if (c->endpoint && strcmp(json_string_value(url), c->endpoint)) {
        snprintf(msg, sizeof msg, "line %d: 'url' %.60s does not match the batch's endpoint %.60s", lineno,
                 json_string_value(url), c->endpoint);
        line_error(c, lineno, "url", msg);
    } else {
        srv_error e;
        if (c->endpoint && tasks_validate_body(c->endpoint, body, &e)) {
            snprintf(msg, sizeof msg, "line %d: %s", lineno, e.message);
            line_error(c, lineno, e.param, msg);
        }
        json_object_set_new(c->seen, json_string_value(cid), json_true());
    }
    json_decref(o);
    return true;
}

/* ------------------------------------------------------------------ files */

static json_t *file_meta(tasks_service *s, const char *id) {
    char key[TASK_ID_MAX + 8];
    if (strlen(id) >= TASK_ID_MAX) return NULL;
    snprintf(key, sizeof key, "file:%s", id);
    return tasks_kv_json(s->q, key);
}

/* Stores a file (meta + bytes) under id; the meta returned (NULL: failed, *err). */
static json_t *file_store(tasks_service *s, const char *id, const char *filename, const char *purpose, const char *data,
                          size_t len, ryot_error *err) {
    char key[TASK_ID_MAX + 16];
    snprintf(key, sizeof key, "filedata:%s", id);
    if (task_kv_put(s->q, key, data ? data : "", len, false, NULL, err)) return NULL;
    json_t *m = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:n,s:n}", "id", id, "object", "file", "bytes", (json_int_t)len,
                          "created_at", (json_int_t)(ryot_wall_ms() / 1000), "filename", filename, "purpose", purpose,
                          "status", "processed", "status_details", "expires_at");
    snprintf(key, sizeof key, "file:%s", id);
    if (!m || tasks_kv_put_json(s->q, key, m, err) || task_index_add(s->q, "files", id, err)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static void list_reply(tasks_service *s, const char *index, const char *after, const char *limit_s,
                       json_t *(*load)(tasks_service *, const char *), tasks_reply *out) {
    long limit = 20;
    if (limit_s) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (end == limit_s || *end || limit < 1 || limit > 100) {
            tasks_reply_err(out, 400, "limit", NULL, "'limit' must be an integer in 1..100");
            return;
        }
    }
    if (after && strlen(after) >= TASK_ID_MAX) {
        tasks_reply_err(out, 400, "after", NULL, "'after' is not an id");
        return;
    }
    char **ids;
    int n;
    bool more;
    ryot_error err = {0};
    if (task_index_list(s->q, index, after, (int)limit, &ids, &n, &more, &err)) {
        tasks_reply_queue_error(out, &err);
        return;
    }
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = load(s, ids[i]);
        if (o) json_array_append_new(data, o);
    }
    json_t *r = json_pack("{s:s,s:o,s:b}", "object", "list", "data", data, "has_more", more);
    const size_t nd = json_array_size(data);
    json_object_set_new(r, "first_id", nd ? json_incref(json_object_get(json_array_get(data, 0), "id")) : json_null());
    json_object_set_new(r, "last_id", nd ? json_incref(json_object_get(json_array_get(data, nd - 1), "id")) : json_null());
    task_index_list_free(ids, n);
    tasks_reply_json(out, 200, r);
}

static void files_create(tasks_service *s, const tasks_upload *up, tasks_reply *out) {
    if (!up || up->bad) {
        tasks_reply_err(out, 400, NULL, NULL, "POST /v1/files takes multipart/form-data with fields 'purpose' and 'file'");
        return;
    }
    if (!up->purpose) {
        tasks_reply_err(out, 400, "purpose", NULL, "'purpose' is required (\"batch\")");
        return;
    }
    if (strcmp(up->purpose, "batch")) {
        tasks_reply_err(out, 400, "purpose", NULL, "'purpose' must be \"batch\" (the only purpose ryot stores), got \"%.40s\"",
                        up->purpose);
        return;
    }
    if (!up->data) {
        tasks_reply_err(out, 400, "file", NULL, "'file' (the JSONL input) is required");
        return;
    }
    line_check c = {.seen = json_object(), .errors = json_array(), .max_lines = s->p.max_batch_lines, .s = s};
    each_line(up->data, up->len, check_line, &c);
    json_decref(c.seen);
    if (c.n_lines > c.max_lines || c.n_errors || c.n_lines == 0) {
        char msg[1200];
        size_t off = 0;
        if (c.n_lines > c.max_lines)
            off += (size_t)snprintf(msg, sizeof msg, "the file has more than %d requests", c.max_lines);
        else if (!c.n_lines) off += (size_t)snprintf(msg, sizeof msg, "the file holds no requests (one JSON object a line)");
        else
            off += (size_t)snprintf(msg, sizeof msg, "%d invalid line%s: ", c.n_errors, c.n_errors == 1 ? "" : "s");
        for (size_t i = 0; i < json_array_size(c.errors) && i < 5 && off < sizeof msg - 2; i++)
            off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%s", i ? "; " : "",
                                    json_string_value(json_object_get(json_array_get(c.errors, i), "message")));
        json_decref(c.errors);
        tasks_reply_err(out, 400, "file", "invalid_file", "%s", msg);
        return;
    }
    json_decref(c.errors);
    char id[TASK_ID_MAX];
    tasks_make_id(id, sizeof id, "file-");
    ryot_error err = {0};
    json_t *m = file_store(s, id, up->filename ? up->filename : "input.jsonl", "batch", up->data, up->len, &err);
    if (!m) {
        tasks_reply_queue_error(out, &err);
        return;
    }
    tasks_reply_json(out, 200, m);
}

void tasks_files_handle(tasks_service *s, const char *method, const char *path, const char *after, const char *limit,
                        const tasks_upload *up, tasks_reply *out) {
    const char *rest = path + 9; /* after /v1/files */
    if (!*rest) {
        if (!strcmp(method, "POST")) files_create(s, up, out);
        else if (!strcmp(method, "GET")) list_reply(s, "files", after, limit, file_meta, out);
        else tasks_reply_err(out, 405, NULL, NULL, "%.16s is not allowed on /v1/files (use GET or POST)", method);
        return;
    }
    char id[TASK_ID_MAX];
    const char *slash = strchr(rest + 1, '/');
    const size_t il = slash ? (size_t)(slash - rest - 1) : strlen(rest + 1);
    const bool content = slash && !strcmp(slash, "/content");
    if (*rest != '/' || il == 0 || il >= sizeof id || (slash && !content)) {
        tasks_reply_err(out, 404, NULL, "not_found", "unknown route %.120s %.16s", path, method);
        return;
    }
    memcpy(id, rest + 1, il);
    id[il] = 0;
    if (strcmp(method, "GET")) {
        tasks_reply_err(out, 405, NULL, NULL, "%.16s is not allowed on %.120s (use GET)", method, path);
        return;
    }
    json_t *m = file_meta(s, id);
    if (!m) {
        tasks_reply_err(out, 404, NULL, "not_found", "no file '%.100s'", id);
        return;
    }
    if (!content) {
        tasks_reply_json(out, 200, m);
        return;
    }
    json_decref(m);
    char key[TASK_ID_MAX + 16];
    snprintf(key, sizeof key, "filedata:%s", id);
    char *data = NULL;
    size_t len = 0;
    ryot_error err = {0};
    const int r = task_kv_get(s->q, key, &data, &len, &err);
    if (r <= 0) {
        if (r < 0) tasks_reply_queue_error(out, &err);
        else tasks_reply_err(out, 404, NULL, "not_found", "the content of file '%.100s' is gone", id);
        return;
    }
    out->status = 200;
    out->body = data;
    out->len = len;
    out->content_type = "application/jsonl";
}

/* ------------------------------------------------------------------ batches */

static void batch_key(char *key, size_t n, const char *id, const char *suffix) {
    snprintf(key, n, "batch:%s%s", id, suffix);
}

static int64_t counter(tasks_service *s, const char *id, const char *suffix) {
    char key[TASK_ID_MAX + 16];
    batch_key(key, sizeof key, id, suffix);
    int64_t v = 0;
    ryot_error err = {0};
    task_kv_counter(s->q, key, &v, &err);
    return v;
}

static char *stop_flag(tasks_service *s, const char *id) {
    char key[TASK_ID_MAX + 16];
    batch_key(key, sizeof key, id, ":stop");
    char *v = NULL;
    size_t n = 0;
    ryot_error err = {0};
    return task_kv_get(s->q, key, &v, &n, &err) == 1 ? v : NULL;
}

static void set_stop(tasks_service *s, const char *id, const char *why) {
    char key[TASK_ID_MAX + 16];
    batch_key(key, sizeof key, id, ":stop");
    ryot_error err = {0};
    task_kv_put(s->q, key, why, strlen(why), true, NULL, &err);
}

const char *tasks_batch_stopped(tasks_service *s, const char *batch_id, int64_t expires_ms) {
    char *f = stop_flag(s, batch_id);
    const char *r = NULL;
    if (f) r = !strcmp(f, "expired") ? "expired" : "cancelled";
    free(f);
    if (!r && expires_ms > 0 && ryot_wall_ms() >= expires_ms) {
        set_stop(s, batch_id, "expired");
        char *g = stop_flag(s, batch_id); /* a cancel may have won */
        r = g && !strcmp(g, "cancelled") ? "cancelled" : "expired";
        free(g);
    }
    return r;
}

static void save_batch(tasks_service *s, const json_t *b) {
    char key[TASK_ID_MAX + 16];
    batch_key(key, sizeof key, json_string_value(json_object_get(b, "id")), "");
    ryot_error err = {0};
    tasks_kv_put_json(s->q, key, b, &err);
}

static void set_now(json_t *b, const char *field) { json_object_set_new(b, field, json_integer(ryot_wall_ms() / 1000)); }

typedef struct finalize_ctx {
    tasks_service *s;
    const char *id;
    ryot_buf out, errs;
    int n_out, n_err;
    bool unreadable; /* a result could not be read (queue error): finalize later */
} finalize_ctx;

static void append_line(ryot_buf *b, json_t *line) {
    char *t = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (!t) return;
    ryot_buf_append(b, t, strlen(t));
    ryot_buf_append(b, "\n", 1);
    free(t);
}

static bool finalize_line(void *arg, int lineno, int ordinal, const char *text, size_t len) {
    (void)lineno;
    finalize_ctx *f = arg;
    json_t *in = json_loadb(text, len, 0, NULL);
    const char *cid = json_string_value(json_object_get(in, "custom_id"));
    char tid[TASK_ID_MAX], rid[TASK_ID_MAX + 16];
    snprintf(tid, sizeof tid, "%s-%d", f->id, ordinal);
    snprintf(rid, sizeof rid, "batch_req_%s", tid);
    char *v = NULL;
    size_t n = 0;
    ryot_error err = {0};
    const int got = task_queue_result(f->s->q, tid, &v, &n, &err);
    json_t *res = got == 1 ? json_loadb(v, n, 0, NULL) : NULL;
    free(v);
    if (got < 0) {
        f->unreadable = true;
        json_decref(in);
        return false;
    }
    const json_t *e = json_object_get(res, "error");
    const int code = (int)json_integer_value(json_object_get(res, "status_code"));
    if (!res) {
        append_line(&f->errs, json_pack("{s:s,s:s?,s:n,s:{s:s,s:s}}", "id", rid, "custom_id", cid, "response", "error",
                                        "code", "missing", "message", "the request has no result"));
        f->n_err++;
    } else if (e && !json_is_null(e)) {
        append_line(&f->errs, json_pack("{s:s,s:s?,s:n,s:O}", "id", rid, "custom_id", cid, "response", "error", e));
        f->n_err++;
    } else {
        json_t *line = json_pack("{s:s,s:s?,s:{s:i,s:s,s:O},s:n}", "id", rid, "custom_id", cid, "response",
                                 "status_code", code, "request_id", tid, "body",
                                 json_object_get(res, "body") ? json_object_get(res, "body") : json_null(), "error");
        if (code == 200) {
            append_line(&f->out, line);
            f->n_out++;
        } else {
            append_line(&f->errs, line);
            f->n_err++;
        }
    }
    json_decref(res);
    json_decref(in);
    return true;
}

/* Every line has a result: write the files, set the final status. */
static void finalize(tasks_service *s, json_t *b) {
    const char *id = json_string_value(json_object_get(b, "id"));
    const bool cancelling = !strcmp(json_string_value(json_object_get(b, "status")), "cancelling");
    char key[TASK_ID_MAX + 16];
    snprintf(key, sizeof key, "filedata:%s", json_string_value(json_object_get(b, "input_file_id")));
    char *data = NULL;
    size_t len = 0;
    ryot_error err = {0};
    /* The input is read first: when the queue cannot answer (Redis down or
     * still loading its AOF after a restart) the batch stays as it is and a
     * later load finalizes it, rather than ending "completed" without its
     * output file. */
    const int got = task_kv_get(s->q, key, &data, &len, &err);
    if (got < 0) return;
    json_object_set_new(b, "status", json_string("finalizing"));
    set_now(b, "finalizing_at");
    save_batch(s, b);
    finalize_ctx f = {.s = s, .id = id};
    if (got == 1) each_line(data, len, finalize_line, &f);
    free(data);
    char fid[TASK_ID_MAX], fname[TASK_ID_MAX + 32];
    bool stored = !f.unreadable;
    if (stored && f.n_out) {
        snprintf(fid, sizeof fid, "file-%s-output", id);
        snprintf(fname, sizeof fname, "%s_output.jsonl", id);
        json_t *m = file_store(s, fid, fname, "batch_output", f.out.data, f.out.len, &err);
        json_object_set_new(b, "output_file_id", m ? json_string(fid) : json_null());
        stored = m != NULL;
        json_decref(m);
    }
    if (stored && f.n_err) {
        snprintf(fid, sizeof fid, "file-%s-errors", id);
        snprintf(fname, sizeof fname, "%s_error.jsonl", id);
        json_t *m = file_store(s, fid, fname, "batch_output", f.errs.data, f.errs.len, &err);
        json_object_set_new(b, "error_file_id", m ? json_string(fid) : json_null());
        stored = m != NULL;
        json_decref(m);
    }
    ryot_buf_free(&f.out);
    ryot_buf_free(&f.errs);
    if (!stored) return; /* stays "finalizing": the next load of the batch tries again */
    char *stop = stop_flag(s, id);
    const char *final = cancelling || (stop && !strcmp(stop, "cancelled")) ? "cancelled"
                        : stop && !strcmp(stop, "expired")                 ? "expired"
                                                                           : "completed";
    free(stop);
    json_object_set_new(b, "status", json_string(final));
    set_now(b, !strcmp(final, "cancelled") ? "cancelled_at" : !strcmp(final, "expired") ? "expired_at" : "completed_at");
    save_batch(s, b);
}

/* The batch object with live request_counts; finalizes a finished one. */
static json_t *batch_load(tasks_service *s, const char *id) {
    char key[TASK_ID_MAX + 16];
    if (strlen(id) >= TASK_ID_MAX - 16) return NULL;
    batch_key(key, sizeof key, id, "");
    json_t *b = tasks_kv_json(s->q, key);
    if (!b) return NULL;
    const char *st = json_string_value(json_object_get(b, "status"));
    if (!st || (strcmp(st, "in_progress") && strcmp(st, "cancelling") && strcmp(st, "finalizing"))) return b;
    json_t *rc = json_object_get(b, "request_counts");
    const int64_t total = json_integer_value(json_object_get(rc, "total"));
    const int64_t ok = counter(s, id, ":ok"), fail = counter(s, id, ":fail"), skip = counter(s, id, ":skip");
    json_object_set_new(rc, "completed", json_integer(ok));
    json_object_set_new(rc, "failed", json_integer(fail));
    if (!strcmp(st, "in_progress") && ryot_wall_ms() / 1000 >= json_integer_value(json_object_get(b, "expires_at")))
        set_stop(s, id, "expired"); /* lines not yet run are skipped as they come */
    if (ok + fail + skip >= total) finalize(s, b);
    return b;
}

void tasks_batch_progress(tasks_service *s, const char *batch_id) {
    if (counter(s, batch_id, ":ok") + counter(s, batch_id, ":fail") + counter(s, batch_id, ":skip") <
        counter(s, batch_id, ":total"))
        return;
    json_decref(batch_load(s, batch_id));
}

/* "24h", "90m", "30s" -> seconds (ryot takes any; OpenAI only 24h); -1 when malformed. */
static long window_s(const char *w) {
    char *end;
    long n = strtol(w, &end, 10);
    if (end == w || n <= 0 || n > 1000000 || strlen(end) != 1) return -1;
    switch (*end) {
    case 'h': return n * 3600;
    case 'm': return n * 60;
    case 's': return n;
    default: return -1;
    }
}

typedef struct push_ctx {
    const char *id, *endpoint;
    int64_t expires_ms;
    char **ids, **bodies;
    size_t *lens;
    int n;
} push_ctx;

static bool push_line(void *arg, int lineno, int ordinal, const char *text, size_t len) {
    push_ctx *p = arg;
    json_t *in = json_loadb(text, len, 0, NULL);
    json_t *m = json_pack("{s:s,s:s,s:O,s:i,s:s,s:i,s:i,s:O,s:I}", "kind", "batch", "endpoint", p->endpoint, "body",
                          json_object_get(in, "body"), "tier", SCHED_BACKGROUND, "batch_id", p->id, "line", lineno,
                          "ordinal", ordinal, "custom_id", json_object_get(in, "custom_id"), "expires_ms",
                          (json_int_t)p->expires_ms);
    json_decref(in);
    char tid[TASK_ID_MAX];
    snprintf(tid, sizeof tid, "%s-%d", p->id, ordinal);
    p->ids[p->n] = strdup(tid);
    p->bodies[p->n] = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    p->lens[p->n] = p->bodies[p->n] ? strlen(p->bodies[p->n]) : 0;
    p->n++;
    return p->ids[p->n - 1] && p->bodies[p->n - 1];
}

static void batches_create(tasks_service *s, const char *body, size_t len, tasks_reply *out) {
    json_error_t je;
    json_t *in = json_loadb(body, len, 0, &je);
    if (!json_is_object(in)) {
        json_decref(in);
        tasks_reply_err(out, 400, NULL, NULL, "the body must be a JSON object: %s", in ? "not an object" : je.text);
        return;
    }
    const char *fid = json_string_value(json_object_get(in, "input_file_id"));
    const char *ep = json_string_value(json_object_get(in, "endpoint"));
    const char *win = json_string_value(json_object_get(in, "completion_window"));
    const json_t *md = json_object_get(in, "metadata");
    json_t *fm = fid ? file_meta(s, fid) : NULL;
    long wsec = win ? window_s(win) : -1;
    if (!fid) tasks_reply_err(out, 400, "input_file_id", NULL, "'input_file_id' (a file id) is required");
    else if (!tasks_endpoint_ok(ep))
        tasks_reply_err(out, 400, "endpoint", NULL, "'endpoint' must be /v1/chat/completions, /v1/completions or /v1/embeddings");
    else if (wsec < 0)
        tasks_reply_err(out, 400, "completion_window", NULL, "'completion_window' must be \"24h\" (or N followed by h, m or s)");
    else if (md && !json_is_null(md) && !json_is_object(md))
        tasks_reply_err(out, 400, "metadata", NULL, "'metadata' must be an object");
    else if (!fm) tasks_reply_err(out, 404, "input_file_id", "not_found", "no file '%.100s'", fid);
    else if (strcmp(json_string_value(json_object_get(fm, "purpose")), "batch"))
        tasks_reply_err(out, 400, "input_file_id", NULL, "file '%.100s' is not a batch input (purpose \"batch\")", fid);
    if (out->body) {
        json_decref(fm);
        json_decref(in);
        return;
    }
    json_decref(fm);
    char id[TASK_ID_MAX];
    tasks_make_id(id, sizeof id, "batch_");
    const int64_t now = ryot_wall_ms() / 1000;
    json_t *b = json_pack("{s:s,s:s,s:s,s:n,s:s,s:s,s:s,s:n,s:n,s:I,s:n,s:I,s:n,s:n,s:n,s:n,s:n,s:n,s:{s:i,s:i,s:i}}",
                          "id", id, "object", "batch", "endpoint", ep, "errors", "input_file_id", fid,
                          "completion_window", win, "status", "validating", "output_file_id", "error_file_id",
                          "created_at", (json_int_t)now, "in_progress_at", "expires_at", (json_int_t)(now + wsec),
                          "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at",
                          "request_counts", "total", 0, "completed", 0, "failed", 0);
    json_object_set(b, "metadata", md ? (json_t *)md : json_null());
    /* fid and ep point into in: keep copies, in goes now */
    char fid_buf[TASK_ID_MAX], ep_buf[32];
    snprintf(fid_buf, sizeof fid_buf, "%s", fid);
    snprintf(ep_buf, sizeof ep_buf, "%s", ep);
    fid = fid_buf;
    ep = ep_buf;
    json_decref(in);
    ryot_error err = {0};
    save_batch(s, b);
    task_index_add(s->q, "batches", id, &err);
    /* validating: every line against the endpoint */
    char key[TASK_ID_MAX + 16];
    snprintf(key, sizeof key, "filedata:%s", fid);
    char *data = NULL;
    size_t dlen = 0;
    if (task_kv_get(s->q, key, &data, &dlen, &err) != 1) {
        json_decref(b);
        tasks_reply_err(out, 404, "input_file_id", "not_found", "the content of file '%.100s' is gone", fid);
        return;
    }
    line_check c = {.seen = json_object(), .errors = json_array(), .max_lines = s->p.max_batch_lines, .endpoint = ep,
                    .s = s};
    each_line(data, dlen, check_line, &c);
    json_decref(c.seen);
    json_object_set_new(json_object_get(b, "request_counts"), "total", json_integer(c.n_lines));
    if (c.n_errors || c.n_lines == 0 || c.n_lines > c.max_lines) {
        if (!c.n_errors)
            json_array_append_new(c.errors, json_pack("{s:s,s:s,s:n,s:n}", "code", "invalid_file", "message",
                                                      c.n_lines ? "too many requests" : "the file holds no requests",
                                                      "param", "line"));
        json_object_set_new(b, "errors", json_pack("{s:s,s:o}", "object", "list", "data", c.errors));
        json_object_set_new(b, "status", json_string("failed"));
        set_now(b, "failed_at");
        save_batch(s, b);
        free(data);
        tasks_reply_json(out, 200, b);
        return;
    }
    json_decref(c.errors);
    push_ctx p = {.id = id, .endpoint = ep, .expires_ms = (now + wsec) * 1000};
    p.ids = calloc((size_t)c.n_lines, sizeof *p.ids);
    p.bodies = calloc((size_t)c.n_lines, sizeof *p.bodies);
    p.lens = calloc((size_t)c.n_lines, sizeof *p.lens);
    ryot_status st = p.ids && p.bodies && p.lens ? RYOT_OK : ryot_fail(&err, RYOT_ERR_NOMEM, "out of memory");
    if (!st) each_line(data, dlen, push_line, &p);
    free(data);
    if (!st && p.n != c.n_lines) st = ryot_fail(&err, RYOT_ERR_NOMEM, "out of memory");
    /* the line total first: a worker finishing the last line compares against it */
    batch_key(key, sizeof key, id, ":total");
    char tot[24];
    snprintf(tot, sizeof tot, "%d", c.n_lines);
    if (!st) st = task_kv_put(s->q, key, tot, strlen(tot), false, NULL, &err);
    json_object_set_new(b, "status", json_string("in_progress"));
    set_now(b, "in_progress_at");
    if (!st) save_batch(s, b);
    if (!st)
        st = task_queue_push(s->q, p.n, (const char *const *)p.ids, SCHED_BACKGROUND, (const char *const *)p.bodies,
                             p.lens, &err);
    if (!st) {
        pthread_mutex_lock(&s->mu);
        s->st.batch_lines += (uint64_t)p.n;
        pthread_mutex_unlock(&s->mu);
    }
    for (int i = 0; i < p.n; i++) {
        free(p.ids[i]);
        free(p.bodies[i]);
    }
    free(p.ids);
    free(p.bodies);
    free(p.lens);
    if (st) {
        json_object_set_new(b, "status", json_string("failed"));
        json_object_set_new(b, "in_progress_at", json_null());
        set_now(b, "failed_at");
        json_object_set_new(b, "errors", json_pack("{s:s,s:[{s:s,s:s,s:n,s:n}]}", "object", "list", "data", "code",
                                                   st == RYOT_ERR_BUSY ? "queue_full" : "queue_unavailable", "message",
                                                   err.msg, "param", "line"));
        save_batch(s, b);
        json_decref(b);
        tasks_reply_queue_error(out, &err);
        return;
    }
    tasks_reply_json(out, 200, b);
}

static void batches_cancel(tasks_service *s, const char *id, tasks_reply *out) {
    json_t *b = batch_load(s, id);
    if (!b) {
        tasks_reply_err(out, 404, NULL, "not_found", "no batch '%.100s'", id);
        return;
    }
    const char *st = json_string_value(json_object_get(b, "status"));
    if (!strcmp(st, "cancelling") || !strcmp(st, "cancelled")) {
        tasks_reply_json(out, 200, b);
        return;
    }
    if (strcmp(st, "in_progress") && strcmp(st, "validating")) {
        tasks_reply_err(out, 409, NULL, "batch_not_cancellable", "batch '%.100s' is %s: it cannot be cancelled", id, st);
        json_decref(b);
        return;
    }
    set_stop(s, id, "cancelled");
    json_object_set_new(b, "status", json_string("cancelling"));
    set_now(b, "cancelling_at");
    save_batch(s, b);
    json_decref(b);
    b = batch_load(s, id); /* done already when nothing was left to run */
    tasks_reply_json(out, 200, b);
}

void tasks_batches_handle(tasks_service *s, const char *method, const char *path, const char *after, const char *limit,
                          const char *body, size_t len, tasks_reply *out) {
    const char *rest = path + 11; /* after /v1/batches */
    if (!*rest) {
        if (!strcmp(method, "POST")) batches_create(s, body, len, out);
        else if (!strcmp(method, "GET")) list_reply(s, "batches", after, limit, batch_load, out);
        else tasks_reply_err(out, 405, NULL, NULL, "%.16s is not allowed on /v1/batches (use GET or POST)", method);
        return;
    }
    char id[TASK_ID_MAX];
    const char *slash = strchr(rest + 1, '/');
    const size_t il = slash ? (size_t)(slash - rest - 1) : strlen(rest + 1);
    const bool cancel = slash && !strcmp(slash, "/cancel");
    if (*rest != '/' || il == 0 || il >= sizeof id || (slash && !cancel)) {
        tasks_reply_err(out, 404, NULL, "not_found", "unknown route %.120s %.16s", path, method);
        return;
    }
    memcpy(id, rest + 1, il);
    id[il] = 0;
    if (strcmp(method, cancel ? "POST" : "GET")) {
        tasks_reply_err(out, 405, NULL, NULL, "%.16s is not allowed on %.120s (use %s)", method, path,
                        cancel ? "POST" : "GET");
        return;
    }
    if (cancel) {
        batches_cancel(s, id, out);
        return;
    }
    json_t *b = batch_load(s, id);
    if (!b) tasks_reply_err(out, 404, NULL, "not_found", "no batch '%.100s'", id);
    else tasks_reply_json(out, 200, b);
}
