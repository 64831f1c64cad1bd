/* Request scheduler policy: the waiting queue with five priority tiers,
 * shortest job first inside a tier, ageing, and the choice of a preemption
 * victim.  Pure bookkeeping over caller-owned items (intrusive), no locks,
 * no allocation after sched_new; the engine thread owns it.
 *
 * Order (sched_peek / sched_pop): the waiting item with the smallest
 * (effective tier, cost, arrival, seq_no) where
 *   effective tier = max(0, tier - floor(waited_ms / age_ms))
 * i.e. a request gains one tier per age_ms it waits (default 2000 ms), so a
 * background request waits at most 4 * age_ms before competing with
 * critical ones and nothing starves.  cost = prompt tokens + max_tokens.
 *
 * Per-tier time-to-first-token targets (defaults 50, 250, 1000, 5000,
 * 30000 ms) are validated and kept with the tiers, but the order above does
 * not use them: the serving loop (runner.h) only counts, per tier, the
 * sequences whose first token met or missed its target. */
#ifndef RYOT_SCHED_SCHED_H
#define RYOT_SCHED_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

typedef enum sched_tier {
    SCHED_CRITICAL = 0,
    SCHED_HIGH,
    SCHED_NORMAL,
    SCHED_LOW,
    SCHED_BACKGROUND,
    SCHED_N_TIERS
} sched_tier;

/* "critical".."background"; "unknown" outside 0..4 */
const char *sched_tier_name(int tier);
/* name (lowercase, exact) or "0".."4" -> tier; -1 when unknown or NULL */
int sched_tier_parse(const char *s);

typedef struct sched_item {
    int tier;           /* sched_tier */
    int64_t cost;       /* prompt tokens + max_tokens */
    int64_t arrival_ms; /* when it first arrived (kept across preemption) */
    uint64_t seq_no;    /* set by the first sched_push (kept on requeue): arrival order tie-break */
    void *owner;        /* the caller's request */
    /* internal */
    struct sched_item *prev, *next;
    bool queued;
} sched_item;

typedef struct sched_params {
    int max_queue;                     /* waiting items allowed; 0: unlimited (default 1024) */
    int64_t age_ms;                    /* ageing step; <= 0: no ageing */
    int64_t target_ms[SCHED_N_TIERS];  /* TTFT targets */
} sched_params;

sched_params sched_params_default(void);

typedef struct sched sched;

ryot_status sched_new(const sched_params *p, sched **out, ryot_error *err);
void sched_free(sched *s);
const sched_params *sched_get_params(const sched *s);

/* Queues an item; RYOT_ERR_BUSY (queue full) leaves it unqueued, and so does
 * RYOT_ERR_INVALID (tier outside 0..4).  A preempted request is pushed again
 * with its original arrival_ms and `requeue` true (never refused for a full
 * queue; keeps the seq_no of its first push).  Pushing a queued item is a
 * bug (asserted). */
ryot_status sched_push(sched *s, sched_item *it, bool requeue);
/* The item that should run next at time now_ms (NULL when empty); pop removes
 * it.  O(waiting).  A clock behind arrival_ms counts as no wait. */
sched_item *sched_peek(sched *s, int64_t now_ms);
sched_item *sched_pop(sched *s, int64_t now_ms);
/* Removes a queued item (cancel, timeout); no-op when not queued. */
void sched_remove(sched *s, sched_item *it);
int sched_waiting(const sched *s);
int sched_waiting_tier(const sched *s, int tier);
/* Visits every waiting item (for timeouts), in push order; fn may call
 * sched_remove on the item it is given (on no other). */
void sched_foreach(sched *s, void (*fn)(sched_item *it, void *arg), void *arg);

/* Preemption victim among n running items: the lowest tier (largest tier
 * number), and among those the newest (largest arrival_ms, then seq_no).
 * Returns its index, -1 when n == 0. */
int sched_pick_victim(sched_item *const *running, int n);

#endif
