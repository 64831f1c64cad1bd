#include "benchsuite/workload.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* Short, frequent words: each is one token in the usual English BPE vocabs
 * when preceded by a space. */
static const char *const WORDS[] = {
    "the",   "of",    "and",   "to",    "in",    "is",    "that",  "for",   "it",    "as",    "was",   "with",
    "be",    "by",    "on",    "not",   "he",    "this",  "are",   "or",    "his",   "from",  "at",    "which",
    "but",   "have",  "an",    "had",   "they",  "you",   "were",  "their", "one",   "all",   "we",    "can",
    "her",   "has",   "there", "been",  "if",    "more",  "when",  "will",  "would", "who",   "so",    "no",
    "time",  "people", "water", "year", "day",   "world", "house", "place", "light", "city",  "work",  "story",
    "river", "music", "table", "green",
};
#define N_WORDS (sizeof WORDS / sizeof WORDS[0])

static const char *const TIER_NAMES[LG_N_TIERS] = {"critical", "high", "normal", "low", "background"};

const char *workload_tier_name(int tier) {
    return tier >= 0 && tier < LG_N_TIERS ? TIER_NAMES[tier] : "none";
}

int workload_tier_from_name(const char *s) {
    for (int i = 0; i < LG_N_TIERS; i++)
        if (s && !strcmp(s, TIER_NAMES[i])) return i;
    return LG_TIER_NONE;
}

const char *workload_kind_name(workload_kind k) {
    switch (k) {
    case WORKLOAD_SYNTHETIC: return "synthetic";
    case WORKLOAD_SHARED_PREFIX: return "shared-prefix";
    case WORKLOAD_MIXED_PRIORITY: return "mixed-priority";
    case WORKLOAD_FILE: return "file";
    }
    return "?";
}

workload_config workload_config_default(void) {
    return (workload_config){
        .kind = WORKLOAD_SYNTHETIC,
        .chat = true,
        .input_len = 128,
        .output_len = 128,
        .input_dist = {LEN_FIXED, 0, 0},
        .output_dist = {LEN_FIXED, 0, 0},
        .ignore_eos = true,
        .prefix_len = 1024,
        .users = 16,
        .turns = 3,
        .tier_mix = {1, 2, 4, 2, 1},
        .seed = 1,
    };
}

ryot_status workload_parse_kind(const char *s, workload_config *cfg, ryot_error *err) {
    if (!strcmp(s, "synthetic"))
        cfg->kind = WORKLOAD_SYNTHETIC;
    else if (!strcmp(s, "shared-prefix"))
        cfg->kind = WORKLOAD_SHARED_PREFIX;
    else if (!strcmp(s, "mixed-priority"))
        cfg->kind = WORKLOAD_MIXED_PRIORITY;
    else if (!strncmp(s, "file:", 5) && s[5]) {
        cfg->kind = WORKLOAD_FILE;
        cfg->path = s + 5;
    } else
        return ryot_fail(err, RYOT_ERR_INVALID,
                         "unknown workload '%s' (synthetic, shared-prefix, mixed-priority, file:PATH)", s);
    return RYOT_OK;
}

static bool parse_two(const char *s, double *a, double *b) {
    char *end;
    errno = 0;
    *a = strtod(s, &end);
    if (errno || end == s || *end != ',') return false;
    s = end + 1;
    *b = strtod(s, &end);
    return !errno && end != s && !*end && isfinite(*a) && isfinite(*b);
}

ryot_status workload_parse_dist(const char *s, len_dist *out, ryot_error *err) {
    double a, b;
    if (!strcmp(s, "fixed")) {
        *out = (len_dist){LEN_FIXED, 0, 0};
    } else if (!strncmp(s, "uniform:", 8)) {
        if (!parse_two(s + 8, &a, &b) || a < 1 || b < a)
            return ryot_fail(err, RYOT_ERR_INVALID, "bad distribution '%s' (uniform:A,B with 1 <= A <= B)", s);
        *out = (len_dist){LEN_UNIFORM, a, b};
    } else if (!strncmp(s, "normal:", 7)) {
        if (!parse_two(s + 7, &a, &b) || a < 1 || b < 0)
            return ryot_fail(err, RYOT_ERR_INVALID, "bad distribution '%s' (normal:MU,SD with MU >= 1, SD >= 0)", s);
        *out = (len_dist){LEN_NORMAL, a, b};
    } else {
        return ryot_fail(err, RYOT_ERR_INVALID, "bad distribution '%s' (fixed, uniform:A,B, normal:MU,SD)", s);
    }
    return RYOT_OK;
}

