/* `ryot bench serve`: the serving benchmark client.  Drives an
 * OpenAI-compatible server (ryot serve, llama-server, vLLM...) with streamed
 * requests, prints vLLM-style metrics, and writes a result file (--json;
 * schema in docs/BENCHMARKING.md); optionally samples a process for a soak
 * test (--pid).  The other `ryot bench` subcommands have a file each
 * (bench_compare.c, bench_plot.c, bench_kernels.c, bench_membw.c,
 * bench_tokenizer.c).
 * Exit status: 0 ok; 1 a run where no request succeeded, or a soak leak
 * verdict; 2 bad usage. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchsuite/loadgen.h"
#include "core/clock.h"
#include "benchsuite/results.h"
#include "benchsuite/soak.h"
#include "benchsuite/stats.h"
#include "benchsuite/workload.h"
#include "cli/cli.h"

#define MAX_SWEEP 64

static void serve_usage(FILE *out) {
    fprintf(out,
            "usage: ryot bench serve --url URL [options]\n"
            "\n"
            "Load-test an OpenAI-compatible server with streamed requests and report\n"
            "TTFT, TPOT, ITL, E2E latency, throughput, goodput and errors.\n"
            "\n"
            "server:\n"
            "  --url URL              server base URL (e.g. http://127.0.0.1:8080) or a full endpoint URL\n"
            "  --endpoint chat|completions   /v1/chat/completions (default) or /v1/completions\n"
            "  --model NAME           model field (default: first id of GET /v1/models, else none)\n"
            "  --api-key KEY          sent as 'Authorization: Bearer KEY'\n"
            "  --timeout S            per-request timeout (default 600)\n"
            "load shape (one run per listed value):\n"
            "  --concurrency LIST     requests kept in flight, e.g. 1,5,10,50,100 (default 1)\n"
            "  --rate LIST            Poisson arrivals, requests/s (open loop); --max-concurrency caps it\n"
            "  --max-concurrency N    in-flight cap with --rate (default: none)\n"
            "  --num-requests N       requests per run (default 100; shared-prefix: users*turns)\n"
            "  --duration S           stop issuing after S seconds (with or instead of -n)\n"
            "  --warmup N             requests sent first and not counted (default 0)\n"
            "  --seed N               workload and arrival seed (default 1)\n"
            "workload:\n"
            "  --workload W           synthetic (default), shared-prefix, mixed-priority, file:PATH.jsonl\n"
            "  --input-len N          prompt words, ~tokens (default 128)\n"
            "  --output-len N         max_tokens (default 128)\n"
            "  --input-dist D         fixed | uniform:A,B | normal:MU,SD (default fixed)\n"
            "  --output-dist D        the same for output lengths\n"
            "  --no-ignore-eos        do not send \"ignore_eos\": true\n"
            "  --repeat-ratio R       synthetic: resend an earlier request verbatim with probability R\n"
            "                         (and send temperature 0: response-cache benchmarks)\n"
            "  --prefix-len N         shared-prefix: system prompt words (default 1024)\n"
            "  --users N --turns N    shared-prefix: conversations and turns each (default 16, 3)\n"
            "  --tier-mix SPEC        mixed-priority weights, e.g. critical=1,high=2,normal=4,low=2,background=1\n"
            "metrics and output:\n"
            "  --slo ttft=MS,tpot=MS  goodput SLOs\n"
            "  --json FILE            write the result file\n"
            "  --label TEXT           free text stored in the result file\n"
            "  --metrics-url URL      Prometheus endpoint (default: URL's origin + /metrics)\n"
            "  --no-metrics           do not scrape /metrics\n"
            "  --metric-hits S --metric-queries S --metric-kv S\n"
            "                         substrings naming the prefix-cache hit/query counters and the\n"
            "                         KV-usage gauge (default prefix_cache_hits, prefix_cache_queries,\n"
            "                         kv_cache_usage)\n"
            "  --pid PID              soak: sample VmRSS and open fds of PID during the run\n"
            "  --sample-interval S    soak sampling period (default 5)\n"
            "  --soak-skip S          leave the first S seconds (warm-up, caches filling) out of the fit\n"
            "  --progress, --no-progress   progress bar on stderr (default: when a tty)\n"
            "  -h, --help\n");
}

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}
static bool parse_list(const char *s, double lo, double hi, double *vals, int *n) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= MAX_SWEEP || !cli_parse_double(tok, lo, hi, &vals[*n])) return false;
        (*n)++;
    }
    return *n > 0;
}

static bool parse_slo(const char *s, serve_slo *slo) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return false;
        *eq = '\0';
        double v;
        if (!cli_parse_double(eq + 1, 0, 1e9, &v)) return false;
        if (!strcmp(tok, "ttft"))
            slo->ttft_ms = v;
        else if (!strcmp(tok, "tpot"))
            slo->tpot_ms = v;
        else
            return false;
    }
    return true;
}

/* Soak sampling and the progress bar, driven by the load generator's tick. */
typedef struct tick_state {
    bool progress;
    long total;      /* requests expected (0: unknown) */
    double duration; /* or the time limit */
    char label[64];
    int pid;
    double interval, last_sample, t_offset;
    soak_sample *samples;
    size_t n_samples, cap;
    bool sample_failed;
} tick_state;

