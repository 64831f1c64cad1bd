/* The serving loop (sched/runner.h) driven directly, without HTTP: greedy
 * output equals the one-sequence decode path, stop strings cut the text,
 * cancellation and timeouts end jobs, and a job that cannot fit is refused
 * with the field named, a grammar constrains every choice (ignore_eos
 * included) and its logprobs.  Uses the default model (SmolLM2 Q4_1 in
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
        cmocka_unit_test(test_grammar_constrains),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