ryot_status workload_parse_mix(const char *s, double mix[LG_N_TIERS], ryot_error *err) {
    double m[LG_N_TIERS] = {0};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    bool named = strchr(buf, '=') != NULL;
    int k = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int tier = k;
        char *val = tok;
        if (named) {
            char *eq = strchr(tok, '=');
            if (!eq) return ryot_fail(err, RYOT_ERR_INVALID, "bad tier mix item '%s' (TIER=WEIGHT)", tok);
            *eq = '\0';
            val = eq + 1;
            tier = workload_tier_from_name(tok);
            if (tier == LG_TIER_NONE) return ryot_fail(err, RYOT_ERR_INVALID, "unknown tier '%s'", tok);
        } else if (k >= LG_N_TIERS) {
            return ryot_fail(err, RYOT_ERR_INVALID, "tier mix '%s': more than %d weights", s, LG_N_TIERS);
        }
        char *end;
        errno = 0;
        double w = strtod(val, &end);
        if (errno || end == val || *end || !(w >= 0) || !isfinite(w))
            return ryot_fail(err, RYOT_ERR_INVALID, "bad tier weight '%s'", val);
        m[tier] = w;
        k++;
    }
    double sum = 0;
    for (int i = 0; i < LG_N_TIERS; i++) sum += m[i];
    if (!named && k != LG_N_TIERS)
        return ryot_fail(err, RYOT_ERR_INVALID, "tier mix '%s': give %d weights or TIER=WEIGHT items", s, LG_N_TIERS);
    if (!(sum > 0)) return ryot_fail(err, RYOT_ERR_INVALID, "tier mix '%s': all weights are zero", s);
    memcpy(mix, m, sizeof m);
    return RYOT_OK;
}

/* One conversation of the shared-prefix workload. */
typedef struct convo {
    json_t *messages; /* [{role, content}...], starts with the system prompt */
    int turn;
    bool busy;
} convo;

struct workload {
    workload_config cfg;
    char *model;
    ryot_rng rng;
    char *system_prompt; /* shared-prefix */
    convo *users;
    int next_user;
    json_t **lines; /* file */
    size_t n_lines, next_line;
    char **sent;    /* synthetic with repeat_ratio: the distinct bodies sent so far */
    size_t n_sent, cap_sent;
    int *sent_in;   /* their prompt lengths */
};

#define REPEAT_POOL_MAX 4096 /* distinct bodies kept for repeats */

static int draw_len(workload *w, const len_dist *d, int fixed) {
    double v;
    switch (d->kind) {
    case LEN_UNIFORM:
        v = d->a + floor(ryot_rng_uniform(&w->rng) * (d->b - d->a + 1));
        break;
    case LEN_NORMAL: {
        float z[2];
        ryot_rng_normal2(&w->rng, z);
        v = round(d->a + d->b * z[0]);
        break;
    }
    default: v = fixed;
    }
    if (v < 1) v = 1;
    if (v > 1e6) v = 1e6;
    return (int)v;
}

/* n random words, space separated; malloc'd. */
static char *random_words(ryot_rng *rng, int n) {
    size_t cap = (size_t)n * 8 + 1, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (int i = 0; i < n; i++) {
        const char *wd = WORDS[ryot_rng_next(rng) % N_WORDS];
        size_t l = strlen(wd);
        if (len + l + 2 > cap) {
            cap *= 2;
            char *ns = realloc(s, cap);
            if (!ns) {
                free(s);
                return NULL;
            }
            s = ns;
        }
        if (i) s[len++] = ' ';
        memcpy(s + len, wd, l);
        len += l;
    }
    s[len] = '\0';
    return s;
}

