/* Paged KV cache bookkeeping: accounting, prefix sharing, hash chains, LRU
 * eviction, all-or-nothing reservation, duplicate commits, the preemption
 * path, and a randomized run against a model of the invariants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "engine/kv_cache.h"

static kv_cache *make_cache(int n_blocks, int bs) {
    kv_cache *c = NULL;
    ryot_error err = {0};
    ryot_status st = kv_cache_new(n_blocks, bs, &c, &err);
    if (st != RYOT_OK) fprintf(stderr, "kv_cache_new: %s\n", err.msg);
    assert_int_equal(st, RYOT_OK);
    assert_non_null(c);
    return c;
}

static void make_seq(kv_seq *s, int max_tokens, int bs) {
    ryot_error err = {0};
    assert_int_equal(kv_seq_init(s, max_tokens, bs, &err), RYOT_OK);
    assert_int_equal(s->n_blocks, 0);
    assert_int_equal(s->max_blocks, (max_tokens + bs - 1) / bs);
}

/* Internal invariants hold and the three states partition the blocks. */
static kv_cache_stats check(const kv_cache *c) {
    ryot_error err = {0};
    ryot_status st = kv_cache_validate(c, &err);
    if (st != RYOT_OK) fprintf(stderr, "kv_cache_validate: %s\n", err.msg);
    assert_int_equal(st, RYOT_OK);
    kv_cache_stats s;
    kv_cache_get_stats(c, &s);
    assert_int_equal(s.n_free + s.n_cached + s.n_used, s.n_blocks);
    assert_int_equal(kv_cache_available(c), s.n_free + s.n_cached);
    return s;
}

static void expect_stats(const kv_cache *c, int n_free, int n_cached, int n_used) {
    kv_cache_stats s = check(c);
    assert_int_equal(s.n_free, n_free);
    assert_int_equal(s.n_cached, n_cached);
    assert_int_equal(s.n_used, n_used);
}

/* tokens[i] = base + i */
static void ramp(int32_t *t, int n, int32_t base) {
    for (int i = 0; i < n; i++) t[i] = base + i;
}

/* Runs a whole prompt the way the engine would: match, reserve, commit. */
static int run_prompt(kv_cache *c, kv_seq *s, const int32_t *tok, int n) {
    int m = kv_seq_match_prefix(c, s, tok, n - 1);
    assert_true(kv_seq_reserve(c, s, n));
    kv_seq_commit(c, s, tok, n);
    return m;
}

/* ---------------------------------------------------------------- tests */

static void test_invalid_args(void **state) {
    (void)state;
    kv_cache *c = (kv_cache *)1;
    ryot_error err = {0};
    assert_int_equal(kv_cache_new(0, 16, &c, &err), RYOT_ERR_INVALID);
    assert_null(c);
    assert_non_null(strstr(err.msg, "n_blocks"));
    assert_int_equal(kv_cache_new(4, 0, &c, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "block_size"));
    assert_int_equal(kv_cache_new(1 << 20, 1 << 20, &c, &err), RYOT_ERR_INVALID);
    kv_seq s;
    assert_int_equal(kv_seq_init(&s, 0, 16, &err), RYOT_ERR_INVALID);
    assert_null(s.blocks);
    assert_int_equal(kv_seq_init(&s, 16, -1, &err), RYOT_ERR_INVALID);
    /* a table for the largest int: positions past it are refused, not wrapped */
    assert_int_equal(kv_seq_init(&s, INT32_MAX, 16, &err), RYOT_OK);
    assert_int_equal(s.max_blocks, (int)(((int64_t)INT32_MAX + 15) / 16));
    kv_cache *small = make_cache(2, 16);
    assert_false(kv_seq_reserve(small, &s, INT32_MAX)); /* not enough blocks */
    assert_true(kv_seq_reserve(small, &s, 32));
    kv_seq_release(small, &s);
    kv_seq_destroy(&s);
    kv_cache_free(small);
    kv_cache_free(NULL);
}

static void test_reserve_release_accounting(void **state) {
    (void)state;
    kv_cache *c = make_cache(8, 4);
    assert_int_equal(kv_cache_block_size(c), 4);
    expect_stats(c, 8, 0, 0);
    kv_seq a, b;
    make_seq(&a, 20, 4); /* 5 blocks at most */
    make_seq(&b, 16, 4);

    assert_true(kv_seq_reserve(c, &a, 0));
    assert_int_equal(a.n_blocks, 0);
    assert_true(kv_seq_reserve(c, &a, 10));
    assert_int_equal(a.n_blocks, 3);
    expect_stats(c, 5, 0, 3);
    assert_true(kv_seq_reserve(c, &a, 12)); /* still three blocks */
    assert_int_equal(a.n_blocks, 3);
    assert_true(kv_seq_reserve(c, &a, 5)); /* never shrinks */
    assert_int_equal(a.n_blocks, 3);
    assert_true(kv_seq_reserve(c, &a, 13));
    assert_int_equal(a.n_blocks, 4);
    expect_stats(c, 4, 0, 4);
    assert_false(kv_seq_reserve(c, &a, 21)); /* past the table */
    assert_false(kv_seq_reserve(c, &a, -1));
    assert_int_equal(a.n_blocks, 4);
    expect_stats(c, 4, 0, 4);

    assert_true(kv_seq_reserve(c, &b, 16));
    expect_stats(c, 0, 0, 8);
    /* every block is held once, by one of the two tables */
    int seen[8] = {0};
    for (int i = 0; i < a.n_blocks; i++) seen[a.blocks[i]]++;
    for (int i = 0; i < b.n_blocks; i++) seen[b.blocks[i]]++;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(seen[i], 1);
        assert_int_equal(kv_cache_block_refcount(c, i), 1);
        assert_false(kv_cache_block_registered(c, i));
    }

    kv_seq_release(c, &a); /* nothing committed: straight back to free */
    assert_int_equal(a.n_blocks, 0);
    assert_int_equal(a.n_committed, 0);
    expect_stats(c, 4, 0, 4);
    kv_seq_release(c, &b);
    expect_stats(c, 8, 0, 0);
    kv_seq_release(c, &b); /* empty table: no-op */
    expect_stats(c, 8, 0, 0);

    kv_cache_stats st;
    kv_cache_get_stats(c, &st);
    assert_int_equal(st.n_blocks, 8);
    assert_int_equal(st.block_size, 4);
    assert_int_equal((int)st.evictions, 0);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    assert_null(a.blocks);
    kv_cache_free(c);
}

