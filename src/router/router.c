/* `ryot route`: the HTTP front, upstream forwarding and probes (see router.h). */
#include "router/router.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "router/prefix.h"
#include "router/register.h"
#include "server/openai.h"
#include "server/request.h"

#define WAIT_SLICE_MS 50      /* how often a waiting transfer checks its client */
#define IDLE_TIMEOUT_S 600u   /* client connection inactivity limit */
#define DISCOVER_PERIOD_S 1.0 /* Redis SCAN period */

struct rt_server {
    rt_server_params p;
    rt_pool *pool;
    struct MHD_Daemon *d;
    int port;
    pthread_t prober;
    bool prober_started;
    pthread_mutex_t mu; /* stop + cv: the probe thread's sleep */
    pthread_cond_t cv;
    bool stop;
    bool discovered[RT_POOL_MAX]; /* added by Redis discovery (not --backend) */
    char redis_host[256];
    int redis_port, redis_db;
};

/* Per client connection (MHD_OPTION_NOTIFY_CONNECTION): the multi handle
 * whose connection cache keeps upstream connections alive across requests. */
typedef struct conn_state {
    CURLM *multi;
} conn_state;

/* Per request. */
typedef struct req_ctx {
    ryot_buf body;
    bool too_large;
} req_ctx;

/* One upstream transfer. */
typedef struct upstream {
    rt_server *s;
    CURLM *m;
    CURL *e;
    struct curl_slist *hdrs;
    int b;            /* backend index */
    int split;        /* canary split (-1: none) and arm */
    bool canary;
    double t_body;    /* first body byte (0: none yet) */
    int fd;           /* the client's socket */
    double t0, t_first;
    int status;
    bool got_any;     /* a header byte came back */
    bool hdr_done;    /* the final status line and its headers are in */
    bool done;
    bool reported;    /* rt_pool_done called */
    CURLcode res;
    char ctype[128], xcache[32], retry_after[16];
    ryot_buf data;    /* body bytes not yet handed to MHD */
    size_t off;
    char curl_err[CURL_ERROR_SIZE];
} upstream;

/* ------------------------------------------------------------------ replies */

