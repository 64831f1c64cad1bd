/* GGUF reader: maps a file (or takes a caller's buffer) and validates every
 * field before trusting it.
 *
 * Defensive contract: the parser never reads past the end of the buffer and
 * never allocates more than a small constant times the file size.  Every
 * count read from the file is first bounded by what the bytes that remain
 * could possibly encode (e.g. a key-value pair needs at least 14 bytes), so a
 * hostile count fails before anything is allocated.  All memory lives in one
 * arena (a short chain of large blocks) freed by gguf_close. */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "core/arena.h"
#include <unistd.h>

/* The arena's first block: what a file needs is roughly proportional to its
 * header, so small for tiny inputs (tests, fuzzing), doubling for big ones up
 * to 64 MiB blocks. */
#define ARENA_MIN_BLOCK ((size_t)64 << 10)
#define ARENA_MAX_BLOCK ((size_t)64 << 20)

/* ------------------------------------------------------------ type tables */

static const char *const type_names[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = "u8",     [GGUF_TYPE_INT8] = "i8",     [GGUF_TYPE_UINT16] = "u16",
    [GGUF_TYPE_INT16] = "i16",    [GGUF_TYPE_UINT32] = "u32",  [GGUF_TYPE_INT32] = "i32",
    [GGUF_TYPE_FLOAT32] = "f32",  [GGUF_TYPE_BOOL] = "bool",   [GGUF_TYPE_STRING] = "string",
    [GGUF_TYPE_ARRAY] = "array",  [GGUF_TYPE_UINT64] = "u64",  [GGUF_TYPE_INT64] = "i64",
    [GGUF_TYPE_FLOAT64] = "f64",
};

static const uint8_t type_sizes[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = 1,   [GGUF_TYPE_INT8] = 1,   [GGUF_TYPE_UINT16] = 2, [GGUF_TYPE_INT16] = 2,
    [GGUF_TYPE_UINT32] = 4,  [GGUF_TYPE_INT32] = 4,  [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
    [GGUF_TYPE_STRING] = 0,  [GGUF_TYPE_ARRAY] = 0,  [GGUF_TYPE_UINT64] = 8, [GGUF_TYPE_INT64] = 8,
    [GGUF_TYPE_FLOAT64] = 8,
};

const char *gguf_type_name(gguf_type t) {
    return (unsigned)t < GGUF_TYPE_COUNT ? type_names[t] : "?";
}

size_t gguf_type_size(gguf_type t) {
    return (unsigned)t < GGUF_TYPE_COUNT ? type_sizes[t] : 0;
}

bool gguf_type_is_int(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16:
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64:
        return true;
    default:
        return false;
    }
}

