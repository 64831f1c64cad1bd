/* `ryot run`: generate text from a prompt, streamed to stdout.
 *
 * Only the generated text is printed (not the prompt), so the output can be
 * piped.  Timing goes to stderr.  Exit status: 0 ok, 1 load or decode
 * failure, 2 bad usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "engine/sampler.h"
#include "ryot.h"
#include "sched/runner.h"
#include "tokenizer/tokenizer.h"

#define RUN_DEFAULT_N 128

enum { RUN_GIVEN_TEMP = 1, RUN_GIVEN_TOP_K = 2, RUN_GIVEN_TOP_P = 4, RUN_GIVEN_MIN_P = 8, RUN_GIVEN_REPEAT = 16 };

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot run [-m FILE] (-p PROMPT | -f FILE) [options]\n"
            "\n"
            "Generate text from a prompt; the generated text streams to stdout, timing to stderr.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE    GGUF model (default: $RYOT_MODEL, else the default model)\n"
            "  -p, --prompt TEXT   the prompt\n"
            "  -f, --file FILE     read the prompt from FILE\n"
            "  -n, --n-predict N   most tokens to generate (default %d); stops earlier at an\n"
            "                      end-of-generation token (EOS, end of turn)\n"
            "      --temp T        temperature (default 0.8); 0 = greedy (argmax)\n"
            "                      (these sampling defaults yield to the model's general.sampling.*\n"
            "                      GGUF keys where it has them)\n"
            "      --top-k K       keep the K most likely tokens (default 40; 0 = off)\n"
            "      --top-p P       nucleus sampling (default 0.95; 1 = off)\n"
            "      --min-p P       drop tokens below P x the top probability (default 0.05; 0 = off)\n"
            "      --repeat-penalty R  penalize the last 64 tokens (default 1 = off)\n"
            "      --seed S        RNG seed (default: random)\n"
            "      --chat          render the prompt as one user message through the model's chat\n"
            "                      template (the GGUF's, else the built-in ChatML, Gemma or Llama 3\n"
            "                      one), as the server does, and parse special tokens\n"
            "      --system TEXT   with --chat: a system message before the user's (replacing the\n"
            "                      template's default system turn, where it has one)\n"
            "      --print-prompt  print the prompt text as it goes to the tokenizer (after --chat)\n"
            "                      to stdout, byte for byte, and exit without generating\n"
            "      --ids           print the generated token ids, space-separated, on one line\n"
            "      --spec-draft N  speculative decoding: verify up to N drafted tokens per step, looked\n"
            "                      up in the prompt and output (default 0: off); same text when greedy\n"
            "      --draft-model FILE  draft with this smaller GGUF model (the model's vocabulary)\n"
            "                      instead; --spec-draft defaults to %d then\n"
            "  -t, --threads N     worker threads (default: online CPUs)\n"
            "  -c, --ctx N         context size (default: min(training context, 4096))\n"
            "  -h, --help          show this help\n"
            "\n"
            "exit status: 0 ok, 1 model or decode failure, 2 bad usage\n",
            RUN_DEFAULT_N, SCHED_SPEC_DRAFT_MODEL_K);
}

/* Generation through the serving loop (sched/runner), which holds the
 * speculative decoding: one job, its text streamed as it comes.  Returns
 * the exit status. */