static void test_commit_registers_full_blocks(void **state) {
    (void)state;
    kv_cache *c = make_cache(8, 4);
    kv_seq a;
    make_seq(&a, 32, 4);
    int32_t tok[32];
    ramp(tok, 32, 100);

    assert_true(kv_seq_reserve(c, &a, 6));
    kv_seq_commit(c, &a, tok, 3); /* no full block yet */
    assert_int_equal(a.n_committed, 0);
    assert_int_equal((int)a.last_key, 0);
    kv_seq_commit(c, &a, tok, 6);
    assert_int_equal(a.n_committed, 1);
    assert_true(kv_cache_block_registered(c, a.blocks[0]));
    assert_false(kv_cache_block_registered(c, a.blocks[1]));
    uint64_t k0 = a.last_key;
    assert_true(k0 != 0);
    kv_seq_commit(c, &a, tok, 6); /* idempotent */
    assert_int_equal(a.n_committed, 1);
    assert_true(a.last_key == k0);

    assert_true(kv_seq_reserve(c, &a, 13));
    kv_seq_commit(c, &a, tok, 13); /* two more full blocks, chained */
    assert_int_equal(a.n_committed, 3);
    assert_true(a.last_key != k0 && a.last_key != 0);
    for (int i = 0; i < 3; i++) assert_true(kv_cache_block_registered(c, a.blocks[i]));
    assert_false(kv_cache_block_registered(c, a.blocks[3]));
    /* serials (the store's "already written" check): distinct, 0 when unregistered */
    assert_true(kv_cache_block_serial(c, a.blocks[0]) != 0);
    assert_true(kv_cache_block_serial(c, a.blocks[1]) != kv_cache_block_serial(c, a.blocks[0]));
    assert_true(kv_cache_block_serial(c, a.blocks[2]) != kv_cache_block_serial(c, a.blocks[1]));
    assert_true(kv_cache_block_serial(c, a.blocks[3]) == 0);
    expect_stats(c, 4, 0, 4);

    kv_seq_release(c, &a); /* 3 registered -> cached, the partial one -> free */
    expect_stats(c, 5, 3, 0);
    kv_seq_destroy(&a);
    kv_cache_free(c);
}

static void test_prefix_sharing(void **state) {
    (void)state;
    kv_cache *c = make_cache(16, 4);
    kv_seq a, b, d, e;
    make_seq(&a, 32, 4);
    make_seq(&b, 32, 4);
    make_seq(&d, 32, 4);
    make_seq(&e, 32, 4);
    int32_t pa[12], pb[12];
    ramp(pa, 12, 1);
    memcpy(pb, pa, sizeof pb);
    pb[9] = 999; /* same first 2 blocks, different third */

    assert_int_equal(run_prompt(c, &a, pa, 12), 0); /* nothing cached yet */
    assert_int_equal(a.n_committed, 3);
    int32_t ablk[3];
    memcpy(ablk, a.blocks, sizeof ablk);
    kv_seq_release(c, &a);
    expect_stats(c, 13, 3, 0);

    /* B: the first two blocks come from A */
    assert_int_equal(kv_seq_match_prefix(c, &b, pb, 11), 8);
    assert_int_equal(b.n_blocks, 2);
    assert_int_equal(b.n_shared, 2);
    assert_int_equal(b.n_committed, 2);
    assert_int_equal(b.blocks[0], ablk[0]);
    assert_int_equal(b.blocks[1], ablk[1]);
    assert_int_equal(kv_cache_block_refcount(c, ablk[0]), 1);
    expect_stats(c, 13, 1, 2);
    assert_true(kv_seq_reserve(c, &b, 12));
    kv_seq_commit(c, &b, pb, 12);
    assert_int_equal(b.n_committed, 3);
    assert_true(b.blocks[2] != ablk[2]);
    assert_true(kv_cache_block_registered(c, b.blocks[2]));

    /* the n_max bound: A's own 12-token prompt may reuse 11 positions at most,
     * i.e. 2 whole blocks; the full 12 only when the caller allows it */
    assert_int_equal(kv_seq_match_prefix(c, &d, pa, 11), 8);
    kv_seq_release(c, &d);
    assert_int_equal(kv_seq_match_prefix(c, &d, pa, 12), 12);
    assert_int_equal(d.blocks[2], ablk[2]);
    kv_seq_release(c, &d);
    assert_int_equal(kv_seq_match_prefix(c, &d, pa, 7), 4); /* an 8-token prompt */
    kv_seq_release(c, &d);
    assert_int_equal(kv_seq_match_prefix(c, &d, pa, 3), 0);
    assert_int_equal(d.n_blocks, 0);
    assert_int_equal(kv_seq_match_prefix(c, &d, NULL, 0), 0);

    /* two running sequences on the same prefix: refcount 2 */
    assert_int_equal(kv_seq_match_prefix(c, &d, pa, 11), 8);
    assert_int_equal(d.blocks[0], ablk[0]);
    assert_int_equal(kv_cache_block_refcount(c, ablk[0]), 2);
    assert_int_equal(kv_cache_block_refcount(c, ablk[1]), 2);
    kv_cache_stats st = check(c);
    assert_int_equal(st.n_used, 3); /* two shared + B's third */
    kv_seq_release(c, &b);
    assert_int_equal(kv_cache_block_refcount(c, ablk[0]), 1);
    assert_int_equal(kv_cache_block_refcount(c, ablk[1]), 1);
    expect_stats(c, 12, 2, 2); /* A's third and B's third cached; the prefix still in use */

    /* a third on it while D still runs */
    assert_int_equal(kv_seq_match_prefix(c, &e, pb, 12), 12);
    assert_int_equal(kv_cache_block_refcount(c, ablk[0]), 2);
    kv_seq_release(c, &d);
    kv_seq_release(c, &e);
    expect_stats(c, 12, 4, 0);

    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_seq_destroy(&d);
    kv_seq_destroy(&e);
    kv_cache_free(c);
}

