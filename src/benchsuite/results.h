/* Aggregate serving metrics (defined as vLLM's `bench serve` defines them)
 * and the JSON result file of `ryot bench serve` (schema in
 * docs/BENCHMARKING.md, "ryot-bench-serve/1").
 *
 *   request_throughput     successful requests / duration
 *   output_throughput      output tokens of successful requests / duration
 *   total_token_throughput (input + output tokens) / duration
 *   goodput                successful requests meeting every SLO / duration
 *   TTFT, TPOT, E2E        one value per successful request
 *   ITL                    every gap of every successful request, pooled
 * duration: first send to last byte of the measured run. */
#ifndef RYOT_BENCHSUITE_RESULTS_H
#define RYOT_BENCHSUITE_RESULTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "benchsuite/loadgen.h"
#include "benchsuite/soak.h"
#include "benchsuite/stats.h"
#include "core/error.h"

#define RESULTS_SCHEMA "ryot-bench-serve/1"
#define RESULTS_ALL_TIERS (-2)
#define RESULTS_MAX_ERROR_KINDS 16

typedef struct serve_slo {
    double ttft_ms, tpot_ms; /* <= 0: no SLO on that metric */
} serve_slo;

typedef struct error_count {
    long status; /* HTTP status; 0 = transport error, 200 = stream error */
    size_t count;
} error_count;

typedef struct serve_metrics {
    size_t n_total, n_ok, n_failed, n_good;
    double duration_s;
    int64_t input_tokens, output_tokens; /* of successful requests; unknown inputs count 0 */
    double request_throughput, output_throughput, total_token_throughput, goodput;
    stats_summary ttft, tpot, itl, e2e; /* milliseconds */
    error_count errors[RESULTS_MAX_ERROR_KINDS];
    size_t n_error_kinds;
} serve_metrics;

/* Over results r[0..n) whose tier equals `tier` (RESULTS_ALL_TIERS: all). */
ryot_status serve_metrics_compute(const lg_result *r, size_t n, double duration_s, serve_slo slo, int tier,
                                  serve_metrics *m, ryot_error *err);

/* Metric values by name, for tables and comparisons: "output_throughput",
 * "request_throughput", "total_token_throughput", "goodput", "error_rate"
 * (percent), "ttft_mean", "ttft_p50", "ttft_p90", "ttft_p95", "ttft_p99",
 * likewise tpot_, itl_, e2e_ (and _sd).  NAN for an unknown name. */
double serve_metrics_get(const serve_metrics *m, const char *name);

/* JSON pieces (new references; NAN becomes null). */
json_t *results_metrics_json(const serve_metrics *m);
json_t *results_requests_json(const lg_result *r, size_t n);
json_t *results_soak_json(int pid, double interval_s, const soak_sample *s, size_t n, const soak_verdict *v);
/* {"cpu_model", "cores", "mem_total_kib", "hostname", "kernel"} from /proc and uname. */
json_t *results_machine_json(void);
/* `git rev-parse HEAD` when it works, else the compile-time RYOT_GIT_COMMIT
 * define, else "unknown"; into buf. */
void results_git_commit(char *buf, size_t cap);

ryot_status results_write(const char *path, json_t *doc, ryot_error *err);
ryot_status results_load(const char *path, json_t **doc, ryot_error *err);

/* Samples of a run object ("runs"[i]) from its successful requests:
 * field "ttft_ms", "tpot_ms", "e2e_ms" (one per request, nulls skipped) or
 * "itl_ms" (pooled).  malloc'd into *out (NULL when none). */
ryot_status results_samples(const json_t *run, const char *field, double **out, size_t *n, ryot_error *err);

/* Prometheus text exposition: the sum over every sample whose metric name
 * contains `substr` (labels ignored; *_created, *_bucket series skipped).
 * Returns false when no series matches. */
bool prom_sum(const char *text, const char *substr, double *sum);

#endif