static enum MHD_Result reply(struct MHD_Connection *conn, int status, const char *type, char *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, int status, char *json) {
    if (!json) return MHD_NO;
    return reply(conn, status, "application/json", json, strlen(json));
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, const srv_error *e, const char *allow) {
    char *json = srv_json_error(e);
    if (!json) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (e->status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (allow) MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)e->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_err(struct MHD_Connection *conn, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result reply_err(struct MHD_Connection *conn, int status, const char *code, const char *fmt, ...) {
    srv_error e;
    va_list ap;
    va_start(ap, fmt);
    srv_error_setv(&e, status, NULL, fmt, ap);
    va_end(ap);
    if (code) e.code = code;
    return reply_error(conn, &e, NULL);
}

static int conn_fd(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

/* true when the peer has closed its side (or the socket failed). */
static bool client_gone(int fd) {
    if (fd < 0) return false;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0) return true;
    return r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* ------------------------------------------------------------------ upstream */

static size_t on_header(char *p, size_t size, size_t n, void *cls) {
    upstream *u = cls;
    const size_t len = size * n;
    if (!u->got_any) u->t_first = ryot_now_s();
    u->got_any = true;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a status line: a new header block (after 1xx) */
        const char *sp = memchr(p, ' ', len);
        u->status = sp ? atoi(sp + 1) : 0;
        u->ctype[0] = u->xcache[0] = u->retry_after[0] = 0;
        return len;
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        if (u->status >= 200) u->hdr_done = true;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon) return len;
    const size_t kl = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = len - kl - 1;
    while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
    char *dst = NULL;
    size_t cap = 0;
    if (kl == 12 && !strncasecmp(p, "Content-Type", 12)) dst = u->ctype, cap = sizeof u->ctype;
    else if (kl == 12 && !strncasecmp(p, "X-Ryot-Cache", 12)) dst = u->xcache, cap = sizeof u->xcache;
    else if (kl == 11 && !strncasecmp(p, "Retry-After", 11)) dst = u->retry_after, cap = sizeof u->retry_after;
    if (dst) snprintf(dst, cap, "%.*s", (int)(vl < cap ? vl : cap - 1), v);
    return len;
}

static size_t on_data(char *p, size_t size, size_t n, void *cls) {
    upstream *u = cls;
    if (u->t_body == 0) u->t_body = ryot_now_s();
    return ryot_buf_append(&u->data, p, size * n) ? size * n : 0;
}

static void upstream_free(upstream *u) {
    if (!u) return;
    if (u->e) {
        curl_multi_remove_handle(u->m, u->e);
        curl_easy_cleanup(u->e);
    }
    curl_slist_free_all(u->hdrs);
    ryot_buf_free(&u->data);
    free(u);
}

static void upstream_report(upstream *u, rt_outcome o) {
    if (u->reported) return;
    u->reported = true;
    const double now = ryot_now_s();
    rt_pool_done(u->s->pool, u->b, o, u->status, u->got_any ? u->t_first - u->t0 : -1, now - u->t0);
    if (u->split >= 0 && o != RT_OUT_CANCELLED)
        rt_canary_record(u->s->p.canary, u->split, u->canary, o != RT_OUT_OK, u->t_body > 0 ? u->t_body - u->t0 : -1);
}

/* Copies a client header to the upstream request when present. */
static bool forward_header(struct MHD_Connection *conn, struct curl_slist **l, const char *name) {
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    if (!v) return true;
    char line[4096];
    snprintf(line, sizeof line, "%s: %s", name, v);
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n) return false;
    *l = n;
    return true;
}

static upstream *upstream_start(rt_server *s, CURLM *m, struct MHD_Connection *conn, int b, const char *method,
                                const char *path, const req_ctx *cx) {
    upstream *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->s = s;
    u->m = m;
    u->b = b;
    u->fd = conn_fd(conn);
    u->t0 = ryot_now_s();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", rt_pool_url(s->pool, b), path);
    bool ok = (u->e = curl_easy_init()) != NULL;
    ok = ok && forward_header(conn, &u->hdrs, "Authorization") && forward_header(conn, &u->hdrs, "Cache-Control") &&
         forward_header(conn, &u->hdrs, "Accept");
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (ok && !strcmp(method, "POST")) {
        char line[300];
        snprintf(line, sizeof line, "Content-Type: %.250s", ct ? ct : "application/json");
        struct curl_slist *n = curl_slist_append(u->hdrs, line);
        /* no "Expect: 100-continue" round trip for bodies over 1 KiB */
        struct curl_slist *n2 = n ? curl_slist_append(n, "Expect:") : NULL;
        ok = n2 != NULL;
        if (n2) u->hdrs = n2;
        else if (n) u->hdrs = n;
    }
    if (!ok) {
        upstream_free(u);
        return NULL;
    }
    CURL *e = u->e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, u->hdrs);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->p.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, u);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, u);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, u->curl_err);
    /* pass the body through as the backend sent it (no decompression) */
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)cx->body.len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, cx->body.data ? cx->body.data : "");
    }
    if (curl_multi_add_handle(m, e) != CURLM_OK) {
        upstream_free(u);
        return NULL;
    }
    return u;
}

/* Moves the transfer on, waiting up to timeout_ms for its sockets. */
static void upstream_pump(upstream *u, int timeout_ms) {
    int running = 0;
    curl_multi_perform(u->m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(u->m, &left)))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == u->e) {
            u->done = true;
            u->res = msg->data.result;
        }
    if (u->done || u->off < u->data.len || (u->hdr_done && u->data.len)) return;
    curl_multi_poll(u->m, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(u->m, &running);
    while ((msg = curl_multi_info_read(u->m, &left)))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == u->e) {
            u->done = true;
            u->res = msg->data.result;
        }
}

