/* Hugging Face BERT sentence encoder -> GGUF (contract in modeltools.h).
 *
 * safetensors layout: an 8-byte little-endian header length N, N bytes of
 * JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}), then the data section; offsets are relative to its
 * start.  Every length, shape and offset is checked against the file before
 * a byte of tensor data is read. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "modeltools/modeltools_impl.h"

#define ST_MAX_HEADER (100u << 20) /* a header is a tensor index; 100 MiB is far beyond any real one */
#define ST_MAX_DIMS 4

typedef enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_OTHER } st_dtype;

typedef struct st_tensor {
    const char *name; /* points into the JSON (valid while the header lives) */
    st_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[ST_MAX_DIMS]; /* as safetensors lists it: outermost first */
    const uint8_t *data;
} st_tensor;

typedef struct st_file {
    uint8_t *map;
    size_t size;
    json_t *header;
    st_tensor *tensors;
    size_t n_tensors;
} st_file;

static void st_close(st_file *s) {
    if (s->map) munmap(s->map, s->size);
    json_decref(s->header);
    free(s->tensors);
    memset(s, 0, sizeof *s);
}

static ryot_status st_parse_tensor(const char *path, const char *name, json_t *v, const uint8_t *data,
                                   uint64_t data_len, st_tensor *t, ryot_error *err) {
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2)
        return ryot_fail(err, RYOT_ERR_FORMAT, "%s: tensor '%s': needs dtype, shape and data_offsets [begin, end]",
                         path, name);
    const char *d = json_string_value(dt);
    uint64_t esize;
    if (!strcmp(d, "F32")) t->dtype = ST_F32, esize = 4;
    else if (!strcmp(d, "F16")) t->dtype = ST_F16, esize = 2;
    else if (!strcmp(d, "BF16")) t->dtype = ST_BF16, esize = 2;
    else if (!strcmp(d, "I64") || !strcmp(d, "F64") || !strcmp(d, "U64")) t->dtype = ST_OTHER, esize = 8;
    else if (!strcmp(d, "I32") || !strcmp(d, "U32")) t->dtype = ST_OTHER, esize = 4;
    else if (!strcmp(d, "I16") || !strcmp(d, "U16")) t->dtype = ST_OTHER, esize = 2;
    else if (!strcmp(d, "I8") || !strcmp(d, "U8") || !strcmp(d, "BOOL")) t->dtype = ST_OTHER, esize = 1;
    else return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype '%s'", path, name, d);
    size_t nd = json_array_size(shape);
    if (nd > ST_MAX_DIMS)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d)", path, name, nd,
                         ST_MAX_DIMS);
    t->name = name;
    t->n_dims = (uint32_t)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *x = json_array_get(shape, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (json_int_t)1 << 40)
            return ryot_fail(err, RYOT_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a dimension", path, name, i);
        t->shape[i] = (uint64_t)json_integer_value(x);
        if (t->shape[i] && numel > UINT64_MAX / 8 / t->shape[i])
            return ryot_fail(err, RYOT_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        numel *= t->shape[i];
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b) || (uint64_t)json_integer_value(e) > data_len)
        return ryot_fail(err, RYOT_ERR_FORMAT, "%s: tensor '%s': data_offsets outside the %llu-byte data section",
                         path, name, (unsigned long long)data_len);
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
    if (end - begin != numel * esize)
        return ryot_fail(err, RYOT_ERR_FORMAT, "%s: tensor '%s': %llu bytes for %llu elements of %s", path, name,
                         (unsigned long long)(end - begin), (unsigned long long)numel, d);
    t->data = data + begin;
    return RYOT_OK;
}

