/* The router's backends (see pool.h). */
#include "router/pool.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "router/prefix.h"

/* Latency histogram bounds (seconds), shared by first-byte and total time. */
static const double k_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_BOUNDS ((int)(sizeof k_bounds / sizeof k_bounds[0]))

typedef struct hist {
    uint64_t counts[N_BOUNDS + 1];
    double sum;
    uint64_t count;
} hist;

typedef struct backend {
    char *url;
    char group[64];    /* "" : the baseline group; else a canary group (canary.h) */
    bool active; /* listed (--backend, or registered in Redis now) */
    rt_breaker br;
    int fails;         /* consecutive 5xx / cut responses */
    double opened_at;  /* monotonic s of the last opening or failed probe */
    bool trial;        /* half-open: the one trial request is out */
    int inflight;      /* requests of this router there now */
    int running, waiting; /* from the last /metrics probe */
    rt_prefix_table *pt;
    char **models;
    int n_models;
    bool models_known;
    uint64_t requests, outcomes[RT_OUT_N], decisions[RT_WHY_N], probes_ok, probes_failed, opens;
    hist first_byte, total;
} backend;

struct rt_pool {
    pthread_mutex_t mu;
    rt_pool_params p;
    backend b[RT_POOL_MAX];
    int n;
    unsigned rr;
    uint64_t retries, unroutable;
};

rt_pool_params rt_pool_default_params(void) {
    return (rt_pool_params){.policy = RT_POLICY_PREFIX,
                            .prefix_block = 256,
                            .prefix_entries = 16384,
                            .prefix_balance = 2.0,
                            .breaker_failures = 3,
                            .cooldown_ms = 1000};
}

static const char *const k_policy[] = {"prefix", "least-loaded", "round-robin"};
static const char *const k_breaker[] = {"closed", "open", "half-open"};
static const char *const k_reason[RT_WHY_N] = {"prefix", "prefix_overloaded", "least_loaded", "round_robin", "retry"};
static const char *const k_outcome[RT_OUT_N] = {"ok", "connect", "server", "cut", "cancelled"};

const char *rt_policy_name(rt_policy p) { return (unsigned)p < 3 ? k_policy[p] : "?"; }

bool rt_policy_parse(const char *s, rt_policy *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, k_policy[i])) {
            *out = (rt_policy)i;
            return true;
        }
    return false;
}

/* ------------------------------------------------------------------ membership */

static int add_locked(rt_pool *p, const char *spec, ryot_error *err) {
    /* [GROUP=]URL */
    const char *url = spec, *eq = strchr(spec, '=');
    char group[64] = "";
    if (eq && eq < strstr(spec, "://")) {
        if ((size_t)(eq - spec) >= sizeof group) {
            ryot_fail(err, RYOT_ERR_INVALID, "backend '%.200s': group name too long", spec);
            return -1;
        }
        snprintf(group, sizeof group, "%.*s", (int)(eq - spec), spec);
        url = eq + 1;
    }
    size_t l = strlen(url);
    while (l && url[l - 1] == '/') l--;
    if (l < 8 || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        ryot_fail(err, RYOT_ERR_INVALID, "backend '%.200s' is not an http:// URL", url);
        return -1;
    }
    for (int i = 0; i < p->n; i++)
        if (strlen(p->b[i].url) == l && !strncmp(p->b[i].url, url, l)) {
            p->b[i].active = true;
            snprintf(p->b[i].group, sizeof p->b[i].group, "%s", group);
            return i;
        }
    if (p->n == RT_POOL_MAX) {
        ryot_fail(err, RYOT_ERR_BUSY, "more than %d backends", RT_POOL_MAX);
        return -1;
    }
    backend *b = &p->b[p->n];
    memset(b, 0, sizeof *b);
    b->url = strndup(url, l);
    snprintf(b->group, sizeof b->group, "%s", group);
    b->pt = rt_prefix_table_new(p->p.prefix_entries);
    if (!b->url || !b->pt) {
        free(b->url);
        rt_prefix_table_free(b->pt);
        ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        return -1;
    }
    /* unknown health: routable until a probe or a request says otherwise */
    b->br = RT_BREAKER_CLOSED;
    b->active = true;
    return p->n++;
}