/* The response body callback: hands over what the backend sent, as it comes. */
static ssize_t upstream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    upstream *u = cls;
    for (;;) {
        if (u->off < u->data.len) {
            size_t n = u->data.len - u->off;
            if (n > max) n = max;
            memcpy(buf, u->data.data + u->off, n);
            u->off += n;
            if (u->off == u->data.len) {
                u->off = 0;
                ryot_buf_clear(&u->data);
            }
            return (ssize_t)n;
        }
        if (u->done) {
            if (u->res == CURLE_OK) {
                upstream_report(u, u->status >= 500 ? RT_OUT_SERVER : RT_OUT_OK);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            upstream_report(u, RT_OUT_CUT);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        upstream_pump(u, WAIT_SLICE_MS);
        if (u->off >= u->data.len && !u->done && client_gone(u->fd)) {
            upstream_report(u, RT_OUT_CANCELLED);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* The response is destroyed: a transfer still running means the client left
 * (or its socket failed); removing the handle closes the upstream connection. */
static void upstream_response_free(void *cls) {
    upstream *u = cls;
    upstream_report(u, u->done && u->res == CURLE_OK ? RT_OUT_OK : RT_OUT_CANCELLED);
    upstream_free(u);
}

/* ------------------------------------------------------------------ forwarding */

static const char *const k_reason_name[RT_WHY_N] = {"prefix", "prefix_overloaded", "least_loaded", "round_robin",
                                                   "retry"};

/* Queues the reply whose status and headers u holds; its body follows
 * through upstream_read.  Takes u over. */
static enum MHD_Result start_reply(rt_server *s, struct MHD_Connection *conn, upstream *u, rt_reason why) {
    curl_off_t cl = -1;
    curl_easy_getinfo(u->e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    uint64_t size = MHD_SIZE_UNKNOWN;
    /* a known length when the whole body is in (or the backend declared it) */
    if (u->done && u->res == CURLE_OK) size = u->data.len;
    else if (cl >= 0) size = (uint64_t)cl;
    struct MHD_Response *r = MHD_create_response_from_callback(size, 16384, upstream_read, u, upstream_response_free);
    if (!r) {
        upstream_report(u, RT_OUT_CANCELLED);
        upstream_free(u);
        return MHD_NO;
    }
    if (u->ctype[0]) MHD_add_response_header(r, "Content-Type", u->ctype);
    if (u->xcache[0]) MHD_add_response_header(r, "X-Ryot-Cache", u->xcache);
    if (u->retry_after[0]) MHD_add_response_header(r, "Retry-After", u->retry_after);
    if (!strncmp(u->ctype, "text/event-stream", 17)) MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Ryot-Backend", rt_pool_url(s->pool, u->b));
    MHD_add_response_header(r, "X-Ryot-Route", k_reason_name[why]);
    if (u->split >= 0) MHD_add_response_header(r, "X-Ryot-Arm", u->canary ? "canary" : "baseline");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)u->status, r);
    MHD_destroy_response(r);
    return ret;
}

static bool retryable_status(int st) { return st == 502 || st == 503 || st == 504; }

/* Forwards a request: pick, send, wait for the status and headers (retrying
 * once elsewhere on a failure before any byte), then pass the body through. */
static enum MHD_Result forward(rt_server *s, struct MHD_Connection *conn, const char *method, const char *path,
                               req_ctx *cx) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_state *cs = ci ? ci->socket_context : NULL;
    if (!cs) return reply_err(conn, 503, NULL, "out of memory");
    if (!cs->multi && !(cs->multi = curl_multi_init())) return reply_err(conn, 503, NULL, "out of memory");

    char model[256] = "", user[256] = "";
    uint64_t h[RT_PREFIX_MAX_BLOCKS];
    int nh = 0;
    json_t *body = cx->body.len ? json_loadb(cx->body.data, cx->body.len, 0, NULL) : NULL;
    if (json_is_object(body)) {
        const char *m = json_string_value(json_object_get(body, "model"));
        if (m) snprintf(model, sizeof model, "%s", m);
        const char *us = json_string_value(json_object_get(body, "user"));
        if (us) snprintf(user, sizeof user, "%s", us);
        if (rt_pool_policy(s->pool) == RT_POLICY_PREFIX)
            nh = rt_prefix_hashes(body, (size_t)rt_pool_prefix_block(s->pool), h, RT_PREFIX_MAX_BLOCKS);
    }
    json_decref(body);
    if (!user[0]) {
        const char *hu = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Ryot-User");
        if (hu) snprintf(user, sizeof user, "%s", hu);
    }
    bool canary = false;
    const int split = rt_canary_assign(s->p.canary, model[0] ? model : NULL, user, &canary);

    int prev = -1;
    char last_err[400] = "";
    for (int attempt = 0; attempt < 2; attempt++) {
        rt_reason why;
        bool fell_back = false;
        const int b = rt_pool_pick_in(s->pool, canary ? rt_canary_group(s->p.canary, split) : NULL,
                                      model[0] ? model : NULL, h, nh, prev, &why, &fell_back);
        if (fell_back) canary = false; /* the canary group is down: counted as baseline */
        if (b < 0) {
            if (attempt == 0)
                return reply_err(conn, 503, "no_backend", "no backend is available (%d known, none healthy)",
                                 rt_pool_size(s->pool));
            return reply_err(conn, 502, "bad_gateway", "%s; no other backend is available", last_err);
        }
        upstream *u = upstream_start(s, cs->multi, conn, b, method, path, cx);
        if (!u) {
            rt_pool_done(s->pool, b, RT_OUT_CANCELLED, 0, -1, 0);
            return reply_err(conn, 503, NULL, "out of memory");
        }
        u->split = split;
        u->canary = canary;
        while (!u->hdr_done && !u->done) {
            upstream_pump(u, WAIT_SLICE_MS);
            if (!u->hdr_done && !u->done && client_gone(u->fd)) {
                upstream_report(u, RT_OUT_CANCELLED);
                upstream_free(u);
                return MHD_NO;
            }
        }
        if (!u->hdr_done) { /* nothing usable came back */
            upstream_report(u, u->got_any ? RT_OUT_CUT : RT_OUT_CONNECT);
            snprintf(last_err, sizeof last_err, "backend %s failed: %s", rt_pool_url(s->pool, b),
                     u->curl_err[0] ? u->curl_err : curl_easy_strerror(u->res));
            if (!s->p.quiet) fprintf(stderr, "ryot route: %s%s\n", last_err, attempt ? "" : " (retrying elsewhere)");
            upstream_free(u);
            if (attempt == 0) rt_pool_count_retry(s->pool);
            prev = b;
            continue;
        }
        if (attempt == 0 && retryable_status(u->status) && rt_pool_n_up(s->pool) > 1) {
            /* the status is all that came so far: nothing was sent to the client */
            upstream_report(u, RT_OUT_SERVER);
            snprintf(last_err, sizeof last_err, "backend %s answered %d", rt_pool_url(s->pool, b), u->status);
            if (!s->p.quiet) fprintf(stderr, "ryot route: %s (retrying elsewhere)\n", last_err);
            upstream_free(u);
            rt_pool_count_retry(s->pool);
            prev = b;
            continue;
        }
        return start_reply(s, conn, u, why);
    }
    return reply_err(conn, 502, "bad_gateway", "%s", last_err);
}

/* ------------------------------------------------------------------ local endpoints */

static enum MHD_Result do_models(rt_server *s, struct MHD_Connection *conn) {
    if (rt_pool_n_up(s->pool) == 0)
        return reply_err(conn, 503, "no_backend", "no backend is available (%d known, none healthy)",
                         rt_pool_size(s->pool));
    return reply_json(conn, 200, rt_pool_models_json(s->pool, (int64_t)time(NULL)));
}

static enum MHD_Result do_model_one(rt_server *s, struct MHD_Connection *conn, const char *id) {
    if (!rt_pool_has_model(s->pool, id)) {
        srv_error e;
        srv_error_set(&e, 404, "model", "the model '%.200s' does not exist", id);
        e.code = "model_not_found";
        return reply_error(conn, &e, NULL);
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", "model", "created", (json_int_t)time(NULL),
                          "owned_by", "ryot");
    char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return reply_json(conn, 200, json);
}

static enum MHD_Result do_metrics(rt_server *s, struct MHD_Connection *conn) {
    ryot_buf b = {0};
    rt_pool_metrics(s->pool, &b);
    ryot_buf_printf(&b, "# HELP ryot_router_backends_up Routable backends.\n# TYPE ryot_router_backends_up gauge\n"
                        "ryot_router_backends_up %d\n", rt_pool_n_up(s->pool));
    rt_canary_metrics(s->p.canary, &b);
    if (!b.data) return MHD_NO;
    return reply(conn, 200, "text/plain; version=0.0.4", b.data, b.len);
}

/* The pool's JSON plus "splits" (the canaries). */
static enum MHD_Result do_admin(rt_server *s, struct MHD_Connection *conn) {
    char *pj = rt_pool_admin_json(s->pool);
    json_t *o = pj ? json_loads(pj, 0, NULL) : NULL;
    free(pj);
    if (!o) return reply_err(conn, 503, NULL, "out of memory");
    json_object_set_new(o, "splits", rt_canary_admin(s->p.canary));
    char *j = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return reply_json(conn, 200, j);
}

/* ------------------------------------------------------------------ routing */

typedef enum route { R_NONE, R_HEALTH, R_METRICS, R_ADMIN, R_MODELS, R_MODEL_ONE, R_FORWARD } route;

static route find_route(const char *url, const char **method_needed) {
    static const struct {
        const char *path;
        const char *method;
        route r;
    } routes[] = {
        {"/health", "GET", R_HEALTH},
        {"/metrics", "GET", R_METRICS},
        {"/admin/backends", "GET", R_ADMIN},
        {"/v1/models", "GET", R_MODELS},
        {"/v1/chat/completions", "POST", R_FORWARD},
        {"/v1/completions", "POST", R_FORWARD},
        {"/v1/embeddings", "POST", R_FORWARD},
        {"/tokenize", "POST", R_FORWARD},
        {"/detokenize", "POST", R_FORWARD},
        {"/apply-template", "POST", R_FORWARD},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].path)) {
            *method_needed = routes[i].method;
            return routes[i].r;
        }
    if (!strncmp(url, "/v1/models/", 11) && url[11]) {
        *method_needed = "GET";
        return R_MODEL_ONE;
    }
    return R_NONE;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    rt_server *s = cls;
    req_ctx *cx = *con_cls;
    if (!cx) {
        if (!(cx = calloc(1, sizeof *cx))) return MHD_NO;
        *con_cls = cx;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cx->too_large) {
            if (cx->body.len + *upload_size > s->p.max_body) {
                cx->too_large = true;
                ryot_buf_free(&cx->body);
            } else if (!ryot_buf_append(&cx->body, upload, *upload_size)) {
                return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cx->too_large) return reply_err(conn, 413, NULL, "the request body exceeds the limit of %zu bytes", s->p.max_body);
    const char *need = NULL;
    const route r = find_route(url, &need);
    if (r == R_NONE) return reply_err(conn, 404, "not_found", "unknown route %.120s %.16s", url, method);
    if (strcmp(method, need) != 0 && !(r == R_HEALTH && !strcmp(method, "HEAD"))) {
        srv_error e;
        srv_error_set(&e, 405, NULL, "%.16s is not allowed on %.40s (use %s)", method, url, need);
        return reply_error(conn, &e, need);
    }
    switch (r) {
    case R_HEALTH: {
        const int up = rt_pool_n_up(s->pool);
        if (!up) return reply_err(conn, 503, "no_backend", "no backend is available");
        char *j = malloc(64);
        if (!j) return MHD_NO;
        snprintf(j, 64, "{\"status\":\"ok\",\"backends_up\":%d}", up);
        return reply_json(conn, 200, j);
    }
    case R_METRICS: return do_metrics(s, conn);
    case R_ADMIN: return do_admin(s, conn);
    case R_MODELS: return do_models(s, conn);
    case R_MODEL_ONE: return do_model_one(s, conn, url + 11);
    case R_FORWARD: return forward(s, conn, method, url, cx);
    default: return reply_err(conn, 404, "not_found", "unknown route");
    }
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    req_ctx *cx = *con_cls;
    if (!cx) return;
    ryot_buf_free(&cx->body);
    free(cx);
    *con_cls = NULL;
}

static void connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
    (void)cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(conn_state));
    } else {
        conn_state *cs = *socket_context;
        if (cs && cs->multi) curl_multi_cleanup(cs->multi);
        free(cs);
        *socket_context = NULL;
    }
}

