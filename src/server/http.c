/* HTTP front of ryot serve (see http.h). */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "cache/l1.h"
#include "cache/l2.h"
#include "cache/semantic.h"
#include "server/metrics.h"
#include "server/openai.h"
#include "server/request.h"
#include "server/flight.h"
#include "server/respcache.h"
#include "server/sessions.h"
#include "server/tasks_http.h"
#include "server/tools.h"
#include "server/webui.h"
#include "template/chat.h"
#include "tokenizer/tokenizer.h"

#define WAIT_SLICE_MS 50 /* how often a waiting handler checks its client */
/* Inactivity limit of a connection outside the body upload: waiting for the
 * next request on a keep-alive connection, or for request headers. */
#define IDLE_TIMEOUT_S 600u

struct srv_http {
    struct MHD_Daemon *d;
    srv_http_params p;
    char *api_key;
    char *webui_csp;      /* the page's Content-Security-Policy (webui.h); NULL: --no-webui */
    char webui_etag[48];  /* "..." : the page's SHA-256, base64, quoted */
    _Atomic(srv_registry *) reg; /* NULL until srv_http_set_registry */
    srv_embed *embed;   /* NULL: no --embed-model */
    cache_l1 *cache;    /* NULL: --cache-mb 0 */
    cache_l2 *l2;       /* NULL: no --redis */
    cache_sem *sem;     /* NULL: no --semantic-cache (needs cache and embed) */
    flight_table flights; /* cacheable generations in flight (coalescing) */
    tasks_service *tasks; /* NULL: the task routes answer 404 */
    srv_sessions sess;  /* sess.st NULL: no --store */
    int port;
};

typedef struct conn_ctx {
    ryot_buf body;
    bool too_large;
    double body_deadline; /* CLOCK_MONOTONIC seconds by which the whole body must be in */
} conn_ctx;

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

/* A generation endpoint's 200 (body taken over): with X-Ryot-Cache. */
static enum MHD_Result reply_generated(struct MHD_Connection *conn, const char *type, char *body, size_t len,
                                       const char *cache_state) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "X-Ryot-Cache", cache_state);
    if (!strcmp(type, "text/event-stream")) MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, int status, char *json) {
    if (!json) return MHD_NO;
    return reply(conn, status, "application/json", json, strlen(json));
}

/* close: "Connection: close", which makes libmicrohttpd close the connection
 * once the reply is sent (for requests whose body is unread or whose framing
 * cannot be trusted). */
static enum MHD_Result reply_error_close(struct MHD_Connection *conn, const srv_error *e, bool close) {
    char *json = srv_json_error(e);
    if (!json) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (e->status == 429) MHD_add_response_header(r, "Retry-After", "1");
    if (e->status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (close) MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)e->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, const srv_error *e) {
    return reply_error_close(conn, e, false);
}

static enum MHD_Result reply_err(struct MHD_Connection *conn, int status, const char *param, const char *msg) {
    srv_error e;
    srv_error_set(&e, status, param, "%s", msg);
    return reply_error(conn, &e);
}

/* ------------------------------------------------------------------ helpers */

