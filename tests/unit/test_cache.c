/* Response cache: key encoding (canonical, versioned, field boundaries),
 * the L1 LRU (hit, miss, replace, LRU order under a byte bound, TTL expiry,
 * oversized values refused, stats), and a randomized run against a simple
 * reference model of the same policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/key.h"
#include "cache/l1.h"
#include "core/rng.h"

static cache_key key_of(const char *kind, const char *a, const char *b) {
    cache_key_builder kb;
    cache_key k;
    cache_key_begin(&kb, kind);
    cache_key_str(&kb, 2, a);
    cache_key_str(&kb, 3, b);
    cache_key_end(&kb, &k);
    return k;
}

static cache_key key_n(int n) {
    cache_key_builder kb;
    cache_key k;
    cache_key_begin(&kb, "test");
    cache_key_i64(&kb, 2, n);
    cache_key_end(&kb, &k);
    return k;
}

static bool same(cache_key a, cache_key b) { return !memcmp(a.b, b.b, sizeof a.b); }

static void test_key_canonical(void **state) {
    (void)state;
    assert_true(same(key_of("chat", "ab", "c"), key_of("chat", "ab", "c")));
    assert_false(same(key_of("chat", "ab", "c"), key_of("chat", "a", "bc"))); /* boundaries count */
    assert_false(same(key_of("chat", "x", "y"), key_of("completions", "x", "y")));
    assert_false(same(key_of("chat", "", "y"), key_of("chat", NULL, "y")));
    cache_key_builder kb;
    cache_key z, nz, t2, t3;
    cache_key_begin(&kb, "f");
    cache_key_f64(&kb, 2, 0.0);
    cache_key_end(&kb, &z);
    cache_key_begin(&kb, "f");
    cache_key_f64(&kb, 2, -0.0);
    cache_key_end(&kb, &nz);
    assert_false(same(z, nz));
    /* the tag is part of the encoding */
    cache_key_begin(&kb, "f");
    cache_key_i64(&kb, 2, 7);
    cache_key_end(&kb, &t2);
    cache_key_begin(&kb, "f");
    cache_key_i64(&kb, 3, 7);
    cache_key_end(&kb, &t3);
    assert_false(same(t2, t3));
    char hex[65];
    cache_key_hex(&t2, hex);
    assert_int_equal(strlen(hex), 64);
    assert_true(strspn(hex, "0123456789abcdef") == 64);
}

/* The digest is BLAKE2b-256 of the documented encoding: pin one value so a
 * change to the encoding (which must bump CACHE_KEY_VERSION) is noticed. */
static void test_key_pinned(void **state) {
    (void)state;
    unsigned char enc[64];
    size_t n = 0;
    /* version: tag 0, length 8, value 1 (little-endian) */
    enc[n++] = 0;
    for (int i = 0; i < 8; i++) enc[n++] = i == 0 ? 8 : 0;
    for (int i = 0; i < 8; i++) enc[n++] = i == 0 ? CACHE_KEY_VERSION : 0;
    /* kind: tag 1, length 4, "chat" */
    enc[n++] = 1;
    for (int i = 0; i < 8; i++) enc[n++] = i == 0 ? 4 : 0;
    memcpy(enc + n, "chat", 4);
    n += 4;
    unsigned char want[CACHE_KEY_BYTES];
    crypto_generichash(want, sizeof want, enc, n, NULL, 0);
    cache_key_builder kb;
    cache_key k;
    cache_key_begin(&kb, "chat");
    cache_key_end(&kb, &k);
    assert_memory_equal(k.b, want, sizeof want);
}