static void add_common(workload *w, json_t *body, int max_tokens, bool set_max) {
    if (w->model) json_object_set_new(body, "model", json_string(w->model));
    if (set_max) {
        json_object_set_new(body, "max_tokens", json_integer(max_tokens));
        if (w->cfg.ignore_eos) json_object_set_new(body, "ignore_eos", json_true());
    }
    json_object_set_new(body, "stream", json_true());
    json_t *so = json_object();
    json_object_set_new(so, "include_usage", json_true());
    json_object_set_new(body, "stream_options", so);
}

static ryot_status finish_body(json_t *body, lg_request *req, ryot_error *err) {
    if (!body) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory building a request");
    req->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!req->body) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory building a request");
    return RYOT_OK;
}

/* A repeat of an earlier body (repeat_ratio): true when one was drawn. */
static bool next_repeat(workload *w, lg_request *req, ryot_error *err, ryot_status *st) {
    if (w->cfg.repeat_ratio <= 0 || !w->n_sent || ryot_rng_uniform(&w->rng) >= w->cfg.repeat_ratio) return false;
    size_t k = (size_t)(ryot_rng_next(&w->rng) % w->n_sent);
    req->body = strdup(w->sent[k]);
    req->input_tokens_est = w->sent_in[k];
    *st = req->body ? RYOT_OK : ryot_fail(err, RYOT_ERR_NOMEM, "out of memory building a request");
    return true;
}

/* Keeps a new body for later repeats (while the pool has room). */
static void remember(workload *w, const lg_request *req) {
    if (w->cfg.repeat_ratio <= 0 || w->n_sent >= REPEAT_POOL_MAX) return;
    if (w->n_sent == w->cap_sent) {
        size_t cap = w->cap_sent ? w->cap_sent * 2 : 64;
        char **ns = realloc(w->sent, cap * sizeof *ns);
        if (!ns) return;
        w->sent = ns;
        int *ni = realloc(w->sent_in, cap * sizeof *ni);
        if (!ni) return;
        w->sent_in = ni;
        w->cap_sent = cap;
    }
    char *b = strdup(req->body);
    if (!b) return;
    w->sent[w->n_sent] = b;
    w->sent_in[w->n_sent++] = req->input_tokens_est;
}

static ryot_status next_synthetic(workload *w, lg_request *req, ryot_error *err) {
    ryot_status rst;
    if (w->cfg.kind == WORKLOAD_SYNTHETIC && next_repeat(w, req, err, &rst)) return rst;
    int in = draw_len(w, &w->cfg.input_dist, w->cfg.input_len);
    int out = draw_len(w, &w->cfg.output_dist, w->cfg.output_len);
    char *prompt = random_words(&w->rng, in);
    if (!prompt) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory building a prompt");
    json_t *body = json_object();
    if (w->cfg.chat) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("user"));
        json_object_set_new(msg, "content", json_string(prompt));
        json_t *msgs = json_array();
        json_array_append_new(msgs, msg);
        json_object_set_new(body, "messages", msgs);
    } else {
        json_object_set_new(body, "prompt", json_string(prompt));
    }
    free(prompt);
    add_common(w, body, out, true);
    if (w->cfg.kind == WORKLOAD_MIXED_PRIORITY) {
        double sum = 0, u;
        for (int i = 0; i < LG_N_TIERS; i++) sum += w->cfg.tier_mix[i];
        u = ryot_rng_uniform(&w->rng) * sum;
        int tier = LG_N_TIERS - 1;
        for (int i = 0; i < LG_N_TIERS; i++) {
            if (u < w->cfg.tier_mix[i]) {
                tier = i;
                break;
            }
            u -= w->cfg.tier_mix[i];
        }
        while (w->cfg.tier_mix[tier] <= 0 && tier > 0) tier--; /* rounding at the top end */
        req->tier = tier;
        json_object_set_new(body, "priority", json_string(TIER_NAMES[tier]));
    }
    if (w->cfg.repeat_ratio > 0) json_object_set_new(body, "temperature", json_real(0));
    req->input_tokens_est = in;
    ryot_status st = finish_body(body, req, err);
    if (st == RYOT_OK) remember(w, req);
    return st;
}

