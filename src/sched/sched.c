/* Request scheduler policy; the order and its contracts are in sched.h.
 *
 * The waiting items form one intrusive doubly linked list in push order.
 * Effective tiers change with time, so no order is kept between calls:
 * sched_peek scans every waiting item (queues are at most a few thousand
 * long, and a scan is one pass over a list of small records). */
#include "sched/sched.h"

#include <stdlib.h>
#include <string.h>

struct sched {
    sched_params p;
    sched_item *head, *tail; /* push order */
    int n_waiting;
    int n_tier[SCHED_N_TIERS];
    uint64_t next_seq;
};

static const char *const TIER_NAMES[SCHED_N_TIERS] = {"critical", "high", "normal", "low", "background"};

const char *sched_tier_name(int tier) {
    if (tier < 0 || tier >= SCHED_N_TIERS) return "unknown";
    return TIER_NAMES[tier];
}

int sched_tier_parse(const char *s) {
    if (!s) return -1;
    for (int t = 0; t < SCHED_N_TIERS; t++)
        if (strcmp(s, TIER_NAMES[t]) == 0) return t;
    if (s[0] >= '0' && s[0] < '0' + SCHED_N_TIERS && s[1] == 0) return s[0] - '0';
    return -1;
}

sched_params sched_params_default(void) {
    return (sched_params){
        .max_queue = 1024,
        .age_ms = 2000,
        .target_ms = {50, 250, 1000, 5000, 30000},
    };
}

ryot_status sched_new(const sched_params *p, sched **out, ryot_error *err) {
    *out = NULL;
    sched_params def = sched_params_default();
    if (!p) p = &def;
    if (p->max_queue < 0)
        return ryot_fail(err, RYOT_ERR_INVALID, "scheduler: max_queue %d must be >= 0", p->max_queue);
    for (int t = 0; t < SCHED_N_TIERS; t++)
        if (p->target_ms[t] < 0)
            return ryot_fail(err, RYOT_ERR_INVALID, "scheduler: %s target %lld ms must be >= 0", TIER_NAMES[t],
                             (long long)p->target_ms[t]);
    sched *s = calloc(1, sizeof *s);
    if (!s) return ryot_fail(err, RYOT_ERR_NOMEM, "scheduler: out of memory");
    s->p = *p;
    *out = s;
    return RYOT_OK;
}

void sched_free(sched *s) { free(s); }

const sched_params *sched_get_params(const sched *s) { return &s->p; }

ryot_status sched_push(sched *s, sched_item *it, bool requeue) {
    RYOT_ASSERT(!it->queued);
    if (it->tier < 0 || it->tier >= SCHED_N_TIERS) return RYOT_ERR_INVALID;
    if (!requeue && s->p.max_queue > 0 && s->n_waiting >= s->p.max_queue) return RYOT_ERR_BUSY;
    /* a preempted request keeps its place among equals */
    if (!requeue) it->seq_no = s->next_seq++;
    it->next = NULL;
    it->prev = s->tail;
    if (s->tail) s->tail->next = it;
    else s->head = it;
    s->tail = it;
    it->queued = true;
    s->n_waiting++;
    s->n_tier[it->tier]++;
    return RYOT_OK;
}

void sched_remove(sched *s, sched_item *it) {
    if (!it->queued) return;
    if (it->prev) it->prev->next = it->next;
    else s->head = it->next;
    if (it->next) it->next->prev = it->prev;
    else s->tail = it->prev;
    it->prev = it->next = NULL;
    it->queued = false;
    s->n_waiting--;
    s->n_tier[it->tier]--;
}

/* max(0, tier - floor(waited / age_ms)); waited < 0 (a clock step) counts as 0. */
static int effective_tier(const sched *s, const sched_item *it, int64_t now_ms) {
    if (s->p.age_ms <= 0 || now_ms <= it->arrival_ms) return it->tier;
    uint64_t waited = (uint64_t)now_ms - (uint64_t)it->arrival_ms; /* exact: now > arrival */
    uint64_t steps = waited / (uint64_t)s->p.age_ms;
    return steps >= (uint64_t)it->tier ? 0 : it->tier - (int)steps;
}

sched_item *sched_peek(sched *s, int64_t now_ms) {
    sched_item *best = NULL;
    int best_tier = 0;
    for (sched_item *it = s->head; it; it = it->next) {
        int t = effective_tier(s, it, now_ms);
        if (!best || t < best_tier ||
            (t == best_tier &&
             (it->cost < best->cost ||
              (it->cost == best->cost &&
               (it->arrival_ms < best->arrival_ms ||
                (it->arrival_ms == best->arrival_ms && it->seq_no < best->seq_no)))))) {
            best = it;
            best_tier = t;
        }
    }
    return best;
}

sched_item *sched_pop(sched *s, int64_t now_ms) {
    sched_item *it = sched_peek(s, now_ms);
    if (it) sched_remove(s, it);
    return it;
}

int sched_waiting(const sched *s) { return s->n_waiting; }

int sched_waiting_tier(const sched *s, int tier) {
    if (tier < 0 || tier >= SCHED_N_TIERS) return 0;
    return s->n_tier[tier];
}

void sched_foreach(sched *s, void (*fn)(sched_item *it, void *arg), void *arg) {
    sched_item *it = s->head;
    while (it) {
        sched_item *next = it->next; /* fn may unlink it */
        fn(it, arg);
        it = next;
    }
}

int sched_pick_victim(sched_item *const *running, int n) {
    int v = -1;
    for (int i = 0; i < n; i++) {
        const sched_item *a = running[i];
        if (v < 0) {
            v = i;
            continue;
        }
        const sched_item *b = running[v];
        if (a->tier > b->tier ||
            (a->tier == b->tier &&
             (a->arrival_ms > b->arrival_ms || (a->arrival_ms == b->arrival_ms && a->seq_no > b->seq_no))))
            v = i;
    }
    return v;
}
