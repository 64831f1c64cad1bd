/* GGUF reader and writer: round trips of every value type and of tensors, and
 * hostile files made by patching a valid writer output.  Every hostile buffer
 * is opened from a heap copy of its exact size so that ASan catches any read
 * past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf/gguf.h"

/* ---------------------------------------------------------------- helpers */

typedef struct buf {
    uint8_t *p;
    size_t n;
} buf;

static buf finish(gguf_writer *w) {
    buf b = {0};
    ryot_error err = {0};
    ryot_status st = gguf_writer_finish(w, &b.p, &b.n, &err);
    if (st) fail_msg("writer: %s", err.msg);
    gguf_writer_free(w);
    return b;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Offset of the first occurrence of a string's bytes (a key or tensor name,
 * unique in the test files) in the buffer. */
static size_t find(const buf *b, const char *s) {
    const uint8_t *q = memmem(b->p, b->n, s, strlen(s));
    if (!q) fail_msg("'%s' not in the buffer", s);
    return (size_t)(q - b->p);
}

/* Offsets of a key's value type and value, and of a tensor's fields. */
static size_t kv_type_at(const buf *b, const char *key) { return find(b, key) + strlen(key); }
static size_t kv_value_at(const buf *b, const char *key) { return kv_type_at(b, key) + 4; }
static size_t ti_ndims_at(const buf *b, const char *name) { return find(b, name) + strlen(name); }
static size_t ti_ne_at(const buf *b, const char *name, unsigned d) { return ti_ndims_at(b, name) + 4 + 8 * d; }
static size_t ti_type_at(const buf *b, const char *name) {
    return ti_ndims_at(b, name) + 4 + 8 * get_le(b->p + ti_ndims_at(b, name), 4);
}
static size_t ti_offset_at(const buf *b, const char *name) { return ti_type_at(b, name) + 4; }

/* Opens an exact-size heap copy of b; returns the status, leaves the message
 * in *err and checks the failure contract (NULL result, one-line message). */
static ryot_status open_copy(const uint8_t *p, size_t n, gguf_file **out, ryot_error *err) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, p, n);
    gguf_file *f = (gguf_file *)(uintptr_t)1;
    memset(err, 0, sizeof *err);
    ryot_status st = gguf_open_memory(copy, n, &f, err);
    if (st) {
        assert_null(f);
        assert_int_equal(err->code, st);
        assert_true(strlen(err->msg) > 0);
        assert_null(strchr(err->msg, '\n'));
        assert_memory_equal(err->msg, "gguf: ", 6);
        free(copy);
        if (out) *out = NULL;
    } else if (out) {
        *out = f; /* the caller closes f and frees f->base */
    } else {
        gguf_close(f);
        free(copy);
    }
    return st;
}

static void close_copy(gguf_file *f) {
    void *p = (void *)f->base;
    gguf_close(f);
    free(p);
}

/* Expects b to fail with code and a message containing each given substring. */
#define expect_fail(b, code, ...) expect_fail_(b, code, (const char *[]){__VA_ARGS__, NULL})
static void expect_fail_(const buf *b, ryot_status code, const char **subs) {
    ryot_error err;
    ryot_status st = open_copy(b->p, b->n, NULL, &err);
    if (st != code) fail_msg("expected status %d, got %d: %s", code, st, err.msg);
    for (; *subs; subs++)
        if (!strstr(err.msg, *subs)) fail_msg("message lacks '%s': %s", *subs, err.msg);
}

static buf dup_buf(const buf *b) {
    buf c = {malloc(b->n), b->n};
    assert_non_null(c.p);
    memcpy(c.p, b->p, b->n);
    return c;
}

/* Tensor data filled with a byte pattern that depends on the tensor. */
static uint8_t *pattern(uint64_t size, unsigned seed) {
    uint8_t *p = malloc(size);
    for (uint64_t i = 0; i < size; i++) p[i] = (uint8_t)(i * 31 + seed * 7 + 1);
    return p;
}

/* --------------------------------------------------------- sample files */

static const uint8_t arr_u8[] = {0, 1, 255};
static const int8_t arr_i8[] = {-128, 0, 127};
static const uint16_t arr_u16[] = {0, 65535, 1234};
static const int16_t arr_i16[] = {-32768, 32767, -1};
static const uint32_t arr_u32[] = {0, 4294967295u, 7};
static const int32_t arr_i32[] = {INT32_MIN, INT32_MAX, -5, 5};
static const float arr_f32[] = {1.5f, -0.0f, 3.25e-5f};
static const uint8_t arr_bool[] = {1, 0, 1};
static const uint64_t arr_u64[] = {UINT64_MAX, 0};
static const int64_t arr_i64[] = {INT64_MIN, INT64_MAX};
static const double arr_f64[] = {3.141592653589793, -1e300};
static const char *const arr_str[] = {"alpha", "", "gamma \xe2\x9c\x93", "with\nnewline"};

typedef struct tdesc {
    const char *name;
    ryot_type type;
    uint32_t n_dims;
    uint64_t ne[4];
} tdesc;

static const tdesc sample_tensors[] = {
    {"token_embd.weight", RYOT_TYPE_F32, 2, {8, 3, 1, 1}},
    {"blk.0.attn_q.weight", RYOT_TYPE_Q4_0, 2, {64, 2, 1, 1}},
    {"blk.0.ffn_up.weight", RYOT_TYPE_Q8_0, 1, {32, 1, 1, 1}},
    {"blk.0.odd.weight", RYOT_TYPE_F16, 3, {5, 2, 3, 1}},
    {"blk.0.kq.weight", RYOT_TYPE_Q4_K, 4, {256, 1, 1, 2}},
    {"output_norm.weight", RYOT_TYPE_BF16, 1, {7, 1, 1, 1}},
};
#define N_SAMPLE_TENSORS (sizeof sample_tensors / sizeof sample_tensors[0])

static uint64_t tdesc_size(const tdesc *t) {
    uint64_t row;
    assert_true(ryot_row_size(t->type, t->ne[0], &row));
    return row * t->ne[1] * t->ne[2] * t->ne[3];
}

