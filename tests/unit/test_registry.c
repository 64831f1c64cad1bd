/* The model registry (server/registry.h) with fake load/unload ops: names
 * and aliases, state transitions, LRU choice under the memory budget,
 * models in use never unloaded (soft budget), failed and retried loads,
 * concurrent first acquires sharing one load, shutdown. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/registry.h"

typedef struct fake {
    uint64_t bytes[8];       /* what a load of entry i reports */
    ryot_status fail[8];     /* a load of entry i fails with this */
    int loads[8], unloads[8];
    int live[8];             /* handles of entry i not unloaded */
    int sleep_ms;            /* each load takes this long */
    pthread_mutex_t mu;
} fake;

static ryot_status fake_load(void *ctx, int idx, const char *path, void **handle, uint64_t *bytes, ryot_error *err) {
    fake *f = ctx;
    if (f->sleep_ms) usleep((useconds_t)f->sleep_ms * 1000);
    pthread_mutex_lock(&f->mu);
    f->loads[idx]++;
    ryot_status st = f->fail[idx];
    if (!st) f->live[idx]++;
    pthread_mutex_unlock(&f->mu);
    if (st) return ryot_fail(err, st, "%s: cannot load (fake)", path);
    *handle = (void *)(intptr_t)(idx + 1);
    *bytes = f->bytes[idx];
    return RYOT_OK;
}

static void fake_unload(void *ctx, int idx, void *handle) {
    fake *f = ctx;
    assert_int_equal((intptr_t)handle, idx + 1);
    pthread_mutex_lock(&f->mu);
    f->unloads[idx]++;
    f->live[idx]--;
    pthread_mutex_unlock(&f->mu);
}

static const srv_registry_ops OPS = {fake_load, fake_unload};

static srv_registry *make(fake *f, uint64_t budget, int n, uint64_t bytes) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    srv_registry *r = srv_registry_new(&OPS, f, budget);
    assert_non_null(r);
    for (int i = 0; i < n; i++) {
        char name[16], path[32];
        snprintf(name, sizeof name, "m%d", i);
        snprintf(path, sizeof path, "/models/m%d.gguf", i);
        f->bytes[i] = bytes;
        assert_int_equal(srv_registry_add(r, name, path, bytes, NULL), i);
    }
    return r;
}

static srv_model_state state(srv_registry *r, int i) {
    srv_model_status s;
    srv_registry_status(r, i, &s);
    return s.state;
}

static void use(srv_registry *r, int i) {
    void *h;
    ryot_error e = {0};
    assert_int_equal(srv_registry_acquire(r, i, &h, &e), RYOT_OK);
    assert_int_equal((intptr_t)h, i + 1);
    srv_registry_release(r, i);
}

static void test_names(void **state_) {
    (void)state_;
    fake f;
    srv_registry *r = make(&f, 0, 2, 10);
    ryot_error e = {0};
    assert_int_equal(srv_registry_find(r, "m0"), 0);
    assert_int_equal(srv_registry_find(r, "m1"), 1);
    assert_int_equal(srv_registry_find(r, "M1"), -1);
    assert_int_equal(srv_registry_find(r, "m"), -1);
    assert_int_equal(srv_registry_find(r, NULL), -1);
    assert_int_equal(srv_registry_add(r, "m1", "/x", 1, &e), -1); /* taken */
    assert_non_null(strstr(e.msg, "m1"));
    assert_int_equal(srv_registry_add(r, "", "/x", 1, &e), -1);
    char longname[SRV_REG_NAME_MAX + 8];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_int_equal(srv_registry_add(r, longname, "/x", 1, &e), -1);
    assert_int_equal(srv_registry_alias(r, 0, "smol", &e), RYOT_OK);
    assert_int_equal(srv_registry_alias(r, 0, "m0", &e), RYOT_OK); /* its own name: nothing to do */
    assert_int_equal(srv_registry_alias(r, 1, "smol", &e), RYOT_ERR_INVALID);
    assert_int_equal(srv_registry_alias(r, 1, "m0", &e), RYOT_ERR_INVALID);
    assert_int_equal(srv_registry_find(r, "smol"), 0);
    assert_int_equal(srv_registry_count(r), 2);
    assert_string_equal(srv_registry_name(r, 1), "m1");
    assert_string_equal(srv_model_state_name(SRV_MODEL_READY), "loaded");
    srv_registry_free(r);
}

