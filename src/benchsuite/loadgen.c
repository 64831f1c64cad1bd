#include "benchsuite/loadgen.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchsuite/sse.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/rng.h"

#define ERRBODY_MAX 512

lg_config lg_config_default(void) {
    return (lg_config){.chat = true, .max_in_flight = 1, .seed = 1, .num_requests = 100, .timeout_s = 600,
                       .tick_s = 0.25};
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static ryot_status ensure_curl(ryot_error *err) {
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return ryot_fail(err, RYOT_ERR_INTERNAL, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
    return RYOT_OK;
}

/* One request in flight. */
typedef struct xfer {
    CURL *h;
    struct curl_slist *hdrs;
    lg_request req;
    lg_result res;
    const lg_config *cfg;
    sse_parser sse;
    double t_send, t_first, t_last_event, t_last_byte, t_cb;
    size_t itl_cap;
    char *errbody;
    size_t errbody_len;
    ryot_buf text;
    bool stream_error;
    char curl_err[CURL_ERROR_SIZE];
    struct xfer *prev, *next; /* the list of transfers in flight */
} xfer;

static void live_add(xfer **head, xfer *x) {
    x->prev = NULL;
    x->next = *head;
    if (*head) (*head)->prev = x;
    *head = x;
}

static void live_remove(xfer **head, xfer *x) {
    if (x->prev)
        x->prev->next = x->next;
    else
        *head = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void set_error(xfer *x, const char *fmt, const char *detail) {
    if (x->res.error[0]) return; /* keep the first */
    snprintf(x->res.error, sizeof x->res.error, fmt, detail);
}

static void token_event(xfer *x, const char *s, size_t n) {
    double t = x->t_cb;
    if (x->res.n_events == 0) {
        x->t_first = t;
    } else {
        if (x->res.n_itl == x->itl_cap) {
            size_t c = x->itl_cap ? x->itl_cap * 2 : 64;
            double *nb = realloc(x->res.itl_ms, c * sizeof *nb);
            if (!nb) {
                set_error(x, "%s", "out of memory recording ITL");
                x->stream_error = true;
                return;
            }
            x->res.itl_ms = nb;
            x->itl_cap = c;
        }
        x->res.itl_ms[x->res.n_itl++] = (t - x->t_last_event) * 1e3;
    }
    x->t_last_event = t;
    x->res.n_events++;
    if (x->cfg->keep_text && !ryot_buf_append(&x->text, s, n)) {
        set_error(x, "%s", "out of memory keeping the text");
        x->stream_error = true;
    }
}

static const char *content_of(json_t *choice, bool chat, size_t *len) {
    json_t *v = NULL;
    if (chat) {
        json_t *delta = json_object_get(choice, "delta");
        v = json_object_get(delta, "content");
        if (!json_is_string(v) || json_string_length(v) == 0) v = json_object_get(delta, "reasoning_content");
    } else {
        v = json_object_get(choice, "text");
    }
    if (!json_is_string(v) || json_string_length(v) == 0) return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

static bool on_event(void *ud, const char *data, size_t len, bool is_error) {
    xfer *x = ud;
    if (is_error) {
        set_error(x, "stream error: %.120s", data);
        x->stream_error = true;
        return true;
    }
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        x->res.done_seen = true;
        return true;
    }
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(j)) {
        set_error(x, "bad JSON in stream: %.100s", jerr.text);
        x->stream_error = true;
        json_decref(j);
        return true;
    }
    json_t *e = json_object_get(j, "error");
    if (e && !json_is_null(e)) {
        json_t *m = json_is_object(e) ? json_object_get(e, "message") : e;
        set_error(x, "stream error: %.120s", json_is_string(m) ? json_string_value(m) : "(no message)");
        x->stream_error = true;
    }
    json_t *choices = json_object_get(j, "choices");
    size_t n_choices = json_is_array(choices) ? json_array_size(choices) : 0;
    for (size_t i = 0; i < n_choices; i++) {
        size_t n = 0;
        const char *s = content_of(json_array_get(choices, i), x->cfg->chat, &n);
        if (s) token_event(x, s, n);
    }
    json_t *usage = json_object_get(j, "usage");
    if (json_is_object(usage)) {
        json_t *ct = json_object_get(usage, "completion_tokens"), *pt = json_object_get(usage, "prompt_tokens");
        if (json_is_integer(ct)) {
            x->res.output_tokens = json_integer_value(ct);
            x->res.usage_seen = true;
        }
        if (json_is_integer(pt)) x->res.input_tokens = json_integer_value(pt);
    }
    json_decref(j);
    return true;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    x->t_cb = x->t_last_byte = ryot_now_s();
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) {
        size_t keep = x->errbody_len < ERRBODY_MAX ? ERRBODY_MAX - x->errbody_len : 0;
        if (keep > n) keep = n;
        size_t cap = ERRBODY_MAX + 1;
        if (keep && (x->errbody || (x->errbody = malloc(cap)))) {
            memcpy(x->errbody + x->errbody_len, ptr, keep);
            x->errbody_len += keep;
            x->errbody[x->errbody_len] = '\0';
        }
        return n;
    }
    ryot_error err = {0};
    if (sse_feed(&x->sse, ptr, n, on_event, x, &err) != RYOT_OK) {
        set_error(x, "%.150s", err.msg);
        x->stream_error = true;
        return 0; /* abort the transfer */
    }
    return n;
}

static void xfer_free(xfer *x) {
    if (!x) return;
    if (x->h) curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    sse_free(&x->sse);
    free(x->req.body);
    free(x->res.itl_ms);
    free(x->res.text);
    free(x->errbody);
    ryot_buf_free(&x->text);
    free(x);
}

static ryot_status xfer_start(CURLM *multi, const lg_config *cfg, lg_request *req, double t0, xfer **out,
                              ryot_error *err) {
    xfer *x = calloc(1, sizeof *x);
    if (!x) {
        free(req->body);
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    x->req = *req;
    x->cfg = cfg;
    sse_init(&x->sse);
    x->res.tier = req->tier;
    x->res.user = req->user;
    x->res.turn = req->turn;
    x->res.input_tokens = req->input_tokens_est;
    x->res.ttft_ms = x->res.tpot_ms = NAN;
    x->h = curl_easy_init();
    if (!x->h) goto nomem;
    char auth[512];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) x->hdrs = h, h = curl_slist_append(x->hdrs, "Accept: text/event-stream");
    /* No "Expect: 100-continue" round trip before bodies over 1 KiB. */
    if (h) x->hdrs = h, h = curl_slist_append(x->hdrs, "Expect:");
    if (h && cfg->api_key) {
        x->hdrs = h;
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg->api_key);
        h = curl_slist_append(x->hdrs, auth);
    }
    if (!h) goto nomem;
    x->hdrs = h;
    CURL *c = x->h;
    curl_easy_setopt(c, CURLOPT_URL, cfg->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->req.body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->req.body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    if (cfg->timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout_s * 1e3));
    x->t_send = ryot_now_s();
    x->res.start_s = x->t_send - t0;
    CURLMcode mc = curl_multi_add_handle(multi, c);
    if (mc != CURLM_OK) {
        xfer_free(x);
        return ryot_fail(err, RYOT_ERR_INTERNAL, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    *out = x;
    return RYOT_OK;
nomem:
    xfer_free(x);
    return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory starting a request");
}

/* Moves the measurements of a finished transfer into *r. */
static void xfer_finish(xfer *x, CURLcode rc, lg_result *r) {
    ryot_error err = {0};
    lg_result *res = &x->res;
    if (rc == CURLE_OK) sse_finish(&x->sse, on_event, x, &err);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &res->http_status);
    double end = x->t_last_byte > 0 ? x->t_last_byte : ryot_now_s();
    res->e2e_ms = (end - x->t_send) * 1e3;
    if (!res->usage_seen) res->output_tokens = res->n_events;
    if (res->n_events > 0) res->ttft_ms = (x->t_first - x->t_send) * 1e3;
    if (res->output_tokens > 1 && res->n_events > 0)
        res->tpot_ms = (res->e2e_ms - res->ttft_ms) / (double)(res->output_tokens - 1);
    if (rc != CURLE_OK && !x->stream_error) {
        set_error(x, "transport: %.140s", x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc));
    }
    if (res->http_status != 0 && (res->http_status < 200 || res->http_status >= 300))
        set_error(x, "HTTP error: %.130s", x->errbody ? x->errbody : "");
    if (rc == CURLE_OK && res->http_status / 100 == 2 && !x->stream_error && res->n_events == 0)
        set_error(x, "%s", "no content events in the stream");
    /* A transport failure that never got a status line keeps status 0. */
    res->ok = rc == CURLE_OK && res->http_status / 100 == 2 && !x->stream_error && res->n_events > 0;
    if (x->cfg->keep_text) {
        res->text = x->text.data ? x->text.data : strdup("");
        x->text = (ryot_buf){0};
    }
    *r = *res;
    memset(res, 0, sizeof *res); /* ownership of itl_ms and text moved */
}

