/* GGUF writer: collects keys and tensors (deep copies), then serializes the
 * whole file into one buffer.  The first error (allocation, bad argument) is
 * kept and every later call becomes a no-op, so callers check once, at
 * gguf_writer_finish. */
#include "gguf/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scalar arrays given to gguf_writer_set_arr are copied byte for byte, which
 * is the file's little-endian layout only on a little-endian host. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_writer.c assumes a little-endian host"
#endif

typedef struct wkv {
    char *key;        /* owned, NUL-terminated */
    gguf_value value; /* owns its strings and arrays (see value_free) */
} wkv;

typedef struct wtensor {
    char *name;
    ryot_type type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t size;
    uint8_t *data; /* owned; NULL: zeros */
} wtensor;

struct gguf_writer {
    uint32_t version;
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    ryot_error err; /* sticky: err.code != RYOT_OK after the first failure */
};

typedef unsigned long long ull;

static bool failed(const gguf_writer *w) { return !w || w->err.code != RYOT_OK; }

#define WFAIL(w, code, ...) \
    do { \
        if (!failed(w)) ryot_fail(&(w)->err, code, __VA_ARGS__); \
    } while (0)

gguf_writer *gguf_writer_new(uint32_t version) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->version = version;
    if (version != 2 && version != 3)
        ryot_fail(&w->err, RYOT_ERR_INVALID, "gguf writer: version %u is not 2 or 3", version);
    return w;
}

/* ------------------------------------------------------------ value copies
 * Ownership: a STRING owns str.data; a scalar ARRAY owns raw; a STRING array
 * owns strs, which is one block holding the gguf_str table followed by all
 * the characters; an ARRAY of arrays owns vals and, recursively, each. */

static void value_free(gguf_value *v) {
    if (v->type == GGUF_TYPE_STRING) {
        free((void *)v->str.data);
    } else if (v->type == GGUF_TYPE_ARRAY) {
        free((void *)v->arr.raw);
        free(v->arr.strs);
        if (v->arr.vals)
            for (uint64_t i = 0; i < v->arr.n; i++) value_free(&v->arr.vals[i]);
        free(v->arr.vals);
    }
    memset(v, 0, sizeof *v);
}

static bool copy_bytes(gguf_writer *w, const void *src, uint64_t n, void **out) {
    *out = NULL;
    if (n > SIZE_MAX - 1) {
        WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: %llu bytes do not fit in memory", (ull)n);
        return false;
    }
    void *p = malloc(n ? (size_t)n : 1);
    if (!p) {
        WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: out of memory allocating %llu bytes", (ull)n);
        return false;
    }
    if (n) memcpy(p, src, n);
    *out = p;
    return true;
}

static bool copy_str_table(gguf_writer *w, const gguf_str *src, uint64_t n, gguf_str **out) {
    *out = NULL;
    uint64_t total, chars = 0;
    for (uint64_t i = 0; i < n; i++)
        if (__builtin_add_overflow(chars, src[i].len, &chars)) goto too_big;
    if (__builtin_mul_overflow(n, (uint64_t)sizeof(gguf_str), &total) ||
        __builtin_add_overflow(total, chars, &total) || total > SIZE_MAX - 1)
        goto too_big;
    gguf_str *tab = malloc(total ? (size_t)total : 1);
    if (!tab) goto too_big;
    char *text = (char *)(tab + n);
    for (uint64_t i = 0; i < n; i++) {
        if (src[i].len) memcpy(text, src[i].data, src[i].len);
        tab[i].len = src[i].len;
        tab[i].data = text;
        text += src[i].len;
    }
    *out = tab;
    return true;
too_big:
    WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: out of memory copying %llu strings", (ull)n);
    return false;
}