static int run_speculative(ryot_model *m, ryot_model *dm, const ryot_token *ids, int n_prompt, int n_predict,
                           int n_ctx, int n_threads, int spec_draft, const ryot_sampler_params *sp) {
    sched_runner_params rp = sched_runner_default_params();
    rp.n_threads = n_threads;
    rp.ctx = n_ctx > 0 ? n_ctx : 4096;
    rp.max_running = 1;
    rp.log_requests = false;
    rp.spec_draft = spec_draft;
    rp.draft_model = dm;
    sched_runner *r;
    ryot_error err = {0};
    if (sched_runner_new(m, &rp, &r, &err)) {
        fprintf(stderr, "ryot run: %s%s\n", dm ? "draft model: " : "", err.msg);
        return 1;
    }
    const int ctx = sched_runner_get_params(r)->ctx;
    if (n_prompt >= ctx) {
        fprintf(stderr, "ryot run: the prompt has %d tokens; the context holds %d (use -c)\n", n_prompt, ctx);
        sched_runner_free(r);
        return 1;
    }
    if (n_prompt + n_predict > ctx) n_predict = ctx - n_prompt;
    const int32_t *prompts[1] = {ids};
    sched_job_spec js = {0};
    js.prompts = prompts;
    js.n_prompt = &n_prompt;
    js.n_prompts = 1;
    js.n = 1;
    js.max_tokens = n_predict;
    js.sp = *sp;
    js.tier = SCHED_NORMAL;
    sched_error e;
    const double t0 = ryot_now_ms();
    sched_job *j = sched_job_new(r, &js, &e);
    if (!j || sched_submit(r, j, &e)) {
        fprintf(stderr, "ryot run: %s\n", e.msg);
        sched_job_unref(j);
        sched_runner_free(r);
        return 1;
    }
    sched_take t = {0};
    double t_first = 0.0;
    int n_first = 0;
    for (;;) {
        sched_job_take(j, 0, &t, 1000);
        if (t.text.len) {
            if (t_first == 0.0) t_first = ryot_now_ms(), n_first = t.n_gen;
            fwrite(t.text.data, 1, t.text.len, stdout);
            fflush(stdout);
            t.text.len = 0;
        }
        if (t.finished || sched_job_done(j)) break;
    }
    putchar('\n');
    fflush(stdout);
    const double t_end = ryot_now_ms();
    sched_job_result res;
    sched_job_result_get(j, &res);
    sched_stats st;
    sched_runner_stats(r, &st);
    const int rc = res.failed ? 1 : 0;
    if (res.failed) fprintf(stderr, "ryot run: %s\n", res.err.msg);
    const double dec_s = (t_end - t_first) / 1e3;
    const long long n_dec = (long long)res.completion_tokens - n_first;
    fprintf(stderr,
            "ryot run: prompt %d tokens, first text after %.1f ms | generated %lld tokens, %.2f tok/s after the "
            "first | %s: %llu of %llu drafts accepted | %d threads\n",
            n_prompt, t_first > 0.0 ? t_first - t0 : 0.0, (long long)res.completion_tokens,
            n_dec > 0 && dec_s > 0.0 ? (double)n_dec / dec_s : 0.0, dm ? "draft model" : "prompt lookup",
            (unsigned long long)st.spec_accepted, (unsigned long long)st.spec_drafted,
            sched_runner_get_params(r)->n_threads);
    sched_take_free(&t);
    sched_job_unref(j);
    sched_runner_free(r);
    return rc;
}

static bool parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL, *system_msg = NULL;
    long n_predict = RUN_DEFAULT_N, n_threads = 0, n_ctx = 0, spec_draft = -1;
    const char *draft_path = NULL;
    bool chat = false, print_ids = false, print_prompt = false;
    ryot_sampler_params sp = ryot_sampler_params_default();
    unsigned given = 0; /* RUN_GIVEN_* bits: sampling flags on the command line */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long lv;
        float fv;
#define NEED_VALUE() \
    do { \
        if (!v) { \
            fprintf(stderr, "ryot run: %s needs a value\n", a); \
            return 2; \
        } \
        i++; \
    } while (0)
