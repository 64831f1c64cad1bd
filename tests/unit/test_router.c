/* Router internals: prompt block hashes (shared prefixes share hashes, a
 * change stops the chain, partial tails are not hashed), the per-backend LRU
 * prefix table (match, eviction order, against a reference model), and the
 * pool's decisions (prefix affinity, the load balance, least-loaded,
 * round-robin, retries exclude, model preference, breaker transitions),
 * backend groups, and canary splits (spec parsing, sticky assignment,
 * rollback on errors or slow first bytes, none when the arms agree). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/rng.h"
#include "router/canary.h"
#include "router/pool.h"
#include "router/prefix.h"

static json_t *chat(const char *system, const char *user) {
    return json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}]}", "model", "m", "messages", "role", "system", "content", system,
                     "role", "user", "content", user);
}

static char *repeat(char c, int n) {
    char *s = malloc((size_t)n + 1);
    memset(s, c, (size_t)n);
    s[n] = 0;
    return s;
}

static void test_hashes_prefix(void **st) {
    (void)st;
    char *sys = repeat('s', 1000);
    json_t *a = chat(sys, "question one, somewhat long to fill a block or two of text......................");
    json_t *b = chat(sys, "another question entirely different from the first one and long as well......");
    uint64_t ha[64], hb[64];
    const int na = rt_prefix_hashes(a, 64, ha, 64), nb = rt_prefix_hashes(b, 64, hb, 64);
    /* model "m\0" + "system\0" + 1000 's' + "\0" + "user\0" + ~80: (2+7+1001+5+~80)/64 full blocks */
    assert_true(na >= 16 && nb >= 16);
    int common = 0;
    while (common < na && common < nb && ha[common] == hb[common]) common++;
    /* the first 1010 bytes are equal: 15 full blocks of 64 */
    assert_int_equal(common, 15);
    /* identical bodies: identical chains */
    uint64_t hc[64];
    json_t *c = chat(sys, "question one, somewhat long to fill a block or two of text......................");
    assert_int_equal(rt_prefix_hashes(c, 64, hc, 64), na);
    assert_memory_equal(ha, hc, (size_t)na * sizeof *ha);
    /* another model: nothing shared (the model is hashed first) */
    json_object_set_new(c, "model", json_string("other"));
    rt_prefix_hashes(c, 64, hc, 64);
    assert_true(hc[0] != ha[0]);
    /* max bounds the output */
    assert_int_equal(rt_prefix_hashes(a, 64, ha, 3), 3);
    /* less than a block, no prompt, not an object: no hashes */
    json_t *small = json_pack("{s:s}", "prompt", "hi");
    assert_int_equal(rt_prefix_hashes(small, 64, ha, 64), 0);
    json_t *none = json_pack("{s:i}", "max_tokens", 3);
    assert_int_equal(rt_prefix_hashes(none, 16, ha, 64), 0);
    json_t *arr = json_array();
    assert_int_equal(rt_prefix_hashes(arr, 16, ha, 64), 0);
    /* completion prompts (string, or the first of a list) and content parts */
    json_t *p1 = json_pack("{s:s,s:s}", "model", "m", "prompt", sys);
    json_t *p2 = json_pack("{s:s,s:[s,s]}", "model", "m", "prompt", sys, "x");
    assert_int_equal(rt_prefix_hashes(p1, 64, ha, 64), rt_prefix_hashes(p2, 64, hb, 64));
    assert_memory_equal(ha, hb, 15 * sizeof *ha);
    json_t *parts = json_pack("{s:s,s:[{s:s,s:[{s:s,s:s}]}]}", "model", "m", "messages", "role", "user", "content",
                              "type", "text", "text", sys);
    assert_true(rt_prefix_hashes(parts, 64, ha, 64) >= 15);
    json_decref(a), json_decref(b), json_decref(c), json_decref(small), json_decref(none), json_decref(arr);
    json_decref(p1), json_decref(p2), json_decref(parts);
    free(sys);
}

