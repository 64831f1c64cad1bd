/* Load generator against a scripted fake SSE server.
 *
 * The server (a thread per connection on 127.0.0.1, port 0) answers POSTs by
 * path:
 *   /ok       200, text/event-stream: a role-only chunk, then content events
 *             at 50 ms after the request, then every 20 ms (5 tokens), each
 *             event split across two TCP writes 5 ms apart; a usage chunk
 *             (completion_tokens 5); [DONE].  CRLF line ends on odd events.
 *   /nousage  the same without the usage chunk (tokens counted from events).
 *   /429, /500  that status with a JSON error body.
 * Also: the SSE parser at every split point, and the workloads' request
 * bodies (synthetic, shared-prefix conversations, tier mix, JSONL replay).
 *
 * Two checks per request:
 *  - against what the server really did: it records (CLOCK_MONOTONIC, the
 *    same clock in the same process) when it finished writing each event, so
 *    the client's first-token instant, every ITL and the end must match those
 *    within TOL_MS.  What remains is the client's own wake-up delay between
 *    bytes arriving and its callback: well under 1 ms on an idle machine, but
 *    up to ~12 ms was seen under AddressSanitizer on the 2-core test machine
 *    at load average 8 (the scheduler's wake-up latency with ~4 runnable
 *    threads per core).  15 ms stays below the 20 ms step, and the errors a
 *    wrong rule makes are bigger still or change the event counts checked
 *    exactly (TTFT from the role chunk: 50 ms; ITL per read instead of per
 *    event: 10 gaps instead of 4).
 *  - against the script: TTFT can never be under 50 ms nor ITL far under the
 *    scripted steps (exact lower bounds); upper bounds are left to the first
 *    check, since the server's own sleeps overshoot on a loaded machine. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "benchsuite/loadgen.h"
#include "core/clock.h"
#include "benchsuite/results.h"
#include "benchsuite/sse.h"
#include "benchsuite/workload.h"

#include <jansson.h>

#define TOL_MS 15.0
#define FIRST_MS 50
#define STEP_MS 20
#define N_TOK 5

/* What the server did for request id (the "rid" field of the body). */
#define MAX_RID 64
typedef struct server_rec {
    double t_recv;        /* request fully read */
    double t_tok[N_TOK];  /* last byte of each content event written */
    double t_end;         /* [DONE] written */
} server_rec;
static server_rec g_rec[MAX_RID];

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Sleep until t0 + ms (absolute schedule, so errors do not accumulate). */
static void sleep_until(double t0, double ms) {
    double wait = t0 + ms / 1e3 - ryot_now_s();
    if (wait > 0) sleep_ms(wait * 1e3);
}

static void send_all(int fd, const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* Reads headers and a Content-Length body; returns the path (static per
 * connection buffer) or NULL. */
static bool read_request(int fd, char *path, size_t path_cap, int *rid) {
    char buf[65536];
    size_t len = 0;
    char *hdr_end = NULL;
    while (!hdr_end) {
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0) return false;
        len += (size_t)r;
        buf[len] = '\0';
        hdr_end = strstr(buf, "\r\n\r\n");
        if (!hdr_end && len >= sizeof buf - 1) return false;
    }
    size_t body_have = len - (size_t)(hdr_end + 4 - buf);
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t body_len = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
    while (body_have < body_len) {
        if (len >= sizeof buf - 1) return false;
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0) return false;
        body_have += (size_t)r;
        len += (size_t)r;
        buf[len] = '\0';
    }
    const char *id = strstr(hdr_end, "\"rid\":");
    *rid = id ? atoi(id + 6) : -1;
    if (sscanf(buf, "POST %255s", path) != 1 && sscanf(buf, "GET %255s", path) != 1) return false;
    (void)path_cap;
    return true;
}