/* Nested arrays: an array of arrays of strings, and an array of arrays of
 * arrays of i32 (one of them empty). */
static void set_nested(gguf_writer *w) {
    gguf_str s1[] = {{1, "a"}, {2, "bc"}};
    gguf_str s2[] = {{0, ""}};
    gguf_value inner_s[] = {
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_STRING, .n = 2, .strs = s1}},
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_STRING, .n = 1, .strs = s2}},
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_STRING, .n = 0, .strs = NULL}},
    };
    gguf_value v = {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_ARRAY, .n = 3, .vals = inner_s}};
    gguf_writer_set_value(w, "test.nested_str", &v);

    static const int32_t i1[] = {1, 2, 3}, i2[] = {-4};
    gguf_value lvl2[] = {
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_INT32, .n = 3, .raw = i1}},
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_INT32, .n = 1, .raw = i2}},
    };
    gguf_value lvl1[] = {
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_ARRAY, .n = 2, .vals = lvl2}},
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_ARRAY, .n = 0, .vals = NULL}},
    };
    gguf_value top = {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_ARRAY, .n = 2, .vals = lvl1}};
    gguf_writer_set_value(w, "test.nested_int", &top);
}

static gguf_writer *sample_writer(uint32_t version, uint32_t alignment) {
    gguf_writer *w = gguf_writer_new(version);
    assert_non_null(w);
    gguf_writer_set_str(w, "general.architecture", "llama");
    if (alignment) gguf_writer_set_u32(w, "general.alignment", alignment);
    gguf_writer_set_u8(w, "test.u8", 200);
    gguf_writer_set_i8(w, "test.i8", -100);
    gguf_writer_set_u16(w, "test.u16", 60000);
    gguf_writer_set_i16(w, "test.i16", -30000);
    gguf_writer_set_u32(w, "test.u32", 4000000000u);
    gguf_writer_set_i32(w, "test.i32", -2000000000);
    gguf_writer_set_u64(w, "test.u64", UINT64_MAX);
    gguf_writer_set_i64(w, "test.i64", INT64_MIN);
    gguf_writer_set_f32(w, "test.f32", 0.1f);
    gguf_writer_set_f64(w, "test.f64", 0.1);
    gguf_writer_set_bool(w, "test.true", true);
    gguf_writer_set_bool(w, "test.false", false);
    gguf_writer_set_str(w, "test.str", "hello, world");
    gguf_writer_set_str(w, "test.empty_str", "");
    gguf_writer_set_arr(w, "test.arr_u8", GGUF_TYPE_UINT8, arr_u8, 3);
    gguf_writer_set_arr(w, "test.arr_i8", GGUF_TYPE_INT8, arr_i8, 3);
    gguf_writer_set_arr(w, "test.arr_u16", GGUF_TYPE_UINT16, arr_u16, 3);
    gguf_writer_set_arr(w, "test.arr_i16", GGUF_TYPE_INT16, arr_i16, 3);
    gguf_writer_set_arr(w, "test.arr_u32", GGUF_TYPE_UINT32, arr_u32, 3);
    gguf_writer_set_arr(w, "test.arr_i32", GGUF_TYPE_INT32, arr_i32, 4);
    gguf_writer_set_arr(w, "test.arr_f32", GGUF_TYPE_FLOAT32, arr_f32, 3);
    gguf_writer_set_arr(w, "test.arr_bool", GGUF_TYPE_BOOL, arr_bool, 3);
    gguf_writer_set_arr(w, "test.arr_u64", GGUF_TYPE_UINT64, arr_u64, 2);
    gguf_writer_set_arr(w, "test.arr_i64", GGUF_TYPE_INT64, arr_i64, 2);
    gguf_writer_set_arr(w, "test.arr_f64", GGUF_TYPE_FLOAT64, arr_f64, 2);
    gguf_writer_set_arr(w, "test.arr_empty", GGUF_TYPE_INT32, NULL, 0);
    gguf_writer_set_arr_str(w, "test.arr_str", arr_str, 4);
    gguf_writer_set_arr_str(w, "test.arr_str_empty", NULL, 0);
    set_nested(w);
    for (unsigned i = 0; i < N_SAMPLE_TENSORS; i++) {
        const tdesc *t = &sample_tensors[i];
        uint8_t *data = pattern(tdesc_size(t), i);
        gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data);
        free(data);
    }
    return w;
}

/* A small valid file whose every byte matters (tensor sizes are multiples of
 * the alignment, so no trailing padding), for truncation and patching. */
static buf small_file(void) {
    gguf_writer *w = gguf_writer_new(3);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "general.alignment", 32);
    gguf_writer_set_u32(w, "dup.a", 1);
    gguf_writer_set_u32(w, "dup.b", 2);
    gguf_writer_set_arr_str(w, "tok.list", arr_str, 2);
    gguf_writer_set_arr(w, "tok.ids", GGUF_TYPE_INT32, arr_i32, 2);
    set_nested(w);
    uint64_t ne_a[] = {8, 2}, ne_b[] = {32, 2};
    uint8_t *d = pattern(64, 3);
    gguf_writer_add_tensor(w, "t.a", RYOT_TYPE_F32, 2, ne_a, d);
    gguf_writer_add_tensor(w, "t.b", RYOT_TYPE_Q8_0, 2, ne_b, NULL); /* 68 bytes, padded to 96 */
    free(d);
    buf b = finish(w);
    /* drop the trailing padding so that every byte is needed */
    b.n -= 96 - 68;
    return b;
}