/* kv_seq_truncate (speculative decoding's rollback): blocks past the kept
 * positions go back to the free list, the shared prefix keeps its
 * refcounts, and the sequence grows and registers blocks normally after. */
static void test_truncate(void **state) {
    (void)state;
    kv_cache *c = make_cache(16, 4);
    kv_seq a, b;
    make_seq(&a, 32, 4);
    make_seq(&b, 32, 4);
    int32_t t[24];
    ramp(t, 24, 1);
    run_prompt(c, &a, t, 9); /* two full blocks registered, a third in use */
    assert_int_equal(a.n_committed, 2);
    assert_int_equal(kv_seq_match_prefix(c, &b, t, 8), 8); /* B shares them */
    const int32_t b0 = b.blocks[0], b1 = b.blocks[1];
    assert_int_equal(kv_cache_block_refcount(c, b0), 2);
    expect_stats(c, 13, 0, 3);

    /* B decodes position 8 and drafts 7 more: 16 positions, 4 blocks */
    assert_true(kv_seq_reserve(c, &b, 16));
    assert_int_equal(b.n_blocks, 4);
    const int32_t b2 = b.blocks[2], b3 = b.blocks[3];
    expect_stats(c, 11, 0, 5);
    /* one draft accepted: KV valid for 10 positions */
    kv_seq_commit(c, &b, t, 10);
    kv_seq_truncate(c, &b, 10);
    assert_int_equal(b.n_blocks, 3);
    assert_int_equal(b.blocks[2], b2);
    assert_int_equal(kv_cache_block_refcount(c, b3), 0);
    assert_false(kv_cache_block_registered(c, b3));
    assert_int_equal(kv_cache_block_refcount(c, b0), 2);
    assert_int_equal(kv_cache_block_refcount(c, b1), 2);
    assert_int_equal(kv_cache_block_refcount(c, b2), 1);
    expect_stats(c, 12, 0, 4);
    /* a truncation to a block boundary keeps no empty block; to where it is, nothing */
    kv_seq_truncate(c, &b, 12);
    assert_int_equal(b.n_blocks, 3);
    assert_true(kv_seq_reserve(c, &b, 13));
    kv_seq_truncate(c, &b, 12);
    assert_int_equal(b.n_blocks, 3);
    expect_stats(c, 12, 0, 4);

    /* growing again: new blocks, the third registers once full */
    assert_true(kv_seq_reserve(c, &b, 20));
    kv_seq_commit(c, &b, t, 20);
    assert_int_equal(b.n_committed, 5);
    assert_true(kv_cache_block_registered(c, b2));
    assert_int_equal(b.blocks[0], b0);
    expect_stats(c, 10, 0, 6);

    kv_seq_release(c, &b);
    assert_int_equal(kv_cache_block_refcount(c, b0), 1);
    kv_seq_release(c, &a);
    check(c);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_cache_free(c);
}

static void test_match_bounded_by_table(void **state) {
    (void)state;
    kv_cache *c = make_cache(8, 4);
    kv_seq a, b;
    make_seq(&a, 16, 4);
    make_seq(&b, 8, 4); /* room for 2 blocks */
    int32_t t[16];
    ramp(t, 16, 7);
    run_prompt(c, &a, t, 16);
    kv_seq_release(c, &a);
    assert_int_equal(kv_seq_match_prefix(c, &b, t, 15), 8);
    assert_int_equal(b.n_blocks, 2);
    kv_seq_release(c, &b);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_cache_free(c);
}

