/* Worker pool with a barrier: ryot_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth)
 * on every thread (the caller is thread 0) and returns when all are done.
 * Workers spin briefly, then sleep; no allocation and no locks per call on
 * the hot path.  Ops split their rows by (ith, nth). */
#ifndef RYOT_CORE_THREADPOOL_H
#define RYOT_CORE_THREADPOOL_H

typedef struct ryot_pool ryot_pool;
typedef void (*ryot_pool_fn)(void *ctx, int ith, int nth);

ryot_pool *ryot_pool_new(int n_threads); /* NULL on failure */
void ryot_pool_free(ryot_pool *pool);
int ryot_pool_size(const ryot_pool *pool);
void ryot_pool_run(ryot_pool *pool, ryot_pool_fn fn, void *ctx);

/* Rows [*lo, *hi) of n for thread ith of nth, in contiguous chunks. */
static inline void ryot_split(long n, int ith, int nth, long *lo, long *hi) {
    long per = (n + nth - 1) / nth;
    *lo = per * ith < n ? per * ith : n;
    *hi = *lo + per < n ? *lo + per : n;
}

#endif
