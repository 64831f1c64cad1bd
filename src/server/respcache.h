/* The server's side of the response cache (cache/): which requests may be
 * answered from it, their keys, and the stored value.
 *
 * Cacheable: deterministic requests only (temperature 0, or an explicit
 * seed: the same request then gives the same tokens, alone or batched), and
 * not those asking for logprobs (their values are not stored) or echo (the
 * record holds no prompt text).  The key
 * covers the model file's identity, the endpoint, every prompt's token ids
 * (chat: after the template), n, max_tokens, the stop strings, ignore_eos,
 * every sampling field (seed included) and the response_format or grammar.
 * A field added to requests that can change the output must join
 * srv_cache_request_key.
 *
 * The value is a small JSON record (format version, per choice the text and
 * finish reason, the usage); a value that does not decode as such, or has
 * another number of choices, is a miss. */
#ifndef RYOT_SERVER_RESPCACHE_H
#define RYOT_SERVER_RESPCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/key.h"
#include "ryot.h"
#include "sched/runner.h"
#include "server/openai.h"
#include "server/request.h"

/* The model's identity: a digest of the file's size, its whole header
 * (metadata, tensor table) and 4 KiB of tensor data every 16 MiB, so another
 * file (a re-quantization, other weights) never shares keys. */
void srv_cache_model_identity(const ryot_model *m, cache_key *out);

/* false: the request is not cacheable. */
bool srv_cache_request_key(const cache_key *model, const srv_request *req, const sched_job_spec *spec, cache_key *out);

/* The semantic cache's context key (cache/semantic.h): a cacheable chat
 * request whose last message is a non-empty user message.  It covers what
 * srv_cache_request_key does except the prompt tokens, and in their place
 * every message as sent but the last one's content: two requests with the
 * same context key differ at most in the wording of the final user
 * message.  Returns that message's content (the text to embed), or NULL
 * when the request is not a candidate. */
const char *srv_cache_semantic_context(const cache_key *model, const srv_request *req, const sched_job_spec *spec,
                                       cache_key *out);

typedef struct srv_cached_choice {
    char *text;
    size_t len;
    sched_finish finish;
} srv_cached_choice;

typedef struct srv_cached {
    srv_cached_choice *choices;
    int n;
    srv_usage usage;
} srv_cached;

/* The value stored for an answer (malloc'd); NULL when out of memory. */
char *srv_cache_encode(const srv_cached *c, size_t *len);
/* 0 and *out filled (srv_cached_free), or -1 when the value is not a record
 * of n_choices choices. */
int srv_cache_decode(const void *val, size_t len, int n_choices, srv_cached *out);
void srv_cached_free(srv_cached *c);

#endif