static void test_hash_chain(void **state) {
    (void)state;
    kv_cache *c = make_cache(16, 4);
    kv_seq a, b, q;
    make_seq(&a, 16, 4);
    make_seq(&b, 16, 4);
    make_seq(&q, 16, 4);
    int32_t pa[8], pb[8], solo[8];
    ramp(pa, 8, 10);      /* P1 X */
    memcpy(pb, pa, sizeof pb);
    pb[0] = 77;           /* P2 X: same second block, different parent */
    memcpy(solo, pa + 4, 4 * sizeof *solo); /* X alone, as a first block */
    memcpy(solo + 4, pa, 4 * sizeof *solo);

    run_prompt(c, &a, pa, 8);
    kv_seq_release(c, &a);

    assert_int_equal(kv_seq_match_prefix(c, &q, pb, 8), 0);
    assert_int_equal(kv_seq_match_prefix(c, &q, solo, 8), 0);
    assert_int_equal(q.n_blocks, 0);
    expect_stats(c, 14, 2, 0);

    /* P2 X gets its own chain; the two coexist */
    assert_int_equal(run_prompt(c, &b, pb, 8), 0);
    assert_int_equal(b.n_committed, 2);
    assert_true(kv_cache_block_registered(c, b.blocks[1]));
    int32_t bx = b.blocks[1];
    kv_seq_release(c, &b);
    assert_int_equal(kv_seq_match_prefix(c, &q, pb, 8), 8);
    assert_int_equal(q.blocks[1], bx);
    kv_seq_release(c, &q);
    assert_int_equal(kv_seq_match_prefix(c, &q, pa, 8), 8);
    assert_true(q.blocks[1] != bx);
    kv_seq_release(c, &q);
    expect_stats(c, 12, 4, 0);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_seq_destroy(&q);
    kv_cache_free(c);
}

/* With 1-bit keys every key collides (all are 1): registration must stop
 * rather than make a key ambiguous, and matching must compare content. */
static void test_key_collisions_never_share(void **state) {
    (void)state;
    kv_cache *c = make_cache(8, 2);
    kv_cache_set_key_bits(c, 1);
    kv_seq a, b;
    make_seq(&a, 8, 2);
    make_seq(&b, 8, 2);
    int32_t ta[6] = {1, 2, 3, 4, 5, 6}, tb[6] = {9, 9, 3, 4, 5, 6};

    run_prompt(c, &a, ta, 6);
    assert_int_equal(a.n_committed, 1); /* block 1's key is taken by block 0 */
    assert_true(kv_cache_block_registered(c, a.blocks[0]));
    assert_false(kv_cache_block_registered(c, a.blocks[1]));
    kv_seq_commit(c, &a, ta, 6); /* retried, still stops */
    assert_int_equal(a.n_committed, 1);
    kv_seq_release(c, &a);
    expect_stats(c, 7, 1, 0);

    assert_int_equal(kv_seq_match_prefix(c, &b, tb, 5), 0); /* same key, other tokens */
    assert_int_equal(kv_seq_match_prefix(c, &b, ta, 5), 2);
    kv_seq_release(c, &b);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_cache_free(c);
}

static void test_lru_eviction_order(void **state) {
    (void)state;
    kv_cache *c = make_cache(6, 2);
    kv_seq a, b, x;
    make_seq(&a, 4, 2);
    make_seq(&b, 4, 2);
    make_seq(&x, 12, 2);
    int32_t ta[4] = {1, 2, 3, 4}, tb[4] = {5, 6, 7, 8};

    run_prompt(c, &a, ta, 4);
    int32_t ablk[2] = {a.blocks[0], a.blocks[1]};
    run_prompt(c, &b, tb, 4);
    kv_seq_release(c, &a);
    kv_seq_release(c, &b);
    expect_stats(c, 2, 4, 0);

    /* two free blocks, then A's: its tail first */
    assert_true(kv_seq_reserve(c, &x, 4));
    expect_stats(c, 0, 4, 2);
    assert_true(kv_seq_reserve(c, &x, 6));
    assert_int_equal(x.blocks[2], ablk[1]);
    kv_cache_stats st = check(c);
    assert_int_equal((int)st.evictions, 1);
    assert_false(kv_cache_block_registered(c, ablk[1]));
    assert_int_equal(kv_seq_match_prefix(c, &a, ta, 4), 2); /* A's head survives */
    kv_seq_release(c, &a); /* ... and is now the most recently released */

    /* B is now the least recently released */
    assert_true(kv_seq_reserve(c, &x, 8));
    assert_true(kv_seq_reserve(c, &x, 10));
    st = check(c);
    assert_int_equal((int)st.evictions, 3);
    assert_int_equal(kv_seq_match_prefix(c, &b, tb, 4), 0);
    assert_int_equal(kv_seq_match_prefix(c, &a, ta, 4), 2);
    kv_seq_release(c, &a);
    assert_true(kv_seq_reserve(c, &x, 12));
    assert_int_equal(x.blocks[5], ablk[0]);
    assert_int_equal(kv_seq_match_prefix(c, &a, ta, 4), 0);
    expect_stats(c, 0, 0, 6);
    assert_false(kv_seq_reserve(c, &a, 2));
    kv_seq_release(c, &x);
    expect_stats(c, 6, 0, 0);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_seq_destroy(&x);
    kv_cache_free(c);
}

/* The brief's scenario: release A then B, exhaust the free list: A goes
 * first, and A's prefix stops matching while B's still does. */
