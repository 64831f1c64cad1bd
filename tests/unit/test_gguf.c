/* GGUF reader and writer tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gguf/gguf.h"

/* A hand-built v3 file: one u32 key, one string key, no tensors. */
static size_t put(uint8_t *b, size_t o, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++) b[o + i] = (uint8_t)(v >> (8 * i));
    return o + n;
}
static size_t put_str(uint8_t *b, size_t o, const char *s) {
    o = put(b, o, strlen(s), 8);
    memcpy(b + o, s, strlen(s));
    return o + strlen(s);
}

static void test_handmade_minimal(void **state) {
    (void)state;
    uint8_t b[256];
    size_t o = 0;
    memcpy(b, "GGUF", 4);
    o = put(b, 4, 3, 4);
    o = put(b, o, 0, 8); /* n_tensors */
    o = put(b, o, 2, 8); /* n_kv */
    o = put_str(b, o, "a.n");
    o = put(b, o, GGUF_TYPE_UINT32, 4);
    o = put(b, o, 42, 4);
    o = put_str(b, o, "a.s");
    o = put(b, o, GGUF_TYPE_STRING, 4);
    o = put_str(b, o, "hi");
    gguf_file *f = NULL;
    ryot_error err = {0};
    assert_int_equal(gguf_open_memory(b, o, &f, &err), RYOT_OK);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_kv, 2);
    uint32_t u = 0;
    assert_int_equal(gguf_get_u32(f, "a.n", &u, &err), RYOT_OK);
    assert_int_equal(u, 42);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "a.s", &s, &err), RYOT_OK);
    assert_true(gguf_str_eq(s, "hi"));
    assert_int_equal(gguf_get_u32(f, "missing", &u, &err), RYOT_ERR_NOT_FOUND);
    assert_int_equal(gguf_get_str(f, "a.n", &s, &err), RYOT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "a.n"));
    gguf_close(f);
    for (size_t n = 0; n < o; n++) {
        assert_int_not_equal(gguf_open_memory(b, n, &f, &err), RYOT_OK);
        assert_null(f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handmade_minimal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
