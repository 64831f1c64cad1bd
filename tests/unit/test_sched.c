/* Scheduler policy: tier order, shortest job first, FIFO ties, ageing at its
 * exact boundaries, queue limit and requeue, removal, per-tier counts,
 * foreach with removal, victim choice, tier names; and a randomized run
 * against a brute-force reference of the order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "sched/sched.h"

static sched *make(int max_queue, int64_t age_ms) {
    sched_params p = sched_params_default();
    p.max_queue = max_queue;
    p.age_ms = age_ms;
    sched *s = NULL;
    ryot_error err = {0};
    ryot_status st = sched_new(&p, &s, &err);
    if (st != RYOT_OK) fprintf(stderr, "sched_new: %s\n", err.msg);
    assert_int_equal(st, RYOT_OK);
    assert_non_null(s);
    return s;
}

static sched_item item(int tier, int64_t cost, int64_t arrival) {
    return (sched_item){.tier = tier, .cost = cost, .arrival_ms = arrival};
}

static void push_ok(sched *s, sched_item *it) {
    assert_int_equal(sched_push(s, it, false), RYOT_OK);
    assert_true(it->queued);
}

/* ---------------------------------------------------------------- tests */

static void test_params(void **state) {
    (void)state;
    sched_params p = sched_params_default();
    assert_int_equal(p.age_ms, 2000);
    assert_true(p.max_queue > 0);
    const int64_t want[SCHED_N_TIERS] = {50, 250, 1000, 5000, 30000};
    for (int t = 0; t < SCHED_N_TIERS; t++) assert_int_equal(p.target_ms[t], want[t]);

    sched *s = NULL;
    ryot_error err = {0};
    assert_int_equal(sched_new(NULL, &s, &err), RYOT_OK); /* defaults */
    assert_int_equal(sched_get_params(s)->age_ms, 2000);
    assert_int_equal(sched_get_params(s)->target_ms[SCHED_BACKGROUND], 30000);
    sched_free(s);
    sched_free(NULL);

    p.max_queue = -1;
    s = (sched *)1;
    assert_int_equal(sched_new(&p, &s, &err), RYOT_ERR_INVALID);
    assert_null(s);
    assert_non_null(strstr(err.msg, "max_queue"));
    p = sched_params_default();
    p.target_ms[SCHED_LOW] = -5;
    assert_int_equal(sched_new(&p, &s, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "low"));

    p = sched_params_default();
    p.max_queue = 7;
    p.age_ms = 123;
    p.target_ms[0] = 9;
    assert_int_equal(sched_new(&p, &s, &err), RYOT_OK);
    assert_int_equal(sched_get_params(s)->max_queue, 7);
    assert_int_equal(sched_get_params(s)->age_ms, 123);
    assert_int_equal(sched_get_params(s)->target_ms[0], 9);
    sched_free(s);
}

static void test_empty(void **state) {
    (void)state;
    sched *s = make(0, 2000);
    assert_null(sched_peek(s, 0));
    assert_null(sched_pop(s, 0));
    assert_int_equal(sched_waiting(s), 0);
    for (int t = 0; t < SCHED_N_TIERS; t++) assert_int_equal(sched_waiting_tier(s, t), 0);
    assert_int_equal(sched_waiting_tier(s, -1), 0);
    assert_int_equal(sched_waiting_tier(s, SCHED_N_TIERS), 0);
    sched_free(s);
}

static void test_tier_order(void **state) {
    (void)state;
    sched *s = make(0, 0); /* no ageing */
    sched_item it[SCHED_N_TIERS];
    /* pushed lowest tier first, cheapest in the lowest tiers: tier still wins */
    for (int k = 0; k < SCHED_N_TIERS; k++) {
        int tier = SCHED_N_TIERS - 1 - k;
        it[tier] = item(tier, 10 + 100 * tier, k);
        push_ok(s, &it[tier]);
    }
    it[SCHED_BACKGROUND].cost = 1;
    assert_int_equal(sched_waiting(s), SCHED_N_TIERS);
    for (int t = 0; t < SCHED_N_TIERS; t++) {
        assert_ptr_equal(sched_peek(s, 1000000), &it[t]);
        assert_ptr_equal(sched_pop(s, 1000000), &it[t]);
        assert_false(it[t].queued);
        assert_int_equal(sched_waiting(s), SCHED_N_TIERS - 1 - t);
    }
    assert_null(sched_pop(s, 0));
    sched_free(s);
}