static void test_lru_release_order(void **state) {
    (void)state;
    kv_cache *c = make_cache(8, 2);
    kv_seq a, b, x;
    make_seq(&a, 4, 2);
    make_seq(&b, 4, 2);
    make_seq(&x, 16, 2);
    int32_t ta[4] = {1, 2, 3, 4}, tb[4] = {5, 6, 7, 8};
    run_prompt(c, &a, ta, 4);
    run_prompt(c, &b, tb, 4);
    kv_seq_release(c, &a);
    kv_seq_release(c, &b);
    assert_true(kv_seq_reserve(c, &x, 8)); /* the 4 free */
    assert_int_equal(kv_seq_match_prefix(c, &a, ta, 4), 4);
    kv_seq_release(c, &a); /* matching then releasing A makes B the older */
    assert_true(kv_seq_reserve(c, &x, 12));
    assert_int_equal(kv_seq_match_prefix(c, &b, tb, 4), 0);
    assert_int_equal(kv_seq_match_prefix(c, &a, ta, 4), 4);
    kv_seq_release(c, &a);
    kv_seq_release(c, &x);

    /* once more without touching A: A's blocks go first */
    kv_seq a2, b2;
    make_seq(&a2, 4, 2);
    make_seq(&b2, 4, 2);
    int32_t ua[4] = {11, 12, 13, 14}, ub[4] = {15, 16, 17, 18};
    kv_cache *c2 = make_cache(6, 2);
    run_prompt(c2, &a2, ua, 4);
    run_prompt(c2, &b2, ub, 4);
    kv_seq_release(c2, &a2);
    kv_seq_release(c2, &b2);
    kv_seq_destroy(&x);
    make_seq(&x, 8, 2);
    assert_true(kv_seq_reserve(c2, &x, 8)); /* 2 free + 2 evicted */
    assert_int_equal(kv_seq_match_prefix(c2, &a2, ua, 4), 0);
    assert_int_equal(kv_seq_match_prefix(c2, &b2, ub, 4), 4);
    kv_seq_release(c2, &b2);
    kv_seq_release(c2, &x);
    expect_stats(c2, 4, 2, 0);
    kv_cache_free(c2);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_seq_destroy(&x);
    kv_seq_destroy(&a2);
    kv_seq_destroy(&b2);
    kv_cache_free(c);
}

static void test_reserve_all_or_nothing(void **state) {
    (void)state;
    kv_cache *c = make_cache(4, 4);
    kv_seq s1, s2;
    make_seq(&s1, 16, 4);
    make_seq(&s2, 16, 4);
    int32_t t[16];
    ramp(t, 16, 3);

    assert_true(kv_seq_reserve(c, &s1, 4));
    kv_seq_commit(c, &s1, t, 4);
    assert_true(kv_seq_reserve(c, &s1, 8));
    kv_seq_release(c, &s1); /* 1 cached, 3 free */
    assert_true(kv_seq_reserve(c, &s1, 4));
    expect_stats(c, 2, 1, 1);
    assert_int_equal(kv_cache_available(c), 3);

    assert_false(kv_seq_reserve(c, &s2, 13)); /* 4 blocks wanted, 3 to be had */
    assert_int_equal(s2.n_blocks, 0);
    expect_stats(c, 2, 1, 1);
    kv_cache_stats st = check(c);
    assert_int_equal((int)st.evictions, 0); /* nothing evicted by the failed attempt */

    assert_true(kv_seq_reserve(c, &s2, 5));
    assert_false(kv_seq_reserve(c, &s2, 16)); /* holds 2, wants 2 more, 1 left */
    assert_int_equal(s2.n_blocks, 2);
    expect_stats(c, 0, 1, 3);
    assert_true(kv_seq_reserve(c, &s2, 12)); /* the cached one, evicted */
    expect_stats(c, 0, 0, 4);
    st = check(c);
    assert_int_equal((int)st.evictions, 1);
    assert_false(kv_seq_reserve(c, &s1, 5));
    assert_int_equal(s1.n_blocks, 1);
    kv_seq_release(c, &s1);
    kv_seq_release(c, &s2);
    expect_stats(c, 4, 0, 0);
    kv_seq_destroy(&s1);
    kv_seq_destroy(&s2);
    kv_cache_free(c);
}

static void test_duplicate_commit(void **state) {
    (void)state;
    kv_cache *c = make_cache(10, 4);
    kv_seq a, b, d;
    make_seq(&a, 16, 4);
    make_seq(&b, 16, 4);
    make_seq(&d, 16, 4);
    int32_t t[12];
    ramp(t, 12, 40);

    /* both start before either has committed: no sharing */
    assert_int_equal(kv_seq_match_prefix(c, &a, t, 7), 0);
    assert_int_equal(kv_seq_match_prefix(c, &b, t, 7), 0);
    assert_true(kv_seq_reserve(c, &a, 8));
    assert_true(kv_seq_reserve(c, &b, 8));
    kv_seq_commit(c, &a, t, 8);
    kv_seq_commit(c, &b, t, 8);
    assert_int_equal(a.n_committed, 2);
    assert_int_equal(b.n_committed, 2);
    assert_true(a.last_key == b.last_key);
    for (int i = 0; i < 2; i++) {
        assert_true(kv_cache_block_registered(c, a.blocks[i]));
        assert_false(kv_cache_block_registered(c, b.blocks[i]));
    }
    /* B's chain continues under A's keys */
    assert_true(kv_seq_reserve(c, &b, 12));
    kv_seq_commit(c, &b, t, 12);
    assert_int_equal(b.n_committed, 3);
    assert_true(kv_cache_block_registered(c, b.blocks[2]));
    int32_t b2 = b.blocks[2];
    expect_stats(c, 5, 0, 5);

    kv_seq_release(c, &a);
    expect_stats(c, 5, 2, 3);
    kv_seq_release(c, &b); /* its first two were private copies: freed */
    expect_stats(c, 7, 3, 0);

    assert_int_equal(kv_seq_match_prefix(c, &d, t, 12), 12);
    assert_int_equal(d.blocks[2], b2);
    kv_seq_release(c, &d);
    kv_seq_destroy(&a);
    kv_seq_destroy(&b);
    kv_seq_destroy(&d);
    kv_cache_free(c);
}