static void serve_stream(int fd, double t0, bool usage, server_rec *rec) {
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
    send_all(fd, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n");
    for (int i = 0; i < N_TOK; i++) {
        double at = FIRST_MS + i * STEP_MS;
        char ev[256];
        const char *nl = (i % 2) ? "\r\n" : "\n";
        snprintf(ev, sizeof ev, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}]}%s%s", i,
                 nl, nl);
        size_t half = strlen(ev) / 2;
        char first[256];
        memcpy(first, ev, half);
        first[half] = '\0';
        sleep_until(t0, at - 5);
        send_all(fd, first); /* the event is incomplete until the rest */
        sleep_until(t0, at);
        send_all(fd, ev + half);
        if (rec) rec->t_tok[i] = ryot_now_s();
    }
    if (usage)
        send_all(fd, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5,"
                     "\"total_tokens\":12}}\n\n");
    send_all(fd, ": keep-alive comment\n\ndata: [DONE]\n\n");
    if (rec) rec->t_end = ryot_now_s();
}

static void *conn_thread(void *arg) {
    int fd = (int)(intptr_t)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char path[256];
    int rid = -1;
    if (read_request(fd, path, sizeof path, &rid)) {
        double t0 = ryot_now_s();
        server_rec *rec = rid >= 0 && rid < MAX_RID ? &g_rec[rid] : NULL;
        if (rec) rec->t_recv = t0;
        if (!strcmp(path, "/ok"))
            serve_stream(fd, t0, true, rec);
        else if (!strcmp(path, "/nousage"))
            serve_stream(fd, t0, false, rec);
        else if (!strcmp(path, "/429"))
            send_all(fd, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: "
                         "37\r\nConnection: close\r\n\r\n{\"error\":{\"message\":\"queue is full\"}}");
        else
            send_all(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops");
    }
    shutdown(fd, SHUT_WR);
    char drain[256];
    while (recv(fd, drain, sizeof drain, 0) > 0) {
    }
    close(fd);
    return NULL;
}

typedef struct fake_server {
    int lfd, port;
    pthread_t th;
} fake_server;

static void *accept_thread(void *arg) {
    fake_server *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        pthread_t t;
        if (pthread_create(&t, NULL, conn_thread, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static fake_server *server_start(void) {
    fake_server *s = calloc(1, sizeof *s);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, accept_thread, s), 0);
    return s;
}

static void server_stop(fake_server *s) {
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->th, NULL);
    free(s);
}

/* A source of n identical requests. */
typedef struct fixed_src {
    long left;
    int done_calls, next_id;
} fixed_src;

static ryot_status fixed_next(void *ud, lg_request *req, ryot_error *err) {
    (void)err;
    fixed_src *f = ud;
    if (f->left <= 0) return RYOT_ERR_NOT_FOUND;
    f->left--;
    char body[160];
    int id = f->next_id++;
    snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,\"rid\":%d}", id);
    req->body = strdup(body);
    req->user = id; /* lets a result find the server's record */
    req->tier = 2;
    return RYOT_OK;
}

static void fixed_done(void *ud, const lg_request *req, const lg_result *res) {
    (void)req;
    (void)res;
    ((fixed_src *)ud)->done_calls++;
}

static double g_wall_start; /* of the last run: absolute times of results */

static lg_run run_against(fake_server *s, const char *path, int in_flight, long n, double rate, bool keep_text) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    lg_config cfg = lg_config_default();
    cfg.url = url;
    cfg.max_in_flight = in_flight;
    cfg.num_requests = n;
    cfg.rate = rate;
    cfg.timeout_s = 5;
    cfg.keep_text = keep_text;
    fixed_src f = {.left = n};
    lg_source src = {.ud = &f, .next = fixed_next, .done = fixed_done};
    lg_run run;
    ryot_error err = {0};
    ryot_status st = lg_run_load(&cfg, &src, &run, &err);
    if (st != RYOT_OK) fprintf(stderr, "lg_run_load: %s\n", err.msg);
    assert_int_equal(st, RYOT_OK);
    assert_int_equal(run.n_results, (size_t)n);
    assert_int_equal(f.done_calls, (int)n);
    g_wall_start = run.wall_start;
    return run;
}

static void within(const char *what, double got, double want) {
    if (!(fabs(got - want) <= TOL_MS)) fail_msg("%s: measured %.2f ms, scripted %.2f ms (tolerance %.0f)", what, got, want, TOL_MS);
}

