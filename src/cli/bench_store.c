/* `ryot bench store`: the persistent store's codec and latency on real KV.
 *
 * The model prefills -n tokens of a text (the KV the server would store),
 * then for each codec setting (K/V bits 16/16, 8/8, 8/4):
 *   codec    encode+seal and unseal+decode MB/s of raw F16, one thread, and
 *            the ratio raw F16 bytes / sealed record bytes;
 *   store    write latency of the whole context (put every block, then
 *            wait until committed: the writer's encode + seal + one synced
 *            LMDB commit per batch) and read latency (get every block:
 *            LMDB read + unseal + decode into the KV), p50 / p99 over --reps;
 *   ppl      with -f TEXT: perplexity over windows of -c tokens whose first
 *            half is prefilled, round-tripped through the codec (as a
 *            stored context read back) and whose second half is then
 *            evaluated and scored; against the same protocol without the
 *            round trip.
 * Records are sealed with a random key (XChaCha20-Poly1305), in a temporary
 * LMDB directory (--dir, default under /tmp), removed at the end. */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "engine/api_internal.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "store/store.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot bench store [-m FILE] [-n TOKENS] [--reps N] [-f TEXT] [-c CTX] [--chunks N]\n"
            "\n"
            "Persistent store benchmark on the model's real KV: codec MB/s and ratio, store write and\n"
            "read latency of an N-token context (p50/p99), and with -f the perplexity cost of reading\n"
            "contexts back through the codec.\n"
            "\n"
            "  -m FILE        model (default: the default model)\n"
            "  -n TOKENS      context length for codec and latency (default 2048)\n"
            "  --reps N       repetitions for the latency percentiles (default 30)\n"
            "  -f TEXT        perplexity text (e.g. tests/golden/ppl.txt)\n"
            "  -c CTX         perplexity window (default 512)\n"
            "  --chunks N     perplexity windows (default: all)\n"
            "  -t N           threads for prefill (default: online CPUs)\n"
            "  --dir DIR      LMDB directory to create (default: a new one under /tmp)\n"
            "  --kv-file FILE the prefilled KV: loaded from FILE when it exists (no prefill), else\n"
            "                 prefilled and saved there (repeat runs skip the prefill)\n");
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)ceil(p / 100.0 * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* Round-trips blocks [0, n_blocks) of e through the codec, in place. */
static void round_trip(engine *e, int n_blocks, const store_kv_shape *sh, const store_codec_params *cp,
                       store_codec_ctx *cc) {
    ryot_buf rec = {0};
    ryot_error err;
    for (int b = 0; b < n_blocks; b++) {
        uint16_t *k, *v;
        RYOT_ASSERT(engine_kv_block(e, b, &k, &v));
        rec.len = 0;
        RYOT_ASSERT(store_kv_encode(cc, sh, cp, k, v, &rec, &err) == RYOT_OK);
        RYOT_ASSERT(store_kv_decode(cc, sh, rec.data, rec.len, k, v, &err) == RYOT_OK);
    }
    ryot_buf_free(&rec);
}

static int perplexity(const ryot_model *rm, engine *e, const char *path, int n_ctx, int chunks, int bs) {
    size_t len;
    char *text = cli_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "ryot bench store: cannot read %s\n", path);
        return 1;
    }
    ryot_error err;
    int32_t *ids;
    int n_tok;
    if (ryot_tokenize(rm, text, len, 0, &ids, &n_tok, &err)) {
        free(text);
        fprintf(stderr, "ryot bench store: %s\n", err.msg);
        return 1;
    }
    free(text);
    int32_t *probe;
    int n_probe;
    ryot_tokenize(rm, "", 0, RYOT_TOK_ADD_BOS, &probe, &n_probe, &err);
    free(probe);
    const int32_t bos = ryot_token_bos(rm);
    int n_win = n_tok / n_ctx;
    if (chunks > 0 && n_win > chunks) n_win = chunks;
    const int first = n_ctx / 2 / bs * bs; /* the stored half: whole blocks */
    const int n_vocab = ryot_n_vocab(rm);
    store_kv_shape sh;
    store_shape_of(rm, bs, &sh);
    store_codec_ctx *cc = store_codec_ctx_new();
    const store_codec_params settings[] = {{16, 16, 1}, {8, 4, 1}, {6, 4, 0}};
    double base = 0;
    printf("\nperplexity: %s, %d windows of %d, first %d positions round-tripped, %d scored per window\n", path,
           n_win, n_ctx, first, n_ctx - 1 - first);
    for (size_t si = 0; si < sizeof settings / sizeof settings[0]; si++) {
        double nll = 0;
        long count = 0;
        for (int w = 0; w < n_win; w++) {
            int32_t *win = ids + (size_t)w * (size_t)n_ctx;
            int32_t saved = win[0];
            if (n_probe > 0 && bos >= 0) win[0] = bos;
            if (engine_decode(e, win, first, 0, 0, &err)) break;
            if (si > 0) round_trip(e, first / bs, &sh, &settings[si], cc);
            if (engine_decode(e, win + first, n_ctx - first, first, n_ctx - first, &err)) break;
            for (int i = first; i < n_ctx - 1; i++) {
                sampler_logprobs lp;
                sampler_row_logprobs(engine_logits(e, i - first), n_vocab, win[i + 1], 0, &lp);
                nll -= lp.chosen.logprob;
                count++;
            }
            win[0] = saved;
        }
        const double ppl = exp(nll / (double)count);
        if (si == 0) base = ppl;
        printf("  K/V %2d/%-2d bits  PPL %.4f  (%+.3f%% vs F16)\n", settings[si].k_bits, settings[si].v_bits, ppl,
               100.0 * (ppl / base - 1.0));
    }
    store_codec_ctx_free(cc);
    free(ids);
    return 0;
}

