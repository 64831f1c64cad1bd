/* POST /v1/embeddings over a sentence encoder (include/ryot.h embedder).
 *
 * Request: {"model": ID, "input": string | [string] | [int] | [[int]],
 * "encoding_format": "float" | "base64", "dimensions": N, "user": ...}.
 * Token-id inputs are used as given (what `ryot embed --ids` prints, [CLS]
 * and [SEP] included).  Each input must be non-empty and at most the model's
 * max_tokens long; at most SRV_EMBED_MAX_INPUTS inputs and
 * SRV_EMBED_MAX_TOKENS tokens in all.  dimensions (1..n_embd) keeps the
 * first N values and rescales them to unit length.  base64 is the
 * little-endian float32 bytes of each vector.
 *
 * Tokenizing runs on the caller's thread; encoding runs under one mutex (the
 * encoder has one set of buffers and its own worker threads), so concurrent
 * requests take turns. */
#ifndef RYOT_SERVER_EMBEDDINGS_H
#define RYOT_SERVER_EMBEDDINGS_H

#include <stddef.h>

#include "core/error.h"
#include "ryot.h"
#include "server/request.h"

#define SRV_EMBED_MAX_INPUTS 2048
#define SRV_EMBED_MAX_TOKENS 65536

typedef struct srv_embed srv_embed;

/* Takes ownership of em (freed by srv_embed_free, also on failure). */
ryot_status srv_embed_new(ryot_embedder *em, const char *model_id, srv_embed **out, ryot_error *err);
void srv_embed_free(srv_embed *s);
const char *srv_embed_model_id(const srv_embed *s);

/* One request body.  Returns 0 with *json the 200 body (malloc'd), or the
 * HTTP status with *err filled (400 naming the field, 404 for another model,
 * 500/503 when the encoder fails). */
int srv_embed_handle(srv_embed *s, const char *body, size_t len, char **json, srv_error *err);

int srv_embed_dim(const srv_embed *s);
/* One text's unit vector (srv_embed_dim floats) into out, for the semantic
 * cache; under the same mutex as the endpoint.  -1 when the text is longer
 * than the model takes, empty, or the encoder fails. */
int srv_embed_text(srv_embed *s, const char *text, size_t len, float *out);

#endif