static ryot_status st_open(const char *path, st_file *s, ryot_error *err) {
    memset(s, 0, sizeof *s);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ryot_fail(err, RYOT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 8) {
        close(fd);
        return ryot_fail(err, RYOT_ERR_FORMAT, "%s: too short for a safetensors header", path);
    }
    s->size = (size_t)sb.st_size;
    void *m = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return ryot_fail(err, RYOT_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    s->map = m;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | s->map[i];
    if (hlen > ST_MAX_HEADER || hlen > s->size - 8) {
        ryot_status st = ryot_fail(err, RYOT_ERR_FORMAT, "%s: header length %llu does not fit the %zu-byte file",
                                   path, (unsigned long long)hlen, s->size);
        st_close(s);
        return st;
    }
    json_error_t je;
    s->header = json_loadb((const char *)s->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(s->header)) {
        ryot_status st = ryot_fail(err, RYOT_ERR_FORMAT, "%s: header: %s", path,
                                   s->header ? "not a JSON object" : je.text);
        st_close(s);
        return st;
    }
    s->tensors = calloc(json_object_size(s->header) + 1, sizeof *s->tensors);
    if (!s->tensors) {
        st_close(s);
        return ryot_fail(err, RYOT_ERR_NOMEM, "%s: tensor index", path);
    }
    const uint8_t *data = s->map + 8 + hlen;
    const uint64_t data_len = s->size - 8 - hlen;
    const char *name;
    json_t *v;
    json_object_foreach(s->header, name, v) {
        if (!strcmp(name, "__metadata__")) continue;
        ryot_status st = st_parse_tensor(path, name, v, data, data_len, &s->tensors[s->n_tensors], err);
        if (st != RYOT_OK) {
            st_close(s);
            return st;
        }
        s->n_tensors++;
    }
    return RYOT_OK;
}

static const st_tensor *st_find(const st_file *s, const char *name) {
    for (size_t i = 0; i < s->n_tensors; i++)
        if (!strcmp(s->tensors[i].name, name)) return &s->tensors[i];
    return NULL;
}

/* Element i of t as a float. */
static float st_get(const st_tensor *t, uint64_t i) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case ST_F16: return ryot_fp16_to_fp32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    case ST_BF16: return ryot_bf16_to_fp32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    default: RYOT_ASSERT(!"st_get on a non-float tensor"); return 0;
    }
}

/* ---------------------------------------------------------------- config */

static ryot_status load_json(const char *dir, const char *file, bool required, json_t **out, ryot_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    *out = NULL;
    if (!required && access(path, F_OK) != 0) return RYOT_OK;
    json_error_t je;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!*out)
        return ryot_fail(err, access(path, F_OK) ? RYOT_ERR_NOT_FOUND : RYOT_ERR_FORMAT, "%s: %s (line %d)", path,
                         je.text, je.line);
    if (!json_is_object(*out) && !json_is_array(*out)) {
        json_decref(*out);
        *out = NULL;
        return ryot_fail(err, RYOT_ERR_FORMAT, "%s: not a JSON object or array", path);
    }
    return RYOT_OK;
}