static bool type_is_signed(gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

/* --------------------------------------------------------- little endian */

static uint64_t load_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int64_t sign_extend(uint64_t v, unsigned bytes) {
    if (bytes >= 8) return (int64_t)v;
    unsigned shift = 64 - 8 * bytes;
    return (int64_t)(v << shift) >> shift;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double f64_from_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* ------------------------------------------------------- message helpers */

/* Writes s (not NUL-terminated, from the file) printable and bounded: control
 * and non-ASCII bytes become \xNN, long names end in "...".  Keeps error
 * messages to one line whatever the file holds. */
#define NAME_BUF 96
static const char *fmt_name(char out[NAME_BUF], const char *s, uint64_t len) {
    size_t o = 0;
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 > NAME_BUF) {
            memcpy(out + o, "...", 4);
            return out;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            out[o++] = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
    return out;
}

/* ----------------------------------------------------------------- parser */

typedef struct parser {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    ryot_arena *a;
    ryot_error *err;
    char ctx[2 * NAME_BUF + 64]; /* "kv #3 'name'" or "tensor 'x' (#2)": prefix of messages */
} parser;

typedef unsigned long long ull;

static uint64_t left(const parser *p) { return p->size - p->pos; }

static ryot_status truncated(parser *p, const char *what, uint64_t need) {
    return ryot_fail(p->err, RYOT_ERR_FORMAT,
                     "gguf: %s: %s at offset %llu is truncated: needs %llu bytes, %llu left (file size %llu)",
                     p->ctx, what, (ull)p->pos, (ull)need, (ull)left(p), (ull)p->size);
}

static ryot_status nomem(parser *p, uint64_t bytes) {
    return ryot_fail(p->err, RYOT_ERR_NOMEM, "gguf: %s: out of memory allocating %llu bytes", p->ctx,
                     (ull)bytes);
}

static ryot_status rd_uint(parser *p, unsigned bytes, const char *what, uint64_t *out) {
    if (left(p) < bytes) {
        *out = 0;
        return truncated(p, what, bytes);
    }
    *out = load_le(p->base + p->pos, bytes);
    p->pos += bytes;
    return RYOT_OK;
}

static ryot_status rd_u32(parser *p, const char *what, uint32_t *out) {
    uint64_t v = 0;
    ryot_status st = rd_uint(p, 4, what, &v);
    *out = (uint32_t)v;
    return st;
}

static ryot_status rd_str(parser *p, const char *what, gguf_str *out) {
    uint64_t at = p->pos, len;
    ryot_status st = rd_uint(p, 8, what, &len);
    if (st) return st;
    if (len > left(p))
        return ryot_fail(p->err, RYOT_ERR_FORMAT,
                         "gguf: %s: %s length %llu at offset %llu exceeds the %llu bytes left in the file (size %llu)",
                         p->ctx, what, (ull)len, (ull)at, (ull)left(p), (ull)p->size);
    out->len = len;
    out->data = (const char *)p->base + p->pos;
    p->pos += len;
    return RYOT_OK;
}

static void *alloc_array(parser *p, uint64_t n, size_t elem) {
    uint64_t bytes;
    if (__builtin_mul_overflow(n, (uint64_t)elem, &bytes)) {
        nomem(p, UINT64_MAX);
        return NULL;
    }
    void *q = ryot_arena_alloc(p->a, bytes ? bytes : 1);
    if (!q) nomem(p, bytes);
    return q;
}

static ryot_status parse_array(parser *p, gguf_array *arr, unsigned depth);

/* A scalar or string value of type t at p->pos (not ARRAY). */
static ryot_status parse_scalar(parser *p, gguf_type t, gguf_value *v) {
    v->type = t;
    unsigned sz = type_sizes[t];
    uint64_t u = 0;
    ryot_status st;
    char what[32];
    snprintf(what, sizeof what, "%s value", type_names[t]);
    switch (t) {
    case GGUF_TYPE_STRING:
        return rd_str(p, "string value", &v->str);
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        return rd_uint(p, sz, what, &v->u64);
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        st = rd_uint(p, sz, what, &u);
        v->i64 = sign_extend(u, sz);
        return st;
    case GGUF_TYPE_FLOAT32:
        st = rd_uint(p, 4, what, &u);
        v->f64 = f32_from_bits((uint32_t)u);
        return st;
    case GGUF_TYPE_FLOAT64:
        st = rd_uint(p, 8, what, &u);
        v->f64 = f64_from_bits(u);
        return st;
    case GGUF_TYPE_BOOL:
        /* Any non-zero byte reads as true; the byte itself is never loaded as a C bool. */
        st = rd_uint(p, 1, what, &u);
        v->b = u != 0;
        return st;
    default:
        return ryot_fail(p->err, RYOT_ERR_INTERNAL, "gguf: parse_scalar: type %d", (int)t);
    }
}

/* Array body: elem_type u32 | n u64 | n elements.  depth counts array levels
 * (1 for a key's own array) and is bounded so that hostile nesting cannot
 * exhaust the stack. */
static ryot_status parse_array(parser *p, gguf_array *arr, unsigned depth) {
    uint64_t at = p->pos;
    if (depth > GGUF_MAX_NESTING)
        return ryot_fail(p->err, RYOT_ERR_FORMAT,
                         "gguf: %s: array at offset %llu is nested more than %d levels deep", p->ctx, (ull)at,
                         GGUF_MAX_NESTING);
    uint32_t et;
    ryot_status st = rd_u32(p, "array element type", &et);
    if (st) return st;
    if (et >= GGUF_TYPE_COUNT)
        return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: invalid array element type %u at offset %llu",
                         p->ctx, et, (ull)at);
    uint64_t n_at = p->pos, n;
    if ((st = rd_uint(p, 8, "array length", &n))) return st;
    arr->type = (gguf_type)et;
    arr->n = n;
    /* Smallest encoding of one element: scalars their size, strings their
     * 8-byte length, nested arrays type + length (12 bytes). */
    uint64_t min_elem = et == GGUF_TYPE_STRING ? 8 : et == GGUF_TYPE_ARRAY ? 12 : type_sizes[et];
    if (n > left(p) / min_elem)
        return ryot_fail(p->err, RYOT_ERR_FORMAT,
                         "gguf: %s: array of %llu %s elements at offset %llu cannot fit in the %llu bytes left in the file "
                         "(size %llu)",
                         p->ctx, (ull)n, type_names[et], (ull)n_at, (ull)left(p), (ull)p->size);
    if (et == GGUF_TYPE_STRING) {
        arr->strs = alloc_array(p, n, sizeof(gguf_str));
        if (!arr->strs) return RYOT_ERR_NOMEM;
        for (uint64_t i = 0; i < n; i++) {
            char what[48];
            snprintf(what, sizeof what, "string element #%llu", (ull)i);
            if ((st = rd_str(p, what, &arr->strs[i]))) return st;
        }
    } else if (et == GGUF_TYPE_ARRAY) {
        arr->vals = alloc_array(p, n, sizeof(gguf_value));
        if (!arr->vals) return RYOT_ERR_NOMEM;
        for (uint64_t i = 0; i < n; i++) {
            arr->vals[i].type = GGUF_TYPE_ARRAY;
            if ((st = parse_array(p, &arr->vals[i].arr, depth + 1))) return st;
        }
    } else {
        arr->raw = p->base + p->pos;
        p->pos += n * min_elem; /* bounded above */
    }
    return RYOT_OK;
}

/* Open-addressing set of names for duplicate detection: slots hold index+1. */
typedef struct name_set {
    uint64_t *slots;
    uint64_t mask;
} name_set;

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static ryot_status name_set_init(parser *p, name_set *s, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2; /* n is bounded by the file size, so this terminates small */
    s->slots = alloc_array(p, cap, sizeof(uint64_t));
    s->mask = cap - 1;
    return s->slots ? RYOT_OK : RYOT_ERR_NOMEM;
}

static bool str_same(gguf_str a, gguf_str b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* Inserts index i whose name is names(i); returns the earlier index with the
 * same name, or UINT64_MAX when the name is new. */
static uint64_t name_set_add(name_set *s, gguf_str name, uint64_t i, gguf_str (*get)(const void *, uint64_t),
                             const void *ctx) {
    uint64_t h = hash_bytes(name.data, name.len) & s->mask;
    for (;; h = (h + 1) & s->mask) {
        if (!s->slots[h]) {
            s->slots[h] = i + 1;
            return UINT64_MAX;
        }
        uint64_t j = s->slots[h] - 1;
        if (str_same(get(ctx, j), name)) return j;
    }
}

static gguf_str kv_name(const void *ctx, uint64_t i) { return ((const gguf_kv *)ctx)[i].key; }
static gguf_str tensor_name(const void *ctx, uint64_t i) { return ((const gguf_tensor *)ctx)[i].name; }

/* Minimum bytes of one kv (key length, a 1-byte key, type, a 1-byte value)
 * and one tensor info (name length, a 1-byte name, n_dims, one ne, type,
 * offset). */
#define MIN_KV_BYTES 14u
#define MIN_TENSOR_INFO_BYTES 33u

static ryot_status parse_kvs(parser *p, gguf_file *f) {
    ryot_status st;
    f->kv = alloc_array(p, f->n_kv, sizeof(gguf_kv));
    if (!f->kv) return RYOT_ERR_NOMEM;
    name_set set;
    if ((st = name_set_init(p, &set, f->n_kv))) return st;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        uint64_t key_at = p->pos;
        snprintf(p->ctx, sizeof p->ctx, "kv #%llu", (ull)i);
        if ((st = rd_str(p, "key", &kv->key))) return st;
        char name[NAME_BUF];
        fmt_name(name, kv->key.data, kv->key.len);
        if (kv->key.len == 0)
            return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: empty key at offset %llu", p->ctx, (ull)key_at);
        snprintf(p->ctx, sizeof p->ctx, "kv #%llu '%s'", (ull)i, name);
        uint64_t first = name_set_add(&set, kv->key, i, kv_name, f->kv);
        if (first != UINT64_MAX)
            return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: duplicate key at offset %llu (first at kv #%llu)",
                             p->ctx, (ull)key_at, (ull)first);
        uint64_t type_at = p->pos;
        uint32_t t;
        if ((st = rd_u32(p, "value type", &t))) return st;
        if (t >= GGUF_TYPE_COUNT)
            return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: invalid value type %u at offset %llu", p->ctx, t,
                             (ull)type_at);
        uint64_t val_at = p->pos;
        if (t == GGUF_TYPE_ARRAY) {
            kv->value.type = GGUF_TYPE_ARRAY;
            st = parse_array(p, &kv->value.arr, 1);
        } else {
            st = parse_scalar(p, (gguf_type)t, &kv->value);
        }
        if (st) return st;
        if (gguf_str_eq(kv->key, "general.alignment")) {
            if (t != GGUF_TYPE_UINT32)
                return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: alignment at offset %llu is %s, expected u32",
                                 p->ctx, (ull)type_at, type_names[t]);
            uint64_t al = kv->value.u64;
            if (al == 0 || (al & (al - 1)))
                return ryot_fail(p->err, RYOT_ERR_FORMAT,
                                 "gguf: %s: alignment %llu at offset %llu is not a non-zero power of two", p->ctx,
                                 (ull)al, (ull)val_at);
            f->alignment = al;
        }
    }
    return RYOT_OK;
}