/* A vocab-style file without tensors: it ends with its last value. */
static buf vocab_file(void) {
    gguf_writer *w = gguf_writer_new(3);
    gguf_writer_set_str(w, "general.architecture", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", arr_str, 4);
    set_nested(w);
    gguf_writer_set_f64(w, "z", 1.0);
    return finish(w);
}

/* ----------------------------------------------------------- round trips */

static void check_sample(const gguf_file *f, uint32_t version, uint32_t alignment) {
    ryot_error err = {0};
    assert_int_equal(f->version, version);
    assert_int_equal(f->alignment, alignment ? alignment : GGUF_DEFAULT_ALIGNMENT);
    assert_int_equal(f->data_offset % f->alignment, 0);
    const gguf_kv *kv;

#define SCALAR(key, gt, field, val) \
    do { \
        kv = gguf_find(f, key); \
        assert_non_null(kv); \
        assert_int_equal(kv->value.type, gt); \
        assert_true(kv->value.field == (val)); \
    } while (0)
    SCALAR("test.u8", GGUF_TYPE_UINT8, u64, 200);
    SCALAR("test.i8", GGUF_TYPE_INT8, i64, -100);
    SCALAR("test.u16", GGUF_TYPE_UINT16, u64, 60000);
    SCALAR("test.i16", GGUF_TYPE_INT16, i64, -30000);
    SCALAR("test.u32", GGUF_TYPE_UINT32, u64, 4000000000u);
    SCALAR("test.i32", GGUF_TYPE_INT32, i64, -2000000000);
    SCALAR("test.u64", GGUF_TYPE_UINT64, u64, UINT64_MAX);
    SCALAR("test.i64", GGUF_TYPE_INT64, i64, INT64_MIN);
    SCALAR("test.f32", GGUF_TYPE_FLOAT32, f64, (double)0.1f);
    SCALAR("test.f64", GGUF_TYPE_FLOAT64, f64, 0.1);
    SCALAR("test.true", GGUF_TYPE_BOOL, b, true);
    SCALAR("test.false", GGUF_TYPE_BOOL, b, false);
#undef SCALAR

    /* typed getters, with conversions and their limits */
    uint32_t u32;
    int64_t i64;
    float f32;
    bool bl;
    gguf_str s;
    assert_int_equal(gguf_get_u32(f, "test.u8", &u32, &err), RYOT_OK);
    assert_int_equal(u32, 200);
    assert_int_equal(gguf_get_u32(f, "test.u32", &u32, &err), RYOT_OK);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_u32(f, "test.i8", &u32, &err), RYOT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "test.i8"));
    assert_int_equal(gguf_get_u32(f, "test.u64", &u32, &err), RYOT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "does not fit"));
    assert_int_equal(gguf_get_u32(f, "test.str", &u32, &err), RYOT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "string"));
    assert_int_equal(gguf_get_i64(f, "test.i64", &i64, &err), RYOT_OK);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(gguf_get_i64(f, "test.u32", &i64, &err), RYOT_OK);
    assert_true(i64 == 4000000000ll);
    assert_int_equal(gguf_get_i64(f, "test.u64", &i64, &err), RYOT_ERR_FORMAT);
    assert_int_equal(gguf_get_f32(f, "test.f32", &f32, &err), RYOT_OK);
    assert_true(f32 == 0.1f);
    assert_int_equal(gguf_get_f32(f, "test.f64", &f32, &err), RYOT_OK);
    assert_true(f32 == 0.1f);
    assert_int_equal(gguf_get_f32(f, "test.u8", &f32, &err), RYOT_ERR_FORMAT);
    assert_int_equal(gguf_get_bool(f, "test.true", &bl, &err), RYOT_OK);
    assert_true(bl);
    assert_int_equal(gguf_get_bool(f, "test.u8", &bl, &err), RYOT_ERR_FORMAT);
    assert_int_equal(gguf_get_str(f, "test.str", &s, &err), RYOT_OK);
    assert_true(gguf_str_eq(s, "hello, world"));
    assert_int_equal(gguf_get_str(f, "test.empty_str", &s, &err), RYOT_OK);
    assert_int_equal(s.len, 0);
    assert_true(gguf_str_eq(s, ""));
    assert_int_equal(gguf_get_str(f, "no.such.key", &s, &err), RYOT_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no.such.key"));

    /* scalar arrays */
    const gguf_array *a;
    assert_int_equal(gguf_get_arr(f, "test.arr_u8", GGUF_TYPE_UINT8, &a, &err), RYOT_OK);
    assert_int_equal(a->n, 3);
    for (unsigned i = 0; i < 3; i++) assert_int_equal(gguf_arr_u8(a, i), arr_u8[i]);
    assert_int_equal(gguf_get_arr(f, "test.arr_i32", GGUF_TYPE_INT32, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 4; i++) assert_int_equal(gguf_arr_i32(a, i), arr_i32[i]);
    assert_int_equal(gguf_get_arr(f, "test.arr_u32", GGUF_TYPE_UINT32, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 3; i++) assert_int_equal(gguf_arr_u32(a, i), arr_u32[i]);
    assert_int_equal(gguf_get_arr(f, "test.arr_f32", GGUF_TYPE_FLOAT32, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 3; i++) assert_memory_equal(&(float){gguf_arr_f32(a, i)}, &arr_f32[i], 4);
    assert_int_equal(gguf_get_arr(f, "test.arr_u64", GGUF_TYPE_UINT64, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 2; i++) assert_true(gguf_arr_u64(a, i) == arr_u64[i]);
    assert_int_equal(gguf_get_arr(f, "test.arr_f64", GGUF_TYPE_FLOAT64, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 2; i++) assert_true(gguf_arr_f64(a, i) == arr_f64[i]);
    gguf_value ev;
    assert_int_equal(gguf_get_arr(f, "test.arr_i8", GGUF_TYPE_INT8, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 3; i++) {
        assert_true(gguf_arr_get_scalar(a, i, &ev));
        assert_int_equal(ev.i64, arr_i8[i]);
    }
    assert_false(gguf_arr_get_scalar(a, 3, &ev));
    assert_int_equal(gguf_get_arr(f, "test.arr_i16", GGUF_TYPE_INT16, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 3; i++) {
        assert_true(gguf_arr_get_scalar(a, i, &ev));
        assert_int_equal(ev.i64, arr_i16[i]);
    }
    assert_int_equal(gguf_get_arr(f, "test.arr_u16", GGUF_TYPE_UINT16, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 3; i++) {
        assert_true(gguf_arr_get_scalar(a, i, &ev));
        assert_int_equal(ev.u64, arr_u16[i]);
    }
    assert_int_equal(gguf_get_arr(f, "test.arr_i64", GGUF_TYPE_INT64, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 2; i++) {
        assert_true(gguf_arr_get_scalar(a, i, &ev));
        assert_true(ev.i64 == arr_i64[i]);
    }
    assert_int_equal(gguf_get_arr(f, "test.arr_bool", GGUF_TYPE_BOOL, &a, &err), RYOT_OK);
    for (unsigned i = 0; i < 3; i++) {
        assert_true(gguf_arr_get_scalar(a, i, &ev));
        assert_int_equal(ev.b, arr_bool[i]);
    }
    assert_int_equal(gguf_get_arr(f, "test.arr_empty", GGUF_TYPE_INT32, &a, &err), RYOT_OK);
    assert_int_equal(a->n, 0);
    assert_int_equal(gguf_get_arr(f, "test.arr_u8", GGUF_TYPE_INT32, &a, &err), RYOT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "array of u8"));
    assert_int_equal(gguf_get_arr(f, "test.u8", GGUF_TYPE_COUNT, &a, &err), RYOT_ERR_FORMAT);

    /* string arrays */
    assert_int_equal(gguf_get_arr(f, "test.arr_str", GGUF_TYPE_STRING, &a, &err), RYOT_OK);
    assert_int_equal(a->n, 4);
    for (unsigned i = 0; i < 4; i++) assert_true(gguf_str_eq(a->strs[i], arr_str[i]));
    assert_int_equal(gguf_get_arr(f, "test.arr_str_empty", GGUF_TYPE_COUNT, &a, &err), RYOT_OK);
    assert_int_equal(a->type, GGUF_TYPE_STRING);
    assert_int_equal(a->n, 0);

    /* nested */
    assert_int_equal(gguf_get_arr(f, "test.nested_str", GGUF_TYPE_ARRAY, &a, &err), RYOT_OK);
    assert_int_equal(a->n, 3);
    assert_int_equal(a->vals[0].arr.type, GGUF_TYPE_STRING);
    assert_int_equal(a->vals[0].arr.n, 2);
    assert_true(gguf_str_eq(a->vals[0].arr.strs[0], "a"));
    assert_true(gguf_str_eq(a->vals[0].arr.strs[1], "bc"));
    assert_int_equal(a->vals[1].arr.n, 1);
    assert_true(gguf_str_eq(a->vals[1].arr.strs[0], ""));
    assert_int_equal(a->vals[2].arr.n, 0);
    assert_int_equal(gguf_get_arr(f, "test.nested_int", GGUF_TYPE_ARRAY, &a, &err), RYOT_OK);
    assert_int_equal(a->n, 2);
    const gguf_array *l1 = &a->vals[0].arr;
    assert_int_equal(l1->type, GGUF_TYPE_ARRAY);
    assert_int_equal(l1->n, 2);
    assert_int_equal(l1->vals[0].arr.type, GGUF_TYPE_INT32);
    assert_int_equal(l1->vals[0].arr.n, 3);
    assert_int_equal(gguf_arr_i32(&l1->vals[0].arr, 2), 3);
    assert_int_equal(gguf_arr_i32(&l1->vals[1].arr, 0), -4);
    assert_int_equal(a->vals[1].arr.type, GGUF_TYPE_ARRAY);
    assert_int_equal(a->vals[1].arr.n, 0);

    /* tensors */
    assert_int_equal(f->n_tensors, N_SAMPLE_TENSORS);
    for (unsigned i = 0; i < N_SAMPLE_TENSORS; i++) {
        const tdesc *d = &sample_tensors[i];
        const gguf_tensor *t = gguf_find_tensor(f, d->name);
        assert_non_null(t);
        assert_ptr_equal(t, &f->tensors[i]);
        assert_int_equal(t->type, d->type);
        assert_int_equal(t->n_dims, d->n_dims);
        for (unsigned k = 0; k < 4; k++) assert_int_equal(t->ne[k], d->ne[k]);
        assert_int_equal(t->size, tdesc_size(d));
        assert_int_equal(t->offset % f->alignment, 0);
        assert_int_equal(((const uint8_t *)t->data - f->base) % f->alignment, 0);
        uint8_t *want = pattern(t->size, i);
        assert_memory_equal(t->data, want, t->size);
        free(want);
    }
    assert_null(gguf_find_tensor(f, "nope"));
}

static void roundtrip(uint32_t version, uint32_t alignment) {
    buf b = finish(sample_writer(version, alignment));
    gguf_file *f;
    ryot_error err;
    assert_int_equal(open_copy(b.p, b.n, &f, &err), RYOT_OK);
    check_sample(f, version, alignment);
    close_copy(f);
    free(b.p);
}

static void test_roundtrip_v3(void **s) { (void)s; roundtrip(3, 0); }
static void test_roundtrip_v2(void **s) { (void)s; roundtrip(2, 0); }
static void test_roundtrip_align64(void **s) { (void)s; roundtrip(3, 64); }
static void test_roundtrip_align1(void **s) { (void)s; roundtrip(2, 1); }
static void test_roundtrip_align4096(void **s) { (void)s; roundtrip(3, 4096); }

/* Deep equality of two values (nested arrays included). */
static bool array_eq(const gguf_array *a, const gguf_array *b);
static bool value_eq(const gguf_value *a, const gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case GGUF_TYPE_STRING: return a->str.len == b->str.len && !memcmp(a->str.data, b->str.data, a->str.len);
    case GGUF_TYPE_ARRAY: return array_eq(&a->arr, &b->arr);
    case GGUF_TYPE_BOOL: return a->b == b->b;
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64: return !memcmp(&a->f64, &b->f64, 8);
    default: return a->u64 == b->u64;
    }
}
static bool array_eq(const gguf_array *a, const gguf_array *b) {
    if (a->type != b->type || a->n != b->n) return false;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->type == GGUF_TYPE_STRING) {
            gguf_value x = {.type = GGUF_TYPE_STRING, .str = a->strs[i]}, y = {.type = GGUF_TYPE_STRING, .str = b->strs[i]};
            if (!value_eq(&x, &y)) return false;
        } else if (a->type == GGUF_TYPE_ARRAY) {
            if (!array_eq(&a->vals[i].arr, &b->vals[i].arr)) return false;
        }
    }
    return a->type == GGUF_TYPE_STRING || a->type == GGUF_TYPE_ARRAY ||
           !memcmp(a->raw, b->raw, a->n * gguf_type_size(a->type));
}

/* Copies every key and tensor of f through set_value/add_tensor, after which
 * f is closed: the copy must not point into it. */
static buf copy_through_writer(gguf_file *f, uint32_t version) {
    gguf_writer *w = gguf_writer_new(version);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)f->kv[i].key.len, f->kv[i].key.data);
        gguf_writer_set_value(w, key, &f->kv[i].value);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data);
    }
    return finish(w);
}

static void check_same(const gguf_file *a, const gguf_file *b) {
    assert_int_equal(a->n_kv, b->n_kv);
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (uint64_t i = 0; i < a->n_kv; i++) {
        assert_int_equal(a->kv[i].key.len, b->kv[i].key.len);
        assert_memory_equal(a->kv[i].key.data, b->kv[i].key.data, a->kv[i].key.len);
        assert_true(value_eq(&a->kv[i].value, &b->kv[i].value));
    }
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        assert_int_equal(a->tensors[i].name.len, b->tensors[i].name.len);
        assert_memory_equal(a->tensors[i].name.data, b->tensors[i].name.data, a->tensors[i].name.len);
        assert_int_equal(a->tensors[i].type, b->tensors[i].type);
        assert_memory_equal(a->tensors[i].ne, b->tensors[i].ne, sizeof a->tensors[i].ne);
        assert_int_equal(a->tensors[i].size, b->tensors[i].size);
        assert_memory_equal(a->tensors[i].data, b->tensors[i].data, a->tensors[i].size);
    }
}