/* ------------------------------------------------------------------ probes */

typedef struct probe_conn {
    CURL *e;
    ryot_buf body;
} probe_conn;

static size_t probe_data(char *p, size_t size, size_t n, void *cls) {
    ryot_buf *b = cls;
    if (b->len > (4u << 20)) return 0; /* a probe answer is small; refuse a runaway */
    return ryot_buf_append(b, p, size * n) ? size * n : 0;
}

/* GET url+path into pc->body: the HTTP status, or -1 when the transfer failed. */
static int probe_get(probe_conn *pc, const char *base, const char *path, long timeout_ms) {
    if (!pc->e && !(pc->e = curl_easy_init())) return -1;
    char url[1024];
    snprintf(url, sizeof url, "%s%s", base, path);
    ryot_buf_clear(&pc->body);
    CURL *e = pc->e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, probe_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &pc->body);
    if (curl_easy_perform(e) != CURLE_OK) return -1;
    long st = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
    return (int)st;
}

/* Sum of a metric's samples over its label sets, in Prometheus text. */
static double metric_sum(const char *text, const char *name) {
    const size_t nl = strlen(name);
    double sum = 0;
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, name, nl) != 0 || (l[nl] != '{' && l[nl] != ' ')) continue;
        const char *v = l + nl;
        if (*v == '{') {
            v = strchr(v, '}');
            if (!v) continue;
            v++;
        }
        sum += strtod(v, NULL);
    }
    return sum;
}