/* Constant-time equality for the API key (time depends only on lengths). */
static bool key_equal(const char *a, size_t na, const char *b, size_t nb) {
    unsigned char diff = (unsigned char)(na != nb);
    const size_t n = na > nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        const unsigned char x = i < na ? (unsigned char)a[i] : 0, y = i < nb ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

static bool authorized(const srv_http *h, struct MHD_Connection *conn) {
    if (!h->api_key) return true;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return false;
    const char *tok = auth + 7;
    while (*tok == ' ') tok++;
    return key_equal(tok, strlen(tok), h->api_key, strlen(h->api_key));
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

/* ------------------------------------------------------------------ models */

/* A request's model: registry entry idx, with a reference (m != NULL) until model_put. */
typedef struct model_ref {
    int idx;
    srv_model *m;
    const char *name; /* the entry's name: what responses echo */
} model_ref;

/* The 404 for a name no entry has (the name cut short: it is the client's). */
static void model_not_found(const srv_registry *reg, const char *name, srv_error *e) {
    if (srv_registry_count(reg) == 1)
        srv_error_set(e, 404, "model", "the model '%.100s%s' does not exist (this server serves '%s')", name,
                      strlen(name) > 100 ? "..." : "", srv_registry_name(reg, 0));
    else
        srv_error_set(e, 404, "model", "the model '%.100s%s' does not exist (GET /v1/models lists the %d served)", name,
                      strlen(name) > 100 ? "..." : "", srv_registry_count(reg));
    e->code = "model_not_found";
}

/* Finds name (NULL: the default model, entry 0) and takes a reference,
 * loading the model when it is not: 0, or -1 with *e (404 unknown; 503 a
 * shortage or shutting down; 500 a model that would not load). */
static int model_take(const srv_http *h, const char *name, model_ref *out, srv_error *e) {
    srv_registry *reg = atomic_load(&h->reg);
    *out = (model_ref){.idx = -1};
    const int idx = name ? srv_registry_find(reg, name) : 0;
    if (idx < 0) {
        model_not_found(reg, name, e);
        return -1;
    }
    void *hd;
    ryot_error err = {0};
    ryot_status st = srv_registry_acquire(reg, idx, &hd, &err);
    if (st) {
        const bool retry = st == RYOT_ERR_NOMEM || st == RYOT_ERR_UNAVAILABLE || st == RYOT_ERR_BUSY;
        srv_error_set(e, retry ? 503 : 500, "model", "the model '%s' %s: %s", srv_registry_name(reg, idx),
                      retry ? "cannot be loaded now" : "failed to load", err.msg);
        e->type = "server_error";
        e->code = retry ? "model_unavailable" : "model_load_failed";
        return -1;
    }
    *out = (model_ref){.idx = idx, .m = hd, .name = srv_registry_name(reg, idx)};
    return 0;
}

static void model_put(const srv_http *h, model_ref *r) {
    if (r->m) srv_registry_release(atomic_load(&h->reg), r->idx);
    r->m = NULL;
}

static bool messages_use_tools(const srv_message *msgs, int n) {
    for (int i = 0; i < n; i++)
        if (msgs[i].n_tool_calls || msgs[i].tool_call_id) return true;
    return false;
}

/* Chat messages (and tools: NULL for none) -> prompt text through the
 * model's template.  Without tools or tool turns, the plain messages path. */
static int render_chat(const ryot_model *m, const srv_message *msgs, int n, const json_t *tools, bool add_gen,
                       char **out, size_t *len, srv_error *e) {
    if (tools || messages_use_tools(msgs, n)) {
        json_t *jm = srv_messages_json(msgs, n);
        ryot_error err = {0};
        ryot_status st = jm ? chat_apply_json(ryot_model_chat(m), jm, tools, add_gen, out, len, &err) : RYOT_ERR_NOMEM;
        json_decref(jm);
        if (st) {
            srv_error_set(e, st == RYOT_ERR_NOMEM ? 503 : 400, "messages", "chat template: %s",
                          jm ? err.msg : "out of memory");
            return -1;
        }
        return 0;
    }
    ryot_chat_message *cm = calloc(n > 0 ? (size_t)n : 1, sizeof *cm);
    if (!cm) {
        srv_error_set(e, 503, NULL, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        cm[i].role = msgs[i].role;
        cm[i].content = msgs[i].content ? msgs[i].content : "";
    }
    ryot_error err = {0};
    ryot_status st = ryot_chat_apply(m, cm, n, add_gen, out, len, &err);
    free(cm);
    if (st) {
        srv_error_set(e, st == RYOT_ERR_NOMEM ? 503 : 400, "messages", "chat template: %s", err.msg);
        return -1;
    }
    return 0;
}

static int tokenize(const ryot_model *m, const char *text, size_t len, unsigned flags, int32_t **ids, int *n,
                    srv_error *e) {
    ryot_error err = {0};
    if (ryot_tokenize(m, text, len, flags, ids, n, &err)) {
        srv_error_set(e, 400, "prompt", "tokenize: %s", err.msg);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ generation state */

/* One generation request: the parsed body (what the response echoes), the
 * response id, and the scheduler's job. */
typedef struct gen {
    srv_request req;
    char id[SRV_ID_MAX];
    int64_t created;
    sched_job *job;
    int n_choices;
    bool store;    /* a cacheable miss: store the answer under key when it ends well */
    cache_key key;
    srv_http *h;
    flight *flight;  /* cacheable: the generation is read through a flight (coalescing) */
    size_t *cursors; /* with flight: per choice, the bytes of its text read so far */
    float *sem_vec;  /* a semantic-cache candidate that missed: its question's vector, */
    cache_key sem_ctx; /* and context, indexed once its answer is in L1 */
    bool tools;             /* tools active (srv_tools_active): answers are parsed for calls */
    chat_tool_style tool_style;
    char *tool_prefix;      /* a forced call: what the prompt ends with and each answer continues */
    grammar *tool_grammar;  /* a forced call: the constraint of what follows tool_prefix */
    model_ref mref;         /* the request's model, held until the gen is freed */
} gen;

static void gen_free(gen *g) {
    if (g->flight) flight_leave(&g->h->flights, g->flight); /* the last reader cancels an unfinished job */
    free(g->cursors);
    free(g->sem_vec);
    sched_job_unref(g->job);
    free(g->tool_prefix);
    grammar_free(g->tool_grammar);
    srv_request_free(&g->req);
    if (g->h) model_put(g->h, &g->mref); /* last: the job and flight are gone first */
    memset(g, 0, sizeof *g);
}

/* The scheduler's error kinds as HTTP statuses (request.h's table). */
static void error_from_sched(srv_error *e, const sched_error *se) {
    int status;
    switch (se->code) {
    case RYOT_ERR_INVALID: status = 400; break;
    case RYOT_ERR_BUSY: status = 429; break;
    case RYOT_ERR_TIMEOUT: status = 408; break;
    case RYOT_ERR_UNAVAILABLE:
    case RYOT_ERR_NOMEM: status = 503; break;
    default: status = 500; break;
    }
    srv_error_set(e, status, se->param, "%s", se->msg);
}

static srv_usage usage_of(const sched_job_result *r) {
    return (srv_usage){r->prompt_tokens, r->completion_tokens, r->cached_tokens};
}

/* echo: the prompt text of choice i (prompt i / n) in front of text. */
static bool prepend_prompt(const srv_request *req, int i, ryot_buf *text) {
    const char *p = req->prompts[i / req->n];
    ryot_buf b = {0};
    if (!ryot_buf_append(&b, p, strlen(p)) || (text->len && !ryot_buf_append(&b, text->data, text->len))) {
        ryot_buf_free(&b);
        return false;
    }
    ryot_buf_free(text);
    *text = b;
    return true;
}

/* A chat choice's text (g->tools) as the message's content and tool calls,
 * parsed with the forced prefix in front.  false: out of memory. */
static bool choice_tools(const gen *g, const char *text, size_t len, srv_tool_result *r) {
    if (!g->tool_prefix) return srv_tools_parse(g->tool_style, &g->req, text, len, r);
    ryot_buf b = {0};
    bool ok = ryot_buf_append(&b, g->tool_prefix, strlen(g->tool_prefix)) && (!len || ryot_buf_append(&b, text, len)) &&
              srv_tools_parse(g->tool_style, &g->req, b.data, b.len, r);
    ryot_buf_free(&b);
    return ok;
}

/* The stream chunks that end chat choice i with tools: the content left
 * (when any), the calls (each whole, one chunk), then finish_reason.
 * parts gets up to 3; returns how many (a NULL one: out of memory). */
static int tool_tail_chunks(const srv_resp_meta *m, int i, const srv_tool_result *r, sched_finish fin, bool usage,
                            char **parts) {
    int np = 0;
    if (r->content_len) {
        srv_chat_delta d = {.index = i, .content = r->content, .content_len = r->content_len};
        parts[np++] = srv_json_chat_chunk(m, &d, 1, usage, NULL);
    }
    if (r->n_calls) {
        srv_chat_delta d = {.index = i, .tool_calls = r->calls, .n_tool_calls = r->n_calls};
        parts[np++] = srv_json_chat_chunk(m, &d, 1, usage, NULL);
    }
    srv_chat_delta d = {.index = i, .finish = fin, .finish_tool_calls = r->n_calls > 0};
    parts[np++] = srv_json_chat_chunk(m, &d, 1, usage, NULL);
    return np;
}

/* ------------------------------------------------------------------ streaming */

/* A streamed choice with tools: its text is sent as content only as far as
 * it surely is content (chat_tools_content_prefix); from a call's opening
 * on (a forced call: from the start) it is held and parsed at the end. */
typedef struct tool_hold {
    ryot_buf text;
    size_t sent;   /* text[0..sent) went out as content */
    bool opened;   /* a call opened at sent: hold the rest */
} tool_hold;

typedef struct stream_ctx {
    srv_http *h;
    gen g;
    int fd;
    ryot_buf out;         /* formatted bytes not yet handed to MHD */
    size_t off;
    bool ended;
    bool *role_sent;      /* per choice (chat) */
    bool *fin_sent;
    bool *echo_sent;      /* per choice: the prompt text went out (completions echo) */
    int64_t *text_chars;  /* per choice: text_offset of the next token (completions logprobs) */
    tool_hold *hold;      /* per choice, with tools active */
    int n_fin;
    sched_take take;
} stream_ctx;

/* What choice i produced since the last call, into t (appending). */
static bool gen_take(gen *g, int i, sched_take *t) {
    return g->flight ? flight_take(g->flight, i, &g->cursors[i], t) : sched_job_take(g->job, i, t, 0);
}

static void gen_wait(gen *g, int timeout_ms) {
    if (g->flight) flight_wait(g->flight, g->cursors, timeout_ms);
    else sched_job_wait(g->job, timeout_ms);
}

/* A reader gone (client disconnected): the job stops unless other readers
 * of its flight remain. */
static void gen_abandon(gen *g) {
    if (!g->flight) sched_job_cancel(g->job);
}

/* Stores a finished answer under g->key: once per flight, by whichever of
 * its readers gets there first (and only when g->store, i.e. not no-store). */
static void cache_store(srv_http *h, gen *g, const srv_usage *u) {
    if (!g->flight || !g->store || !flight_claim_store(g->flight)) return;
    srv_cached c = {.n = g->n_choices, .usage = *u};
    c.choices = calloc((size_t)c.n, sizeof *c.choices);
    if (!c.choices) return;
    for (int i = 0; i < c.n; i++) {
        sched_finish fin;
        const ryot_buf *b = flight_text(g->flight, i, &fin);
        c.choices[i] = (srv_cached_choice){.text = b->data, .len = b->len, .finish = fin};
    }
    size_t len;
    char *val = srv_cache_encode(&c, &len);
    free(c.choices); /* the texts stay the flight's */
    if (val && h->cache && cache_l1_put(h->cache, &g->key, val, len, ryot_now_s()) && h->sem && g->sem_vec)
        cache_sem_insert(h->sem, &g->sem_ctx, g->sem_vec, &g->key);
    if (val && h->l2) cache_l2_put(h->l2, &g->key, val, len);
    free(val);
}

static void sse(stream_ctx *s, char *json) {
    if (!json) return;
    ryot_buf_append(&s->out, "data: ", 6);
    ryot_buf_append(&s->out, json, strlen(json));
    ryot_buf_append(&s->out, "\n\n", 2);
    free(json);
}

static void stream_meta(const stream_ctx *s, srv_resp_meta *m) {
    m->id = s->g.id;
    m->created = s->g.created;
    m->model = s->g.mref.name;
    m->system_fingerprint = NULL;
}

/* Chat choice i with tools: s->take's text joins the held text; what is
 * surely content goes out (with the take's logprobs), and at the end the
 * rest is parsed into content and calls. */
static void stream_tools(stream_ctx *s, const srv_resp_meta *m, int i) {
    const sched_take *t = &s->take;
    tool_hold *h = &s->hold[i];
    const bool usage = s->g.req.include_usage;
    if (t->text.len && !ryot_buf_append(&h->text, t->text.data, t->text.len)) return;
    size_t n = 0;
    if (!h->opened && !s->g.tool_prefix)
        n = chat_tools_content_prefix(s->g.tool_style, h->text.data + h->sent, h->text.len - h->sent, h->sent == 0,
                                      &h->opened);
    if (n || t->n_lp) {
        srv_chat_delta d = {.index = i,
                            .content = n ? h->text.data + h->sent : NULL,
                            .content_len = n,
                            .with_logprobs = s->g.req.sp.logprobs,
                            .lp = t->lp,
                            .n_lp = t->n_lp};
        sse(s, srv_json_chat_chunk(m, &d, 1, usage, NULL));
        h->sent += n;
    }
    if (!t->finished || s->fin_sent[i] || t->finish == SCHED_FINISH_NONE) return; /* NONE: failed, error event follows */
    srv_tool_result r;
    if (!choice_tools(&s->g, h->text.data + h->sent, h->text.len - h->sent, &r)) return;
    char *parts[3];
    const int np = tool_tail_chunks(m, i, &r, t->finish, usage, parts);
    for (int k = 0; k < np; k++) sse(s, parts[k]);
    srv_tool_result_free(&r);
}

/* Formats what choice i produced since the last call. */
static void stream_choice(stream_ctx *s, int i) {
    const srv_request *req = &s->g.req;
    sched_take *t = &s->take;
    sched_take_clear(t);
    if (!gen_take(&s->g, i, t) && s->role_sent[i]) return;
    srv_resp_meta m;
    stream_meta(s, &m);
    const bool usage = req->include_usage;
    const bool lp = req->sp.logprobs;
    if (req->ep == SRV_EP_CHAT) {
        if (!s->role_sent[i]) {
            srv_chat_delta d = {.index = i, .role = true, .content = "", .content_len = 0};
            sse(s, srv_json_chat_chunk(&m, &d, 1, usage, NULL));
            s->role_sent[i] = true;
        }
        if (s->hold) {
            stream_tools(s, &m, i);
        } else if (t->text.len || t->n_lp) {
            srv_chat_delta d = {.index = i,
                                .content = t->text.data ? t->text.data : "",
                                .content_len = t->text.len,
                                .with_logprobs = lp,
                                .lp = t->lp,
                                .n_lp = t->n_lp};
            sse(s, srv_json_chat_chunk(&m, &d, 1, usage, NULL));
        }
        /* with tools, stream_tools sends the end; NONE: failed, the error event follows */
        if (!s->hold && t->finished && !s->fin_sent[i] && t->finish != SCHED_FINISH_NONE) {
            srv_chat_delta d = {.index = i, .finish = t->finish};
            sse(s, srv_json_chat_chunk(&m, &d, 1, usage, NULL));
        }
    } else {
        s->role_sent[i] = true;
        if (req->echo && !s->echo_sent[i]) {
            /* the prompt's logprobs arrive in one piece before anything else: send them with its text */
            if (lp && !t->n_lp && !t->text.len && !t->finished) return;
            s->echo_sent[i] = prepend_prompt(req, i, &t->text);
        }
        if (t->text.len || t->n_lp) {
            srv_completion_choice c = {.index = i,
                                       .text = t->text.data ? t->text.data : "",
                                       .text_len = t->text.len,
                                       .with_logprobs = lp,
                                       .lp = t->lp,
                                       .n_lp = t->n_lp,
                                       .text_offset0 = s->text_chars[i]};
            sse(s, srv_json_completion_chunk(&m, &c, 1, usage, NULL));
            for (int k = 0; k < t->n_lp; k++) s->text_chars[i] += srv_utf8_leads(t->lp[k].text, t->lp[k].len);
        }
        if (t->finished && !s->fin_sent[i] && t->finish != SCHED_FINISH_NONE) {
            srv_completion_choice c = {.index = i, .text = "", .finish = t->finish};
            sse(s, srv_json_completion_chunk(&m, &c, 1, usage, NULL));
        }
    }
    if (t->finished && !s->fin_sent[i]) {
        s->fin_sent[i] = true;
        s->n_fin++;
    }
}

static void stream_end(stream_ctx *s) {
    sched_job_result r;
    sched_job_result_get(s->g.job, &r);
    if (r.failed) {
        srv_error err;
        error_from_sched(&err, &r.err);
        sse(s, srv_json_error(&err));
    } else {
        srv_usage u = usage_of(&r);
        cache_store(s->h, &s->g, &u);
        if (s->g.req.include_usage) {
            srv_resp_meta m;
            stream_meta(s, &m);
            sse(s, s->g.req.ep == SRV_EP_CHAT ? srv_json_chat_chunk(&m, NULL, 0, true, &u)
                                              : srv_json_completion_chunk(&m, NULL, 0, true, &u));
        }
    }
    ryot_buf_append(&s->out, "data: [DONE]\n\n", 14);
    s->ended = true;
}

static bool job_failed(sched_job *j) {
    if (!sched_job_done(j)) return false;
    sched_job_result r;
    sched_job_result_get(j, &r);
    return r.failed;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *s = cls;
    for (;;) {
        if (s->off < s->out.len) {
            size_t n = s->out.len - s->off;
            if (n > max) n = max;
            memcpy(buf, s->out.data + s->off, n);
            s->off += n;
            if (s->off == s->out.len) s->off = s->out.len = 0;
            return (ssize_t)n;
        }
        if (s->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        for (int i = 0; i < s->g.n_choices; i++)
            if (!s->fin_sent[i]) stream_choice(s, i);
        if (s->n_fin == s->g.n_choices || job_failed(s->g.job)) {
            /* drain what finished choices left, then close the stream */
            stream_end(s);
            continue;
        }
        if (s->out.len) continue;
        /* nothing new: wait on the job, then check the client */
        gen_wait(&s->g, WAIT_SLICE_MS);
        if (client_gone(s->fd)) {
            gen_abandon(&s->g);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    stream_ctx *s = cls;
    if (!sched_job_done(s->g.job)) gen_abandon(&s->g); /* client gone mid-stream */
    for (int i = 0; s->hold && i < s->g.n_choices; i++) ryot_buf_free(&s->hold[i].text);
    gen_free(&s->g);
    ryot_buf_free(&s->out);
    sched_take_free(&s->take);
    free(s->role_sent);
    free(s->fin_sent);
    free(s->echo_sent);
    free(s->text_chars);
    free(s->hold);
    free(s);
}

/* Takes g over (it is freed on every path). */
static enum MHD_Result start_stream(srv_http *h, struct MHD_Connection *conn, gen *g, const char *cache_state) {
    const int nc = g->n_choices;
    stream_ctx *s = calloc(1, sizeof *s);
    if (s) {
        s->role_sent = calloc((size_t)nc, sizeof *s->role_sent);
        s->fin_sent = calloc((size_t)nc, sizeof *s->fin_sent);
        s->echo_sent = calloc((size_t)nc, sizeof *s->echo_sent);
        s->text_chars = calloc((size_t)nc, sizeof *s->text_chars);
        if (g->tools) s->hold = calloc((size_t)nc, sizeof *s->hold);
    }
    if (!s || !s->role_sent || !s->fin_sent || !s->echo_sent || !s->text_chars || (g->tools && !s->hold)) {
        if (s) {
            free(s->role_sent);
            free(s->fin_sent);
            free(s->echo_sent);
            free(s->text_chars);
            free(s->hold);
            free(s);
        }
        gen_abandon(g);
        gen_free(g);
        return reply_err(conn, 503, NULL, "out of memory");
    }
    s->h = h;
    s->g = *g;
    memset(g, 0, sizeof *g);
    s->fd = conn_fd(conn);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Ryot-Cache", cache_state);
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ------------------------------------------------------------------ generation */

/* Waits for the job (fd >= 0: while that client stays) and formats the
 * whole completion: 0 with *json, -1 with *e, -2 when the client left.
 * Takes g over. */
static int gen_collect(srv_http *h, gen *g, int fd, char **json_out, srv_error *e) {
    *json_out = NULL;
    while (!sched_job_wait_done(g->job, WAIT_SLICE_MS)) {
        if (client_gone(fd)) {
            gen_abandon(g);
            gen_free(g);
            return -2;
        }
    }
    sched_job_result res;
    sched_job_result_get(g->job, &res);
    if (res.failed) {
        error_from_sched(e, &res.err);
        gen_free(g);
        return -1;
    }
    const int nc = g->n_choices;
    const bool lp = g->req.sp.logprobs;
    sched_take *t = calloc((size_t)nc, sizeof *t);
    srv_chat_choice *cc = calloc((size_t)nc, sizeof *cc);
    srv_completion_choice *pc = calloc((size_t)nc, sizeof *pc);
    srv_tool_result *tr = calloc((size_t)nc, sizeof *tr);
    char *json = NULL;
    bool mem_ok = t && cc && pc && tr;
    if (mem_ok) {
        for (int i = 0; i < nc; i++) {
            gen_take(g, i, &t[i]);
            if (g->req.echo && !prepend_prompt(&g->req, i, &t[i].text)) mem_ok = false;
            const char *text = t[i].text.data ? t[i].text.data : "";
            cc[i] = (srv_chat_choice){.index = i,
                                      .content = text,
                                      .content_len = t[i].text.len,
                                      .finish = t[i].finish,
                                      .with_logprobs = lp,
                                      .lp = t[i].lp,
                                      .n_lp = t[i].n_lp};
            if (g->tools) {
                if (!choice_tools(g, text, t[i].text.len, &tr[i])) mem_ok = false;
                cc[i].content = tr[i].content;
                cc[i].content_len = tr[i].content_len;
                cc[i].tool_calls = tr[i].calls;
                cc[i].n_tool_calls = tr[i].n_calls;
            }
            pc[i] = (srv_completion_choice){.index = i,
                                            .text = text,
                                            .text_len = t[i].text.len,
                                            .finish = t[i].finish,
                                            .with_logprobs = lp,
                                            .lp = t[i].lp,
                                            .n_lp = t[i].n_lp};
        }
        srv_resp_meta m = {.id = g->id, .created = g->created, .model = g->mref.name};
        srv_usage u = usage_of(&res);
        if (mem_ok) {
            json = g->req.ep == SRV_EP_CHAT ? srv_json_chat_completion(&m, cc, nc, &u)
                                            : srv_json_completion(&m, pc, nc, &u);
            cache_store(h, g, &u);
        }
    }
    for (int i = 0; i < nc; i++) {
        if (t) sched_take_free(&t[i]);
        if (tr) srv_tool_result_free(&tr[i]);
    }
    free(t);
    free(tr);
    free(cc);
    free(pc);
    gen_free(g);
    if (!json) {
        srv_error_set(e, 503, NULL, "out of memory");
        return -1;
    }
    *json_out = json;
    return 0;
}

/* Waits for the job and answers with the whole completion.  Takes g over. */
static enum MHD_Result finish_blocking(srv_http *h, struct MHD_Connection *conn, gen *g, const char *cache_state) {
    char *json;
    srv_error e;
    const int rc = gen_collect(h, g, conn_fd(conn), &json, &e);
    if (rc == -2) return MHD_NO;
    if (rc) return reply_error(conn, &e);
    return reply_generated(conn, "application/json", json, strlen(json), cache_state);
}

/* A cached record as the whole (non-streamed) response to g's request, or
 * NULL (out of memory).  Does not free g. */
static char *cached_json(srv_http *h, gen *g, const srv_cached *c) {
    (void)h;
    const bool chat = g->req.ep == SRV_EP_CHAT;
    srv_resp_meta m = {.id = g->id, .created = g->created, .model = g->mref.name};
    srv_chat_choice *cc = calloc((size_t)c->n, sizeof *cc);
    srv_completion_choice *pc = calloc((size_t)c->n, sizeof *pc);
    srv_tool_result *tr = calloc((size_t)c->n, sizeof *tr);
    char *json = NULL;
    bool mem_ok = cc && pc && tr;
    for (int i = 0; mem_ok && i < c->n; i++) {
        cc[i] = (srv_chat_choice){.index = i, .content = c->choices[i].text, .content_len = c->choices[i].len,
                                  .finish = c->choices[i].finish};
        if (chat && g->tools) {
            mem_ok = choice_tools(g, c->choices[i].text, c->choices[i].len, &tr[i]);
            cc[i] = (srv_chat_choice){.index = i, .content = tr[i].content, .content_len = tr[i].content_len,
                                      .finish = c->choices[i].finish, .tool_calls = tr[i].calls,
                                      .n_tool_calls = tr[i].n_calls};
        }
        pc[i] = (srv_completion_choice){.index = i, .text = c->choices[i].text, .text_len = c->choices[i].len,
                                        .finish = c->choices[i].finish};
    }
    if (mem_ok)
        json = chat ? srv_json_chat_completion(&m, cc, c->n, &c->usage) : srv_json_completion(&m, pc, c->n, &c->usage);
    for (int i = 0; tr && i < c->n; i++) srv_tool_result_free(&tr[i]);
    free(tr);
    free(cc);
    free(pc);
    return json;
}

/* Answers g's request from a cached record, in the shape (and, when the
 * request streams, the SSE framing) a generation would have.  Takes g over. */
static enum MHD_Result reply_cached(srv_http *h, struct MHD_Connection *conn, gen *g, const srv_cached *c,
                                    const char *tier) {
    const srv_request *req = &g->req;
    const bool chat = req->ep == SRV_EP_CHAT;
    srv_resp_meta m = {.id = g->id, .created = g->created, .model = g->mref.name};
    ryot_buf out = {0};
    bool ok = true;
    if (!req->stream) {
        char *json = cached_json(h, g, c);
        gen_free(g);
        if (!json) return reply_err(conn, 503, NULL, "out of memory");
        return reply_generated(conn, "application/json", json, strlen(json), tier);
    }
    const bool usage = req->include_usage;
    for (int i = 0; ok && i <= c->n; i++) {
        char *parts[4] = {NULL, NULL, NULL, NULL};
        int np = 0;
        if (i == c->n) {
            if (usage)
                parts[np++] = chat ? srv_json_chat_chunk(&m, NULL, 0, true, &c->usage)
                                   : srv_json_completion_chunk(&m, NULL, 0, true, &c->usage);
        } else if (chat) {
            srv_chat_delta role = {.index = i, .role = true, .content = ""};
            srv_chat_delta text = {.index = i, .content = c->choices[i].text, .content_len = c->choices[i].len};
            srv_chat_delta fin = {.index = i, .finish = c->choices[i].finish};
            parts[np++] = srv_json_chat_chunk(&m, &role, 1, usage, NULL);
            srv_tool_result r;
            if (!g->tools) {
                if (c->choices[i].len) parts[np++] = srv_json_chat_chunk(&m, &text, 1, usage, NULL);
                parts[np++] = srv_json_chat_chunk(&m, &fin, 1, usage, NULL);
            } else if (!(ok = choice_tools(g, c->choices[i].text, c->choices[i].len, &r))) {
                np = 0;
                free(parts[0]);
            } else {
                np += tool_tail_chunks(&m, i, &r, c->choices[i].finish, usage, parts + np);
                srv_tool_result_free(&r);
            }
        } else {
            srv_completion_choice text = {.index = i, .text = c->choices[i].text, .text_len = c->choices[i].len};
            srv_completion_choice fin = {.index = i, .text = "", .finish = c->choices[i].finish};
            if (c->choices[i].len) parts[np++] = srv_json_completion_chunk(&m, &text, 1, usage, NULL);
            parts[np++] = srv_json_completion_chunk(&m, &fin, 1, usage, NULL);
        }
        for (int k = 0; k < np; k++) {
            ok = ok && parts[k] && ryot_buf_printf(&out, "data: %s\n\n", parts[k]);
            free(parts[k]);
        }
    }
    ok = ok && ryot_buf_append(&out, "data: [DONE]\n\n", 14);
    gen_free(g);
    if (!ok) {
        ryot_buf_free(&out);
        return reply_err(conn, 503, NULL, "out of memory");
    }
    return reply_generated(conn, "text/event-stream", out.data, out.len, tier);
}

/* The request's Cache-Control directives that concern the response cache. */
static void cache_control(struct MHD_Connection *conn, bool *no_cache, bool *no_store) {
    *no_cache = *no_store = false;
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cache-Control");
    for (const char *p = v; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,=");
        if (n == 8 && !strncasecmp(p, "no-cache", 8)) *no_cache = true;
        if (n == 8 && !strncasecmp(p, "no-store", 8)) *no_store = true;
        p += n;
        p += strcspn(p, ","); /* skip a directive's argument */
    }
}

/* A token-id prompt i: copied into ids[i] once every id is in the vocab. */
static int copy_prompt_ids(const ryot_model *m, const srv_request *req, int i, int32_t **ids, int *n_ids,
                           srv_error *e) {
    const int n = req->n_prompt_ids[i];
    for (int k = 0; k < n; k++)
        if (req->prompt_ids[i][k] >= ryot_n_vocab(m)) {
            srv_error_set(e, 400, "prompt", "token id %d (prompt %d, position %d) is outside the vocabulary (%d tokens)",
                          (int)req->prompt_ids[i][k], i, k, ryot_n_vocab(m));
            return -1;
        }
    if (!(ids[i] = malloc((size_t)n * sizeof *ids[i]))) {
        srv_error_set(e, 503, NULL, "out of memory");
        return -1;
    }
    memcpy(ids[i], req->prompt_ids[i], (size_t)n * sizeof *ids[i]);
    n_ids[i] = n;
    return 0;
}

/* echo: token-id prompts get their text (prompts[i], NULL until now) from
 * the detokenizer, special tokens spelled out as /detokenize does. */
static int echo_texts(const ryot_model *m, srv_request *req, srv_error *e) {
    for (int i = 0; req->echo && req->prompt_ids && i < req->n_prompts; i++) {
        if (!req->prompt_ids[i]) continue;
        size_t len;
        ryot_error err = {0};
        if (ryot_detokenize(m, req->prompt_ids[i], req->n_prompt_ids[i], true, &req->prompts[i], &len, &err)) {
            srv_error_set(e, 400, "prompt", "detokenize: %s", err.msg);
            return -1;
        }
    }
    return 0;
}

/* Token ids of every prompt of req (chat: the rendered messages, then
 * prefix when not NULL). */
static int tokenize_prompts(const ryot_model *m, const srv_request *req, const char *prefix, int32_t **ids, int *n_ids,
                            srv_error *e) {
    if (req->ep == SRV_EP_CHAT) {
        char *text = NULL;
        size_t len = 0;
        const json_t *tools = srv_tools_active(req) ? req->tools : NULL;
        int rc = render_chat(m, req->messages, req->n_messages, tools, true, &text, &len, e);
        if (!rc && prefix) {
            /* a forced call: the answer continues the call's opening */
            const size_t pl = strlen(prefix);
            char *t = realloc(text, len + pl + 1);
            if (!t) {
                srv_error_set(e, 503, NULL, "out of memory");
                rc = -1;
            } else {
                memcpy(t + len, prefix, pl + 1);
                text = t;
                len += pl;
            }
        }
        if (!rc) rc = tokenize(m, text, len, RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL, &ids[0], &n_ids[0], e);
        free(text);
        return rc;
    }
    for (int i = 0; i < req->n_prompts; i++) {
        if (req->prompt_ids && req->prompt_ids[i]) { /* used as given: no BOS added */
            if (copy_prompt_ids(m, req, i, ids, n_ids, e)) return -1;
        } else if (tokenize(m, req->prompts[i], strlen(req->prompts[i]), RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL,
                            &ids[i], &n_ids[i], e)) {
            return -1;
        }
    }
    return 0;
}

/* The call style, and for a forced call its prefix and grammar, of a chat
 * request with tools active. */
static int tools_setup(const ryot_model *m, gen *g, srv_error *e) {
    const srv_request *req = &g->req;
    if (req->ep != SRV_EP_CHAT || !srv_tools_active(req)) return 0;
    g->tools = true;
    g->tool_style = chat_tools_style(ryot_model_chat_format(m));
    bool nomem;
    g->tool_prefix = srv_tools_prefix(g->tool_style, req, &nomem);
    if (!g->tool_prefix) {
        if (nomem) srv_error_set(e, 503, NULL, "out of memory");
        return nomem ? -1 : 0;
    }
    char *text, param[64];
    ryot_error err = {0};
    ryot_status st = srv_tools_grammar_text(g->tool_style, req, &text, param, sizeof param, &err);
    if (!st) {
        st = grammar_parse(text, strlen(text), &g->tool_grammar, &err);
        free(text);
        if (st && st != RYOT_ERR_NOMEM) snprintf(param, sizeof param, "tools");
    }
    if (st) {
        if (st == RYOT_ERR_NOMEM) srv_error_set(e, 503, NULL, "out of memory");
        else srv_error_set(e, 400, param, "'%s' cannot be followed by a forced call: %s", param, err.msg);
        return -1;
    }
    return 0;
}

/* After an exact miss: embeds the final user message of a candidate
 * request (srv_cache_semantic_context) and looks for a close question of
 * the same context whose answer is still in L1.  true with *val, *len that
 * answer (malloc'd); otherwise g->sem_vec keeps the vector (or stays NULL
 * for a non-candidate) for cache_store to index. */
static bool semantic_lookup(srv_http *h, gen *g, const sched_job_spec *spec, void **val, size_t *len) {
    const char *q = srv_cache_semantic_context(&g->mref.m->fp, &g->req, spec, &g->sem_ctx);
    if (!q) return false;
    g->sem_vec = malloc((size_t)srv_embed_dim(h->embed) * sizeof *g->sem_vec);
    if (!g->sem_vec || srv_embed_text(h->embed, q, strlen(q), g->sem_vec)) {
        free(g->sem_vec);
        g->sem_vec = NULL;
        return false;
    }
    cache_key k;
    if (!cache_sem_search(h->sem, &g->sem_ctx, g->sem_vec, &k, NULL)) return false;
    if (cache_l1_get(h->cache, &k, ryot_now_s(), val, len)) return true;
    cache_sem_stale(h->sem, &k); /* its answer left L1: so does the entry */
    return false;
}

/* Parses body for ep and starts its generation, or finds its answer in the
 * cache: 0 with g's job running (*cache_state "miss" or "coalesced"), 1
 * with *hit filled (srv_cached_free; *cache_state the tier), -1 with *e
 * (g freed).  tier >= 0 overrides the request's priority (tasks). */
static int gen_begin(srv_http *h, srv_endpoint ep, const char *body, size_t len, bool no_cache,
                     bool no_store, int tier_override, gen *g_out, srv_cached *hit_out, const char **cache_state, srv_error *ep_e) {
    gen g = {.h = h};
    srv_error e;
    *cache_state = "miss";
    if (srv_request_parse(body, len, ep, &g.req, ep_e)) return -1;
    if (tier_override >= 0) {
        if (g.req.stream) {
            srv_request_free(&g.req);
            srv_error_set(ep_e, 400, "stream", "'stream' is not supported in tasks and batches");
            return -1;
        }
        g.req.priority = tier_override;
    }
    if (model_take(h, g.req.model, &g.mref, ep_e)) { /* loads it when it is not */
        gen_free(&g);
        return -1;
    }
    sched_runner *runner = g.mref.m->runner;
    /* fields the request left out: the model's recommendation, else OpenAI's
     * (a few lookups in the GGUF's key table: cheap next to any generation) */
    ryot_sampler_params defaults = srv_request_openai_sampling();
    ryot_model_sampling_defaults(sched_runner_model(runner), &defaults);
    srv_request_default_sampling(&g.req, &defaults);
    const srv_request *req = &g.req;
    const int np = ep == SRV_EP_CHAT ? 1 : req->n_prompts;
    int32_t **ids = calloc((size_t)np, sizeof *ids);
    int *n_ids = calloc((size_t)np, sizeof *n_ids);
    int rc = ids && n_ids ? 0 : -1;
    if (rc) srv_error_set(&e, 503, NULL, "out of memory");
    if (!rc) rc = tools_setup(sched_runner_model(runner), &g, &e);
    if (!rc) rc = tokenize_prompts(sched_runner_model(runner), req, g.tool_prefix, ids, n_ids, &e);
    if (!rc) rc = echo_texts(sched_runner_model(runner), &g.req, &e);
    if (!rc) {
        srv_make_id(g.id, sizeof g.id, ep == SRV_EP_CHAT ? "chatcmpl-" : "cmpl-");
        g.created = (int64_t)time(NULL);
        const sched_job_spec spec = {
            .id = g.id,
            .prompts = (const int32_t *const *)ids,
            .n_prompt = n_ids,
            .n_prompts = np,
            .prompt_param = ep == SRV_EP_CHAT ? "messages" : "prompt",
            .n = req->n,
            /* absent: OpenAI's 16 for /v1/completions; chat: the runner's --default-max-tokens */
            .max_tokens = req->max_tokens < 0 && ep == SRV_EP_COMPLETIONS ? 16 : req->max_tokens,
            .sp = req->sp,
            .stop = (const char *const *)req->stop,
            .n_stop = req->n_stop,
            .tier = req->priority,
            .timeout_s = req->timeout_s,
            .ignore_eos = req->ignore_eos,
            .prompt_logprobs = req->echo && req->sp.logprobs,
            .grammar = g.tool_grammar ? g.tool_grammar : req->grammar,
        };
        const bool cacheable = (h->cache || h->l2) && srv_cache_request_key(&g.mref.m->fp, req, &spec, &g.key);
        if (cacheable) {
            void *val = NULL;
            size_t vlen = 0;
            const char *tier = NULL;
            if (!no_cache && h->cache && cache_l1_get(h->cache, &g.key, ryot_now_s(), &val, &vlen)) tier = "hit-l1";
            else if (!no_cache && h->l2 && cache_l2_get(h->l2, &g.key, &val, &vlen)) tier = "hit-l2";
            srv_cached hit;
            if (tier && !srv_cache_decode(val, vlen, spec.n_prompts * spec.n, &hit)) {
                if (h->cache && !strcmp(tier, "hit-l2")) cache_l1_put(h->cache, &g.key, val, vlen, ryot_now_s());
                free(val);
                for (int i = 0; i < np; i++) free(ids[i]);
                free(ids);
                free(n_ids);
                *g_out = g;
                *hit_out = hit;
                *cache_state = tier;
                return 1;
            }
            free(val);
            val = NULL;
            if (!no_cache && h->sem && semantic_lookup(h, &g, &spec, &val, &vlen)) {
                if (!srv_cache_decode(val, vlen, spec.n_prompts * spec.n, &hit)) {
                    free(val);
                    for (int i = 0; i < np; i++) free(ids[i]);
                    free(ids);
                    free(n_ids);
                    *g_out = g;
                    *hit_out = hit;
                    *cache_state = "hit-semantic";
                    return 1;
                }
                free(val);
            }
            if (no_store) {
                free(g.sem_vec);
                g.sem_vec = NULL;
            }
            g.store = !no_store;
            /* the same request already generating: read its answer as it comes */
            if (!no_cache && (g.flight = flight_join(&h->flights, &g.key))) {
                g.job = flight_job(g.flight);
                sched_job_ref(g.job);
                *cache_state = "coalesced";
            }
        }
        sched_error se;
        if (!g.job && (!(g.job = sched_job_new(runner, &spec, &se)) || sched_submit(runner, g.job, &se))) {
            error_from_sched(&e, &se);
            rc = -1;
        } else if (!rc && cacheable && !g.flight) {
            bool joined;
            g.flight = flight_open(&h->flights, &g.key, g.job, &joined); /* NULL (no memory): read directly */
            if (joined) { /* lost a race to another leader of the same request */
                sched_job_cancel(g.job);
                sched_job_unref(g.job);
                g.job = flight_job(g.flight);
                sched_job_ref(g.job);
                *cache_state = "coalesced";
            }
        }
        if (!rc && g.flight && !(g.cursors = calloc((size_t)flight_n_choices(g.flight), sizeof *g.cursors))) {
            srv_error_set(&e, 503, NULL, "out of memory");
            rc = -1;
        }
    }
    for (int i = 0; ids && i < np; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    if (rc) {
        gen_free(&g);
        *ep_e = e;
        return -1;
    }
    g.n_choices = sched_job_n_choices(g.job);
    *g_out = g;
    return 0;
}

static enum MHD_Result generate(srv_http *h, struct MHD_Connection *conn, srv_endpoint ep, const conn_ctx *cx) {
    gen g;
    srv_cached hit;
    srv_error e;
    const char *cache_state;
    bool no_cache, no_store;
    cache_control(conn, &no_cache, &no_store);
    const int rc = gen_begin(h, ep, cx->body.data ? cx->body.data : "", cx->body.len, no_cache, no_store, -1,
                             &g, &hit, &cache_state, &e);
    if (rc < 0) return reply_error(conn, &e);
    if (rc == 1) {
        enum MHD_Result ret = reply_cached(h, conn, &g, &hit, cache_state);
        srv_cached_free(&hit);
        return ret;
    }
    if (g.req.stream) return start_stream(h, conn, &g, cache_state);
    return finish_blocking(h, conn, &g, cache_state);
}

int srv_http_execute(srv_http *h, const char *endpoint, const char *body, size_t len, int tier, char **json) {
    srv_error e;
    *json = NULL;
    bool ready = atomic_load(&h->reg) != NULL;
    srv_endpoint ep = SRV_EP_CHAT;
    if (!ready) {
        srv_error_set(&e, 503, NULL, "the model is loading");
    } else if (!strcmp(endpoint, "/v1/embeddings")) {
        if (!h->embed) {
            srv_error_set(&e, 404, "model", "no embedding model is loaded (ryot serve --embed-model FILE)");
            e.code = "model_not_found";
        } else if (!srv_embed_handle(h->embed, body, len, json, &e)) {
            return 200;
        }
        *json = srv_json_error(&e);
        return e.status;
    } else if (!strcmp(endpoint, "/v1/completions")) {
        ep = SRV_EP_COMPLETIONS;
    } else if (strcmp(endpoint, "/v1/chat/completions")) {
        srv_error_set(&e, 400, "endpoint", "unknown endpoint '%.100s'", endpoint);
        ready = false;
    }
    if (!ready) {
        *json = srv_json_error(&e);
        return e.status;
    }
    gen g;
    srv_cached hit;
    const char *cache_state;
    int rc = gen_begin(h, ep, body, len, false, false, tier, &g, &hit, &cache_state, &e);
    if (rc == 1) {
        *json = cached_json(h, &g, &hit);
        gen_free(&g);
        srv_cached_free(&hit);
        if (*json) return 200;
        srv_error_set(&e, 503, NULL, "out of memory");
    } else if (rc == 0 && !gen_collect(h, &g, -1, json, &e)) {
        return 200;
    }
    *json = srv_json_error(&e);
    return e.status;
}

/* ------------------------------------------------------------------ small endpoints */

static enum MHD_Result do_tokenize(sched_runner *runner, struct MHD_Connection *conn, const conn_ctx *cx) {
    srv_tokenize_req tr;
    srv_error e;
    if (srv_tokenize_parse(cx->body.data ? cx->body.data : "", cx->body.len, &tr, &e)) return reply_error(conn, &e);
    const ryot_model *m = sched_runner_model(runner);
    char *text = NULL;
    size_t len = 0;
    int rc = 0;
    if (tr.content) {
        text = strdup(tr.content);
        len = strlen(tr.content);
        if (!text) rc = -1, srv_error_set(&e, 503, NULL, "out of memory");
    } else {
        rc = render_chat(m, tr.messages, tr.n_messages, NULL, tr.add_generation_prompt, &text, &len, &e);
    }
    int32_t *ids = NULL;
    int n = 0;
    unsigned fl = (tr.add_special ? RYOT_TOK_ADD_BOS : 0) | (tr.parse_special ? RYOT_TOK_SPECIAL : 0);
    if (!rc) rc = tokenize(m, text, len, fl, &ids, &n, &e);
    char *json = NULL;
    if (!rc) {
        srv_piece *pieces = NULL;
        if (tr.with_pieces) {
            pieces = calloc((size_t)n + 1, sizeof *pieces);
            for (int i = 0; pieces && i < n; i++)
                pieces[i].text = tokenizer_token_bytes(ryot_model_tokenizer(m), ids[i], &pieces[i].len);
        }
        json = srv_json_tokenize(ids, n, pieces);
        free(pieces);
    }
    free(ids);
    free(text);
    srv_tokenize_free(&tr);
    if (rc) return reply_error(conn, &e);
    return json ? reply_json(conn, 200, json) : reply_err(conn, 503, NULL, "out of memory");
}

static enum MHD_Result do_detokenize(sched_runner *runner, struct MHD_Connection *conn, const conn_ctx *cx) {
    srv_detokenize_req dr;
    srv_error e;
    if (srv_detokenize_parse(cx->body.data ? cx->body.data : "", cx->body.len, &dr, &e)) return reply_error(conn, &e);
    const ryot_model *m = sched_runner_model(runner);
    for (int i = 0; i < dr.n_tokens; i++)
        if (dr.tokens[i] >= ryot_n_vocab(m)) {
            srv_error_set(&e, 400, "tokens", "token %d is outside the vocabulary (%d tokens)", (int)dr.tokens[i],
                          ryot_n_vocab(m));
            srv_detokenize_free(&dr);
            return reply_error(conn, &e);
        }
    char *text = NULL;
    size_t len = 0;
    ryot_error err = {0};
    ryot_status st = ryot_detokenize(m, dr.tokens, dr.n_tokens, true, &text, &len, &err);
    srv_detokenize_free(&dr);
    if (st) return reply_err(conn, 400, "tokens", err.msg);
    char *json = srv_json_detokenize(text, len);
    free(text);
    return json ? reply_json(conn, 200, json) : reply_err(conn, 503, NULL, "out of memory");
}

static enum MHD_Result do_template(sched_runner *runner, struct MHD_Connection *conn, const conn_ctx *cx) {
    srv_template_req tr;
    srv_error e;
    if (srv_template_parse(cx->body.data ? cx->body.data : "", cx->body.len, &tr, &e)) return reply_error(conn, &e);
    char *text = NULL;
    size_t len = 0;
    int rc = render_chat(sched_runner_model(runner), tr.messages, tr.n_messages, tr.tools, tr.add_generation_prompt, &text,
                         &len, &e);
    srv_template_free(&tr);
    if (rc) return reply_error(conn, &e);
    char *json = srv_json_apply_template(text, len);
    free(text);
    return json ? reply_json(conn, 200, json) : reply_err(conn, 503, NULL, "out of memory");
}

/* The web page (webui.h): public, since it holds no secret (it asks for the
 * key itself and sends it with its API calls), and served while the model
 * loads too.  no-cache plus an ETag: the page changes with the binary, so a
 * browser revalidates each time and gets a bodiless 304 while it is the same. */
static enum MHD_Result do_webui(const srv_http *h, struct MHD_Connection *conn) {
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
    const bool same = inm && (strstr(inm, h->webui_etag) || strcmp(inm, "*") == 0);
    struct MHD_Response *r =
        same ? MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)
             : MHD_create_response_from_buffer(srv_webui_page_len, (void *)srv_webui_page, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    if (!same) MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Content-Security-Policy", h->webui_csp);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "ETag", h->webui_etag);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    enum MHD_Result ret = MHD_queue_response(conn, same ? 304 : 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ------------------------------------------------------------------ request framing */

/* What the header fields say about the body's length (RFC 9112 section 6),
 * over every field line: libmicrohttpd 0.9.75 reads only the first
 * Content-Length and lets a chunked Transfer-Encoding override it, so a
 * proxy in front could frame the same bytes differently. */
typedef struct framing {
    int n_length;     /* Content-Length field lines */
    bool length_bad;  /* one is not 1*DIGIT */
    uint64_t length;  /* the first one's value; UINT64_MAX when it overflows */
    int n_te;         /* Transfer-Encoding field lines */
    int n_chunked;    /* "chunked" codings in them */
    char other[32];   /* the first other coding, "" when none */
} framing;

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static void framing_length(framing *f, const char *v) {
    while (is_ows(*v)) v++;
    uint64_t n = 0;
    const char *p = v;
    for (; *p >= '0' && *p <= '9'; p++) n = n > (UINT64_MAX - 9) / 10 ? UINT64_MAX : n * 10 + (uint64_t)(*p - '0');
    const char *digits_end = p;
    while (is_ows(*p)) p++;
    if (digits_end == v || *p) f->length_bad = true;
    if (f->n_length++ == 0) f->length = n;
}

/* Transfer-Encoding is a comma-separated list of codings (empty elements allowed). */
static void framing_codings(framing *f, const char *v) {
    f->n_te++;
    while (*v) {
        while (is_ows(*v) || *v == ',') v++;
        const char *end = v;
        while (*end && *end != ',') end++;
        size_t n = (size_t)(end - v);
        while (n && is_ows(v[n - 1])) n--;
        if (n == 7 && strncasecmp(v, "chunked", 7) == 0)
            f->n_chunked++;
        else if (n && !f->other[0])
            snprintf(f->other, sizeof f->other, "%.*s", (int)n, v);
        v = end;
    }
}

static enum MHD_Result framing_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    framing *f = cls;
    if (!value) value = "";
    if (strcasecmp(key, "Content-Length") == 0) framing_length(f, value);
    else if (strcasecmp(key, "Transfer-Encoding") == 0) framing_codings(f, value);
    return MHD_YES;
}

/* 0 when the body's length is unambiguous; else -1 with the error (400, or
 * 501 for a transfer coding other than chunked, RFC 9112 section 6.1).  The
 * library refuses a malformed single Content-Length before this is called;
 * length_bad covers any value it lets through. */
static int framing_check(const framing *f, bool http10, srv_error *e) {
    if (f->n_length > 1) {
        srv_error_set(e, 400, NULL, "the request has %d Content-Length headers (one at most)", f->n_length);
    } else if (f->length_bad) {
        srv_error_set(e, 400, NULL, "Content-Length is not a non-negative decimal integer");
    } else if (f->n_te && f->n_length) {
        srv_error_set(e, 400, NULL, "the request has both Content-Length and Transfer-Encoding");
    } else if (f->n_te && http10) {
        srv_error_set(e, 400, NULL, "Transfer-Encoding is not allowed in an HTTP/1.0 request");
    } else if (f->other[0]) {
        srv_error_set(e, 501, NULL, "Transfer-Encoding '%s' is not supported (only chunked)", f->other);
        e->type = "invalid_request_error";
    } else if (f->n_te && f->n_chunked != 1) {
        srv_error_set(e, 400, NULL, "Transfer-Encoding must name chunked exactly once");
    } else {
        return 0;
    }
    return -1;
}

/* First call of a request: headers in, no body read yet (libmicrohttpd
 * answers "Expect: 100-continue" only when no reply is queued here).  Rejects
 * an ambiguous length or a declared body over the limit at once, closing the
 * connection since the body stays unread, and starts the body deadline. */
static enum MHD_Result request_begin(const srv_http *h, struct MHD_Connection *conn, const char *version,
                                     conn_ctx *cx) {
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_field, &f);
    srv_error e;
    if (framing_check(&f, strcmp(version, MHD_HTTP_VERSION_1_0) == 0, &e)) return reply_error_close(conn, &e, true);
    if (f.n_length && f.length > h->p.max_body) {
        srv_error_set(&e, 413, NULL, "the request body exceeds the limit of %zu bytes", h->p.max_body);
        return reply_error_close(conn, &e, true);
    }
    cx->body_deadline = ryot_now_s() + h->p.body_timeout;
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, h->p.body_timeout);
    return MHD_YES;
}

/* One piece of the body.  MHD_NO (the connection closes) once the body
 * deadline has passed; else the inactivity timeout is cut to what is left of
 * it, so a stalled upload ends by the deadline too. */
static enum MHD_Result request_body(const srv_http *h, struct MHD_Connection *conn, conn_ctx *cx, const char *data,
                                    size_t *size) {
    const double left = cx->body_deadline - ryot_now_s();
    if (left <= 0) return MHD_NO;
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)left + 1);
    if (!cx->too_large) {
        if (cx->body.len + *size > h->p.max_body) {
            cx->too_large = true;
            ryot_buf_free(&cx->body);
        } else if (!ryot_buf_append(&cx->body, data, *size)) {
            return MHD_NO;
        }
    }
    *size = 0;
    return MHD_YES;
}

/* POST /v1/embeddings: parsing, encoding and the reply in server/embeddings.c. */
static enum MHD_Result do_embeddings(srv_http *h, struct MHD_Connection *conn, conn_ctx *cx) {
    if (!h->embed) {
        srv_error e;
        srv_error_set(&e, 404, "model", "no embedding model is loaded (ryot serve --embed-model FILE)");
        e.code = "model_not_found";
        return reply_error(conn, &e);
    }
    char *json;
    srv_error e;
    if (srv_embed_handle(h->embed, cx->body.data ? cx->body.data : "", cx->body.len, &json, &e) != 0)
        return reply_error(conn, &e);
    return reply_json(conn, 200, json);
}

/* The model a small endpoint's body names (its optional "model"): with one
 * model served an unknown name is ignored, as it always was; with several
 * it is a 404. */
static int body_model(const srv_http *h, const conn_ctx *cx, model_ref *r, srv_error *e) {
    const char *name = NULL;
    json_t *root = cx->body.len ? json_loadb(cx->body.data, cx->body.len, 0, NULL) : NULL;
    json_t *m = json_is_object(root) ? json_object_get(root, "model") : NULL;
    if (json_is_string(m)) name = json_string_value(m);
    srv_registry *reg = atomic_load(&h->reg);
    if (name && srv_registry_count(reg) == 1 && srv_registry_find(reg, name) < 0) name = NULL;
    const int rc = model_take(h, name, r, e);
    json_decref(root);
    return rc;
}

/* GET /v1/models: every registry entry with its status, then the embedding model. */
static enum MHD_Result do_models(const srv_http *h, struct MHD_Connection *conn) {
    srv_registry *reg = atomic_load(&h->reg);
    const int n = srv_registry_count(reg);
    const char **ids = calloc((size_t)n + 1, sizeof *ids), **status = calloc((size_t)n + 1, sizeof *status);
    char *json = NULL;
    if (ids && status) {
        for (int i = 0; i < n; i++) {
            srv_model_status ms;
            srv_registry_status(reg, i, &ms);
            ids[i] = ms.name;
            status[i] = srv_model_state_name(ms.state);
        }
        int k = n;
        if (h->embed) {
            ids[k] = srv_embed_model_id(h->embed);
            status[k++] = "loaded";
        }
        json = srv_json_models_status(ids, status, k, (int64_t)time(NULL));
    }
    free(ids);
    free(status);
    return json ? reply_json(conn, 200, json) : reply_err(conn, 503, NULL, "out of memory");
}

/* GET /v1/models/{id}: the entry named or aliased id (its own name back). */
static enum MHD_Result do_model_one(const srv_http *h, struct MHD_Connection *conn, const char *id) {
    srv_registry *reg = atomic_load(&h->reg);
    const char *name = NULL, *status = "loaded";
    srv_model_status ms;
    const int idx = srv_registry_find(reg, id);
    if (idx >= 0) {
        srv_registry_status(reg, idx, &ms);
        name = ms.name;
        status = srv_model_state_name(ms.state);
    } else if (h->embed && !strcmp(id, srv_embed_model_id(h->embed))) {
        name = id;
    }
    if (!name) {
        srv_error e;
        model_not_found(reg, id, &e);
        return reply_error(conn, &e);
    }
    char *json = srv_json_models_status(&name, &status, 1, (int64_t)time(NULL));
    json_t *root = json ? json_loads(json, 0, NULL) : NULL; /* the list's one element */
    free(json);
    json = root ? json_dumps(json_array_get(json_object_get(root, "data"), 0), JSON_COMPACT) : NULL;
    json_decref(root);
    return json ? reply_json(conn, 200, json) : MHD_NO;
}

/* GET /metrics: the per-model series (a model="NAME" label on each when
 * several models are served), then the shared ones.  Only loaded models
 * have series: an unloaded model's counters start again at its next load. */
static enum MHD_Result do_metrics(const srv_http *h, struct MHD_Connection *conn) {
    ryot_buf b = {0};
    srv_registry *reg = atomic_load(&h->reg);
    if (reg) {
        const int n = srv_registry_count(reg);
        sched_stats *st = calloc((size_t)n, sizeof *st);
        const char **names = calloc((size_t)n, sizeof *names);
        srv_model_status *ms = calloc((size_t)n, sizeof *ms);
        int k = 0;
        for (int i = 0; st && names && ms && i < n; i++) {
            void *hd;
            srv_registry_status(reg, i, &ms[i]);
            if (!srv_registry_acquire_loaded(reg, i, &hd)) continue;
            sched_runner_stats(((srv_model *)hd)->runner, &st[k]);
            srv_registry_release_loaded(reg, i);
            names[k++] = srv_registry_name(reg, i);
        }
        if (n == 1 && k == 1) srv_metrics_render(&st[0], &b); /* one model: no label, as ever */
        else if (st && names && ms) {
            srv_metrics_render_models(st, names, k, &b);
            srv_metrics_render_registry(ms, n, srv_registry_budget(reg), &b);
        }
        if (h->cache) {
            cache_l1_stats cs;
            cache_l1_stats_get(h->cache, &cs);
            cache_sem_stats ss;
            if (h->sem) cache_sem_stats_get(h->sem, &ss);
            srv_metrics_render_cache(&cs, h->sem ? &ss : NULL, &b);
        }
        if (h->cache || h->l2) {
            pthread_mutex_lock((pthread_mutex_t *)&h->flights.mu);
            unsigned long long co = h->flights.coalesced;
            pthread_mutex_unlock((pthread_mutex_t *)&h->flights.mu);
            ryot_buf_printf(&b, "# HELP ryot_cache_coalesced_total Requests that joined an identical one in flight.\n"
                                "# TYPE ryot_cache_coalesced_total counter\nryot_cache_coalesced_total %llu\n", co);
        }
        if (h->l2) {
            cache_l2_stats ls;
            cache_l2_stats_get(h->l2, &ls);
            srv_metrics_render_redis(&ls, &b);
        }
        if (h->tasks) {
            tasks_stats ts;
            tasks_service_stats(h->tasks, &ts);
            srv_metrics_render_tasks(&ts, &b);
        }
        if (h->sess.st && k) { /* the store serves one model only (src/cli/serve.c) */
            store_stats ss;
            store_get_stats(h->sess.st, &ss);
            srv_metrics_render_store(&ss, &st[0], &b);
        }
        free(st);
        free(names);
        free(ms);
    }
    if (!b.data) ryot_buf_append(&b, "", 0);
    if (!b.data) return MHD_NO;
    return reply(conn, 200, "text/plain; version=0.0.4", b.data, b.len);
}

/* ------------------------------------------------------------------ routing */

typedef enum route {
    R_NONE,
    R_HEALTH,
    R_METRICS,
    R_MODELS,
    R_MODEL_ONE,
    R_CHAT,
    R_COMPLETIONS,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_TEMPLATE,
    R_EMBEDDINGS,
    R_SESSIONS,
    R_SESSION_SAVE,
    R_SESSION_RESTORE,
    R_TASKS,
    R_WEBUI
} route;

static route find_route(const char *url, const char **method_needed) {
    static const struct {
        const char *path;
        const char *method;
        route r;
    } routes[] = {
        {"/health", "GET", R_HEALTH},
        {"/metrics", "GET", R_METRICS},
        {"/v1/models", "GET", R_MODELS},
        {"/v1/chat/completions", "POST", R_CHAT},
        {"/v1/completions", "POST", R_COMPLETIONS},
        {"/tokenize", "POST", R_TOKENIZE},
        {"/detokenize", "POST", R_DETOKENIZE},
        {"/apply-template", "POST", R_TEMPLATE},
        {"/v1/embeddings", "POST", R_EMBEDDINGS},
        {"/v1/sessions", "GET", R_SESSIONS},
        {"/", "GET", R_WEBUI},
        {"/index.html", "GET", R_WEBUI},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(url, routes[i].path) == 0) {
            *method_needed = routes[i].method;
            return routes[i].r;
        }
    if (strncmp(url, "/v1/models/", 11) == 0 && url[11]) {
        *method_needed = "GET";
        return R_MODEL_ONE;
    }
    if (strncmp(url, "/v1/sessions/", 13) == 0) { /* /v1/sessions/{id}/save|restore */
        const char *slash = strrchr(url + 13, '/');
        if (slash && slash > url + 13 && (!strcmp(slash, "/save") || !strcmp(slash, "/restore"))) {
            *method_needed = "POST";
            return slash[1] == 's' ? R_SESSION_SAVE : R_SESSION_RESTORE;
        }
    }
    if (tasks_route(url)) {
        *method_needed = NULL; /* the task module checks methods itself */
        return R_TASKS;
    }
    return R_NONE;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    srv_http *h = cls;
    conn_ctx *cx = *con_cls;
    if (!cx) {
        cx = calloc(1, sizeof *cx);
        if (!cx) return MHD_NO;
        *con_cls = cx;
        return request_begin(h, conn, version, cx);
    }
    if (*upload_size) return request_body(h, conn, cx, upload, upload_size);
    /* the whole request is in: back to the idle limit while it is served */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, IDLE_TIMEOUT_S);
    if (cx->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body exceeds the limit of %zu bytes", h->p.max_body);
        return reply_err(conn, 413, NULL, msg);
    }
    const char *need = NULL;
    route r = find_route(url, &need);
    if (r == R_WEBUI && !h->webui_csp) r = R_NONE; /* --no-webui */
    if (r == R_TASKS && !h->tasks) r = R_NONE;
    if (r == R_NONE) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown route %.120s %.16s", url, method);
        srv_error e;
        srv_error_set(&e, 404, NULL, "%s", msg);
        e.code = "not_found";
        return reply_error(conn, &e);
    }
    const bool head_ok = r == R_HEALTH || r == R_WEBUI; /* MHD sends a HEAD reply without its body */
    if (need && strcmp(method, need) != 0 && !(head_ok && strcmp(method, "HEAD") == 0)) {
        char msg[96];
        snprintf(msg, sizeof msg, "%.16s is not allowed on %.40s (use %s)", method, url, need);
        srv_error e;
        srv_error_set(&e, 405, NULL, "%s", msg);
        char *json = srv_json_error(&e);
        if (!json) return MHD_NO;
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(json);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Allow", head_ok ? "GET, HEAD" : need);
        enum MHD_Result ret = MHD_queue_response(conn, 405, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (r == R_WEBUI) return do_webui(h, conn);
    const bool ready = atomic_load(&h->reg) != NULL;
    if (r == R_HEALTH) {
        if (!ready) return reply_err(conn, 503, NULL, "the model is loading");
        return reply_json(conn, 200, strdup("{\"status\":\"ok\"}"));
    }
    if (r == R_METRICS) return do_metrics(h, conn);
    if (!authorized(h, conn)) return reply_err(conn, 401, NULL, "missing or invalid API key (Authorization: Bearer ...)");
    if (!ready) return reply_err(conn, 503, NULL, "the model is loading");
    switch (r) {
    case R_MODELS: return do_models(h, conn);
    case R_MODEL_ONE: return do_model_one(h, conn, url + 11);
    case R_CHAT: return generate(h, conn, SRV_EP_CHAT, cx);
    case R_COMPLETIONS: return generate(h, conn, SRV_EP_COMPLETIONS, cx);
    case R_TOKENIZE:
    case R_DETOKENIZE:
    case R_TEMPLATE: {
        model_ref mr;
        srv_error e;
        if (body_model(h, cx, &mr, &e)) return reply_error(conn, &e);
        const enum MHD_Result ret = r == R_TOKENIZE     ? do_tokenize(mr.m->runner, conn, cx)
                                    : r == R_DETOKENIZE ? do_detokenize(mr.m->runner, conn, cx)
                                                        : do_template(mr.m->runner, conn, cx);
        model_put(h, &mr);
        return ret;
    }
    case R_EMBEDDINGS: return do_embeddings(h, conn, cx);
    case R_SESSIONS:
    case R_SESSION_SAVE:
    case R_SESSION_RESTORE: {
        if (!h->sess.st) {
            srv_error e;
            srv_error_set(&e, 404, NULL, "sessions need the persistent store (ryot serve --store DIR)");
            e.code = "not_found";
            return reply_error(conn, &e);
        }
        char *json = NULL, id[STORE_SESSION_ID_MAX + 2] = "";
        if (r != R_SESSIONS) {
            const char *p = url + 13;
            const size_t n = (size_t)(strrchr(p, '/') - p);
            if (n < sizeof id) memcpy(id, p, n), id[n] = 0;
            else snprintf(id, sizeof id, "%s", "(too long)"); /* refused as a bad id */
        }
        model_ref mr;
        srv_error e;
        if (model_take(h, NULL, &mr, &e)) return reply_error(conn, &e); /* the store's one model */
        const int status = r == R_SESSIONS ? srv_session_list(&h->sess, &json)
                           : r == R_SESSION_SAVE
                               ? srv_session_save(&h->sess, mr.m->runner, id, cx->body.data, cx->body.len, &json)
                               : srv_session_restore(&h->sess, mr.m->runner, id, &json);
        model_put(h, &mr);
        return json ? reply_json(conn, status, json) : MHD_NO;
    }
    case R_TASKS: return srv_tasks_http(h->tasks, conn, url, method, cx->body.data, cx->body.len);
    default: return reply_err(conn, 404, NULL, "unknown route");
    }
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx *cx = *con_cls;
    if (!cx) return;
    ryot_buf_free(&cx->body);
    free(cx);
    *con_cls = NULL;
}

/* ------------------------------------------------------------------ lifecycle */

ryot_status srv_http_start(const srv_http_params *pp, srv_http **out, ryot_error *err) {
    *out = NULL;
    srv_http *h = calloc(1, sizeof *h);
    if (!h) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    h->p = *pp;
    if (!h->p.host) h->p.host = "127.0.0.1";
    if (!h->p.max_body) h->p.max_body = 8u << 20;
    if (!h->p.body_timeout) h->p.body_timeout = 60;
    if (h->p.max_connections <= 0) h->p.max_connections = 1024;
    if (pp->api_key && *pp->api_key) h->api_key = strdup(pp->api_key);
    atomic_init(&h->reg, NULL);
    flight_table_init(&h->flights);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)h->p.port);
    ryot_status st = RYOT_OK;
    if (!h->p.no_webui && !(h->webui_csp = srv_webui_csp((const char *)srv_webui_page)))
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    if (h->webui_csp) {
        char d[45];
        srv_webui_sha256_b64(srv_webui_page, srv_webui_page_len, d);
        snprintf(h->webui_etag, sizeof h->webui_etag, "\"%.43s\"", d); /* the digest without its '=' pad */
    }
    if (!st && inet_pton(AF_INET, h->p.host, &addr.sin_addr) != 1)
        st = ryot_fail(err, RYOT_ERR_INVALID, "--host %s is not an IPv4 address", pp->host);
    if (!st && pp->redis_url)
        st = cache_l2_new(pp->redis_url, pp->redis_timeout_ms, (int64_t)(pp->cache_ttl_s > 0 ? pp->cache_ttl_s : 3600),
                          &h->l2, err);
    if (st) {
        srv_http_stop(h);
        return st;
    }
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                MHD_USE_ITC,
                            (uint16_t)h->p.port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->p.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_THREAD_STACK_SIZE,
                            (size_t)(512 * 1024), MHD_OPTION_END);
    if (!h->d) {
        st = ryot_fail(err, RYOT_ERR_IO, "cannot listen on %s:%d (%s)", pp->host ? pp->host : "127.0.0.1", pp->port,
                       strerror(errno));
        srv_http_stop(h);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : pp->port;
    *out = h;
    return RYOT_OK;
}

int srv_http_port(const srv_http *h) { return h->port; }

void srv_http_set_registry(srv_http *h, srv_registry *reg) {
    if (h->p.cache_bytes) h->cache = cache_l1_new(h->p.cache_bytes, h->p.cache_ttl_s > 0 ? h->p.cache_ttl_s : 3600);
    if (h->cache && h->embed && h->p.semantic_threshold > 0)
        h->sem = cache_sem_new(srv_embed_dim(h->embed),
                               h->p.semantic_entries ? h->p.semantic_entries : CACHE_SEM_DEFAULT_ENTRIES,
                               h->p.semantic_threshold);
    atomic_store(&h->reg, reg);
}

void srv_http_set_embed(srv_http *h, srv_embed *e) { h->embed = e; }

void srv_http_set_store(srv_http *h, store *st, const uint8_t model_id[STORE_MODEL_ID_BYTES], int block_size) {
    h->sess.st = st;
    memcpy(h->sess.model_id, model_id, STORE_MODEL_ID_BYTES);
    h->sess.block_size = block_size;
}
void srv_http_set_tasks(srv_http *h, tasks_service *t) { h->tasks = t; }

void srv_http_quiesce(srv_http *h) {
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET) close(s);
}

void srv_http_stop(srv_http *h) {
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    free(h->webui_csp);
    free(h->api_key);
    cache_l1_free(h->cache);
    cache_l2_free(h->l2);
    cache_sem_free(h->sem);
    flight_table_destroy(&h->flights);
    free(h);
}