static void check_timing(const lg_result *r) {
    assert_true(r->ok);
    assert_int_equal(r->http_status, 200);
    assert_int_equal(r->n_events, N_TOK);
    assert_int_equal(r->n_itl, N_TOK - 1);
    /* against the server's record: absolute instants on the shared clock */
    assert_true(r->user >= 0 && r->user < MAX_RID);
    const server_rec *rec = &g_rec[r->user];
    double t_send = g_wall_start + r->start_s;
    assert_true(t_send <= rec->t_recv); /* sent before the server had it */
    within("first token vs server", (t_send + r->ttft_ms / 1e3 - rec->t_tok[0]) * 1e3, 0);
    for (size_t i = 0; i < r->n_itl; i++)
        within("ITL vs server", r->itl_ms[i], (rec->t_tok[i + 1] - rec->t_tok[i]) * 1e3);
    within("end vs server", (t_send + r->e2e_ms / 1e3 - rec->t_end) * 1e3, 0);
    double srv_tpot = (rec->t_end - rec->t_tok[0]) * 1e3 / (N_TOK - 1);
    within("TPOT vs server", r->tpot_ms, srv_tpot);
    /* against the script: exact lower bounds (the server never writes early) */
    if (r->ttft_ms < FIRST_MS) fail_msg("TTFT %.2f ms under the scripted %d ms", r->ttft_ms, FIRST_MS);
    if (r->e2e_ms < FIRST_MS + (N_TOK - 1) * STEP_MS)
        fail_msg("E2E %.2f ms under the scripted %d ms", r->e2e_ms, FIRST_MS + (N_TOK - 1) * STEP_MS);

    /* the identity that defines TPOT */
    assert_true(fabs(r->tpot_ms * (double)(r->output_tokens - 1) - (r->e2e_ms - r->ttft_ms)) < 1e-6);
    assert_true(r->done_seen);
}

static void test_stream_timing(void **state) {
    (void)state;
    fake_server *s = server_start();
    lg_run run = run_against(s, "/ok", 1, 2, 0, true);
    for (size_t i = 0; i < run.n_results; i++) {
        const lg_result *r = &run.results[i];
        check_timing(r);
        assert_true(r->usage_seen);
        assert_int_equal(r->output_tokens, 5);
        assert_int_equal(r->input_tokens, 7);
        assert_int_equal(r->tier, 2);
        assert_string_equal(r->text, "tok0 tok1 tok2 tok3 tok4 ");
    }
    /* closed loop, one in flight: the second starts after the first ends */
    assert_true(run.results[1].start_s >= run.results[0].start_s + run.results[0].e2e_ms / 1e3 - 1e-3);
    lg_run_free(&run);
    server_stop(s);
}

static void test_counted_tokens_without_usage(void **state) {
    (void)state;
    fake_server *s = server_start();
    lg_run run = run_against(s, "/nousage", 1, 1, 0, false);
    const lg_result *r = &run.results[0];
    check_timing(r);
    assert_false(r->usage_seen);
    assert_int_equal(r->output_tokens, N_TOK);
    assert_int_equal(r->input_tokens, -1);
    assert_null(r->text);
    lg_run_free(&run);
    server_stop(s);
}

static void test_concurrency(void **state) {
    (void)state;
    fake_server *s = server_start();
    lg_run run = run_against(s, "/ok", 4, 8, 0, false);
    for (size_t i = 0; i < run.n_results; i++) check_timing(&run.results[i]);
    /* 8 requests of ~130 ms, 4 at a time: about 2 rounds, far from 8 */
    double one = (FIRST_MS + (N_TOK - 1) * STEP_MS) / 1e3;
    assert_true(run.duration_s >= 2 * one - 0.01);
    assert_true(run.duration_s < 4 * one);
    lg_run_free(&run);
    server_stop(s);
}