static void take_sample(tick_state *ts, double t) {
    soak_sample s;
    ryot_error err = {0};
    if (soak_read(ts->pid, &s, &err) != RYOT_OK) {
        if (!ts->sample_failed) fprintf(stderr, "\nryot bench serve: soak sample: %s\n", err.msg);
        ts->sample_failed = true;
        return;
    }
    if (ts->n_samples == ts->cap) {
        size_t c = ts->cap ? ts->cap * 2 : 256;
        soak_sample *nb = realloc(ts->samples, c * sizeof *nb);
        if (!nb) return;
        ts->samples = nb;
        ts->cap = c;
    }
    s.t_s = t;
    ts->samples[ts->n_samples++] = s;
    ts->last_sample = t;
}

static void on_tick(void *ud, double t, size_t done, size_t in_flight, bool final) {
    tick_state *ts = ud;
    double abs_t = ts->t_offset + t;
    if (ts->pid > 0 && (ts->n_samples == 0 || abs_t - ts->last_sample >= ts->interval)) take_sample(ts, abs_t);
    if (!ts->progress) return;
    double frac = ts->total > 0 ? (double)done / (double)ts->total : ts->duration > 0 ? t / ts->duration : 0;
    if (frac > 1) frac = 1;
    int w = 30, fill = (int)(frac * w);
    char bar[32];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : ' ';
    bar[w] = '\0';
    fprintf(stderr, "\r%-12s [%s] %zu", ts->label, bar, done);
    if (ts->total > 0) fprintf(stderr, "/%ld", ts->total);
    fprintf(stderr, " done, %zu in flight, %.1f s   ", in_flight, t);
    if (final) fprintf(stderr, "\n");
    fflush(stderr);
}

/* Base origin "http://host:port" of a URL (into out). */
static void url_origin(const char *url, char *out, size_t cap) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - url) : strlen(url);
    snprintf(out, cap, "%.*s", (int)n, url);
}

typedef struct scrape {
    bool ok;
    bool has_hits, has_queries, has_kv;
    double hits, queries, kv;
} scrape;

typedef struct metric_names {
    const char *url, *hits, *queries, *kv;
} metric_names;

static scrape do_scrape(const metric_names *mn, const char *api_key, char **raw) {
    scrape s = {0};
    char *body = NULL;
    long status = 0;
    ryot_error err = {0};
    if (raw) *raw = NULL;
    if (!mn->url || lg_http_get(mn->url, api_key, 10, &body, &status, &err) != RYOT_OK || status != 200) {
        free(body);
        return s;
    }
    s.ok = true;
    s.has_hits = prom_sum(body, mn->hits, &s.hits);
    s.has_queries = prom_sum(body, mn->queries, &s.queries);
    s.has_kv = prom_sum(body, mn->kv, &s.kv);
    if (raw)
        *raw = body;
    else
        free(body);
    return s;
}

static json_t *scrape_json(const scrape *s) {
    json_t *o = json_object();
    if (s->has_hits) json_object_set_new(o, "prefix_cache_hits", json_real(s->hits));
    if (s->has_queries) json_object_set_new(o, "prefix_cache_queries", json_real(s->queries));
    if (s->has_kv) json_object_set_new(o, "kv_cache_usage", json_real(s->kv));
    return o;
}