static ryot_status cfg_int(json_t *cfg, const char *key, long lo, long hi, uint32_t *out, ryot_error *err) {
    json_t *v = json_object_get(cfg, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return ryot_fail(err, RYOT_ERR_FORMAT, "config.json: %s must be an integer in [%ld, %ld]", key, lo, hi);
    *out = (uint32_t)json_integer_value(v);
    return RYOT_OK;
}

static bool cfg_str_is(json_t *cfg, const char *key, const char *want, bool absent_ok) {
    json_t *v = json_object_get(cfg, key);
    if (!v) return absent_ok;
    return json_is_string(v) && !strcmp(json_string_value(v), want);
}

typedef struct bert_shape {
    uint32_t n_embd, n_layer, n_head, n_ff, n_ctx, n_vocab, n_types;
    float eps;
    uint32_t pooling; /* GGUF pooling_type: 1 mean, 2 CLS */
    bool normalize;
} bert_shape;

static ryot_status read_config(const char *dir, bert_shape *sh, ryot_error *err) {
    json_t *cfg, *pool = NULL, *mods = NULL;
    ryot_status st = load_json(dir, "config.json", true, &cfg, err);
    if (st != RYOT_OK) return st;
    if (!json_is_object(cfg))
        st = ryot_fail(err, RYOT_ERR_FORMAT, "config.json: not a JSON object");
    else if (!cfg_str_is(cfg, "model_type", "bert", false))
        st = ryot_fail(err, RYOT_ERR_UNSUPPORTED, "config.json: model_type is not \"bert\"");
    else if (!cfg_str_is(cfg, "hidden_act", "gelu", false))
        st = ryot_fail(err, RYOT_ERR_UNSUPPORTED, "config.json: hidden_act must be \"gelu\" (the erf form)");
    else if (!cfg_str_is(cfg, "position_embedding_type", "absolute", true))
        st = ryot_fail(err, RYOT_ERR_UNSUPPORTED, "config.json: position_embedding_type must be \"absolute\"");
    if (!st) st = cfg_int(cfg, "hidden_size", 1, 65536, &sh->n_embd, err);
    if (!st) st = cfg_int(cfg, "num_hidden_layers", 1, 1024, &sh->n_layer, err);
    if (!st) st = cfg_int(cfg, "num_attention_heads", 1, 1024, &sh->n_head, err);
    if (!st) st = cfg_int(cfg, "intermediate_size", 1, 1 << 20, &sh->n_ff, err);
    if (!st) st = cfg_int(cfg, "max_position_embeddings", 1, 1 << 20, &sh->n_ctx, err);
    if (!st) st = cfg_int(cfg, "vocab_size", 1, 1 << 24, &sh->n_vocab, err);
    if (!st) st = cfg_int(cfg, "type_vocab_size", 1, 1024, &sh->n_types, err);
    if (!st && sh->n_embd % sh->n_head)
        st = ryot_fail(err, RYOT_ERR_FORMAT, "config.json: hidden_size %u is not a multiple of num_attention_heads %u",
                       sh->n_embd, sh->n_head);
    json_t *eps = json_object_get(cfg, "layer_norm_eps");
    if (!st && (!json_is_number(eps) || json_number_value(eps) <= 0 || json_number_value(eps) > 1))
        st = ryot_fail(err, RYOT_ERR_FORMAT, "config.json: layer_norm_eps must be a number in (0, 1]");
    if (!st) sh->eps = (float)json_number_value(eps);
    json_decref(cfg);
    if (st) return st;

    /* sentence-transformers modules: pooling and the final normalization */
    sh->pooling = 1;
    sh->normalize = false;
    if ((st = load_json(dir, "1_Pooling/config.json", false, &pool, err)) != RYOT_OK) return st;
    if (pool) {
        bool mean = json_is_true(json_object_get(pool, "pooling_mode_mean_tokens"));
        bool cls = json_is_true(json_object_get(pool, "pooling_mode_cls_token"));
        json_decref(pool);
        if (mean == cls)
            return ryot_fail(err, RYOT_ERR_UNSUPPORTED,
                             "1_Pooling/config.json: exactly one of pooling_mode_mean_tokens, pooling_mode_cls_token");
        sh->pooling = mean ? 1 : 2;
    }
    if ((st = load_json(dir, "modules.json", false, &mods, err)) != RYOT_OK) return st;
    size_t i;
    json_t *mod;
    json_array_foreach(mods, i, mod) { /* NULL or an object: no modules */
        json_t *type = json_object_get(mod, "type");
        const char *t = json_is_string(type) ? json_string_value(type) : "";
        size_t n = strlen(t);
        if (n >= 9 && !strcmp(t + n - 9, "Normalize")) sh->normalize = true;
    }
    json_decref(mods);
    return RYOT_OK;
}

/* ---------------------------------------------------------------- vocab */

typedef struct bert_vocab {
    char **tokens;   /* GGUF form: "\u2581word" for a word start, "piece" for "##piece", specials as they are */
    int32_t *types;  /* token_type */
    uint32_t n;
    int32_t unk, cls, sep, pad, mask;
} bert_vocab;

static void vocab_free(bert_vocab *v) {
    for (uint32_t i = 0; v->tokens && i < v->n; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->types);
    memset(v, 0, sizeof *v);
}

/* The GGUF spelling of a WordPiece vocab entry (llama.cpp's convention, which
 * tokenizer/wpm.c reads): bracketed specials stay, "##x" becomes "x", any
 * other entry starts a word and gets the U+2581 marker. */
static char *gguf_piece(const char *tok, bool special) {
    size_t n = strlen(tok);
    bool bracket = n >= 2 && tok[0] == '[' && tok[n - 1] == ']';
    char *out = malloc(n + 4);
    if (!out) return NULL;
    if (special || bracket) memcpy(out, tok, n + 1);
    else if (n > 2 && tok[0] == '#' && tok[1] == '#') memcpy(out, tok + 2, n - 1);
    else memcpy(out, "\xe2\x96\x81", 3), memcpy(out + 3, tok, n + 1);
    return out;
}

static int32_t vocab_id(json_t *vocab, const char *tok) {
    json_t *v = json_object_get(vocab, tok);
    return json_is_integer(v) ? (int32_t)json_integer_value(v) : -1;
}

static ryot_status read_vocab(const char *dir, uint32_t n_vocab, bert_vocab *bv, ryot_error *err) {
    memset(bv, 0, sizeof *bv);
    json_t *tj;
    ryot_status st = load_json(dir, "tokenizer.json", true, &tj, err);
    if (st != RYOT_OK) return st;
    json_t *model = json_object_get(tj, "model"), *norm = json_object_get(tj, "normalizer");
    json_t *vocab = json_object_get(model, "vocab"), *added = json_object_get(tj, "added_tokens");
    json_t *lower = json_object_get(norm, "lowercase"), *strip = json_object_get(norm, "strip_accents");
    if (!cfg_str_is(model, "type", "WordPiece", false) || !json_is_object(vocab))
        st = ryot_fail(err, RYOT_ERR_UNSUPPORTED, "tokenizer.json: model.type must be \"WordPiece\" with a vocab");
    else if (!cfg_str_is(model, "continuing_subword_prefix", "##", true))
        st = ryot_fail(err, RYOT_ERR_UNSUPPORTED, "tokenizer.json: model.continuing_subword_prefix must be \"##\"");
    else if (!cfg_str_is(norm, "type", "BertNormalizer", false) || !json_is_true(lower) ||
             (strip && !json_is_null(strip) && !json_is_true(strip)))
        /* tokenizer/wpm.c is BERT-uncased: lower case and accents stripped */
        st = ryot_fail(err, RYOT_ERR_UNSUPPORTED,
                       "tokenizer.json: normalizer must be BertNormalizer with lowercase true and strip_accents "
                       "null or true");
    else if (json_object_size(vocab) != n_vocab)
        st = ryot_fail(err, RYOT_ERR_FORMAT, "tokenizer.json: %zu vocab entries, config.json vocab_size %u",
                       json_object_size(vocab), n_vocab);
    if (!st) {
        bv->n = n_vocab;
        bv->tokens = calloc(n_vocab, sizeof *bv->tokens);
        bv->types = calloc(n_vocab, sizeof *bv->types);
        if (!bv->tokens || !bv->types) st = ryot_fail(err, RYOT_ERR_NOMEM, "vocab of %u tokens", n_vocab);
    }
    /* added tokens flagged special are control tokens (split out of any text, as Hugging Face does) */
    size_t i;
    json_t *a;
    json_array_foreach(st ? NULL : added, i, a) {
        json_t *id = json_object_get(a, "id");
        if (json_is_true(json_object_get(a, "special")) && json_is_integer(id) && json_integer_value(id) >= 0 &&
            json_integer_value(id) < n_vocab)
            bv->types[json_integer_value(id)] = 3; /* TOKEN_TYPE_CONTROL */
    }
    const char *key;
    json_t *v;
    if (!st) json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab) {
            st = ryot_fail(err, RYOT_ERR_FORMAT, "tokenizer.json: vocab id of '%.40s' is not in [0, %u)", key, n_vocab);
            break;
        }
        uint32_t id = (uint32_t)json_integer_value(v);
        if (bv->tokens[id]) {
            st = ryot_fail(err, RYOT_ERR_FORMAT, "tokenizer.json: vocab id %u given twice", id);
            break;
        }
        if (!(bv->tokens[id] = gguf_piece(key, bv->types[id] == 3))) {
            st = ryot_fail(err, RYOT_ERR_NOMEM, "vocab");
            break;
        }
        if (!bv->types[id]) bv->types[id] = 1; /* TOKEN_TYPE_NORMAL */
    }
    if (!st) {
        json_t *unk = json_object_get(model, "unk_token");
        bv->unk = vocab_id(vocab, json_is_string(unk) ? json_string_value(unk) : "[UNK]");
        bv->cls = vocab_id(vocab, "[CLS]");
        bv->sep = vocab_id(vocab, "[SEP]");
        bv->pad = vocab_id(vocab, "[PAD]");
        bv->mask = vocab_id(vocab, "[MASK]");
        if (bv->cls < 0 || bv->sep < 0 || bv->unk < 0)
            st = ryot_fail(err, RYOT_ERR_FORMAT, "tokenizer.json: the vocab lacks [CLS], [SEP] or the unknown token");
    }
    json_decref(tj);
    if (st) vocab_free(bv);
    return st;
}

