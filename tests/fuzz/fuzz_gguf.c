/* libFuzzer target for the GGUF reader: any byte string must either open
 * cleanly or fail with a one-line message, and an opened file must be safe to
 * walk completely (every kv, nested arrays, every tensor's bytes, the typed
 * getters).  Seeds: tests/fuzz/corpus/gguf/ (made by gguf_seeds.c).
 *   make fuzz && build-fuzz/fuzz_gguf -max_total_time=60 tests/fuzz/corpus/gguf */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"

static volatile uint64_t sink;

static void walk_array(const gguf_array *a) {
    sink += a->n + (uint64_t)a->type;
    if (a->type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < a->n; i++)
            if (a->strs[i].len) sink += (uint8_t)a->strs[i].data[0] + (uint8_t)a->strs[i].data[a->strs[i].len - 1];
        return;
    }
    if (a->type == GGUF_TYPE_ARRAY) {
        for (uint64_t i = 0; i < a->n; i++) walk_array(&a->vals[i].arr);
        return;
    }
    gguf_value v;
    for (uint64_t i = 0; i < a->n; i++)
        if (gguf_arr_get_scalar(a, i, &v)) sink += v.u64;
    if (a->n) {
        uint64_t last = a->n - 1;
        switch (gguf_type_size(a->type)) {
        case 1: sink += gguf_arr_u8(a, last); break;
        case 4: sink += (uint64_t)gguf_arr_i32(a, last) + gguf_arr_u32(a, 0) + (uint64_t)(gguf_arr_f32(a, 0) != 0); break;
        case 8: sink += gguf_arr_u64(a, last) + (uint64_t)(gguf_arr_f64(a, 0) != 0); break;
        default: break;
        }
    }
}

static void walk(const gguf_file *f) {
    ryot_error err;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (kv->value.type == GGUF_TYPE_ARRAY) walk_array(&kv->value.arr);
        if (kv->value.type == GGUF_TYPE_STRING && kv->value.str.len) sink += (uint8_t)kv->value.str.data[0];
        /* getters by name (keys with NUL bytes cannot be named by a C string) */
        char key[128];
        if (kv->key.len >= sizeof key || memchr(kv->key.data, 0, kv->key.len)) continue;
        memcpy(key, kv->key.data, kv->key.len);
        key[kv->key.len] = 0;
        uint32_t u32;
        int64_t i64;
        float f32;
        bool b;
        gguf_str s;
        const gguf_array *a;
        sink += gguf_get_u32(f, key, &u32, &err) + gguf_get_i64(f, key, &i64, &err) +
                gguf_get_f32(f, key, &f32, &err) + gguf_get_bool(f, key, &b, &err) +
                gguf_get_str(f, key, &s, &err) + gguf_get_arr(f, key, GGUF_TYPE_COUNT, &a, &err) +
                gguf_get_arr(f, key, GGUF_TYPE_INT32, &a, &err);
        sink += gguf_find(f, key) != NULL;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const uint8_t *d = t->data;
        sink += d[0] + d[t->size - 1] + t->ne[0] + t->ne[3];
        char name[128];
        if (t->name.len < sizeof name && !memchr(t->name.data, 0, t->name.len)) {
            memcpy(name, t->name.data, t->name.len);
            name[t->name.len] = 0;
            sink += gguf_find_tensor(f, name) != NULL;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    ryot_error err = {0};
    if (gguf_open_memory(data, size, &f, &err) == RYOT_OK) {
        walk(f);
        gguf_close(f);
    } else {
        if (f || err.code == RYOT_OK || !err.msg[0] || strchr(err.msg, '\n')) abort();
    }
    return 0;
}
