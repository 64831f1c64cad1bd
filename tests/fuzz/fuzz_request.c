/* libFuzzer target for the request parsers and the response builders.
 *
 * Input byte 0 picks the parser (mod 5): chat, completions, tokenize,
 * detokenize, apply-template; the rest is the HTTP body.  On success the
 * parsed fields are checked against the documented ranges and fed to the
 * response builders (model, contents, prompts, stop strings, user as text
 * and logprob tokens); on failure the error goes through srv_json_error.
 * The raw body itself is also used as generated text (any bytes, invalid
 * UTF-8 and NULs included).  Every JSON produced must parse back with
 * jansson (which rejects invalid UTF-8), or the target aborts.
 *
 *   make BUILD=build-fuzz FUZZ=1 build-fuzz/fuzz/fuzz_request
 *   build-fuzz/fuzz/fuzz_request -max_total_time=60 CORPUS_DIR tests/fuzz/corpus/request
 * Seeds: tests/fuzz/corpus/request/ (first byte = selector: '0'..'4'). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server/openai.h"
#include "server/request.h"

#define CHECK(x) \
    do { \
        if (!(x)) { \
            fprintf(stderr, "fuzz_request: check failed: %s (line %d)\n", #x, __LINE__); \
            abort(); \
        } \
    } while (0)

/* The builder's output must be a JSON object; consumes s. */
static void check_json(char *s) {
    CHECK(s != NULL);
    json_error_t je;
    json_t *v = json_loads(s, JSON_ALLOW_NUL, &je);
    if (!v) fprintf(stderr, "fuzz_request: invalid JSON (%s): %.200s\n", je.text, s);
    CHECK(v != NULL && json_is_object(v));
    json_decref(v);
    free(s);
}

static const char *or_empty(const char *s) { return s ? s : ""; }

/* Token logprobs from a list of strings (cycled) and the raw body. */
static int fill_lp(sched_token_lp *lp, int cap, char *const *strs, int n_strs, const char *raw, size_t raw_n) {
    int n = 0;
    for (; n < cap; n++) {
        memset(&lp[n], 0, sizeof lp[n]);
        const char *t = n_strs ? strs[n % n_strs] : raw;
        size_t len = n_strs ? strlen(t) : raw_n;
        if (!n_strs && n > 0) {
            t = raw + (size_t)n % (raw_n + 1);
            len = raw_n - (size_t)n % (raw_n + 1);
        }
        lp[n].text = t;
        lp[n].len = len;
        lp[n].logprob = n == 1 ? -INFINITY : n == 2 ? NAN : -(float)n / 3.0f;
        lp[n].n_top = n % (RYOT_MAX_TOP_LOGPROBS + 1);
        for (int j = 0; j < lp[n].n_top; j++) {
            size_t off = raw_n ? (size_t)j % raw_n : 0;
            lp[n].top[j] = (sched_top_lp){raw + off, raw_n - off, -(float)j};
        }
    }
    return n;
}

static void check_request(const srv_request *r) {
    CHECK(r->n >= 1 && r->n <= SRV_MAX_N);
    CHECK(r->max_tokens == -1 || (r->max_tokens >= 1 && r->max_tokens <= SRV_MAX_TOKENS_LIMIT));
    CHECK(r->sp.temperature >= 0.0f && r->sp.temperature <= 2.0f);
    CHECK(r->sp.top_p >= 0.0f && r->sp.top_p <= 1.0f);
    CHECK(r->sp.min_p >= 0.0f && r->sp.min_p <= 1.0f);
    CHECK(r->sp.repeat_penalty > 0.0f);
    CHECK(fabsf(r->sp.presence_penalty) <= 2.0f && fabsf(r->sp.frequency_penalty) <= 2.0f);
    CHECK(r->sp.top_k >= 0 && r->sp.penalty_last_n >= -1);
    CHECK(r->sp.top_logprobs >= 0 && r->sp.top_logprobs <= RYOT_MAX_TOP_LOGPROBS);
    CHECK(r->sp.top_logprobs == 0 || r->sp.logprobs);
    CHECK(r->sp.logit_bias == r->logit_bias && r->sp.n_logit_bias == r->n_logit_bias);
    for (int i = 0; i < r->n_logit_bias; i++) CHECK(r->logit_bias[i].token >= 0);
    CHECK(r->n_stop >= 0 && r->n_stop <= SRV_MAX_STOP);
    for (int i = 0; i < r->n_stop; i++) CHECK(r->stop[i][0] != '\0');
    CHECK(r->priority >= 0 && r->priority <= 4);
    CHECK(r->timeout_s >= 0.0 && r->timeout_s <= SRV_MAX_TIMEOUT_S);
    CHECK(!r->include_usage || r->stream);
    if (r->ep == SRV_EP_CHAT) {
        CHECK(r->n_messages >= 1 && r->messages);
        for (int i = 0; i < r->n_messages; i++)
            CHECK(r->messages[i].content || !strcmp(r->messages[i].role, "assistant"));
    } else {
        CHECK(r->n_prompts >= 1 && r->n_prompts <= SRV_MAX_PROMPTS);
    }
}