static void test_set_value_deep_copy(void **s) {
    (void)s;
    buf b = finish(sample_writer(3, 64));
    gguf_file *f;
    ryot_error err;
    assert_int_equal(open_copy(b.p, b.n, &f, &err), RYOT_OK);
    buf c = copy_through_writer(f, 3);
    gguf_file *g;
    assert_int_equal(open_copy(c.p, c.n, &g, &err), RYOT_OK);
    check_same(f, g);
    /* the writer must not have kept pointers into f: poison f's buffer */
    memset((void *)f->base, 0xAA, f->size);
    check_sample(g, 3, 64);
    close_copy(f);
    close_copy(g);
    assert_int_equal(c.n, b.n);
    free(b.p);
    free(c.p);
}

/* Real vocab-only files (if the shared test data is there): read, copy
 * through the writer, compare. */
static void test_vocab_files(void **s) {
    (void)s;
    const char *dir = getenv("RYOT_TESTDATA");
    char path[4096];
    static const char *const names[] = {"gpt-2", "llama-spm", "bert-bge", "phi-3"};
    int seen = 0;
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/tokenizer/%s.gguf", dir ? dir : "../shared/testdata", names[i]);
        if (access(path, R_OK) != 0) continue;
        seen++;
        gguf_file *f;
        ryot_error err;
        if (gguf_open(path, &f, &err)) fail_msg("%s: %s", path, err.msg);
        assert_int_equal(f->n_tensors, 0);
        const gguf_array *toks;
        assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks, &err), RYOT_OK);
        assert_true(toks->n > 1000);
        buf c = copy_through_writer(f, 3);
        gguf_file *g;
        assert_int_equal(open_copy(c.p, c.n, &g, &err), RYOT_OK);
        check_same(f, g);
        close_copy(g);
        gguf_close(f);
        free(c.p);
    }
    if (!seen) printf("(test data not found; skipped)\n");
}

