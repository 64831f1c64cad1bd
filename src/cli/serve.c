/* `ryot serve`: the OpenAI-compatible server.  Starts listening first (so
 * /health can say "loading"), loads the model, then serves until SIGINT or
 * SIGTERM: new requests get 503 and the listener closes, running and queued
 * requests get --shutdown-timeout seconds to finish, the rest are cut, and
 * the process exits 0. */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/semantic.h"
#include "cli/cli.h"
#include "ryot.h"
#include "sched/sched.h"
#include "sched/runner.h"
#include "router/register.h"
#include "core/clock.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/respcache.h"
#include "store/store.h"
#include "tasks/queue.h"
#include "tasks/service.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out) {
    sched_runner_params d = sched_runner_default_params();
    fprintf(out,
            "usage: ryot serve [-m FILE [--alias NAME]]... [--models DIR] [options]\n"
            "\n"
            "Serve the model over an OpenAI-compatible HTTP API: POST /v1/chat/completions,\n"
            "/v1/completions, /tokenize, /detokenize, /apply-template, /v1/embeddings (with\n"
            "--embed-model); GET /v1/models, /health, /metrics; and a web chat page at /\n"
            "(open http://HOST:PORT/ in a browser).\n"
            "\n"
            "options:\n"
            "  -m, --model FILE        GGUF model (default: $RYOT_MODEL, else the default model); repeat it\n"
            "                          to serve several: a request's \"model\" picks one, the first is the\n"
            "                          default (requests naming none); the first loads at start, the\n"
            "                          others on their first request\n"
            "      --models DIR        also serve every DIR/*.gguf (by name; ids are the file names\n"
            "                          without .gguf), after the -m models\n"
            "      --mem-gb N          unload idle models, least recently used first, so that the loaded\n"
            "                          ones (file + KV pool + logits each) stay within N GiB (default 0:\n"
            "                          no limit); a model with requests in flight is never unloaded\n"
            "      --host ADDR         IPv4 address to listen on (default 127.0.0.1)\n"
            "      --port N            TCP port (default 8080; 0: any free port, printed)\n"
            "      --alias NAME        model name clients use for the -m before it (default: the file name\n"
            "                          without .gguf)\n"
            "      --embed-model FILE  BERT encoder GGUF (ryot convert) for /v1/embeddings; its id is\n"
            "                          the file name without .gguf\n"
            "      --api-key KEY       require 'Authorization: Bearer KEY' (default: $RYOT_API_KEY, else none)\n"
            "  -t, --threads N         engine worker threads (default: online CPUs)\n"
            "      --ctx N             most tokens of one sequence, prompt + output (default %d,\n"
            "                          capped at the model's training context)\n"
            "      --kv-blocks N       KV cache blocks in all (default: max(ctx, 16384) tokens' worth)\n"
            "      --kv-block-size N   positions per KV block: 16, 32, 64, 128 or 256 (default %d)\n"
            "      --batch-tokens N    tokens per engine step: decode tokens, then prefill chunks (default %d)\n"
            "      --max-running N     sequences decoding at once (default %d)\n"
            "      --max-queue N       waiting sequences before answering 429 (default %d; 0: no limit)\n"
            "      --spec-draft N      speculative decoding: up to N draft tokens per sequence and step,\n"
            "                          looked up in the prompt and output (default %d; 0: off)\n"
            "      --draft-model FILE  draft the tokens with this smaller GGUF model instead (it must\n"
            "                          have the model's vocabulary); --spec-draft defaults to %d then\n"
            "      --default-max-tokens N  chat requests without max_tokens generate at most N tokens\n"
            "                          (default %d, capped to the context left; 0: the context left)\n"
            "      --max-body BYTES    largest request body (default 8388608); larger: 413\n"
            "      --cache-mb N        response cache of N MiB for deterministic requests (temperature 0\n"
            "                          or a seed, no logprobs); default 0: off\n"
            "      --cache-ttl S       seconds a cached answer stays valid (default 3600)\n"
            "      --semantic-cache T  also answer a chat question from the cache when an earlier one of the\n"
            "                          same conversation, parameters and model is close in meaning: cosine of\n"
            "                          the final user messages' embeddings >= T, in (0, 1]; needs --embed-model\n"
            "                          and --cache-mb (0.95 recommended: docs/PERFORMANCE.md)\n"
            "      --semantic-entries N  questions its index keeps, least recently used out past that\n"
            "                          (default 16384, at most 65536; ~1.7 KB each with 384-dim vectors)\n"
            "      --redis URL         share cached answers through Redis (redis://HOST[:PORT][/DB]);\n"
            "                          works with or without --cache-mb\n"
            "      --redis-timeout-ms N  bound of each Redis connect and command (default 5)\n"
            "      --body-timeout S    seconds a client gets to send a request body once its headers\n"
            "                          are in (default 60); slower or stalled uploads: the connection closes\n"
            "      --tier-targets A,B,C,D,E  time-to-first-token targets in ms of the tiers critical,\n"
            "                          high, normal, low, background (default %lld,%lld,%lld,%lld,%lld)\n"
            "      --age-ms MS         a waiting request gains one tier per MS waited (default %lld)\n"
            "      --shutdown-timeout S  on SIGINT/SIGTERM, seconds running requests get to finish (default 30)\n"
            "      --store DIR         persistent context store (LMDB in DIR, created if missing): KV blocks\n"
            "                          of finished conversations are written there (quantized, zstd,\n"
            "                          encrypted) and prompts whose prefix is not in RAM load them\n"
            "                          instead of prefilling; also /v1/sessions\n"
            "      --store-key-file F  32-byte key (ryot store keygen F) sealing every record with\n"
            "                          XChaCha20-Poly1305; required unless --store-plaintext\n"
            "      --store-plaintext   store records unencrypted (still integrity-checked)\n"
            "      --store-gb N        size budget in GiB, least recently used records evicted (default 4)\n"
            "      --store-bits K,V    bits per K and V value: 6,4 (default, no zstd), 8,4, 8,8, 16,16\n"
            "                          (lossless); all but 6,4 are zstd-compressed\n"
            "      --tasks-dir DIR     keep the task queue (/v1/tasks, /v1/batches, /v1/files) in an LMDB\n"
            "                          store in DIR, shared by the instances on this machine (default\n"
            "                          without --redis: a temporary directory, lost at exit)\n"
            "      --tasks-redis URL   keep the task queue in Redis Streams, shared by every instance\n"
            "                          (default: the --redis URL when given)\n"
            "      --max-tasks N       outstanding tasks (queued + running) before 429 (default 100000; 0: no limit)\n"
            "      --task-workers N    tasks this instance runs at once (default 4; 0: accept, never run)\n"
            "      --task-visibility-ms MS  a claimed task silent this long is run again elsewhere (default 30000)\n"
            "      --task-max-attempts N  deliveries before a task goes to the dead-letter list (default 3)\n"
            "      --callback-allow HOST  a task's callback_url may name HOST (besides loopback); repeatable\n"
            "      --no-webui          no web chat page at / (it answers 404)\n"
            "      --register URL      once ready, announce this server to `ryot route --redis URL`\n"
            "                          (redis://HOST[:PORT][/DB]): a key with a TTL, renewed every TTL/3\n"
            "      --advertise URL     the URL routers reach this server at (default http://HOST:PORT)\n"
            "      --register-ttl-ms N  the key's TTL (default 3000): a dead server drops out after it\n"
            "      --quiet             no per-request log lines\n"
            "  -h, --help              this help\n",
            d.ctx, d.kv_block_size, d.batch_tokens, d.max_running, d.max_queue, d.spec_draft, SCHED_SPEC_DRAFT_MODEL_K,
            d.default_max_tokens,
            (long long)d.target_ms[0],
            (long long)d.target_ms[1], (long long)d.target_ms[2], (long long)d.target_ms[3],
            (long long)d.target_ms[4], (long long)d.age_ms);
}

