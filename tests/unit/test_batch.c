/* Batched forward over a paged KV cache (engine_forward).
 *
 * Batch invariance: a sequence's logits are bitwise identical whether it is
 * evaluated alone or in a batch with other sequences' decode tokens and
 * prefill chunks, whatever the chunking of its own prompt and whatever block
 * ids its table holds.  Prefix sharing: a sequence that starts from another
 * sequence's KV blocks (skipping that prefill) gets the same logits, bit for
 * bit, as one that computed them itself.  Tests compare with memcmp: there is
 * no tolerance, the server's guarantee is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/tiny_model.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "gguf/gguf.h"
#include "model/model.h"

#define N_STEPS 10  /* greedy tokens generated per sequence */
#define MAX_SEQ 4
#define MAX_POS 256

typedef struct loaded {
    uint8_t *buf;
    model *m;
} loaded;

static loaded load(const tiny_spec *s) {
    loaded l;
    size_t size;
    ryot_error err = {0};
    l.buf = tiny_model_build(s, &size);
    gguf_file *f;
    if (gguf_open_memory(l.buf, size, &f, &err) || model_load_gguf(f, &l.m, &err)) fail_msg("load: %s", err.msg);
    return l;
}

static engine *make(const model *m, int bs, int n_threads) {
    engine_params p = engine_params_default(m);
    p.n_ctx = MAX_POS;
    p.n_threads = n_threads;
    p.n_batch = 64 + MAX_SEQ;
    p.kv_block_size = bs;
    p.kv_blocks = MAX_SEQ * MAX_POS / bs + 8;
    p.max_seqs = MAX_SEQ;
    p.n_logits_max = MAX_SEQ;
    engine *e;
    ryot_error err = {0};
    if (engine_new(m, &p, &e, &err)) fail_msg("engine: %s", err.msg);
    return e;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

typedef struct seq_run {
    int32_t toks[MAX_POS];
    int n_prompt, n_done;  /* prompt length; positions whose KV is computed */
    int n_gen;             /* tokens generated so far */
    int32_t blocks[MAX_POS / 16 + 1];
    int n_blocks;
    float *logits;         /* (N_STEPS, n_vocab) logits before each generated token */
} seq_run;

/* Shuffled block ids: sequence s gets a disjoint, scrambled set. */
static void assign_blocks(seq_run *r, int s, int n_seqs, int bs, uint64_t seed) {
    const int per = MAX_POS / bs;
    r->n_blocks = per;
    ryot_rng g;
    ryot_rng_seed(&g, seed);
    for (int i = 0; i < per; i++) r->blocks[i] = (int32_t)(i * n_seqs + s);
    for (int i = per - 1; i > 0; i--) {
        int j = (int)(ryot_rng_next(&g) % (uint64_t)(i + 1));
        int32_t t = r->blocks[i];
        r->blocks[i] = r->blocks[j];
        r->blocks[j] = t;
    }
}

/* Runs sequences together: each step every sequence in decode contributes a
 * token, and prefill chunks (at most `chunk` tokens per sequence, `budget` in
 * all) fill the rest; sequence s starts at step start[s]. */
static void run_batched(engine *e, seq_run *rs, int n_seqs, const int *start, int chunk, int budget) {
    const int nv = e->m->hp.n_vocab;
    int32_t toks[64 + MAX_SEQ];
    engine_seq sq[MAX_SEQ];
    int who[MAX_SEQ];
    ryot_error err = {0};
    for (int step = 0;; step++) {
        int n = 0, k = 0, left = budget, busy = 0;
        for (int s = 0; s < n_seqs; s++) {
            seq_run *r = &rs[s];
            if (r->n_gen >= N_STEPS) continue;
            busy = 1;
            if (step < start[s]) continue;
            int take;
            if (r->n_done >= r->n_prompt) {
                take = 1; /* decode: the last generated token */
            } else {
                take = r->n_prompt - r->n_done;
                if (take > chunk) take = chunk;
                if (take > left) take = left;
                if (take <= 0) continue;
                left -= take;
            }
            memcpy(toks + n, r->toks + r->n_done, (size_t)take * sizeof *toks);
            const bool last = r->n_done + take >= r->n_prompt;
            sq[k] = (engine_seq){.blocks = r->blocks, .n_blocks = r->n_blocks, .pos = r->n_done, .n = take,
                                 .n_logits = last ? 1 : 0};
            who[k++] = s;
            n += take;
        }
        if (!busy) break;
        if (k == 0) continue;
        if (engine_forward(e, toks, n, sq, k, &err)) fail_msg("forward: %s", err.msg);
        for (int i = 0, row = 0; i < k; i++) {
            seq_run *r = &rs[who[i]];
            r->n_done += sq[i].n;
            if (!sq[i].n_logits) continue;
            const float *lg = engine_logits(e, row++);
            memcpy(r->logits + (size_t)r->n_gen * nv, lg, (size_t)nv * sizeof(float));
            r->toks[r->n_done] = argmax(lg, nv);
            r->n_gen++;
        }
    }
}

static void init_runs(seq_run *rs, const int *lens, int n_seqs, int n_vocab, int bs, uint64_t seed) {
    for (int s = 0; s < n_seqs; s++) {
        seq_run *r = &rs[s];
        memset(r, 0, sizeof *r);
        r->n_prompt = lens[s];
        ryot_rng g;
        ryot_rng_seed(&g, 1000 + (uint64_t)s); /* prompt s is the same in every run */
        for (int i = 0; i < lens[s]; i++) r->toks[i] = (int32_t)(ryot_rng_next(&g) % (uint64_t)n_vocab);
        assign_blocks(r, s, n_seqs, bs, seed + (uint64_t)s);
        r->logits = malloc((size_t)N_STEPS * n_vocab * sizeof(float));
        assert_non_null(r->logits);
    }
}

static void free_runs(seq_run *rs, int n) {
    for (int s = 0; s < n; s++) free(rs[s].logits);
}

static void invariance_case(const char *arch, ryot_type type, int bs) {
    tiny_spec sp = tiny_spec_default(arch);
    sp.type = type;
    loaded l = load(&sp);
    const int nv = l.m->hp.n_vocab;
    engine *e = make(l.m, bs, 2);
    static const int lens[MAX_SEQ] = {37, 5, 70, 130};
    seq_run alone[MAX_SEQ], mixed[MAX_SEQ];
    init_runs(alone, lens, MAX_SEQ, nv, bs, 1);
    /* alone: each sequence by itself, its prompt in one chunk */
    for (int s = 0; s < MAX_SEQ; s++) {
        const int st = 0;
        run_batched(e, &alone[s], 1, &st, 64, 64);
    }
    /* together, three different schedules and block layouts */
    static const int starts[3][MAX_SEQ] = {{0, 0, 0, 0}, {0, 3, 1, 6}, {5, 0, 2, 0}};
    static const int chunks[3][2] = {{64, 64}, {16, 24}, {7, 13}};
    for (int v = 0; v < 3; v++) {
        init_runs(mixed, lens, MAX_SEQ, nv, bs, 77 + (uint64_t)v * 10);
        run_batched(e, mixed, MAX_SEQ, starts[v], chunks[v][0], chunks[v][1]);
        for (int s = 0; s < MAX_SEQ; s++) {
            if (memcmp(alone[s].logits, mixed[s].logits, (size_t)N_STEPS * nv * sizeof(float)) != 0)
                fail_msg("%s/%s bs %d schedule %d: sequence %d logits differ from its solo run", arch,
                         ryot_type_name(type), bs, v, s);
            assert_memory_equal(alone[s].toks, mixed[s].toks, (size_t)(lens[s] + N_STEPS - 1) * sizeof(int32_t));
        }
        free_runs(mixed, MAX_SEQ);
    }
    free_runs(alone, MAX_SEQ);
    engine_free(e);
    model_free(l.m);
    free(l.buf);
}

static void test_invariance_llama_q4_1(void **st) {
    (void)st;
    invariance_case("llama", RYOT_TYPE_Q4_1, 16);
}
static void test_invariance_llama_q8_0(void **st) {
    (void)st;
    invariance_case("llama", RYOT_TYPE_Q8_0, 64);
}
static void test_invariance_gemma3_q4_0(void **st) {
    (void)st;
    invariance_case("gemma3", RYOT_TYPE_Q4_0, 32);
}
static void test_invariance_qwen2_f16(void **st) {
    (void)st;
    invariance_case("qwen2", RYOT_TYPE_F16, 16);
}

/* engine_forward with one sequence and identity blocks == engine_decode. */
static void test_forward_matches_decode(void **st) {
    (void)st;
    tiny_spec sp = tiny_spec_default("llama");
    loaded l = load(&sp);
    const int nv = l.m->hp.n_vocab;
    engine_params p = engine_params_default(l.m);
    p.n_ctx = MAX_POS;
    p.n_threads = 2;
    engine *a, *b;
    ryot_error err = {0};
    assert_int_equal(engine_new(l.m, &p, &a, &err), RYOT_OK);
    assert_int_equal(engine_new(l.m, &p, &b, &err), RYOT_OK);
    int32_t t[40];
    for (int i = 0; i < 40; i++) t[i] = (i * 7 + 3) % nv;
    assert_int_equal(engine_decode(a, t, 40, 0, 1, &err), RYOT_OK);
    engine_seq sq = {.blocks = b->own_blocks, .n_blocks = b->n_kv_blocks, .pos = 0, .n = 40, .n_logits = 1};
    assert_int_equal(engine_forward(b, t, 40, &sq, 1, &err), RYOT_OK);
    assert_memory_equal(engine_logits(a, 0), engine_logits(b, 0), (size_t)nv * sizeof(float));
    engine_free(a);
    engine_free(b);
    model_free(l.m);
    free(l.buf);
}

/* B starts from A's first two full blocks (as the prefix index hands them
 * out) and prefills only its own tail: same logits as computing it all. */
static void test_prefix_blocks_shared(void **st) {
    (void)st;
    const int bs = 16;
    tiny_spec sp = tiny_spec_default("gemma3");
    loaded l = load(&sp);
    const int nv = l.m->hp.n_vocab;
    engine *e = make(l.m, bs, 2);
    int32_t pa[50], pb[45];
    for (int i = 0; i < 50; i++) pa[i] = (i * 13 + 5) % nv;
    memcpy(pb, pa, 32 * sizeof *pb); /* two full blocks in common */
    for (int i = 32; i < 45; i++) pb[i] = (i * 3 + 1) % nv;
    int32_t ba[4] = {9, 2, 7, 4}, bfull[3] = {11, 12, 13}, bshare[3] = {9, 2, 20};
    ryot_error err = {0};
    engine_seq s = {.blocks = ba, .n_blocks = 4, .pos = 0, .n = 50, .n_logits = 1};
    assert_int_equal(engine_forward(e, pa, 50, &s, 1, &err), RYOT_OK);
    s = (engine_seq){.blocks = bfull, .n_blocks = 3, .pos = 0, .n = 45, .n_logits = 1};
    assert_int_equal(engine_forward(e, pb, 45, &s, 1, &err), RYOT_OK);
    float *want = malloc((size_t)nv * sizeof(float));
    assert_non_null(want);
    memcpy(want, engine_logits(e, 0), (size_t)nv * sizeof(float));
    s = (engine_seq){.blocks = bshare, .n_blocks = 3, .pos = 32, .n = 13, .n_logits = 1};
    assert_int_equal(engine_forward(e, pb + 32, 13, &s, 1, &err), RYOT_OK);
    assert_memory_equal(want, engine_logits(e, 0), (size_t)nv * sizeof(float));
    free(want);
    engine_free(e);
    model_free(l.m);
    free(l.buf);
}

/* Speculative decoding's rollback: B shares A's prefix blocks, runs its
 * decode token and 12 wrong drafts (into two more blocks), keeps one draft
 * (kv_seq_truncate frees the block wholly past it), then goes on with the
 * right tokens, whose positions overwrite the rejected drafts' KV: its
 * logits equal those of a sequence that never saw the drafts, bit for bit,
 * and A's shared blocks are untouched (A's own next logits unchanged). */
static void test_truncate_then_decode(void **st) {
    (void)st;
    const int bs = 16;
    tiny_spec sp = tiny_spec_default("llama");
    loaded l = load(&sp);
    const int nv = l.m->hp.n_vocab;
    engine *e = make(l.m, bs, 2);
    kv_cache *kc;
    ryot_error err = {0};
    assert_int_equal(kv_cache_new(e->n_kv_blocks, bs, &kc, &err), RYOT_OK);
    kv_seq a, b;
    assert_int_equal(kv_seq_init(&a, MAX_POS, bs, &err), RYOT_OK);
    assert_int_equal(kv_seq_init(&b, MAX_POS, bs, &err), RYOT_OK);
    int32_t t[64], bad[16];
    for (int i = 0; i < 64; i++) t[i] = (i * 11 + 7) % nv;
    for (int i = 0; i < 16; i++) bad[i] = (i * 5 + 2) % nv;
    const size_t row = (size_t)nv * sizeof(float);
    float *want = malloc(8 * row), *a_next = malloc(row);
    assert_non_null(want);
    assert_non_null(a_next);

    /* the reference: t[0..48) in one go, logits of the last 8 */
    int32_t ref_blocks[3] = {40, 41, 42};
    engine_seq s = {.blocks = ref_blocks, .n_blocks = 3, .pos = 0, .n = 48, .n_logits = 4};
    assert_int_equal(engine_forward(e, t, 48, &s, 1, &err), RYOT_OK);
    memcpy(want + 4 * (size_t)nv, engine_logits(e, 0), 4 * row);
    s = (engine_seq){.blocks = ref_blocks, .n_blocks = 3, .pos = 0, .n = 44, .n_logits = 4};
    assert_int_equal(engine_forward(e, t, 44, &s, 1, &err), RYOT_OK);
    memcpy(want, engine_logits(e, 0), 4 * row);

    /* A: t[0..33), its first two blocks registered; its logits at 33 */
    assert_true(kv_seq_reserve(kc, &a, 33));
    s = (engine_seq){.blocks = a.blocks, .n_blocks = a.n_blocks, .pos = 0, .n = 33, .n_logits = 1};
    assert_int_equal(engine_forward(e, t, 33, &s, 1, &err), RYOT_OK);
    kv_seq_commit(kc, &a, t, 33);
    memcpy(a_next, engine_logits(e, 0), row);

    /* B: shares 32 positions, prefills t[32..40), then t[40] + 12 bad drafts */
    assert_int_equal(kv_seq_match_prefix(kc, &b, t, 39), 32);
    assert_true(kv_seq_reserve(kc, &b, 40));
    s = (engine_seq){.blocks = b.blocks, .n_blocks = b.n_blocks, .pos = 32, .n = 8, .n_logits = 1};
    assert_int_equal(engine_forward(e, t + 32, 8, &s, 1, &err), RYOT_OK);
    kv_seq_commit(kc, &b, t, 40);
    int32_t feed[13];
    feed[0] = t[40];
    feed[1] = t[41]; /* the one draft kept */
    memcpy(feed + 2, bad, 11 * sizeof *feed);
    assert_true(kv_seq_reserve(kc, &b, 53));
    assert_int_equal(b.n_blocks, 4);
    const int32_t dropped = b.blocks[3];
    s = (engine_seq){.blocks = b.blocks, .n_blocks = 4, .pos = 40, .n = 13, .n_logits = 4};
    assert_int_equal(engine_forward(e, feed, 13, &s, 1, &err), RYOT_OK);
    kv_seq_commit(kc, &b, t, 42);
    kv_seq_truncate(kc, &b, 42);
    assert_int_equal(b.n_blocks, 3);
    assert_int_equal(kv_cache_block_refcount(kc, dropped), 0);
    assert_int_equal(kv_cache_block_refcount(kc, b.blocks[0]), 2);
    assert_int_equal(kv_cache_block_refcount(kc, b.blocks[1]), 2);

    /* on with the right tokens, one at a time: positions 42..47 */
    for (int p = 42; p < 48; p++) {
        assert_true(kv_seq_reserve(kc, &b, p + 1));
        s = (engine_seq){.blocks = b.blocks, .n_blocks = b.n_blocks, .pos = p, .n = 1, .n_logits = 1};
        assert_int_equal(engine_forward(e, t + p, 1, &s, 1, &err), RYOT_OK);
        kv_seq_commit(kc, &b, t, p + 1);
        assert_memory_equal(engine_logits(e, 0), want + (size_t)(p - 40) * (size_t)nv, row);
    }
    /* A's view of the shared blocks did not change */
    s = (engine_seq){.blocks = a.blocks, .n_blocks = a.n_blocks, .pos = 32, .n = 1, .n_logits = 1};
    assert_int_equal(engine_forward(e, t + 32, 1, &s, 1, &err), RYOT_OK);
    assert_memory_equal(engine_logits(e, 0), a_next, row);

    kv_seq_release(kc, &a);
    kv_seq_release(kc, &b);
    assert_int_equal(kv_cache_validate(kc, &err), RYOT_OK);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_cache_free(kc);
    free(want);
    free(a_next);
    engine_free(e);
    model_free(l.m);
    free(l.buf);
}

static void test_forward_errors(void **st) {
    (void)st;
    tiny_spec sp = tiny_spec_default("llama");
    loaded l = load(&sp);
    engine *e = make(l.m, 16, 1);
    int32_t t[4] = {1, 2, 3, 4}, blk[2] = {0, 1}, bad[2] = {0, 1 << 20};
    ryot_error err = {0};
    engine_seq s = {.blocks = blk, .n_blocks = 2, .pos = 30, .n = 4, .n_logits = 1};
    assert_int_equal(engine_forward(e, t, 4, &s, 1, &err), RYOT_ERR_INVALID); /* past its blocks */
    s = (engine_seq){.blocks = bad, .n_blocks = 2, .pos = 14, .n = 4, .n_logits = 1};
    assert_int_equal(engine_forward(e, t, 4, &s, 1, &err), RYOT_ERR_INVALID); /* block id out of range */
    s = (engine_seq){.blocks = blk, .n_blocks = 2, .pos = 0, .n = 3, .n_logits = 1};
    assert_int_equal(engine_forward(e, t, 4, &s, 1, &err), RYOT_ERR_INVALID); /* counts disagree */
    s = (engine_seq){.blocks = blk, .n_blocks = 2, .pos = 0, .n = 4, .n_logits = 5};
    assert_int_equal(engine_forward(e, t, 4, &s, 1, &err), RYOT_ERR_INVALID);
    t[2] = 1 << 20;
    s.n_logits = 1;
    assert_int_equal(engine_forward(e, t, 4, &s, 1, &err), RYOT_ERR_INVALID); /* token outside the vocab */
    engine_free(e);
    model_free(l.m);
    free(l.buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_decode), cmocka_unit_test(test_invariance_llama_q4_1),
        cmocka_unit_test(test_invariance_llama_q8_0),  cmocka_unit_test(test_invariance_gemma3_q4_0),
        cmocka_unit_test(test_invariance_qwen2_f16),   cmocka_unit_test(test_prefix_blocks_shared),
        cmocka_unit_test(test_forward_errors),          cmocka_unit_test(test_truncate_then_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