static void test_open_file(void **s) {
    (void)s;
    char path[] = "/tmp/ryot_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ryot_error err = {0};
    gguf_writer *w = sample_writer(3, 0);
    assert_int_equal(gguf_writer_write_file(w, path, &err), RYOT_OK);
    gguf_writer_free(w);
    gguf_file *f;
    assert_int_equal(gguf_open(path, &f, &err), RYOT_OK);
    assert_true(f->mapped);
    check_sample(f, 3, 0);
    gguf_close(f);
    /* empty file */
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(gguf_open(path, &f, &err), RYOT_ERR_FORMAT);
    assert_null(f);
    assert_non_null(strstr(err.msg, "magic"));
    unlink(path);
    assert_int_equal(gguf_open(path, &f, &err), RYOT_ERR_NOT_FOUND);
    assert_null(f);
    assert_int_equal(gguf_open("/tmp", &f, &err), RYOT_ERR_IO);
}

/* ------------------------------------------------------------ the writer */

static void test_writer_errors(void **s) {
    (void)s;
    uint8_t *p;
    size_t n;
    ryot_error err;
    uint64_t ne[] = {33, 1};

    gguf_writer *w = gguf_writer_new(4);
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "version 4"));
    gguf_writer_free(w);

    w = gguf_writer_new(3);
    gguf_writer_add_tensor(w, "q", RYOT_TYPE_Q4_0, 2, ne, NULL); /* 33 not a multiple of 32 */
    gguf_writer_set_u32(w, "later", 1);                         /* ignored: sticky error */
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'q'"));
    assert_null(p);
    gguf_writer_free(w);

    w = gguf_writer_new(3);
    ne[0] = 32;
    gguf_writer_add_tensor(w, "q", RYOT_TYPE_Q4_0, 2, ne, NULL);
    gguf_writer_add_tensor(w, "q", RYOT_TYPE_Q4_0, 2, ne, NULL);
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "twice"));
    gguf_writer_free(w);

    w = gguf_writer_new(3);
    gguf_writer_add_tensor(w, "q", RYOT_TYPE_Q4_0, 5, (uint64_t[]){32, 1, 1, 1, 1}, NULL);
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "n_dims 5"));
    gguf_writer_free(w);

    w = gguf_writer_new(3);
    gguf_writer_add_tensor(w, "q", (ryot_type)4, 1, ne, NULL);
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unknown type 4"));
    gguf_writer_free(w);

    w = gguf_writer_new(3);
    gguf_writer_set_u32(w, "general.alignment", 48);
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "power of two"));
    gguf_writer_free(w);

    w = gguf_writer_new(3);
    gguf_writer_set_u32(w, "", 1);
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_ERR_INVALID);
    gguf_writer_free(w);

    w = gguf_writer_new(3);
    gguf_writer_set_arr(w, "x", GGUF_TYPE_STRING, "abc", 1);
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_ERR_INVALID);
    gguf_writer_free(w);

    /* setting a key twice replaces the value in place */
    w = gguf_writer_new(2);
    gguf_writer_set_u32(w, "k1", 1);
    gguf_writer_set_str(w, "k2", "x");
    gguf_writer_set_str(w, "k1", "now a string");
    assert_int_equal(gguf_writer_finish(w, &p, &n, &err), RYOT_OK);
    gguf_writer_free(w);
    gguf_file *f;
    assert_int_equal(open_copy(p, n, &f, &err), RYOT_OK);
    assert_int_equal(f->n_kv, 2);
    assert_true(gguf_str_eq(f->kv[0].key, "k1"));
    assert_true(gguf_str_eq(f->kv[0].value.str, "now a string"));
    assert_int_equal(f->n_tensors, 0);
    assert_int_equal(f->data_offset, n); /* no padding after a header without tensors */
    close_copy(f);
    free(p);

    /* a NULL writer (allocation failure in gguf_writer_new) reports at finish */
    gguf_writer_set_u32(NULL, "k", 1);
    assert_int_equal(gguf_writer_finish(NULL, &p, &n, &err), RYOT_ERR_NOMEM);
    gguf_writer_free(NULL);
}