static void test_preemption(void **state) {
    (void)state;
    kv_cache *c = make_cache(7, 4);
    kv_seq v, r;
    make_seq(&v, 16, 4);
    make_seq(&r, 16, 4);
    int32_t tv[14], tr[16];
    ramp(tv, 14, 500);
    ramp(tr, 16, 900);

    /* the victim: a 12-token prompt and one generated token */
    run_prompt(c, &v, tv, 12);
    assert_true(kv_seq_reserve(c, &v, 13));
    kv_seq_commit(c, &v, tv, 13);
    assert_int_equal(v.n_blocks, 4);
    assert_int_equal(v.n_committed, 3);
    int32_t vblk[3];
    memcpy(vblk, v.blocks, sizeof vblk);

    assert_true(kv_seq_reserve(c, &r, 8));
    kv_seq_commit(c, &r, tr, 8);
    expect_stats(c, 1, 0, 6);
    assert_false(kv_seq_reserve(c, &r, 16)); /* decode step runs out */
    assert_int_equal(r.n_blocks, 2);

    kv_seq_release(c, &v); /* preempt */
    expect_stats(c, 2, 3, 2);
    assert_true(kv_seq_reserve(c, &r, 16));
    expect_stats(c, 0, 3, 4);
    kv_cache_stats st = check(c);
    assert_int_equal((int)st.evictions, 0);

    /* recompute: prompt + the generated token, last one computed again */
    assert_int_equal(kv_seq_match_prefix(c, &v, tv, 13 - 1), 12);
    assert_memory_equal(v.blocks, vblk, sizeof vblk);
    expect_stats(c, 0, 0, 7);
    assert_false(kv_seq_reserve(c, &v, 13));
    kv_seq_release(c, &r);
    assert_true(kv_seq_reserve(c, &v, 13));
    kv_seq_commit(c, &v, tv, 13);
    assert_int_equal(v.n_committed, 3);
    kv_seq_release(c, &v);
    expect_stats(c, 2, 5, 0); /* V's 3 and R's 2 registered blocks */
    kv_seq_destroy(&v);
    kv_seq_destroy(&r);
    kv_cache_free(c);
}

/* ---------------------------------------------------------------- stress
 * Random sequences over a few shared prompt templates, driven through
 * match / reserve+commit / release, checked after every step against a
 * model kept by the test from what it computed:
 *   - refcounts: how many live tables hold each block;
 *   - content: the whole prefix each block's KV was computed from (every
 *     full block a sequence holds must be its own prefix: no wrong sharing);
 *   - registrations: a serial per registration seen, and the serial of the
 *     block it was chained after; from these, the longest possible match and
 *     how far each commit gets (exact with 64-bit keys; an upper bound with
 *     forced key collisions). */

#define ST_BLOCKS 40
#define ST_BS 4
#define ST_SEQS 7
#define ST_MAX 48
#define ST_TEMPLATES 4

typedef struct st_seq {
    kv_seq s;
    bool active;
    int32_t tok[ST_MAX];
    int len;              /* positions reserved and computed */
    int n_prompt;         /* tok[0..n_prompt) decided at start */
    uint64_t last_serial; /* model serial of the registration its chain ends on */
} st_seq;

typedef struct st_model {
    int32_t content[ST_BLOCKS][ST_MAX]; /* the prefix a block's KV was computed from */
    int content_len[ST_BLOCKS];
    uint64_t serial[ST_BLOCKS];         /* 0: not registered */
    uint64_t parent_serial[ST_BLOCKS];
    uint64_t next_serial;
    /* how often each commit path was predicted / seen, to check coverage */
    int n_dup, n_dead_parent, n_orphan_dropped, n_collision_stops;
} st_model;

/* The registered block holding exactly tok[0..len), or -1. */
static int st_find(const kv_cache *c, const st_model *m, const int32_t *tok, int len) {
    int hit = -1;
    for (int id = 0; id < ST_BLOCKS; id++)
        if (kv_cache_block_registered(c, id) && m->content_len[id] == len &&
            memcmp(m->content[id], tok, (size_t)len * sizeof *tok) == 0) {
            assert_int_equal(hit, -1); /* never two registered copies of one prefix */
            hit = id;
        }
    return hit;
}

/* Whether registration `serial` is still there (gone: blocks dropped since the last sync). */
static bool st_alive(const kv_cache *c, const st_model *m, uint64_t serial, const bool *gone) {
    for (int id = 0; id < ST_BLOCKS; id++)
        if (kv_cache_block_registered(c, id) && m->serial[id] == serial) return !gone[id];
    return false;
}

/* Follows the cache's registrations: forgets unregistered blocks, and gives
 * new ones a serial chained to the registered block holding their prefix
 * minus one block (which must exist: registration needs its parent). */
static void st_sync(const kv_cache *c, st_model *m) {
    for (int id = 0; id < ST_BLOCKS; id++)
        if (!kv_cache_block_registered(c, id)) m->serial[id] = m->parent_serial[id] = 0;
    for (int len = ST_BS; len <= ST_MAX; len += ST_BS)
        for (int id = 0; id < ST_BLOCKS; id++) {
            if (!kv_cache_block_registered(c, id) || m->serial[id] || m->content_len[id] != len) continue;
            uint64_t ps = 0;
            if (len > ST_BS) {
                int p = st_find(c, m, m->content[id], len - ST_BS);
                assert_true(p >= 0 && m->serial[p] != 0);
                ps = m->serial[p];
            }
            m->serial[id] = m->next_serial++;
            m->parent_serial[id] = ps;
        }
}

