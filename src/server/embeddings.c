/* POST /v1/embeddings (see embeddings.h). */
#include "server/embeddings.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct srv_embed {
    ryot_embedder *em;
    char *model_id;
    pthread_mutex_t mu; /* one encode at a time */
};

ryot_status srv_embed_new(ryot_embedder *em, const char *model_id, srv_embed **out, ryot_error *err) {
    *out = NULL;
    srv_embed *s = calloc(1, sizeof *s);
    if (!s || !(s->model_id = strdup(model_id))) {
        free(s);
        ryot_embedder_free(em);
        return ryot_fail(err, RYOT_ERR_NOMEM, "embeddings");
    }
    s->em = em;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return RYOT_OK;
}

void srv_embed_free(srv_embed *s) {
    if (!s) return;
    ryot_embedder_free(s->em);
    pthread_mutex_destroy(&s->mu);
    free(s->model_id);
    free(s);
}

const char *srv_embed_model_id(const srv_embed *s) { return s->model_id; }

int srv_embed_dim(const srv_embed *s) { return ryot_embedder_dim(s->em); }

int srv_embed_text(srv_embed *s, const char *text, size_t len, float *out) {
    ryot_token *ids = NULL;
    int n = 0;
    ryot_error e;
    if (!len || ryot_embed_tokenize(s->em, text, len, &ids, &n, &e) != RYOT_OK) return -1;
    int rc = -1;
    if (n > 0 && n <= ryot_embedder_max_tokens(s->em)) {
        const ryot_token *const one[1] = {ids};
        pthread_mutex_lock(&s->mu);
        ryot_status st = ryot_embed_tokens(s->em, one, &n, 1, out, &e);
        pthread_mutex_unlock(&s->mu);
        if (st == RYOT_OK) {
            const int dim = ryot_embedder_dim(s->em);
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += (double)out[i] * out[i];
            if (ss > 0) {
                const float inv = (float)(1.0 / sqrt(ss));
                for (int i = 0; i < dim; i++) out[i] *= inv;
                rc = 0;
            }
        }
    }
    free(ids);
    return rc;
}

/* Fills *err and returns status. */
static int embed_fail(srv_error *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int embed_fail(srv_error *err, int status, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    srv_error_setv(err, status, param, fmt, ap);
    va_end(ap);
    return status;
}

typedef struct embed_inputs {
    ryot_token **ids;
    int *n_ids;
    int n;
    long n_tokens;
} embed_inputs;

static void inputs_free(embed_inputs *in) {
    for (int i = 0; in->ids && i < in->n; i++) free(in->ids[i]);
    free(in->ids);
    free(in->n_ids);
}

/* One token-id array (items of "input", or "input" itself) into slot i. */
static int take_ids(const srv_embed *s, json_t *arr, const char *where, embed_inputs *in, int i, srv_error *err) {
    const size_t n = json_array_size(arr);
    const int max = ryot_embedder_max_tokens(s->em), n_vocab = ryot_embedder_n_vocab(s->em);
    if (n == 0) return embed_fail(err, 400, "input", "%s is an empty list of tokens", where);
    if (n > (size_t)max)
        return embed_fail(err, 400, "input", "%s has %zu tokens, more than the model's maximum of %d", where, n, max);
    if (!(in->ids[i] = malloc(n * sizeof **in->ids))) return embed_fail(err, 503, NULL, "out of memory");
    in->n_ids[i] = (int)n;
    for (size_t j = 0; j < n; j++) {
        json_t *v = json_array_get(arr, j);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab)
            return embed_fail(err, 400, "input", "%s[%zu] is not a token id in [0, %d)", where, j, n_vocab);
        in->ids[i][j] = (ryot_token)json_integer_value(v);
    }
    return 0;
}

static int take_text(const srv_embed *s, json_t *str, const char *where, embed_inputs *in, int i, srv_error *err) {
    const size_t len = json_string_length(str);
    if (len == 0) return embed_fail(err, 400, "input", "%s is an empty string", where);
    ryot_error e;
    if (ryot_embed_tokenize(s->em, json_string_value(str), len, &in->ids[i], &in->n_ids[i], &e) != RYOT_OK)
        return embed_fail(err, 400, "input", "%s: %s", where, e.msg);
    const int max = ryot_embedder_max_tokens(s->em);
    if (in->n_ids[i] > max)
        return embed_fail(err, 400, "input", "%s has %d tokens, more than the model's maximum of %d", where,
                             in->n_ids[i], max);
    return 0;
}

static int parse_input(const srv_embed *s, json_t *input, embed_inputs *in, srv_error *err) {
    if (!input) return embed_fail(err, 400, "input", "input is required");
    const bool one = json_is_string(input) || (json_is_array(input) && json_array_size(input) &&
                                               json_is_integer(json_array_get(input, 0)));
    if (!one && !json_is_array(input))
        return embed_fail(err, 400, "input", "input must be a string, a list of strings or a list of token lists");
    in->n = one ? 1 : (int)(json_array_size(input) < SRV_EMBED_MAX_INPUTS + 1 ? json_array_size(input)
                                                                               : SRV_EMBED_MAX_INPUTS + 1);
    if (in->n == 0) return embed_fail(err, 400, "input", "input is an empty list");
    if (in->n > SRV_EMBED_MAX_INPUTS)
        return embed_fail(err, 400, "input", "input has more than %d items", SRV_EMBED_MAX_INPUTS);
    in->ids = calloc((size_t)in->n, sizeof *in->ids);
    in->n_ids = calloc((size_t)in->n, sizeof *in->n_ids);
    if (!in->ids || !in->n_ids) return embed_fail(err, 503, NULL, "out of memory");
    int rc = 0;
    if (one) {
        rc = json_is_string(input) ? take_text(s, input, "input", in, 0, err) : take_ids(s, input, "input", in, 0, err);
    } else {
        /* every item of one kind, as OpenAI's schema says */
        const bool texts = json_is_string(json_array_get(input, 0));
        for (int i = 0; !rc && i < in->n; i++) {
            json_t *item = json_array_get(input, (size_t)i);
            char where[32];
            snprintf(where, sizeof where, "input[%d]", i);
            if (texts && json_is_string(item)) rc = take_text(s, item, where, in, i, err);
            else if (!texts && json_is_array(item)) rc = take_ids(s, item, where, in, i, err);
            else
                rc = embed_fail(err, 400, "input", "%s must be a %s like input[0]", where,
                                    texts ? "string" : "list of token ids");
        }
    }
    for (int i = 0; !rc && i < in->n; i++) in->n_tokens += in->n_ids[i];
    if (!rc && in->n_tokens > SRV_EMBED_MAX_TOKENS)
        rc = embed_fail(err, 400, "input", "input has %ld tokens in all, more than %d", in->n_tokens,
                            SRV_EMBED_MAX_TOKENS);
    return rc;
}

