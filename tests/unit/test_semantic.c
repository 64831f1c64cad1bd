/* Semantic cache index (cache/semantic.h): the threshold (at, above and
 * below it), the context filter (a perfect match in another context never
 * answers), the best of several candidates, replacement of the same
 * (context, key), removal by L1 key, and the entry bound with least recently
 * used eviction. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/key.h"
#include "cache/semantic.h"

#define DIM 8

static cache_key key_n(const char *kind, int n) {
    cache_key_builder kb;
    cache_key k;
    cache_key_begin(&kb, kind);
    cache_key_i64(&kb, 2, n);
    cache_key_end(&kb, &k);
    return k;
}

static bool same(cache_key a, cache_key b) { return !memcmp(a.b, b.b, sizeof a.b); }

/* A unit vector at angle theta from e0 towards e1 (cosine with e0: cos theta). */
static void unit_at(float *v, double theta) {
    memset(v, 0, DIM * sizeof *v);
    v[0] = (float)cos(theta);
    v[1] = (float)sin(theta);
}

static void basis(float *v, int i) {
    memset(v, 0, DIM * sizeof *v);
    v[i] = 1.0f;
}

static void test_sem_args(void **state) {
    (void)state;
    assert_null(cache_sem_new(0, 4, 0.9f));
    assert_null(cache_sem_new(DIM, 0, 0.9f));
    assert_null(cache_sem_new(DIM, CACHE_SEM_MAX_ENTRIES + 1, 0.9f));
    assert_null(cache_sem_new(DIM, 4, 0.0f));
    assert_null(cache_sem_new(DIM, 4, 1.01f));
    assert_null(cache_sem_new(DIM, 4, NAN));
    cache_sem *s = cache_sem_new(DIM, 4, 1.0f);
    assert_non_null(s);
    assert_true(cache_sem_threshold(s) == 1.0f);
    cache_sem_free(s);
}

static void test_sem_threshold(void **state) {
    (void)state;
    cache_sem *s = cache_sem_new(DIM, 16, 0.9f);
    const cache_key ctx = key_n("ctx", 1), a = key_n("l1", 1);
    float v[DIM], q[DIM];
    unit_at(v, 0.0);
    cache_key got;
    float c = 0;
    assert_false(cache_sem_search(s, &ctx, v, &got, &c)); /* empty */
    cache_sem_insert(s, &ctx, v, &a);
    assert_true(cache_sem_search(s, &ctx, v, &got, &c));
    assert_true(same(got, a));
    assert_true(fabsf(c - 1.0f) < 1e-6f);
    unit_at(q, acos(0.92)); /* above */
    assert_true(cache_sem_search(s, &ctx, q, &got, &c));
    assert_true(fabsf(c - 0.92f) < 1e-5f);
    unit_at(q, acos(0.88)); /* below */
    assert_false(cache_sem_search(s, &ctx, q, &got, NULL));
    unit_at(q, M_PI); /* opposite */
    assert_false(cache_sem_search(s, &ctx, q, &got, NULL));
    cache_sem_stats st;
    cache_sem_stats_get(s, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.inserts, 1);
    assert_int_equal(st.entries, 1);
    cache_sem_free(s);
}

static void test_sem_context_and_best(void **state) {
    (void)state;
    cache_sem *s = cache_sem_new(DIM, 16, 0.5f);
    const cache_key c1 = key_n("ctx", 1), c2 = key_n("ctx", 2);
    const cache_key a = key_n("l1", 1), b = key_n("l1", 2), x = key_n("l1", 3);
    float v[DIM], q[DIM];
    unit_at(v, 0.3);
    cache_sem_insert(s, &c1, v, &a);
    unit_at(v, 0.1);
    cache_sem_insert(s, &c1, v, &b);
    unit_at(v, 0.0);
    cache_sem_insert(s, &c2, v, &x); /* exact match, other context */
    unit_at(q, 0.0);
    cache_key got;
    assert_true(cache_sem_search(s, &c1, q, &got, NULL));
    assert_true(same(got, b)); /* the closest of its context, not x */
    const cache_key c3 = key_n("ctx", 3);
    assert_false(cache_sem_search(s, &c3, q, &got, NULL));
    /* the same (context, key) again replaces its vector */
    basis(v, 5);
    cache_sem_insert(s, &c1, v, &b);
    cache_sem_stats st;
    cache_sem_stats_get(s, &st);
    assert_int_equal(st.entries, 3);
    assert_true(cache_sem_search(s, &c1, q, &got, NULL));
    assert_true(same(got, a));
    /* removal by L1 key (its answer left L1) */
    cache_sem_remove(s, &a);
    assert_false(cache_sem_search(s, &c1, q, &got, NULL));
    basis(q, 5);
    assert_true(cache_sem_search(s, &c1, q, &got, NULL));
    assert_true(same(got, b));
    cache_sem_stats_get(s, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.removed, 1);
    cache_sem_free(s);
}

static void test_sem_bound_lru(void **state) {
    (void)state;
    cache_sem *s = cache_sem_new(DIM, 4, 0.99f);
    const cache_key ctx = key_n("ctx", 1);
    float v[DIM];
    cache_key k[DIM], got;
    for (int i = 0; i < 4; i++) {
        k[i] = key_n("l1", i);
        basis(v, i);
        cache_sem_insert(s, &ctx, v, &k[i]);
    }
    basis(v, 0); /* touch 0: 1 is now the least recently used */
    assert_true(cache_sem_search(s, &ctx, v, &got, NULL));
    k[4] = key_n("l1", 4);
    basis(v, 4);
    cache_sem_insert(s, &ctx, v, &k[4]);
    cache_sem_stats st;
    cache_sem_stats_get(s, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.evictions, 1);
    const int present[] = {0, 2, 3, 4};
    for (int j = 0; j < 4; j++) {
        basis(v, present[j]);
        assert_true(cache_sem_search(s, &ctx, v, &got, NULL));
        assert_true(same(got, k[present[j]]));
    }
    basis(v, 1);
    assert_false(cache_sem_search(s, &ctx, v, &got, NULL));
    /* many more inserts never pass the bound */
    for (int i = 0; i < 100; i++) {
        const cache_key ki = key_n("more", i);
        basis(v, i % DIM);
        cache_sem_insert(s, &ctx, v, &ki);
    }
    cache_sem_stats_get(s, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.evictions, 101);
    cache_sem_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sem_args),
        cmocka_unit_test(test_sem_threshold),
        cmocka_unit_test(test_sem_context_and_best),
        cmocka_unit_test(test_sem_bound_lru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