static void test_http_errors_counted(void **state) {
    (void)state;
    fake_server *s = server_start();
    lg_run run = run_against(s, "/429", 2, 3, 0, false);
    for (size_t i = 0; i < run.n_results; i++) {
        assert_false(run.results[i].ok);
        assert_int_equal(run.results[i].http_status, 429);
        assert_non_null(strstr(run.results[i].error, "queue is full"));
        assert_true(isnan(run.results[i].ttft_ms));
    }
    /* the aggregate counts them by status */
    serve_metrics m;
    ryot_error err = {0};
    serve_slo slo = {0, 0};
    assert_int_equal(serve_metrics_compute(run.results, run.n_results, run.duration_s, slo, RESULTS_ALL_TIERS, &m, &err),
                     RYOT_OK);
    assert_int_equal(m.n_failed, 3);
    assert_int_equal(m.n_ok, 0);
    assert_int_equal(m.n_error_kinds, 1);
    assert_int_equal(m.errors[0].status, 429);
    assert_int_equal(m.errors[0].count, 3);
    assert_true(serve_metrics_get(&m, "error_rate") == 100.0);
    lg_run_free(&run);
    run = run_against(s, "/500", 1, 1, 0, false);
    assert_false(run.results[0].ok);
    assert_int_equal(run.results[0].http_status, 500);
    lg_run_free(&run);
    server_stop(s);
}

static void test_transport_error(void **state) {
    (void)state;
    /* a port with nobody listening: bind, note the port, close */
    fake_server *s = server_start();
    int port = s->port;
    server_stop(s);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
    lg_config cfg = lg_config_default();
    cfg.url = url;
    cfg.num_requests = 2;
    cfg.timeout_s = 2;
    fixed_src f = {.left = 2};
    lg_source src = {.ud = &f, .next = fixed_next};
    lg_run run;
    ryot_error err = {0};
    assert_int_equal(lg_run_load(&cfg, &src, &run, &err), RYOT_OK);
    assert_int_equal(run.n_results, 2);
    assert_false(run.results[0].ok);
    assert_int_equal(run.results[0].http_status, 0);
    assert_non_null(strstr(run.results[0].error, "transport"));
    lg_run_free(&run);
}

static void test_poisson_rate(void **state) {
    (void)state;
    fake_server *s = server_start();
    /* 20 requests at 100/s, open loop: arrivals spread over ~0.2 s, so
     * several overlap; the start times must follow the seeded schedule. */
    lg_run run = run_against(s, "/ok", 0, 20, 100.0, false);
    double first = 1e9, last = 0;
    for (size_t i = 0; i < run.n_results; i++) {
        check_timing(&run.results[i]);
        if (run.results[i].start_s < first) first = run.results[i].start_s;
        if (run.results[i].start_s > last) last = run.results[i].start_s;
    }
    assert_true(first < 0.01);
    assert_true(last > 0.05 && last < 1.0); /* sum of 19 Exp(100/s) gaps: 0.19 s, sd 0.04 */
    assert_true(run.duration_s < 1.5);
    lg_run_free(&run);
    server_stop(s);
}

/* SSE parser: every split point of a stream gives the same events. */
typedef struct collected {
    char ev[8][128];
    bool err[8];
    int n;
} collected;

static bool collect(void *ud, const char *data, size_t len, bool is_error) {
    collected *c = ud;
    assert_true(c->n < 8);
    snprintf(c->ev[c->n], sizeof c->ev[0], "%.*s", (int)len, data);
    c->err[c->n++] = is_error;
    return true;
}

static void test_sse_splits(void **state) {
    (void)state;
    const char *stream = ": hello\r\n\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\nevent: ping\nid: 3\ndata: "
                         "z\r\n\r\nerror: bad thing\n\ndata: [DONE]\n\n";
    size_t n = strlen(stream);
    for (size_t cut1 = 0; cut1 <= n; cut1++) {
        for (size_t cut2 = cut1; cut2 <= n; cut2 += 7) {
            sse_parser p;
            sse_init(&p);
            collected c = {0};
            ryot_error err = {0};
            assert_int_equal(sse_feed(&p, stream, cut1, collect, &c, &err), RYOT_OK);
            assert_int_equal(sse_feed(&p, stream + cut1, cut2 - cut1, collect, &c, &err), RYOT_OK);
            assert_int_equal(sse_feed(&p, stream + cut2, n - cut2, collect, &c, &err), RYOT_OK);
            assert_int_equal(sse_finish(&p, collect, &c, &err), RYOT_OK);
            assert_int_equal(c.n, 5);
            assert_string_equal(c.ev[0], "{\"a\":1}");
            assert_string_equal(c.ev[1], "x\ny");
            assert_string_equal(c.ev[2], "z");
            assert_string_equal(c.ev[3], "bad thing");
            assert_true(c.err[3]);
            assert_false(c.err[2]);
            assert_string_equal(c.ev[4], "[DONE]");
            sse_free(&p);
        }
    }
}