static void probe_models(rt_server *s, int b, probe_conn *pc, const char *url, long tmo) {
    if (probe_get(pc, url, "/v1/models", tmo) != 200 || !pc->body.data) return;
    json_t *j = json_loadb(pc->body.data, pc->body.len, 0, NULL);
    json_t *data = json_object_get(j, "data");
    const char *ids[64];
    int n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id && n < 64) ids[n++] = id;
    }
    if (json_is_array(data)) rt_pool_set_models(s->pool, b, ids, n);
    json_decref(j);
}

static void probe_one(rt_server *s, int b, probe_conn *pc) {
    const char *url = rt_pool_url(s->pool, b);
    const long tmo = s->p.probe_ms * 4 > 1000 ? s->p.probe_ms * 4 : 1000;
    const rt_breaker before = rt_pool_breaker(s->pool, b);
    const bool ok = probe_get(pc, url, "/health", tmo) == 200;
    rt_pool_probe(s->pool, b, ok);
    if (ok) {
        if (probe_get(pc, url, "/metrics", tmo) == 200 && pc->body.data)
            rt_pool_set_load(s->pool, b, (int)metric_sum(pc->body.data, "ryot_requests_running"),
                             (int)metric_sum(pc->body.data, "ryot_requests_waiting"));
        if (rt_pool_models_unknown(s->pool, b)) probe_models(s, b, pc, url, tmo);
    }
    const rt_breaker after = rt_pool_breaker(s->pool, b);
    if (after != before && !s->p.quiet) {
        static const char *const names[] = {"closed", "open", "half-open"};
        fprintf(stderr, "ryot route: backend %s: %s -> %s\n", url, names[before], names[after]);
    }
}