/* Keeps the first dim values of v and rescales them to unit length. */
static void truncate_unit(float *v, int dim) {
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)v[i] * v[i];
    const double nrm = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
    for (int i = 0; i < dim; i++) v[i] = (float)(v[i] / nrm);
}

static json_t *vector_json(const float *v, int dim, bool base64) {
    if (!base64) {
        json_t *a = json_array();
        for (int i = 0; a && i < dim; i++)
            if (json_array_append_new(a, json_real(v[i])) != 0) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    uint8_t *bytes = malloc((size_t)dim * 4);
    const size_t n64 = sodium_base64_ENCODED_LEN((size_t)dim * 4, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(n64);
    json_t *s = NULL;
    if (bytes && b64) {
        for (int i = 0; i < dim; i++) { /* little-endian float32, whatever the host */
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int k = 0; k < 4; k++) bytes[4 * i + k] = (uint8_t)(u >> (8 * k));
        }
        sodium_bin2base64(b64, n64, bytes, (size_t)dim * 4, sodium_base64_VARIANT_ORIGINAL);
        s = json_string(b64);
    }
    free(bytes);
    free(b64);
    return s;
}

int srv_embed_handle(srv_embed *s, const char *body, size_t len, char **json, srv_error *err) {
    *json = NULL;
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return embed_fail(err, 400, NULL, "the body is not a JSON object%s%s", root ? "" : ": ", root ? "" : je.text);
    }
    const int n_embd = ryot_embedder_dim(s->em);
    int rc = 0, dim = n_embd;
    bool base64 = false;
    json_t *model = json_object_get(root, "model"), *fmt = json_object_get(root, "encoding_format");
    json_t *dims = json_object_get(root, "dimensions");
    if (!json_is_string(model))
        rc = embed_fail(err, 400, "model", "model is required and must be a string");
    else if (strcmp(json_string_value(model), s->model_id) != 0) {
        rc = embed_fail(err, 404, "model", "the embedding model '%.200s' does not exist (this server embeds with '%s')",
                        json_string_value(model), s->model_id);
        err->code = "model_not_found";
    } else if (fmt && !json_is_null(fmt) &&
             (!json_is_string(fmt) || (strcmp(json_string_value(fmt), "float") && strcmp(json_string_value(fmt), "base64"))))
        rc = embed_fail(err, 400, "encoding_format", "encoding_format must be \"float\" or \"base64\"");
    else if (dims && !json_is_null(dims) &&
             (!json_is_integer(dims) || json_integer_value(dims) < 1 || json_integer_value(dims) > n_embd))
        rc = embed_fail(err, 400, "dimensions", "dimensions must be an integer in [1, %d]", n_embd);
    if (!rc) {
        base64 = json_is_string(fmt) && !strcmp(json_string_value(fmt), "base64");
        if (json_is_integer(dims)) dim = (int)json_integer_value(dims);
    }
    embed_inputs in = {0};
    if (!rc) rc = parse_input(s, json_object_get(root, "input"), &in, err);
    float *out = rc ? NULL : malloc((size_t)in.n * (size_t)n_embd * sizeof *out);
    if (!rc && !out) rc = embed_fail(err, 503, NULL, "out of memory");
    if (!rc) {
        ryot_error e;
        pthread_mutex_lock(&s->mu);
        ryot_status st = ryot_embed_tokens(s->em, (const ryot_token *const *)in.ids, in.n_ids, in.n, out, &e);
        pthread_mutex_unlock(&s->mu);
        if (st != RYOT_OK) rc = embed_fail(err, st == RYOT_ERR_INVALID ? 400 : 500, "input", "%s", e.msg);
    }
    json_t *data = rc ? NULL : json_array();
    for (int i = 0; data && i < in.n; i++) {
        float *v = out + (size_t)i * n_embd;
        if (dim < n_embd) truncate_unit(v, dim);
        json_t *vec = vector_json(v, dim, base64);
        json_t *item = vec ? json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i, "embedding", vec) : NULL;
        if (!item || json_array_append_new(data, item) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    if (!rc) {
        json_t *resp = data ? json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                                        s->model_id, "usage", "prompt_tokens", (json_int_t)in.n_tokens,
                                        "total_tokens", (json_int_t)in.n_tokens)
                            : NULL;
        /* 9 significant digits: every float32 survives the round trip */
        *json = resp ? json_dumps(resp, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
        json_decref(resp);
        if (!*json) rc = embed_fail(err, 503, NULL, "out of memory");
    }
    free(out);
    inputs_free(&in);
    json_decref(root);
    return rc;
}