static int expected_match(const kv_cache *c, const st_model *m, const int32_t *tok, int n_max, int max_blocks,
                          uint64_t *last_serial) {
    int n = 0;
    uint64_t ps = 0;
    while ((n + 1) * ST_BS <= n_max && n < max_blocks) {
        int id = st_find(c, m, tok, (n + 1) * ST_BS);
        if (id < 0 || m->parent_serial[id] != ps) break;
        ps = m->serial[id];
        n++;
    }
    *last_serial = ps;
    return n;
}

/* How far kv_seq_commit should get, from the model (no key collisions). */
#define ST_FRESH (~0ull) /* a registration made by this commit: alive, no children yet */
static int expected_commit(const kv_cache *c, st_model *m, const st_seq *x, int to) {
    int n = x->s.n_committed;
    uint64_t ps = x->last_serial;
    bool gone[ST_BLOCKS] = {0};
    for (; n < to / ST_BS; n++) {
        if (n > 0 && ps != ST_FRESH && !st_alive(c, m, ps, gone)) {
            m->n_dead_parent++;
            break;
        }
        int o = st_find(c, m, x->tok, (n + 1) * ST_BS);
        if (o < 0) { /* registers its own */
            ps = ST_FRESH;
            continue;
        }
        if (m->parent_serial[o] == ps) { /* duplicate */
            m->n_dup++;
            ps = m->serial[o];
            continue;
        }
        bool orphan = m->parent_serial[o] != 0 && !st_alive(c, m, m->parent_serial[o], gone);
        if (kv_cache_block_refcount(c, o) == 0 && orphan) { /* dropped, its place taken */
            gone[o] = true;
            m->n_orphan_dropped++;
            ps = ST_FRESH;
            continue;
        }
        break;
    }
    return n;
}

static void st_check(const kv_cache *c, const st_seq *q, const st_model *m) {
    kv_cache_stats st = check(c);
    int ref[ST_BLOCKS] = {0};
    for (int k = 0; k < ST_SEQS; k++) {
        const st_seq *x = &q[k];
        if (!x->active) {
            assert_int_equal(x->s.n_blocks, 0);
            continue;
        }
        assert_int_equal(x->s.n_blocks, (x->len + ST_BS - 1) / ST_BS);
        assert_true(x->s.n_shared <= x->s.n_committed && x->s.n_committed <= x->len / ST_BS);
        for (int i = 0; i < x->s.n_blocks; i++) {
            int32_t id = x->s.blocks[i];
            assert_true(id >= 0 && id < ST_BLOCKS);
            ref[id]++;
            /* its own blocks: private until registered (then others may share them) */
            if (i >= x->s.n_shared && !kv_cache_block_registered(c, id))
                assert_int_equal(kv_cache_block_refcount(c, id), 1);
            if (i >= x->s.n_committed) assert_false(kv_cache_block_registered(c, id));
            /* a full, computed block holds exactly this sequence's prefix */
            if ((i + 1) * ST_BS <= x->len) {
                assert_int_equal(m->content_len[id], (i + 1) * ST_BS);
                assert_memory_equal(m->content[id], x->tok, (size_t)(i + 1) * ST_BS * sizeof(int32_t));
            }
        }
    }
    int used = 0;
    for (int id = 0; id < ST_BLOCKS; id++) {
        assert_int_equal(kv_cache_block_refcount(c, id), ref[id]);
        used += ref[id] > 0;
        if (kv_cache_block_registered(c, id)) assert_true(m->serial[id] != 0 && m->content_len[id] % ST_BS == 0);
    }
    assert_int_equal(st.n_used, used);
}

/* Computes positions [len, to) of x (reserved already): writes its private
 * blocks in the model, then commits and checks how far the commit got. */
static void st_compute(kv_cache *c, st_seq *x, st_model *m, int to, bool exact) {
    st_sync(c, m); /* the reserve may have evicted */
    for (int i = x->s.n_shared; i < x->s.n_blocks; i++) {
        int32_t id = x->s.blocks[i];
        int end = (i + 1) * ST_BS < to ? (i + 1) * ST_BS : to;
        if (end <= x->len) continue; /* nothing new in this block */
        assert_false(kv_cache_block_registered(c, id)); /* a registered block is never written */
        memcpy(m->content[id], x->tok, (size_t)end * sizeof(int32_t));
        m->content_len[id] = end;
    }
    int want = expected_commit(c, m, x, to), before = x->s.n_committed;
    x->len = to;
    kv_seq_commit(c, &x->s, x->tok, to);
    st_sync(c, m);
    if (exact) assert_int_equal(x->s.n_committed, want);
    else assert_true(x->s.n_committed <= want);
    m->n_collision_stops += x->s.n_committed < want;
    if (x->s.n_committed > before) {
        /* the chain now ends on the registration holding its last committed
         * prefix (its own block, or a twin registered by another sequence) */
        int o = st_find(c, m, x->tok, x->s.n_committed * ST_BS);
        assert_true(o >= 0);
        x->last_serial = m->serial[o];
    }
}

