/* `ryot perplexity`: perplexity of a model over a text file.
 *
 * Same protocol as llama.cpp's perplexity tool: the whole file is tokenized
 * (no BOS), cut into non-overlapping windows of CTX tokens; when the vocab
 * adds BOS, each window's first token is replaced by BOS.  Each window is
 * evaluated from an empty context and its second half is scored: for
 * i in [CTX/2, CTX-1), -log softmax(logits_i)[token_(i+1)].
 * PPL = exp(mean negative log-likelihood over every scored token).
 * Exit status: 0 ok, 1 failure (file, model, too short), 2 bad usage. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "engine/ops.h"
#include "ryot.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot perplexity [-m FILE] -f TEXT [-c CTX] [-t N] [--chunks N]\n"
            "\n"
            "Perplexity over a text file: non-overlapping windows of CTX tokens (BOS first\n"
            "when the vocab adds one), the second half of each window scored.  Prints the\n"
            "running perplexity after each window, then `PPL = x.xxxx`.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE  GGUF model (default: $RYOT_MODEL, else the default model)\n"
            "  -f, --file TEXT   the text file\n"
            "  -c, --ctx N       window size in tokens (default 512)\n"
            "  -t, --threads N   worker threads (default: online CPUs)\n"
            "      --chunks N    score at most N windows (default: all)\n"
            "  -h, --help        show this help\n");
}

/* log(sum(exp(x))) over one row of logits: exponentials in float through the
 * inline exp (relative error ~1e-7) into 8 float partial sums of at most 32
 * terms each, those summed in double.  Several times faster than libm's exp over a
 * 262k-entry vocabulary. */
static double log_sum_exp(const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    int i = 0;
    while (i + 8 <= n) { /* blocks of up to 256: each float partial sums <= 32 terms */
        float part[8] = {0};
        for (int b = 0; b < 32 && i + 8 <= n; b++, i += 8)
            for (int k = 0; k < 8; k++) part[k] += ops_exp_neg(x[i + k] - mx);
        for (int k = 0; k < 8; k++) sum += part[k];
    }
    for (; i < n; i++) sum += ops_exp_neg(x[i] - mx);
    return (double)mx + log(sum);
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL;
    long n_ctx = 512, n_threads = 0, max_chunks = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        bool known = !strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-f") || !strcmp(a, "--file") ||
                     !strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "-t") || !strcmp(a, "--threads") ||
                     !strcmp(a, "--chunks");
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
    if (!text_path) {
        fprintf(stderr, "ryot perplexity: give the text with -f FILE\n");
        return 2;
    }
    if (!model_path && !(model_path = cli_default_model())) return 1;

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
            const float *lg = ryot_get_logits(c, i - first);
            nll += log_sum_exp(lg, n_vocab) - lg[win[i + 1]];
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