static void test_table_match_and_lru(void **st) {
    (void)st;
    rt_prefix_table *t = rt_prefix_table_new(6);
    const uint64_t a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 7, 8}, c[3] = {9, 10, 11};
    rt_prefix_table_insert(t, a, 4);
    assert_int_equal(rt_prefix_table_match(t, a, 4), 4);
    assert_int_equal(rt_prefix_table_match(t, b, 4), 2);
    assert_int_equal(rt_prefix_table_match(t, c, 3), 0);
    rt_prefix_table_insert(t, b, 4); /* 1,2 shared: 6 entries in all */
    assert_int_equal(rt_prefix_table_size(t), 6);
    /* c evicts the 3 least recent: a's tail 3,4 first, then b's tail 8 */
    rt_prefix_table_insert(t, c, 3);
    assert_int_equal(rt_prefix_table_size(t), 6);
    assert_int_equal(rt_prefix_table_match(t, c, 3), 3);
    assert_int_equal(rt_prefix_table_match(t, a, 4), 2);
    assert_int_equal(rt_prefix_table_match(t, b, 4), 3);
    rt_prefix_table_clear(t);
    assert_int_equal(rt_prefix_table_size(t), 0);
    assert_int_equal(rt_prefix_table_match(t, b, 4), 0);
    rt_prefix_table_free(t);
}

/* The table against a plain reference: an array in recency order. */
static void test_table_random_vs_reference(void **st) {
    (void)st;
    enum { CAP = 37, KEYS = 90 };
    rt_prefix_table *t = rt_prefix_table_new(CAP);
    uint64_t ref[CAP];
    int n_ref = 0;
    ryot_rng rng;
    ryot_rng_seed(&rng, 7);
    for (int step = 0; step < 5000; step++) {
        uint64_t h[5];
        const int n = 1 + (int)((uint32_t)(ryot_rng_next(&rng) >> 32) % 5);
        for (int i = 0; i < n; i++) h[i] = 1 + (uint32_t)(ryot_rng_next(&rng) >> 32) % KEYS;
        if ((uint32_t)(ryot_rng_next(&rng) >> 32) % 3) {
            rt_prefix_table_insert(t, h, n);
            for (int k = n - 1; k >= 0; k--) { /* same order as the table: head last */
                int at = -1;
                for (int i = 0; i < n_ref; i++)
                    if (ref[i] == h[k]) at = i;
                if (at < 0 && n_ref == CAP) at = --n_ref; /* drop the least recent */
                else if (at < 0) at = n_ref;
                else n_ref--;
                memmove(ref + 1, ref, (size_t)at * sizeof *ref);
                ref[0] = h[k];
                n_ref++;
            }
        }
        int want = 0;
        for (; want < n; want++) {
            bool in = false;
            for (int i = 0; i < n_ref; i++) in |= ref[i] == h[want];
            if (!in) break;
        }
        assert_int_equal(rt_prefix_table_match(t, h, n), want);
        assert_int_equal(rt_prefix_table_size(t), n_ref);
    }
    rt_prefix_table_free(t);
}

static rt_pool *pool3(rt_policy policy) {
    rt_pool_params p = rt_pool_default_params();
    p.policy = policy;
    p.cooldown_ms = 0;
    const char *urls[] = {"http://a:1", "http://b:2/", "http://c:3"};
    rt_pool *pool;
    ryot_error err = {0};
    assert_int_equal(rt_pool_new(&p, urls, 3, &pool, &err), RYOT_OK);
    return pool;
}