ryot_status rt_pool_new(const rt_pool_params *pp, const char *const *urls, int n, rt_pool **out, ryot_error *err) {
    *out = NULL;
    rt_pool *p = calloc(1, sizeof *p);
    if (!p) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    p->p = *pp;
    if (p->p.prefix_block < 1) p->p.prefix_block = 256;
    if (p->p.prefix_entries < 1) p->p.prefix_entries = 16384;
    if (p->p.breaker_failures < 1) p->p.breaker_failures = 1;
    pthread_mutex_init(&p->mu, NULL);
    for (int i = 0; i < n; i++)
        if (add_locked(p, urls[i], err) < 0) {
            rt_pool_free(p);
            return err ? err->code : RYOT_ERR_INVALID;
        }
    *out = p;
    return RYOT_OK;
}

void rt_pool_free(rt_pool *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->b[i].url);
        rt_prefix_table_free(p->b[i].pt);
        for (int k = 0; k < p->b[i].n_models; k++) free(p->b[i].models[k]);
        free(p->b[i].models);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int rt_pool_add(rt_pool *p, const char *url, ryot_error *err) {
    pthread_mutex_lock(&p->mu);
    int b = add_locked(p, url, err);
    pthread_mutex_unlock(&p->mu);
    return b;
}

void rt_pool_set_active(rt_pool *p, int b, bool active) {
    pthread_mutex_lock(&p->mu);
    if (b >= 0 && b < p->n) p->b[b].active = active;
    pthread_mutex_unlock(&p->mu);
}

bool rt_pool_active(rt_pool *p, int b) {
    pthread_mutex_lock(&p->mu);
    bool a = b >= 0 && b < p->n && p->b[b].active;
    pthread_mutex_unlock(&p->mu);
    return a;
}