static void test_sse_limits(void **state) {
    (void)state;
    sse_parser p;
    sse_init(&p);
    p.max_event = 32;
    collected c = {0};
    ryot_error err = {0};
    char big[100];
    memset(big, 'a', sizeof big);
    memcpy(big, "data: ", 6);
    assert_int_equal(sse_feed(&p, big, sizeof big, collect, &c, &err), RYOT_ERR_FORMAT);
    sse_free(&p);
    /* an unterminated last event is delivered by sse_finish */
    sse_init(&p);
    assert_int_equal(sse_feed(&p, "data: tail", 10, collect, &c, &err), RYOT_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(sse_finish(&p, collect, &c, &err), RYOT_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ev[0], "tail");
    sse_free(&p);
}

/* ---- workloads ---- */

static json_t *next_body(lg_source *src, lg_request *req) {
    ryot_error err = {0};
    *req = (lg_request){.tier = LG_TIER_NONE, .user = -1, .turn = -1, .input_tokens_est = -1};
    assert_int_equal(src->next(src->ud, req, &err), RYOT_OK);
    json_t *j = json_loads(req->body, 0, NULL);
    assert_non_null(j);
    return j;
}

static int count_words(const char *s) {
    int n = 0;
    for (const char *p = s; *p; p++)
        if (*p != ' ' && (p == s || p[-1] == ' ')) n++;
    return n;
}

static void test_workload_synthetic(void **state) {
    (void)state;
    workload_config c = workload_config_default();
    c.input_len = 37;
    c.output_len = 9;
    c.model = "m1";
    workload *w;
    ryot_error err = {0};
    assert_int_equal(workload_new(&c, &w, &err), RYOT_OK);
    lg_source src = workload_source(w);
    lg_request req;
    json_t *j = next_body(&src, &req);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "m1");
    assert_int_equal(json_integer_value(json_object_get(j, "max_tokens")), 9);
    assert_true(json_is_true(json_object_get(j, "ignore_eos")));
    assert_true(json_is_true(json_object_get(j, "stream")));
    assert_true(json_is_true(json_object_get(json_object_get(j, "stream_options"), "include_usage")));
    const char *content = json_string_value(json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content"));
    assert_int_equal(count_words(content), 37);
    assert_int_equal(req.input_tokens_est, 37);
    assert_int_equal(req.tier, LG_TIER_NONE);
    /* the next prompt is different (no accidental prefix sharing) */
    lg_request req2;
    json_t *j2 = next_body(&src, &req2);
    const char *content2 = json_string_value(json_object_get(json_array_get(json_object_get(j2, "messages"), 0), "content"));
    assert_true(strncmp(content, content2, 12) != 0);
    json_decref(j2);
    free(req2.body);
    json_decref(j);
    free(req.body);
    workload_free(w);
    /* completions endpoint, no ignore_eos, uniform input lengths */
    c.chat = false;
    c.ignore_eos = false;
    assert_int_equal(workload_parse_dist("uniform:5,8", &c.input_dist, &err), RYOT_OK);
    assert_int_equal(workload_new(&c, &w, &err), RYOT_OK);
    src = workload_source(w);
    int seen[9] = {0};
    for (int i = 0; i < 200; i++) {
        j = next_body(&src, &req);
        assert_null(json_object_get(j, "ignore_eos"));
        int n = count_words(json_string_value(json_object_get(j, "prompt")));
        assert_true(n >= 5 && n <= 8);
        seen[n]++;
        json_decref(j);
        free(req.body);
    }
    for (int n = 5; n <= 8; n++) assert_true(seen[n] > 20);
    workload_free(w);
    assert_int_equal(workload_parse_dist("uniform:8,5", &c.input_dist, &err), RYOT_ERR_INVALID);
    assert_int_equal(workload_parse_dist("normal:100", &c.input_dist, &err), RYOT_ERR_INVALID);
    assert_int_equal(workload_parse_dist("normal:100,10", &c.input_dist, &err), RYOT_OK);
}

/* repeat_ratio: that fraction of bodies are verbatim copies of earlier ones,
 * every body asks for temperature 0; without it, no body repeats and none
 * sets a temperature. */
static void test_workload_repeats(void **state) {
    (void)state;
    for (int pass = 0; pass < 2; pass++) {
        workload_config c = workload_config_default();
        c.input_len = 8;
        c.repeat_ratio = pass ? 0.5 : 0;
        workload *w;
        ryot_error err = {0};
        assert_int_equal(workload_new(&c, &w, &err), RYOT_OK);
        lg_source src = workload_source(w);
        enum { N = 400 };
        char *bodies[N];
        int repeats = 0;
        for (int i = 0; i < N; i++) {
            lg_request req;
            json_t *j = next_body(&src, &req);
            json_t *t = json_object_get(j, "temperature");
            if (pass) assert_true(json_is_number(t) && json_number_value(t) == 0);
            else assert_null(t);
            assert_int_equal(req.input_tokens_est, 8);
            json_decref(j);
            for (int k = 0; k < i; k++)
                if (!strcmp(bodies[k], req.body)) {
                    repeats++;
                    break;
                }
            bodies[i] = req.body;
        }
        if (pass) assert_true(repeats > N * 4 / 10 && repeats < N * 6 / 10);
        else assert_int_equal(repeats, 0);
        for (int i = 0; i < N; i++) free(bodies[i]);
        workload_free(w);
    }
}

static void test_workload_shared_prefix(void **state) {
    (void)state;
    workload_config c = workload_config_default();
    c.kind = WORKLOAD_SHARED_PREFIX;
    c.users = 2;
    c.turns = 2;
    c.prefix_len = 50;
    c.input_len = 4;
    workload *w;
    ryot_error err = {0};
    assert_int_equal(workload_new(&c, &w, &err), RYOT_OK);
    assert_true(workload_needs_text(w));
    assert_int_equal(workload_default_requests(w), 4);
    lg_source src = workload_source(w);
    lg_request r0, r1, r2;
    json_t *j0 = next_body(&src, &r0), *j1 = next_body(&src, &r1);
    assert_int_equal(r0.user, 0);
    assert_int_equal(r1.user, 1);
    assert_int_equal(r0.turn, 0);
    json_t *m0 = json_object_get(j0, "messages"), *m1 = json_object_get(j1, "messages");
    /* one shared system prompt */
    assert_string_equal(json_string_value(json_object_get(json_array_get(m0, 0), "role")), "system");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m0, 0), "content")),
                        json_string_value(json_object_get(json_array_get(m1, 0), "content")));
    assert_int_equal(count_words(json_string_value(json_object_get(json_array_get(m0, 0), "content"))), 50);
    /* both users busy: nothing to send */
    lg_request rb = {0};
    assert_int_equal(src.next(src.ud, &rb, &err), RYOT_ERR_BUSY);
    /* user 0's answer arrives: its next turn carries it */
    lg_result res = {.ok = true, .text = "THE-ANSWER"};
    src.done(src.ud, &r0, &res);
    json_t *j2 = next_body(&src, &r2);
    assert_int_equal(r2.user, 0);
    assert_int_equal(r2.turn, 1);
    json_t *m2 = json_object_get(j2, "messages");
    assert_int_equal(json_array_size(m2), 4); /* system, user, assistant, user */
    assert_string_equal(json_string_value(json_object_get(json_array_get(m2, 2), "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m2, 2), "content")), "THE-ANSWER");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m2, 1), "content")),
                        json_string_value(json_object_get(json_array_get(m0, 1), "content")));
    /* after its last turn, user 0 starts a new conversation */
    src.done(src.ud, &r2, &res);
    lg_request r3;
    json_t *j3 = next_body(&src, &r3);
    assert_int_equal(r3.user, 0);
    assert_int_equal(r3.turn, 0);
    assert_int_equal(json_array_size(json_object_get(j3, "messages")), 2);
    json_decref(j0);
    json_decref(j1);
    json_decref(j2);
    json_decref(j3);
    free(r0.body);
    free(r1.body);
    free(r2.body);
    free(r3.body);
    workload_free(w);
}

static void test_workload_mixed_priority(void **state) {
    (void)state;
    workload_config c = workload_config_default();
    c.kind = WORKLOAD_MIXED_PRIORITY;
    ryot_error err = {0};
    assert_int_equal(workload_parse_mix("high=1,low=3", c.tier_mix, &err), RYOT_OK);
    c.input_len = 2;
    c.output_len = 2;
    workload *w;
    assert_int_equal(workload_new(&c, &w, &err), RYOT_OK);
    lg_source src = workload_source(w);
    int count[LG_N_TIERS] = {0};
    for (int i = 0; i < 4000; i++) {
        lg_request req;
        json_t *j = next_body(&src, &req);
        assert_true(req.tier >= 0 && req.tier < LG_N_TIERS);
        assert_string_equal(json_string_value(json_object_get(j, "priority")), workload_tier_name(req.tier));
        count[req.tier]++;
        json_decref(j);
        free(req.body);
    }
    assert_int_equal(count[0] + count[2] + count[4], 0);
    /* expected 1000 high: binomial sd 27 */
    assert_true(count[1] > 850 && count[1] < 1150);
    workload_free(w);
    double mix[LG_N_TIERS];
    assert_int_equal(workload_parse_mix("1,2,4,2,1", mix, &err), RYOT_OK);
    assert_true(mix[2] == 4);
    assert_int_equal(workload_parse_mix("1,2", mix, &err), RYOT_ERR_INVALID);
    assert_int_equal(workload_parse_mix("urgent=1", mix, &err), RYOT_ERR_INVALID);
    assert_int_equal(workload_parse_mix("high=0", mix, &err), RYOT_ERR_INVALID);
}

static void test_workload_file(void **state) {
    (void)state;
    char path[] = "/tmp/ryot_wl_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *lines = "{\"prompt\":\"a\",\"max_tokens\":3,\"priority\":\"low\",\"stream\":false}\n"
                        "\n"
                        "{\"model\":\"keep\",\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}\n";
    assert_int_equal(write(fd, lines, strlen(lines)), (ssize_t)strlen(lines));
    close(fd);
    workload_config c = workload_config_default();
    char spec[64];
    snprintf(spec, sizeof spec, "file:%s", path);
    ryot_error err = {0};
    assert_int_equal(workload_parse_kind(spec, &c, &err), RYOT_OK);
    c.model = "dflt";
    workload *w;
    assert_int_equal(workload_new(&c, &w, &err), RYOT_OK);
    assert_int_equal(workload_default_requests(w), 2);
    lg_source src = workload_source(w);
    for (int round = 0; round < 2; round++) { /* replayed in order, cycling */
        lg_request r;
        json_t *j = next_body(&src, &r);
        assert_string_equal(json_string_value(json_object_get(j, "prompt")), "a");
        assert_true(json_is_true(json_object_get(j, "stream"))); /* forced */
        assert_string_equal(json_string_value(json_object_get(j, "model")), "dflt");
        assert_int_equal(r.tier, 3);
        json_decref(j);
        free(r.body);
        j = next_body(&src, &r);
        assert_string_equal(json_string_value(json_object_get(j, "model")), "keep");
        assert_int_equal(r.tier, LG_TIER_NONE);
        json_decref(j);
        free(r.body);
    }
    workload_free(w);
    FILE *f = fopen(path, "w");
    fputs("{\"ok\":1}\nnot json\n", f);
    fclose(f);
    assert_int_equal(workload_new(&c, &w, &err), RYOT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ":2:"));
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_splits),
        cmocka_unit_test(test_sse_limits),
        cmocka_unit_test(test_stream_timing),
        cmocka_unit_test(test_counted_tokens_without_usage),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_http_errors_counted),
        cmocka_unit_test(test_transport_error),
        cmocka_unit_test(test_poisson_rate),
        cmocka_unit_test(test_workload_synthetic),
        cmocka_unit_test(test_workload_repeats),
        cmocka_unit_test(test_workload_shared_prefix),
        cmocka_unit_test(test_workload_mixed_priority),
        cmocka_unit_test(test_workload_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
