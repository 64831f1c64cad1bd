/* Sessions API over the persistent store (store/store.h), by conversation id:
 *   POST /v1/sessions/{id}/save     body as /tokenize: {"content": text} or
 *        {"messages": [...], "add_generation_prompt": bool (default true)};
 *        the conversation is prefilled (its RAM prefix reused), its KV
 *        blocks written to the store, and its tokens kept under id.
 *        -> {"id", "object": "session", "n_tokens", "cached_tokens", "n_blocks", "bytes"}
 *   POST /v1/sessions/{id}/restore  (no body) loads the session's blocks back
 *        into the RAM prefix cache, so the next request continuing it starts
 *        warm.  -> {"id", "object": "session", "n_tokens", "cached_tokens"}
 *   GET  /v1/sessions  -> {"object": "list", "data": [{"id", "n_tokens", "n_blocks", "bytes"}, ...]}
 * Each returns the HTTP status and a malloc'd JSON body (an OpenAI-shaped
 * error when the status is not 200; NULL only when out of memory). */
#ifndef RYOT_SERVER_SESSIONS_H
#define RYOT_SERVER_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "sched/runner.h"
#include "store/store.h"

typedef struct srv_sessions {
    store *st;
    uint8_t model_id[STORE_MODEL_ID_BYTES];
    int block_size;
} srv_sessions;

int srv_session_save(const srv_sessions *s, sched_runner *r, const char *id, const char *body, size_t len,
                     char **json);
int srv_session_restore(const srv_sessions *s, sched_runner *r, const char *id, char **json);
int srv_session_list(const srv_sessions *s, char **json);

#endif