static void test_sjf_and_fifo(void **state) {
    (void)state;
    sched *s = make(0, 2000);
    sched_item a = item(SCHED_NORMAL, 300, 0), b = item(SCHED_NORMAL, 100, 5), c = item(SCHED_NORMAL, 200, 1);
    sched_item d = item(SCHED_NORMAL, 100, 2); /* same cost as b, earlier arrival */
    sched_item e = item(SCHED_NORMAL, 100, 2); /* same as d in everything but push order */
    push_ok(s, &a);
    push_ok(s, &b);
    push_ok(s, &c);
    push_ok(s, &e);
    push_ok(s, &d);
    assert_true(e.seq_no < d.seq_no);
    assert_true(a.seq_no < b.seq_no && b.seq_no < c.seq_no);
    /* now 10 ms: nobody has aged a tier */
    sched_item *want[] = {&e, &d, &b, &c, &a};
    for (int i = 0; i < 5; i++) assert_ptr_equal(sched_pop(s, 10), want[i]);
    sched_free(s);
}

/* Ageing: effective tier = max(0, tier - floor(waited / age_ms)). */
static void test_ageing_boundaries(void **state) {
    (void)state;
    const int64_t age = 2000, t0 = 1000;
    sched *s = make(0, age);
    sched_item bg = item(SCHED_BACKGROUND, 50, t0);
    push_ok(s, &bg);

    /* A fresh critical item of higher cost: before 4 * age the background
     * item is at best "high" and loses; at exactly 4 * age it is critical
     * too and wins on cost. */
    sched_item crit = item(SCHED_CRITICAL, 500, t0 + 4 * age - 1);
    push_ok(s, &crit);
    assert_ptr_equal(sched_peek(s, t0 + 4 * age - 1), &crit);
    assert_ptr_equal(sched_peek(s, t0 + 4 * age), &bg);
    assert_ptr_equal(sched_peek(s, t0 + 100 * age), &bg); /* never past critical: stays ahead on cost */
    sched_remove(s, &crit);

    /* one tier per age_ms: against a fresh item of tier k with higher cost,
     * the background item wins from exactly (4 - k) * age on */
    for (int k = SCHED_CRITICAL; k <= SCHED_LOW; k++) {
        int64_t at = t0 + (SCHED_BACKGROUND - k) * age;
        sched_item other = item(k, 500, at); /* fresh at `at` (and not yet arrived just before) */
        push_ok(s, &other);
        assert_ptr_equal(sched_peek(s, at - 1), &other);
        assert_ptr_equal(sched_peek(s, at), &bg);
        sched_remove(s, &other);
    }

    /* equal effective tier and cost: the earlier arrival wins, even against a
     * higher nominal tier */
    sched_item hi = item(SCHED_HIGH, 50, t0 + 1);
    push_ok(s, &hi);
    assert_ptr_equal(sched_peek(s, t0 + 4 * age + 1), &bg); /* both critical there: bg arrived first */
    assert_ptr_equal(sched_peek(s, t0 + 4 * age - 1), &hi); /* bg still tier 1, hi already 0 */
    assert_ptr_equal(sched_peek(s, t0 + 2 * age), &hi);     /* bg 3, hi 0 */
    /* the clock behind arrival counts as no wait */
    assert_ptr_equal(sched_peek(s, 0), &hi);
    sched_remove(s, &hi);
    sched_remove(s, &bg);
    sched_free(s);

    /* no ageing (age_ms <= 0): tiers never move */
    s = make(0, 0);
    bg = item(SCHED_BACKGROUND, 1, 0);
    crit = item(SCHED_CRITICAL, 1000, 100);
    push_ok(s, &bg);
    push_ok(s, &crit);
    assert_ptr_equal(sched_peek(s, INT64_MAX), &crit);
    sched_free(s);

    /* extreme times do not overflow */
    s = make(0, 1);
    bg = item(SCHED_BACKGROUND, 1, INT64_MIN);
    crit = item(SCHED_CRITICAL, 2, 0);
    push_ok(s, &bg);
    push_ok(s, &crit);
    assert_ptr_equal(sched_peek(s, INT64_MAX), &bg);
    assert_ptr_equal(sched_peek(s, INT64_MIN), &crit);
    sched_free(s);
}

