/* `ryot perplexity`: perplexity of a model over a text file.
 *
 * Same protocol as llama.cpp's perplexity tool: the whole file is tokenized
 * (no BOS), cut into non-overlapping windows of CTX tokens; when the vocab
 * adds BOS, each window's first token is replaced by BOS.  Each window is
 * evaluated from an empty context and its second half is scored: for
 * i in [CTX/2, CTX-1), -log softmax(logits_i)[token_(i+1)].
 * PPL = exp(mean negative log-likelihood over every scored token).
 *
 * --score-file: the log-likelihood of given continuations instead, the way
 * lm-evaluation-harness scores multiple-choice tasks, so a server's
 * echo + logprobs answers can be checked against the engine directly.  Each
 * line of the file is {"context": str, "continuation": str}; the context
 * and context + continuation are tokenized as the server tokenizes text
 * prompts (BOS when the vocab adds one, special tokens parsed), the
 * continuation's tokens are those of the whole past the context's (the
 * harness's split), the whole is evaluated from an empty context, and each
 * continuation token gets its log-prob given everything before it
 * (sampler_row_logprobs: the server's arithmetic).  One line out per pair:
 * index, log-likelihood (sum), continuation tokens, greedy (1 when every
 * continuation token is the most likely one), tab-separated.
 * Exit status: 0 ok, 1 failure (file, model, too short), 2 bad usage. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "engine/sampler.h"
#include "ryot.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot perplexity [-m FILE] -f TEXT [-c CTX] [-t N] [--chunks N]\n"
            "       ryot perplexity [-m FILE] --score-file JSONL [-c CTX] [-t N]\n"
            "\n"
            "Perplexity over a text file: non-overlapping windows of CTX tokens (BOS first\n"
            "when the vocab adds one), the second half of each window scored.  Prints the\n"
            "running perplexity after each window, then `PPL = x.xxxx`.\n"
            "\n"
            "With --score-file, scores continuations instead (lm-evaluation-harness's\n"
            "loglikelihood): each line {\"context\": str, \"continuation\": str}; prints\n"
            "INDEX<TAB>LOGLIKELIHOOD<TAB>TOKENS<TAB>GREEDY per line (CTX bounds context +\n"
            "continuation).\n"
            "\n"
            "options:\n"
            "  -m, --model FILE  GGUF model (default: $RYOT_MODEL, else the default model)\n"
            "  -f, --file TEXT   the text file\n"
            "  -c, --ctx N       window size in tokens (default 512)\n"
            "  -t, --threads N   worker threads (default: online CPUs)\n"
            "      --chunks N    score at most N windows (default: all)\n"
            "      --score-file JSONL  score the continuations of context/continuation pairs\n"
            "  -h, --help        show this help\n");
}

/* Tokens of text the way the server tokenizes a text prompt. */
static int score_tokenize(const ryot_model *m, const char *text, ryot_token **ids, int *n, ryot_error *err) {
    return ryot_tokenize(m, text, strlen(text), RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL, ids, n, err) ? -1 : 0;
}

