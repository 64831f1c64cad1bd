/* Canary splits with automatic rollback (see canary.h). */
#include "router/canary.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

/* first-body-byte bounds (seconds): the p99 is read as a bucket's upper bound */
static const double k_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_BOUNDS ((int)(sizeof k_bounds / sizeof k_bounds[0]))

typedef struct arm_stats {
    uint64_t requests, errors;
    uint64_t hist[N_BOUNDS + 1];
} arm_stats;

typedef struct split {
    char model[128], group[64];
    double percent, initial;
    bool rolled_back;
    char reason[160];
    arm_stats total[2];  /* [0] baseline, [1] canary: since start */
    arm_stats window[2]; /* the current window */
    double window_start;
} split;

struct rt_canary {
    pthread_mutex_t mu;
    rt_canary_params p;
    split s[RT_CANARY_MAX];
    int n;
    uint64_t rollbacks;
    uint64_t rng;
};

rt_canary_params rt_canary_default_params(void) {
    return (rt_canary_params){.window_s = 30, .min_requests = 20, .err_margin = 0.05, .ttft_margin = 0.5};
}

rt_canary *rt_canary_new(const rt_canary_params *p) {
    rt_canary *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->p = *p;
    if (c->p.window_s <= 0) c->p.window_s = 30;
    if (c->p.min_requests < 1) c->p.min_requests = 1;
    c->rng = (uint64_t)ryot_now_ns() | 1;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void rt_canary_free(rt_canary *c) {
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

ryot_status rt_canary_add(rt_canary *c, const char *spec, ryot_error *err) {
    const char *eq = strchr(spec, '='), *colon = strrchr(spec, ':');
    if (!eq || !colon || colon < eq || eq == spec || colon == eq + 1)
        return ryot_fail(err, RYOT_ERR_INVALID, "--canary '%.200s': expected MODEL=GROUP:PERCENT", spec);
    char *end;
    const double pct = strtod(colon + 1, &end);
    if (end == colon + 1 || *end || !(pct >= 0 && pct <= 100))
        return ryot_fail(err, RYOT_ERR_INVALID, "--canary '%.200s': PERCENT must be a number in 0..100", spec);
    if ((size_t)(eq - spec) >= sizeof c->s[0].model || (size_t)(colon - eq - 1) >= sizeof c->s[0].group)
        return ryot_fail(err, RYOT_ERR_INVALID, "--canary '%.200s': name too long", spec);
    if (c->n == RT_CANARY_MAX) return ryot_fail(err, RYOT_ERR_INVALID, "more than %d --canary splits", RT_CANARY_MAX);
    for (int i = 0; i < c->n; i++)
        if (strlen(c->s[i].model) == (size_t)(eq - spec) && !strncmp(c->s[i].model, spec, (size_t)(eq - spec)))
            return ryot_fail(err, RYOT_ERR_INVALID, "--canary: model '%.*s' has two splits", (int)(eq - spec), spec);
    split *s = &c->s[c->n];
    memset(s, 0, sizeof *s);
    snprintf(s->model, sizeof s->model, "%.*s", (int)(eq - spec), spec);
    snprintf(s->group, sizeof s->group, "%.*s", (int)(colon - eq - 1), eq + 1);
    s->percent = s->initial = pct;
    s->window_start = ryot_now_s();
    c->n++;
    return RYOT_OK;
}

int rt_canary_count(const rt_canary *c) { return c ? c->n : 0; }
const char *rt_canary_group(const rt_canary *c, int i) { return c->s[i].group; }

/* A key's point in [0, 100): FNV-1a, mixed. */
static double point_of(const char *key) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (double)(h % 1000000) / 10000.0;
}

int rt_canary_assign(rt_canary *c, const char *model, const char *key, bool *canary) {
    *canary = false;
    if (!c || !model) return -1;
    pthread_mutex_lock(&c->mu);
    int i = 0;
    while (i < c->n && strcmp(c->s[i].model, model) != 0) i++;
    if (i == c->n) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    double pt;
    if (key && *key) {
        pt = point_of(key);
    } else { /* xorshift64 */
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        pt = (double)(c->rng % 1000000) / 10000.0;
    }
    *canary = pt < c->s[i].percent;
    pthread_mutex_unlock(&c->mu);
    return i;
}

static void arm_add(arm_stats *a, bool error, double t) {
    a->requests++;
    if (error) a->errors++;
    if (t >= 0) {
        int k = 0;
        while (k < N_BOUNDS && t > k_bounds[k]) k++;
        a->hist[k]++;
    }
}

void rt_canary_record(rt_canary *c, int i, bool canary, bool error, double first_body_s) {
    if (!c || i < 0) return;
    pthread_mutex_lock(&c->mu);
    if (i < c->n) {
        arm_add(&c->s[i].total[canary], error, first_body_s);
        arm_add(&c->s[i].window[canary], error, first_body_s);
    }
    pthread_mutex_unlock(&c->mu);
}

/* The upper bound of the bucket holding the 99th percentile; -1: no samples. */
static double p99(const arm_stats *a) {
    uint64_t n = 0;
    for (int k = 0; k <= N_BOUNDS; k++) n += a->hist[k];
    if (!n) return -1;
    const uint64_t want = (n * 99 + 99) / 100;
    uint64_t cum = 0;
    for (int k = 0; k < N_BOUNDS; k++)
        if ((cum += a->hist[k]) >= want) return k_bounds[k];
    return k_bounds[N_BOUNDS - 1] * 2;
}

int rt_canary_check(rt_canary *c, double now_s, bool quiet) {
    if (!c) return 0;
    int rolled = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        split *s = &c->s[i];
        if (now_s - s->window_start < c->p.window_s) continue;
        const arm_stats *b = &s->window[0], *k = &s->window[1];
        if (!s->rolled_back && s->percent > 0 && b->requests >= (uint64_t)c->p.min_requests &&
            k->requests >= (uint64_t)c->p.min_requests) {
            const double eb = (double)b->errors / (double)b->requests, ek = (double)k->errors / (double)k->requests;
            const double tb = p99(b), tk = p99(k);
            if (ek > eb + c->p.err_margin)
                snprintf(s->reason, sizeof s->reason, "error rate %.3f against the baseline's %.3f", ek, eb);
            else if (tb > 0 && tk > tb * (1 + c->p.ttft_margin))
                snprintf(s->reason, sizeof s->reason, "p99 first byte %.3f s against the baseline's %.3f s", tk, tb);
            if (s->reason[0]) {
                s->rolled_back = true;
                s->percent = 0;
                c->rollbacks++;
                rolled++;
                if (!quiet)
                    fprintf(stderr, "ryot route: canary %s -> %s rolled back to 0%%: %s\n", s->model, s->group,
                            s->reason);
            }
        }
        memset(s->window, 0, sizeof s->window);
        s->window_start = now_s;
    }
    pthread_mutex_unlock(&c->mu);
    return rolled;
}