static void run_stress(int key_bits, uint64_t seed, int n_ops) {
    kv_cache *c = make_cache(ST_BLOCKS, ST_BS);
    if (key_bits < 64) kv_cache_set_key_bits(c, key_bits);
    bool exact = key_bits == 64;
    static st_seq q[ST_SEQS];
    static st_model m;
    memset(q, 0, sizeof q);
    memset(&m, 0, sizeof m);
    m.next_serial = 1;
    for (int k = 0; k < ST_SEQS; k++) make_seq(&q[k].s, ST_MAX, ST_BS);
    ryot_rng rng;
    ryot_rng_seed(&rng, seed);
    int32_t tmpl[ST_TEMPLATES][ST_MAX];
    for (int t = 0; t < ST_TEMPLATES; t++)
        for (int i = 0; i < ST_MAX; i++) tmpl[t][i] = (int32_t)(ryot_rng_next(&rng) % 3);

    int n_matched = 0, n_res_fail = 0, n_shared_run = 0;
    for (int op = 0; op < n_ops; op++) {
        st_seq *x = &q[ryot_rng_next(&rng) % ST_SEQS];
        uint64_t r = ryot_rng_next(&rng) % 10;
        if (!x->active) {
            /* start: a template up to a random divergence point, then noise */
            int t = (int)(ryot_rng_next(&rng) % ST_TEMPLATES);
            int n = 1 + (int)(ryot_rng_next(&rng) % (ST_MAX - 8));
            int div = (int)(ryot_rng_next(&rng) % (ST_MAX + 1));
            for (int i = 0; i < ST_MAX; i++) x->tok[i] = i < div ? tmpl[t][i] : (int32_t)(ryot_rng_next(&rng) % 3);
            x->n_prompt = n;
            uint64_t ls = 0;
            int want = expected_match(c, &m, x->tok, n - 1, x->s.max_blocks, &ls);
            int got = kv_seq_match_prefix(c, &x->s, x->tok, n - 1);
            assert_int_equal(got, want * ST_BS);
            assert_int_equal(x->s.n_shared, want);
            assert_int_equal(x->s.n_committed, want);
            n_matched += want > 0;
            x->active = true;
            x->len = got;
            x->last_serial = ls;
        } else if (r < 7) {
            /* one step: the rest of the prompt, or 1..3 generated tokens */
            int to = x->len < x->n_prompt ? x->n_prompt : x->len + 1 + (int)(ryot_rng_next(&rng) % 3);
            int need = (to + ST_BS - 1) / ST_BS - x->s.n_blocks;
            kv_cache_stats before = check(c);
            bool ok = kv_seq_reserve(c, &x->s, to);
            bool expect_ok = to <= ST_MAX && (need <= 0 || need <= before.n_free + before.n_cached);
            assert_int_equal(ok, expect_ok);
            if (ok) {
                st_compute(c, x, &m, to, exact);
            } else {
                kv_cache_stats after = check(c);
                assert_memory_equal(&before, &after, sizeof before);
                n_res_fail++;
                if (to > ST_MAX) { /* finished: free it */
                    kv_seq_release(c, &x->s);
                    x->active = false;
                }
            }
        } else {
            for (int k = 0; k < ST_SEQS; k++)
                if (&q[k] != x && q[k].active && q[k].s.n_shared > 0) n_shared_run++;
            kv_seq_release(c, &x->s);
            assert_int_equal(x->s.n_blocks, 0);
            x->active = false;
        }
        st_check(c, q, &m);
    }
    /* the run exercised what it is meant to */
    kv_cache_stats st = check(c);
    fprintf(stderr,
            "stress(%d-bit keys): %d matches, %d failed reserves, %d shared while running, %llu evictions; "
            "commits: %d duplicates, %d stopped at an evicted twin, %d orphans dropped, %d stopped by collisions\n",
            key_bits, n_matched, n_res_fail, n_shared_run, (unsigned long long)st.evictions, m.n_dup,
            m.n_dead_parent, m.n_orphan_dropped, m.n_collision_stops);
    assert_true(n_matched > 50);
    assert_true(n_res_fail > 50);
    assert_true(n_shared_run > 50);
    assert_true(st.evictions > 50);
    assert_true(m.n_dup > 50);
    if (exact) {
        assert_true(m.n_dead_parent > 0);
        assert_true(m.n_orphan_dropped > 0);
        assert_int_equal(m.n_collision_stops, 0);
    } else {
        assert_true(m.n_collision_stops > 50);
    }
    for (int k = 0; k < ST_SEQS; k++) {
        kv_seq_release(c, &q[k].s);
        kv_seq_destroy(&q[k].s);
    }
    st = check(c);
    assert_int_equal(st.n_used, 0);
    kv_cache_free(c);
}

static void test_stress(void **state) {
    (void)state;
    run_stress(64, 1234, 20000);
}

static void test_stress_colliding_keys(void **state) {
    (void)state;
    run_stress(3, 99, 20000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_args),
        cmocka_unit_test(test_reserve_release_accounting),
        cmocka_unit_test(test_commit_registers_full_blocks),
        cmocka_unit_test(test_prefix_sharing),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_match_bounded_by_table),
        cmocka_unit_test(test_hash_chain),
        cmocka_unit_test(test_key_collisions_never_share),
        cmocka_unit_test(test_lru_eviction_order),
        cmocka_unit_test(test_lru_release_order),
        cmocka_unit_test(test_reserve_all_or_nothing),
        cmocka_unit_test(test_duplicate_commit),
        cmocka_unit_test(test_preemption),
        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_stress_colliding_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