static ryot_status parse_tensor_infos(parser *p, gguf_file *f) {
    ryot_status st;
    f->tensors = alloc_array(p, f->n_tensors, sizeof(gguf_tensor));
    if (!f->tensors) return RYOT_ERR_NOMEM;
    name_set set;
    if ((st = name_set_init(p, &set, f->n_tensors))) return st;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t at = p->pos;
        snprintf(p->ctx, sizeof p->ctx, "tensor #%llu", (ull)i);
        if ((st = rd_str(p, "name", &t->name))) return st;
        if (t->name.len == 0)
            return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: empty name at offset %llu", p->ctx, (ull)at);
        char name[NAME_BUF];
        snprintf(p->ctx, sizeof p->ctx, "tensor '%s' (#%llu)", fmt_name(name, t->name.data, t->name.len), (ull)i);
        uint64_t first = name_set_add(&set, t->name, i, tensor_name, f->tensors);
        if (first != UINT64_MAX)
            return ryot_fail(p->err, RYOT_ERR_FORMAT,
                             "gguf: %s: duplicate tensor name at offset %llu (first at tensor #%llu)", p->ctx,
                             (ull)at, (ull)first);
        at = p->pos;
        if ((st = rd_u32(p, "n_dims", &t->n_dims))) return st;
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
            return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: n_dims %u at offset %llu is not in 1..%d",
                             p->ctx, t->n_dims, (ull)at, GGUF_MAX_DIMS);
        at = p->pos;
        uint64_t nelem = 1;
        for (unsigned d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (unsigned d = 0; d < t->n_dims; d++) {
            uint64_t ne_at = p->pos;
            if ((st = rd_uint(p, 8, "dimension", &t->ne[d]))) return st;
            if (t->ne[d] == 0)
                return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: dimension %u is 0 at offset %llu", p->ctx, d,
                                 (ull)ne_at);
        }
        for (unsigned d = 0; d < t->n_dims; d++) {
            if (__builtin_mul_overflow(nelem, t->ne[d], &nelem) || nelem > (uint64_t)INT64_MAX)
                return ryot_fail(p->err, RYOT_ERR_FORMAT,
                                 "gguf: %s: element count of shape [%llu, %llu, %llu, %llu] at offset %llu overflows",
                                 p->ctx, (ull)t->ne[0], (ull)t->ne[1], (ull)t->ne[2], (ull)t->ne[3], (ull)at);
        }
        at = p->pos;
        uint32_t type;
        if ((st = rd_u32(p, "tensor type", &type))) return st;
        const ryot_type_info *ti = ryot_type_get(type);
        if (!ti)
            return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: unknown tensor type %u at offset %llu", p->ctx,
                             type, (ull)at);
        t->type = (ryot_type)type;
        if (t->ne[0] % ti->block_size)
            return ryot_fail(p->err, RYOT_ERR_FORMAT,
                             "gguf: %s: row length %llu is not a multiple of the %s block size %u (offset %llu)",
                             p->ctx, (ull)t->ne[0], ti->name, ti->block_size, (ull)at);
        /* nelem fits in int64 and type_size/block_size is small, but check anyway. */
        uint64_t row, size = 0;
        if (!ryot_row_size(t->type, t->ne[0], &row) ||
            __builtin_mul_overflow(row, t->ne[1], &size) || __builtin_mul_overflow(size, t->ne[2], &size) ||
            __builtin_mul_overflow(size, t->ne[3], &size))
            return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: %s: byte size of the %s tensor overflows (offset %llu)",
                             p->ctx, ti->name, (ull)at);
        t->size = size;
        at = p->pos;
        if ((st = rd_uint(p, 8, "data offset", &t->offset))) return st;
        if (t->offset % f->alignment)
            return ryot_fail(p->err, RYOT_ERR_FORMAT,
                             "gguf: %s: data offset %llu at offset %llu is not a multiple of the alignment %llu",
                             p->ctx, (ull)t->offset, (ull)at, (ull)f->alignment);
    }
    return RYOT_OK;
}