/* The file name without directory and .gguf: the id clients name a model by. */
static void file_stem(const char *path, char *id, size_t n) {
    const char *base = strrchr(path, '/');
    snprintf(id, n, "%s", base ? base + 1 : path);
    size_t l = strlen(id);
    if (l > 5 && !strcmp(id + l - 5, ".gguf")) id[l - 5] = 0;
}

static int exec_task(void *ctx, const char *endpoint, const char *body, size_t len, int tier, char **json) {
    return srv_http_execute(ctx, endpoint, body, len, tier, json);
}

/* The temporary task directory (LMDB's two files), when one was made. */
static void remove_tmp_dir(const char *dir) {
    if (!dir[0]) return;
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

/* The registry's load and unload (server/registry.h): a model and its own
 * runner (engine thread, scheduler queue, KV pool) over the shared
 * parameters.  The default model is loaded by cmd_serve first (the store
 * needs its shape before the runner starts) and handed over as preloaded. */
typedef struct serve_loader {
    sched_runner_params cp;
    ryot_model *preloaded; /* entry 0's first load takes it */
    bool draft;
    const char *const *paths;
    srv_registry *reg;
} serve_loader;

static ryot_status loader_load(void *ctx, int idx, const char *path, void **handle, uint64_t *bytes,
                               ryot_error *err) {
    serve_loader *L = ctx;
    ryot_model *m = NULL;
    if (idx == 0 && L->preloaded) {
        m = L->preloaded;
        L->preloaded = NULL;
    } else if (ryot_model_load(path, &m, err)) {
        return err->code;
    }
    srv_model *sm = calloc(1, sizeof *sm);
    sched_runner *r = NULL;
    ryot_status st = sm ? sched_runner_new(m, &L->cp, &r, err) : ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    if (st) {
        free(sm);
        ryot_model_free(m);
        return st;
    }
    sm->model = m;
    sm->runner = r;
    srv_cache_model_identity(m, &sm->fp);
    /* what it may use: the mapped file, its KV pool (F16 K and V) and the logits rows */
    ryot_model_info info;
    ryot_model_get_info(m, &info);
    const sched_runner_params *p = sched_runner_get_params(r);
    uint64_t file = 0, off = 0;
    ryot_model_file_bytes(m, &file, &off);
    const uint64_t kv = (uint64_t)p->kv_blocks * (uint64_t)p->kv_block_size * (uint64_t)info.n_layer *
                        (uint64_t)info.n_head_kv * (uint64_t)info.head_dim * 2 * 2;
    const uint64_t logits = (uint64_t)(p->max_running + SCHED_PROMPT_LP_ROWS) * (uint64_t)info.n_vocab * 4;
    *bytes = file + kv + logits;
    *handle = sm;
    if (L->reg && srv_registry_count(L->reg) > 1)
        fprintf(stderr, "ryot serve: loaded model '%s' (%s, %s, %.1f MiB with its KV pool)\n",
                srv_registry_name(L->reg, idx), info.arch, info.type_name, (double)*bytes / (1 << 20));
    return RYOT_OK;
}

static void loader_unload(void *ctx, int idx, void *handle) {
    serve_loader *L = ctx;
    srv_model *sm = handle;
    sched_runner_free(sm->runner);
    ryot_model_free((ryot_model *)sm->model);
    free(sm);
    if (L->reg) fprintf(stderr, "ryot serve: unloaded model '%s'\n", srv_registry_name(L->reg, idx));
}

typedef struct drain_ctx {
    double deadline;
    int cut;
} drain_ctx;

static void drain_one(void *ctx, int idx, void *handle) {
    (void)idx;
    drain_ctx *d = ctx;
    const double left = d->deadline - ryot_now_s();
    d->cut += sched_runner_drain(((srv_model *)handle)->runner, left > 0 ? left : 0);
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static int is_gguf(const struct dirent *d) {
    const size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 5 && !strcmp(d->d_name + n - 5, ".gguf");
}

/* Appends the DIR/NAME.gguf files (sorted by name; files already given with -m skipped)
 * to paths.  The strings stay allocated until exit. */
static int add_dir_models(const char *dir, const char **paths, int *n) {
    struct dirent **list;
    const int k = scandir(dir, &list, is_gguf, by_name);
    if (k < 0) {
        fprintf(stderr, "ryot serve: --models %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < k; i++) {
        char *path = NULL;
        if (!rc && asprintf(&path, "%s/%s", dir, list[i]->d_name) < 0) path = NULL;
        struct stat sb;
        bool dup = false;
        char *real = path ? realpath(path, NULL) : NULL;
        for (int j = 0; real && j < *n; j++) {
            char *rj = realpath(paths[j], NULL);
            dup = dup || (rj && !strcmp(rj, real));
            free(rj);
        }
        free(real);
        if (rc || !path || dup || stat(path, &sb) || !S_ISREG(sb.st_mode)) {
            free(path);
        } else if (*n == SRV_REG_MAX_MODELS) {
            fprintf(stderr, "ryot serve: at most %d models\n", SRV_REG_MAX_MODELS);
            free(path);
            rc = -1;
        } else {
            paths[(*n)++] = path;
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

int cmd_serve(int argc, char **argv) {
    const char *draft_path = NULL;
    bool spec_given = false;
    const char *embed_path = NULL, *api_key = getenv("RYOT_API_KEY");
    static const char *paths[SRV_REG_MAX_MODELS], *aliases[SRV_REG_MAX_MODELS];
    int n_models = 0;
    const char *pending_alias = NULL, *models_dir = NULL;
    double mem_gb = 0;
    srv_http_params hp = {.host = "127.0.0.1", .port = 8080, .max_body = 8u << 20, .body_timeout = 60};
    sched_runner_params cp = sched_runner_default_params();
    double shutdown_timeout = 30.0;
    const char *register_url = NULL, *advertise = NULL;
    int register_ttl_ms = 3000;
    const char *store_dir = NULL, *store_key_file = NULL;
    bool store_plaintext = false;
    double store_gb = 4.0;
    store_codec_params store_codec = store_codec_default();
    const char *tasks_dir = NULL, *tasks_redis = NULL;
    task_queue_params qp = {.visibility_ms = 30000, .max_tasks = 100000};
    tasks_params tp = {.workers = 4, .max_attempts = 3};
    const char *allow[16];
    int n_allow = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define NEED_INT(lo, hi)                                                                  \
    do {                                                                                  \
        if (!v || !cli_parse_long(v, lo, hi, &n)) {                                       \
            fprintf(stderr, "ryot serve: %s needs an integer in %ld..%ld\n", a, (long)(lo), (long)(hi)); \
            return 2;                                                                     \
        }                                                                                 \
        i++;                                                                              \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) {
            if (n_models == SRV_REG_MAX_MODELS) {
                fprintf(stderr, "ryot serve: at most %d models\n", SRV_REG_MAX_MODELS);
                return 2;
            }
            aliases[n_models] = n_models == 0 ? pending_alias : NULL; /* --alias before the first -m: as ever */
            pending_alias = NULL;
            paths[n_models++] = v, i++;
        } else if (!strcmp(a, "--models") && v) {
            models_dir = v, i++;
        } else if (!strcmp(a, "--mem-gb") && v) {
            if (!cli_parse_double(v, 0, 1 << 20, &mem_gb)) {
                fprintf(stderr, "ryot serve: --mem-gb needs GiB in 0..1048576 (0: no limit)\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--draft-model") && v) {
            draft_path = v, i++;
        } else if (!strcmp(a, "--host") && v) {
            hp.host = v, i++;
        } else if (!strcmp(a, "--port")) {
            NEED_INT(0, 65535);
            hp.port = (int)n;
        } else if (!strcmp(a, "--embed-model") && v) {
            embed_path = v, i++;
        } else if (!strcmp(a, "--alias") && v) {
            if (n_models && !aliases[n_models - 1]) {
                aliases[n_models - 1] = v;
            } else if (!n_models && !pending_alias) {
                pending_alias = v;
            } else {
                fprintf(stderr, "ryot serve: --alias %s: one --alias per -m FILE, after it\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--api-key") && v) {
            api_key = v, i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_INT(1, 512);
            cp.n_threads = (int)n;
        } else if (!strcmp(a, "--ctx")) {
            NEED_INT(16, 1 << 20);
            cp.ctx = (int)n;
        } else if (!strcmp(a, "--kv-blocks")) {
            NEED_INT(1, 1 << 24);
            cp.kv_blocks = (int)n;
        } else if (!strcmp(a, "--kv-block-size")) {
            NEED_INT(16, 256);
            cp.kv_block_size = (int)n;
        } else if (!strcmp(a, "--batch-tokens")) {
            NEED_INT(1, 65536);
            cp.batch_tokens = (int)n;
        } else if (!strcmp(a, "--max-running")) {
            NEED_INT(1, 4096);
            cp.max_running = (int)n;
        } else if (!strcmp(a, "--max-queue")) {
            NEED_INT(0, 1 << 24);
            cp.max_queue = (int)n;
        } else if (!strcmp(a, "--spec-draft")) {
            NEED_INT(0, SCHED_SPEC_ROWS);
            cp.spec_draft = (int)n;
            spec_given = true;
        } else if (!strcmp(a, "--default-max-tokens")) {
            NEED_INT(0, 1 << 30);
            cp.default_max_tokens = (int)n;
        } else if (!strcmp(a, "--cache-mb")) {
            NEED_INT(0, 1 << 20);
            hp.cache_bytes = (size_t)n << 20;
        } else if (!strcmp(a, "--cache-ttl")) {
            NEED_INT(1, 365L * 86400);
            hp.cache_ttl_s = (double)n;
        } else if (!strcmp(a, "--semantic-cache") && v) {
            char *end;
            const double t = strtod(v, &end);
            if (end == v || *end || !(t > 0.0 && t <= 1.0)) {
                fprintf(stderr, "ryot serve: --semantic-cache wants a cosine threshold in (0, 1], not '%s'\n", v);
                return 2;
            }
            hp.semantic_threshold = (float)t;
            i++;
        } else if (!strcmp(a, "--semantic-entries")) {
            NEED_INT(1, CACHE_SEM_MAX_ENTRIES);
            hp.semantic_entries = (int)n;
        } else if (!strcmp(a, "--redis") && v) {
            hp.redis_url = v, i++;
        } else if (!strcmp(a, "--redis-timeout-ms")) {
            NEED_INT(1, 60000);
            hp.redis_timeout_ms = (int)n;
        } else if (!strcmp(a, "--max-body")) {
            NEED_INT(1, 1L << 40);
            hp.max_body = (size_t)n;
        } else if (!strcmp(a, "--body-timeout")) {
            NEED_INT(1, 86400);
            hp.body_timeout = (unsigned)n;
        } else if (!strcmp(a, "--age-ms")) {
            NEED_INT(0, 86400000L);
            cp.age_ms = n;
        } else if (!strcmp(a, "--tier-targets") && v) {
            long t[SCHED_N_TIERS];
            if (sscanf(v, "%ld,%ld,%ld,%ld,%ld", &t[0], &t[1], &t[2], &t[3], &t[4]) != 5) {
                fprintf(stderr, "ryot serve: --tier-targets needs five comma-separated milliseconds\n");
                return 2;
            }
            for (int k = 0; k < SCHED_N_TIERS; k++) cp.target_ms[k] = t[k];
            i++;
        } else if (!strcmp(a, "--shutdown-timeout") && v) {
            char *end;
            shutdown_timeout = strtod(v, &end);
            if (end == v || *end || shutdown_timeout < 0) {
                fprintf(stderr, "ryot serve: --shutdown-timeout needs seconds >= 0\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--register") && v) {
            register_url = v, i++;
        } else if (!strcmp(a, "--advertise") && v) {
            advertise = v, i++;
        } else if (!strcmp(a, "--register-ttl-ms")) {
            NEED_INT(100, 3600000);
            register_ttl_ms = (int)n;
        } else if (!strcmp(a, "--store") && v) {
            store_dir = v, i++;
        } else if (!strcmp(a, "--store-key-file") && v) {
            store_key_file = v, i++;
        } else if (!strcmp(a, "--store-plaintext")) {
            store_plaintext = true;
        } else if (!strcmp(a, "--store-gb") && v) {
            if (!cli_parse_double(v, 1.0 / 1024, 1 << 20, &store_gb)) {
                fprintf(stderr, "ryot serve: --store-gb needs GiB in 0.001..1048576\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--store-bits") && v) {
            if (sscanf(v, "%d,%d", &store_codec.k_bits, &store_codec.v_bits) != 2) {
                fprintf(stderr, "ryot serve: --store-bits needs K,V (6,4 8,4 8,8 16,16 ...)\n");
                return 2;
            }
            /* 6,4 reaches 3:1 on its own; the others keep zstd (docs/PERFORMANCE.md) */
            store_codec.zstd_level = store_codec.k_bits == 6 && store_codec.v_bits == 4 ? 0 : 1;
            i++;
        } else if (!strcmp(a, "--tasks-dir") && v) {
            tasks_dir = v, i++;
        } else if (!strcmp(a, "--tasks-redis") && v) {
            tasks_redis = v, i++;
        } else if (!strcmp(a, "--max-tasks")) {
            NEED_INT(0, 1L << 40);
            qp.max_tasks = n;
        } else if (!strcmp(a, "--task-workers")) {
            NEED_INT(0, 1024);
            tp.workers = (int)n;
        } else if (!strcmp(a, "--task-visibility-ms")) {
            NEED_INT(100, 86400000L);
            qp.visibility_ms = n;
        } else if (!strcmp(a, "--task-max-attempts")) {
            NEED_INT(1, 1000);
            tp.max_attempts = (int)n;
        } else if (!strcmp(a, "--callback-allow") && v) {
            if (n_allow == (int)(sizeof allow / sizeof allow[0])) {
                fprintf(stderr, "ryot serve: at most %d --callback-allow hosts\n", n_allow);
                return 2;
            }
            allow[n_allow++] = v, i++;
        } else if (!strcmp(a, "--no-webui")) {
            hp.no_webui = true;
        } else if (!strcmp(a, "--quiet")) {
            cp.log_requests = false;
        } else {
            fprintf(stderr, "ryot serve: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
#undef NEED_INT
    }
    if (register_url) { /* a malformed URL fails before the model loads */
        char rh[256];
        int rp, rdb;
        ryot_error e = {0};
        if (rt_redis_url_parse(register_url, rh, sizeof rh, &rp, &rdb, &e)) {
            fprintf(stderr, "ryot serve: --register %s\n", e.msg);
            return 2;
        }
    }
    /* the models: the -m files, then --models DIR's; the first is the default */
    if (models_dir && add_dir_models(models_dir, paths, &n_models)) return 2;
    if (!n_models) {
        if (models_dir) {
            fprintf(stderr, "ryot serve: --models %s: no .gguf file there\n", models_dir);
            return 2;
        }
        paths[0] = cli_default_model();
        if (!paths[0]) return 1;
        n_models = 1;
    }
    if (pending_alias && !aliases[0]) aliases[0] = pending_alias;
    if (n_models > 1 && (draft_path || store_dir)) {
        fprintf(stderr, "ryot serve: %s serves one model only: give a single -m (not %d models)\n",
                draft_path ? "--draft-model" : "--store", n_models);
        return 2;
    }
    const char *model_path = paths[0];
    if (api_key && !*api_key) api_key = NULL;
    hp.api_key = api_key;
    if (hp.semantic_threshold > 0 && (!embed_path || !hp.cache_bytes)) {
        fprintf(stderr, "ryot serve: --semantic-cache needs --embed-model and --cache-mb (it answers from the cache)\n");
        return 2;
    }

    /* one malloc arena per connection thread would keep freed request
     * memory resident in each; two arenas bound the server's RSS overhead */
    mallopt(M_ARENA_MAX, 2);
    /* a fixed threshold keeps large per-request buffers (sampler penalty
     * counts over the vocab) in fresh zero pages, resident only where written */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ryot_error err = {0};
    srv_http *http;
    if (srv_http_start(&hp, &http, &err)) {
        fprintf(stderr, "ryot serve: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "ryot serve: listening on http://%s:%d (loading %s)\n", hp.host, srv_http_port(http), model_path);
    ryot_model *m;
    if (ryot_model_load(model_path, &m, &err)) {
        fprintf(stderr, "ryot serve: %s\n", err.msg);
        srv_http_stop(http);
        return 1;
    }
    store *st = NULL;
    if (store_dir) {
        uint8_t key[STORE_KEY_BYTES];
        store_params sp = {.dir = store_dir, .gb = store_gb, .plaintext = store_plaintext, .codec = store_codec};
        if (!cp.kv_block_size) cp.kv_block_size = sched_runner_default_params().kv_block_size;
        store_shape_of(m, cp.kv_block_size, &sp.shape);
        ryot_status s = RYOT_OK;
        if (store_key_file) {
            s = store_key_load(store_key_file, key, &err);
            sp.key = key;
        }
        if (!s) s = store_open(&sp, &st, &err);
        memset(key, 0, sizeof key);
        if (s) {
            fprintf(stderr, "ryot serve: %s\n", err.msg);
            ryot_model_free(m);
            srv_http_stop(http);
            return 1;
        }
        store_stats ss;
        store_get_stats(st, &ss);
        fprintf(stderr, "ryot serve: store %s: %llu records, %.1f MiB of %.1f GiB, %s, K/V %d/%d bits\n", store_dir,
                (unsigned long long)ss.records, (double)ss.used_bytes / (1 << 20),
                (double)ss.budget_bytes / (1u << 30), store_key_file ? "encrypted" : "plaintext",
                store_codec.k_bits, store_codec.v_bits);
        cp.store = st;
    }
    ryot_model *dm = NULL;
    if (draft_path && ryot_model_load(draft_path, &dm, &err)) {
        fprintf(stderr, "ryot serve: draft model: %s\n", err.msg);
        store_close(st);
        ryot_model_free(m);
        srv_http_stop(http);
        return 1;
    }
    cp.draft_model = dm;
    if (dm && !spec_given) cp.spec_draft = SCHED_SPEC_DRAFT_MODEL_K;
    /* the registry: every model by name (--alias, else the file name without
     * directory and .gguf); the first is loaded now, the others on their
     * first request, each with its own runner over the same parameters */
    serve_loader L = {.cp = cp, .preloaded = m, .draft = dm != NULL, .paths = paths};
    static const srv_registry_ops ops = {loader_load, loader_unload};
    srv_registry *reg = srv_registry_new(&ops, &L, (uint64_t)(mem_gb * (double)(1ull << 30)));
    L.reg = reg;
    bool reg_ok = reg != NULL;
    int fail_rc = 1;
    if (!reg) fprintf(stderr, "ryot serve: out of memory\n");
    for (int k = 0; reg_ok && k < n_models; k++) {
        char id[SRV_REG_NAME_MAX];
        if (aliases[k]) snprintf(id, sizeof id, "%s", aliases[k]);
        else file_stem(paths[k], id, sizeof id);
        struct stat sb;
        const uint64_t est = stat(paths[k], &sb) == 0 ? (uint64_t)sb.st_size : 0;
        if (srv_registry_add(reg, id, paths[k], est, &err) < 0) {
            fprintf(stderr, "ryot serve: %s: %s\n", paths[k], err.msg);
            reg_ok = false;
            fail_rc = 2; /* a usage error: two models of one name */
        }
    }
    void *h0 = NULL;
    if (reg_ok && srv_registry_acquire(reg, 0, &h0, &err)) {
        fprintf(stderr, "ryot serve: %s%s\n", dm ? "draft model: " : "", err.msg);
        reg_ok = false;
    }
    if (!reg_ok) {
        if (L.preloaded) ryot_model_free(L.preloaded);
        srv_registry_free(reg);
        store_close(st);
        ryot_model_free(dm);
        srv_http_stop(http);
        return fail_rc;
    }
    const srv_model *sm0 = h0;
    sched_runner *runner = sm0->runner;
    ryot_model_info info;
    ryot_model_get_info(sm0->model, &info);
    /* general.name is a name of the default model too, as ever (unless another model has it) */
    if (info.name && *info.name) srv_registry_alias(reg, 0, info.name, NULL);
    if (st) {
        store_kv_shape sh;
        uint8_t mid[STORE_MODEL_ID_BYTES];
        store_shape_of(sm0->model, sched_runner_get_params(runner)->kv_block_size, &sh);
        store_model_id(sm0->model, &sh, mid);
        srv_http_set_store(http, st, mid, sh.block_size);
    }
    const char *id = srv_registry_name(reg, 0);
    char embed_id[256];
    srv_embed *embed = NULL;
    if (embed_path) {
        ryot_embedder *em;
        file_stem(embed_path, embed_id, sizeof embed_id);
        if (ryot_embedder_load(embed_path, cp.n_threads, &em, &err) || srv_embed_new(em, embed_id, &embed, &err)) {
            fprintf(stderr, "ryot serve: %s\n", err.msg);
            srv_registry_release(reg, 0);
            srv_registry_free(reg);
            store_close(st);
            ryot_model_free(dm);
            srv_http_stop(http);
            return 1;
        }
        srv_http_set_embed(http, embed);
        fprintf(stderr, "ryot serve: embedding model '%s' (%d dimensions, up to %d tokens)\n", embed_id,
                ryot_embedder_dim(em), ryot_embedder_max_tokens(em));
    }
    srv_http_set_registry(http, reg);
    /* the task queue: Redis when asked, else LMDB in --tasks-dir or a temporary directory */
    if (!tasks_redis && !tasks_dir) tasks_redis = hp.redis_url;
    char tmp_dir[64] = "";
    if (!tasks_redis && !tasks_dir) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ryot-tasks-XXXXXX");
        if (mkdtemp(tmp_dir)) tasks_dir = tmp_dir;
        else tmp_dir[0] = 0;
    }
    task_queue *tq = NULL;
    tasks_service *tasks = NULL;
    tp.callback_allow = allow;
    tp.n_callback_allow = n_allow;
    ryot_status tst = tasks_redis ? task_queue_open_redis(tasks_redis, &qp, &tq, &err)
                      : tasks_dir ? task_queue_open_dir(tasks_dir, &qp, &tq, &err)
                                  : ryot_fail(&err, RYOT_ERR_IO, "cannot create a temporary task directory");
    if (!tst) tst = tasks_service_new(&tp, tq, exec_task, http, &tasks, &err);
    if (!tst) tst = tasks_service_start(tasks, &err);
    if (tst) {
        fprintf(stderr, "ryot serve: task queue: %s\n", err.msg);
        tasks_service_free(tasks);
        srv_http_stop(http);
        srv_registry_release(reg, 0);
        srv_registry_free(reg);
        ryot_model_free(dm);
        store_close(st);
        srv_embed_free(embed);
        remove_tmp_dir(tmp_dir);
        return 1;
    }
    srv_http_set_tasks(http, tasks);
    fprintf(stderr, "ryot serve: task queue: %s%s%s (consumer %s, %d workers, max %lld tasks)\n",
            tasks_redis ? tasks_redis : tasks_dir, tmp_dir[0] ? ", temporary: lost at exit" : "",
            tasks_redis ? ", Redis Streams" : ", LMDB", task_queue_consumer(tq), tp.workers, (long long)qp.max_tasks);
    const sched_runner_params *p = sched_runner_get_params(runner);
    fprintf(stderr,
            "ryot serve: ready: model '%s' (%s, %s), %d threads, ctx %d, %d KV blocks x %d, batch %d tokens, "
            "%d running, queue %d, spec draft %d%s%s%s%s\n",
            id, info.arch, info.type_name, p->n_threads, p->ctx, p->kv_blocks, p->kv_block_size, p->batch_tokens,
            p->max_running, p->max_queue, p->spec_draft, dm ? " (draft model " : "", dm ? draft_path : "",
            dm ? ")" : "", api_key ? ", API key required" : "");
    for (int k = 1; k < n_models; k++)
        fprintf(stderr, "ryot serve: model '%s' (%s): loads on its first request\n", srv_registry_name(reg, k), paths[k]);
    if (n_models > 1 && mem_gb > 0)
        fprintf(stderr, "ryot serve: %d models, memory budget %.3f GiB (idle ones unloaded, least recently used first)\n",
                n_models, mem_gb);
    else if (n_models > 1)
        fprintf(stderr, "ryot serve: %d models, no memory budget (--mem-gb): loaded ones stay\n", n_models);
    srv_registry_release(reg, 0); /* idle now: the budget may unload it like any other */
    rt_register *rreg = NULL;
    if (register_url) {
        char adv[300];
        if (advertise) snprintf(adv, sizeof adv, "%s", advertise);
        else snprintf(adv, sizeof adv, "http://%s:%d", strcmp(hp.host, "0.0.0.0") ? hp.host : "127.0.0.1",
                      srv_http_port(http));
        if (rt_register_start(register_url, adv, register_ttl_ms, &rreg, &err)) {
            fprintf(stderr, "ryot serve: --register: %s\n", err.msg);
            g_stop = 1;
        } else {
            fprintf(stderr, "ryot serve: registered as %s in %s (TTL %d ms)\n", adv, register_url, register_ttl_ms);
        }
    }
    while (!g_stop) pause();
    rt_register_stop(rreg); /* routers stop sending new requests here */
    fprintf(stderr, "ryot serve: shutting down (up to %.0f s for running requests)\n", shutdown_timeout);
    srv_http_quiesce(http);
    tasks_service_quiesce(tasks); /* running tasks finish, or are cut and left for redelivery */
    drain_ctx dc = {.deadline = ryot_now_s() + shutdown_timeout};
    srv_registry_close(reg, drain_one, &dc); /* each loaded model's runner, the time left each */
    if (dc.cut) fprintf(stderr, "ryot serve: %d requests cut at shutdown\n", dc.cut);
    usleep(200000); /* let connection threads send their last bytes */
    srv_http_stop(http);
    tasks_service_free(tasks);
    remove_tmp_dir(tmp_dir);
    srv_registry_free(reg); /* every runner and model */
    ryot_model_free(dm);
    store_close(st); /* writes what is still queued */
    srv_embed_free(embed);
    fprintf(stderr, "ryot serve: stopped\n");
    return 0;
}
