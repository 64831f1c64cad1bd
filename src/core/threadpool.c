/* Worker pool with claimable shares.
 *
 * One 64-bit word describes the current run: job id (24 bits), share count n
 * (20 bits) and the next unclaimed share (20 bits).  A thread claims share i
 * by a CAS from (job, n, i) to (job, n, i+1), runs it, and counts it in
 * `done`; the caller returns when done == n.  Because the claim is a CAS on
 * the whole word, a thread that read a stale run can never claim into a newer
 * one, and a successful claim proves its run is still in progress, so the run
 * descriptor (fn, ctx) it then reads is that run's: the caller rewrites it
 * only after done == n, which needs this share.
 *
 * run():   caller writes fn/ctx, resets done, publishes the word (release),
 *          bumps `gen` to wake workers (futex only if one announced it
 *          sleeps), then claims shares itself and finally spins on `done`.
 * worker:  spins on `gen` (~2 ms with pause), then announces itself in
 *          n_sleeping and futex-waits; the announce/recheck pair (seq_cst)
 *          against the caller's bump/check (seq_cst) loses no wake-up.
 * No allocation, no mutex, no syscall on the hot path. */
#include "core/threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/error.h"

/* A waiting worker spins with pause (~27 ns each on the Zen dev box) for
 * ~2 ms, which bridges the ops of a forward pass and the gap between two
 * decoded tokens (sampling, detokenizing), then sleeps on the futex.  No
 * sched_yield while spinning: next to a niced background job a yield hands it
 * the core for a whole tick (milliseconds per op). */
#define POOL_SPIN_WORKER (1 << 16)
/* The caller waiting for a share in progress yields only after ~2 ms of
 * spinning (its worker was preempted on an oversubscribed machine). */
#define POOL_SPIN_CALLER (1 << 16)

#define CLAIM_BITS 20
#define CLAIM_MASK ((1ull << CLAIM_BITS) - 1)
#define CLAIM_JOB_SHIFT (2 * CLAIM_BITS)

typedef struct pool_worker {
    struct ryot_pool *pool;
    pthread_t thread;
} pool_worker;

struct ryot_pool {
    int n;
    pool_worker *workers; /* n-1 entries; the caller is the n-th thread */
    ryot_pool_fn fn;      /* current run; written by the caller between runs */
    void *ctx;
    uint64_t job;         /* caller-side run counter */
    bool running;         /* caller-side reentrancy check */
    _Alignas(64) atomic_uint_fast64_t claim;
    _Alignas(64) atomic_int done;
    _Alignas(64) atomic_uint gen;
    _Alignas(64) atomic_int n_sleeping;
    atomic_bool stop;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void futex_wait(atomic_uint *addr, unsigned expected) {
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *addr) {
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Claims and runs shares of whatever run is current until none is left. */
static void claim_shares(ryot_pool *p) {
    for (;;) {
        uint_fast64_t v = atomic_load_explicit(&p->claim, memory_order_acquire);
        const int n = (int)((v >> CLAIM_BITS) & CLAIM_MASK), i = (int)(v & CLAIM_MASK);
        if (i >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        p->fn(p->ctx, i, n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *pool_worker_main(void *arg) {
    pool_worker *w = arg;
    ryot_pool *p = w->pool;
    unsigned seen = 0; /* gen's initial value: a run issued before this thread started is not missed */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
            if (++spins < POOL_SPIN_WORKER) {
                cpu_relax();
                continue;
            }
            atomic_fetch_add(&p->n_sleeping, 1);
            if (atomic_load(&p->gen) == seen) futex_wait(&p->gen, seen);
            atomic_fetch_sub(&p->n_sleeping, 1);
            spins = 0;
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        claim_shares(p);
    }
    return NULL;
}

ryot_pool *ryot_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    ryot_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, false);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            free(p);
            return NULL;
        }
        for (int i = 1; i < n_threads; i++) {
            pool_worker *w = &p->workers[i - 1];
            w->pool = p;
            if (pthread_create(&w->thread, NULL, pool_worker_main, w) != 0) {
                p->n = i; /* join the ones that started */
                ryot_pool_free(p);
                return NULL;
            }
        }
    }
    return p;
}

void ryot_pool_free(ryot_pool *p) {
    if (!p) return;
    if (p->n > 1) {
        atomic_store(&p->stop, true);
        atomic_fetch_add(&p->gen, 1);
        futex_wake_all(&p->gen);
        for (int i = 1; i < p->n; i++) pthread_join(p->workers[i - 1].thread, NULL);
    }
    free(p->workers);
    free(p);
}

int ryot_pool_size(const ryot_pool *p) { return p->n; }

void ryot_pool_run_n(ryot_pool *p, int n, ryot_pool_fn fn, void *ctx) {
    RYOT_ASSERT(n >= 1 && n <= RYOT_POOL_MAX_SHARES);
    if (p->n == 1 || n == 1) {
        for (int i = 0; i < n; i++) fn(ctx, i, n);
        return;
    }
    RYOT_ASSERT(!p->running); /* not reentrant: fn must not call ryot_pool_run */
    p->running = true;
    p->fn = fn;
    p->ctx = ctx;
    p->job++;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    const uint_fast64_t word = ((p->job & ((1ull << 24) - 1)) << CLAIM_JOB_SHIFT) | ((uint_fast64_t)n << CLAIM_BITS);
    atomic_store_explicit(&p->claim, word, memory_order_release);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: pairs with the sleepers' announce */
    if (atomic_load(&p->n_sleeping) > 0) futex_wake_all(&p->gen);
    claim_shares(p);
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) != n) {
        if (++spins < POOL_SPIN_CALLER) {
            cpu_relax();
        } else {
            sched_yield();
            spins = 0;
        }
    }
    p->running = false;
}

void ryot_pool_run(ryot_pool *p, ryot_pool_fn fn, void *ctx) { ryot_pool_run_n(p, p->n, fn, ctx); }
