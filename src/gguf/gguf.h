/* GGUF reader (v2 and v3) and writer.
 *
 * File layout (little-endian):
 *   magic "GGUF" (4 bytes) | version u32 | n_tensors u64 | n_kv u64
 *   n_kv x { key: string | value_type u32 | value }
 *   n_tensors x { name: string | n_dims u32 | ne[n_dims] u64 | type u32 | offset u64 }
 *   padding to `general.alignment` (default 32)
 *   tensor data; each tensor at data_start + offset, offset a multiple of alignment
 * string = len u64 | bytes (not NUL-terminated)
 * array  = elem_type u32 | n u64 | n x value      (elements may be arrays: nesting)
 * (v1 used u32 for counts and lengths and is not supported.)
 *
 * The reader maps the file and validates everything before use: every
 * length, count, offset and size is checked against the file size with
 * overflow-safe arithmetic; unknown value or tensor types, tensors outside the
 * data section or overlapping each other are errors naming the field and
 * offset.  Memory use is bounded by a small multiple of the file size.
 * Strings and scalar arrays point into the mapping and live as long as the
 * gguf_file. */
#ifndef RYOT_GGUF_H
#define RYOT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/types.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
/* Arrays may hold arrays; the reader rejects nesting deeper than this many
 * array levels (a key's own array is level 1). */
#define GGUF_MAX_NESTING 8

typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* Short names: "u8", "i32", "f32", "bool", "string", "array", ...; "?" if invalid. */
const char *gguf_type_name(gguf_type t);
/* Bytes of one scalar element; 0 for STRING, ARRAY and invalid types. */
size_t gguf_type_size(gguf_type t);
bool gguf_type_is_int(gguf_type t);

/* A string inside the file: not NUL-terminated. */
typedef struct gguf_str {
    uint64_t len;
    const char *data;
} gguf_str;

struct gguf_value;

typedef struct gguf_array {
    gguf_type type;           /* element type */
    uint64_t n;               /* element count */
    const void *raw;          /* scalar elements: packed little-endian in the file (may be unaligned) */
    gguf_str *strs;           /* type == STRING: n entries */
    struct gguf_value *vals;  /* type == ARRAY: n nested arrays */
} gguf_array;

typedef struct gguf_value {
    gguf_type type;
    union {
        uint64_t u64;  /* UINT8/16/32/64 */
        int64_t i64;   /* INT8/16/32/64 */
        double f64;    /* FLOAT32/64 */
        bool b;        /* BOOL */
        gguf_str str;  /* STRING */
        gguf_array arr;/* ARRAY */
    };
} gguf_value;

typedef struct gguf_kv {
    gguf_str key;
    gguf_value value;
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    ryot_type type;
    uint64_t offset;            /* relative to the start of the data section */
    uint64_t size;              /* bytes */
    const void *data;           /* into the mapping; NULL for files read without data */
} gguf_tensor;

typedef struct gguf_file {
    const uint8_t *base; /* whole file */
    size_t size;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;   /* start of the tensor data section (a file without tensors may end
                             * before its padding: then this is clamped to size) */
    /* private */
    bool mapped;
    void *arena;
} gguf_file;

/* Open and validate a GGUF file (mmap, read-only).  On error returns a status,
 * sets *out = NULL and writes a message naming the field and byte offset. */
ryot_status gguf_open(const char *path, gguf_file **out, ryot_error *err);

/* Same, over a caller-owned buffer that must outlive the result (tests, fuzzing). */
ryot_status gguf_open_memory(const void *buf, size_t size, gguf_file **out, ryot_error *err);

void gguf_close(gguf_file *f);

/* Lookups (linear in n_kv / n_tensors; callers cache what they need). */
const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters.  Return RYOT_ERR_NOT_FOUND if the key is absent, and
 * RYOT_ERR_FORMAT (with a message naming the key and its actual type) if the
 * value does not fit: integers of any width convert to the asked type when the
 * value is in range; floats accept FLOAT32/FLOAT64. */
ryot_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, ryot_error *err);
ryot_status gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, ryot_error *err);
ryot_status gguf_get_f32(const gguf_file *f, const char *key, float *out, ryot_error *err);
ryot_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, ryot_error *err);
ryot_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, ryot_error *err);
/* Array of the given element type (any type when want == GGUF_TYPE_COUNT). */
ryot_status gguf_get_arr(const gguf_file *f, const char *key, gguf_type want, const gguf_array **out,
                         ryot_error *err);

/* Scalar array element access (unaligned-safe, little-endian).  The caller
 * checks the element type first; these assert (a bug, not bad input) that the
 * element width matches (4 bytes for i32/u32/f32, 1 for u8, 8 for u64/f64)
 * and that i < a->n. */
int32_t gguf_arr_i32(const gguf_array *a, uint64_t i);
uint32_t gguf_arr_u32(const gguf_array *a, uint64_t i);
float gguf_arr_f32(const gguf_array *a, uint64_t i);
uint8_t gguf_arr_u8(const gguf_array *a, uint64_t i);
uint64_t gguf_arr_u64(const gguf_array *a, uint64_t i);
double gguf_arr_f64(const gguf_array *a, uint64_t i);
/* Element i of a scalar array of any type as a value (u64/i64/f64/b as for
 * keys); false for STRING/ARRAY elements or i out of range. */
bool gguf_arr_get_scalar(const gguf_array *a, uint64_t i, gguf_value *out);

bool gguf_str_eq(gguf_str s, const char *cstr);

/* ---------------------------------------------------------------- writer
 * Builds a GGUF file in memory (for tests, the model generator and the
 * quantizer).  Keys and tensors are written in the order added; setting a key
 * again replaces its value in place.  The writer copies everything it is
 * given.  Errors (allocation, bad arguments such as an invalid shape or a
 * duplicate tensor name) are sticky: later calls do nothing and
 * gguf_writer_finish reports the first one.  Tensor data is aligned to
 * `general.alignment` if that key was set (a u32 power of two), else 32, and
 * zero-padded.  gguf_writer_new returns NULL only when out of memory (finish
 * then reports it); a version other than 2 or 3 is a sticky error. */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(uint32_t version /* 2 or 3 */);
void gguf_writer_free(gguf_writer *w);

void gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v);
void gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v);
void gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v);
void gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v);
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_f64(gguf_writer *w, const char *key, double v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Scalar array: n elements of `type`, packed as in the file. */
void gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type type, const void *data, uint64_t n);
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Copies every key of another file's value (any type, nested arrays included). */
void gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v);

/* Adds a tensor; `data` holds ryot_row_size(type, ne[0]) * ne[1] * ... bytes
 * (may be NULL to write zeros). */
void gguf_writer_add_tensor(gguf_writer *w, const char *name, ryot_type type, uint32_t n_dims,
                            const uint64_t *ne, const void *data);

/* Serialize.  *buf is malloc'd and owned by the caller. */
ryot_status gguf_writer_finish(gguf_writer *w, uint8_t **buf, size_t *size, ryot_error *err);
ryot_status gguf_writer_write_file(gguf_writer *w, const char *path, ryot_error *err);

#endif
