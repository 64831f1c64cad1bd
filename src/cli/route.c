/* `ryot route`: the OpenAI-compatible front over several `ryot serve`
 * backends (src/router/).  Serves until SIGINT or SIGTERM, then exits 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "router/pool.h"
#include "router/router.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out) {
    rt_pool_params d = rt_pool_default_params();
    rt_canary_params cd = rt_canary_default_params();
    fprintf(out,
            "usage: ryot route --backend URL [--backend URL ...] | --redis URL [options]\n"
            "\n"
            "Front several `ryot serve` backends with the same OpenAI-compatible API:\n"
            "POST /v1/chat/completions, /v1/completions, /v1/embeddings, /tokenize, /detokenize,\n"
            "/apply-template are forwarded (streams pass through as they arrive; a client that\n"
            "leaves cancels the upstream request); GET /v1/models merges the backends' models.\n"
            "Own endpoints: GET /health, /metrics (ryot_router_*), /admin/backends (JSON).\n"
            "\n"
            "options:\n"
            "      --backend [GROUP=]URL  a backend, http://HOST:PORT (repeatable); GROUP= puts it in a\n"
            "                          canary group, used only by --canary splits\n"
            "      --redis URL         also route to the backends registered in Redis\n"
            "                          (redis://HOST[:PORT][/DB]; ryot serve --register URL)\n"
            "      --host ADDR         IPv4 address to listen on (default 127.0.0.1)\n"
            "      --port N            TCP port (default 8090; 0: any free port, printed)\n"
            "      --policy P          prefix (default), least-loaded or round-robin\n"
            "      --prefix-block N    bytes per hashed prompt block (default %d)\n"
            "      --prefix-entries N  block hashes remembered per backend (default %d)\n"
            "      --prefix-balance X  a prefix holder is skipped when its load exceeds\n"
            "                          X x (least load + 1) (default %g)\n"
            "      --breaker-failures N  consecutive 5xx / cut responses that open a backend's\n"
            "                          breaker (default %d; a refused connection opens it at once)\n"
            "      --cooldown-ms N     an open breaker waits this long before a probe may\n"
            "                          half-open it (default %d)\n"
            "      --probe-ms N        health and load probe period (default 250)\n"
            "      --connect-timeout-ms N  upstream connect bound (default 1000)\n"
            "      --max-body BYTES    largest request body (default 8388608); larger: 413\n"
            "      --canary MODEL=GROUP:PERCENT  send PERCENT %% of MODEL's requests to the backends of\n"
            "                          GROUP (repeatable, one per model); sticky by the request's \"user\"\n"
            "                          field, else its X-Ryot-User header, else random\n"
            "      --canary-window S   seconds per comparison window (default %g)\n"
            "      --canary-min-requests N  requests each arm needs in a window to be compared (default %d)\n"
            "      --canary-error-margin X  roll back when the canary's error rate exceeds the\n"
            "                          baseline's by more than X (default %g)\n"
            "      --canary-ttft-margin X  roll back when the canary's p99 time to first byte exceeds\n"
            "                          the baseline's by more than X times (default %g)\n"
            "      --quiet             no log lines for failures and breaker changes\n"
            "  -h, --help              this help\n",
            d.prefix_block, d.prefix_entries, d.prefix_balance, d.breaker_failures, d.cooldown_ms, cd.window_s,
            cd.min_requests, cd.err_margin, cd.ttft_margin);
}

int cmd_route(int argc, char **argv) {
    rt_pool_params pp = rt_pool_default_params();
    rt_server_params sp = {.host = "127.0.0.1", .port = 8090};
    rt_canary_params cp = rt_canary_default_params();
    const char **urls = calloc((size_t)argc, sizeof *urls);
    const char **canaries = calloc((size_t)argc, sizeof *canaries);
    rt_canary *canary = NULL;
    int n_urls = 0, n_canaries = 0;
    if (!urls || !canaries) {
        free(urls);
        free(canaries);
        return 1;
    }
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        double x;
#define NEED_INT(lo, hi)                                                                                  \
    do {                                                                                                  \
        if (!v || !cli_parse_long(v, lo, hi, &n)) {                                                       \
            fprintf(stderr, "ryot route: %s needs an integer in %ld..%ld\n", a, (long)(lo), (long)(hi)); \
            goto out;                                                                                     \
        }                                                                                                 \
        i++;                                                                                              \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--backend") && v) {
            urls[n_urls++] = v, i++;
        } else if (!strcmp(a, "--redis") && v) {
            sp.redis_url = v, i++;
        } else if (!strcmp(a, "--host") && v) {
            sp.host = v, i++;
        } else if (!strcmp(a, "--port")) {
            NEED_INT(0, 65535);
            sp.port = (int)n;
        } else if (!strcmp(a, "--policy") && v) {
            if (!rt_policy_parse(v, &pp.policy)) {
                fprintf(stderr, "ryot route: --policy must be prefix, least-loaded or round-robin\n");
                goto out;
            }
            i++;
        } else if (!strcmp(a, "--prefix-block")) {
            NEED_INT(16, 1 << 20);
            pp.prefix_block = (int)n;
        } else if (!strcmp(a, "--prefix-entries")) {
            NEED_INT(16, 1 << 24);
            pp.prefix_entries = (int)n;
        } else if (!strcmp(a, "--prefix-balance")) {
            if (!v || !cli_parse_double(v, 0, 1e6, &x)) {
                fprintf(stderr, "ryot route: --prefix-balance needs a number >= 0\n");
                goto out;
            }
            pp.prefix_balance = x, i++;
        } else if (!strcmp(a, "--breaker-failures")) {
            NEED_INT(1, 1000);
            pp.breaker_failures = (int)n;
        } else if (!strcmp(a, "--cooldown-ms")) {
            NEED_INT(0, 3600000);
            pp.cooldown_ms = (int)n;
        } else if (!strcmp(a, "--probe-ms")) {
            NEED_INT(10, 60000);
            sp.probe_ms = (int)n;
        } else if (!strcmp(a, "--connect-timeout-ms")) {
            NEED_INT(1, 60000);
            sp.connect_timeout_ms = (int)n;
        } else if (!strcmp(a, "--max-body")) {
            NEED_INT(1, 1L << 30);
            sp.max_body = (size_t)n;
        } else if (!strcmp(a, "--canary") && v) {
            canaries[n_canaries++] = v, i++;
        } else if (!strcmp(a, "--canary-window")) {
            if (!v || !cli_parse_double(v, 0.1, 86400, &x)) {
                fprintf(stderr, "ryot route: --canary-window needs seconds in 0.1..86400\n");
                goto out;
            }
            cp.window_s = x, i++;
        } else if (!strcmp(a, "--canary-min-requests")) {
            NEED_INT(1, 1000000);
            cp.min_requests = (int)n;
        } else if (!strcmp(a, "--canary-error-margin") || !strcmp(a, "--canary-ttft-margin")) {
            if (!v || !cli_parse_double(v, 0, 1000, &x)) {
                fprintf(stderr, "ryot route: %s needs a number >= 0\n", a);
                goto out;
            }
            if (strstr(a, "error")) cp.err_margin = x;
            else cp.ttft_margin = x;
            i++;
        } else if (!strcmp(a, "--quiet")) {
            sp.quiet = true;
        } else {
            fprintf(stderr, "ryot route: unknown or incomplete option '%s' (see --help)\n", a);
            goto out;
        }
#undef NEED_INT
    }
    if (!n_urls && !sp.redis_url) {
        fprintf(stderr, "ryot route: give at least one --backend URL, or --redis URL (see --help)\n");
        goto out;
    }
    rc = 1;
    ryot_error err = {0};
    if (n_canaries) {
        if (!(canary = rt_canary_new(&cp))) goto out;
        for (int k = 0; k < n_canaries; k++)
            if (rt_canary_add(canary, canaries[k], &err)) {
                fprintf(stderr, "ryot route: %s\n", err.msg);
                rc = 2;
                goto out;
            }
    }
    sp.canary = canary;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rt_pool *pool;
    if (rt_pool_new(&pp, urls, n_urls, &pool, &err)) {
        fprintf(stderr, "ryot route: %s\n", err.msg);
        goto out;
    }
    rt_server *s;
    canary = NULL; /* the server takes it over, and frees it on failure too */
    if (rt_server_start(&sp, pool, &s, &err)) { /* the pool likewise */
        fprintf(stderr, "ryot route: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "ryot route: listening on http://%s:%d (%d backends, policy %s%s%s)\n", sp.host,
            rt_server_port(s), n_urls, rt_policy_name(pp.policy), sp.redis_url ? ", discovery " : "",
            sp.redis_url ? sp.redis_url : "");
    while (!g_stop) pause();
    fprintf(stderr, "ryot route: stopping\n");
    rt_server_stop(s);
    rc = 0;
out:
    rt_canary_free(canary);
    free(canaries);
    free(urls);
    return rc;
}