static void test_max_queue_and_requeue(void **state) {
    (void)state;
    sched *s = make(3, 2000);
    sched_item it[5];
    for (int i = 0; i < 3; i++) {
        it[i] = item(SCHED_NORMAL, 10 * (i + 1), i);
        push_ok(s, &it[i]);
    }
    it[3] = item(SCHED_CRITICAL, 1, 3);
    assert_int_equal(sched_push(s, &it[3], false), RYOT_ERR_BUSY);
    assert_false(it[3].queued);
    assert_int_equal(sched_waiting(s), 3);
    assert_int_equal(sched_waiting_tier(s, SCHED_CRITICAL), 0);
    assert_ptr_equal(sched_peek(s, 3), &it[0]);

    /* a preempted request comes back even over the limit, with its arrival
     * and seq_no, and takes its old place */
    sched_item *run = sched_pop(s, 3);
    assert_ptr_equal(run, &it[0]);
    uint64_t seq = run->seq_no;
    push_ok(s, &it[3]); /* room again: fills it */
    assert_int_equal(sched_waiting(s), 3);
    assert_int_equal(sched_push(s, run, true), RYOT_OK);
    assert_true(run->queued);
    assert_int_equal(run->seq_no, seq);
    assert_int_equal(sched_waiting(s), 4);
    it[4] = item(SCHED_NORMAL, 1, 4);
    assert_int_equal(sched_push(s, &it[4], false), RYOT_ERR_BUSY);
    assert_ptr_equal(sched_pop(s, 4), &it[3]);
    assert_ptr_equal(sched_pop(s, 4), &it[0]);
    assert_int_equal(sched_push(s, &it[4], false), RYOT_OK); /* 2 waiting: room */
    sched_free(s);

    /* 0: unlimited */
    s = make(0, 2000);
    static sched_item many[5000];
    for (int i = 0; i < 5000; i++) {
        many[i] = item(i % SCHED_N_TIERS, 5000 - i, i);
        push_ok(s, &many[i]);
    }
    assert_int_equal(sched_waiting(s), 5000);
    assert_int_equal(sched_waiting_tier(s, SCHED_HIGH), 1000);
    /* now = 0: no ageing; critical, cheapest first = the last critical pushed */
    assert_ptr_equal(sched_peek(s, 0), &many[4995]);
    sched_free(s);

    /* a bad tier is refused and left unqueued */
    s = make(0, 2000);
    sched_item bad = item(SCHED_N_TIERS, 1, 0);
    assert_int_equal(sched_push(s, &bad, false), RYOT_ERR_INVALID);
    bad.tier = -1;
    assert_int_equal(sched_push(s, &bad, true), RYOT_ERR_INVALID);
    assert_false(bad.queued);
    assert_int_equal(sched_waiting(s), 0);
    sched_free(s);
}

static void test_remove_and_counts(void **state) {
    (void)state;
    sched *s = make(0, 2000);
    sched_item it[6];
    int tiers[6] = {SCHED_HIGH, SCHED_HIGH, SCHED_LOW, SCHED_BACKGROUND, SCHED_HIGH, SCHED_CRITICAL};
    for (int i = 0; i < 6; i++) {
        it[i] = item(tiers[i], 10, i);
        push_ok(s, &it[i]);
    }
    int want[SCHED_N_TIERS] = {1, 3, 0, 1, 1};
    for (int t = 0; t < SCHED_N_TIERS; t++) assert_int_equal(sched_waiting_tier(s, t), want[t]);

    sched_remove(s, &it[5]); /* the one that would run next */
    assert_false(it[5].queued);
    assert_int_equal(sched_waiting_tier(s, SCHED_CRITICAL), 0);
    assert_ptr_equal(sched_peek(s, 10), &it[0]);
    sched_remove(s, &it[5]); /* not queued: no-op */
    assert_int_equal(sched_waiting(s), 5);
    sched_remove(s, &it[1]); /* a middle one */
    sched_remove(s, &it[4]); /* the tail */
    sched_remove(s, &it[0]); /* the head */
    assert_int_equal(sched_waiting(s), 2);
    assert_int_equal(sched_waiting_tier(s, SCHED_HIGH), 0);
    assert_ptr_equal(sched_pop(s, 10), &it[2]);
    assert_ptr_equal(sched_pop(s, 10), &it[3]);
    assert_null(sched_pop(s, 10));
    /* removed items can be pushed again */
    push_ok(s, &it[1]);
    assert_ptr_equal(sched_pop(s, 10), &it[1]);
    sched_free(s);
}

typedef struct visit_ctx {
    sched *s;
    int64_t deadline; /* items that arrived before it time out */
    int visited, removed;
    sched_item *seen[16];
} visit_ctx;