static ryot_status push_result(lg_run *run, xfer *x, CURLcode rc, ryot_error *err) {
    if (run->n_results == run->cap) {
        size_t c = run->cap ? run->cap * 2 : 256;
        lg_result *nb = realloc(run->results, c * sizeof *nb);
        if (!nb) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory storing results");
        run->results = nb;
        run->cap = c;
    }
    xfer_finish(x, rc, &run->results[run->n_results++]);
    return RYOT_OK;
}

ryot_status lg_run_load(const lg_config *cfg, lg_source *src, lg_run *out, ryot_error *err) {
    memset(out, 0, sizeof *out);
    if (!cfg->url || !src || !src->next) return ryot_fail(err, RYOT_ERR_INVALID, "load generator: no URL or source");
    if (cfg->rate <= 0 && cfg->max_in_flight < 1)
        return ryot_fail(err, RYOT_ERR_INVALID, "load generator: closed loop needs max_in_flight >= 1");
    if (cfg->num_requests <= 0 && cfg->duration_s <= 0)
        return ryot_fail(err, RYOT_ERR_INVALID, "load generator: needs a request count or a duration");
    ryot_status st = ensure_curl(err);
    if (st != RYOT_OK) return st;
    CURLM *multi = curl_multi_init();
    if (!multi) return ryot_fail(err, RYOT_ERR_NOMEM, "curl_multi_init failed");

    ryot_rng rng;
    ryot_rng_seed(&rng, cfg->seed);
    double t0 = ryot_now_s(), next_arrival = t0, last_tick = t0, t_end = t0;
    out->wall_start = t0;
    size_t in_flight = 0;
    long issued = 0;
    xfer *live = NULL;
    bool exhausted = false;
    st = RYOT_OK;
    for (;;) {
        double now = ryot_now_s();
        bool may_issue = !exhausted && !(cfg->stop && *cfg->stop) &&
                         (cfg->num_requests <= 0 || issued < cfg->num_requests) &&
                         (cfg->duration_s <= 0 || now - t0 < cfg->duration_s);
        bool source_busy = false;
        while (may_issue) {
            if (cfg->rate > 0) {
                if (now < next_arrival) break;
                if (cfg->max_in_flight > 0 && in_flight >= (size_t)cfg->max_in_flight) break;
            } else if (in_flight >= (size_t)cfg->max_in_flight) {
                break;
            }
            lg_request req = {.tier = LG_TIER_NONE, .user = -1, .turn = -1, .input_tokens_est = -1};
            ryot_status s = src->next(src->ud, &req, err);
            if (s == RYOT_ERR_BUSY) {
                source_busy = true;
                break;
            }
            if (s == RYOT_ERR_NOT_FOUND) {
                exhausted = true;
                may_issue = false;
                break;
            }
            if (s != RYOT_OK) {
                st = s;
                goto out;
            }
            xfer *x = NULL;
            if ((st = xfer_start(multi, cfg, &req, t0, &x, err)) != RYOT_OK) goto out;
            live_add(&live, x);
            in_flight++;
            issued++;
            if (cfg->rate > 0) next_arrival += -log(1.0 - ryot_rng_uniform(&rng)) / cfg->rate;
            may_issue = (cfg->num_requests <= 0 || issued < cfg->num_requests);
        }
        /* Done when nothing is in flight and nothing more can be sent; a
         * busy source with nothing in flight could never become ready.  With
         * nothing in flight otherwise, an open loop waits for an arrival. */
        if (in_flight == 0 && (!may_issue || source_busy)) break;
        int running = 0;
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            st = ryot_fail(err, RYOT_ERR_INTERNAL, "curl_multi_perform: %s", curl_multi_strerror(mc));
            goto out;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode rc = msg->data.result;
            curl_multi_remove_handle(multi, msg->easy_handle);
            live_remove(&live, x);
            in_flight--;
            if ((st = push_result(out, x, rc, err)) != RYOT_OK) {
                xfer_free(x);
                goto out;
            }
            lg_result *r = &out->results[out->n_results - 1];
            double end = x->t_last_byte > 0 ? x->t_last_byte : ryot_now_s();
            if (end > t_end) t_end = end;
            if (src->done) src->done(src->ud, &x->req, r);
            xfer_free(x);
        }
        now = ryot_now_s();
        if (cfg->on_tick && cfg->tick_s > 0 && now - last_tick >= cfg->tick_s) {
            last_tick = now;
            cfg->on_tick(cfg->tick_ud, now - t0, out->n_results, in_flight, false);
        }
        int timeout_ms = 50;
        if (cfg->rate > 0 && may_issue && !source_busy) {
            double wait = (next_arrival - now) * 1e3;
            if (wait < timeout_ms) timeout_ms = wait < 0 ? 0 : (int)wait;
        }
        if (in_flight > 0 || timeout_ms > 0) {
            mc = curl_multi_poll(multi, NULL, 0, timeout_ms, NULL);
            if (mc != CURLM_OK) {
                st = ryot_fail(err, RYOT_ERR_INTERNAL, "curl_multi_poll: %s", curl_multi_strerror(mc));
                goto out;
            }
        }
    }
    out->duration_s = t_end - t0;
    if (cfg->on_tick) cfg->on_tick(cfg->tick_ud, ryot_now_s() - t0, out->n_results, 0, true);