typedef struct span {
    uint64_t begin, end, idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Places every tensor inside the data section and rejects overlaps. */
static ryot_status place_tensors(parser *p, gguf_file *f) {
    if (f->n_tensors == 0) return RYOT_OK;
    char name[NAME_BUF], name2[NAME_BUF];
    if (f->data_offset >= f->size)
        return ryot_fail(p->err, RYOT_ERR_FORMAT,
                         "gguf: data section of %llu tensors would start at offset %llu, at or past the end of the "
                         "file (size %llu)",
                         (ull)f->n_tensors, (ull)f->data_offset, (ull)f->size);
    uint64_t room = f->size - f->data_offset;
    span *spans = alloc_array(p, f->n_tensors, sizeof(span));
    if (!spans) return RYOT_ERR_NOMEM;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset > room || t->size > room - t->offset)
            return ryot_fail(p->err, RYOT_ERR_FORMAT,
                             "gguf: tensor '%s' (#%llu): data [offset %llu, size %llu) ends past the end of the file "
                             "(data section at %llu, file size %llu)",
                             fmt_name(name, t->name.data, t->name.len), (ull)i, (ull)t->offset, (ull)t->size,
                             (ull)f->data_offset, (ull)f->size);
        t->data = f->base + f->data_offset + t->offset;
        spans[i] = (span){t->offset, t->offset + t->size, i};
    }
    qsort(spans, f->n_tensors, sizeof(span), span_cmp);
    for (uint64_t k = 1; k < f->n_tensors; k++) {
        if (spans[k].begin < spans[k - 1].end) {
            const gguf_tensor *a = &f->tensors[spans[k - 1].idx], *b = &f->tensors[spans[k].idx];
            return ryot_fail(p->err, RYOT_ERR_FORMAT,
                             "gguf: tensor '%s' (#%llu): data [offset %llu, size %llu) overlaps tensor '%s' (#%llu) "
                             "[offset %llu, size %llu)",
                             fmt_name(name, b->name.data, b->name.len), (ull)spans[k].idx, (ull)b->offset,
                             (ull)b->size, fmt_name(name2, a->name.data, a->name.len), (ull)spans[k - 1].idx,
                             (ull)a->offset, (ull)a->size);
        }
    }
    return RYOT_OK;
}

