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
#include "server/metrics.h"
#include "server/openai.h"
#include "server/request.h"
#include "server/webui.h"
#include "tokenizer/tokenizer.h"

#define WAIT_SLICE_MS 50 /* how often a waiting handler checks its client */
/* Inactivity limit of a connection outside the body upload: waiting for the
 * next request on a keep-alive connection, or for request headers. */
#define IDLE_TIMEOUT_S 600u

struct srv_http {
    struct MHD_Daemon *d;
    srv_http_params p;
    char *api_key;
    char *webui_csp; /* the page's Content-Security-Policy (webui.h) */
    _Atomic(sched_runner *) core;
    char *model_id;
    char **aliases;
    int n_aliases;
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

static bool model_known(const srv_http *h, const char *name) {
    if (!name) return true;
    if (strcmp(name, h->model_id) == 0) return true;
    for (int i = 0; i < h->n_aliases; i++)
        if (strcmp(name, h->aliases[i]) == 0) return true;
    return false;
}

/* Chat messages -> prompt text through the model's template. */
static int render_chat(const ryot_model *m, const srv_message *msgs, int n, bool add_gen, char **out, size_t *len,
                       srv_error *e) {
    ryot_chat_message *cm = calloc((size_t)n, sizeof *cm);
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
} gen;

static void gen_free(gen *g) {
    sched_job_unref(g->job);
    srv_request_free(&g->req);
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

/* ------------------------------------------------------------------ streaming */

typedef struct stream_ctx {
    srv_http *h;
    gen g;
    int fd;
    ryot_buf out;         /* formatted bytes not yet handed to MHD */
    size_t off;
    bool ended;
    bool *role_sent;      /* per choice (chat) */
    bool *fin_sent;
    int64_t *text_chars;  /* per choice: text_offset of the next token (completions logprobs) */
    int n_fin;
    sched_take take;
} stream_ctx;

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
    m->model = s->h->model_id;
    m->system_fingerprint = NULL;
}

/* Formats what choice i produced since the last call. */
static void stream_choice(stream_ctx *s, int i) {
    const srv_request *req = &s->g.req;
    sched_take *t = &s->take;
    sched_take_clear(t);
    if (!sched_job_take(s->g.job, i, t, 0) && s->role_sent[i]) return;
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
        if (t->text.len || t->n_lp) {
            srv_chat_delta d = {.index = i,
                                .content = t->text.data ? t->text.data : "",
                                .content_len = t->text.len,
                                .with_logprobs = lp,
                                .lp = t->lp,
                                .n_lp = t->n_lp};
            sse(s, srv_json_chat_chunk(&m, &d, 1, usage, NULL));
        }
        if (t->finished && !s->fin_sent[i] && t->finish != SCHED_FINISH_NONE) { /* NONE: failed, error event follows */
            srv_chat_delta d = {.index = i, .finish = t->finish};
            sse(s, srv_json_chat_chunk(&m, &d, 1, usage, NULL));
        }
    } else {
        s->role_sent[i] = true;
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
    } else if (s->g.req.include_usage) {
        srv_resp_meta m;
        stream_meta(s, &m);
        srv_usage u = usage_of(&r);
        sse(s, s->g.req.ep == SRV_EP_CHAT ? srv_json_chat_chunk(&m, NULL, 0, true, &u)
                                          : srv_json_completion_chunk(&m, NULL, 0, true, &u));
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
        sched_job_wait(s->g.job, WAIT_SLICE_MS);
        if (client_gone(s->fd)) {
            sched_job_cancel(s->g.job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    stream_ctx *s = cls;
    if (!sched_job_done(s->g.job)) sched_job_cancel(s->g.job); /* client gone mid-stream */
    gen_free(&s->g);
    ryot_buf_free(&s->out);
    sched_take_free(&s->take);
    free(s->role_sent);
    free(s->fin_sent);
    free(s->text_chars);
    free(s);
}

/* Takes g over (it is freed on every path). */
static enum MHD_Result start_stream(srv_http *h, struct MHD_Connection *conn, gen *g) {
    const int nc = g->n_choices;
    stream_ctx *s = calloc(1, sizeof *s);
    if (s) {
        s->role_sent = calloc((size_t)nc, sizeof *s->role_sent);
        s->fin_sent = calloc((size_t)nc, sizeof *s->fin_sent);
        s->text_chars = calloc((size_t)nc, sizeof *s->text_chars);
    }
    if (!s || !s->role_sent || !s->fin_sent || !s->text_chars) {
        if (s) {
            free(s->role_sent);
            free(s->fin_sent);
            free(s->text_chars);
            free(s);
        }
        sched_job_cancel(g->job);
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
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ------------------------------------------------------------------ generation */

/* Waits for the job and answers with the whole completion.  Takes g over. */
static enum MHD_Result finish_blocking(srv_http *h, struct MHD_Connection *conn, gen *g) {
    const int fd = conn_fd(conn);
    while (!sched_job_wait_done(g->job, WAIT_SLICE_MS)) {
        if (client_gone(fd)) {
            sched_job_cancel(g->job);
            gen_free(g);
            return MHD_NO;
        }
    }
    sched_job_result res;
    sched_job_result_get(g->job, &res);
    if (res.failed) {
        srv_error e;
        error_from_sched(&e, &res.err);
        gen_free(g);
        return reply_error(conn, &e);
    }
    const int nc = g->n_choices;
    const bool lp = g->req.sp.logprobs;
    sched_take *t = calloc((size_t)nc, sizeof *t);
    srv_chat_choice *cc = calloc((size_t)nc, sizeof *cc);
    srv_completion_choice *pc = calloc((size_t)nc, sizeof *pc);
    char *json = NULL;
    if (t && cc && pc) {
        for (int i = 0; i < nc; i++) {
            sched_job_take(g->job, i, &t[i], 0);
            const char *text = t[i].text.data ? t[i].text.data : "";
            cc[i] = (srv_chat_choice){.index = i,
                                      .content = text,
                                      .content_len = t[i].text.len,
                                      .finish = t[i].finish,
                                      .with_logprobs = lp,
                                      .lp = t[i].lp,
                                      .n_lp = t[i].n_lp};
            pc[i] = (srv_completion_choice){.index = i,
                                            .text = text,
                                            .text_len = t[i].text.len,
                                            .finish = t[i].finish,
                                            .with_logprobs = lp,
                                            .lp = t[i].lp,
                                            .n_lp = t[i].n_lp};
        }
        srv_resp_meta m = {.id = g->id, .created = g->created, .model = h->model_id};
        srv_usage u = usage_of(&res);
        json = g->req.ep == SRV_EP_CHAT ? srv_json_chat_completion(&m, cc, nc, &u) : srv_json_completion(&m, pc, nc, &u);
    }
    if (t)
        for (int i = 0; i < nc; i++) sched_take_free(&t[i]);
    free(t);
    free(cc);
    free(pc);
    gen_free(g);
    if (!json) return reply_err(conn, 503, NULL, "out of memory");
    return reply_json(conn, 200, json);
}

/* Token ids of every prompt of req (chat: the rendered messages). */
static int tokenize_prompts(const ryot_model *m, const srv_request *req, int32_t **ids, int *n_ids, srv_error *e) {
    if (req->ep == SRV_EP_CHAT) {
        char *text = NULL;
        size_t len = 0;
        int rc = render_chat(m, req->messages, req->n_messages, true, &text, &len, e);
        if (!rc) rc = tokenize(m, text, len, RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL, &ids[0], &n_ids[0], e);
        free(text);
        return rc;
    }
    for (int i = 0; i < req->n_prompts; i++)
        if (tokenize(m, req->prompts[i], strlen(req->prompts[i]), RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL, &ids[i],
                     &n_ids[i], e))
            return -1;
    return 0;
}

static enum MHD_Result generate(srv_http *h, sched_runner *core, struct MHD_Connection *conn, srv_endpoint ep,
                                const conn_ctx *cx) {
    gen g = {0};
    srv_error e;
    if (srv_request_parse(cx->body.data ? cx->body.data : "", cx->body.len, ep, &g.req, &e))
        return reply_error(conn, &e);
    const srv_request *req = &g.req;
    if (!model_known(h, req->model)) {
        srv_error_set(&e, 404, "model", "the model '%s' does not exist (this server serves '%s')", req->model,
                      h->model_id);
        e.code = "model_not_found";
        gen_free(&g);
        return reply_error(conn, &e);
    }
    const int np = ep == SRV_EP_CHAT ? 1 : req->n_prompts;
    int32_t **ids = calloc((size_t)np, sizeof *ids);
    int *n_ids = calloc((size_t)np, sizeof *n_ids);
    int rc = ids && n_ids ? 0 : -1;
    if (rc) srv_error_set(&e, 503, NULL, "out of memory");
    if (!rc) rc = tokenize_prompts(sched_runner_model(core), req, ids, n_ids, &e);
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
        };
        sched_error se;
        if (!(g.job = sched_job_new(core, &spec, &se)) || sched_submit(core, g.job, &se)) {
            error_from_sched(&e, &se);
            rc = -1;
        }
    }
    for (int i = 0; ids && i < np; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    if (rc) {
        gen_free(&g);
        return reply_error(conn, &e);
    }
    g.n_choices = sched_job_n_choices(g.job);
    if (req->stream) return start_stream(h, conn, &g);
    return finish_blocking(h, conn, &g);
}

/* ------------------------------------------------------------------ small endpoints */

static enum MHD_Result do_tokenize(sched_runner *core, struct MHD_Connection *conn, const conn_ctx *cx) {
    srv_tokenize_req tr;
    srv_error e;
    if (srv_tokenize_parse(cx->body.data ? cx->body.data : "", cx->body.len, &tr, &e)) return reply_error(conn, &e);
    const ryot_model *m = sched_runner_model(core);
    char *text = NULL;
    size_t len = 0;
    int rc = 0;
    if (tr.content) {
        text = strdup(tr.content);
        len = strlen(tr.content);
        if (!text) rc = -1, srv_error_set(&e, 503, NULL, "out of memory");
    } else {
        rc = render_chat(m, tr.messages, tr.n_messages, tr.add_generation_prompt, &text, &len, &e);
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

static enum MHD_Result do_detokenize(sched_runner *core, struct MHD_Connection *conn, const conn_ctx *cx) {
    srv_detokenize_req dr;
    srv_error e;
    if (srv_detokenize_parse(cx->body.data ? cx->body.data : "", cx->body.len, &dr, &e)) return reply_error(conn, &e);
    const ryot_model *m = sched_runner_model(core);
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

static enum MHD_Result do_template(sched_runner *core, struct MHD_Connection *conn, const conn_ctx *cx) {
    srv_template_req tr;
    srv_error e;
    if (srv_template_parse(cx->body.data ? cx->body.data : "", cx->body.len, &tr, &e)) return reply_error(conn, &e);
    char *text = NULL;
    size_t len = 0;
    int rc = render_chat(sched_runner_model(core), tr.messages, tr.n_messages, tr.add_generation_prompt, &text, &len, &e);
    srv_template_free(&tr);
    if (rc) return reply_error(conn, &e);
    char *json = srv_json_apply_template(text, len);
    free(text);
    return json ? reply_json(conn, 200, json) : reply_err(conn, 503, NULL, "out of memory");
}

/* The web page: public (it asks for the key itself and sends it to /v1/*),
 * served while the model loads too.  no-cache: the page changes with the
 * binary, so a browser revalidates (it is small) rather than keep an old one. */
static enum MHD_Result do_webui(const srv_http *h, struct MHD_Connection *conn) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(srv_webui_page_len, (void *)srv_webui_page, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Content-Security-Policy", h->webui_csp);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
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
    const route r = find_route(url, &need);
    if (r == R_NONE) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown route %.120s %.16s", url, method);
        srv_error e;
        srv_error_set(&e, 404, NULL, "%s", msg);
        e.code = "not_found";
        return reply_error(conn, &e);
    }
    if (strcmp(method, need) != 0 && !((r == R_HEALTH || r == R_WEBUI) && strcmp(method, "HEAD") == 0)) {
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
        MHD_add_response_header(resp, "Allow", need);
        enum MHD_Result ret = MHD_queue_response(conn, 405, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (r == R_WEBUI) return do_webui(h, conn);
    sched_runner *core = atomic_load(&h->core);
    if (r == R_HEALTH) {
        if (!core) return reply_err(conn, 503, NULL, "the model is loading");
        return reply_json(conn, 200, strdup("{\"status\":\"ok\"}"));
    }
    if (r == R_METRICS) {
        ryot_buf b = {0};
        if (core) {
            sched_stats st;
            sched_runner_stats(core, &st);
            srv_metrics_render(&st, &b);
        }
        if (!b.data) ryot_buf_append(&b, "", 0);
        if (!b.data) return MHD_NO;
        return reply(conn, 200, "text/plain; version=0.0.4", b.data, b.len);
    }
    if (!authorized(h, conn)) return reply_err(conn, 401, NULL, "missing or invalid API key (Authorization: Bearer ...)");
    if (!core) return reply_err(conn, 503, NULL, "the model is loading");
    switch (r) {
    case R_MODELS: {
        const char *ids[1] = {h->model_id};
        return reply_json(conn, 200, srv_json_models(ids, 1, (int64_t)time(NULL)));
    }
    case R_MODEL_ONE: {
        const char *id = url + 11;
        if (!model_known(h, id)) {
            srv_error e;
            srv_error_set(&e, 404, "model", "the model '%.200s' does not exist", id);
            e.code = "model_not_found";
            return reply_error(conn, &e);
        }
        json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", h->model_id, "object", "model", "created",
                              (json_int_t)time(NULL), "owned_by", "ryot");
        char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return json ? reply_json(conn, 200, json) : MHD_NO;
    }
    case R_CHAT: return generate(h, core, conn, SRV_EP_CHAT, cx);
    case R_COMPLETIONS: return generate(h, core, conn, SRV_EP_COMPLETIONS, cx);
    case R_TOKENIZE: return do_tokenize(core, conn, cx);
    case R_DETOKENIZE: return do_detokenize(core, conn, cx);
    case R_TEMPLATE: return do_template(core, conn, cx);
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
    h->webui_csp = srv_webui_csp((const char *)srv_webui_page);
    if (!h->webui_csp) {
        free(h->api_key);
        free(h);
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    atomic_init(&h->core, NULL);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)h->p.port);
    if (inet_pton(AF_INET, h->p.host, &addr.sin_addr) != 1) {
        free(h->webui_csp);
        free(h->api_key);
        free(h);
        return ryot_fail(err, RYOT_ERR_INVALID, "--host %s is not an IPv4 address", pp->host);
    }
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                MHD_USE_ITC,
                            (uint16_t)h->p.port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->p.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_THREAD_STACK_SIZE,
                            (size_t)(512 * 1024), MHD_OPTION_END);
    if (!h->d) {
        free(h->webui_csp);
        free(h->api_key);
        free(h);
        return ryot_fail(err, RYOT_ERR_IO, "cannot listen on %s:%d (%s)", pp->host ? pp->host : "127.0.0.1",
                         pp->port, strerror(errno));
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : pp->port;
    *out = h;
    return RYOT_OK;
}

int srv_http_port(const srv_http *h) { return h->port; }

void srv_http_set_core(srv_http *h, sched_runner *core, const char *model_id, const char *const *aliases, int n_aliases) {
    h->model_id = strdup(model_id);
    h->aliases = calloc((size_t)(n_aliases > 0 ? n_aliases : 1), sizeof *h->aliases);
    for (int i = 0; h->aliases && i < n_aliases; i++)
        if (aliases[i] && (h->aliases[h->n_aliases] = strdup(aliases[i]))) h->n_aliases++;
    atomic_store(&h->core, core);
}

void srv_http_quiesce(srv_http *h) {
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET) close(s);
}

void srv_http_stop(srv_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    for (int i = 0; i < h->n_aliases; i++) free(h->aliases[i]);
    free(h->aliases);
    free(h->model_id);
    free(h->webui_csp);
    free(h->api_key);
    free(h);
}
