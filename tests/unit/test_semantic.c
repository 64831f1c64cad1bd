/* Semantic cache index (cache/semantic.h): the threshold (at, above and
 * below it), the context filter (a perfect match in another context never
 * answers), the best of several candidates, replacement of the same
 * (context, key), removal by L1 key, and the entry bound with least recently
 * used eviction; for groups past CACHE_SEM_FLAT_MAX, the HNSW graph's recall
 * against an exact scan, with removals and slot reuse, and the bound. */
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

/* ---- large groups: the HNSW graph path (CACHE_SEM_FLAT_MAX exceeded) ---- */

#define GDIM 48

static uint64_t rng_state = 42;
static double urand(void) {
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
static double nrand(void) { return sqrt(-2.0 * log(1.0 - urand())) * cos(6.283185307179586 * urand()); }
static void normalize(float *v, int n) {
    double q = 0;
    for (int i = 0; i < n; i++) q += (double)v[i] * v[i];
    const float r = (float)(1.0 / sqrt(q));
    for (int i = 0; i < n; i++) v[i] *= r;
}

/* n unit vectors in clusters (64 centres, spread 0.6): neighbours in a
 * cluster have cosines ~0.7, so the graph must separate close candidates. */
static float *clustered(int n) {
    float *centres = malloc(64 * GDIM * sizeof *centres), *v = malloc((size_t)n * GDIM * sizeof *v);
    for (int i = 0; i < 64 * GDIM; i++) centres[i] = (float)nrand();
    for (int c = 0; c < 64; c++) normalize(centres + c * GDIM, GDIM);
    for (int i = 0; i < n; i++) {
        const float *c = centres + (i % 64) * GDIM;
        for (int d = 0; d < GDIM; d++) v[i * GDIM + d] = c[d] + 0.6f * (float)nrand() / sqrtf(GDIM);
        normalize(v + i * GDIM, GDIM);
    }
    free(centres);
    return v;
}

/* q: v moved by a small random step (cosine with v ~0.98). */
static void near(const float *v, float *q) {
    for (int d = 0; d < GDIM; d++) q[d] = v[d] + 0.2f * (float)nrand() / sqrtf(GDIM);
    normalize(q, GDIM);
}

static int brute_best(const float *v, const bool *live, int n, const float *q, float *best) {
    int b = -1;
    for (int i = 0; i < n; i++) {
        if (!live[i]) continue;
        float d = 0;
        for (int k = 0; k < GDIM; k++) d += v[i * GDIM + k] * q[k];
        if (b < 0 || d > *best) b = i, *best = d;
    }
    return b;
}

/* Recall of the graph against an exact scan: a question close to a stored
 * one (what the cache exists for) finds that entry; never an entry below the
 * threshold; removals (half the entries, then new inserts reusing their
 * slots) keep the graph searchable and never return a removed key. */
static void test_sem_graph_recall_and_removal(void **state) {
    (void)state;
    enum { N = 6000, Q = 600 };
    float *v = clustered(N);
    bool *live = calloc(N, sizeof *live);
    cache_sem *s = cache_sem_new(GDIM, N, 0.9f);
    assert_non_null(s);
    const cache_key ctx = key_n("ctx", 7);
    for (int i = 0; i < N; i++) {
        const cache_key k = key_n("g", i);
        cache_sem_insert(s, &ctx, v + i * GDIM, &k);
        live[i] = true;
    }
    float q[GDIM];
    for (int round = 0; round < 2; round++) {
        int found = 0, asked = 0;
        for (int t = 0; t < Q; t++) {
            int i = (int)(urand() * N);
            while (!live[i]) i = (i + 1) % N;
            near(v + i * GDIM, q);
            float exact = 0, c = 0;
            const int b = brute_best(v, live, N, q, &exact);
            cache_key got;
            asked++;
            if (cache_sem_search(s, &ctx, q, &got, &c)) {
                assert_true(c >= 0.9f);
                int g = -1;
                for (int j = 0; j < N && g < 0; j++)
                    if (same(got, key_n("g", j))) g = j;
                assert_true(g >= 0 && live[g]); /* never a removed entry */
                if (g == b) found++;
            } else {
                assert_true(exact >= 0.9f); /* a miss here is a recall loss, counted below */
            }
        }
        print_message("graph recall round %d: %d/%d\n", round, found, asked);
        assert_true(found >= asked * 97 / 100);
        cache_sem_stats st;
        cache_sem_stats_get(s, &st);
        assert_true(st.graph_searches >= (uint64_t)asked);
        if (round == 0) { /* remove every other entry, then reinsert a quarter */
            for (int i = 0; i < N; i += 2) {
                const cache_key k = key_n("g", i);
                cache_sem_remove(s, &k);
                live[i] = false;
            }
            for (int i = 0; i < N; i += 4) {
                const cache_key k = key_n("g", i);
                cache_sem_insert(s, &ctx, v + i * GDIM, &k);
                live[i] = true;
            }
            cache_sem_stats_get(s, &st);
            assert_int_equal(st.entries, N / 2 + N / 4);
        }
    }
    /* another context never sees these entries */
    cache_key got;
    const cache_key other = key_n("ctx", 8);
    assert_false(cache_sem_search(s, &other, v, &got, NULL));
    cache_sem_free(s);
    free(live);
    free(v);
}

/* The bound holds with large groups and many contexts; the newest entries
 * of every context stay findable; emptied groups are reused. */
static void test_sem_graph_bound(void **state) {
    (void)state;
    enum { MAX = 2000, N = 5000 };
    float *v = clustered(N);
    cache_sem *s = cache_sem_new(GDIM, MAX, 0.95f);
    assert_non_null(s);
    for (int i = 0; i < N; i++) {
        const cache_key ctx = key_n("ctx", i < N / 2 ? 0 : 1 + i % 3), k = key_n("g", i);
        cache_sem_insert(s, &ctx, v + i * GDIM, &k);
    }
    cache_sem_stats st;
    cache_sem_stats_get(s, &st);
    assert_int_equal(st.entries, MAX);
    assert_int_equal(st.evictions, N - MAX);
    int found = 0;
    for (int i = N - 300; i < N; i++) {
        const cache_key ctx = key_n("ctx", 1 + i % 3);
        cache_key got;
        if (cache_sem_search(s, &ctx, v + i * GDIM, &got, NULL) && same(got, key_n("g", i))) found++;
    }
    assert_true(found >= 297);
    /* the first context (all evicted) is gone */
    cache_key got;
    const cache_key c0 = key_n("ctx", 0);
    assert_false(cache_sem_search(s, &c0, v, &got, NULL));
    cache_sem_free(s);
    free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sem_args),
        cmocka_unit_test(test_sem_threshold),
        cmocka_unit_test(test_sem_context_and_best),
        cmocka_unit_test(test_sem_bound_lru),
        cmocka_unit_test(test_sem_graph_recall_and_removal),
        cmocka_unit_test(test_sem_graph_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
