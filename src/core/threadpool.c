/* Worker pool: a generation counter wakes the workers, a pending counter
 * joins them.
 *
 * run():   caller publishes fn/ctx, sets pending = n-1, bumps `gen` (release),
 *          wakes sleepers only if some worker announced it sleeps, runs its own
 *          share as thread 0, then spins until pending == 0 (acquire).
 * worker:  spins on `gen` for a while (the next op usually follows within
 *          microseconds), then announces itself in `n_sleeping` and futex-waits
 *          on `gen`.  The announce/recheck pair (both seq_cst) against the
 *          caller's bump/check (both seq_cst) guarantees no lost wake-up:
 *          either the worker sees the new gen, or the caller sees the sleeper.
 * No allocation, no mutex, no syscall on the hot path (futex only when a
 * worker actually slept). */
#include "core/threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
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
/* The caller waiting for a straggler yields only after ~2 ms of spinning
 * (a preempted worker on an oversubscribed machine). */
#define POOL_SPIN_CALLER (1 << 16)

typedef struct pool_worker {
    struct ryot_pool *pool;
    int ith;
    pthread_t thread;
} pool_worker;

struct ryot_pool {
    int n;
    pool_worker *workers; /* n-1 entries; thread 0 is the caller */
    ryot_pool_fn fn;
    void *ctx;
    bool running;         /* caller-side reentrancy check */
    _Alignas(64) atomic_uint gen;
    _Alignas(64) atomic_int pending;
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
        p->fn(p->ctx, w->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

ryot_pool *ryot_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    ryot_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
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
            w->ith = i;
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

void ryot_pool_run(ryot_pool *p, ryot_pool_fn fn, void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    RYOT_ASSERT(!p->running); /* not reentrant: fn must not call ryot_pool_run */
    p->running = true;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/ctx/pending */
    if (atomic_load(&p->n_sleeping) > 0) futex_wake_all(&p->gen);
    fn(ctx, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        if (++spins < POOL_SPIN_CALLER) {
            cpu_relax();
        } else {
            sched_yield();
            spins = 0;
        }
    }
    p->running = false;
}
