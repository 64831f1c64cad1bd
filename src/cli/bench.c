/* `ryot bench`: engine throughput, measured like llama-bench.
 *
 *   pp<P>: one batch of P prompt tokens (random valid ids) from an empty
 *          context, logits for the last one;
 *   tg<N>: N tokens evaluated one at a time from an empty context;
 *   rows<K>@<C> (--rows K,...): the cost of one forward of K tokens, each
 *          with its logits (a speculative verify step), at context C
 *          (--ctx, default 128): reported as ms per forward; 32 forwards
 *          of the same K positions per run (--cpu-time: in the calling
 *          thread's CPU time).
 * One warm-up run, then mean and sample standard deviation of tok/s over R
 * runs.  --json prints the same as one JSON object:
 *   {"model": ..., "arch": ..., "type": ..., "size_bytes": ..., "n_params": ...,
 *    "threads": T, "isa": ..., "results": [{"test": "pp512", "n": 512,
 *    "mean": t/s, "sd": t/s, "runs": [t/s...]}, ...]}  (rows tests: ms per forward)
 * Exit status: 0 ok, 1 load or decode failure, 2 bad usage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "core/rng.h"
#include "kernels/kernels.h"
#include "ryot.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot bench [-m FILE] [-p N] [-n N] [-r N] [-t N] [--json]\n"
            "       ryot bench serve|compare|plot ...   (serving benchmark; see --help of each)\n"
            "       ryot bench kernels|tokenizer|membw ...  (micro benchmarks)\n"
            "\n"
            "Measure prompt processing (one batch of -p random tokens) and generation\n"
            "(-n tokens one at a time), each from an empty context: one warm-up run,\n"
            "then mean +- sd of tok/s over -r runs.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE   GGUF model (default: $RYOT_MODEL, else the default model)\n"
            "  -p, --n-prompt N   prompt tokens (default 512; 0 skips the test)\n"
            "  -n, --n-gen N      generated tokens (default 128; 0 skips the test)\n"
            "  -r, --repetitions N  measured runs (default 5)\n"
            "  -t, --threads N    worker threads (default: online CPUs)\n"
            "      --rows LIST    also time forwards of K tokens with logits for each K\n"
            "                     in LIST (e.g. 1,2,4,8): ms per forward at --ctx\n"
            "      --ctx N        context before those forwards (default 128)\n"
            "      --cpu-time     time the rows tests in the calling thread's CPU time\n"
            "                     (with -t 1: unmoved by other processes on the cores)\n"
            "      --json         print the results as JSON\n"
            "  -h, --help         show this help\n");
}

typedef struct bench_result {
    char name[32];
    int n;
    double mean, sd;
    double *runs;
    int n_runs;
} bench_result;

static void stats(bench_result *r) {
    double s = 0, ss = 0;
    for (int i = 0; i < r->n_runs; i++) s += r->runs[i];
    r->mean = s / r->n_runs;
    for (int i = 0; i < r->n_runs; i++) ss += (r->runs[i] - r->mean) * (r->runs[i] - r->mean);
    r->sd = r->n_runs > 1 ? sqrt(ss / (r->n_runs - 1)) : 0.0;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int cmd_bench(int argc, char **argv) {
    /* Other benchmarks behind the same command (src/cli/bench_<name>.c). */
    if (argc > 1 && !strcmp(argv[1], "serve")) return cmd_bench_serve(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "compare")) return cmd_bench_compare(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "plot")) return cmd_bench_plot(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "kernels")) return cmd_bench_kernels(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "tokenizer")) return cmd_bench_tokenizer(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "membw")) return cmd_bench_membw(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "grammar")) return cmd_bench_grammar(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "embed")) return cmd_bench_embed(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "semantic")) return cmd_bench_semantic(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "store")) return cmd_bench_store(argc - 1, argv + 1);
    const char *model_path = NULL;
    long n_prompt = 512, n_gen = 128, reps = 5, n_threads = 0, rows_ctx = 128;
    enum { MAX_ROWS_TESTS = 16 };
    long rows_k[MAX_ROWS_TESTS];
    int n_rows_k = 0;
    bool json = false, cpu_time = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *target = NULL, lo = 0, hi = 1 << 20;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
            continue;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v) goto need;
            model_path = v;
            i++;
            continue;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            target = &n_prompt;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            target = &n_gen;
        } else if (!strcmp(a, "--cpu-time")) {
            cpu_time = true;
            continue;
        } else if (!strcmp(a, "--rows")) {
            if (!v) goto need;
            for (const char *p = v; *p;) {
                char *end;
                long k = strtol(p, &end, 10);
                if (end == p || k < 1 || k > 64 || n_rows_k == MAX_ROWS_TESTS || (*end && *end != ',')) {
                    fprintf(stderr, "ryot bench: bad value '%s' for --rows (1..64, comma-separated)\n", v);
                    return 2;
                }
                rows_k[n_rows_k++] = k;
                p = *end ? end + 1 : end;
            }
            i++;
            continue;
        } else if (!strcmp(a, "--ctx")) {
            target = &rows_ctx, lo = 0, hi = 1 << 16;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            target = &reps, lo = 1, hi = 1000;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            target = &n_threads, lo = 1, hi = 512;
        } else {
            fprintf(stderr, "ryot bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!v) goto need;
        if (!cli_parse_long(v, lo, hi, target)) {
            fprintf(stderr, "ryot bench: bad value '%s' for %s\n", v, a);
            return 2;
        }
        i++;
        continue;
    need:
        fprintf(stderr, "ryot bench: %s needs a value\n", a);
        return 2;
    }
    if (!model_path && !(model_path = cli_default_model())) return 1;

    int rc = 1;
    ryot_error err = {0};
    ryot_model *m = NULL;
    ryot_context *c = NULL;
    ryot_token *toks = NULL;
    bench_result res[2 + MAX_ROWS_TESTS];
    int n_res = 0;
    memset(res, 0, sizeof res);

    if (ryot_model_load(model_path, &m, &err)) goto fail;
    ryot_model_info info;
    ryot_model_get_info(m, &info);
    ryot_context_params cp = ryot_context_default_params();
    cp.n_threads = (int)n_threads;
    long need = n_prompt > n_gen ? n_prompt : n_gen, max_k = 0;
    for (int i = 0; i < n_rows_k; i++) max_k = rows_k[i] > max_k ? rows_k[i] : max_k;
    if (n_rows_k && rows_ctx + max_k > need) need = rows_ctx + max_k;
    cp.n_ctx = (int)(need > 0 ? need : 1);
    cp.n_batch = (int)(n_prompt > 0 ? n_prompt : 1);
    if (n_rows_k && cp.n_batch < rows_ctx) cp.n_batch = (int)(rows_ctx > 0 ? rows_ctx : 1);
    if (cp.n_batch < max_k) cp.n_batch = (int)max_k;
    cp.n_logits_max = (int)(max_k > 0 ? max_k : 1);
    if (ryot_context_new(m, &cp, &c, &err)) goto fail;
    toks = malloc((size_t)(need > 0 ? need : 1) * sizeof *toks);
    if (!toks) {
        ryot_fail(&err, RYOT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    ryot_rng rng;
    ryot_rng_seed(&rng, 42);
    for (long i = 0; i < need; i++) toks[i] = (ryot_token)(ryot_rng_next(&rng) % (uint64_t)info.n_vocab);

    if (n_prompt > 0) {
        bench_result *r = &res[n_res++];
        snprintf(r->name, sizeof r->name, "pp%ld", n_prompt);
        r->n = (int)n_prompt;
        r->runs = calloc((size_t)reps, sizeof(double));
        if (!r->runs) goto nomem;
        for (long it = 0; it <= reps; it++) {
            double t0 = ryot_now_s();
            if (ryot_decode(c, toks, (int)n_prompt, 0, 1, &err)) goto fail;
            double dt = ryot_now_s() - t0;
            if (it > 0) r->runs[r->n_runs++] = n_prompt / dt;
        }
        stats(r);
    }
    if (n_gen > 0) {
        bench_result *r = &res[n_res++];
        snprintf(r->name, sizeof r->name, "tg%ld", n_gen);
        r->n = (int)n_gen;
        r->runs = calloc((size_t)reps, sizeof(double));
        if (!r->runs) goto nomem;
        for (long it = 0; it <= reps; it++) {
            double t0 = ryot_now_s();
            for (long i = 0; i < n_gen; i++)
                if (ryot_decode(c, &toks[i], 1, (int)i, 1, &err)) goto fail;
            double dt = ryot_now_s() - t0;
            if (it > 0) r->runs[r->n_runs++] = n_gen / dt;
        }
        stats(r);
    }

    if (n_rows_k && rows_ctx > 0 && ryot_decode(c, toks, (int)rows_ctx, 0, 1, &err)) goto fail;
    for (int q = 0; q < n_rows_k; q++) {
        enum { FORWARDS = 32 };
        const long k = rows_k[q];
        bench_result *r = &res[n_res++];
        snprintf(r->name, sizeof r->name, "rows%ld@%ld", k, rows_ctx);
        r->n = (int)k;
        r->runs = calloc((size_t)reps, sizeof(double));
        if (!r->runs) goto nomem;
        for (long it = 0; it <= reps; it++) {
            double t0 = cpu_time ? ryot_thread_cpu_s() : ryot_now_s();
            for (int f = 0; f < FORWARDS; f++)
                if (ryot_decode(c, &toks[rows_ctx], (int)k, (int)rows_ctx, (int)k, &err)) goto fail;
            double dt = (cpu_time ? ryot_thread_cpu_s() : ryot_now_s()) - t0;
            if (it > 0) r->runs[r->n_runs++] = 1e3 * dt / FORWARDS;
        }
        stats(r);
    }

    const char *isa = kernel_isa_name(kernels_init(KERNEL_ISA_AUTO));
    int threads = ryot_context_n_threads(c);
    char model_desc[96];
    snprintf(model_desc, sizeof model_desc, "%s %.0fM", info.arch, info.n_params / 1e6);
    if (json) {
        printf("{\"model\": ");
        json_str(info.name);
        printf(", \"file\": ");
        json_str(model_path);
        printf(", \"arch\": ");
        json_str(info.arch);
        printf(", \"type\": ");
        json_str(info.type_name);
        printf(", \"size_bytes\": %llu, \"n_params\": %llu, \"threads\": %d, \"isa\": ",
               (unsigned long long)info.size_bytes, (unsigned long long)info.n_params, threads);
        json_str(isa);
        printf(", \"results\": [");
        for (int i = 0; i < n_res; i++) {
            printf("%s{\"test\": \"%s\", \"n\": %d, \"mean\": %.3f, \"sd\": %.3f, \"runs\": [", i ? ", " : "",
                   res[i].name, res[i].n, res[i].mean, res[i].sd);
            for (int k = 0; k < res[i].n_runs; k++) printf("%s%.3f", k ? ", " : "", res[i].runs[k]);
            printf("]}");
        }
        printf("]}\n");
    } else {
        printf("| %-18s | %10s | %9s | %-6s | %7s | %-6s | %7s | %20s |\n", "model", "size", "params", "type", "threads",
               "isa", "test", "t/s");
        printf("| %-18s | %10s | %9s | %-6s | %7s | %-6s | %7s | %20s |\n", "------------------", "---------:",
               "--------:", "------", "------:", "------", "------:", "-------------------:");
        for (int i = 0; i < n_res; i++) {
            char size[32], params[32], ts[48];
            snprintf(size, sizeof size, "%.2f MiB", info.size_bytes / (1024.0 * 1024.0));
            snprintf(params, sizeof params, "%.2f M", info.n_params / 1e6);
            if (!strncmp(res[i].name, "rows", 4))
                snprintf(ts, sizeof ts, "%.2f ± %.2f ms", res[i].mean, res[i].sd);
            else
                snprintf(ts, sizeof ts, "%.2f ± %.2f", res[i].mean, res[i].sd);
            printf("| %-18s | %10s | %9s | %-6s | %7d | %-6s | %7s | %20s |\n", model_desc, size, params,
                   info.type_name, threads, isa, res[i].name, ts);
        }
    }
    rc = 0;
    goto out;
nomem:
    ryot_fail(&err, RYOT_ERR_NOMEM, "out of memory");
fail:
    fprintf(stderr, "ryot bench: %s\n", err.msg[0] ? err.msg : ryot_strerror(err.code));
out:
    for (int i = 0; i < 2 + MAX_ROWS_TESTS; i++) free(res[i].runs);
    free(toks);
    ryot_context_free(c);
    ryot_model_free(m);
    return rc;
}