static void build_responses(const srv_request *r, const char *raw, size_t raw_n) {
    char id[SRV_ID_MAX];
    srv_make_id(id, sizeof id, r->ep == SRV_EP_CHAT ? "chatcmpl-" : "cmpl-");
    srv_resp_meta m = {id, 1700000000, r->model, r->user};
    srv_usage u = {raw_n, r->n_stop, r->n_logit_bias - 1};
    sched_token_lp lp[6];
    int n_lp = fill_lp(lp, 6, r->stop, r->n_stop, raw, raw_n);

    if (r->ep == SRV_EP_CHAT) {
        srv_chat_choice ch[4];
        srv_chat_delta d[4];
        int n = r->n_messages < 4 ? r->n_messages : 4;
        for (int i = 0; i < n; i++) {
            const char *c = r->messages[i].content;
            ch[i] = (srv_chat_choice){i, or_empty(c), c ? strlen(c) : 0, (sched_finish)(i % 3),
                                      r->sp.logprobs, lp, n_lp};
            d[i] = (srv_chat_delta){i, i == 0, c, c ? strlen(c) : 0, (sched_finish)(i % 3),
                                    r->sp.logprobs, lp, n_lp};
        }
        check_json(srv_json_chat_completion(&m, ch, n, &u));
        check_json(srv_json_chat_chunk(&m, d, n, r->include_usage, NULL));
        check_json(srv_json_chat_chunk(&m, NULL, 0, true, &u));
    } else {
        srv_completion_choice ch[4];
        int n = r->n_prompts < 4 ? r->n_prompts : 4;
        for (int i = 0; i < n; i++)
            ch[i] = (srv_completion_choice){i, r->prompts[i], strlen(r->prompts[i]), (sched_finish)(i % 3),
                                            r->sp.logprobs, lp, n_lp, srv_utf8_chars(raw, raw_n)};
        check_json(srv_json_completion(&m, ch, n, &u));
        check_json(srv_json_completion_chunk(&m, ch, n, r->include_usage, NULL));
    }
    const char *ids[2] = {r->model, r->user};
    check_json(srv_json_models(ids, 2, 0));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 5;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    srv_error err;
    memset(&err, 0, sizeof err);

    /* the raw bytes as generated text */
    check_json(srv_json_detokenize(body, n));

    int rc;
    if (mode <= 1) {
        srv_request r;
        rc = srv_request_parse(body, n, mode == 0 ? SRV_EP_CHAT : SRV_EP_COMPLETIONS, &r, &err);
        if (rc == 0) {
            check_request(&r);
            build_responses(&r, body, n);
        }
        srv_request_free(&r);
    } else if (mode == 2) {
        srv_tokenize_req t;
        rc = srv_tokenize_parse(body, n, &t, &err);
        if (rc == 0) {
            CHECK((t.content != NULL) != (t.messages != NULL));
            int32_t toks[3] = {1, 2, 3};
            srv_piece pieces[3] = {{t.content, t.content ? strlen(t.content) : 0}, {body, n}, {NULL, 0}};
            if (t.messages) pieces[0] = (srv_piece){t.messages[0].content, t.messages[0].content ? strlen(t.messages[0].content) : 0};
            check_json(srv_json_tokenize(toks, 3, t.with_pieces ? pieces : NULL));
            check_json(srv_json_tokenize(toks, 3, pieces));
        }
        srv_tokenize_free(&t);
    } else if (mode == 3) {
        srv_detokenize_req d;
        rc = srv_detokenize_parse(body, n, &d, &err);
        if (rc == 0) {
            for (int i = 0; i < d.n_tokens; i++) CHECK(d.tokens[i] >= 0);
            check_json(srv_json_tokenize(d.tokens, d.n_tokens, NULL));
        }
        srv_detokenize_free(&d);
    } else {
        srv_template_req t;
        rc = srv_template_parse(body, n, &t, &err);
        if (rc == 0) {
            CHECK(t.n_messages >= 1);
            const char *c = t.messages[t.n_messages - 1].content;
            check_json(srv_json_apply_template(c, c ? strlen(c) : 0));
        }
        srv_template_free(&t);
    }
    if (rc) {
        CHECK(rc == -1 && (err.status == 400 || err.status == 500) && err.message[0]);
        check_json(srv_json_error(&err));
    }
    return 0;
}