out:
    if (st != RYOT_OK) {
        /* Abandon whatever is still in flight. */
        while (live) {
            xfer *x = live;
            live_remove(&live, x);
            curl_multi_remove_handle(multi, x->h);
            xfer_free(x);
        }
    }
    curl_multi_cleanup(multi);
    return st;
}

void lg_run_free(lg_run *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_results; i++) {
        free(r->results[i].itl_ms);
        free(r->results[i].text);
    }
    free(r->results);
    memset(r, 0, sizeof *r);
}

static size_t on_get(char *ptr, size_t size, size_t nmemb, void *ud) {
    ryot_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > ((size_t)64 << 20)) return 0; /* refuse absurd bodies */
    return ryot_buf_append(b, ptr, n) ? n : 0;
}

ryot_status lg_http_get(const char *url, const char *api_key, double timeout_s, char **body, long *status,
                        ryot_error *err) {
    *body = NULL;
    *status = 0;
    ryot_status st = ensure_curl(err);
    if (st != RYOT_OK) return st;
    CURL *c = curl_easy_init();
    if (!c) return ryot_fail(err, RYOT_ERR_NOMEM, "curl_easy_init failed");
    ryot_buf b = {0};
    struct curl_slist *hdrs = NULL;
    char auth[512], errbuf[CURL_ERROR_SIZE] = "";
    if (api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", api_key);
        hdrs = curl_slist_append(NULL, auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_get);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1e3));
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        ryot_buf_free(&b);
        return ryot_fail(err, RYOT_ERR_IO, "GET %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    *body = b.data ? b.data : strdup("");
    if (!*body) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    return RYOT_OK;
}