static void expire(sched_item *it, void *arg) {
    visit_ctx *v = arg;
    v->seen[v->visited++] = it;
    if (it->arrival_ms < v->deadline) {
        sched_remove(v->s, it);
        v->removed++;
    }
}

static void test_foreach_with_removal(void **state) {
    (void)state;
    sched *s = make(0, 2000);
    sched_item it[8];
    for (int i = 0; i < 8; i++) {
        /* arrivals 0,100,0,100,...: every other one expires, the first and last included */
        it[i] = item(i % SCHED_N_TIERS, 1, (i % 2) ? 100 : 0);
        push_ok(s, &it[i]);
    }
    it[7].arrival_ms = 0;
    visit_ctx v = {.s = s, .deadline = 50};
    sched_foreach(s, expire, &v);
    assert_int_equal(v.visited, 8);
    for (int i = 0; i < 8; i++) assert_ptr_equal(v.seen[i], &it[i]); /* push order, each once */
    assert_int_equal(v.removed, 5);
    assert_int_equal(sched_waiting(s), 3);
    for (int i = 0; i < 8; i++) assert_int_equal(it[i].queued, it[i].arrival_ms >= 50);

    /* everything removed: the queue is empty and still usable */
    v = (visit_ctx){.s = s, .deadline = INT64_MAX};
    sched_foreach(s, expire, &v);
    assert_int_equal(v.visited, 3);
    assert_int_equal(sched_waiting(s), 0);
    assert_null(sched_peek(s, 0));
    push_ok(s, &it[0]);
    assert_ptr_equal(sched_pop(s, 0), &it[0]);
    v = (visit_ctx){.s = s};
    sched_foreach(s, expire, &v); /* empty: no call */
    assert_int_equal(v.visited, 0);
    sched_free(s);
}

static void test_pick_victim(void **state) {
    (void)state;
    assert_int_equal(sched_pick_victim(NULL, 0), -1);
    sched_item a = item(SCHED_NORMAL, 10, 100), b = item(SCHED_LOW, 10, 50), c = item(SCHED_LOW, 10, 70);
    sched_item d = item(SCHED_CRITICAL, 10, 900), e = item(SCHED_LOW, 10, 70);
    a.seq_no = 1, b.seq_no = 2, c.seq_no = 3, d.seq_no = 4, e.seq_no = 5;
    sched_item *run[] = {&a, &b, &c, &d};
    assert_int_equal(sched_pick_victim(run, 4), 2); /* lowest tier (low), newest arrival */
    assert_int_equal(sched_pick_victim(run, 1), 0);
    sched_item *run2[] = {&e, &a, &c, &b};
    assert_int_equal(sched_pick_victim(run2, 4), 0); /* c and e tie on arrival: larger seq_no */
    sched_item *run3[] = {&c, &e};
    assert_int_equal(sched_pick_victim(run3, 2), 1);
    sched_item f = item(SCHED_BACKGROUND, 1, 0);
    sched_item *run4[] = {&d, &e, &f, &a};
    assert_int_equal(sched_pick_victim(run4, 4), 2); /* the oldest, but background */
}