static void print_summary(const char *name, const stats_summary *s) {
    printf("%-34s %10.2f\n", name, s->mean);
    printf("  median / p90 / p95 / p99 (ms):  %9.2f %9.2f %9.2f %9.2f\n", s->p50, s->p90, s->p95, s->p99);
    printf("  sd / min / max (ms):            %9.2f %9.2f %9.2f\n", s->sd, s->min, s->max);
}

static void print_metrics(const char *title, const serve_metrics *m, const serve_slo *slo) {
    printf("============ %s ============\n", title);
    printf("%-34s %10zu\n", "Successful requests:", m->n_ok);
    printf("%-34s %10zu\n", "Failed requests:", m->n_failed);
    for (size_t i = 0; i < m->n_error_kinds; i++) {
        char k[48];
        if (m->errors[i].status == 0)
            snprintf(k, sizeof k, "  transport errors:");
        else if (m->errors[i].status / 100 == 2)
            snprintf(k, sizeof k, "  stream errors:");
        else
            snprintf(k, sizeof k, "  HTTP %ld:", m->errors[i].status);
        printf("%-34s %10zu\n", k, m->errors[i].count);
    }
    printf("%-34s %10.2f\n", "Benchmark duration (s):", m->duration_s);
    printf("%-34s %10lld\n", "Total input tokens:", (long long)m->input_tokens);
    printf("%-34s %10lld\n", "Total generated tokens:", (long long)m->output_tokens);
    printf("%-34s %10.2f\n", "Request throughput (req/s):", m->request_throughput);
    printf("%-34s %10.2f\n", "Output token throughput (tok/s):", m->output_throughput);
    printf("%-34s %10.2f\n", "Total token throughput (tok/s):", m->total_token_throughput);
    if (slo->ttft_ms > 0 || slo->tpot_ms > 0) printf("%-34s %10.2f\n", "Goodput (req/s):", m->goodput);
    print_summary("Mean TTFT (ms):", &m->ttft);
    print_summary("Mean TPOT (ms):", &m->tpot);
    print_summary("Mean ITL (ms):", &m->itl);
    print_summary("Mean E2E latency (ms):", &m->e2e);
}

static json_t *settings_json(const workload_config *wc, const double *sweep, int n_sweep, bool by_rate,
                             int max_conc, long num_requests, double duration, long warmup, const serve_slo *slo,
                             double timeout) {
    json_t *o = json_object();
    json_object_set_new(o, "workload", json_string(workload_kind_name(wc->kind)));
    if (wc->kind == WORKLOAD_FILE) json_object_set_new(o, "file", json_string(wc->path));
    json_object_set_new(o, "endpoint", json_string(wc->chat ? "chat" : "completions"));
    json_object_set_new(o, "input_len", json_integer(wc->input_len));
    json_object_set_new(o, "output_len", json_integer(wc->output_len));
    if (wc->repeat_ratio > 0) json_object_set_new(o, "repeat_ratio", json_real(wc->repeat_ratio));
    static const char *const DN[] = {"fixed", "uniform", "normal"};
    json_t *d = json_object();
    json_object_set_new(d, "kind", json_string(DN[wc->input_dist.kind]));
    json_object_set_new(d, "a", json_real(wc->input_dist.a));
    json_object_set_new(d, "b", json_real(wc->input_dist.b));
    json_object_set_new(o, "input_dist", d);
    d = json_object();
    json_object_set_new(d, "kind", json_string(DN[wc->output_dist.kind]));
    json_object_set_new(d, "a", json_real(wc->output_dist.a));
    json_object_set_new(d, "b", json_real(wc->output_dist.b));
    json_object_set_new(o, "output_dist", d);
    json_object_set_new(o, "ignore_eos", json_boolean(wc->ignore_eos));
    if (wc->kind == WORKLOAD_SHARED_PREFIX) {
        json_object_set_new(o, "prefix_len", json_integer(wc->prefix_len));
        json_object_set_new(o, "users", json_integer(wc->users));
        json_object_set_new(o, "turns", json_integer(wc->turns));
    }
    if (wc->kind == WORKLOAD_MIXED_PRIORITY) {
        json_t *mix = json_object();
        for (int i = 0; i < LG_N_TIERS; i++) json_object_set_new(mix, workload_tier_name(i), json_real(wc->tier_mix[i]));
        json_object_set_new(o, "tier_mix", mix);
    }
    json_t *sw = json_array();
    for (int i = 0; i < n_sweep; i++) json_array_append_new(sw, json_real(sweep[i]));
    json_object_set_new(o, by_rate ? "rates" : "concurrencies", sw);
    if (by_rate) json_object_set_new(o, "max_concurrency", max_conc > 0 ? json_integer(max_conc) : json_null());
    json_object_set_new(o, "num_requests", num_requests > 0 ? json_integer(num_requests) : json_null());
    json_object_set_new(o, "duration_s", duration > 0 ? json_real(duration) : json_null());
    json_object_set_new(o, "warmup", json_integer(warmup));
    json_object_set_new(o, "seed", json_integer((json_int_t)wc->seed));
    json_object_set_new(o, "timeout_s", json_real(timeout));
    json_object_set_new(o, "slo_ttft_ms", slo->ttft_ms > 0 ? json_real(slo->ttft_ms) : json_null());
    json_object_set_new(o, "slo_tpot_ms", slo->tpot_ms > 0 ? json_real(slo->tpot_ms) : json_null());
    return o;
}