/* Deep copy of src into *dst (zeroed on failure).  depth counts array levels. */
static bool value_copy(gguf_writer *w, const char *key, gguf_value *dst, const gguf_value *src, unsigned depth) {
    memset(dst, 0, sizeof *dst);
    if ((unsigned)src->type >= GGUF_TYPE_COUNT) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: key '%s': invalid value type %d", key, (int)src->type);
        return false;
    }
    if (src->type == GGUF_TYPE_STRING) {
        void *p;
        if (!copy_bytes(w, src->str.data, src->str.len, &p)) return false;
        dst->type = GGUF_TYPE_STRING;
        dst->str.len = src->str.len;
        dst->str.data = p;
        return true;
    }
    if (src->type != GGUF_TYPE_ARRAY) {
        *dst = *src;
        return true;
    }
    const gguf_array *a = &src->arr;
    if (depth > GGUF_MAX_NESTING) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: key '%s': arrays nested more than %d levels deep", key,
              GGUF_MAX_NESTING);
        return false;
    }
    if ((unsigned)a->type >= GGUF_TYPE_COUNT) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: key '%s': invalid array element type %d", key, (int)a->type);
        return false;
    }
    dst->type = GGUF_TYPE_ARRAY;
    dst->arr.type = a->type;
    if (a->type == GGUF_TYPE_STRING) {
        if (!copy_str_table(w, a->strs, a->n, &dst->arr.strs)) goto fail;
    } else if (a->type == GGUF_TYPE_ARRAY) {
        uint64_t bytes;
        if (__builtin_mul_overflow(a->n, (uint64_t)sizeof(gguf_value), &bytes) || bytes > SIZE_MAX - 1) {
            WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: key '%s': array of %llu arrays is too large", key, (ull)a->n);
            goto fail;
        }
        dst->arr.vals = calloc(1, bytes ? (size_t)bytes : 1);
        if (!dst->arr.vals) {
            WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: out of memory allocating %llu bytes", (ull)bytes);
            goto fail;
        }
        dst->arr.n = a->n; /* value_free walks n entries; the unfilled ones are zero */
        for (uint64_t i = 0; i < a->n; i++) {
            gguf_value inner = {.type = GGUF_TYPE_ARRAY, .arr = a->vals[i].arr};
            if (!value_copy(w, key, &dst->arr.vals[i], &inner, depth + 1)) goto fail;
        }
    } else {
        uint64_t bytes;
        void *p;
        if (__builtin_mul_overflow(a->n, (uint64_t)gguf_type_size(a->type), &bytes)) {
            WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: key '%s': array of %llu elements is too large", key, (ull)a->n);
            goto fail;
        }
        if (!copy_bytes(w, a->raw, bytes, &p)) goto fail;
        dst->arr.raw = p;
    }
    dst->arr.n = a->n;
    return true;
fail:
    value_free(dst);
    return false;
}

/* --------------------------------------------------------------- setters */

/* Sets key to a copy of v; a key set twice keeps its first position and takes
 * the new value (handy when copying a file's keys and then overriding some). */
static void set_value(gguf_writer *w, const char *key, const gguf_value *v) {
    if (failed(w)) return;
    if (!key || !*key) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: empty key");
        return;
    }
    gguf_value copy;
    if (!value_copy(w, key, &copy, v, 1)) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kv[i].key, key)) {
            value_free(&w->kv[i].value);
            w->kv[i].value = copy;
            return;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *nk = realloc(w->kv, cap * sizeof *nk);
        if (!nk) goto nomem;
        w->kv = nk;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) goto nomem;
    w->kv[w->n_kv++] = (wkv){k, copy};
    return;
nomem:
    value_free(&copy);
    WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: out of memory adding key '%s'", key);
}

void gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v) {
    if (!v) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: key '%s': NULL value", key ? key : "");
        return;
    }
    set_value(w, key, v);
}

#define SET_UINT(fn, ctype, gt) \
    void fn(gguf_writer *w, const char *key, ctype v) { \
        gguf_value x = {.type = gt, .u64 = v}; \
        set_value(w, key, &x); \
    }