#define BAD_VALUE() \
    do { \
        fprintf(stderr, "ryot run: bad value '%s' for %s\n", v, a); \
        return 2; \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED_VALUE();
            model_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            NEED_VALUE();
            prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            NEED_VALUE();
            prompt_file = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            NEED_VALUE();
            if (!cli_parse_long(v, 0, 1 << 24, &lv)) BAD_VALUE();
            n_predict = lv;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VALUE();
            if (!cli_parse_long(v, 1, 512, &lv)) BAD_VALUE();
            n_threads = lv;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            NEED_VALUE();
            if (!cli_parse_long(v, 1, 1 << 24, &lv)) BAD_VALUE();
            n_ctx = lv;
        } else if (!strcmp(a, "--temp")) {
            NEED_VALUE();
            if (!parse_float(v, &fv)) BAD_VALUE();
            sp.temperature = fv;
            given |= RUN_GIVEN_TEMP;
        } else if (!strcmp(a, "--top-k")) {
            NEED_VALUE();
            if (!cli_parse_long(v, 0, 1 << 30, &lv)) BAD_VALUE();
            sp.top_k = (int32_t)lv;
            given |= RUN_GIVEN_TOP_K;
        } else if (!strcmp(a, "--top-p")) {
            NEED_VALUE();
            if (!parse_float(v, &fv)) BAD_VALUE();
            sp.top_p = fv;
            given |= RUN_GIVEN_TOP_P;
        } else if (!strcmp(a, "--min-p")) {
            NEED_VALUE();
            if (!parse_float(v, &fv)) BAD_VALUE();
            sp.min_p = fv;
            given |= RUN_GIVEN_MIN_P;
        } else if (!strcmp(a, "--repeat-penalty")) {
            NEED_VALUE();
            if (!parse_float(v, &fv)) BAD_VALUE();
            sp.repeat_penalty = fv;
            given |= RUN_GIVEN_REPEAT;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') BAD_VALUE();
            sp.seed = (uint64_t)s;
        } else if (!strcmp(a, "--spec-draft")) {
            NEED_VALUE();
            if (!cli_parse_long(v, 0, SCHED_SPEC_ROWS, &lv)) BAD_VALUE();
            spec_draft = lv;
        } else if (!strcmp(a, "--draft-model")) {
            NEED_VALUE();
            draft_path = v;
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--system")) {
            NEED_VALUE();
            system_msg = v;
        } else if (!strcmp(a, "--ids")) {
            print_ids = true;
        } else if (!strcmp(a, "--print-prompt")) {
            print_prompt = true;
        } else {
            fprintf(stderr, "ryot run: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!prompt && !prompt_file) {
        fprintf(stderr, "ryot run: give a prompt with -p TEXT or -f FILE\n");
        return 2;
    }
    if (prompt && prompt_file) {
        fprintf(stderr, "ryot run: -p and -f are exclusive\n");
        return 2;
    }
    if (system_msg && !chat) {
        fprintf(stderr, "ryot run: --system needs --chat\n");
        return 2;
    }
    if (!model_path && !(model_path = cli_default_model())) return 1;
    if (spec_draft < 0) spec_draft = draft_path ? SCHED_SPEC_DRAFT_MODEL_K : 0;
    if (draft_path && spec_draft == 0) {
        fprintf(stderr, "ryot run: --draft-model needs --spec-draft N > 0\n");
        return 2;
    }
    if (spec_draft > 0 && print_ids) {
        fprintf(stderr, "ryot run: --ids does not go with --spec-draft/--draft-model\n");
        return 2;
    }

    int rc = 1;
    ryot_error err = {0};
    ryot_model *m = NULL, *dm = NULL;
    ryot_context *c = NULL;
    sampler *smp = NULL;
    char *file_text = NULL, *rendered = NULL;
    ryot_token *ids = NULL;
    float *logits = NULL;
    detok dt = {0};
    bool dt_ok = false;

    if (prompt_file) {
        if (!(file_text = cli_read_file(prompt_file, NULL))) {
            fprintf(stderr, "ryot run: cannot read %s: %s\n", prompt_file, strerror(errno));
            return 1;
        }
        prompt = file_text;
    }
    double t0 = ryot_now_ms();
    if (ryot_model_load(model_path, &m, &err)) goto fail;
    double t_load = ryot_now_ms() - t0;
    /* flags win over the model's recommended sampling, which wins over ours */
    ryot_sampler_params rec = ryot_sampler_params_default();
    ryot_model_sampling_defaults(m, &rec);
    if (!(given & RUN_GIVEN_TEMP)) sp.temperature = rec.temperature;
    if (!(given & RUN_GIVEN_TOP_K)) sp.top_k = rec.top_k;
    if (!(given & RUN_GIVEN_TOP_P)) sp.top_p = rec.top_p;
    if (!(given & RUN_GIVEN_MIN_P)) sp.min_p = rec.min_p;
    if (!(given & RUN_GIVEN_REPEAT)) sp.repeat_penalty = rec.repeat_penalty;

    const char *text = prompt;
    size_t text_len = strlen(prompt);
    if (chat) {
        /* the same rendering as the server's chat endpoints */
        const ryot_chat_message msgs[2] = {{"system", system_msg}, {"user", prompt}};
        const int n_msgs = system_msg ? 2 : 1;
        if (ryot_chat_apply(m, msgs + 2 - n_msgs, n_msgs, true, &rendered, &text_len, &err)) goto fail;
        text = rendered;
    }
    if (print_prompt) {
        fwrite(text, 1, text_len, stdout);
        rc = fflush(stdout) ? 1 : 0;
        goto out;
    }
    int n_prompt;
    if (ryot_tokenize(m, text, text_len, RYOT_TOK_ADD_BOS | (chat ? RYOT_TOK_SPECIAL : 0), &ids, &n_prompt,
                      &err))
        goto fail;
    if (n_prompt == 0) {
        fprintf(stderr, "ryot run: the prompt is empty\n");
        rc = 2;
        goto out;
    }
    if (spec_draft > 0) {
        if (draft_path && ryot_model_load(draft_path, &dm, &err)) {
            fprintf(stderr, "ryot run: draft model: %s\n", err.msg);
            goto out;
        }
        rc = run_speculative(m, dm, ids, n_prompt, (int)n_predict, (int)n_ctx, (int)n_threads, (int)spec_draft, &sp);
        goto out;
    }
    ryot_context_params cp = ryot_context_default_params();
    cp.n_threads = (int)n_threads;
    cp.n_ctx = (int)n_ctx;
    if (ryot_context_new(m, &cp, &c, &err)) goto fail;
    const int ctx_size = ryot_context_n_ctx(c);
    if (n_prompt >= ctx_size) {
        fprintf(stderr, "ryot run: the prompt has %d tokens; the context holds %d (use -c)\n", n_prompt, ctx_size);
        goto out;
    }
    if (n_prompt + n_predict > ctx_size) {
        fprintf(stderr, "ryot run: generating at most %d tokens (context %d)\n", ctx_size - n_prompt, ctx_size);
        n_predict = ctx_size - n_prompt;
    }
    const int n_vocab = ryot_n_vocab(m);
    if (sampler_init(&smp, &sp, n_vocab, &err)) goto fail;
    if (!(logits = malloc((size_t)n_vocab * sizeof *logits))) {
        ryot_fail(&err, RYOT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!print_ids) {
        if (detok_init(&dt, ryot_model_tokenizer(m), 0, &err)) goto fail;
        dt_ok = true;
    }

    double t1 = ryot_now_ms();
    if (ryot_decode(c, ids, n_prompt, 0, 1, &err)) goto fail;
    double t_prompt = ryot_now_ms() - t1;

    double t_dec = 0.0; /* generation: decode calls only (sampling and printing excluded) */
    int n_gen = 0, n_dec = 0, pos = n_prompt;
    bool first_id = true;
    while (n_gen < n_predict) {
        memcpy(logits, ryot_get_logits(c, 0), (size_t)n_vocab * sizeof *logits);
        int32_t tok = sampler_sample(smp, logits);
        if (tok < 0 || ryot_token_is_eog(m, tok)) break;
        sampler_accept(smp, tok);
        n_gen++;
        if (print_ids) {
            printf(first_id ? "%d" : " %d", tok);
            first_id = false;
        } else {
            size_t len;
            const char *piece = detok_push(&dt, tok, &len);
            if (len) fwrite(piece, 1, len, stdout);
        }
        fflush(stdout);
        if (n_gen == n_predict) break;
        double td = ryot_now_ms();
        if (ryot_decode(c, &tok, 1, pos, 1, &err)) goto fail;
        t_dec += ryot_now_ms() - td;
        n_dec++;
        pos++;
    }
    if (print_ids) {
        putchar('\n');
    } else {
        size_t len;
        const char *rest = detok_flush(&dt, &len);
        if (len) fwrite(rest, 1, len, stdout);
        putchar('\n');
    }
    fflush(stdout);
    fprintf(stderr,
            "ryot run: load %.0f ms | prompt %d tokens, %.1f ms, %.2f tok/s | generated %d tokens, "
            "%d decoded in %.1f ms, %.2f tok/s | %d threads\n",
            t_load, n_prompt, t_prompt, n_prompt / (t_prompt / 1e3), n_gen, n_dec, t_dec,
            n_dec > 0 ? n_dec / (t_dec / 1e3) : 0.0, ryot_context_n_threads(c));
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "ryot run: %s\n", err.msg[0] ? err.msg : ryot_strerror(err.code));
out:
    if (dt_ok) detok_free(&dt);
    free(logits);
    sampler_free(smp);
    free(ids);
    free(rendered);
    free(file_text);
    ryot_context_free(c);
    ryot_model_free(dm);
    ryot_model_free(m);
    return rc;
}
