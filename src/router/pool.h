/* The router's backends: health (active probes, passive error tracking, a
 * circuit breaker each), load, prefix tables, routing decisions, and the
 * counters behind /metrics and /admin/backends.  One mutex guards it all:
 * HTTP threads pick, the upstream thread reports outcomes and probes.
 *
 * Breaker, per backend:
 *   closed    routable.  A connect failure or a failed probe opens it at
 *             once (a dead process refuses connections: nothing to wait
 *             for); breaker_failures 5xx or cut responses in a row open it.
 *   open      not routable.  After cooldown_ms, a successful probe makes it
 *             half-open.
 *   half-open one trial request at a time; its success, or the next
 *             successful probe, closes the breaker; any failure reopens it.
 * Opening clears the backend's prefix table: a restarted backend has an
 * empty cache.
 *
 * Load of a backend: max(requests this router has in flight there, the
 * running + waiting sequences its last /metrics probe reported); the gauge
 * counts other routers' traffic, the in-flight count is exact between probes. */
#ifndef RYOT_ROUTER_POOL_H
#define RYOT_ROUTER_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

typedef enum rt_policy { RT_POLICY_PREFIX, RT_POLICY_LEAST_LOADED, RT_POLICY_ROUND_ROBIN } rt_policy;

typedef enum rt_breaker { RT_BREAKER_CLOSED, RT_BREAKER_OPEN, RT_BREAKER_HALF_OPEN } rt_breaker;

/* Why a backend was picked (ryot_router_decisions_total{reason}). */
typedef enum rt_reason {
    RT_WHY_PREFIX,            /* holds the longest prefix, load within the balance */
    RT_WHY_PREFIX_OVERLOADED, /* a prefix holder was too loaded: least loaded instead */
    RT_WHY_LEAST_LOADED,      /* no prefix held anywhere (or policy least-loaded) */
    RT_WHY_ROUND_ROBIN,
    RT_WHY_RETRY,             /* second attempt, elsewhere */
    RT_WHY_N
} rt_reason;

/* How a forwarded request ended, for passive health tracking. */
typedef enum rt_outcome {
    RT_OUT_OK,           /* an answer: 2xx, 4xx (the client's fault), 429 */
    RT_OUT_CONNECT,      /* no connection, or nothing received */
    RT_OUT_SERVER,       /* a 5xx status */
    RT_OUT_CUT,          /* the response broke off (reset, timeout) */
    RT_OUT_CANCELLED,    /* the client left: says nothing about the backend */
    RT_OUT_N
} rt_outcome;

typedef struct rt_pool_params {
    rt_policy policy;
    int prefix_block;       /* bytes per hashed block (default 256) */
    int prefix_entries;     /* hashes remembered per backend (default 16384) */
    double prefix_balance;  /* a prefix holder is taken unless its load > balance x (least load + 1) (default 2) */
    int breaker_failures;   /* consecutive 5xx / cut responses that open the breaker (default 3) */
    int cooldown_ms;        /* open -> half-open no sooner than this (default 1000) */
} rt_pool_params;

rt_pool_params rt_pool_default_params(void);
const char *rt_policy_name(rt_policy p);
bool rt_policy_parse(const char *s, rt_policy *out);

typedef struct rt_pool rt_pool;

#define RT_POOL_MAX 64 /* backends ever known to one router (entries are never removed) */

/* urls: "[GROUP=]http://host:port" each (a trailing '/' is dropped). */
ryot_status rt_pool_new(const rt_pool_params *p, const char *const *urls, int n, rt_pool **out, ryot_error *err);
void rt_pool_free(rt_pool *p);
/* Adds a backend, "[GROUP=]http://host:port" (or re-activates a known one):
 * its index, or -1 (err set).
 * A new backend starts closed (routable) until a probe says otherwise. */
int rt_pool_add(rt_pool *p, const char *url, ryot_error *err);
/* Discovery: an inactive backend is kept (with its counters) but not routed to. */
void rt_pool_set_active(rt_pool *p, int b, bool active);
bool rt_pool_active(rt_pool *p, int b);
int rt_pool_size(rt_pool *p);
/* Stable for the pool's lifetime. */
const char *rt_pool_url(rt_pool *p, int b);
int rt_pool_prefix_block(const rt_pool *p);
rt_policy rt_pool_policy(const rt_pool *p);
rt_breaker rt_pool_breaker(rt_pool *p, int b);

/* The backend for a request, its in-flight count raised; -1 when none is
 * routable (counted as unroutable).  model: the request's model (NULL: any);
 * when several backends are routable, those known to serve it are preferred.
 * h[0..nh): the prompt's block hashes (prefix.h), entered into the chosen
 * backend's table under the prefix policy.  exclude: a backend not to use (a
 * retry), or -1. */
int rt_pool_pick(rt_pool *p, const char *model, const uint64_t *h, int nh, int exclude, rt_reason *why);
/* The same within a backend group (canary.h; NULL or "": the baseline, the
 * backends added without GROUP=).  When none of the group is routable the
 * baseline serves (*fell_back set, fell_back may be NULL). */
int rt_pool_pick_in(rt_pool *p, const char *group, const char *model, const uint64_t *h, int nh, int exclude,
                    rt_reason *why, bool *fell_back);
/* The end of a picked request: lowers the in-flight count, updates the
 * breaker, counters and histograms (first_byte_s < 0: none received). */
void rt_pool_done(rt_pool *p, int b, rt_outcome o, int status, double first_byte_s, double total_s);
void rt_pool_count_retry(rt_pool *p);

/* Probe results (probe thread): ok is a 200 from /health. */
void rt_pool_probe(rt_pool *p, int b, bool ok);
void rt_pool_set_load(rt_pool *p, int b, int running, int waiting);
/* ids: the backend's /v1/models (replaces what was known). */
void rt_pool_set_models(rt_pool *p, int b, const char *const *ids, int n);
/* true when backend b should be asked for /v1/models (unknown so far, or
 * since its last failed probe). */
bool rt_pool_models_unknown(rt_pool *p, int b);
/* Routable backends right now. */
int rt_pool_n_up(rt_pool *p);

/* {"object":"list","data":[...]}: every model a backend that is not open
 * serves, once.  malloc'd; NULL when out of memory. */
char *rt_pool_models_json(rt_pool *p, int64_t created);
/* true when a backend that is not open lists id. */
bool rt_pool_has_model(rt_pool *p, const char *id);
/* Prometheus text (ryot_router_*). */
void rt_pool_metrics(rt_pool *p, ryot_buf *b);
/* /admin/backends: policy, counters and one object per backend. */
char *rt_pool_admin_json(rt_pool *p);

#endif
