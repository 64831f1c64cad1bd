#include "cache/key.h"

#include <string.h>

/* libsodium's init is idempotent and thread-safe; BLAKE2b itself needs none,
 * but the library's CPU dispatch is chosen there. */
static void ensure_init(void) {
    static _Atomic int done;
    if (!done) {
        if (sodium_init() < 0) return; /* the portable code paths still work */
        done = 1;
    }
}

static void put_header(cache_key_builder *kb, uint8_t tag, uint64_t n) {
    uint8_t h[9];
    h[0] = tag;
    for (int i = 0; i < 8; i++) h[1 + i] = (uint8_t)(n >> (8 * i));
    crypto_generichash_update(&kb->st, h, sizeof h);
}

void cache_key_begin(cache_key_builder *kb, const char *kind) {
    ensure_init();
    crypto_generichash_init(&kb->st, NULL, 0, CACHE_KEY_BYTES);
    cache_key_i64(kb, 0, CACHE_KEY_VERSION);
    cache_key_str(kb, 1, kind);
}

void cache_key_bytes(cache_key_builder *kb, uint8_t tag, const void *p, size_t n) {
    put_header(kb, tag, n);
    if (n) crypto_generichash_update(&kb->st, p, n);
}

void cache_key_str(cache_key_builder *kb, uint8_t tag, const char *s) {
    if (!s) {
        put_header(kb, tag, UINT64_MAX); /* no string can be that long */
        return;
    }
    cache_key_bytes(kb, tag, s, strlen(s));
}

void cache_key_i64(cache_key_builder *kb, uint8_t tag, int64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    cache_key_bytes(kb, tag, b, sizeof b);
}

void cache_key_f64(cache_key_builder *kb, uint8_t tag, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    cache_key_i64(kb, tag, (int64_t)u);
}

void cache_key_end(cache_key_builder *kb, cache_key *out) {
    crypto_generichash_final(&kb->st, out->b, CACHE_KEY_BYTES);
}

void cache_key_hex(const cache_key *k, char out[2 * CACHE_KEY_BYTES + 1]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < CACHE_KEY_BYTES; i++) {
        out[2 * i] = digits[k->b[i] >> 4];
        out[2 * i + 1] = digits[k->b[i] & 15];
    }
    out[2 * CACHE_KEY_BYTES] = 0;
}