#define SET_INT(fn, ctype, gt) \
    void fn(gguf_writer *w, const char *key, ctype v) { \
        gguf_value x = {.type = gt, .i64 = v}; \
        set_value(w, key, &x); \
    }
SET_UINT(gguf_writer_set_u8, uint8_t, GGUF_TYPE_UINT8)
SET_UINT(gguf_writer_set_u16, uint16_t, GGUF_TYPE_UINT16)
SET_UINT(gguf_writer_set_u32, uint32_t, GGUF_TYPE_UINT32)
SET_UINT(gguf_writer_set_u64, uint64_t, GGUF_TYPE_UINT64)
SET_INT(gguf_writer_set_i8, int8_t, GGUF_TYPE_INT8)
SET_INT(gguf_writer_set_i16, int16_t, GGUF_TYPE_INT16)
SET_INT(gguf_writer_set_i32, int32_t, GGUF_TYPE_INT32)
SET_INT(gguf_writer_set_i64, int64_t, GGUF_TYPE_INT64)

void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    gguf_value x = {.type = GGUF_TYPE_FLOAT32, .f64 = v};
    set_value(w, key, &x);
}

void gguf_writer_set_f64(gguf_writer *w, const char *key, double v) {
    gguf_value x = {.type = GGUF_TYPE_FLOAT64, .f64 = v};
    set_value(w, key, &x);
}

void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    gguf_value x = {.type = GGUF_TYPE_BOOL, .b = v};
    set_value(w, key, &x);
}

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    if (!v) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: key '%s': NULL string", key ? key : "");
        return;
    }
    gguf_value x = {.type = GGUF_TYPE_STRING, .str = {strlen(v), v}};
    set_value(w, key, &x);
}

void gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type type, const void *data, uint64_t n) {
    if (gguf_type_size(type) == 0 || (n && !data)) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: key '%s': set_arr needs a scalar element type and data (got %s)",
              key ? key : "", gguf_type_name(type));
        return;
    }
    gguf_value x = {.type = GGUF_TYPE_ARRAY, .arr = {.type = type, .n = n, .raw = data}};
    set_value(w, key, &x);
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    if (failed(w)) return;
    if (n && !strs) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: key '%s': NULL string array", key ? key : "");
        return;
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(n, (uint64_t)sizeof(gguf_str), &bytes) || bytes > SIZE_MAX - 1) {
        WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: key '%s': %llu strings are too many", key ? key : "", (ull)n);
        return;
    }
    /* A temporary table of views; set_value copies the characters once. */
    gguf_str *tab = malloc(bytes ? (size_t)bytes : 1);
    if (!tab) {
        WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: out of memory");
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            free(tab);
            WFAIL(w, RYOT_ERR_INVALID, "gguf writer: key '%s': string #%llu is NULL", key ? key : "", (ull)i);
            return;
        }
        tab[i] = (gguf_str){strlen(strs[i]), strs[i]};
    }
    gguf_value x = {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_STRING, .n = n, .strs = tab}};
    set_value(w, key, &x);
    free(tab);
}

