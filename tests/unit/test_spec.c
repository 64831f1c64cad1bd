/* Speculative decoding (prompt lookup) in the serving loop: greedy output
 * with drafts equals the output without, token for token (the same text
 * and token count as a runner with --spec-draft 0, several prompts, a
 * copy-heavy one among them, several at once), drafts are accepted on
 * copying, and max_tokens and stop strings end a run inside an accepted
 * draft; the same with a draft model (the model as its own), sampling
 * through a draft model, and a draft model with another vocabulary
 * refused.  Uses the default model (SmolLM2 Q4_1 in $RYOT_MODEL_DIR or
 * ~/.cache/ryot/models); skipped without it, unless CI=true, where it
 * fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ryot.h"
#include "sched/runner.h"

#define MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

static ryot_model *model;
static sched_runner *plain; /* spec_draft 0 */
static sched_runner *spec;  /* spec_draft 4 */
static sched_runner *dspec; /* spec_draft 4, the model as its own draft model */

static sched_runner *new_runner_draft(int spec_draft, const ryot_model *draft) {
    sched_runner_params p = sched_runner_default_params();
    p.n_threads = 2;
    p.ctx = 1024;
    p.kv_blocks = 96;
    p.max_running = 4;
    p.log_requests = false;
    p.spec_draft = spec_draft;
    p.draft_model = draft;
    sched_runner *r;
    ryot_error err = {0};
    if (sched_runner_new(model, &p, &r, &err)) {
        fprintf(stderr, "runner: %s\n", err.msg);
        return NULL;
    }
    return r;
}

static sched_runner *new_runner(int spec_draft) { return new_runner_draft(spec_draft, NULL); }

static void model_path(char *path, size_t n, const char *file) {
    const char *dir = getenv("RYOT_MODEL_DIR");
    if (dir)
        snprintf(path, n, "%s/%s", dir, file);
    else
        snprintf(path, n, "%s/.cache/ryot/models/%s", getenv("HOME") ? getenv("HOME") : ".", file);
}

static int setup(void **state) {
    (void)state;
    char path[4096];
    model_path(path, sizeof path, MODEL_FILE);
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
    plain = new_runner(0);
    spec = new_runner(4);
    dspec = new_runner_draft(4, model);
    return plain && spec && dspec ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sched_runner_free(dspec);
    sched_runner_free(spec);
    sched_runner_free(plain);
    ryot_model_free(model);
    return 0;
}

#define NEED_MODEL() \
    do { \
        if (!spec) { \
            print_message("SKIP: model %s not found\n", MODEL_FILE); \
            skip(); \
        } \
    } while (0)

static const char *const PROMPTS[] = {
    /* copy-heavy: the answer repeats the prompt */
    "<|im_start|>user\nRepeat the following text exactly: The quick brown fox jumps over the lazy dog. "
    "Pack my box with five dozen liquor jugs. How vexingly quick daft zebras jump!<|im_end|>\n"
    "<|im_start|>assistant\n",
    "The capital of France is",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\ndef fib_memo(n, memo={}):\n",
    "1, 2, 3, 4, 5, 6, 7, 8,",
};
#define N_PROMPTS (int)(sizeof PROMPTS / sizeof *PROMPTS)

static int32_t *prompt_ids(const char *text, int *n) {
    ryot_token *ids;
    ryot_error err = {0};
    if (ryot_tokenize(model, text, strlen(text), RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL, &ids, n, &err))
        fail_msg("tokenize: %s", err.msg);
    return ids;
}

typedef struct outcome {
    char *text;
    int64_t n_tokens;
    sched_finish finish;
} outcome;