static ryot_status parse(parser *p, gguf_file *f) {
    ryot_status st;
    snprintf(p->ctx, sizeof p->ctx, "header");
    if (p->size < 4) return truncated(p, "magic", 4);
    if (memcmp(p->base, "GGUF", 4) != 0) {
        char m[NAME_BUF];
        return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: not a GGUF file: magic '%s' at offset 0, expected 'GGUF'",
                         fmt_name(m, (const char *)p->base, 4));
    }
    p->pos = 4;
    if ((st = rd_u32(p, "version", &f->version))) return st;
    if (f->version == 1)
        return ryot_fail(p->err, RYOT_ERR_UNSUPPORTED,
                         "gguf: version 1 at offset 4 is not supported (only versions 2 and 3)");
    if (f->version >= 0x01000000u && (f->version & 0xffffu) == 0)
        return ryot_fail(p->err, RYOT_ERR_UNSUPPORTED,
                         "gguf: version field 0x%08x at offset 4 looks big-endian; only little-endian files are "
                         "supported",
                         f->version);
    if (f->version == 0)
        return ryot_fail(p->err, RYOT_ERR_FORMAT, "gguf: version 0 at offset 4 is invalid");
    if (f->version > 3)
        return ryot_fail(p->err, RYOT_ERR_UNSUPPORTED,
                         "gguf: version %u at offset 4 is not supported (only versions 2 and 3)", f->version);
    uint64_t at = p->pos;
    if ((st = rd_uint(p, 8, "n_tensors", &f->n_tensors))) return st;
    if (f->n_tensors > left(p) / MIN_TENSOR_INFO_BYTES)
        return ryot_fail(p->err, RYOT_ERR_FORMAT,
                         "gguf: header: n_tensors %llu at offset %llu cannot fit in the %llu bytes of the file (size "
                         "%llu)",
                         (ull)f->n_tensors, (ull)at, (ull)left(p), (ull)p->size);
    at = p->pos;
    if ((st = rd_uint(p, 8, "n_kv", &f->n_kv))) return st;
    if (f->n_kv > left(p) / MIN_KV_BYTES)
        return ryot_fail(p->err, RYOT_ERR_FORMAT,
                         "gguf: header: n_kv %llu at offset %llu cannot fit in the %llu bytes left in the file (size "
                         "%llu)",
                         (ull)f->n_kv, (ull)at, (ull)left(p), (ull)p->size);
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if ((st = parse_kvs(p, f))) return st;
    snprintf(p->ctx, sizeof p->ctx, "tensor infos");
    if (f->n_tensors > left(p) / MIN_TENSOR_INFO_BYTES)
        return ryot_fail(p->err, RYOT_ERR_FORMAT,
                         "gguf: header: n_tensors %llu (offset 8) cannot fit in the %llu bytes left after the "
                         "key-value section at offset %llu (file size %llu)",
                         (ull)f->n_tensors, (ull)left(p), (ull)p->pos, (ull)p->size);
    if ((st = parse_tensor_infos(p, f))) return st;
    /* pos <= size and alignment <= 2^31, so this cannot overflow. */
    uint64_t data_start = (p->pos + f->alignment - 1) / f->alignment * f->alignment;
    /* Vocab-only files may end right after the header without padding. */
    f->data_offset = f->n_tensors == 0 && data_start > f->size ? f->size : data_start;
    return place_tensors(p, f);
}