double rt_canary_percent(rt_canary *c, int i) {
    pthread_mutex_lock(&c->mu);
    double p = i >= 0 && i < c->n ? c->s[i].percent : 0;
    pthread_mutex_unlock(&c->mu);
    return p;
}

void rt_canary_metrics(rt_canary *c, ryot_buf *o) {
    if (!c || !c->n) return;
    static const char *const arm[2] = {"baseline", "canary"};
    pthread_mutex_lock(&c->mu);
    ryot_buf_printf(o, "# HELP ryot_router_canary_percent Share of a model's requests sent to its canary group.\n"
                       "# TYPE ryot_router_canary_percent gauge\n");
    for (int i = 0; i < c->n; i++)
        ryot_buf_printf(o, "ryot_router_canary_percent{model=\"%s\",group=\"%s\"} %g\n", c->s[i].model,
                        c->s[i].group, c->s[i].percent);
    ryot_buf_printf(o, "# HELP ryot_router_canary_requests_total Requests per split and arm.\n"
                       "# TYPE ryot_router_canary_requests_total counter\n");
    for (int i = 0; i < c->n; i++)
        for (int a = 0; a < 2; a++)
            ryot_buf_printf(o, "ryot_router_canary_requests_total{model=\"%s\",arm=\"%s\"} %llu\n", c->s[i].model,
                            arm[a], (unsigned long long)c->s[i].total[a].requests);
    ryot_buf_printf(o, "# HELP ryot_router_canary_errors_total Failed requests per split and arm.\n"
                       "# TYPE ryot_router_canary_errors_total counter\n");
    for (int i = 0; i < c->n; i++)
        for (int a = 0; a < 2; a++)
            ryot_buf_printf(o, "ryot_router_canary_errors_total{model=\"%s\",arm=\"%s\"} %llu\n", c->s[i].model,
                            arm[a], (unsigned long long)c->s[i].total[a].errors);
    ryot_buf_printf(o, "# HELP ryot_router_canary_first_body_seconds Time to the first body byte per arm.\n"
                       "# TYPE ryot_router_canary_first_body_seconds histogram\n");
    for (int i = 0; i < c->n; i++)
        for (int a = 0; a < 2; a++) {
            uint64_t cum = 0;
            for (int k = 0; k < N_BOUNDS; k++) {
                cum += c->s[i].total[a].hist[k];
                ryot_buf_printf(o, "ryot_router_canary_first_body_seconds_bucket{model=\"%s\",arm=\"%s\",le=\"%g\"} %llu\n",
                                c->s[i].model, arm[a], k_bounds[k], (unsigned long long)cum);
            }
            cum += c->s[i].total[a].hist[N_BOUNDS];
            ryot_buf_printf(o, "ryot_router_canary_first_body_seconds_bucket{model=\"%s\",arm=\"%s\",le=\"+Inf\"} %llu\n"
                               "ryot_router_canary_first_body_seconds_count{model=\"%s\",arm=\"%s\"} %llu\n",
                            c->s[i].model, arm[a], (unsigned long long)cum, c->s[i].model, arm[a],
                            (unsigned long long)cum);
        }
    ryot_buf_printf(o, "# HELP ryot_router_canary_rollbacks_total Canaries rolled back to 0%%.\n"
                       "# TYPE ryot_router_canary_rollbacks_total counter\nryot_router_canary_rollbacks_total %llu\n",
                    (unsigned long long)c->rollbacks);
    pthread_mutex_unlock(&c->mu);
}

static json_t *arm_json(const arm_stats *a) {
    return json_pack("{s:I,s:I,s:f}", "requests", (json_int_t)a->requests, "errors", (json_int_t)a->errors,
                     "p99_first_body_s", p99(a));
}

json_t *rt_canary_admin(rt_canary *c) {
    json_t *arr = json_array();
    if (!c || !arr) return arr;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        const split *s = &c->s[i];
        json_array_append_new(arr, json_pack("{s:s,s:s,s:f,s:f,s:b,s:s?,s:{s:o,s:o}}", "model", s->model, "group",
                                             s->group, "percent", s->percent, "initial_percent", s->initial,
                                             "rolled_back", s->rolled_back, "reason",
                                             s->reason[0] ? s->reason : NULL, "arms", "baseline",
                                             arm_json(&s->total[0]), "canary", arm_json(&s->total[1])));
    }
    pthread_mutex_unlock(&c->mu);
    return arr;
}