int rt_pool_size(rt_pool *p) {
    pthread_mutex_lock(&p->mu);
    int n = p->n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* URLs never change once added and entries are never removed. */
const char *rt_pool_url(rt_pool *p, int b) {
    pthread_mutex_lock(&p->mu);
    const char *u = b >= 0 && b < p->n ? p->b[b].url : NULL;
    pthread_mutex_unlock(&p->mu);
    return u;
}

int rt_pool_prefix_block(const rt_pool *p) { return p->p.prefix_block; }
rt_policy rt_pool_policy(const rt_pool *p) { return p->p.policy; }

/* ------------------------------------------------------------------ health */

static void open_locked(rt_pool *p, backend *b) {
    (void)p;
    if (b->br != RT_BREAKER_OPEN) b->opens++;
    b->br = RT_BREAKER_OPEN;
    b->opened_at = ryot_now_s();
    b->trial = false;
    b->fails = 0;
    b->running = b->waiting = 0;
    rt_prefix_table_clear(b->pt);
}

static bool routable_locked(const backend *b) {
    return b->active && (b->br == RT_BREAKER_CLOSED || (b->br == RT_BREAKER_HALF_OPEN && !b->trial));
}

static int load_locked(const backend *b) {
    const int gauge = b->running + b->waiting;
    return b->inflight > gauge ? b->inflight : gauge;
}

static bool serves_locked(const backend *b, const char *model) {
    for (int k = 0; k < b->n_models; k++)
        if (!strcmp(b->models[k], model)) return true;
    return false;
}

int rt_pool_pick(rt_pool *p, const char *model, const uint64_t *h, int nh, int exclude, rt_reason *why) {
    return rt_pool_pick_in(p, NULL, model, h, nh, exclude, why, NULL);
}

int rt_pool_pick_in(rt_pool *p, const char *group, const char *model, const uint64_t *h, int nh, int exclude,
                    rt_reason *why, bool *fell_back) {
    if (!group) group = "";
    if (fell_back) *fell_back = false;
    pthread_mutex_lock(&p->mu);
    int cand[RT_POOL_MAX], nc = 0;
    for (int i = 0; i < p->n; i++)
        if (i != exclude && routable_locked(&p->b[i]) && !strcmp(p->b[i].group, group)) cand[nc++] = i;
    if (!nc && *group) { /* the canary group is down: the baseline serves */
        for (int i = 0; i < p->n; i++)
            if (i != exclude && routable_locked(&p->b[i]) && !p->b[i].group[0]) cand[nc++] = i;
        if (fell_back) *fell_back = nc > 0;
    }
    if (model && nc > 1) { /* those known to serve the model, when any */
        int keep = 0;
        for (int k = 0; k < nc; k++)
            if (serves_locked(&p->b[cand[k]], model)) cand[keep++] = cand[k];
        if (keep) nc = keep;
    }
    if (!nc) {
        p->unroutable++;
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    const unsigned start = p->rr++;
    int pick = -1;
    rt_reason r;
    /* the least loaded, ties broken by rotation so equal backends share work */
    int least = cand[start % (unsigned)nc];
    for (int k = 1; k < nc; k++) {
        int c = cand[(start + (unsigned)k) % (unsigned)nc];
        if (load_locked(&p->b[c]) < load_locked(&p->b[least])) least = c;
    }
    if (p->p.policy == RT_POLICY_ROUND_ROBIN) {
        pick = cand[start % (unsigned)nc];
        r = RT_WHY_ROUND_ROBIN;
    } else if (p->p.policy == RT_POLICY_LEAST_LOADED || nh == 0) {
        pick = least;
        r = RT_WHY_LEAST_LOADED;
    } else {
        int best = 0, holder = -1;
        for (int k = 0; k < nc; k++) {
            int c = cand[(start + (unsigned)k) % (unsigned)nc];
            int m = rt_prefix_table_match(p->b[c].pt, h, nh);
            if (m > best || (m == best && m > 0 && load_locked(&p->b[c]) < load_locked(&p->b[holder]))) {
                best = m;
                holder = c;
            }
        }
        if (holder < 0) {
            pick = least;
            r = RT_WHY_LEAST_LOADED;
        } else if (load_locked(&p->b[holder]) > p->p.prefix_balance * (load_locked(&p->b[least]) + 1)) {
            pick = least;
            r = RT_WHY_PREFIX_OVERLOADED;
        } else {
            pick = holder;
            r = RT_WHY_PREFIX;
        }
    }
    if (exclude >= 0) r = RT_WHY_RETRY;
    backend *b = &p->b[pick];
    if (p->p.policy == RT_POLICY_PREFIX && nh > 0) rt_prefix_table_insert(b->pt, h, nh);
    if (b->br == RT_BREAKER_HALF_OPEN) b->trial = true;
    b->inflight++;
    b->requests++;
    b->decisions[r]++;
    if (why) *why = r;
    pthread_mutex_unlock(&p->mu);
    return pick;
}

static void hist_add(hist *h, double v) {
    int i = 0;
    while (i < N_BOUNDS && v > k_bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void rt_pool_done(rt_pool *p, int b, rt_outcome o, int status, double first_byte_s, double total_s) {
    (void)status;
    pthread_mutex_lock(&p->mu);
    backend *x = &p->b[b];
    if (x->inflight > 0) x->inflight--;
    x->outcomes[o]++;
    if (first_byte_s >= 0) hist_add(&x->first_byte, first_byte_s);
    if (o != RT_OUT_CONNECT) hist_add(&x->total, total_s);
    switch (o) {
    case RT_OUT_OK:
        x->fails = 0;
        if (x->br == RT_BREAKER_HALF_OPEN) x->br = RT_BREAKER_CLOSED;
        x->trial = false;
        break;
    case RT_OUT_CONNECT: open_locked(p, x); break;
    case RT_OUT_SERVER:
    case RT_OUT_CUT:
        if (++x->fails >= p->p.breaker_failures || x->br == RT_BREAKER_HALF_OPEN) open_locked(p, x);
        break;
    case RT_OUT_CANCELLED:
    default: x->trial = false; break;
    }
    pthread_mutex_unlock(&p->mu);
}

void rt_pool_count_retry(rt_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->retries++;
    pthread_mutex_unlock(&p->mu);
}

void rt_pool_probe(rt_pool *p, int b, bool ok) {
    pthread_mutex_lock(&p->mu);
    backend *x = &p->b[b];
    if (ok) {
        x->probes_ok++;
        if (x->br == RT_BREAKER_HALF_OPEN) {
            x->br = RT_BREAKER_CLOSED;
            x->trial = false;
        } else if (x->br == RT_BREAKER_OPEN && (ryot_now_s() - x->opened_at) * 1000 >= p->p.cooldown_ms) {
            x->br = RT_BREAKER_HALF_OPEN;
        }
    } else {
        x->probes_failed++;
        open_locked(p, x);
        x->models_known = false; /* a restarted backend may serve another model */
    }
    pthread_mutex_unlock(&p->mu);
}

void rt_pool_set_load(rt_pool *p, int b, int running, int waiting) {
    pthread_mutex_lock(&p->mu);
    p->b[b].running = running;
    p->b[b].waiting = waiting;
    pthread_mutex_unlock(&p->mu);
}

void rt_pool_set_models(rt_pool *p, int b, const char *const *ids, int n) {
    char **m = calloc(n > 0 ? (size_t)n : 1, sizeof *m);
    int k = 0;
    for (int i = 0; m && i < n; i++)
        if ((m[k] = strdup(ids[i]))) k++;
    pthread_mutex_lock(&p->mu);
    backend *x = &p->b[b];
    for (int i = 0; i < x->n_models; i++) free(x->models[i]);
    free(x->models);
    x->models = m;
    x->n_models = m ? k : 0;
    x->models_known = m != NULL;
    pthread_mutex_unlock(&p->mu);
}

bool rt_pool_models_unknown(rt_pool *p, int b) {
    pthread_mutex_lock(&p->mu);
    bool u = !p->b[b].models_known;
    pthread_mutex_unlock(&p->mu);
    return u;
}

int rt_pool_n_up(rt_pool *p) {
    pthread_mutex_lock(&p->mu);
    int n = 0;
    for (int i = 0; i < p->n; i++) n += routable_locked(&p->b[i]);
    pthread_mutex_unlock(&p->mu);
    return n;
}

rt_breaker rt_pool_breaker(rt_pool *p, int b) {
    pthread_mutex_lock(&p->mu);
    rt_breaker s = p->b[b].br;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* ------------------------------------------------------------------ reports */

static bool listed(json_t *data, const char *id) {
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m) if (!strcmp(json_string_value(json_object_get(m, "id")), id)) return true;
    return false;
}

char *rt_pool_models_json(rt_pool *p, int64_t created) {
    json_t *data = json_array();
    pthread_mutex_lock(&p->mu);
    for (int i = 0; data && i < p->n; i++) {
        const backend *b = &p->b[i];
        if (!b->active || b->br == RT_BREAKER_OPEN) continue;
        for (int k = 0; k < b->n_models; k++)
            if (!listed(data, b->models[k]))
                json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s}", "id", b->models[k], "object", "model",
                                                      "created", (json_int_t)created, "owned_by", "ryot"));
    }
    pthread_mutex_unlock(&p->mu);
    json_t *o = data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL;
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

bool rt_pool_has_model(rt_pool *p, const char *id) {
    pthread_mutex_lock(&p->mu);
    bool f = false;
    for (int i = 0; !f && i < p->n; i++)
        f = p->b[i].active && p->b[i].br != RT_BREAKER_OPEN && serves_locked(&p->b[i], id);
    pthread_mutex_unlock(&p->mu);
    return f;
}

static void head(ryot_buf *o, const char *name, const char *type, const char *help) {
    ryot_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist_render(ryot_buf *o, const char *name, const char *url, const hist *h) {
    uint64_t cum = 0;
    for (int i = 0; i < N_BOUNDS; i++) {
        cum += h->counts[i];
        ryot_buf_printf(o, "%s_bucket{backend=\"%s\",le=\"%g\"} %llu\n", name, url, k_bounds[i],
                        (unsigned long long)cum);
    }
    cum += h->counts[N_BOUNDS];
    ryot_buf_printf(o, "%s_bucket{backend=\"%s\",le=\"+Inf\"} %llu\n%s_sum{backend=\"%s\"} %.6f\n"
                       "%s_count{backend=\"%s\"} %llu\n",
                    name, url, (unsigned long long)cum, name, url, h->sum, name, url, (unsigned long long)h->count);
}

void rt_pool_metrics(rt_pool *p, ryot_buf *o) {
    pthread_mutex_lock(&p->mu);
    head(o, "ryot_router_backend_up", "gauge", "1 when the backend is routable (listed, breaker not open).");
    for (int i = 0; i < p->n; i++)
        ryot_buf_printf(o, "ryot_router_backend_up{backend=\"%s\"} %d\n", p->b[i].url, routable_locked(&p->b[i]));
    head(o, "ryot_router_backend_state", "gauge", "Breaker state of each backend (1 for the current state).");
    for (int i = 0; i < p->n; i++)
        for (int s = 0; s < 3; s++)
            ryot_buf_printf(o, "ryot_router_backend_state{backend=\"%s\",state=\"%s\"} %d\n", p->b[i].url,
                            k_breaker[s], p->b[i].br == (rt_breaker)s);
    head(o, "ryot_router_backend_inflight", "gauge", "Requests this router has in flight at the backend.");
    for (int i = 0; i < p->n; i++)
        ryot_buf_printf(o, "ryot_router_backend_inflight{backend=\"%s\"} %d\n", p->b[i].url, p->b[i].inflight);
    head(o, "ryot_router_backend_load", "gauge", "Load used for routing: max(in flight, running + waiting).");
    for (int i = 0; i < p->n; i++)
        ryot_buf_printf(o, "ryot_router_backend_load{backend=\"%s\"} %d\n", p->b[i].url, load_locked(&p->b[i]));
    head(o, "ryot_router_requests_total", "counter", "Requests sent to each backend (retries included).");
    for (int i = 0; i < p->n; i++)
        ryot_buf_printf(o, "ryot_router_requests_total{backend=\"%s\"} %llu\n", p->b[i].url,
                        (unsigned long long)p->b[i].requests);
    head(o, "ryot_router_responses_total", "counter", "Forwarded requests by how they ended.");
    for (int i = 0; i < p->n; i++)
        for (int k = 0; k < RT_OUT_N; k++)
            ryot_buf_printf(o, "ryot_router_responses_total{backend=\"%s\",outcome=\"%s\"} %llu\n", p->b[i].url,
                            k_outcome[k], (unsigned long long)p->b[i].outcomes[k]);
    head(o, "ryot_router_errors_total", "counter", "Forwarded requests that failed at the backend (connect, 5xx, cut).");
    for (int i = 0; i < p->n; i++)
        ryot_buf_printf(o, "ryot_router_errors_total{backend=\"%s\"} %llu\n", p->b[i].url,
                        (unsigned long long)(p->b[i].outcomes[RT_OUT_CONNECT] + p->b[i].outcomes[RT_OUT_SERVER] +
                                             p->b[i].outcomes[RT_OUT_CUT]));
    head(o, "ryot_router_decisions_total", "counter", "Routing decisions by backend and reason.");
    for (int i = 0; i < p->n; i++)
        for (int k = 0; k < RT_WHY_N; k++)
            ryot_buf_printf(o, "ryot_router_decisions_total{backend=\"%s\",reason=\"%s\"} %llu\n", p->b[i].url,
                            k_reason[k], (unsigned long long)p->b[i].decisions[k]);
    head(o, "ryot_router_breaker_opens_total", "counter", "Times each backend's breaker opened.");
    for (int i = 0; i < p->n; i++)
        ryot_buf_printf(o, "ryot_router_breaker_opens_total{backend=\"%s\"} %llu\n", p->b[i].url,
                        (unsigned long long)p->b[i].opens);
    head(o, "ryot_router_probes_total", "counter", "Health probes by result.");
    for (int i = 0; i < p->n; i++)
        ryot_buf_printf(o, "ryot_router_probes_total{backend=\"%s\",result=\"ok\"} %llu\n"
                           "ryot_router_probes_total{backend=\"%s\",result=\"failed\"} %llu\n",
                        p->b[i].url, (unsigned long long)p->b[i].probes_ok, p->b[i].url,
                        (unsigned long long)p->b[i].probes_failed);
    head(o, "ryot_router_prefix_entries", "gauge", "Block hashes in each backend's prefix table.");
    for (int i = 0; i < p->n; i++)
        ryot_buf_printf(o, "ryot_router_prefix_entries{backend=\"%s\"} %d\n", p->b[i].url,
                        rt_prefix_table_size(p->b[i].pt));
    head(o, "ryot_router_first_byte_seconds", "histogram", "Time from forwarding to the backend's first response byte.");
    for (int i = 0; i < p->n; i++) hist_render(o, "ryot_router_first_byte_seconds", p->b[i].url, &p->b[i].first_byte);
    head(o, "ryot_router_request_seconds", "histogram", "Time from forwarding to the end of the response.");
    for (int i = 0; i < p->n; i++) hist_render(o, "ryot_router_request_seconds", p->b[i].url, &p->b[i].total);
    head(o, "ryot_router_retries_total", "counter", "Requests retried on another backend after a failure before any byte.");
    ryot_buf_printf(o, "ryot_router_retries_total %llu\n", (unsigned long long)p->retries);
    head(o, "ryot_router_unroutable_total", "counter", "Requests that found no routable backend (answered 503).");
    ryot_buf_printf(o, "ryot_router_unroutable_total %llu\n", (unsigned long long)p->unroutable);
    pthread_mutex_unlock(&p->mu);
}

char *rt_pool_admin_json(rt_pool *p) {
    json_t *arr = json_array();
    pthread_mutex_lock(&p->mu);
    for (int i = 0; arr && i < p->n; i++) {
        const backend *b = &p->b[i];
        json_t *models = json_array();
        for (int k = 0; models && k < b->n_models; k++) json_array_append_new(models, json_string(b->models[k]));
        json_t *dec = json_object();
        for (int k = 0; dec && k < RT_WHY_N; k++) json_object_set_new(dec, k_reason[k], json_integer((json_int_t)b->decisions[k]));
        json_t *outc = json_object();
        for (int k = 0; outc && k < RT_OUT_N; k++) json_object_set_new(outc, k_outcome[k], json_integer((json_int_t)b->outcomes[k]));
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:b,s:s,s:b,s:i,s:i,s:i,s:i,s:o*,s:I,s:o*,s:o*,s:i}", "url", b->url, "group",
                           b->group[0] ? b->group : "baseline", "active", b->active,
                           "state", k_breaker[b->br], "routable", routable_locked(b), "inflight", b->inflight,
                           "running", b->running, "waiting", b->waiting, "load", load_locked(b), "models", models,
                           "requests", (json_int_t)b->requests, "outcomes", outc, "decisions", dec,
                           "prefix_entries", rt_prefix_table_size(b->pt)));
    }
    json_t *o = arr ? json_pack("{s:s,s:i,s:f,s:I,s:I,s:o}", "policy", rt_policy_name(p->p.policy), "prefix_block",
                                p->p.prefix_block, "prefix_balance", p->p.prefix_balance, "retries",
                                (json_int_t)p->retries, "unroutable", (json_int_t)p->unroutable, "backends", arr)
                    : NULL;
    pthread_mutex_unlock(&p->mu);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}
