/* Request sources for `ryot bench serve` (an lg_source each):
 *   synthetic       prompts of random common English words, one word per
 *                   intended token (most BPE vocabularies encode " word" as
 *                   one token, so the length is approximate: the server's
 *                   usage.prompt_tokens is what gets reported), outputs
 *                   forced to max_tokens with "ignore_eos": true;
 *   shared-prefix   one long system prompt shared by every user, and
 *                   multi-turn conversations: each turn appends the previous
 *                   answer and a new user message (a user has at most one
 *                   request in flight); when a user's conversation reaches
 *                   `turns`, it starts over;
 *   mixed-priority  synthetic requests carrying "priority": a tier drawn
 *                   from a weighted mix (critical..background);
 *   file:PATH       a JSONL file, one request body per line, replayed in
 *                   order (cycling); "stream" and "stream_options" are forced.
 * Every body asks for stream: true with stream_options.include_usage. */
#ifndef RYOT_BENCHSUITE_WORKLOAD_H
#define RYOT_BENCHSUITE_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "benchsuite/loadgen.h"
#include "core/error.h"

typedef enum workload_kind {
    WORKLOAD_SYNTHETIC,
    WORKLOAD_SHARED_PREFIX,
    WORKLOAD_MIXED_PRIORITY,
    WORKLOAD_FILE,
} workload_kind;

typedef enum len_dist_kind { LEN_FIXED, LEN_UNIFORM, LEN_NORMAL } len_dist_kind;

/* fixed: the configured length; uniform: integers in [a, b]; normal: mean a,
 * sd b, rounded and clamped to >= 1. */
typedef struct len_dist {
    len_dist_kind kind;
    double a, b;
} len_dist;

typedef struct workload_config {
    workload_kind kind;
    bool chat;            /* messages (chat) or prompt (completions) */
    const char *model;    /* NULL: no "model" field (file: kept as is) */
    int input_len, output_len;
    len_dist input_dist, output_dist;
    bool ignore_eos;
    int prefix_len, users, turns;   /* shared-prefix */
    double tier_mix[LG_N_TIERS];    /* mixed-priority weights */
    const char *path;               /* file */
    double repeat_ratio;            /* synthetic: fraction of requests that resend an earlier
                                     * body verbatim (0..1); > 0 also sends temperature 0, so
                                     * the repeats are cacheable (response-cache benchmarks) */
    uint64_t seed;
} workload_config;

typedef struct workload workload;

workload_config workload_config_default(void);
/* "synthetic", "shared-prefix", "mixed-priority", "file:PATH" (path points
 * into s). */
ryot_status workload_parse_kind(const char *s, workload_config *cfg, ryot_error *err);
/* "fixed", "uniform:A,B", "normal:MU,SD". */
ryot_status workload_parse_dist(const char *s, len_dist *out, ryot_error *err);
/* "critical=1,high=2,normal=4,low=2,background=1" (missing tiers get 0) or
 * five bare weights "1,2,4,2,1". */
ryot_status workload_parse_mix(const char *s, double mix[LG_N_TIERS], ryot_error *err);
const char *workload_tier_name(int tier); /* "critical".."background"; "none" */
int workload_tier_from_name(const char *s); /* LG_TIER_NONE if unknown */
const char *workload_kind_name(workload_kind k);

ryot_status workload_new(const workload_config *cfg, workload **out, ryot_error *err);
void workload_free(workload *w);
/* The source to hand to lg_run_load; valid while w lives. */
lg_source workload_source(workload *w);
/* True when the source needs lg_config.keep_text (conversations). */
bool workload_needs_text(const workload *w);
/* Default request count for one sweep point: users * turns for
 * shared-prefix, the line count for a file, else 0 (no default). */
long workload_default_requests(const workload *w);

#endif