/* ---------------------------------------------------------------- tensors */

typedef struct tensor_map {
    const char *hf;   /* after "encoder.layer.N." for per-layer tensors */
    const char *gguf; /* after "blk.N." */
} tensor_map;

static const tensor_map global_tensors[] = {
    {"embeddings.word_embeddings.weight", "token_embd.weight"},
    {"embeddings.position_embeddings.weight", "position_embd.weight"},
    {"embeddings.token_type_embeddings.weight", "token_types.weight"},
    {"embeddings.LayerNorm.weight", "token_embd_norm.weight"},
    {"embeddings.LayerNorm.bias", "token_embd_norm.bias"},
};

static const tensor_map layer_tensors[] = {
    {"attention.self.query.weight", "attn_q.weight"},
    {"attention.self.query.bias", "attn_q.bias"},
    {"attention.self.key.weight", "attn_k.weight"},
    {"attention.self.key.bias", "attn_k.bias"},
    {"attention.self.value.weight", "attn_v.weight"},
    {"attention.self.value.bias", "attn_v.bias"},
    {"attention.output.dense.weight", "attn_output.weight"},
    {"attention.output.dense.bias", "attn_output.bias"},
    {"attention.output.LayerNorm.weight", "attn_output_norm.weight"},
    {"attention.output.LayerNorm.bias", "attn_output_norm.bias"},
    {"intermediate.dense.weight", "ffn_up.weight"},
    {"intermediate.dense.bias", "ffn_up.bias"},
    {"output.dense.weight", "ffn_down.weight"},
    {"output.dense.bias", "ffn_down.bias"},
    {"output.LayerNorm.weight", "layer_output_norm.weight"},
    {"output.LayerNorm.bias", "layer_output_norm.bias"},
};
#define N_GLOBAL (sizeof global_tensors / sizeof *global_tensors)
#define N_PER_LAYER (sizeof layer_tensors / sizeof *layer_tensors)