static void test_tier_names(void **state) {
    (void)state;
    const char *names[SCHED_N_TIERS] = {"critical", "high", "normal", "low", "background"};
    for (int t = 0; t < SCHED_N_TIERS; t++) {
        assert_string_equal(sched_tier_name(t), names[t]);
        assert_int_equal(sched_tier_parse(sched_tier_name(t)), t);
        char digit[2] = {(char)('0' + t), 0};
        assert_int_equal(sched_tier_parse(digit), t);
    }
    assert_string_equal(sched_tier_name(-1), "unknown");
    assert_string_equal(sched_tier_name(SCHED_N_TIERS), "unknown");
    const char *bad[] = {"", "5", "urgent", "-1", "Critical", "HIGH", "normal ", " low", "00", "1x", "backgroundx",
                         "crit", "9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(sched_tier_parse(bad[i]), -1);
    assert_int_equal(sched_tier_parse(NULL), -1);
}

/* ---------------------------------------------------------------- random
 * Random pushes, pops, removals and requeues at advancing (sometimes
 * repeated) times, each pop checked against a brute-force minimum of the
 * documented key over the model's set of waiting items. */

#define RN_ITEMS 300

static int ref_eff(const sched_item *it, int64_t now, int64_t age) {
    if (age <= 0) return it->tier;
    int64_t waited = now > it->arrival_ms ? now - it->arrival_ms : 0;
    int64_t t = it->tier - waited / age;
    return t < 0 ? 0 : (int)t;
}

static bool ref_before(const sched_item *a, const sched_item *b, int64_t now, int64_t age) {
    int ea = ref_eff(a, now, age), eb = ref_eff(b, now, age);
    if (ea != eb) return ea < eb;
    if (a->cost != b->cost) return a->cost < b->cost;
    if (a->arrival_ms != b->arrival_ms) return a->arrival_ms < b->arrival_ms;
    return a->seq_no < b->seq_no;
}

static void test_random_against_reference(void **state) {
    (void)state;
    const int64_t age = 100;
    const int max_queue = 40;
    sched *s = make(max_queue, age);
    static sched_item it[RN_ITEMS];
    bool waiting[RN_ITEMS] = {0}, running[RN_ITEMS] = {0};
    memset(it, 0, sizeof it);
    ryot_rng rng;
    ryot_rng_seed(&rng, 42);
    int64_t now = 0;
    int n_busy = 0, n_pops = 0, n_aged = 0;
    for (int op = 0; op < 30000; op++) {
        now += (int64_t)(ryot_rng_next(&rng) % 30);
        int k = (int)(ryot_rng_next(&rng) % RN_ITEMS);
        /* phases of 500 ops: arrivals outpace pops (the queue fills), then drain */
        int r = (int)(ryot_rng_next(&rng) % 100);
        bool filling = (op / 500) % 2 == 0;
        int p_push = filling ? 50 : 20, p_pop = p_push + (filling ? 10 : 50);
        int n_wait = 0, n_tier[SCHED_N_TIERS] = {0};
        for (int i = 0; i < RN_ITEMS; i++)
            if (waiting[i]) n_wait++, n_tier[it[i].tier]++;
        if (r < p_push) {
            if (waiting[k] || running[k]) continue;
            it[k] = item((int)(ryot_rng_next(&rng) % SCHED_N_TIERS), (int64_t)(ryot_rng_next(&rng) % 8),
                         now - (int64_t)(ryot_rng_next(&rng) % 3));
            ryot_status st = sched_push(s, &it[k], false);
            if (n_wait >= max_queue) {
                assert_int_equal(st, RYOT_ERR_BUSY);
                assert_false(it[k].queued);
                n_busy++;
            } else {
                assert_int_equal(st, RYOT_OK);
                waiting[k] = true;
            }
        } else if (r < p_pop) {
            sched_item *want = NULL;
            for (int i = 0; i < RN_ITEMS; i++)
                if (waiting[i] && (!want || ref_before(&it[i], want, now, age))) want = &it[i];
            sched_item *got = sched_pop(s, now);
            assert_ptr_equal(got, want);
            if (got) {
                int i = (int)(got - it);
                waiting[i] = false;
                running[i] = true;
                n_pops++;
                n_aged += ref_eff(got, now, age) < got->tier;
            }
        } else if (r < p_pop + 10) {
            if (!running[k]) continue;
            uint64_t seq = it[k].seq_no;
            assert_int_equal(sched_push(s, &it[k], true), RYOT_OK); /* preempted: back in */
            assert_int_equal(it[k].seq_no, seq);
            running[k] = false;
            waiting[k] = true;
        } else if (r < p_pop + 35) {
            running[k] = false; /* finished (or was not running) */
        } else {
            sched_remove(s, &it[k]); /* cancel (a no-op unless waiting) */
            waiting[k] = false;
        }
        n_wait = 0;
        memset(n_tier, 0, sizeof n_tier);
        for (int i = 0; i < RN_ITEMS; i++) {
            assert_int_equal(it[i].queued, waiting[i]);
            if (waiting[i]) n_wait++, n_tier[it[i].tier]++;
        }
        assert_int_equal(sched_waiting(s), n_wait);
        for (int t = 0; t < SCHED_N_TIERS; t++) assert_int_equal(sched_waiting_tier(s, t), n_tier[t]);
    }
    fprintf(stderr, "random: %d refused (queue full), %d pops (%d aged)\n", n_busy, n_pops, n_aged);
    assert_true(n_busy > 100);
    assert_true(n_pops > 1000);
    assert_true(n_aged > 100);
    sched_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_tier_order),
        cmocka_unit_test(test_sjf_and_fifo),
        cmocka_unit_test(test_ageing_boundaries),
        cmocka_unit_test(test_max_queue_and_requeue),
        cmocka_unit_test(test_remove_and_counts),
        cmocka_unit_test(test_foreach_with_removal),
        cmocka_unit_test(test_pick_victim),
        cmocka_unit_test(test_tier_names),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