/* Greedy jobs for prompts[0..n) submitted together on r, run to the end. */
static void run_jobs(sched_runner *r, const char *const *prompts, int n, int max_tokens, const char *stop,
                     float temperature, outcome *out) {
    sched_job *jobs[N_PROMPTS];
    int32_t *ids[N_PROMPTS];
    for (int i = 0; i < n; i++) {
        int n_ids;
        ids[i] = prompt_ids(prompts[i], &n_ids);
        const int32_t *p[1] = {ids[i]};
        sched_job_spec s = {0};
        s.prompts = p;
        s.n_prompt = &n_ids;
        s.n_prompts = 1;
        s.n = 1;
        s.max_tokens = max_tokens;
        s.sp = ryot_sampler_params_default();
        s.sp.temperature = temperature;
        s.sp.seed = 42;
        s.tier = SCHED_NORMAL;
        s.stop = stop ? &stop : NULL;
        s.n_stop = stop ? 1 : 0;
        sched_error e;
        if (!(jobs[i] = sched_job_new(r, &s, &e))) fail_msg("job: %s", e.msg);
        if (sched_submit(r, jobs[i], &e)) fail_msg("submit: %s", e.msg);
    }
    for (int i = 0; i < n; i++) {
        while (!sched_job_wait_done(jobs[i], 1000)) {
        }
        sched_take t = {0};
        sched_job_take(jobs[i], 0, &t, 0);
        sched_job_result res;
        sched_job_result_get(jobs[i], &res);
        assert_false(res.failed);
        out[i] = (outcome){strdup(t.text.data ? t.text.data : ""), res.completion_tokens, t.finish};
        sched_take_free(&t);
        sched_job_unref(jobs[i]);
        free(ids[i]);
    }
}

static void run_greedy(sched_runner *r, const char *const *prompts, int n, int max_tokens, const char *stop,
                       outcome *out) {
    run_jobs(r, prompts, n, max_tokens, stop, 0.0f, out);
}

static void assert_same(const outcome *a, const outcome *b, int n) {
    for (int i = 0; i < n; i++) {
        assert_string_equal(a[i].text, b[i].text);
        assert_int_equal(a[i].n_tokens, b[i].n_tokens);
        assert_int_equal(a[i].finish, b[i].finish);
        free(a[i].text);
        free(b[i].text);
    }
}

/* One prompt at a time, then all together: the same output as without
 * drafts, and the copy-heavy prompt gets drafts accepted. */
static void test_greedy_identical(void **state) {
    (void)state;
    NEED_MODEL();
    sched_stats before, after;
    sched_runner_stats(spec, &before);
    outcome a[N_PROMPTS], b[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) {
        run_greedy(plain, PROMPTS + i, 1, 64, NULL, a + i);
        run_greedy(spec, PROMPTS + i, 1, 64, NULL, b + i);
    }
    sched_runner_stats(spec, &after);
    assert_true(strstr(a[0].text, "quick brown fox") != NULL); /* the model does copy */
    assert_same(a, b, N_PROMPTS);
    const uint64_t drafted = after.spec_drafted - before.spec_drafted;
    const uint64_t accepted = after.spec_accepted - before.spec_accepted;
    assert_true(accepted > 0);
    assert_true(accepted <= drafted);
    /* every accepted draft is a generated token that took no step of its own */
    assert_true(after.steps - before.steps < after.generation_tokens - before.generation_tokens);

    run_greedy(plain, PROMPTS, N_PROMPTS, 64, NULL, a);
    run_greedy(spec, PROMPTS, N_PROMPTS, 64, NULL, b);
    assert_same(a, b, N_PROMPTS);
}

/* max_tokens and a stop string end the output where they would without
 * drafts, even inside an accepted run. */
static void test_limits_inside_drafts(void **state) {
    (void)state;
    NEED_MODEL();
    outcome a, b;
    for (int m = 9; m <= 13; m++) {
        run_greedy(plain, PROMPTS, 1, m, NULL, &a);
        run_greedy(spec, PROMPTS, 1, m, NULL, &b);
        assert_int_equal(b.n_tokens, m);
        assert_int_equal(b.finish, SCHED_FINISH_LENGTH);
        assert_same(&a, &b, 1);
    }
    run_greedy(plain, PROMPTS, 1, 64, "lazy", &a);
    run_greedy(spec, PROMPTS, 1, 64, "lazy", &b);
    assert_int_equal(b.finish, SCHED_FINISH_STOP);
    assert_null(strstr(b.text, "lazy"));
    assert_true(strstr(b.text, "fox") != NULL);
    assert_same(&a, &b, 1);
}