/* One pair: the continuation's log-likelihood, token count and greediness. */
static int score_pair(ryot_context *c, const ryot_model *m, const char *context, const char *cont, int n_ctx,
                      double *ll, int *n_cont, bool *greedy, ryot_error *err) {
    ryot_token *pre = NULL, *whole = NULL;
    int n_pre, n_whole, rc = -1;
    size_t lc = strlen(context), lk = strlen(cont);
    char *joined = malloc(lc + lk + 1);
    if (!joined) {
        ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        return -1;
    }
    memcpy(joined, context, lc);
    memcpy(joined + lc, cont, lk + 1);
    if (score_tokenize(m, context, &pre, &n_pre, err) || score_tokenize(m, joined, &whole, &n_whole, err)) goto out;
    *n_cont = n_whole - n_pre;
    if (n_pre < 1 || *n_cont < 1) {
        ryot_fail(err, RYOT_ERR_INVALID, "%s tokenizes to nothing", n_pre < 1 ? "the context" : "the continuation");
        goto out;
    }
    if (n_whole > n_ctx) {
        ryot_fail(err, RYOT_ERR_INVALID, "context + continuation is %d tokens; -c is %d", n_whole, n_ctx);
        goto out;
    }
    /* rows n_pre-1 .. n_whole-1 (the last one predicts past the end) */
    const int n_rows = *n_cont + 1;
    if (ryot_decode(c, whole, n_whole, 0, n_rows, err)) goto out;
    *ll = 0.0;
    *greedy = true;
    for (int i = 0; i < *n_cont; i++) {
        sampler_logprobs lp;
        sampler_row_logprobs(ryot_get_logits(c, i), ryot_n_vocab(m), whole[n_pre + i], 1, &lp);
        *ll += lp.chosen.logprob;
        if (lp.chosen.logprob < lp.top[0].logprob) *greedy = false;
    }
    rc = 0;
out:
    free(joined);
    free(pre);
    free(whole);
    return rc;
}

/* --score-file: one output line per JSON line of the file. */
static int score_file(const char *model_path, const char *path, int n_ctx, int n_threads) {
    size_t len = 0;
    char *text = cli_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "ryot perplexity: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    int rc = 1;
    ryot_error err = {0};
    ryot_model *m = NULL;
    ryot_context *c = NULL;
    if (ryot_model_load(model_path, &m, &err)) goto fail;
    ryot_context_params cp = ryot_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_threads = n_threads;
    cp.n_logits_max = n_ctx;
    if (ryot_context_new(m, &cp, &c, &err)) goto fail;
    int index = 0, line_no = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line_no++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *context = json_string_value(json_object_get(o, "context"));
        const char *cont = json_string_value(json_object_get(o, "continuation"));
        double ll = 0.0;
        int n_cont = 0;
        bool greedy = false;
        int st = -1;
        if (!context || !cont)
            ryot_fail(&err, RYOT_ERR_INVALID, "line %d: want {\"context\": str, \"continuation\": str}", line_no);
        else if ((st = score_pair(c, m, context, cont, n_ctx, &ll, &n_cont, &greedy, &err))) {
            char why[RYOT_ERROR_MSG_MAX];
            snprintf(why, sizeof why, "%s", err.msg);
            ryot_fail(&err, err.code, "line %d: %s", line_no, why);
        }
        json_decref(o);
        if (st) goto fail;
        printf("%d\t%.9g\t%d\t%d\n", index++, ll, n_cont, greedy ? 1 : 0);
    }
    fflush(stdout);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "ryot perplexity: %s\n", err.msg[0] ? err.msg : ryot_strerror(err.code));