/* Expected GGUF shape (ne[0] first) of a tensor. */
static void expected_shape(const bert_shape *sh, const char *gguf, uint64_t ne[2], uint32_t *n_dims) {
    uint64_t e = sh->n_embd, f = sh->n_ff;
    *n_dims = 2;
    ne[0] = e;
    if (!strcmp(gguf, "token_embd.weight")) ne[1] = sh->n_vocab;
    else if (!strcmp(gguf, "position_embd.weight")) ne[1] = sh->n_ctx;
    else if (!strcmp(gguf, "token_types.weight")) ne[1] = sh->n_types;
    else if (!strcmp(gguf, "ffn_up.weight")) ne[1] = f;
    else if (!strcmp(gguf, "ffn_down.weight")) ne[0] = f, ne[1] = e;
    else if (strstr(gguf, ".weight") && !strstr(gguf, "norm")) ne[1] = e;
    else *n_dims = 1, ne[0] = !strcmp(gguf, "ffn_up.bias") ? f : e, ne[1] = 1;
}

typedef struct planned {
    const st_tensor *src;
    char name[64];
    ryot_type type;
} planned;

/* The safetensors tensor named hf, with or without the "bert." prefix some
 * checkpoints carry. */
static const st_tensor *find_hf(const st_file *s, const char *hf) {
    const st_tensor *t = st_find(s, hf);
    if (t) return t;
    char name[200];
    snprintf(name, sizeof name, "bert.%s", hf);
    return st_find(s, name);
}