static ryot_status open_buffer(const void *buf, size_t size, bool mapped, gguf_file **out, ryot_error *err) {
    *out = NULL;
    ryot_arena *a = calloc(1, sizeof *a);
    if (a) {
        a->first = size < ARENA_MIN_BLOCK / 2 ? 1024 + 2 * size : ARENA_MIN_BLOCK;
        a->max_block = ARENA_MAX_BLOCK;
    }
    gguf_file *f = a ? ryot_arena_alloc(a, sizeof *f) : NULL;
    if (!f) {
        free(a);
        return ryot_fail(err, RYOT_ERR_NOMEM, "gguf: out of memory");
    }
    f->base = buf;
    f->size = size;
    f->mapped = mapped;
    f->arena = a;
    parser p = {.base = buf, .size = size, .a = a, .err = err};
    ryot_status st = parse(&p, f);
    if (st) {
        f->mapped = false; /* the caller unmaps on failure */
        gguf_close(f);
        return st;
    }
    *out = f;
    return RYOT_OK;
}

ryot_status gguf_open_memory(const void *buf, size_t size, gguf_file **out, ryot_error *err) {
    static const uint8_t empty[1];
    if (!out) return ryot_fail(err, RYOT_ERR_INVALID, "gguf: NULL output pointer");
    if (!buf) {
        if (size) {
            *out = NULL;
            return ryot_fail(err, RYOT_ERR_INVALID, "gguf: NULL buffer of %zu bytes", size);
        }
        buf = empty;
    }
    return open_buffer(buf, size, false, out, err);
}

