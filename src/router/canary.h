/* Canary and A/B splits of `ryot route`: per model, a weighted share of the
 * requests goes to a second backend group (--canary MODEL=GROUP:PERCENT).
 *
 * Assignment is sticky: a request's key (its "user" field, else the
 * X-Ryot-User header) hashes to a point in [0, 100); the request is in the
 * canary arm when that point is below the split's percent, so raising the
 * percent only moves users into the canary.  Requests without a key are
 * assigned at random.
 *
 * Each arm counts requests, errors (no answer, 5xx, cut) and the time to the
 * first body byte (TTFT as the router sees it).  Every window_s the arms are
 * compared; when both have at least min_requests and the canary's error rate
 * exceeds the baseline's by more than err_margin, or its p99 first-byte time
 * exceeds the baseline's by more than ttft_margin (a fraction: 0.5 = 50%),
 * the split rolls back to 0% (logged; visible in metrics and the admin JSON)
 * and stays there. */
#ifndef RYOT_ROUTER_CANARY_H
#define RYOT_ROUTER_CANARY_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/error.h"

#define RT_CANARY_MAX 16

typedef struct rt_canary_params {
    double window_s;     /* default 30 */
    int min_requests;    /* per arm and window (default 20) */
    double err_margin;   /* default 0.05 (5 points of error rate) */
    double ttft_margin;  /* default 0.5 (p99 50% slower) */
} rt_canary_params;

rt_canary_params rt_canary_default_params(void);

typedef struct rt_canary rt_canary;

rt_canary *rt_canary_new(const rt_canary_params *p);
void rt_canary_free(rt_canary *c);
/* "MODEL=GROUP:PERCENT" (PERCENT in [0, 100]). */
ryot_status rt_canary_add(rt_canary *c, const char *spec, ryot_error *err);
int rt_canary_count(const rt_canary *c);
/* The group of split i (stable). */
const char *rt_canary_group(const rt_canary *c, int i);

/* The split for model (-1: none) and whether key (NULL: none) is in its
 * canary arm. */
int rt_canary_assign(rt_canary *c, const char *model, const char *key, bool *canary);
/* A finished request of split i (first_body_s < 0: no body byte). */
void rt_canary_record(rt_canary *c, int i, bool canary, bool error, double first_body_s);
/* Closes windows that are due and rolls back failing canaries; returns the
 * number rolled back now (messages on stderr unless quiet). */
int rt_canary_check(rt_canary *c, double now_s, bool quiet);
/* The split's current percent. */
double rt_canary_percent(rt_canary *c, int i);

void rt_canary_metrics(rt_canary *c, ryot_buf *b);
/* [{"model","group","percent","initial_percent","rolled_back","reason",
 *   "arms":{"baseline":{...},"canary":{...}}}] (new reference). */
json_t *rt_canary_admin(rt_canary *c);

#endif