static ryot_status plan_one(const st_file *s, const bert_shape *sh, ryot_type want, const char *hf,
                            const char *gguf_base, const char *gguf, planned *p, ryot_error *err) {
    p->src = find_hf(s, hf);
    if (!p->src) return ryot_fail(err, RYOT_ERR_NOT_FOUND, "model.safetensors: no tensor '%s'", hf);
    if (p->src->dtype == ST_OTHER)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "model.safetensors: '%s' is not F32, F16 or BF16", hf);
    uint64_t ne[2];
    uint32_t nd;
    expected_shape(sh, gguf_base, ne, &nd);
    bool ok = p->src->n_dims == nd && (nd == 1 ? p->src->shape[0] == ne[0]
                                                : p->src->shape[0] == ne[1] && p->src->shape[1] == ne[0]);
    if (!ok)
        return ryot_fail(err, RYOT_ERR_FORMAT, "model.safetensors: '%s' does not have the shape config.json implies",
                         hf);
    snprintf(p->name, sizeof p->name, "%s", gguf);
    p->type = nd == 1 ? RYOT_TYPE_F32 : modeltools_row_type(want, ne[0]);
    return RYOT_OK;
}

static void set_metadata(gguf_writer *w, const bert_shape *sh, const bert_vocab *bv, const char *name,
                         ryot_type type) {
    gguf_writer_set_str(w, "general.architecture", "bert");
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_u32(w, "general.file_type", modeltools_file_type(type));
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, "bert.context_length", sh->n_ctx);
    gguf_writer_set_u32(w, "bert.embedding_length", sh->n_embd);
    gguf_writer_set_u32(w, "bert.feed_forward_length", sh->n_ff);
    gguf_writer_set_u32(w, "bert.block_count", sh->n_layer);
    gguf_writer_set_u32(w, "bert.attention.head_count", sh->n_head);
    gguf_writer_set_f32(w, "bert.attention.layer_norm_epsilon", sh->eps);
    gguf_writer_set_bool(w, "bert.attention.causal", false);
    gguf_writer_set_u32(w, "bert.pooling_type", sh->pooling);
    gguf_writer_set_bool(w, "bert.normalize_embeddings", sh->normalize);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)bv->tokens, bv->n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, bv->types, bv->n);
    gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", (uint32_t)sh->n_types); /* segment (token type) count, as BERT readers expect */
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)bv->unk);
    gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", (uint32_t)bv->cls);
    gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", (uint32_t)bv->sep);
    if (bv->pad >= 0) gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)bv->pad);
    if (bv->mask >= 0) gguf_writer_set_u32(w, "tokenizer.ggml.mask_token_id", (uint32_t)bv->mask);
}

/* Rows of p->src (float source) into dst in p->type. */
static ryot_status write_tensor(const planned *p, uint8_t *dst, float *row, ryot_error *err) {
    const st_tensor *t = p->src;
    const uint64_t n_in = t->n_dims == 1 ? t->shape[0] : t->shape[1];
    const uint64_t n_rows = t->n_dims == 1 ? 1 : t->shape[0];
    const kernel_traits *kt = kernels_ref(p->type);
    uint64_t rb;
    if (!kt->from_float || !ryot_row_size(p->type, n_in, &rb))
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "%s: cannot write %s rows of %llu", p->name,
                         ryot_type_name(p->type), (unsigned long long)n_in);
    for (uint64_t r = 0; r < n_rows; r++) {
        for (uint64_t i = 0; i < n_in; i++) row[i] = st_get(t, r * n_in + i);
        kt->from_float(row, dst + r * rb, (int64_t)n_in);
    }
    return RYOT_OK;
}

