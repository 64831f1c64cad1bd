/* Worker pool: every share of every run executes exactly once with its own
 * index, results are visible to the caller on return, and workers that fell
 * asleep (futex) wake for the next run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/threadpool.h"

typedef struct job {
    int nth_seen[64];
    long sum[64]; /* per thread: plain writes the caller must see */
    atomic_int calls;
    int round;
} job;

static void work(void *arg, int ith, int nth) {
    job *j = arg;
    j->nth_seen[ith] = nth;
    j->sum[ith] += j->round + ith;
    atomic_fetch_add(&j->calls, 1);
}

static void run_rounds(ryot_pool *p, int rounds, int sleep_every) {
    const int n = ryot_pool_size(p);
    job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.calls, 0);
    long expect[64] = {0};
    for (int r = 0; r < rounds; r++) {
        j.round = r;
        ryot_pool_run(p, work, &j);
        assert_int_equal(atomic_load(&j.calls), (r + 1) * n);
        for (int t = 0; t < n; t++) {
            expect[t] += r + t;
            assert_int_equal(j.sum[t], expect[t]);
            assert_int_equal(j.nth_seen[t], n);
        }
        if (sleep_every && r % sleep_every == sleep_every - 1) {
            /* long enough for workers to give up spinning and sleep */
            struct timespec ts = {0, 150 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static void test_pool_sizes(void **st) {
    (void)st;
    for (int n = 1; n <= 4; n++) {
        ryot_pool *p = ryot_pool_new(n);
        assert_non_null(p);
        assert_int_equal(ryot_pool_size(p), n);
        run_rounds(p, n <= 2 ? 2000 : 50, 0); /* more threads than cores here: keep it short */
        ryot_pool_free(p);
    }
}

static void test_pool_run_n(void **st) {
    (void)st;
    ryot_pool *p = ryot_pool_new(2);
    assert_non_null(p);
    job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.calls, 0);
    for (int r = 0; r < 500; r++) {
        const int n = 1 + r % 37;
        j.round = 0;
        for (int t = 0; t < 64; t++) j.sum[t] = 0;
        atomic_store(&j.calls, 0);
        ryot_pool_run_n(p, n, work, &j);
        assert_int_equal(atomic_load(&j.calls), n);
        for (int t = 0; t < n; t++) {
            assert_int_equal(j.sum[t], t);
            assert_int_equal(j.nth_seen[t], n);
        }
    }
    ryot_pool_free(p);
}

static void test_pool_sleep_wake(void **st) {
    (void)st;
    ryot_pool *p = ryot_pool_new(3);
    assert_non_null(p);
    run_rounds(p, 6, 2);
    ryot_pool_free(p);
}

static void test_pool_free_idle(void **st) {
    (void)st;
    /* freed without ever running, and freed while workers sleep */
    ryot_pool *p = ryot_pool_new(2);
    assert_non_null(p);
    ryot_pool_free(p);
    p = ryot_pool_new(2);
    run_rounds(p, 1, 0);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ryot_pool_free(p);
    ryot_pool_free(NULL);
}

static void test_split(void **st) {
    (void)st;
    for (long n = 0; n < 50; n++)
        for (int nth = 1; nth <= 7; nth++) {
            long next = 0;
            for (int i = 0; i < nth; i++) {
                long lo, hi;
                ryot_split(n, i, nth, &lo, &hi);
                assert_int_equal(lo, next);
                assert_true(hi >= lo && hi <= n);
                next = hi;
            }
            assert_int_equal(next, n);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_pool_sizes),
        cmocka_unit_test(test_pool_run_n),
        cmocka_unit_test(test_pool_sleep_wake),
        cmocka_unit_test(test_pool_free_idle),
    };
    return cmocka_run_group_tests_name("threadpool", tests, NULL, NULL);
}