static void test_pool_prefix_affinity_and_balance(void **st) {
    (void)st;
    rt_pool *p = pool3(RT_POLICY_PREFIX);
    assert_string_equal(rt_pool_url(p, 1), "http://b:2");
    const uint64_t h[3] = {11, 12, 13}, g[3] = {11, 12, 99};
    rt_reason why;
    const int first = rt_pool_pick(p, NULL, h, 3, -1, &why);
    assert_int_equal(why, RT_WHY_LEAST_LOADED);
    rt_pool_done(p, first, RT_OUT_OK, 200, 0.01, 0.02);
    /* the same prefix, and a partly shared one, follow it */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rt_pool_pick(p, NULL, h, 3, -1, &why), first);
        assert_int_equal(why, RT_WHY_PREFIX);
        rt_pool_done(p, first, RT_OUT_OK, 200, 0.01, 0.02);
    }
    assert_int_equal(rt_pool_pick(p, NULL, g, 3, -1, &why), first);
    rt_pool_done(p, first, RT_OUT_OK, 200, 0.01, 0.02);
    /* a loaded holder (load 5 > 2 x (0 + 1)) loses to the least loaded */
    rt_pool_set_load(p, first, 3, 2);
    const int other = rt_pool_pick(p, NULL, h, 3, -1, &why);
    assert_true(other != first);
    assert_int_equal(why, RT_WHY_PREFIX_OVERLOADED);
    rt_pool_done(p, other, RT_OUT_OK, 200, 0.01, 0.02);
    /* within the balance (load 1 <= 2) the holder keeps it */
    rt_pool_set_load(p, first, 1, 0);
    assert_int_equal(rt_pool_pick(p, NULL, g, 3, -1, &why), first);
    assert_int_equal(why, RT_WHY_PREFIX);
    rt_pool_done(p, first, RT_OUT_OK, 200, 0.01, 0.02);
    /* a retry excludes the failed backend */
    assert_true(rt_pool_pick(p, NULL, g, 3, first, &why) != first);
    assert_int_equal(why, RT_WHY_RETRY);
    rt_pool_free(p);
}

static void test_pool_least_loaded_and_rr(void **st) {
    (void)st;
    rt_pool *p = pool3(RT_POLICY_LEAST_LOADED);
    rt_reason why;
    /* three picks in flight land on three backends */
    int a = rt_pool_pick(p, NULL, NULL, 0, -1, &why), b = rt_pool_pick(p, NULL, NULL, 0, -1, &why),
        c = rt_pool_pick(p, NULL, NULL, 0, -1, &why);
    assert_true(a != b && b != c && a != c);
    assert_int_equal(why, RT_WHY_LEAST_LOADED);
    rt_pool_done(p, b, RT_OUT_OK, 200, 0.01, 0.01);
    assert_int_equal(rt_pool_pick(p, NULL, NULL, 0, -1, &why), b); /* the one with nothing in flight */
    rt_pool_free(p);

    p = pool3(RT_POLICY_ROUND_ROBIN);
    int seen[3] = {0};
    for (int i = 0; i < 9; i++) {
        int x = rt_pool_pick(p, NULL, NULL, 0, -1, &why);
        assert_int_equal(why, RT_WHY_ROUND_ROBIN);
        seen[x]++;
    }
    assert_int_equal(seen[0], 3);
    assert_int_equal(seen[1], 3);
    assert_int_equal(seen[2], 3);
    rt_pool_free(p);
}

static void test_pool_models(void **st) {
    (void)st;
    rt_pool *p = pool3(RT_POLICY_LEAST_LOADED);
    const char *m1[] = {"alpha"}, *m2[] = {"beta", "alpha"};
    rt_pool_set_models(p, 0, m1, 1);
    rt_pool_set_models(p, 1, m2, 2);
    rt_pool_set_models(p, 2, m1, 1);
    for (int i = 0; i < 4; i++) {
        const int b = rt_pool_pick(p, "beta", NULL, 0, -1, NULL);
        assert_int_equal(b, 1);
        rt_pool_done(p, b, RT_OUT_OK, 200, 0.01, 0.01);
    }
    assert_true(rt_pool_has_model(p, "beta"));
    assert_false(rt_pool_has_model(p, "gamma"));
    char *j = rt_pool_models_json(p, 5);
    assert_non_null(strstr(j, "\"alpha\""));
    assert_non_null(strstr(j, "\"beta\""));
    assert_null(strstr(strstr(j, "\"alpha\"") + 1, "\"alpha\"")); /* listed once */
    free(j);
    rt_pool_free(p);
}