static void test_lazy_states(void **state_) {
    (void)state_;
    fake f;
    srv_registry *r = make(&f, 0, 2, 10);
    assert_int_equal(state(r, 0), SRV_MODEL_UNLOADED);
    assert_int_equal(f.loads[0], 0); /* nothing loads before it is asked for */
    void *h;
    assert_int_equal(srv_registry_acquire(r, 0, &h, NULL), RYOT_OK);
    srv_model_status s;
    srv_registry_status(r, 0, &s);
    assert_int_equal(s.state, SRV_MODEL_READY);
    assert_int_equal(s.refs, 1);
    assert_int_equal(s.loads, 1);
    assert_int_equal(state(r, 1), SRV_MODEL_UNLOADED);
    srv_registry_release(r, 0);
    use(r, 0);
    use(r, 0);
    assert_int_equal(f.loads[0], 1); /* stays loaded */
    assert_int_equal(srv_registry_resident(r), 10);
    srv_registry_free(r);
    assert_int_equal(f.unloads[0], 1);
    assert_int_equal(f.live[0], 0);
}

static void test_lru_budget(void **state_) {
    (void)state_;
    fake f;
    srv_registry *r = make(&f, 25, 3, 10); /* two fit, not three */
    use(r, 0);
    use(r, 1);
    assert_int_equal(srv_registry_resident(r), 20);
    use(r, 0); /* 0 is now more recent than 1 */
    use(r, 2); /* evicts 1, the least recently used */
    assert_int_equal(state(r, 0), SRV_MODEL_READY);
    assert_int_equal(state(r, 1), SRV_MODEL_UNLOADED);
    assert_int_equal(state(r, 2), SRV_MODEL_READY);
    assert_int_equal(f.unloads[1], 1);
    assert_int_equal(srv_registry_resident(r), 20);
    use(r, 1); /* evicts 0 */
    assert_int_equal(state(r, 0), SRV_MODEL_UNLOADED);
    assert_int_equal(f.loads[1], 2);
    srv_model_status s;
    srv_registry_status(r, 1, &s);
    assert_int_equal(s.loads, 2);
    srv_registry_status(r, 0, &s);
    assert_int_equal(s.unloads, 1);
    srv_registry_free(r);
    for (int i = 0; i < 3; i++) assert_int_equal(f.live[i], 0);
}

static void test_busy_never_evicted(void **state_) {
    (void)state_;
    fake f;
    srv_registry *r = make(&f, 15, 3, 10); /* one fits */
    void *h0, *h1;
    assert_int_equal(srv_registry_acquire(r, 0, &h0, NULL), RYOT_OK);
    /* 0 is in use: 1 loads over the budget (soft), 0 stays */
    assert_int_equal(srv_registry_acquire(r, 1, &h1, NULL), RYOT_OK);
    assert_int_equal(state(r, 0), SRV_MODEL_READY);
    assert_int_equal(state(r, 1), SRV_MODEL_READY);
    assert_int_equal(srv_registry_resident(r), 20);
    /* 1 goes idle while 0 is busy: still over budget (the one just used stays) */
    srv_registry_release(r, 1);
    assert_int_equal(state(r, 1), SRV_MODEL_READY);
    assert_int_equal(state(r, 0), SRV_MODEL_READY);
    /* 0 goes idle: 1, now the least recently used, is unloaded */
    srv_registry_release(r, 0);
    assert_int_equal(state(r, 0), SRV_MODEL_READY);
    assert_int_equal(state(r, 1), SRV_MODEL_UNLOADED);
    assert_int_equal(srv_registry_resident(r), 10);
    /* a lone model larger than the budget still loads */
    f.bytes[2] = 100;
    use(r, 2);
    assert_int_equal(state(r, 0), SRV_MODEL_UNLOADED);
    assert_int_equal(state(r, 2), SRV_MODEL_READY); /* and stays: nothing else is loaded */
    use(r, 2);
    assert_int_equal(f.loads[2], 1);
    srv_registry_free(r);
}