void gguf_writer_add_tensor(gguf_writer *w, const char *name, ryot_type type, uint32_t n_dims,
                            const uint64_t *ne, const void *data) {
    if (failed(w)) return;
    if (!name || !*name) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: tensor with an empty name");
        return;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        if (!strcmp(w->t[i].name, name)) {
            WFAIL(w, RYOT_ERR_INVALID, "gguf writer: tensor '%s' added twice", name);
            return;
        }
    }
    const ryot_type_info *ti = ryot_type_get(type);
    if (!ti) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: tensor '%s': unknown type %d", name, (int)type);
        return;
    }
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS || !ne) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: tensor '%s': n_dims %u is not in 1..%d", name, n_dims,
              GGUF_MAX_DIMS);
        return;
    }
    wtensor t = {.type = type, .n_dims = n_dims};
    uint64_t nelem = 1, row = 0, size;
    for (unsigned d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] == 0 || __builtin_mul_overflow(nelem, t.ne[d], &nelem) || nelem > (uint64_t)INT64_MAX) {
            WFAIL(w, RYOT_ERR_INVALID, "gguf writer: tensor '%s': dimension %u is 0 or the element count overflows",
                  name, d);
            return;
        }
    }
    if (!ryot_row_size(type, t.ne[0], &row) || __builtin_mul_overflow(row, t.ne[1], &size) ||
        __builtin_mul_overflow(size, t.ne[2], &size) || __builtin_mul_overflow(size, t.ne[3], &size)) {
        WFAIL(w, RYOT_ERR_INVALID, "gguf writer: tensor '%s': row length %llu is not a multiple of the %s block size %u",
              name, (ull)t.ne[0], ti->name, ti->block_size);
        return;
    }
    t.size = size;
    if (data && !copy_bytes(w, data, size, (void **)&t.data)) return;
    t.name = strdup(name);
    if (!t.name) goto nomem;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) goto nomem;
        w->t = nt;
        w->cap_t = cap;
    }
    w->t[w->n_t++] = t;
    return;
nomem:
    free(t.name);
    free(t.data);
    WFAIL(w, RYOT_ERR_NOMEM, "gguf writer: out of memory adding tensor '%s'", name);
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        value_free(&w->kv[i].value);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* ---------------------------------------------------------- serialization */

/* Sizes add with saturation: anything near UINT64_MAX fails the final check. */
static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static uint64_t sat_mul(uint64_t a, uint64_t b) { return b && a > UINT64_MAX / b ? UINT64_MAX : a * b; }

static uint64_t array_bytes(const gguf_array *a) {
    uint64_t n = 4 + 8;
    if (a->type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < a->n; i++) n = sat_add(n, sat_add(8, a->strs[i].len));
    } else if (a->type == GGUF_TYPE_ARRAY) {
        for (uint64_t i = 0; i < a->n; i++) n = sat_add(n, array_bytes(&a->vals[i].arr));
    } else {
        n = sat_add(n, sat_mul(a->n, gguf_type_size(a->type)));
    }
    return n;
}

static uint64_t value_bytes(const gguf_value *v) {
    if (v->type == GGUF_TYPE_STRING) return sat_add(8, v->str.len);
    if (v->type == GGUF_TYPE_ARRAY) return array_bytes(&v->arr);
    return gguf_type_size(v->type);
}

typedef struct out {
    uint8_t *p;
} out;

static void put_le(out *o, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++) o->p[i] = (uint8_t)(v >> (8 * i));
    o->p += n;
}

static void put_bytes(out *o, const void *src, uint64_t n) {
    if (n) memcpy(o->p, src, n);
    o->p += n;
}

static void put_str(out *o, const char *s, uint64_t n) {
    put_le(o, n, 8);
    put_bytes(o, s, n);
}

static void put_array(out *o, const gguf_array *a) {
    put_le(o, (uint64_t)a->type, 4);
    put_le(o, a->n, 8);
    if (a->type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < a->n; i++) put_str(o, a->strs[i].data, a->strs[i].len);
    } else if (a->type == GGUF_TYPE_ARRAY) {
        for (uint64_t i = 0; i < a->n; i++) put_array(o, &a->vals[i].arr);
    } else {
        put_bytes(o, a->raw, a->n * gguf_type_size(a->type)); /* stored little-endian already */
    }
}

static void put_value(out *o, const gguf_value *v) {
    switch (v->type) {
    case GGUF_TYPE_STRING: put_str(o, v->str.data, v->str.len); break;
    case GGUF_TYPE_ARRAY: put_array(o, &v->arr); break;
    case GGUF_TYPE_FLOAT32: {
        float f = (float)v->f64;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        put_le(o, bits, 4);
        break;
    }
    case GGUF_TYPE_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, &v->f64, 8);
        put_le(o, bits, 8);
        break;
    }
    case GGUF_TYPE_BOOL: put_le(o, v->b ? 1 : 0, 1); break;
    default: put_le(o, v->u64, (unsigned)gguf_type_size(v->type)); break; /* two's complement for signed */
    }
}