static void test_pool_breaker(void **st) {
    (void)st;
    rt_pool *p = pool3(RT_POLICY_ROUND_ROBIN);
    assert_int_equal(rt_pool_n_up(p), 3);
    /* a refused connection opens at once */
    rt_pool_done(p, rt_pool_pick(p, NULL, NULL, 0, -1, NULL), RT_OUT_OK, 200, 0.01, 0.01);
    int b = rt_pool_pick(p, NULL, NULL, 0, -1, NULL);
    rt_pool_done(p, b, RT_OUT_CONNECT, 0, -1, 0.001);
    assert_int_equal(rt_pool_breaker(p, b), RT_BREAKER_OPEN);
    assert_int_equal(rt_pool_n_up(p), 2);
    for (int i = 0; i < 10; i++) {
        int x = rt_pool_pick(p, NULL, NULL, 0, -1, NULL);
        assert_true(x != b);
        rt_pool_done(p, x, RT_OUT_OK, 200, 0.01, 0.01);
    }
    /* a good probe half-opens (cooldown 0), a trial success closes */
    rt_pool_probe(p, b, true);
    assert_int_equal(rt_pool_breaker(p, b), RT_BREAKER_HALF_OPEN);
    rt_pool_free(p);

    p = pool3(RT_POLICY_LEAST_LOADED);
    rt_pool_done(p, 0, RT_OUT_CONNECT, 0, -1, 0); /* no pick needed for the breaker */
    rt_pool_probe(p, 0, true);
    assert_int_equal(rt_pool_breaker(p, 0), RT_BREAKER_HALF_OPEN);
    rt_pool_set_load(p, 1, 50, 0);
    rt_pool_set_load(p, 2, 50, 0);
    assert_int_equal(rt_pool_pick(p, NULL, NULL, 0, -1, NULL), 0); /* the trial */
    assert_true(rt_pool_pick(p, NULL, NULL, 0, -1, NULL) != 0);    /* no second trial */
    rt_pool_done(p, 0, RT_OUT_OK, 200, 0.01, 0.01);
    assert_int_equal(rt_pool_breaker(p, 0), RT_BREAKER_CLOSED);
    /* breaker_failures (3) 5xx in a row open it; an answer in between resets the count */
    rt_pool_done(p, 0, RT_OUT_SERVER, 500, 0.01, 0.01);
    rt_pool_done(p, 0, RT_OUT_SERVER, 500, 0.01, 0.01);
    rt_pool_done(p, 0, RT_OUT_OK, 200, 0.01, 0.01);
    rt_pool_done(p, 0, RT_OUT_CUT, 200, 0.01, 0.01);
    rt_pool_done(p, 0, RT_OUT_SERVER, 500, 0.01, 0.01);
    assert_int_equal(rt_pool_breaker(p, 0), RT_BREAKER_CLOSED);
    rt_pool_done(p, 0, RT_OUT_SERVER, 500, 0.01, 0.01);
    assert_int_equal(rt_pool_breaker(p, 0), RT_BREAKER_OPEN);
    /* a failed probe opens; a cancelled request says nothing */
    rt_pool_probe(p, 1, false);
    assert_int_equal(rt_pool_breaker(p, 1), RT_BREAKER_OPEN);
    rt_pool_done(p, 2, RT_OUT_CANCELLED, 0, -1, 0.5);
    assert_int_equal(rt_pool_breaker(p, 2), RT_BREAKER_CLOSED);
    /* all open but one; then none: -1 */
    rt_pool_probe(p, 2, false);
    assert_int_equal(rt_pool_pick(p, NULL, NULL, 0, -1, NULL), -1);
    /* metrics and admin JSON say so */
    ryot_buf m = {0};
    rt_pool_metrics(p, &m);
    assert_non_null(strstr(m.data, "ryot_router_backend_up{backend=\"http://a:1\"} 0\n"));
    assert_non_null(strstr(m.data, "ryot_router_backend_state{backend=\"http://b:2\",state=\"open\"} 1\n"));
    assert_non_null(strstr(m.data, "ryot_router_unroutable_total 1\n"));
    ryot_buf_free(&m);
    char *j = rt_pool_admin_json(p);
    assert_non_null(strstr(j, "\"state\":\"open\""));
    free(j);
    rt_pool_free(p);
}