static void test_l1_basic(void **state) {
    (void)state;
    cache_l1 *c = cache_l1_new(1 << 20, 10.0);
    assert_non_null(c);
    cache_key a = key_n(1), b = key_n(2);
    void *v;
    size_t n;
    assert_false(cache_l1_get(c, &a, 0, &v, &n));
    assert_true(cache_l1_put(c, &a, "hello", 5, 0));
    assert_true(cache_l1_get(c, &a, 1, &v, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(v, "hello", 5);
    free(v);
    assert_false(cache_l1_get(c, &b, 1, &v, &n));
    /* replace */
    assert_true(cache_l1_put(c, &a, "bye", 3, 2));
    assert_true(cache_l1_get(c, &a, 3, &v, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(v, "bye", 3);
    free(v);
    /* an empty value is a value */
    assert_true(cache_l1_put(c, &b, "", 0, 3));
    assert_true(cache_l1_get(c, &b, 3, &v, &n));
    assert_int_equal(n, 0);
    free(v);
    cache_l1_stats st;
    cache_l1_stats_get(c, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.bytes, 3 + 0 + 2 * CACHE_L1_ENTRY_OVERHEAD);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.stores, 3);
    cache_l1_free(c);
}

static void test_l1_ttl(void **state) {
    (void)state;
    cache_l1 *c = cache_l1_new(1 << 20, 5.0);
    cache_key a = key_n(1);
    void *v;
    size_t n;
    assert_true(cache_l1_put(c, &a, "x", 1, 100.0));
    assert_true(cache_l1_get(c, &a, 104.9, &v, &n));
    free(v);
    assert_false(cache_l1_get(c, &a, 105.0, &v, &n)); /* expires at put + ttl */
    cache_l1_stats st;
    cache_l1_stats_get(c, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 0); /* dropped when met */
    assert_int_equal(st.bytes, 0);
    cache_l1_free(c);
}

static void test_l1_lru_and_bound(void **state) {
    (void)state;
    const size_t val = 1000, per = val + CACHE_L1_ENTRY_OVERHEAD;
    cache_l1 *c = cache_l1_new(10 * per, 100.0); /* room for exactly 10 */
    char buf[1000];
    memset(buf, 'v', sizeof buf);
    for (int i = 0; i < 10; i++) {
        cache_key k = key_n(i);
        assert_true(cache_l1_put(c, &k, buf, val, 0));
    }
    void *v;
    size_t n;
    cache_key k0 = key_n(0);
    assert_true(cache_l1_get(c, &k0, 1, &v, &n)); /* 0 is now the most recent */
    free(v);
    cache_key k10 = key_n(10);
    assert_true(cache_l1_put(c, &k10, buf, val, 1)); /* evicts 1, the least recent */
    cache_key k1 = key_n(1);
    assert_false(cache_l1_get(c, &k1, 1, &v, &n));
    assert_true(cache_l1_get(c, &k0, 1, &v, &n));
    free(v);
    cache_l1_stats st;
    cache_l1_stats_get(c, &st);
    assert_int_equal(st.entries, 10);
    assert_true(st.bytes <= st.max_bytes);
    assert_int_equal(st.evictions, 1);
    /* an expired entry goes before any live one is evicted */
    cache_l1_free(c);
    c = cache_l1_new(8 * per, 10.0); /* room for 8 (the largest value is 1/8) */
    cache_key a = key_n(100);
    assert_true(cache_l1_put(c, &a, buf, val, 0)); /* expires at 10 */
    for (int i = 1; i < 8; i++) {
        cache_key k = key_n(100 + i);
        assert_true(cache_l1_put(c, &k, buf, val, 5)); /* 15 */
    }
    assert_true(cache_l1_get(c, &a, 9, &v, &n)); /* a: most recent, but expiring */
    free(v);
    cache_key e = key_n(200), b = key_n(101);
    assert_true(cache_l1_put(c, &e, buf, val, 11)); /* a is expired: it goes, not b (the LRU) */
    assert_true(cache_l1_get(c, &b, 11, &v, &n));
    free(v);
    cache_l1_stats_get(c, &st);
    assert_int_equal(st.evictions, 0);
    cache_l1_free(c);
}

static void test_l1_too_big(void **state) {
    (void)state;
    cache_l1 *c = cache_l1_new(8000, 10.0);
    static char big[8000];
    cache_key a = key_n(1);
    assert_true(cache_l1_put(c, &a, big, 1000 - CACHE_L1_ENTRY_OVERHEAD, 0)); /* exactly 1/8 */
    assert_false(cache_l1_put(c, &a, big, 1001 - CACHE_L1_ENTRY_OVERHEAD, 0));
    void *v;
    size_t n;
    assert_false(cache_l1_get(c, &a, 0, &v, &n)); /* the refused put dropped the old value */
    cache_l1_stats st;
    cache_l1_stats_get(c, &st);
    assert_int_equal(st.too_big, 1);
    assert_int_equal(st.bytes, 0);
    cache_l1_free(c);
}

/* Random puts and gets against a reference: an array in recency order with
 * expiry times, the same policy written the obvious way. */
#define REF_MAX 512
typedef struct ref_entry {
    int key;
    size_t len;
    double expires;
} ref_entry;

static void test_l1_random_vs_reference(void **state) {
    (void)state;
    const size_t max_bytes = 20000;
    const double ttl = 50;
    cache_l1 *c = cache_l1_new(max_bytes, ttl);
    ref_entry ref[REF_MAX]; /* ref[0] most recent */
    int n_ref = 0;
    ryot_rng rng;
    ryot_rng_seed(&rng, 42);
    static unsigned char buf[4096];
    double now = 0;
    for (int step = 0; step < 20000; step++) {
        now += (double)(ryot_rng_next(&rng) % 100) / 100.0;
        int key = (int)(ryot_rng_next(&rng) % 64);
        cache_key k = key_n(key);
        int at = -1;
        for (int i = 0; i < n_ref; i++)
            if (ref[i].key == key) at = i;
        if (ryot_rng_next(&rng) % 2) {
            size_t len = (size_t)(ryot_rng_next(&rng) % 2600);
            memset(buf, key, len);
            bool stored = cache_l1_put(c, &k, buf, len, now);
            if (at >= 0) memmove(ref + at, ref + at + 1, (size_t)(n_ref - at - 1) * sizeof *ref), n_ref--;
            bool fits = len + CACHE_L1_ENTRY_OVERHEAD <= max_bytes / 8;
            assert_int_equal(stored, fits);
            if (!fits) continue;
            size_t bytes = len + CACHE_L1_ENTRY_OVERHEAD;
            for (int i = 0; i < n_ref; i++) bytes += ref[i].len + CACHE_L1_ENTRY_OVERHEAD;
            for (int i = n_ref - 1; i >= 0 && bytes > max_bytes; i--) /* expired first, cold end first */
                if (ref[i].expires <= now) {
                    bytes -= ref[i].len + CACHE_L1_ENTRY_OVERHEAD;
                    memmove(ref + i, ref + i + 1, (size_t)(n_ref - i - 1) * sizeof *ref);
                    n_ref--;
                }
            while (bytes > max_bytes) {
                n_ref--;
                bytes -= ref[n_ref].len + CACHE_L1_ENTRY_OVERHEAD;
            }
            memmove(ref + 1, ref, (size_t)n_ref * sizeof *ref);
            ref[0] = (ref_entry){key, len, now + ttl};
            n_ref++;
        } else {
            void *v = NULL;
            size_t n = 0;
            bool hit = cache_l1_get(c, &k, now, &v, &n);
            bool want = at >= 0 && ref[at].expires > now;
            assert_int_equal(hit, want);
            if (at >= 0) {
                ref_entry e = ref[at];
                memmove(ref + at, ref + at + 1, (size_t)(n_ref - at - 1) * sizeof *ref);
                n_ref--;
                if (want) {
                    assert_int_equal(n, e.len);
                    for (size_t i = 0; i < n; i++) assert_int_equal(((unsigned char *)v)[i], (unsigned char)key);
                    memmove(ref + 1, ref, (size_t)n_ref * sizeof *ref);
                    ref[0] = e;
                    n_ref++;
                }
            }
            free(v);
        }
        cache_l1_stats st;
        cache_l1_stats_get(c, &st);
        assert_int_equal(st.entries, n_ref);
        assert_true(st.bytes <= max_bytes);
    }
    cache_l1_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_canonical),   cmocka_unit_test(test_key_pinned),
        cmocka_unit_test(test_l1_basic),        cmocka_unit_test(test_l1_ttl),
        cmocka_unit_test(test_l1_lru_and_bound), cmocka_unit_test(test_l1_too_big),
        cmocka_unit_test(test_l1_random_vs_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