/* Tensors written with NULL data are zeros, and padding is zero. */
static void test_writer_zero_data(void **s) {
    (void)s;
    gguf_writer *w = gguf_writer_new(3);
    gguf_writer_set_u32(w, "general.alignment", 64);
    uint64_t ne[] = {3};
    gguf_writer_add_tensor(w, "a", RYOT_TYPE_F32, 1, ne, (float[]){1, 2, 3});
    gguf_writer_add_tensor(w, "b", RYOT_TYPE_F32, 1, ne, NULL);
    buf b = finish(w);
    gguf_file *f;
    ryot_error err;
    assert_int_equal(open_copy(b.p, b.n, &f, &err), RYOT_OK);
    assert_int_equal(f->tensors[1].offset, 64);
    const uint8_t *d = f->base + f->data_offset;
    for (unsigned i = 12; i < 64; i++) assert_int_equal(d[i], 0);
    for (unsigned i = 64; i < 128; i++) assert_int_equal(d[i], 0);
    assert_int_equal(b.n, f->data_offset + 128);
    close_copy(f);
    free(b.p);
}

/* --------------------------------------------------------- hostile files */

static void test_small_file_valid(void **s) {
    (void)s;
    buf b = small_file();
    gguf_file *f;
    ryot_error err;
    assert_int_equal(open_copy(b.p, b.n, &f, &err), RYOT_OK);
    assert_int_equal(f->n_tensors, 2);
    assert_int_equal(f->tensors[1].offset + f->tensors[1].size + f->data_offset, b.n);
    close_copy(f);
    free(b.p);
}

static void test_truncation_every_length(void **s) {
    (void)s;
    buf b = small_file();
    for (size_t n = 0; n < b.n; n++) {
        ryot_error err;
        ryot_status st = open_copy(b.p, n, NULL, &err);
        if (st != RYOT_ERR_FORMAT) fail_msg("truncated at %zu of %zu: status %d (%s)", n, b.n, st, err.msg);
    }
    /* same for a vocab-style file without tensors, which ends with its last kv */
    buf v = vocab_file();
    assert_int_equal(open_copy(v.p, v.n, NULL, &(ryot_error){0}), RYOT_OK);
    for (size_t n = 0; n < v.n; n++) {
        ryot_error err;
        ryot_status st = open_copy(v.p, n, NULL, &err);
        if (st != RYOT_ERR_FORMAT) fail_msg("truncated at %zu of %zu: status %d (%s)", n, v.n, st, err.msg);
    }
    free(b.p);
    free(v.p);
}

/* Applies patch at offset `at`: writes v over n bytes, expects failure. */
static void patch_expect(const buf *orig, size_t at, uint64_t v, unsigned n, ryot_status code, const char *sub1,
                         const char *sub2) {
    buf b = dup_buf(orig);
    put_le(b.p + at, v, n);
    if (sub2)
        expect_fail(&b, code, sub1, sub2);
    else
        expect_fail(&b, code, sub1);
    free(b.p);
}

static void test_bad_magic_and_version(void **s) {
    (void)s;
    buf b = small_file();
    patch_expect(&b, 0, 0x47475546, 4, RYOT_ERR_FORMAT, "magic 'FUGG'", "offset 0"); /* "GGUF" reversed */
    patch_expect(&b, 0, 0, 1, RYOT_ERR_FORMAT, "not a GGUF file", "\\x00GUF");
    patch_expect(&b, 4, 1, 4, RYOT_ERR_UNSUPPORTED, "version 1", "offset 4");
    patch_expect(&b, 4, 99, 4, RYOT_ERR_UNSUPPORTED, "version 99", "offset 4");
    patch_expect(&b, 4, 0, 4, RYOT_ERR_FORMAT, "version 0", NULL);
    patch_expect(&b, 4, 0x03000000, 4, RYOT_ERR_UNSUPPORTED, "big-endian", NULL);
    patch_expect(&b, 4, 4, 4, RYOT_ERR_UNSUPPORTED, "version 4", NULL);
    free(b.p);
}

static void test_huge_counts(void **s) {
    (void)s;
    buf b = small_file();
    uint64_t left_after_kv_field = b.n - 24;
    uint64_t bad[] = {1ull << 63, UINT64_MAX, 1ull << 60, left_after_kv_field / 14 + 1};
    for (unsigned i = 0; i < 4; i++) {
        patch_expect(&b, 16, bad[i], 8, RYOT_ERR_FORMAT, "n_kv", "offset 16");
        patch_expect(&b, 8, bad[i], 8, RYOT_ERR_FORMAT, "n_tensors", "offset 8");
    }
    /* plausible counts that still overrun: one more kv / tensor than there is */
    patch_expect(&b, 8, 3, 8, RYOT_ERR_FORMAT, "tensor", NULL);
    buf v = vocab_file();
    patch_expect(&v, 16, get_le(v.p + 16, 8) + 1, 8, RYOT_ERR_FORMAT, "kv #5", "truncated");
    free(v.p);
    free(b.p);
}

