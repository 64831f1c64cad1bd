/* HTTP load generator for OpenAI-compatible streaming endpoints.
 *
 * One thread drives every request through a libcurl multi handle
 * (curl_multi_poll).  Each request is a POST of a JSON body asking for
 * `"stream": true`; the SSE reply is parsed as it arrives and every content
 * event (a non-empty choices[0].delta.content for chat, choices[0].text for
 * completions) is stamped with CLOCK_MONOTONIC in the write callback, the
 * moment its bytes reach the client:
 *   TTFT = first content event - send        (send: the handle is added)
 *   ITL  = gaps between successive content events
 *   E2E  = last byte received - send
 *   TPOT = (E2E - TTFT) / (output_tokens - 1), NAN when output_tokens < 2
 * output_tokens is usage.completion_tokens from the server's final usage
 * chunk when present, else the number of content events.
 *
 * Load shapes: a fixed number of requests in flight (closed loop), or Poisson
 * arrivals at a rate (open loop; exponential gaps from a seeded RNG),
 * optionally capped by max in flight.  Stops issuing after num_requests or
 * duration_s, then waits for what is in flight. */
#ifndef RYOT_BENCHSUITE_LOADGEN_H
#define RYOT_BENCHSUITE_LOADGEN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define LG_TIER_NONE (-1)
#define LG_N_TIERS 5 /* critical, high, normal, low, background */

/* One request to send: filled by the source, owned by the load generator
 * after `next` returns (it frees body). */
typedef struct lg_request {
    char *body; /* JSON, malloc'd */
    int tier;   /* LG_TIER_NONE or 0..LG_N_TIERS-1 */
    int user, turn; /* -1 when not a conversation */
    int64_t input_tokens_est; /* the workload's estimate (-1 unknown) */
} lg_request;

/* What was measured for one request. */
typedef struct lg_result {
    double start_s;  /* send time, seconds from the run's start */
    double ttft_ms;  /* NAN when no content arrived */
    double tpot_ms;  /* NAN when output_tokens < 2 */
    double e2e_ms;
    double *itl_ms;  /* n_itl gaps, malloc'd */
    size_t n_itl;
    int64_t input_tokens;  /* usage.prompt_tokens, else the estimate, else -1 */
    int64_t output_tokens; /* usage.completion_tokens, else n_events */
    int64_t n_events;      /* content events seen */
    bool usage_seen, done_seen;
    long http_status; /* 0: transport error (no response) */
    bool ok;          /* 2xx, no transport or stream error, >= 1 content event */
    char error[160];  /* empty when ok */
    int tier, user, turn;
    char *text; /* the generated text when lg_config.keep_text, else NULL */
} lg_result;

/* Where requests come from. */
typedef struct lg_source {
    void *ud;
    /* RYOT_OK with *req filled; RYOT_ERR_BUSY when nothing can be sent until
     * a request in flight completes; RYOT_ERR_NOT_FOUND when exhausted; other
     * codes abort the run. */
    ryot_status (*next)(void *ud, lg_request *req, ryot_error *err);
    /* Optional: called once per request when it ends (res->text is set when
     * keep_text).  A conversation workload appends the answer here. */
    void (*done)(void *ud, const lg_request *req, const lg_result *res);
} lg_source;

typedef struct lg_config {
    const char *url; /* full endpoint URL, e.g. http://127.0.0.1:8080/v1/chat/completions */
    const char *api_key; /* NULL: no Authorization header */
    bool chat;           /* delta.content (chat) vs text (completions) */
    int max_in_flight;   /* closed loop: this many in flight; with rate: the cap (0 = none) */
    double rate;         /* requests/s; 0 = closed loop */
    uint64_t seed;       /* Poisson arrivals */
    long num_requests;   /* 0 = no limit (then duration_s must be > 0) */
    double duration_s;   /* stop issuing after this (0 = no limit) */
    double timeout_s;    /* per request (0 = none) */
    bool keep_text;
    /* Optional: called about every tick_s seconds from the loop, and once at
     * the end with final = true (progress bars, soak sampling). */
    void (*on_tick)(void *ud, double t_s, size_t done, size_t in_flight, bool final);
    void *tick_ud;
    double tick_s;
    volatile sig_atomic_t *stop; /* optional: non-zero stops issuing */
} lg_config;

lg_config lg_config_default(void);

typedef struct lg_run {
    lg_result *results; /* in completion order */
    size_t n_results, cap;
    double duration_s; /* first send to last completion */
    double wall_start; /* CLOCK_MONOTONIC seconds of the run's start */
} lg_run;

ryot_status lg_run_load(const lg_config *cfg, lg_source *src, lg_run *out, ryot_error *err);
void lg_run_free(lg_run *r);

/* GET url into a malloc'd NUL-terminated string (*status gets the HTTP
 * code).  For /metrics scrapes and server probes. */
ryot_status lg_http_get(const char *url, const char *api_key, double timeout_s, char **body, long *status,
                        ryot_error *err);


#endif