ryot_status gguf_open(const char *path, gguf_file **out, ryot_error *err) {
    if (!out) return ryot_fail(err, RYOT_ERR_INVALID, "gguf: NULL output pointer");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return ryot_fail(err, e == ENOENT ? RYOT_ERR_NOT_FOUND : RYOT_ERR_IO, "gguf: cannot open: %s", strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ryot_fail(err, RYOT_ERR_IO, "gguf: cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ryot_fail(err, RYOT_ERR_IO, "gguf: not a regular file");
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return gguf_open_memory(NULL, 0, out, err);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return ryot_fail(err, RYOT_ERR_IO, "gguf: cannot map %zu bytes: %s", size, strerror(e));
    ryot_status s = open_buffer(map, size, true, out, err);
    if (s) munmap(map, size);
    return s;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    ryot_arena *a = f->arena; /* f itself lives in the arena */
    ryot_arena_free(a);
    free(a);
}

/* ---------------------------------------------------------------- lookups */

bool gguf_str_eq(gguf_str s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.data, cstr, n) == 0);
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static ryot_status find_kv(const gguf_file *f, const char *key, const gguf_kv **kv, ryot_error *err) {
    *kv = gguf_find(f, key);
    if (!*kv) return ryot_fail(err, RYOT_ERR_NOT_FOUND, "gguf: key '%s' not found", key);
    return RYOT_OK;
}

static ryot_status wrong_type(const char *key, gguf_type have, const char *want, ryot_error *err) {
    return ryot_fail(err, RYOT_ERR_FORMAT, "gguf: key '%s' is %s, expected %s", key, gguf_type_name(have), want);
}

ryot_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, ryot_error *err) {
    int64_t v;
    const gguf_kv *kv;
    ryot_status st = find_kv(f, key, &kv, err);
    if (st) return st;
    if (!gguf_type_is_int(kv->value.type)) return wrong_type(key, kv->value.type, "an integer", err);
    if (type_is_signed(kv->value.type)) {
        v = kv->value.i64;
        if (v < 0 || v > (int64_t)UINT32_MAX)
            return ryot_fail(err, RYOT_ERR_FORMAT, "gguf: key '%s': value %lld does not fit in u32", key,
                             (long long)v);
        *out = (uint32_t)v;
    } else {
        if (kv->value.u64 > UINT32_MAX)
            return ryot_fail(err, RYOT_ERR_FORMAT, "gguf: key '%s': value %llu does not fit in u32", key,
                             (ull)kv->value.u64);
        *out = (uint32_t)kv->value.u64;
    }
    return RYOT_OK;
}

ryot_status gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, ryot_error *err) {
    const gguf_kv *kv;
    ryot_status st = find_kv(f, key, &kv, err);
    if (st) return st;
    if (!gguf_type_is_int(kv->value.type)) return wrong_type(key, kv->value.type, "an integer", err);
    if (type_is_signed(kv->value.type)) {
        *out = kv->value.i64;
    } else {
        if (kv->value.u64 > (uint64_t)INT64_MAX)
            return ryot_fail(err, RYOT_ERR_FORMAT, "gguf: key '%s': value %llu does not fit in i64", key,
                             (ull)kv->value.u64);
        *out = (int64_t)kv->value.u64;
    }
    return RYOT_OK;
}