out:
    ryot_context_free(c);
    ryot_model_free(m);
    free(text);
    return rc;
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL, *score_path = NULL;
    long n_ctx = 512, n_threads = 0, max_chunks = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        bool known = !strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-f") || !strcmp(a, "--file") ||
                     !strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "-t") || !strcmp(a, "--threads") ||
                     !strcmp(a, "--chunks") || !strcmp(a, "--score-file");
        if (!known) {
            fprintf(stderr, "ryot perplexity: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "ryot perplexity: %s needs a value\n", a);
            return 2;
        }
        i++;
        bool ok = true;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model_path = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
            text_path = v;
        else if (!strcmp(a, "--score-file"))
            score_path = v;
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx"))
            ok = cli_parse_long(v, 4, 1 << 20, &n_ctx);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            ok = cli_parse_long(v, 1, 512, &n_threads);
        else
            ok = cli_parse_long(v, 1, 1 << 30, &max_chunks);
        if (!ok) {
            fprintf(stderr, "ryot perplexity: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (!text_path == !score_path) {
        fprintf(stderr, "ryot perplexity: give the text with -f FILE or the pairs with --score-file FILE\n");
        return 2;
    }
    if (!model_path && !(model_path = cli_default_model())) return 1;
    if (score_path) return score_file(model_path, score_path, (int)n_ctx, (int)n_threads);

    int rc = 1;
    ryot_error err = {0};
    ryot_model *m = NULL;
    ryot_context *c = NULL;
    ryot_token *ids = NULL, *win = NULL;
    size_t text_len = 0;
    char *text = cli_read_file(text_path, &text_len);
    if (!text) {
        fprintf(stderr, "ryot perplexity: cannot read %s: %s\n", text_path, strerror(errno));
        return 1;
    }
    if (ryot_model_load(model_path, &m, &err)) goto fail;
    int n_tok;
    if (ryot_tokenize(m, text, text_len, 0, &ids, &n_tok, &err)) goto fail;
    /* does the vocab add BOS?  tokenize an empty string with ADD_BOS */
    ryot_token *probe;
    int n_probe;
    if (ryot_tokenize(m, "", 0, RYOT_TOK_ADD_BOS, &probe, &n_probe, &err)) goto fail;
    const bool add_bos = n_probe > 0;
    free(probe);
    const ryot_token bos = ryot_token_bos(m);

    long n_windows = n_tok / n_ctx;
    if (max_chunks > 0 && n_windows > max_chunks) n_windows = max_chunks;
    if (n_windows < 1) {
        fprintf(stderr, "ryot perplexity: %s has %d tokens; one window needs %ld (lower -c)\n", text_path, n_tok,
                n_ctx);
        goto out;
    }
    const int first = (int)(n_ctx / 2);
    const int n_out = (int)n_ctx - first; /* logits rows first..n_ctx-1 (the last is not scored) */
    ryot_context_params cp = ryot_context_default_params();
    cp.n_ctx = (int)n_ctx;
    cp.n_batch = (int)n_ctx;
    cp.n_threads = (int)n_threads;
    cp.n_logits_max = n_out;
    if (ryot_context_new(m, &cp, &c, &err)) goto fail;
    win = malloc((size_t)n_ctx * sizeof *win);
    if (!win) {
        ryot_fail(&err, RYOT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const int n_vocab = ryot_n_vocab(m);
    fprintf(stderr, "ryot perplexity: %d tokens, %ld windows of %ld, scoring %d per window, %d threads\n", n_tok,
            n_windows, n_ctx, (int)n_ctx - 1 - first, ryot_context_n_threads(c));
    double nll = 0.0;
    long count = 0;
    double t0 = ryot_now_s();
    for (long w = 0; w < n_windows; w++) {
        memcpy(win, ids + w * n_ctx, (size_t)n_ctx * sizeof *win);
        if (add_bos && bos >= 0) win[0] = bos;
        if (ryot_decode(c, win, (int)n_ctx, 0, n_out, &err)) goto fail;
        for (int i = first; i < n_ctx - 1; i++) {
            /* the server's log-softmax (one arithmetic for logprobs, scores
             * and perplexity) */
            sampler_logprobs lp;
            sampler_row_logprobs(ryot_get_logits(c, i - first), n_vocab, win[i + 1], 0, &lp);
            nll -= lp.chosen.logprob;
            count++;
        }
        printf("[%ld] %.4f\n", w + 1, exp(nll / count));
        fflush(stdout);
    }
    double dt = ryot_now_s() - t0;
    printf("PPL = %.4f\n", exp(nll / count));
    fprintf(stderr, "ryot perplexity: %ld tokens scored, %.1f s, %.1f tok/s evaluated\n", count, dt,
            n_windows * n_ctx / dt);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "ryot perplexity: %s\n", err.msg[0] ? err.msg : ryot_strerror(err.code));
out:
    free(win);
    free(ids);
    free(text);
    ryot_context_free(c);
    ryot_model_free(m);
    return rc;
}
