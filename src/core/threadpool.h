/* Worker pool: ryot_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once for
 * every share ith in [0, nth) and returns when all are done; nth is the pool
 * size.  Ops split their rows by (ith, nth).
 *
 * Shares are claimed from a shared counter by whichever thread is free (the
 * caller included), so a worker that the OS has descheduled never holds up a
 * run it has not joined yet: the others take its share.  Consequently fn may
 * run several shares on one OS thread, in any order; ith names the share (use
 * it to pick per-share scratch), not the thread.  ryot_pool_run_n runs n
 * shares (any n >= 1) for finer load balancing.
 * Workers spin briefly, then sleep; no allocation and no locks per call. */
#ifndef RYOT_CORE_THREADPOOL_H
#define RYOT_CORE_THREADPOOL_H

typedef struct ryot_pool ryot_pool;
typedef void (*ryot_pool_fn)(void *ctx, int ith, int nth);

#define RYOT_POOL_MAX_SHARES ((1 << 20) - 1)

ryot_pool *ryot_pool_new(int n_threads); /* NULL on failure */
void ryot_pool_free(ryot_pool *pool);
int ryot_pool_size(const ryot_pool *pool);
void ryot_pool_run(ryot_pool *pool, ryot_pool_fn fn, void *ctx);
/* fn(ctx, i, n) for i in [0, n), 1 <= n <= RYOT_POOL_MAX_SHARES. */
void ryot_pool_run_n(ryot_pool *pool, int n, ryot_pool_fn fn, void *ctx);

/* Rows [*lo, *hi) of n for thread ith of nth, in contiguous chunks. */
static inline void ryot_split(long n, int ith, int nth, long *lo, long *hi) {
    long per = (n + nth - 1) / nth;
    *lo = per * ith < n ? per * ith : n;
    *hi = *lo + per < n ? *lo + per : n;
}

#endif