static json_t *message(const char *role, const char *content) {
    json_t *m = json_object();
    json_object_set_new(m, "role", json_string(role));
    json_object_set_new(m, "content", json_string(content));
    return m;
}

/* Completions endpoint: the conversation as one plain-text prompt. */
static char *render_plain(json_t *messages) {
    size_t cap = 1024, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = '\0';
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        const char *tag = !strcmp(role, "system") ? "System" : !strcmp(role, "user") ? "User" : "Assistant";
        size_t need = len + strlen(tag) + strlen(content) + 16;
        if (need > cap) {
            while (cap < need) cap *= 2;
            char *ns = realloc(s, cap);
            if (!ns) {
                free(s);
                return NULL;
            }
            s = ns;
        }
        len += (size_t)sprintf(s + len, "%s: %s\n\n", tag, content);
    }
    size_t need = len + 16;
    if (need > cap) {
        char *ns = realloc(s, need);
        if (!ns) {
            free(s);
            return NULL;
        }
        s = ns;
    }
    sprintf(s + len, "Assistant:");
    return s;
}

static ryot_status next_shared(workload *w, lg_request *req, ryot_error *err) {
    int n = w->cfg.users, u = -1;
    for (int k = 0; k < n; k++) {
        int c = (w->next_user + k) % n;
        if (!w->users[c].busy) {
            u = c;
            break;
        }
    }
    if (u < 0) return RYOT_ERR_BUSY;
    w->next_user = (u + 1) % n;
    convo *c = &w->users[u];
    if (!c->messages || c->turn >= w->cfg.turns) {
        json_decref(c->messages);
        c->messages = json_array();
        json_array_append_new(c->messages, message("system", w->system_prompt));
        c->turn = 0;
    }
    int in = draw_len(w, &w->cfg.input_dist, w->cfg.input_len);
    int out = draw_len(w, &w->cfg.output_dist, w->cfg.output_len);
    char *text = random_words(&w->rng, in);
    if (!text) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory building a prompt");
    json_array_append_new(c->messages, message("user", text));
    free(text);
    json_t *body = json_object();
    if (w->cfg.chat) {
        json_object_set(body, "messages", c->messages);
    } else {
        char *p = render_plain(c->messages);
        if (!p) {
            json_decref(body);
            return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory building a prompt");
        }
        json_object_set_new(body, "prompt", json_string(p));
        free(p);
    }
    add_common(w, body, out, true);
    c->busy = true;
    req->user = u;
    req->turn = c->turn;
    req->input_tokens_est = -1;
    return finish_body(body, req, err);
}

static void done_shared(void *ud, const lg_request *req, const lg_result *res) {
    workload *w = ud;
    if (req->user < 0 || req->user >= w->cfg.users) return;
    convo *c = &w->users[req->user];
    /* A failed turn still advances: the conversation goes on without an
     * answer rather than stalling. */
    json_array_append_new(c->messages, message("assistant", res->text ? res->text : ""));
    c->turn++;
    c->busy = false;
}

static ryot_status next_file(workload *w, lg_request *req, ryot_error *err) {
    json_t *src = w->lines[w->next_line];
    w->next_line = (w->next_line + 1) % w->n_lines;
    json_t *body = json_deep_copy(src);
    if (!body) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory copying a request");
    if (w->model && !json_object_get(body, "model")) json_object_set_new(body, "model", json_string(w->model));
    json_object_set_new(body, "stream", json_true());
    json_t *so = json_object();
    json_object_set_new(so, "include_usage", json_true());
    json_object_set_new(body, "stream_options", so);
    req->tier = workload_tier_from_name(json_string_value(json_object_get(body, "priority")));
    return finish_body(body, req, err);
}

static ryot_status wl_next(void *ud, lg_request *req, ryot_error *err) {
    workload *w = ud;
    switch (w->cfg.kind) {
    case WORKLOAD_SHARED_PREFIX: return next_shared(w, req, err);
    case WORKLOAD_FILE: return next_file(w, req, err);
    default: return next_synthetic(w, req, err);
    }
}