static void test_huge_lengths(void **s) {
    (void)s;
    buf b = small_file();
    /* key length: the u64 just before the key's text */
    size_t key = find(&b, "dup.a") - 8;
    size_t left = b.n - (key + 8);
    uint64_t bad[] = {1ull << 63, UINT64_MAX, left + 1};
    for (unsigned i = 0; i < 3; i++) {
        patch_expect(&b, key, bad[i], 8, RYOT_ERR_FORMAT, "key length", "kv #2");
    }
    /* a string value's length */
    size_t val = kv_value_at(&b, "general.architecture");
    left = b.n - (val + 8);
    uint64_t bad2[] = {1ull << 63, UINT64_MAX, left + 1};
    for (unsigned i = 0; i < 3; i++)
        patch_expect(&b, val, bad2[i], 8, RYOT_ERR_FORMAT, "string value length", "general.architecture");
    /* an element of a string array */
    size_t elem = kv_value_at(&b, "tok.list") + 12;
    patch_expect(&b, elem, UINT64_MAX, 8, RYOT_ERR_FORMAT, "string element #0", "tok.list");
    /* array counts (string array, scalar array, nested array) */
    const char *arrays[] = {"tok.list", "tok.ids", "test.nested_str"};
    for (unsigned k = 0; k < 3; k++) {
        size_t cnt = kv_value_at(&b, arrays[k]) + 4;
        uint64_t bad3[] = {1ull << 63, UINT64_MAX, (uint64_t)(b.n - (cnt + 8)) + 1};
        for (unsigned i = 0; i < 3; i++) patch_expect(&b, cnt, bad3[i], 8, RYOT_ERR_FORMAT, "array of", arrays[k]);
    }
    /* a tensor name */
    size_t name = find(&b, "t.b") - 8;
    patch_expect(&b, name, UINT64_MAX, 8, RYOT_ERR_FORMAT, "name length", "tensor #1");
    free(b.p);
}

static void test_bad_value_types(void **s) {
    (void)s;
    buf b = small_file();
    size_t t = kv_type_at(&b, "dup.a");
    patch_expect(&b, t, 13, 4, RYOT_ERR_FORMAT, "invalid value type 13", "dup.a");
    patch_expect(&b, t, 0xffffffff, 4, RYOT_ERR_FORMAT, "invalid value type 4294967295", NULL);
    size_t et = kv_value_at(&b, "tok.ids");
    patch_expect(&b, et, 13, 4, RYOT_ERR_FORMAT, "invalid array element type 13", "tok.ids");
    /* inside a nested array */
    size_t inner = kv_value_at(&b, "test.nested_str") + 12;
    patch_expect(&b, inner, 77, 4, RYOT_ERR_FORMAT, "invalid array element type 77", "test.nested_str");
    free(b.p);
}

/* A vocab-style file with one key whose array nests `depth` levels deep. */
static buf nested_file(unsigned depth) {
    const char *key = "bomb";
    size_t n = 24 + 8 + 4 + 4 + (size_t)depth * 12 + 8;
    buf b = {calloc(1, n), n};
    uint8_t *p = b.p;
    memcpy(p, "GGUF", 4);
    put_le(p + 4, 3, 4);
    put_le(p + 8, 0, 8);
    put_le(p + 16, 1, 8);
    put_le(p + 24, 4, 8);
    memcpy(p + 32, key, 4);
    put_le(p + 36, GGUF_TYPE_ARRAY, 4);
    size_t o = 40;
    for (unsigned d = 1; d < depth; d++) {
        put_le(p + o, GGUF_TYPE_ARRAY, 4);
        put_le(p + o + 4, 1, 8);
        o += 12;
    }
    put_le(p + o, GGUF_TYPE_UINT8, 4); /* innermost: 8 bytes */
    put_le(p + o + 4, 8, 8);
    o += 12 + 8;
    b.n = o;
    return b;
}

static void test_nesting_depth(void **s) {
    (void)s;
    buf ok = nested_file(GGUF_MAX_NESTING);
    gguf_file *f;
    ryot_error err;
    assert_int_equal(open_copy(ok.p, ok.n, &f, &err), RYOT_OK);
    const gguf_array *a = &f->kv[0].value.arr;
    for (unsigned d = 1; d < GGUF_MAX_NESTING; d++) {
        assert_int_equal(a->type, GGUF_TYPE_ARRAY);
        assert_int_equal(a->n, 1);
        a = &a->vals[0].arr;
    }
    assert_int_equal(a->type, GGUF_TYPE_UINT8);
    assert_int_equal(a->n, 8);
    close_copy(f);
    free(ok.p);
    buf bad = nested_file(GGUF_MAX_NESTING + 1);
    expect_fail(&bad, RYOT_ERR_FORMAT, "nested more than 8", "bomb");
    free(bad.p);
    buf bomb = nested_file(1000000); /* would overflow the stack if unbounded */
    expect_fail(&bomb, RYOT_ERR_FORMAT, "nested", "offset");
    free(bomb.p);
}