/* Draft model (the model as its own draft): greedy output identical to
 * decoding without drafts, alone and batched, with max_tokens inside a
 * draft run; the drafts agree with the target nearly always. */
static void test_draft_model_greedy(void **state) {
    (void)state;
    NEED_MODEL();
    sched_stats before, after;
    sched_runner_stats(dspec, &before);
    outcome a[N_PROMPTS], b[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) {
        run_greedy(plain, PROMPTS + i, 1, 48, NULL, a + i);
        run_greedy(dspec, PROMPTS + i, 1, 48, NULL, b + i);
    }
    assert_same(a, b, N_PROMPTS);
    sched_runner_stats(dspec, &after);
    const uint64_t drafted = after.spec_drafted - before.spec_drafted;
    const uint64_t accepted = after.spec_accepted - before.spec_accepted;
    print_message("draft model greedy: %llu of %llu drafts accepted\n", (unsigned long long)accepted,
                  (unsigned long long)drafted);
    assert_true(drafted > 0);
    assert_true(accepted * 10 >= drafted * 9);
    run_greedy(plain, PROMPTS, N_PROMPTS, 48, NULL, a);
    run_greedy(dspec, PROMPTS, N_PROMPTS, 48, NULL, b);
    assert_same(a, b, N_PROMPTS);
    for (int m = 10; m <= 12; m++) {
        run_greedy(plain, PROMPTS + 1, 1, m, NULL, a);
        run_greedy(dspec, PROMPTS + 1, 1, m, NULL, b);
        assert_int_equal(b[0].n_tokens, m);
        assert_same(a, b, 1);
    }
}

/* Sampling with a draft model: with the model as its own draft, q equals
 * p, so min(1, p/q) accepts (nearly) every draft; the output is text of the
 * asked length.  (That the verifier keeps the target distribution for any
 * q is test_sampler's test_draft_q_keeps_distribution.) */
static void test_draft_model_sampling(void **state) {
    (void)state;
    NEED_MODEL();
    sched_stats before, after;
    sched_runner_stats(dspec, &before);
    outcome b[N_PROMPTS];
    run_jobs(dspec, PROMPTS, N_PROMPTS, 32, NULL, 0.8f, b);
    sched_runner_stats(dspec, &after);
    for (int i = 0; i < N_PROMPTS; i++) {
        assert_true(b[i].n_tokens > 0 && b[i].n_tokens <= 32);
        free(b[i].text);
    }
    const uint64_t drafted = after.spec_drafted - before.spec_drafted;
    const uint64_t accepted = after.spec_accepted - before.spec_accepted;
    print_message("draft model sampling: %llu of %llu drafts accepted\n", (unsigned long long)accepted,
                  (unsigned long long)drafted);
    assert_true(drafted > 0);
    assert_true(accepted * 10 >= drafted * 9);
}

/* A draft model with another vocabulary is refused, naming the vocabulary. */
static void test_draft_model_vocab_mismatch(void **state) {
    (void)state;
    NEED_MODEL();
    char path[4096];
    model_path(path, sizeof path, "gemma-3-270m-q4_k_m.gguf");
    ryot_model *other;
    ryot_error err = {0};
    if (ryot_model_load(path, &other, &err)) {
        print_message("SKIP: %s: %s\n", path, err.msg);
        skip();
    }
    sched_runner_params p = sched_runner_default_params();
    p.n_threads = 1;
    p.ctx = 256;
    p.max_running = 2;
    p.log_requests = false;
    p.spec_draft = 4;
    p.draft_model = other;
    sched_runner *r = NULL;
    assert_int_equal(sched_runner_new(model, &p, &r, &err), RYOT_ERR_INVALID);
    assert_null(r);
    assert_non_null(strstr(err.msg, "vocabulary"));
    ryot_model_free(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_identical),
        cmocka_unit_test(test_limits_inside_drafts),
        cmocka_unit_test(test_draft_model_greedy),
        cmocka_unit_test(test_draft_model_sampling),
        cmocka_unit_test(test_draft_model_vocab_mismatch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