static void test_measured_size(void **state_) {
    (void)state_;
    fake f;
    srv_registry *r = make(&f, 25, 3, 10);
    use(r, 0);
    use(r, 1);
    f.bytes[2] = 20; /* larger than its estimate of 10: after the load, 0 goes too */
    use(r, 2);
    assert_int_equal(state(r, 0), SRV_MODEL_UNLOADED);
    assert_int_equal(state(r, 1), SRV_MODEL_UNLOADED);
    assert_int_equal(srv_registry_resident(r), 20);
    srv_registry_free(r);
}

static void test_failures(void **state_) {
    (void)state_;
    fake f;
    srv_registry *r = make(&f, 0, 3, 10);
    f.fail[1] = RYOT_ERR_FORMAT;
    void *h;
    ryot_error e = {0};
    assert_int_equal(srv_registry_acquire(r, 1, &h, &e), RYOT_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "m1.gguf"));
    assert_null(h);
    assert_int_equal(state(r, 1), SRV_MODEL_FAILED);
    /* kept: not read again */
    memset(&e, 0, sizeof e);
    assert_int_equal(srv_registry_acquire(r, 1, &h, &e), RYOT_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "cannot load"));
    assert_int_equal(f.loads[1], 1);
    srv_model_status s;
    srv_registry_status(r, 1, &s);
    assert_int_equal(s.load_failures, 1);
    assert_int_equal(s.refs, 0);
    /* the others are unaffected */
    use(r, 0);
    /* a shortage is retried */
    f.fail[2] = RYOT_ERR_NOMEM;
    assert_int_equal(srv_registry_acquire(r, 2, &h, &e), RYOT_ERR_NOMEM);
    assert_int_equal(state(r, 2), SRV_MODEL_UNLOADED);
    f.fail[2] = RYOT_OK;
    use(r, 2);
    assert_int_equal(f.loads[2], 2);
    srv_registry_free(r);
}

typedef struct racer {
    srv_registry *r;
    int idx;
    ryot_status st;
    void *h;
} racer;

static void *race(void *arg) {
    racer *x = arg;
    x->st = srv_registry_acquire(x->r, x->idx, &x->h, NULL);
    return NULL;
}

static void test_concurrent_first_acquire(void **state_) {
    (void)state_;
    fake f;
    srv_registry *r = make(&f, 0, 2, 10);
    f.sleep_ms = 50;
    racer x[6];
    pthread_t t[6];
    for (int i = 0; i < 6; i++) {
        x[i] = (racer){.r = r, .idx = i % 2};
        pthread_create(&t[i], NULL, race, &x[i]);
    }
    for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(x[i].st, RYOT_OK);
        assert_int_equal((intptr_t)x[i].h, x[i].idx + 1);
    }
    assert_int_equal(f.loads[0], 1); /* one load each, shared by its three waiters */
    assert_int_equal(f.loads[1], 1);
    srv_model_status s;
    srv_registry_status(r, 0, &s);
    assert_int_equal(s.refs, 3);
    for (int i = 0; i < 6; i++) srv_registry_release(r, x[i].idx);
    srv_registry_free(r);
}

static int closed_calls;
static void on_close(void *ctx, int idx, void *handle) {
    (void)ctx;
    assert_int_equal((intptr_t)handle, idx + 1);
    closed_calls++;
}

static void test_close(void **state_) {
    (void)state_;
    fake f;
    srv_registry *r = make(&f, 0, 3, 10);
    use(r, 0);
    use(r, 2);
    closed_calls = 0;
    srv_registry_close(r, on_close, NULL);
    assert_int_equal(closed_calls, 2);
    void *h;
    ryot_error e = {0};
    assert_int_equal(srv_registry_acquire(r, 1, &h, &e), RYOT_ERR_UNAVAILABLE); /* no loads once closing */
    use(r, 0);                                                                   /* loaded ones still answer */
    srv_registry_free(r);
    assert_int_equal(f.live[0] + f.live[1] + f.live[2], 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_lazy_states),
        cmocka_unit_test(test_lru_budget),
        cmocka_unit_test(test_busy_never_evicted),
        cmocka_unit_test(test_measured_size),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_concurrent_first_acquire),
        cmocka_unit_test(test_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