static void test_bad_tensor_infos(void **s) {
    (void)s;
    buf b = small_file();
    patch_expect(&b, ti_ndims_at(&b, "t.a"), 5, 4, RYOT_ERR_FORMAT, "n_dims 5", "'t.a' (#0)");
    patch_expect(&b, ti_ndims_at(&b, "t.b"), 0, 4, RYOT_ERR_FORMAT, "n_dims 0", "'t.b' (#1)");
    patch_expect(&b, ti_ne_at(&b, "t.a", 1), 0, 8, RYOT_ERR_FORMAT, "dimension 1 is 0", "t.a");
    /* element count overflow: 2^32 * 2^32 */
    {
        buf c = dup_buf(&b);
        put_le(c.p + ti_ne_at(&c, "t.a", 0), 1ull << 32, 8);
        put_le(c.p + ti_ne_at(&c, "t.a", 1), 1ull << 32, 8);
        expect_fail(&c, RYOT_ERR_FORMAT, "overflows", "t.a");
        put_le(c.p + ti_ne_at(&c, "t.a", 1), UINT64_MAX, 8);
        expect_fail(&c, RYOT_ERR_FORMAT, "overflows", "t.a");
        free(c.p);
    }
    /* huge but representable element count: bytes past the end of the file */
    patch_expect(&b, ti_ne_at(&b, "t.a", 1), 1ull << 40, 8, RYOT_ERR_FORMAT, "ends past the end", "t.a");
    patch_expect(&b, ti_type_at(&b, "t.a"), 4, 4, RYOT_ERR_FORMAT, "unknown tensor type 4", "t.a");
    patch_expect(&b, ti_type_at(&b, "t.a"), 0xffffffffu, 4, RYOT_ERR_FORMAT, "unknown tensor type", NULL);
    /* Q8_0 rows must be multiples of 32 */
    patch_expect(&b, ti_ne_at(&b, "t.b", 0), 33, 8, RYOT_ERR_FORMAT, "not a multiple of the Q8_0 block size 32",
                 "t.b");
    patch_expect(&b, ti_offset_at(&b, "t.b"), 65, 8, RYOT_ERR_FORMAT, "not a multiple of the alignment 32", "t.b");
    patch_expect(&b, ti_offset_at(&b, "t.b"), 1ull << 40, 8, RYOT_ERR_FORMAT, "ends past the end", "t.b");
    patch_expect(&b, ti_offset_at(&b, "t.b"), UINT64_MAX - 31, 8, RYOT_ERR_FORMAT, "ends past the end", "t.b");
    /* t.b now starts at 96: its 68 bytes cross the end of the file */
    patch_expect(&b, ti_offset_at(&b, "t.b"), 96, 8, RYOT_ERR_FORMAT, "ends past the end of the file", "t.b");
    /* one more row than there are bytes */
    patch_expect(&b, ti_ne_at(&b, "t.b", 1), 3, 8, RYOT_ERR_FORMAT, "[offset 64, size 102)", "t.b");
    /* two tensors sharing bytes */
    patch_expect(&b, ti_offset_at(&b, "t.b"), 32, 8, RYOT_ERR_FORMAT, "overlaps", "t.a");
    patch_expect(&b, ti_offset_at(&b, "t.b"), 0, 8, RYOT_ERR_FORMAT, "overlaps", "t.b");
    free(b.p);
}

static void test_bad_alignment(void **s) {
    (void)s;
    buf b = small_file();
    size_t v = kv_value_at(&b, "general.alignment");
    patch_expect(&b, v, 48, 4, RYOT_ERR_FORMAT, "alignment 48", "power of two");
    patch_expect(&b, v, 0, 4, RYOT_ERR_FORMAT, "alignment 0", "general.alignment");
    patch_expect(&b, v, 0x80000001u, 4, RYOT_ERR_FORMAT, "power of two", NULL);
    patch_expect(&b, kv_type_at(&b, "general.alignment"), GGUF_TYPE_INT32, 4, RYOT_ERR_FORMAT, "is i32, expected u32",
                 "general.alignment");
    /* alignment 64 moves the data section: the tensor offsets stay valid (0 and
     * 64) but the second tensor no longer fits */
    patch_expect(&b, v, 64, 4, RYOT_ERR_FORMAT, "'t.b' (#1)", "past the end");
    free(b.p);
}

static void test_duplicates_and_empty_names(void **s) {
    (void)s;
    buf b = small_file();
    patch_expect(&b, find(&b, "dup.b") + 4, 'a', 1, RYOT_ERR_FORMAT, "duplicate key", "'dup.a'");
    patch_expect(&b, find(&b, "t.b") + 2, 'a', 1, RYOT_ERR_FORMAT, "duplicate tensor name", "'t.a' (#1)");

    /* An empty key: a hand-made file with key length 0. */
    uint8_t p[64] = {0};
    memcpy(p, "GGUF", 4);
    put_le(p + 4, 3, 4);
    put_le(p + 16, 1, 8);
    put_le(p + 24, 0, 8);
    put_le(p + 32, GGUF_TYPE_UINT32, 4);
    buf e = {p, 40};
    expect_fail(&e, RYOT_ERR_FORMAT, "empty key", "offset 24");

    /* Names with control bytes are escaped so the message stays one line. */
    buf c = dup_buf(&b);
    size_t ka = find(&c, "dup.a"), kb = find(&c, "dup.b");
    c.p[ka + 3] = '\n';
    c.p[kb + 3] = '\n';
    c.p[kb + 4] = 'a';
    expect_fail(&c, RYOT_ERR_FORMAT, "duplicate key", "dup\\x0aa");
    free(c.p);
    free(b.p);
}

/* Single-byte corruption everywhere in the header: no crash, no leak (ASan),
 * and when it fails, the contract holds (checked in open_copy). */
static void test_byte_flips(void **s) {
    (void)s;
    buf b = small_file();
    static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < b.n; i++) {
        for (unsigned k = 0; k < sizeof vals; k++) {
            buf c = dup_buf(&b);
            c.p[i] = vals[k];
            gguf_file *f;
            ryot_error err;
            if (open_copy(c.p, c.n, &f, &err) == RYOT_OK) close_copy(f);
            free(c.p);
        }
    }
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_v3),
        cmocka_unit_test(test_roundtrip_v2),
        cmocka_unit_test(test_roundtrip_align64),
        cmocka_unit_test(test_roundtrip_align1),
        cmocka_unit_test(test_roundtrip_align4096),
        cmocka_unit_test(test_set_value_deep_copy),
        cmocka_unit_test(test_vocab_files),
        cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_writer_zero_data),
        cmocka_unit_test(test_small_file_valid),
        cmocka_unit_test(test_truncation_every_length),
        cmocka_unit_test(test_bad_magic_and_version),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_huge_lengths),
        cmocka_unit_test(test_bad_value_types),
        cmocka_unit_test(test_nesting_depth),
        cmocka_unit_test(test_bad_tensor_infos),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_duplicates_and_empty_names),
        cmocka_unit_test(test_byte_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