static ryot_status load_file(workload *w, ryot_error *err) {
    FILE *f = fopen(w->cfg.path, "r");
    if (!f) return ryot_fail(err, RYOT_ERR_IO, "%s: %s", w->cfg.path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, lineno = 0, alloc = 0;
    ssize_t n;
    ryot_status st = RYOT_OK;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = '\0';
        if (n == 0) continue;
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (!json_is_object(j)) {
            json_decref(j);
            st = ryot_fail(err, RYOT_ERR_FORMAT, "%s:%zu: not a JSON object (%s)", w->cfg.path, lineno, jerr.text);
            break;
        }
        if (w->n_lines == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            json_t **nl = realloc(w->lines, alloc * sizeof *nl);
            if (!nl) {
                json_decref(j);
                st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory reading %s", w->cfg.path);
                break;
            }
            w->lines = nl;
        }
        w->lines[w->n_lines++] = j;
    }
    free(line);
    fclose(f);
    if (st == RYOT_OK && w->n_lines == 0) st = ryot_fail(err, RYOT_ERR_FORMAT, "%s: no requests", w->cfg.path);
    return st;
}

ryot_status workload_new(const workload_config *cfg, workload **out, ryot_error *err) {
    *out = NULL;
    if (cfg->input_len < 1 || cfg->output_len < 1)
        return ryot_fail(err, RYOT_ERR_INVALID, "input and output lengths must be >= 1");
    if (cfg->kind == WORKLOAD_SHARED_PREFIX && (cfg->users < 1 || cfg->turns < 1 || cfg->prefix_len < 0))
        return ryot_fail(err, RYOT_ERR_INVALID, "shared-prefix needs users >= 1, turns >= 1, prefix-len >= 0");
    if (cfg->kind == WORKLOAD_FILE && !cfg->path) return ryot_fail(err, RYOT_ERR_INVALID, "file workload without a path");
    workload *w = calloc(1, sizeof *w);
    if (!w) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    w->cfg = *cfg;
    ryot_rng_seed(&w->rng, cfg->seed);
    ryot_status st = RYOT_OK;
    if (cfg->model && !(w->model = strdup(cfg->model))) goto nomem;
    if (cfg->kind == WORKLOAD_SHARED_PREFIX) {
        ryot_rng prng;
        ryot_rng_seed(&prng, cfg->seed ^ 0x5eedf00dull);
        w->system_prompt = cfg->prefix_len > 0 ? random_words(&prng, cfg->prefix_len) : strdup("");
        w->users = calloc((size_t)cfg->users, sizeof *w->users);
        if (!w->system_prompt || !w->users) goto nomem;
    } else if (cfg->kind == WORKLOAD_FILE) {
        if ((st = load_file(w, err)) != RYOT_OK) {
            workload_free(w);
            return st;
        }
    }
    *out = w;
    return RYOT_OK;
nomem:
    workload_free(w);
    return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
}

void workload_free(workload *w) {
    if (!w) return;
    if (w->users)
        for (int i = 0; i < w->cfg.users; i++) json_decref(w->users[i].messages);
    free(w->users);
    for (size_t i = 0; i < w->n_lines; i++) json_decref(w->lines[i]);
    free(w->lines);
    for (size_t i = 0; i < w->n_sent; i++) free(w->sent[i]);
    free(w->sent);
    free(w->sent_in);
    free(w->system_prompt);
    free(w->model);
    free(w);
}

lg_source workload_source(workload *w) {
    return (lg_source){.ud = w, .next = wl_next, .done = w->cfg.kind == WORKLOAD_SHARED_PREFIX ? done_shared : NULL};
}

bool workload_needs_text(const workload *w) { return w->cfg.kind == WORKLOAD_SHARED_PREFIX; }

long workload_default_requests(const workload *w) {
    if (w->cfg.kind == WORKLOAD_SHARED_PREFIX) return (long)w->cfg.users * w->cfg.turns;
    if (w->cfg.kind == WORKLOAD_FILE) return (long)w->n_lines;
    return 0;
}
