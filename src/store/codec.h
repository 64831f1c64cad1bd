/* The persistent store's record codec: one KV block quantized and
 * compressed (store_kv_encode / store_kv_decode), and any payload sealed
 * (store_seal / store_unseal) with XChaCha20-Poly1305 or, in plaintext mode,
 * an integrity tag.
 *
 * KV block (engine/engine.h): F16, per layer, per KV head, positions
 * contiguous: K is n_rows_k = n_layer * n_head_kv * block_size rows of
 * head_dim_k values, V the same with head_dim_v.  Each row is coded alone
 * (but 6-bit K):
 *   16 bits: the F16 values as they are (lossless);
 *    8 bits: scale d = max|x| / 127 (stored F16), q = round(x / d) in int8;
 *    4 bits: d = max|x| / 7, q = round(x / d) in [-7, 7], stored q + 8, two
 *            per byte (low nibble first); head_dim must be even;
 *    6 bits (K only, the default): not per row but a scale per channel j of
 *            each (layer, head) tile of block_size rows, d_j = max over the
 *            tile's rows of |x_j| / 31 (K's outliers sit in a few channels,
 *            so per-channel steps are finer than per-row ones, for the same
 *            scale bytes when block_size = head_dim); c = round(x / d_j) + 32
 *            in [1, 63]; per row, the low nibbles as 4 bits above (head_dim/2
 *            bytes), then head_dim/4 bytes of top bit pairs: value
 *            p * head_dim/4 + j in byte j, bits 2p..2p+1 (head_dim a multiple
 *            of 4).  6-bit K + 4-bit V is 3.05:1 at 64 x 64 without zstd.
 *
 * Encoded KV (little endian), 24 header bytes then the body:
 *   0  "RKV2" (written; "RKV1", the same without 6-bit codes, is read too)
 *   4  u8 k_bits, u8 v_bits, u8 compression (0 none, 1 zstd), u8 0
 *   8  u16 n_layer, n_head_kv, block_size, head_dim_k, head_dim_v, 0
 *  20  u32 raw body length
 *  24  body: K section then V section, zstd-compressed when compression=1;
 *      a section is the n_rows F16 scales (8/4 bits; 6 bits: n_tiles x
 *      head_dim, tile by tile) then the codes, row by row.
 *
 * Sealed record (little endian):
 *   0  "RYS1"
 *   4  u8 mode (1 XChaCha20-Poly1305, 0 plaintext), u8 0, u16 0
 *   8  u8[8] key id: the first 8 bytes of BLAKE2b("ryot store key id", key)
 *      (zero in plaintext mode), so rekey can tell old from new records
 *  16  mode 1: u8[24] nonce, then ciphertext + 16-byte tag;
 *      mode 0: payload, then a 16-byte BLAKE2b tag over header + ad + payload
 * The associated data is the 16 header bytes followed by the caller's ad
 * (the record key): a record moved under another key, a flipped header byte,
 * a truncated or tampered body and a wrong key all fail to open. */
#ifndef RYOT_STORE_CODEC_H
#define RYOT_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define STORE_KEY_BYTES 32   /* encryption key */
#define STORE_KEY_ID_BYTES 8
#define STORE_SEAL_HEADER 16
#define STORE_SEAL_OVERHEAD (STORE_SEAL_HEADER + 24 + 16) /* most bytes sealing adds */
#define STORE_KV_HEADER 24

typedef struct store_kv_shape {
    int n_layer, n_head_kv, block_size, head_dim_k, head_dim_v;
} store_kv_shape;

typedef struct store_codec_params {
    int k_bits;     /* 16, 8 or 6 (default 6) */
    int v_bits;     /* 16, 8, 6 or 4 (default 4: measured in docs/PERFORMANCE.md) */
    int zstd_level; /* 0: no compression (default: 6/4 is 3.05:1 without it, and zstd
                     * was most of the decode time); else the zstd level */
} store_codec_params;

store_codec_params store_codec_default(void);
/* RYOT_ERR_INVALID when bits or shape are not supported. */
ryot_status store_codec_check(const store_kv_shape *sh, const store_codec_params *p, ryot_error *err);

/* Elements of one block's K and V. */
size_t store_kv_elems_k(const store_kv_shape *sh);
size_t store_kv_elems_v(const store_kv_shape *sh);

/* Reusable zstd contexts and scratch for one thread (encode and decode
 * allocate nothing once it has grown to the block size). */
typedef struct store_codec_ctx store_codec_ctx;
store_codec_ctx *store_codec_ctx_new(void);
void store_codec_ctx_free(store_codec_ctx *c);
/* Encode and decode with the best instruction set (true, the default) or
 * the scalar reference (false; tests compare the two). */
void store_codec_ctx_set_simd(store_codec_ctx *c, bool simd);

/* Appends the encoded block (k: store_kv_elems_k F16 values, v likewise) to out. */
ryot_status store_kv_encode(store_codec_ctx *c, const store_kv_shape *sh, const store_codec_params *p, const uint16_t *k,
                            const uint16_t *v, ryot_buf *out, ryot_error *err);
/* Reads the shape an encoded block was made for (RYOT_ERR_FORMAT when the header is bad). */
ryot_status store_kv_peek(const void *rec, size_t n, store_kv_shape *sh, store_codec_params *p, ryot_error *err);
/* Decodes into k and v (sized for *want); RYOT_ERR_FORMAT when rec is not a
 * well-formed block of exactly that shape.  Never reads past rec[0..n). */
ryot_status store_kv_decode(store_codec_ctx *c, const store_kv_shape *want, const void *rec, size_t n, uint16_t *k, uint16_t *v,
                            ryot_error *err);

/* The key id of a key (store codec header). */
void store_key_id(const uint8_t key[STORE_KEY_BYTES], uint8_t id[STORE_KEY_ID_BYTES]);

/* Appends the sealed record of plain[0..n) to out; key NULL: plaintext mode. */
ryot_status store_seal(const uint8_t *key, const void *ad, size_t ad_len, const void *plain, size_t n, ryot_buf *out,
                       ryot_error *err);
/* Opens a sealed record into out (replacing its content).  key NULL:
 * plaintext records only.  RYOT_ERR_FORMAT when the record is malformed,
 * truncated, tampered, of the other mode, or sealed under another key.
 * *key_id (may be NULL) gets the record's key id when the header parses. */
ryot_status store_unseal(const uint8_t *key, const void *ad, size_t ad_len, const void *rec, size_t n, ryot_buf *out,
                         uint8_t *key_id, ryot_error *err);

#endif