/* GET /v1/models: the first model id and a guess of the server kind. */
static void probe_server(const char *origin, const char *api_key, char *model, size_t mcap, char *kind, size_t kcap) {
    char url[600];
    snprintf(url, sizeof url, "%s/v1/models", origin);
    char *body = NULL;
    long status = 0;
    ryot_error err = {0};
    snprintf(kind, kcap, "unknown");
    if (lg_http_get(url, api_key, 10, &body, &status, &err) != RYOT_OK || status != 200) {
        free(body);
        return;
    }
    json_t *j = json_loads(body, 0, NULL);
    json_t *first = json_array_get(json_object_get(j, "data"), 0);
    const char *id = json_string_value(json_object_get(first, "id"));
    const char *owner = json_string_value(json_object_get(first, "owned_by"));
    if (id && model && !model[0]) snprintf(model, mcap, "%s", id);
    if (owner && strstr(owner, "llamacpp"))
        snprintf(kind, kcap, "llama.cpp");
    else if (owner && strstr(owner, "ryot"))
        snprintf(kind, kcap, "ryot");
    else if (owner && strstr(owner, "vllm"))
        snprintf(kind, kcap, "vllm");
    json_decref(j);
    free(body);
}

int cmd_bench_serve(int argc, char **argv) {
    const char *url = NULL, *api_key = NULL, *json_out = NULL, *label = NULL, *metrics_url = NULL;
    const char *model_arg = NULL;
    metric_names mn = {.hits = "prefix_cache_hits", .queries = "prefix_cache_queries", .kv = "kv_cache_usage"};
    bool no_metrics = false, by_rate = false;
    int progress = -1;
    double conc[MAX_SWEEP] = {1}, rates[MAX_SWEEP];
    int n_conc = 1, n_rates = 0;
    double max_conc = 0, duration = 0, timeout = 600, sample_interval = 5, soak_skip = 0, d;
    long num_requests = 0, warmup = 0, pid = 0;
    serve_slo slo = {0, 0};
    workload_config wc = workload_config_default();
    ryot_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-ignore-eos")) {
            wc.ignore_eos = false;
            continue;
        }
        if (!strcmp(a, "--no-metrics")) {
            no_metrics = true;
            continue;
        }
        if (!strcmp(a, "--progress") || !strcmp(a, "--no-progress")) {
            progress = a[2] == 'p';
            continue;
        }
        if (!v) {
            fprintf(stderr, "ryot bench serve: %s needs a value (or is unknown; see --help)\n", a);
            return 2;
        }
        i++;
        bool ok = true;
        if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--endpoint")) {
            ok = !strcmp(v, "chat") || !strcmp(v, "completions");
            wc.chat = !strcmp(v, "chat");
        } else if (!strcmp(a, "--model")) model_arg = v;
        else if (!strcmp(a, "--api-key")) api_key = v;
        else if (!strcmp(a, "--timeout")) ok = cli_parse_double(v, 0.001, 1e6, &timeout);
        else if (!strcmp(a, "--concurrency")) ok = parse_list(v, 1, 100000, conc, &n_conc);
        else if (!strcmp(a, "--rate")) ok = parse_list(v, 1e-6, 1e6, rates, &n_rates), by_rate = true;
        else if (!strcmp(a, "--max-concurrency")) ok = cli_parse_double(v, 1, 100000, &max_conc);
        else if (!strcmp(a, "--num-requests") || !strcmp(a, "-n")) ok = cli_parse_double(v, 1, 1e9, &d), num_requests = (long)d;
        else if (!strcmp(a, "--duration")) ok = cli_parse_double(v, 0.001, 1e7, &duration);
        else if (!strcmp(a, "--warmup")) ok = cli_parse_double(v, 0, 1e9, &d), warmup = (long)d;
        else if (!strcmp(a, "--seed")) ok = cli_parse_double(v, 0, 9e15, &d), wc.seed = (uint64_t)d;
        else if (!strcmp(a, "--workload")) {
            if (workload_parse_kind(v, &wc, &err) != RYOT_OK) goto bad_err;
        } else if (!strcmp(a, "--input-len")) ok = cli_parse_double(v, 1, 1e6, &d), wc.input_len = (int)d;
        else if (!strcmp(a, "--output-len")) ok = cli_parse_double(v, 1, 1e6, &d), wc.output_len = (int)d;
        else if (!strcmp(a, "--input-dist")) {
            if (workload_parse_dist(v, &wc.input_dist, &err) != RYOT_OK) goto bad_err;
        } else if (!strcmp(a, "--output-dist")) {
            if (workload_parse_dist(v, &wc.output_dist, &err) != RYOT_OK) goto bad_err;
        } else if (!strcmp(a, "--repeat-ratio")) ok = cli_parse_double(v, 0, 1, &wc.repeat_ratio);
        else if (!strcmp(a, "--prefix-len")) ok = cli_parse_double(v, 0, 1e6, &d), wc.prefix_len = (int)d;
        else if (!strcmp(a, "--users")) ok = cli_parse_double(v, 1, 1e5, &d), wc.users = (int)d;
        else if (!strcmp(a, "--turns")) ok = cli_parse_double(v, 1, 1e5, &d), wc.turns = (int)d;
        else if (!strcmp(a, "--tier-mix")) {
            if (workload_parse_mix(v, wc.tier_mix, &err) != RYOT_OK) goto bad_err;
        } else if (!strcmp(a, "--slo")) ok = parse_slo(v, &slo);
        else if (!strcmp(a, "--json")) json_out = v;
        else if (!strcmp(a, "--label")) label = v;
        else if (!strcmp(a, "--metrics-url")) metrics_url = v;
        else if (!strcmp(a, "--metric-hits")) mn.hits = v;
        else if (!strcmp(a, "--metric-queries")) mn.queries = v;
        else if (!strcmp(a, "--metric-kv")) mn.kv = v;
        else if (!strcmp(a, "--pid")) ok = cli_parse_double(v, 1, 4194304, &d), pid = (long)d;
        else if (!strcmp(a, "--sample-interval")) ok = cli_parse_double(v, 0.01, 86400, &sample_interval);
        else if (!strcmp(a, "--soak-skip")) ok = cli_parse_double(v, 0, 1e7, &soak_skip);
        else {
            fprintf(stderr, "ryot bench serve: unknown option '%s'\n", a);
            serve_usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "ryot bench serve: bad value '%s' for %s\n", v, a);
            return 2;
        }
        continue;
    bad_err:
        fprintf(stderr, "ryot bench serve: %s\n", err.msg);
        return 2;
    }
    if (!url) {
        fprintf(stderr, "ryot bench serve: --url is required\n");
        serve_usage(stderr);
        return 2;
    }

    char origin[512], endpoint[600], murl[600], model[256] = "", kind[32];
    url_origin(url, origin, sizeof origin);
    if (strstr(url, "/v1/"))
        snprintf(endpoint, sizeof endpoint, "%s", url);
    else
        snprintf(endpoint, sizeof endpoint, "%s%s", origin, wc.chat ? "/v1/chat/completions" : "/v1/completions");
    snprintf(murl, sizeof murl, "%s/metrics", origin);
    mn.url = no_metrics ? NULL : metrics_url ? metrics_url : murl;
    if (model_arg) snprintf(model, sizeof model, "%s", model_arg);
    probe_server(origin, api_key, model, sizeof model, kind, sizeof kind);
    wc.model = model[0] ? model : NULL;

    int rc = 1;
    workload *wl = NULL;
    json_t *doc = json_object(), *runs = json_array();
    tick_state ts = {.pid = (int)pid, .interval = sample_interval};
    if (workload_new(&wc, &wl, &err) != RYOT_OK) {
        fprintf(stderr, "ryot bench serve: %s\n", err.msg);
        json_decref(doc);
        json_decref(runs);
        return 2;
    }
    if (num_requests <= 0 && duration <= 0) {
        num_requests = workload_default_requests(wl);
        if (num_requests <= 0) num_requests = 100;
    }
    ts.progress = progress < 0 ? isatty(2) : progress;
    struct sigaction sa = {.sa_handler = on_sigint}, old_sa;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);

    /* /metrics: tolerated missing (llama-server without --metrics) */
    scrape probe = do_scrape(&mn, api_key, NULL);
    if (!strcmp(kind, "unknown") && probe.ok) {
        char *raw = NULL;
        do_scrape(&mn, api_key, &raw);
        if (raw && strstr(raw, "ryot_")) snprintf(kind, sizeof kind, "ryot");
        else if (raw && strstr(raw, "llamacpp:")) snprintf(kind, sizeof kind, "llama.cpp");
        free(raw);
    }
    fprintf(stderr, "ryot bench serve: %s (%s), model %s, /metrics %s\n", endpoint, kind, model[0] ? model : "(none)",
            probe.ok ? "found" : "not available");

    char git[64];
    results_git_commit(git, sizeof git);
    char cmdline[4096] = "ryot bench";
    json_t *jargv = json_array();
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(cmdline);
        snprintf(cmdline + l, sizeof cmdline - l, " %s", argv[i]);
        json_array_append_new(jargv, json_string(argv[i]));
    }
    time_t now = time(NULL);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_set_new(doc, "schema", json_string(RESULTS_SCHEMA));
    json_object_set_new(doc, "created_utc", json_string(stamp));
    json_object_set_new(doc, "command", json_string(cmdline));
    json_object_set_new(doc, "argv", jargv);
    json_object_set_new(doc, "git_commit", json_string(git));
    if (label) json_object_set_new(doc, "label", json_string(label));
    json_object_set_new(doc, "machine", results_machine_json());
    json_t *server = json_object();
    json_object_set_new(server, "url", json_string(url));
    json_object_set_new(server, "endpoint_url", json_string(endpoint));
    json_object_set_new(server, "kind", json_string(kind));
    json_object_set_new(server, "model", model[0] ? json_string(model) : json_null());
    json_object_set_new(server, "metrics_url", mn.url && probe.ok ? json_string(mn.url) : json_null());
    json_object_set_new(doc, "server", server);
    json_object_set_new(doc, "settings", settings_json(&wc, by_rate ? rates : conc, by_rate ? n_rates : n_conc, by_rate,
                                                      (int)max_conc, num_requests, duration, warmup, &slo, timeout));

    int n_points = by_rate ? n_rates : n_conc;
    double soak_t0 = ryot_now_s();
    bool any_fail = false;
    lg_source src = workload_source(wl);
    for (int p = 0; p < n_points && !g_stop; p++) {
        lg_config cfg = lg_config_default();
        cfg.url = endpoint;
        cfg.api_key = api_key;
        cfg.chat = wc.chat;
        cfg.rate = by_rate ? rates[p] : 0;
        cfg.max_in_flight = by_rate ? (int)max_conc : (int)conc[p];
        cfg.seed = wc.seed + (uint64_t)p;
        cfg.timeout_s = timeout;
        cfg.keep_text = workload_needs_text(wl);
        cfg.stop = &g_stop;
        cfg.on_tick = on_tick;
        cfg.tick_ud = &ts;
        if (pid > 0 && sample_interval < cfg.tick_s) cfg.tick_s = sample_interval;
        char point[64];
        if (by_rate)
            snprintf(point, sizeof point, "rate %g/s", rates[p]);
        else
            snprintf(point, sizeof point, "concurrency %g", conc[p]);
        if (warmup > 0) {
            lg_config wcfg = cfg;
            wcfg.num_requests = warmup;
            wcfg.duration_s = 0;
            int saved_pid = ts.pid;
            ts.pid = 0; /* warm-up is not part of the soak */
            ts.total = warmup;
            snprintf(ts.label, sizeof ts.label, "warmup");
            lg_run wr;
            if (lg_run_load(&wcfg, &src, &wr, &err) != RYOT_OK) {
                fprintf(stderr, "ryot bench serve: warm-up: %s\n", err.msg);
                goto out;
            }
            lg_run_free(&wr);
            ts.pid = saved_pid;
        }
        cfg.num_requests = num_requests;
        cfg.duration_s = duration;
        ts.total = num_requests;
        ts.duration = duration;
        snprintf(ts.label, sizeof ts.label, "%s%g", by_rate ? "rate " : "c=", by_rate ? rates[p] : conc[p]);
        ts.t_offset = ryot_now_s() - soak_t0;
        scrape before = do_scrape(&mn, api_key, NULL);
        lg_run run;
        if (lg_run_load(&cfg, &src, &run, &err) != RYOT_OK) {
            fprintf(stderr, "ryot bench serve: %s\n", err.msg);
            goto out;
        }
        scrape after = do_scrape(&mn, api_key, NULL);
        serve_metrics m;
        if (serve_metrics_compute(run.results, run.n_results, run.duration_s, slo, RESULTS_ALL_TIERS, &m, &err) !=
            RYOT_OK) {
            lg_run_free(&run);
            fprintf(stderr, "ryot bench serve: %s\n", err.msg);
            goto out;
        }
        any_fail = any_fail || m.n_ok == 0;
        char title[96];
        snprintf(title, sizeof title, "Serving Benchmark Result (%s)", point);
        print_metrics(title, &m, &slo);
        json_t *jr = json_object();
        json_object_set_new(jr, "concurrency", by_rate ? json_null() : json_real(conc[p]));
        json_object_set_new(jr, "rate", by_rate ? json_real(rates[p]) : json_null());
        json_object_set_new(jr, "max_in_flight", cfg.max_in_flight > 0 ? json_integer(cfg.max_in_flight) : json_null());
        json_object_set_new(jr, "metrics", results_metrics_json(&m));
        /* per tier, when requests carry one */
        json_t *tiers = json_object();
        for (int t = 0; t < LG_N_TIERS; t++) {
            serve_metrics tm;
            if (serve_metrics_compute(run.results, run.n_results, run.duration_s, slo, t, &tm, &err) != RYOT_OK ||
                tm.n_total == 0)
                continue;
            json_object_set_new(tiers, workload_tier_name(t), results_metrics_json(&tm));
            printf("  tier %-10s  n=%-5zu ok=%-5zu TTFT p50 %8.2f p99 %8.2f ms  TPOT p50 %7.2f ms  E2E p99 %9.2f ms\n",
                   workload_tier_name(t), tm.n_total, tm.n_ok, tm.ttft.p50, tm.ttft.p99, tm.tpot.p50, tm.e2e.p99);
        }
        if (json_object_size(tiers))
            json_object_set_new(jr, "tiers", tiers);
        else
            json_decref(tiers);
        json_t *sm = json_object();
        json_object_set_new(sm, "available", json_boolean(before.ok && after.ok));
        if (before.ok && after.ok) {
            json_object_set_new(sm, "before", scrape_json(&before));
            json_object_set_new(sm, "after", scrape_json(&after));
            if (before.has_hits && after.has_hits && before.has_queries && after.has_queries) {
                double dq = after.queries - before.queries, dh = after.hits - before.hits;
                /* Only a rate when hits are a subset of queries; other
                 * servers' counters (llama.cpp's) mean other things. */
                double rate = dq > 0 && dh >= 0 && dh <= dq ? dh / dq : NAN;
                json_object_set_new(sm, "prefix_cache_hits_delta", json_real(dh));
                json_object_set_new(sm, "prefix_cache_queries_delta", json_real(dq));
                json_object_set_new(sm, "prefix_cache_hit_rate", isfinite(rate) ? json_real(rate) : json_null());
                if (isfinite(rate))
                    printf("%-34s %10.4f\n", "Prefix cache hit rate:", rate);
                else
                    printf("%-34s %10s (hits +%.0f, queries +%.0f)\n", "Prefix cache hit rate:", "n/a", dh, dq);
            }
            if (after.has_kv) {
                json_object_set_new(sm, "kv_cache_usage_after", json_real(after.kv));
                printf("%-34s %10.4f\n", "KV cache usage (after):", after.kv);
            }
        }
        json_object_set_new(jr, "server_metrics", sm);
        json_object_set_new(jr, "requests", results_requests_json(run.results, run.n_results));
        json_array_append_new(runs, jr);
        lg_run_free(&run);
        printf("\n");
    }
    json_object_set_new(doc, "runs", runs);
    runs = NULL;
    /* sweep summary */
    json_t *jruns = json_object_get(doc, "runs"), *jr;
    size_t ri;
    if (json_array_size(jruns) > 1) {
        printf("| %9s | %8s | %10s | %9s | %9s | %9s | %9s | %9s | %6s |\n", by_rate ? "rate" : "conc", "req/s",
               "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "ITL p99", "E2E p50", "errors");
        printf("|----------:|---------:|-----------:|----------:|----------:|----------:|----------:|----------:|-------:|\n");
        json_array_foreach(jruns, ri, jr) {
            json_t *m = json_object_get(jr, "metrics");
#define MV(obj, k) json_number_value(json_object_get(obj, k))
            printf("| %9g | %8.2f | %10.2f | %9.2f | %9.2f | %9.2f | %9.2f | %9.2f | %6lld |\n",
                   by_rate ? MV(jr, "rate") : MV(jr, "concurrency"), MV(m, "request_throughput"),
                   MV(m, "output_throughput"), MV(json_object_get(m, "ttft_ms"), "median"),
                   MV(json_object_get(m, "ttft_ms"), "p99"), MV(json_object_get(m, "tpot_ms"), "median"),
                   MV(json_object_get(m, "itl_ms"), "p99"), MV(json_object_get(m, "e2e_ms"), "median"),
                   (long long)json_integer_value(json_object_get(m, "failed")));
#undef MV
        }
    }
    if (pid > 0) {
        take_sample(&ts, ryot_now_s() - soak_t0);
        soak_verdict v;
        size_t first = 0;
        while (first < ts.n_samples && ts.samples[first].t_s < soak_skip) first++;
        soak_analyze(ts.samples + first, ts.n_samples - first, &v);
        json_t *soak = results_soak_json((int)pid, sample_interval, ts.samples, ts.n_samples, &v);
        json_object_set_new(soak, "skip_s", json_real(soak_skip));
        json_object_set_new(doc, "soak", soak);
        printf("============ Soak (pid %ld, %zu samples, %zu fitted) ============\n", pid, ts.n_samples, v.n);
        printf("RSS: mean %.0f KiB, slope %.2f KiB/min (95%% CI %.2f .. %.2f)\n", v.mean_rss_kib, v.rss.slope,
               v.rss.slope_lo, v.rss.slope_hi);
        printf("fds: slope %.3f /min (95%% CI %.3f .. %.3f)\n", v.fds.slope, v.fds.slope_lo, v.fds.slope_hi);
        printf("verdict: %s%s%s\n", v.verdict, v.rss_leak ? " (memory)" : "", v.fd_leak ? " (descriptors)" : "");
        if (v.rss_leak || v.fd_leak) any_fail = true;
    }
    if (json_out) {
        if (results_write(json_out, doc, &err) != RYOT_OK) {
            fprintf(stderr, "ryot bench serve: %s\n", err.msg);
            goto out;
        }
        fprintf(stderr, "ryot bench serve: wrote %s\n", json_out);
    }
    /* Some failed requests are a measurement; a run with none succeeding, or
     * a leak, fails the command (scripts and CI see it). */
    rc = any_fail ? 1 : 0;
out:
    sigaction(SIGINT, &old_sa, NULL);
    free(ts.samples);
    json_decref(runs);
    json_decref(doc);
    workload_free(wl);
    return rc;
}
