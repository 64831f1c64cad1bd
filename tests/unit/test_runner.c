/* The serving loop (sched/runner.h) driven directly, without HTTP: greedy
 * output equals the one-sequence decode path, stop strings cut the text,
 * cancellation and timeouts end jobs, and a job that cannot fit is refused
 * with the field named, a grammar constrains every choice (ignore_eos
 * included) and its logprobs; prompt log-probabilities (echo) equal those of
 * a direct decode over the same tokens, bit for bit.  Uses the default model (SmolLM2 Q4_1 in
 * $RYOT_MODEL_DIR or ~/.cache/ryot/models); skipped without it, unless
 * CI=true, where it fails. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sampler.h"
#include "grammar/grammar.h"
#include "ryot.h"
#include "sched/runner.h"

#define MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"
#define N_GEN 24

static ryot_model *model;
static sched_runner *runner;

static int setup(void **state) {
    (void)state;
    char path[4096];
    const char *dir = getenv("RYOT_MODEL_DIR");
    if (dir)
        snprintf(path, sizeof path, "%s/%s", dir, MODEL_FILE);
    else
        snprintf(path, sizeof path, "%s/.cache/ryot/models/%s", getenv("HOME") ? getenv("HOME") : ".", MODEL_FILE);
    FILE *f = fopen(path, "rb");
    if (!f) {
        const char *ci = getenv("CI");
        if (ci && !strcmp(ci, "true")) {
            fprintf(stderr, "model %s missing (run scripts/fetch-models.sh)\n", path);
            return -1;
        }
        return 0; /* tests skip */
    }
    fclose(f);
    ryot_error err = {0};
    if (ryot_model_load(path, &model, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        return -1;
    }
    sched_runner_params p = sched_runner_default_params();
    p.n_threads = 2;
    p.ctx = 512;
    p.kv_blocks = 64;
    p.max_running = 8;
    p.max_queue = 4;
    p.log_requests = false;
    if (sched_runner_new(model, &p, &runner, &err)) {
        fprintf(stderr, "runner: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    sched_runner_free(runner);
    ryot_model_free(model);
    return 0;
}

#define NEED_MODEL() \
    do { \
        if (!runner) { \
            print_message("SKIP: model %s not found\n", MODEL_FILE); \
            skip(); \
        } \
    } while (0)

static int32_t *prompt_ids(const char *text, int *n) {
    ryot_token *ids;
    ryot_error err = {0};
    if (ryot_tokenize(model, text, strlen(text), RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL, &ids, n, &err))
        fail_msg("tokenize: %s", err.msg);
    return ids;
}

static sched_job_spec greedy_spec(const int32_t *const *prompts, const int *n_prompt, int max_tokens) {
    sched_job_spec s = {0};
    s.prompts = prompts;
    s.n_prompt = n_prompt;
    s.n_prompts = 1;
    s.n = 1;
    s.max_tokens = max_tokens;
    s.sp = ryot_sampler_params_default();
    s.sp.temperature = 0;
    s.tier = SCHED_NORMAL;
    return s;
}

/* Runs spec to the end; the text of choice 0 in *text (malloc'd). */
static sched_job_result run_job(const sched_job_spec *spec, char **text, sched_finish *fin) {
    sched_error e;
    sched_job *j = sched_job_new(runner, spec, &e);
    if (!j) fail_msg("job: %s", e.msg);
    if (sched_submit(runner, j, &e)) fail_msg("submit: %s", e.msg);
    while (!sched_job_wait_done(j, 1000)) {
    }
    sched_take t = {0};
    sched_job_take(j, 0, &t, 0);
    sched_job_result r;
    sched_job_result_get(j, &r);
    if (text) *text = strdup(t.text.data ? t.text.data : "");
    if (fin) *fin = t.finish;
    sched_take_free(&t);
    sched_job_unref(j);
    return r;
}

/* The text of N_GEN greedy tokens through the one-sequence API. */
static char *decode_greedy(const int32_t *ids, int n) {
    ryot_context_params cp = ryot_context_default_params();
    cp.n_ctx = 512;
    cp.n_threads = 2;
    ryot_context *c;
    ryot_error err = {0};
    if (ryot_context_new(model, &cp, &c, &err)) fail_msg("context: %s", err.msg);
    ryot_token out[N_GEN];
    int n_out = 0;
    if (ryot_decode(c, ids, n, 0, 1, &err)) fail_msg("decode: %s", err.msg);
    for (int pos = n; n_out < N_GEN; pos++) {
        const float *l = ryot_get_logits(c, 0);
        int best = 0;
        for (int i = 1; i < ryot_n_vocab(model); i++)
            if (l[i] > l[best]) best = i;
        if (ryot_token_is_eog(model, best)) break;
        out[n_out++] = best;
        if (ryot_decode(c, &out[n_out - 1], 1, pos, 1, &err)) fail_msg("decode: %s", err.msg);
    }
    char *text;
    size_t len;
    if (ryot_detokenize(model, out, n_out, false, &text, &len, &err)) fail_msg("detokenize: %s", err.msg);
    ryot_context_free(c);
    return text;
}

static void test_greedy_matches_decode(void **state) {
    (void)state;
    NEED_MODEL();
    int n;
    int32_t *ids = prompt_ids("The capital of France is", &n);
    const int32_t *p[1] = {ids};
    sched_job_spec s = greedy_spec(p, &n, N_GEN);
    char *text;
    sched_finish fin;
    sched_job_result r = run_job(&s, &text, &fin);
    assert_false(r.failed);
    assert_int_equal(r.prompt_tokens, n);
    char *want = decode_greedy(ids, n);
    assert_string_equal(text, want);
    assert_true(fin == SCHED_FINISH_LENGTH || fin == SCHED_FINISH_STOP);
    if (fin == SCHED_FINISH_LENGTH) assert_int_equal(r.completion_tokens, N_GEN);
    free(text);
    free(want);
    free(ids);
}

static void test_stop_string_cuts(void **state) {
    (void)state;
    NEED_MODEL();
    int n;
    int32_t *ids = prompt_ids("One, two, three, four,", &n);
    const int32_t *p[1] = {ids};
    sched_job_spec s = greedy_spec(p, &n, N_GEN);
    char *full;
    run_job(&s, &full, NULL);
    const size_t len = strlen(full);
    assert_true(len >= 6);
    /* a stop string taken from the middle of the greedy text */
    char stop[4];
    memcpy(stop, full + len / 2, 3);
    stop[3] = 0;
    const char *first = strstr(full, stop);
    assert_non_null(first);
    const char *stops[1] = {stop};
    s.stop = stops;
    s.n_stop = 1;
    char *cut;
    sched_finish fin;
    sched_job_result r = run_job(&s, &cut, &fin);
    assert_false(r.failed);
    assert_int_equal(fin, SCHED_FINISH_STOP);
    assert_int_equal(strlen(cut), (size_t)(first - full));
    assert_memory_equal(cut, full, strlen(cut));
    free(full);
    free(cut);
    free(ids);
}

static void test_cancel_and_timeout(void **state) {
    (void)state;
    NEED_MODEL();
    int n;
    int32_t *ids = prompt_ids("Write a long story about a dragon.", &n);
    const int32_t *p[1] = {ids};
    sched_job_spec s = greedy_spec(p, &n, 400);
    s.ignore_eos = true;
    sched_error e;
    sched_job *j = sched_job_new(runner, &s, &e);
    assert_non_null(j);
    assert_int_equal(sched_submit(runner, j, &e), 0);
    sched_take t = {0};
    while (!sched_job_take(j, 0, &t, 1000)) {
    }
    sched_job_cancel(j);
    int waited = 0;
    while (!sched_job_wait_done(j, 100) && waited < 100) waited++;
    assert_true(sched_job_done(j));
    sched_job_result r;
    sched_job_result_get(j, &r);
    assert_false(r.failed); /* a cancel is not an error */
    assert_true(r.completion_tokens < 400);
    sched_take_free(&t);
    sched_job_unref(j);

    s.timeout_s = 0.05;
    r = run_job(&s, NULL, NULL);
    assert_true(r.failed);
    assert_int_equal(r.err.code, RYOT_ERR_TIMEOUT);
    free(ids);
}

static void test_refusals_name_the_field(void **state) {
    (void)state;
    NEED_MODEL();
    int n;
    int32_t *ids = prompt_ids("Hello", &n);
    const int32_t *p[1] = {ids};
    sched_error e;

    sched_job_spec s = greedy_spec(p, &n, 600); /* ctx is 512 */
    assert_null(sched_job_new(runner, &s, &e));
    assert_int_equal(e.code, RYOT_ERR_INVALID);
    assert_string_equal(e.param, "max_tokens");

    s = greedy_spec(p, &n, 4);
    ryot_logit_bias lb = {.token = ryot_n_vocab(model), .bias = 1};
    s.sp.logit_bias = &lb;
    s.sp.n_logit_bias = 1;
    assert_null(sched_job_new(runner, &s, &e));
    assert_string_equal(e.param, "logit_bias");

    s = greedy_spec(p, &n, 4);
    int zero = 0;
    s.n_prompt = &zero;
    s.prompt_param = "messages";
    assert_null(sched_job_new(runner, &s, &e));
    assert_string_equal(e.param, "messages");

    s = greedy_spec(p, &n, 4);
    s.n = 5; /* more sequences than the queue (4) holds */
    sched_job *j = sched_job_new(runner, &s, &e);
    assert_non_null(j);
    assert_int_equal(sched_job_n_choices(j), 5);
    assert_int_not_equal(sched_submit(runner, j, &e), 0);
    assert_int_equal(e.code, RYOT_ERR_INVALID);
    assert_string_equal(e.param, "n");
    sched_job_unref(j);
    free(ids);
}

/* ------------------------------------------------------------ prompt logprobs */

#define PLP_TOP 3
/* long enough for several SCHED_PROMPT_LP_ROWS chunks and full KV blocks */
#define PLP_TEXT \
    "Question: which planet is closest to the sun? Answer: Mercury. Question: what is the boiling point of " \
    "water at sea level in degrees Celsius? Answer: one hundred. Question: who wrote the play Hamlet? Answer: " \
    "William Shakespeare. Question: how many legs does a spider have? Answer: eight. Question: what colour is " \
    "the sky on a clear day? Answer: blue. Question: what is the largest ocean on Earth? Answer: the Pacific. " \
    "Question: which gas do plants take in from the air? Answer: carbon dioxide. Question: what is the capital " \
    "of Japan? Answer: Tokyo. Question: how many days are there in a leap year? Answer: three hundred and " \
    "sixty-six."

/* Each prompt token's log-prob (and PLP_TOP alternatives) given its prefix,
 * from one ryot_decode with logits for every row: the reference. */
static sampler_logprobs *decode_prompt_logprobs(const int32_t *ids, int n) {
    ryot_context_params cp = ryot_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = 2;
    cp.n_logits_max = n;
    ryot_context *c;
    ryot_error err = {0};
    if (ryot_context_new(model, &cp, &c, &err)) fail_msg("context: %s", err.msg);
    if (ryot_decode(c, ids, n, 0, n, &err)) fail_msg("decode: %s", err.msg);
    sampler_logprobs *lp = calloc((size_t)n, sizeof *lp);
    assert_non_null(lp);
    for (int t = 1; t < n; t++)
        sampler_row_logprobs(ryot_get_logits(c, t - 1), ryot_n_vocab(model), ids[t], PLP_TOP, &lp[t]);
    ryot_context_free(c);
    return lp;
}

static bool same_bytes(const char *a, size_t na, const ryot_model *m, int32_t tok) {
    char *t;
    size_t n;
    ryot_error err = {0};
    if (ryot_detokenize(m, &tok, 1, true, &t, &n, &err)) fail_msg("detokenize: %s", err.msg);
    bool same = n == na && !memcmp(a, t, n);
    free(t);
    return same;
}

/* The n_prompt entries of a take against the reference: bit-identical
 * floats (the runner's logits are the decode path's, batch invariance, and
 * both use sampler_row_logprobs), same texts. */
static void check_prompt_lp(const sched_take *t, const int32_t *ids, int n, const sampler_logprobs *want) {
    assert_true(t->n_lp >= n);
    assert_true(t->lp[0].no_logprob);
    assert_true(same_bytes(t->lp[0].text, t->lp[0].len, model, ids[0]));
    for (int i = 1; i < n; i++) {
        const sched_token_lp *g = &t->lp[i];
        assert_false(g->no_logprob);
        assert_true(same_bytes(g->text, g->len, model, ids[i]));
        if (memcmp(&g->logprob, &want[i].chosen.logprob, sizeof(float)))
            fail_msg("prompt token %d: logprob %.9g, decode %.9g", i, (double)g->logprob,
                     (double)want[i].chosen.logprob);
        assert_int_equal(g->n_top, PLP_TOP);
        for (int k = 0; k < PLP_TOP; k++) {
            assert_true(same_bytes(g->top[k].text, g->top[k].len, model, want[i].top[k].token));
            assert_memory_equal(&g->top[k].logprob, &want[i].top[k].logprob, sizeof(float));
        }
    }
}

static sched_job_spec plp_spec(const int32_t *const *p, const int *n, int max_tokens) {
    sched_job_spec s = greedy_spec(p, n, max_tokens);
    s.prompt_logprobs = true;
    s.sp.logprobs = true;
    s.sp.top_logprobs = PLP_TOP;
    return s;
}

static sched_job *submit(const sched_job_spec *s) {
    sched_error e;
    sched_job *j = sched_job_new(runner, s, &e);
    if (!j) fail_msg("job: %s", e.msg);
    if (sched_submit(runner, j, &e)) fail_msg("submit: %s", e.msg);
    return j;
}

static void test_prompt_logprobs_match_decode(void **state) {
    (void)state;
    NEED_MODEL();
    int n;
    int32_t *ids = prompt_ids(PLP_TEXT, &n);
    assert_true(n > 2 * SCHED_PROMPT_LP_ROWS);
    sampler_logprobs *want = decode_prompt_logprobs(ids, n);
    const int32_t *p[1] = {ids};

    /* warm the prefix cache with the same prompt: a prompt-logprobs job must not use it */
    sched_job_spec g = greedy_spec(p, &n, 1);
    run_job(&g, NULL, NULL);
    sched_job_result r = run_job(&g, NULL, NULL);
    assert_true(r.cached_tokens > 0);

    /* two prompt-logprobs jobs of two choices each and a generating job at
     * once: they share the per-step prompt rows and the batch */
    sched_job_spec s = plp_spec(p, &n, 0);
    s.n = 2;
    sched_job *a = submit(&s);
    s.n = 1; /* the runner's queue holds 4 sequences */
    sched_job *b = submit(&s), *gen = submit(&g);
    sched_job *jobs[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        while (!sched_job_wait_done(jobs[k], 1000)) {
        }
        sched_job_result_get(jobs[k], &r);
        assert_false(r.failed);
        assert_int_equal(r.cached_tokens, 0);
        assert_int_equal(r.completion_tokens, 0);
        for (int i = 0; i < sched_job_n_choices(jobs[k]); i++) {
            sched_take t = {0};
            sched_job_take(jobs[k], i, &t, 0);
            assert_true(t.finished);
            assert_int_equal(t.finish, SCHED_FINISH_LENGTH);
            assert_int_equal(t.n_gen, 0);
            assert_int_equal(t.text.len, 0);
            assert_int_equal(t.n_lp, n);
            check_prompt_lp(&t, ids, n, want);
            sched_take_free(&t);
        }
        sched_job_unref(jobs[k]);
    }
    while (!sched_job_wait_done(gen, 1000)) {
    }
    sched_job_unref(gen);

    /* with generation: the prompt's entries first, then one per generated token */
    s = plp_spec(p, &n, 4);
    s.ignore_eos = true;
    sched_job *j = submit(&s);
    while (!sched_job_wait_done(j, 1000)) {
    }
    sched_take t = {0};
    sched_job_take(j, 0, &t, 0);
    assert_int_equal(t.n_gen, 4);
    assert_int_equal(t.n_lp, n + 4);
    check_prompt_lp(&t, ids, n, want);
    for (int i = n; i < n + 4; i++) assert_false(t.lp[i].no_logprob);
    sched_take_free(&t);
    sched_job_unref(j);
    free(want);
    free(ids);
}

/* max_tokens 0 without prompt logprobs: the job ends after prefill. */
static void test_max_tokens_zero(void **state) {
    (void)state;
    NEED_MODEL();
    int n;
    int32_t *ids = prompt_ids("The capital of France is", &n);
    const int32_t *p[1] = {ids};
    sched_job_spec s = greedy_spec(p, &n, 0);
    s.sp.logprobs = true;
    sched_job *j = submit(&s);
    while (!sched_job_wait_done(j, 1000)) {
    }
    sched_job_result r;
    sched_job_result_get(j, &r);
    assert_false(r.failed);
    assert_int_equal(r.prompt_tokens, n);
    assert_int_equal(r.completion_tokens, 0);
    sched_take t = {0};
    sched_job_take(j, 0, &t, 0);
    assert_true(t.finished);
    assert_int_equal(t.finish, SCHED_FINISH_LENGTH);
    assert_int_equal(t.text.len, 0);
    assert_int_equal(t.n_lp, 0);
    sched_take_free(&t);
    sched_job_unref(j);
    /* a one-token prompt: its one entry has no logprob */
    int one = 1;
    s = plp_spec(p, &one, 0);
    j = submit(&s);
    while (!sched_job_wait_done(j, 1000)) {
    }
    sched_job_take(j, 0, &t, 0);
    assert_int_equal(t.n_lp, 1);
    assert_true(t.lp[0].no_logprob);
    sched_take_free(&t);
    sched_job_unref(j);
    free(ids);
}

static void test_stats_count_the_work(void **state) {
    (void)state;
    NEED_MODEL();
    sched_stats before, after;
    sched_runner_stats(runner, &before);
    int n;
    int32_t *ids = prompt_ids("The capital of France is", &n);
    const int32_t *p[1] = {ids};
    sched_job_spec s = greedy_spec(p, &n, 8);
    s.ignore_eos = true;
    sched_job_result r = run_job(&s, NULL, NULL);
    sched_runner_stats(runner, &after);
    assert_int_equal(after.generation_tokens - before.generation_tokens, (uint64_t)r.completion_tokens);
    assert_int_equal(after.ended[SCHED_END_LENGTH] - before.ended[SCHED_END_LENGTH], 1);
    assert_int_equal(after.ttft.count - before.ttft.count, 1);
    assert_true(after.steps > before.steps);
    free(ids);
}

/* A grammar: each of n sampled choices is in the language and ends with
 * "stop" as soon as nothing else may follow, even with ignore_eos; the
 * reported alternatives are the constrained distribution's. */
static void test_grammar_constrains(void **state) {
    (void)state;
    NEED_MODEL();
    grammar *g = NULL;
    ryot_error err = {0};
    const char *text = "root ::= (\"yes\" | \"no\")";
    assert_int_equal(grammar_parse(text, strlen(text), &g, &err), RYOT_OK);
    int n;
    int32_t *ids = prompt_ids("Is the sky green? Answer:", &n);
    const int32_t *p[1] = {ids};
    sched_job_spec s = greedy_spec(p, &n, 16);
    s.sp.temperature = 1.0f;
    s.sp.seed = 7;
    s.sp.logprobs = true;
    s.sp.top_logprobs = 5;
    s.n = 3;
    s.ignore_eos = true;
    s.grammar = g;
    sched_error e;
    sched_job *j = sched_job_new(runner, &s, &e);
    if (!j) fail_msg("job: %s", e.msg);
    grammar_free(g); /* the job holds its own reference */
    if (sched_submit(runner, j, &e)) fail_msg("submit: %s", e.msg);
    while (!sched_job_wait_done(j, 1000)) {
    }
    for (int c = 0; c < 3; c++) {
        sched_take t = {0};
        sched_job_take(j, c, &t, 0);
        const char *out = t.text.data ? t.text.data : "";
        if (strcmp(out, "yes") && strcmp(out, "no")) fail_msg("choice %d: '%s'", c, out);
        assert_int_equal(t.finish, SCHED_FINISH_STOP);
        assert_true(t.n_lp >= 1);
        for (int k = 0; k < t.n_lp; k++) assert_true(isfinite(t.lp[k].logprob));
        /* the first token's alternatives: only prefixes of "yes" or "no" are finite */
        for (int a = 0; a < t.lp[0].n_top; a++) {
            if (!isfinite(t.lp[0].top[a].logprob)) continue;
            const char *alt = t.lp[0].top[a].text;
            size_t len = t.lp[0].top[a].len;
            assert_true(len >= 1 && ((len <= 3 && !memcmp("yes", alt, len)) || (len <= 2 && !memcmp("no", alt, len))));
        }
        sched_take_free(&t);
    }
    sched_job_unref(j);

    /* a JSON schema, greedy */
    json_t *schema = json_loads("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0,"
                                "\"maximum\":9},\"b\":{\"enum\":[\"x\",\"y\"]}},\"required\":[\"a\",\"b\"]}",
                                0, NULL);
    assert_int_equal(grammar_from_schema(schema, &g, &err), RYOT_OK);
    json_decref(schema);
    s = greedy_spec(p, &n, 128);
    s.grammar = g;
    char *res;
    sched_finish fin;
    run_job(&s, &res, &fin);
    grammar_free(g);
    json_t *v = json_loads(res, 0, NULL);
    if (!v) fail_msg("not JSON: %s", res);
    json_int_t a = json_integer_value(json_object_get(v, "a"));
    const char *b = json_string_value(json_object_get(v, "b"));
    assert_true(json_is_integer(json_object_get(v, "a")) && a >= 0 && a <= 9);
    assert_true(b && (!strcmp(b, "x") || !strcmp(b, "y")));
    assert_int_equal(fin, SCHED_FINISH_STOP);
    json_decref(v);
    free(res);
    free(ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_matches_decode),
        cmocka_unit_test(test_stop_string_cuts),
        cmocka_unit_test(test_cancel_and_timeout),
        cmocka_unit_test(test_refusals_name_the_field),
        cmocka_unit_test(test_stats_count_the_work),
        cmocka_unit_test(test_prompt_logprobs_match_decode),
        cmocka_unit_test(test_max_tokens_zero),
        cmocka_unit_test(test_grammar_constrains),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