static void test_pool_membership(void **st) {
    (void)st;
    rt_pool_params pp = rt_pool_default_params();
    rt_pool *p;
    ryot_error err = {0};
    assert_int_equal(rt_pool_new(&pp, NULL, 0, &p, &err), RYOT_OK);
    assert_int_equal(rt_pool_pick(p, NULL, NULL, 0, -1, NULL), -1);
    assert_int_equal(rt_pool_add(p, "ftp://x", &err), -1);
    assert_int_equal(rt_pool_add(p, "http://x:1", &err), 0);
    assert_int_equal(rt_pool_add(p, "http://x:1/", &err), 0); /* the same backend */
    assert_int_equal(rt_pool_size(p), 1);
    assert_int_equal(rt_pool_pick(p, NULL, NULL, 0, -1, NULL), 0);
    rt_pool_done(p, 0, RT_OUT_OK, 200, 0.01, 0.01);
    rt_pool_set_active(p, 0, false);
    assert_int_equal(rt_pool_pick(p, NULL, NULL, 0, -1, NULL), -1);
    assert_int_equal(rt_pool_add(p, "http://x:1", &err), 0); /* registered again */
    assert_true(rt_pool_active(p, 0));
    rt_pool_free(p);
    const char *bad[] = {"localhost:80"};
    assert_int_not_equal(rt_pool_new(&pp, bad, 1, &p, &err), RYOT_OK);
    assert_non_null(strstr(err.msg, "localhost:80"));
}

static void test_pool_groups(void **st) {
    (void)st;
    rt_pool_params pp = rt_pool_default_params();
    pp.policy = RT_POLICY_ROUND_ROBIN;
    const char *urls[] = {"http://a:1", "canary=http://c:1", "http://b:1"};
    rt_pool *p;
    ryot_error err = {0};
    assert_int_equal(rt_pool_new(&pp, urls, 3, &p, &err), RYOT_OK);
    assert_string_equal(rt_pool_url(p, 1), "http://c:1");
    bool fb;
    for (int i = 0; i < 6; i++) {
        const int b = rt_pool_pick_in(p, NULL, NULL, NULL, 0, -1, NULL, &fb);
        assert_true(b == 0 || b == 2); /* the baseline never gets the canary backend */
        assert_false(fb);
        rt_pool_done(p, b, RT_OUT_OK, 200, 0.01, 0.01);
        assert_int_equal(rt_pool_pick_in(p, "canary", NULL, NULL, 0, -1, NULL, &fb), 1);
        rt_pool_done(p, 1, RT_OUT_OK, 200, 0.01, 0.01);
    }
    /* the canary group down: the baseline serves its requests */
    rt_pool_done(p, 1, RT_OUT_CONNECT, 0, -1, 0);
    const int b = rt_pool_pick_in(p, "canary", NULL, NULL, 0, -1, NULL, &fb);
    assert_true(fb && (b == 0 || b == 2));
    char *j = rt_pool_admin_json(p);
    assert_non_null(strstr(j, "\"group\":\"canary\""));
    free(j);
    rt_pool_free(p);
}