ryot_status gguf_get_f32(const gguf_file *f, const char *key, float *out, ryot_error *err) {
    const gguf_kv *kv;
    ryot_status st = find_kv(f, key, &kv, err);
    if (st) return st;
    if (kv->value.type != GGUF_TYPE_FLOAT32 && kv->value.type != GGUF_TYPE_FLOAT64)
        return wrong_type(key, kv->value.type, "f32 or f64", err);
    *out = (float)kv->value.f64;
    return RYOT_OK;
}

ryot_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, ryot_error *err) {
    const gguf_kv *kv;
    ryot_status st = find_kv(f, key, &kv, err);
    if (st) return st;
    if (kv->value.type != GGUF_TYPE_BOOL) return wrong_type(key, kv->value.type, "bool", err);
    *out = kv->value.b;
    return RYOT_OK;
}

ryot_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, ryot_error *err) {
    const gguf_kv *kv;
    ryot_status st = find_kv(f, key, &kv, err);
    if (st) return st;
    if (kv->value.type != GGUF_TYPE_STRING) return wrong_type(key, kv->value.type, "string", err);
    *out = kv->value.str;
    return RYOT_OK;
}

ryot_status gguf_get_arr(const gguf_file *f, const char *key, gguf_type want, const gguf_array **out,
                         ryot_error *err) {
    const gguf_kv *kv;
    ryot_status st = find_kv(f, key, &kv, err);
    if (st) return st;
    if (kv->value.type != GGUF_TYPE_ARRAY) return wrong_type(key, kv->value.type, "array", err);
    if (want != GGUF_TYPE_COUNT && kv->value.arr.type != want)
        return ryot_fail(err, RYOT_ERR_FORMAT, "gguf: key '%s' is an array of %s, expected an array of %s", key,
                         gguf_type_name(kv->value.arr.type), gguf_type_name(want));
    *out = &kv->value.arr;
    return RYOT_OK;
}

/* Element accessors: the caller has checked the element type; a wrong width
 * or index is a bug, not bad input. */
static const uint8_t *arr_elem(const gguf_array *a, uint64_t i, unsigned width) {
    RYOT_ASSERT((unsigned)a->type < GGUF_TYPE_COUNT && type_sizes[a->type] == width);
    RYOT_ASSERT(i < a->n);
    return (const uint8_t *)a->raw + i * width;
}

int32_t gguf_arr_i32(const gguf_array *a, uint64_t i) {
    return (int32_t)(uint32_t)load_le(arr_elem(a, i, 4), 4);
}

uint32_t gguf_arr_u32(const gguf_array *a, uint64_t i) { return (uint32_t)load_le(arr_elem(a, i, 4), 4); }

float gguf_arr_f32(const gguf_array *a, uint64_t i) {
    return f32_from_bits((uint32_t)load_le(arr_elem(a, i, 4), 4));
}

uint8_t gguf_arr_u8(const gguf_array *a, uint64_t i) { return *arr_elem(a, i, 1); }

uint64_t gguf_arr_u64(const gguf_array *a, uint64_t i) { return load_le(arr_elem(a, i, 8), 8); }

double gguf_arr_f64(const gguf_array *a, uint64_t i) { return f64_from_bits(load_le(arr_elem(a, i, 8), 8)); }

bool gguf_arr_get_scalar(const gguf_array *a, uint64_t i, gguf_value *out) {
    if ((unsigned)a->type >= GGUF_TYPE_COUNT || !type_sizes[a->type] || i >= a->n) return false;
    unsigned w = type_sizes[a->type];
    uint64_t u = load_le((const uint8_t *)a->raw + i * w, w);
    out->type = a->type;
    switch (a->type) {
    case GGUF_TYPE_FLOAT32: out->f64 = f32_from_bits((uint32_t)u); break;
    case GGUF_TYPE_FLOAT64: out->f64 = f64_from_bits(u); break;
    case GGUF_TYPE_BOOL: out->b = u != 0; break;
    default:
        if (type_is_signed(a->type))
            out->i64 = sign_extend(u, w);
        else
            out->u64 = u;
    }
    return true;
}