static uint64_t align_up(uint64_t x, uint64_t a) { return sat_mul((sat_add(x, a - 1)) / a, a); }

ryot_status gguf_writer_finish(gguf_writer *w, uint8_t **buf, size_t *size, ryot_error *err) {
    *buf = NULL;
    *size = 0;
    if (!w) return ryot_fail(err, RYOT_ERR_NOMEM, "gguf writer: out of memory creating the writer");
    if (w->err.code) return ryot_fail(err, w->err.code, "%s", w->err.msg);

    uint64_t alignment = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment")) continue;
        const gguf_value *v = &w->kv[i].value;
        if (v->type != GGUF_TYPE_UINT32 || v->u64 == 0 || (v->u64 & (v->u64 - 1)) || v->u64 > UINT32_MAX)
            return ryot_fail(err, RYOT_ERR_INVALID, "gguf writer: general.alignment must be a u32 power of two");
        alignment = v->u64;
    }

    uint64_t header = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++)
        header = sat_add(header, sat_add(8 + strlen(w->kv[i].key) + 4, value_bytes(&w->kv[i].value)));
    for (size_t i = 0; i < w->n_t; i++)
        header = sat_add(header, 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8);
    uint64_t data_start = w->n_t ? align_up(header, alignment) : header;
    uint64_t data_size = 0;
    for (size_t i = 0; i < w->n_t; i++) data_size = align_up(sat_add(data_size, w->t[i].size), alignment);
    uint64_t total = sat_add(data_start, data_size);
    if (total >= SIZE_MAX || total == UINT64_MAX)
        return ryot_fail(err, RYOT_ERR_NOMEM, "gguf writer: file size overflows");
    uint8_t *b = calloc(1, (size_t)total); /* zeros: padding and tensors without data */
    if (!b) return ryot_fail(err, RYOT_ERR_NOMEM, "gguf writer: out of memory allocating %llu bytes", (ull)total);

    out o = {b};
    put_bytes(&o, "GGUF", 4);
    put_le(&o, w->version, 4);
    put_le(&o, w->n_t, 8);
    put_le(&o, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&o, w->kv[i].key, strlen(w->kv[i].key));
        put_le(&o, (uint64_t)w->kv[i].value.type, 4);
        put_value(&o, &w->kv[i].value);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&o, t->name, strlen(t->name));
        put_le(&o, t->n_dims, 4);
        for (unsigned d = 0; d < t->n_dims; d++) put_le(&o, t->ne[d], 8);
        put_le(&o, (uint64_t)t->type, 4);
        put_le(&o, off, 8);
        if (t->data) memcpy(b + data_start + off, t->data, t->size);
        off = align_up(off + t->size, alignment);
    }
    RYOT_ASSERT((uint64_t)(o.p - b) == header);
    *buf = b;
    *size = (size_t)total;
    return RYOT_OK;
}

ryot_status gguf_writer_write_file(gguf_writer *w, const char *path, ryot_error *err) {
    uint8_t *buf;
    size_t size;
    ryot_status st = gguf_writer_finish(w, &buf, &size, err);
    if (st) return st;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        int e = errno;
        free(buf);
        return ryot_fail(err, RYOT_ERR_IO, "gguf writer: cannot create %s: %s", path, strerror(e));
    }
    size_t n = fwrite(buf, 1, size, fp);
    int e = errno;
    free(buf);
    if (n != size) {
        fclose(fp);
        return ryot_fail(err, RYOT_ERR_IO, "gguf writer: writing %s: %s", path, strerror(e));
    }
    if (fclose(fp) != 0) {
        e = errno;
        return ryot_fail(err, RYOT_ERR_IO, "gguf writer: closing %s: %s", path, strerror(e));
    }
    return RYOT_OK;
}