ryot_status convert_bert_build(const char *dir, ryot_type type, uint8_t **buf, size_t *size,
                               convert_report *report, ryot_error *err) {
    *buf = NULL;
    *size = 0;
    if (type != RYOT_TYPE_F32 && type != RYOT_TYPE_F16 && type != RYOT_TYPE_Q8_0)
        return ryot_fail(err, RYOT_ERR_INVALID, "type: %s (F32, F16 or Q8_0)", ryot_type_name(type));
    bert_shape sh;
    ryot_status st = read_config(dir, &sh, err);
    if (st != RYOT_OK) return st;
    bert_vocab bv;
    if ((st = read_vocab(dir, sh.n_vocab, &bv, err)) != RYOT_OK) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file s;
    if ((st = st_open(path, &s, err)) != RYOT_OK) {
        vocab_free(&bv);
        return st;
    }
    const size_t n_tensors = N_GLOBAL + (size_t)sh.n_layer * N_PER_LAYER;
    planned *plan = calloc(n_tensors, sizeof *plan);
    float *row = malloc(sizeof(float) * (sh.n_ff > sh.n_embd ? sh.n_ff : sh.n_embd));
    gguf_writer *w = gguf_writer_new(3);
    if (!plan || !row || !w) st = ryot_fail(err, RYOT_ERR_NOMEM, "converting %s", dir);
    for (size_t i = 0; !st && i < n_tensors; i++) {
        char hf[160], gguf[64];
        const tensor_map *m;
        if (i < N_GLOBAL) {
            m = &global_tensors[i];
            snprintf(hf, sizeof hf, "%s", m->hf);
            snprintf(gguf, sizeof gguf, "%s", m->gguf);
        } else {
            size_t il = (i - N_GLOBAL) / N_PER_LAYER;
            m = &layer_tensors[(i - N_GLOBAL) % N_PER_LAYER];
            snprintf(hf, sizeof hf, "encoder.layer.%zu.%s", il, m->hf);
            snprintf(gguf, sizeof gguf, "blk.%zu.%s", il, m->gguf);
        }
        st = plan_one(&s, &sh, type, hf, m->gguf, gguf, &plan[i], err);
    }
    const char *base = strrchr(dir, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : dir);
    if (!st) {
        set_metadata(w, &sh, &bv, name, type);
        for (size_t i = 0; i < n_tensors; i++) {
            const st_tensor *t = plan[i].src;
            uint64_t ne[2] = {t->n_dims == 1 ? t->shape[0] : t->shape[1], t->n_dims == 1 ? 1 : t->shape[0]};
            gguf_writer_add_tensor(w, plan[i].name, plan[i].type, t->n_dims, ne, NULL);
        }
    }
    uint8_t *out = NULL;
    size_t out_size = 0;
    gguf_file *f = NULL;
    if (!st) st = modeltools_layout(w, &out, &out_size, &f, err);
    uint64_t n_params = 0;
    for (size_t i = 0; !st && i < n_tensors; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, plan[i].name);
        RYOT_ASSERT(t);
        st = write_tensor(&plan[i], modeltools_tensor_dst(out, f, t), row, err);
        n_params += t->ne[0] * t->ne[1];
    }
    gguf_close(f);
    gguf_writer_free(w);
    free(row);
    free(plan);
    st_close(&s);
    vocab_free(&bv);
    if (st) {
        free(out);
        return st;
    }
    if (report) *report = (convert_report){.n_params = n_params, .n_tensors = (uint32_t)n_tensors,
                                           .n_layer = sh.n_layer, .n_embd = sh.n_embd, .n_vocab = sh.n_vocab};
    *buf = out;
    *size = out_size;
    return RYOT_OK;
}