static void test_canary_spec_and_assign(void **st) {
    (void)st;
    rt_canary_params cp = rt_canary_default_params();
    rt_canary *c = rt_canary_new(&cp);
    ryot_error err = {0};
    const char *bad[] = {"m", "m=g", "=g:5", "m=:5", "m=g:", "m=g:101", "m=g:-1", "m=g:x", "m=g:nan"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_not_equal(rt_canary_add(c, bad[i], &err), RYOT_OK);
    assert_int_equal(rt_canary_add(c, "llama=new:25", &err), RYOT_OK);
    assert_int_not_equal(rt_canary_add(c, "llama=other:5", &err), RYOT_OK); /* one split per model */
    assert_int_equal(rt_canary_add(c, "org/m:v2=g2:0.5", &err), RYOT_OK);   /* the last ':' ends the group */
    assert_int_equal(rt_canary_count(c), 2);
    assert_string_equal(rt_canary_group(c, 1), "g2");
    bool k;
    assert_int_equal(rt_canary_assign(c, "other", "u", &k), -1);
    assert_false(k);
    assert_int_equal(rt_canary_assign(c, NULL, "u", &k), -1);
    /* sticky: a key always lands in the same arm; about 25% of keys in the canary */
    int in = 0;
    for (int u = 0; u < 4000; u++) {
        char key[32];
        snprintf(key, sizeof key, "user-%d", u);
        bool a, b;
        assert_int_equal(rt_canary_assign(c, "llama", key, &a), 0);
        rt_canary_assign(c, "llama", key, &b);
        assert_int_equal(a, b);
        in += a;
    }
    assert_in_range(in, 850, 1150);
    /* no key: random, still about 25% */
    in = 0;
    for (int i = 0; i < 4000; i++) {
        bool a;
        rt_canary_assign(c, "llama", NULL, &a);
        in += a;
    }
    assert_in_range(in, 850, 1150);
    rt_canary_free(c);
}

static void test_canary_rollback(void **st) {
    (void)st;
    rt_canary_params cp = rt_canary_default_params();
    cp.window_s = 10;
    cp.min_requests = 10;
    rt_canary *c = rt_canary_new(&cp);
    ryot_error err = {0};
    assert_int_equal(rt_canary_add(c, "a=g:50", &err), RYOT_OK);
    assert_int_equal(rt_canary_add(c, "b=g:50", &err), RYOT_OK);
    assert_int_equal(rt_canary_add(c, "c=g:50", &err), RYOT_OK);
    const double t0 = 1e9; /* windows are closed by the time given */
    /* a: the arms agree (one error each in 20); b: the canary fails 30%; c: its first byte is 4x slower */
    for (int i = 0; i < 20; i++) {
        rt_canary_record(c, 0, false, i == 3, 0.04);
        rt_canary_record(c, 0, true, i == 5, 0.045);
        rt_canary_record(c, 1, false, false, 0.04);
        rt_canary_record(c, 1, true, i % 10 < 3, 0.04);
        rt_canary_record(c, 2, false, false, 0.04);
        rt_canary_record(c, 2, true, false, 0.2);
    }
    assert_int_equal(rt_canary_check(c, t0, true), 2);
    assert_true(rt_canary_percent(c, 0) == 50);
    assert_true(rt_canary_percent(c, 1) == 0);
    assert_true(rt_canary_percent(c, 2) == 0);
    bool k;
    for (int i = 0; i < 100; i++) {
        rt_canary_assign(c, "b", NULL, &k);
        assert_false(k); /* rolled back: nobody in the canary */
    }
    /* too few requests in a window: no verdict (and the window restarts) */
    for (int i = 0; i < 5; i++) rt_canary_record(c, 0, true, true, 0.04), rt_canary_record(c, 0, false, false, 0.04);
    assert_int_equal(rt_canary_check(c, t0 + 20, true), 0);
    assert_true(rt_canary_percent(c, 0) == 50);
    ryot_buf m = {0};
    rt_canary_metrics(c, &m);
    assert_non_null(strstr(m.data, "ryot_router_canary_percent{model=\"b\",group=\"g\"} 0\n"));
    assert_non_null(strstr(m.data, "ryot_router_canary_rollbacks_total 2\n"));
    assert_non_null(strstr(m.data, "ryot_router_canary_errors_total{model=\"b\",arm=\"canary\"} 6\n"));
    ryot_buf_free(&m);
    json_t *j = rt_canary_admin(c);
    assert_true(json_is_true(json_object_get(json_array_get(j, 1), "rolled_back")));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(j, 1), "reason")), "error rate"));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(j, 2), "reason")), "p99"));
    json_decref(j);
    rt_canary_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hashes_prefix),
        cmocka_unit_test(test_table_match_and_lru),
        cmocka_unit_test(test_table_random_vs_reference),
        cmocka_unit_test(test_pool_prefix_affinity_and_balance),
        cmocka_unit_test(test_pool_least_loaded_and_rr),
        cmocka_unit_test(test_pool_models),
        cmocka_unit_test(test_pool_breaker),
        cmocka_unit_test(test_pool_membership),
        cmocka_unit_test(test_pool_groups),
        cmocka_unit_test(test_canary_spec_and_assign),
        cmocka_unit_test(test_canary_rollback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
