/* Cache keys: a BLAKE2b-256 digest (libsodium) over a canonical encoding of
 * everything that determines a response.  Every field goes in as a tag byte,
 * a length and the bytes, so no two different field sequences encode the
 * same (a string "ab" + "c" never equals "a" + "bc"), and the encoding starts
 * with CACHE_KEY_VERSION: a change in what the key covers bumps it, and old
 * entries (in Redis, say) stop matching instead of answering wrongly.
 *
 * A 256-bit cryptographic digest, not a fast 64-bit hash: a collision would
 * hand one user's answer to another, and clients choose the inputs. */
#ifndef RYOT_CACHE_KEY_H
#define RYOT_CACHE_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define CACHE_KEY_VERSION 1
#define CACHE_KEY_BYTES 32

typedef struct cache_key {
    uint8_t b[CACHE_KEY_BYTES];
} cache_key;

typedef struct cache_key_builder {
    crypto_generichash_state st;
} cache_key_builder;

/* Starts a key for one kind of response ("chat", "completions", ...). */
void cache_key_begin(cache_key_builder *kb, const char *kind);
void cache_key_bytes(cache_key_builder *kb, uint8_t tag, const void *p, size_t n);
void cache_key_str(cache_key_builder *kb, uint8_t tag, const char *s); /* NULL differs from "" */
void cache_key_i64(cache_key_builder *kb, uint8_t tag, int64_t v);
/* Floats by their bit pattern (so -0.0 != 0.0 and every NaN is its own). */
void cache_key_f64(cache_key_builder *kb, uint8_t tag, double v);
void cache_key_end(cache_key_builder *kb, cache_key *out);

/* 64 lowercase hex digits and a NUL (for logs, Redis keys, tests). */
void cache_key_hex(const cache_key *k, char out[2 * CACHE_KEY_BYTES + 1]);

#endif