/* Redis discovery: the registered URLs become active backends, the
 * discovered ones no longer registered inactive.  A Redis error changes
 * nothing (a Redis outage must not empty the pool). */
static void discover(rt_server *s, redisContext **rcp) {
    if (!*rcp) {
        struct timeval tv = {.tv_sec = s->p.redis_timeout_ms / 1000, .tv_usec = (s->p.redis_timeout_ms % 1000) * 1000};
        redisContext *rc = redisConnectWithTimeout(s->redis_host, s->redis_port, tv);
        if (!rc || rc->err) {
            if (rc) redisFree(rc);
            return;
        }
        redisSetTimeout(rc, tv);
        if (s->redis_db) {
            redisReply *r = redisCommand(rc, "SELECT %d", s->redis_db);
            bool bad = !r || r->type == REDIS_REPLY_ERROR;
            if (r) freeReplyObject(r);
            if (bad) {
                redisFree(rc);
                return;
            }
        }
        *rcp = rc;
    }
    bool seen[RT_POOL_MAX] = {0};
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(*rcp, "SCAN %s MATCH %s* COUNT 100", cursor, RT_REGISTER_PREFIX);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
            if (r) freeReplyObject(r);
            redisFree(*rcp);
            *rcp = NULL;
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++) {
            const char *k = keys->element[i]->str;
            if (!k || strncmp(k, RT_REGISTER_PREFIX, strlen(RT_REGISTER_PREFIX)) != 0) continue;
            const char *url = k + strlen(RT_REGISTER_PREFIX);
            const int known = rt_pool_size(s->pool);
            ryot_error err = {0};
            const int b = rt_pool_add(s->pool, url, &err);
            if (b < 0) continue;
            seen[b] = true;
            if (b >= known) {
                s->discovered[b] = true;
                if (!s->p.quiet) fprintf(stderr, "ryot route: backend %s registered\n", url);
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    const int n = rt_pool_size(s->pool);
    for (int b = 0; b < n; b++)
        if (s->discovered[b] && rt_pool_active(s->pool, b) != seen[b]) {
            rt_pool_set_active(s->pool, b, seen[b]);
            if (!s->p.quiet)
                fprintf(stderr, "ryot route: backend %s %s\n", rt_pool_url(s->pool, b),
                        seen[b] ? "registered again" : "unregistered (its key expired or was deleted)");
        }
}

static void *prober(void *arg) {
    rt_server *s = arg;
    probe_conn pc[RT_POOL_MAX] = {0};
    redisContext *rc = NULL;
    double next_discover = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        if (s->p.redis_url && ryot_now_s() >= next_discover) {
            discover(s, &rc);
            next_discover = ryot_now_s() + DISCOVER_PERIOD_S;
        }
        const int n = rt_pool_size(s->pool);
        for (int b = 0; b < n; b++)
            if (rt_pool_active(s->pool, b)) probe_one(s, b, &pc[b]);
        rt_canary_check(s->p.canary, ryot_now_s(), s->p.quiet);
        pthread_mutex_lock(&s->mu);
        if (s->stop) break;
        struct timespec dl = ryot_deadline_ms(s->p.probe_ms);
        pthread_cond_timedwait(&s->cv, &s->mu, &dl);
    }
    pthread_mutex_unlock(&s->mu);
    for (int b = 0; b < RT_POOL_MAX; b++) {
        if (pc[b].e) curl_easy_cleanup(pc[b].e);
        ryot_buf_free(&pc[b].body);
    }
    if (rc) redisFree(rc);
    return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

ryot_status rt_server_start(const rt_server_params *pp, rt_pool *pool, rt_server **out, ryot_error *err) {
    *out = NULL;
    rt_server *s = calloc(1, sizeof *s);
    if (!s) {
        rt_pool_free(pool);
        rt_canary_free(pp->canary);
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    s->p = *pp;
    s->pool = pool;
    if (!s->p.host) s->p.host = "127.0.0.1";
    if (!s->p.max_body) s->p.max_body = 8u << 20;
    if (s->p.max_connections <= 0) s->p.max_connections = 1024;
    if (s->p.probe_ms <= 0) s->p.probe_ms = 250;
    if (s->p.connect_timeout_ms <= 0) s->p.connect_timeout_ms = 1000;
    if (s->p.redis_timeout_ms <= 0) s->p.redis_timeout_ms = 200;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    ryot_status st = RYOT_OK;
    if (s->p.redis_url)
        st = rt_redis_url_parse(s->p.redis_url, s->redis_host, sizeof s->redis_host, &s->redis_port, &s->redis_db, err);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->p.port);
    if (!st && inet_pton(AF_INET, s->p.host, &addr.sin_addr) != 1)
        st = ryot_fail(err, RYOT_ERR_INVALID, "--host %s is not an IPv4 address", s->p.host);
    if (!st && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        st = ryot_fail(err, RYOT_ERR_INTERNAL, "libcurl initialisation failed");
    if (st) {
        rt_server_stop(s);
        return st;
    }
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                MHD_USE_ITC,
                            (uint16_t)s->p.port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->p.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, connection_notify, s, MHD_OPTION_LISTENING_ADDRESS_REUSE,
                            (unsigned)1, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024), MHD_OPTION_END);
    if (!s->d) {
        st = ryot_fail(err, RYOT_ERR_IO, "cannot listen on %s:%d (%s)", s->p.host, s->p.port, strerror(errno));
        rt_server_stop(s);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->p.port;
    if (pthread_create(&s->prober, NULL, prober, s) != 0) {
        rt_server_stop(s);
        return ryot_fail(err, RYOT_ERR_INTERNAL, "cannot start the probe thread");
    }
    s->prober_started = true;
    *out = s;
    return RYOT_OK;
}

int rt_server_port(const rt_server *s) { return s->port; }

void rt_server_stop(rt_server *s) {
    if (!s) return;
    if (s->prober_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->prober, NULL);
    }
    if (s->d) MHD_stop_daemon(s->d);
    rt_pool_free(s->pool);
    rt_canary_free(s->p.canary);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