/* --kv-file: blocks 0..n_blocks-1 as K then V, F16, in the engine's layout. */
static bool kv_load(engine *e, const char *path, int n_blocks, size_t raw, size_t nk) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return false;
    bool ok = true;
    for (int b = 0; ok && b < n_blocks; b++) {
        uint16_t *k, *v;
        ok = engine_kv_block(e, b, &k, &v) && fread(k, 2, nk, f) == nk && fread(v, 1, raw - nk * 2, f) == raw - nk * 2;
    }
    ok = ok && fgetc(f) == EOF;
    fclose(f);
    if (!ok) fprintf(stderr, "ryot bench store: %s is not a KV dump of this shape: prefilling\n", path);
    return ok;
}

static void kv_save(engine *e, const char *path, int n_blocks, size_t nk, size_t nv) {
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL;
    for (int b = 0; ok && b < n_blocks; b++) {
        uint16_t *k, *v;
        ok = engine_kv_block(e, b, &k, &v) && fwrite(k, 2, nk, f) == nk && fwrite(v, 2, nv, f) == nv;
    }
    if (f && fclose(f)) ok = false;
    if (!ok) fprintf(stderr, "ryot bench store: could not write %s\n", path);
}

int cmd_bench_store(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL, *dir_arg = NULL, *kv_file = NULL;
    long n_tokens = 2048, reps = 30, n_ctx = 512, chunks = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        bool ok = v != NULL;
        if (ok && !strcmp(a, "-m")) model_path = v;
        else if (ok && !strcmp(a, "-f")) text_path = v;
        else if (ok && !strcmp(a, "--dir")) dir_arg = v;
        else if (ok && !strcmp(a, "--kv-file")) kv_file = v;
        else if (ok && !strcmp(a, "-n")) ok = cli_parse_long(v, 64, 1 << 20, &n_tokens);
        else if (ok && !strcmp(a, "--reps")) ok = cli_parse_long(v, 1, 100000, &reps);
        else if (ok && !strcmp(a, "-c")) ok = cli_parse_long(v, 128, 1 << 16, &n_ctx);
        else if (ok && !strcmp(a, "--chunks")) ok = cli_parse_long(v, 0, 1 << 20, &chunks);
        else if (ok && !strcmp(a, "-t")) ok = cli_parse_long(v, 1, 512, &threads);
        else ok = false;
        if (!ok) {
            fprintf(stderr, "ryot bench store: bad or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
        i++;
    }
    if (!model_path && !(model_path = cli_default_model())) return 1;
    if (sodium_init() < 0) return 1;
    setvbuf(stdout, NULL, _IOLBF, 0); /* rows as they are measured */
    ryot_error err = {0};
    ryot_model *rm;
    if (ryot_model_load(model_path, &rm, &err)) {
        fprintf(stderr, "ryot bench store: %s\n", err.msg);
        return 1;
    }
    const model *m = ryot_model_internal(rm);
    engine_params ep = engine_params_default(m);
    const int ctx = (int)(n_tokens > n_ctx ? n_tokens : n_ctx);
    ep.n_ctx = ctx;
    ep.n_batch = 512;
    ep.n_logits_max = (int)n_ctx;
    if (threads > 0) ep.n_threads = (int)threads;
    engine *e;
    if (engine_new(m, &ep, &e, &err)) {
        fprintf(stderr, "ryot bench store: %s\n", err.msg);
        ryot_model_free(rm);
        return 1;
    }
    const int bs = e->bs, n_blocks = (int)n_tokens / bs;
    store_kv_shape sh;
    store_shape_of(rm, bs, &sh);
    const size_t nk = store_kv_elems_k(&sh), nv = store_kv_elems_v(&sh), raw = (nk + nv) * 2;

    /* real KV: prefill n_tokens of text (the perplexity text, else a fixed one) */
    int32_t *toks = malloc((size_t)n_tokens * sizeof *toks);
    {
        ryot_buf t = {0};
        size_t len = 0;
        char *text = text_path ? cli_read_file(text_path, &len) : NULL;
        int32_t *ids = NULL;
        int n = 0;
        while (!text && t.len < (size_t)n_tokens * 8)
            ryot_buf_printf(&t, "Entry %zu: the archive keeps the ledger of shipment %zu on shelf %zu. ", t.len,
                            t.len * 7 % 1013, t.len % 17);
        ryot_tokenize(rm, text ? text : t.data, text ? len : t.len, 0, &ids, &n, &err);
        for (long i = 0; i < n_tokens; i++) toks[i] = ids[n ? i % n : 0];
        free(ids);
        free(text);
        ryot_buf_free(&t);
    }
    double t0 = ryot_now_s();
    if (!kv_load(e, kv_file, n_blocks, raw, nk)) {
        if (engine_decode(e, toks, (int)n_tokens, 0, 1, &err)) {
            fprintf(stderr, "ryot bench store: %s\n", err.msg);
            return 1;
        }
        if (kv_file) kv_save(e, kv_file, n_blocks, nk, nv);
    }
    const double prefill_s = ryot_now_s() - t0;
    printf("model %s: %d layers, %d KV heads, head_dim %d/%d; block %d positions = %.2f MiB F16; "
           "context %ld tokens = %d blocks = %.1f MiB F16; prefill %.1f ms\n",
           model_path, sh.n_layer, sh.n_head_kv, sh.head_dim_k, sh.head_dim_v, bs, (double)raw / (1 << 20),
           n_tokens, n_blocks, (double)raw * n_blocks / (1 << 20), prefill_s * 1e3);

    uint8_t key[STORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    uint8_t mid[STORE_MODEL_ID_BYTES];
    store_model_id(rm, &sh, mid);
    store_rkey *keys = malloc((size_t)n_blocks * sizeof *keys);
    uint16_t *kbuf = malloc(raw);
    double *lat = malloc((size_t)reps * sizeof *lat);
    const store_codec_params settings[] = {{16, 16, 1}, {8, 8, 1}, {8, 4, 1}, {6, 4, 0}};
    {   /* the floor: copying the context's F16 bytes once, into distinct pages */
        uint16_t *src = malloc(raw * (size_t)n_blocks), *dst = malloc(raw * (size_t)n_blocks);
        memset(src, 1, raw * (size_t)n_blocks);
        memset(dst, 0, raw * (size_t)n_blocks);
        double best = 1e9;
        for (int r = 0; r < 5; r++) {
            double a = ryot_now_s();
            memcpy(dst, src, raw * (size_t)n_blocks);
            double c = ryot_now_s() - a;
            if (c < best) best = c;
            src[r] = dst[r + 1];
        }
        printf("floor: memcpy of the context's %.1f MiB F16, one thread: %.1f ms (best of 5)\n",
               (double)raw * n_blocks / (1 << 20), best * 1e3);
        free(src);
        free(dst);
    }
    printf("\n%-9s %8s %12s %12s %10s %10s %10s %10s %10s %10s\n", "K/V bits", "ratio", "enc MB/s", "dec MB/s",
           "write p50", "write p99", "read p50", "read p99", "read1 p50", "read1 p99");
    for (size_t si = 0; si < sizeof settings / sizeof settings[0]; si++) {
        const store_codec_params *cp = &settings[si];
        store_codec_ctx *cc = store_codec_ctx_new();
        ryot_buf plain = {0}, rec = {0}, out = {0};
        /* codec: every block of the context, several passes */
        size_t sealed = 0;
        double t_enc = 0, t_dec = 0, t_quant = 0, t_seal = 0, t_unseal = 0, t_dequant = 0;
        const int passes = 3;
        for (int p = 0; p < passes; p++)
            for (int b = 0; b < n_blocks; b++) {
                uint16_t *k, *v;
                engine_kv_block(e, b, &k, &v);
                store_rkey rk = {{0}};
                rk.b[0] = (uint8_t)b;
                double a = ryot_now_s();
                plain.len = rec.len = 0;
                store_kv_encode(cc, &sh, cp, k, v, &plain, &err);
                double a2 = ryot_now_s();
                store_seal(key, rk.b, sizeof rk.b, plain.data, plain.len, &rec, &err);
                double c = ryot_now_s();
                store_unseal(key, rk.b, sizeof rk.b, rec.data, rec.len, &out, NULL, &err);
                double c2 = ryot_now_s();
                RYOT_ASSERT(store_kv_decode(cc, &sh, out.data, out.len, kbuf, kbuf + nk, &err) == RYOT_OK);
                double d = ryot_now_s();
                t_enc += c - a;
                t_dec += d - c;
                t_quant += a2 - a, t_seal += c - a2, t_unseal += c2 - c, t_dequant += d - c2;
                if (p == 0) sealed += rec.len;
            }
        const double mb = (double)raw * n_blocks * passes / 1e6;
        const double ratio = (double)raw * n_blocks / (double)sealed;

        /* store: write then read the whole context, reps times (new keys each rep) */
        char dir[256];
        if (dir_arg) snprintf(dir, sizeof dir, "%s", dir_arg);
        else snprintf(dir, sizeof dir, "/tmp/ryot-bench-store-%d", (int)getpid());
        store_params spp = {.dir = dir, .gb = 64, .key = key, .codec = *cp, .shape = sh,
                            .queue_bytes = raw * (size_t)n_blocks * 2};
        store *st;
        if (store_open(&spp, &st, &err)) {
            fprintf(stderr, "ryot bench store: %s\n", err.msg);
            return 1;
        }
        double *rlat = malloc((size_t)reps * sizeof *rlat), *slat = malloc((size_t)reps * sizeof *slat);
        uint16_t **kp = malloc((size_t)n_blocks * sizeof *kp), **vp = malloc((size_t)n_blocks * sizeof *vp);
        uint16_t *kvdst = malloc(raw * (size_t)n_blocks); /* distinct pages, like the KV cache's */
        for (int b = 0; b < n_blocks; b++) kp[b] = kvdst + (size_t)b * raw / 2, vp[b] = kp[b] + nk;
        memset(kvdst, 0, raw * (size_t)n_blocks);
        for (long r = 0; r < reps; r++) {
            toks[0] = (int32_t)(r + 1000 * (long)si); /* a new prefix each rep: new keys */
            store_chain(mid, toks, n_blocks, bs, keys);
            double a = ryot_now_s();
            for (int b = 0; b < n_blocks; b++) {
                uint16_t *k, *v;
                engine_kv_block(e, b, &k, &v);
                RYOT_ASSERT(store_put_block(st, &keys[b], k, v));
            }
            store_flush(st);
            double c = ryot_now_s();
            for (int b = 0; b < n_blocks; b++)
                RYOT_ASSERT(store_get_block(st, &keys[b], kbuf, kbuf + nk, &err) == RYOT_OK);
            double d = ryot_now_s();
            RYOT_ASSERT(store_get_blocks(st, keys, n_blocks, kp, vp) == n_blocks);
            double g = ryot_now_s();
            lat[r] = (c - a) * 1e3;
            slat[r] = (d - c) * 1e3;
            rlat[r] = (g - d) * 1e3;
            store_flush(st); /* the reads' last-access updates, outside the timings */
        }
        printf("%2d/%-2d z%d %8.2f %12.0f %12.0f %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", cp->k_bits,
               cp->v_bits, cp->zstd_level, ratio, mb / t_enc, mb / t_dec, pct(lat, (int)reps, 50),
               pct(lat, (int)reps, 99), pct(rlat, (int)reps, 50), pct(rlat, (int)reps, 99), pct(slat, (int)reps, 50),
               pct(slat, (int)reps, 99));
        const double per = 1e3 / passes;
        printf("          per context, one thread: quantize+zstd %.1f ms, seal %.1f ms | unseal %.1f ms, "
               "zstd+dequantize %.1f ms\n",
               t_quant * per, t_seal * per, t_unseal * per, t_dequant * per);
        free(rlat);
        free(slat);
        free(kp);
        free(vp);
        free(kvdst);
        store_close(st);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "ryot bench store: could not remove %s\n", dir);
        ryot_buf_free(&plain);
        ryot_buf_free(&rec);
        ryot_buf_free(&out);
        store_codec_ctx_free(cc);
    }
    printf("(ratio: raw F16 / sealed record bytes; MB/s: raw F16 MB per second, one thread; latencies in ms for the "
           "whole %ld-token context; read: store_get_blocks as the server loads a prefix, on the caller and the "
           "store's reader threads; read1: store_get_block per block on one thread)\n", n_tokens);
    int rc = 0;
    if (text_path) rc = perplexity(rm, e, text_path, (int)n_ctx, (int)chunks, bs);
    free(keys);
    free(kbuf);
    free(lat);
    free(toks);
    engine_free(e);
    ryot_model_free(rm);
    return rc;
}
