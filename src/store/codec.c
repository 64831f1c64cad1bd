/* KV block codec and record sealing; formats in codec.h. */
#include "store/codec.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "kernels/kernels.h"
#include "store/codec_simd.h"

#define KV_MAGIC "RKV2"    /* written; RKV1 (no 6-bit codes) is read too */
#define KV_MAGIC_V1 "RKV1"
#define SEAL_MAGIC "RYS1"
#define SEAL_TAG 16
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define MAX_DIM 4096

struct store_codec_ctx {
    ZSTD_CCtx *cc;
    ZSTD_DCtx *dc;
    ryot_buf raw; /* body before compression / after decompression */
    store_dequant8_fn dq8; /* by CPU (codec_simd.h) */
    store_dequant4_fn dq4;
    bool avx2;             /* the AVX2 quantizers and 6-bit dequantizer (head_dim % 64 == 0) */
};

static int quant(float x, float id, int qmax);
static float finite_abs(float x);

static void dequant8_ref(const int8_t *q, float d, uint16_t *out, int n) {
    for (int i = 0; i < n; i++) out[i] = ryot_fp32_to_fp16((float)q[i] * d);
}

static void dequant4_ref(const uint8_t *q, float d, uint16_t *out, int n) {
    for (int i = 0; i < n; i += 2) {
        out[i] = ryot_fp32_to_fp16((float)((int)(q[i / 2] & 15) - 8) * d);
        out[i + 1] = ryot_fp32_to_fp16((float)((int)(q[i / 2] >> 4) - 8) * d);
    }
}

_Static_assert(SEAL_NONCE == 24, "XChaCha20 nonce is 24 bytes");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == SEAL_TAG, "Poly1305 tag is 16 bytes");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == STORE_KEY_BYTES, "key size");

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static unsigned get16(const uint8_t *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

store_codec_params store_codec_default(void) {
    return (store_codec_params){.k_bits = 6, .v_bits = 4, .zstd_level = 0};
}

store_codec_ctx *store_codec_ctx_new(void) {
    store_codec_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cc = ZSTD_createCCtx();
    c->dc = ZSTD_createDCtx();
    store_codec_ctx_set_simd(c, true);
    if (!c->cc || !c->dc) {
        store_codec_ctx_free(c);
        return NULL;
    }
    return c;
}

void store_codec_ctx_set_simd(store_codec_ctx *c, bool simd) {
    const bool avx2 = simd && kernels_best_isa() >= KERNEL_ISA_AVX2;
    c->dq8 = avx2 ? store_dequant8_avx2 : dequant8_ref;
    c->dq4 = avx2 ? store_dequant4_avx2 : dequant4_ref;
    c->avx2 = avx2;
}

void store_codec_ctx_free(store_codec_ctx *c) {
    if (!c) return;
    ZSTD_freeCCtx(c->cc);
    ZSTD_freeDCtx(c->dc);
    ryot_buf_free(&c->raw);
    free(c);
}

static bool bits_ok(int b, bool is_k) { return b == 16 || b == 8 || (is_k ? b == 6 : b == 4); }

ryot_status store_codec_check(const store_kv_shape *sh, const store_codec_params *p, ryot_error *err) {
    if (!bits_ok(p->k_bits, true))
        return ryot_fail(err, RYOT_ERR_INVALID, "store: K bits %d (16, 8 or 6)", p->k_bits);
    if (!bits_ok(p->v_bits, false))
        return ryot_fail(err, RYOT_ERR_INVALID, "store: V bits %d (16, 8 or 4)", p->v_bits);
    if (p->zstd_level < 0 || p->zstd_level > ZSTD_maxCLevel())
        return ryot_fail(err, RYOT_ERR_INVALID, "store: zstd level %d", p->zstd_level);
    if (sh->n_layer <= 0 || sh->n_layer > 65535 || sh->n_head_kv <= 0 || sh->n_head_kv > 65535 ||
        sh->block_size <= 0 || sh->block_size > 65535 || sh->head_dim_k <= 0 || sh->head_dim_k > MAX_DIM ||
        sh->head_dim_v <= 0 || sh->head_dim_v > MAX_DIM)
        return ryot_fail(err, RYOT_ERR_INVALID, "store: KV shape out of range");
    if (p->v_bits == 4 && sh->head_dim_v % 2)
        return ryot_fail(err, RYOT_ERR_INVALID, "store: 4-bit V needs an even head_dim (%d)", sh->head_dim_v);
    if (p->k_bits == 6 && sh->head_dim_k % 4)
        return ryot_fail(err, RYOT_ERR_INVALID, "store: 6-bit K needs a head_dim that is a multiple of 4");
    if ((store_kv_elems_k(sh) + store_kv_elems_v(sh)) * 2 > (size_t)1 << 31)
        return ryot_fail(err, RYOT_ERR_INVALID, "store: KV block too large");
    return RYOT_OK;
}

static size_t rows_of(const store_kv_shape *sh) {
    return (size_t)sh->n_layer * (size_t)sh->n_head_kv * (size_t)sh->block_size;
}
size_t store_kv_elems_k(const store_kv_shape *sh) { return rows_of(sh) * (size_t)sh->head_dim_k; }
size_t store_kv_elems_v(const store_kv_shape *sh) { return rows_of(sh) * (size_t)sh->head_dim_v; }

/* 6 bits: an F16 scale per channel of each (layer, head) tile of block_size
 * rows; 8 and 4 bits: one per row */
static size_t section_bytes(size_t rows, int dim, int bits, int bs) {
    if (bits == 16) return rows * (size_t)dim * 2;
    const size_t n_scales = bits == 6 ? rows / (size_t)bs * (size_t)dim : rows;
    return n_scales * 2 + rows * (size_t)dim * (size_t)bits / 8;
}

/* ------------------------------------------------------------ quantization */

static float finite_abs(float x) { return isfinite(x) ? fabsf(x) : 0.0f; }

static int quant(float x, float id, int qmax) {
    float v = x * id;
    if (!(v == v)) return 0; /* NaN */
    if (v > (float)qmax) v = (float)qmax;
    if (v < (float)-qmax) v = (float)-qmax;
    return (int)lrintf(v);
}

static int qmax_of(int bits) { return bits == 8 ? 127 : 7; }

/* The reference quantizer of one row, 8 or 4 bits (codec.h): returns the F16 scale. */
static uint16_t quant_row_ref(const uint16_t *xr, int dim, int bits, uint8_t *codes) {
    const int qmax = qmax_of(bits);
    float row[MAX_DIM];
    float amax = 0.0f;
    for (int i = 0; i < dim; i++) {
        row[i] = ryot_fp16_to_fp32(xr[i]);
        float a = finite_abs(row[i]);
        if (a > amax) amax = a;
    }
    uint16_t dh = ryot_fp32_to_fp16(amax / (float)qmax);
    float d = ryot_fp16_to_fp32(dh);
    /* a scale that rounds to 0 (tiny row) codes everything as 0 */
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    if (bits == 8) {
        for (int i = 0; i < dim; i++) codes[i] = (uint8_t)(int8_t)quant(row[i], id, qmax);
    } else {
        for (int i = 0; i < dim; i += 2)
            codes[i / 2] = (uint8_t)((quant(row[i], id, qmax) + 8) | (quant(row[i + 1], id, qmax) + 8) << 4);
    }
    return dh;
}

/* The reference 6-bit quantizer of one tile of rows x dim (codec.h): per
 * channel j the F16 scale dh[j] = max over the rows of |x| / 31. */
static void quant6_tile_ref(const uint16_t *x, int rows, int dim, uint16_t *dh, uint8_t *codes) {
    float amax[MAX_DIM], id[MAX_DIM];
    for (int j = 0; j < dim; j++) amax[j] = 0.0f;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < dim; j++) {
            float a = finite_abs(ryot_fp16_to_fp32(x[(size_t)r * (size_t)dim + (size_t)j]));
            if (a > amax[j]) amax[j] = a;
        }
    for (int j = 0; j < dim; j++) {
        dh[j] = ryot_fp32_to_fp16(amax[j] / 31.0f);
        const float d = ryot_fp16_to_fp32(dh[j]);
        id[j] = d > 0.0f ? 1.0f / d : 0.0f;
    }
    const int quarter = dim / 4;
    for (int r = 0; r < rows; r++) {
        const uint16_t *xr = x + (size_t)r * (size_t)dim;
        uint8_t *lo = codes + (size_t)r * (size_t)dim * 3 / 4, *hi = lo + dim / 2;
        memset(hi, 0, (size_t)quarter);
        for (int i = 0; i < dim; i++) {
            const int c = quant(ryot_fp16_to_fp32(xr[i]), id[i], 31) + 32;
            if (i % 2) lo[i / 2] |= (uint8_t)((c & 15) << 4);
            else lo[i / 2] = (uint8_t)(c & 15);
            hi[i % quarter] |= (uint8_t)((c >> 4) << 2 * (i / quarter));
        }
    }
}

static void dequant6_ref(const uint8_t *q, const float *d, uint16_t *out, int n) {
    const int quarter = n / 4;
    const uint8_t *hi = q + n / 2;
    for (int i = 0; i < n; i++) {
        const int lo = i % 2 ? q[i / 2] >> 4 : q[i / 2] & 15;
        const int h = (hi[i % quarter] >> 2 * (i / quarter)) & 3;
        out[i] = ryot_fp32_to_fp16((float)((lo | h << 4) - 32) * d[i]);
    }
}

static void encode_section(const store_codec_ctx *c, const uint16_t *x, size_t rows, int dim, int bits, int bs,
                           uint8_t *out) {
    if (bits == 16) {
        memcpy(out, x, rows * (size_t)dim * 2);
        return;
    }
    const bool simd = c->avx2 && dim % 64 == 0;
    const size_t row_bytes = (size_t)dim * (size_t)bits / 8;
    if (bits == 6) {
        const size_t tiles = rows / (size_t)bs;
        uint8_t *codes = out + tiles * (size_t)dim * 2;
        uint16_t dh[MAX_DIM];
        for (size_t t = 0; t < tiles; t++) {
            const uint16_t *xt = x + t * (size_t)bs * (size_t)dim;
            uint8_t *q = codes + t * (size_t)bs * row_bytes;
            if (simd) store_quant6c_avx2(xt, bs, dim, dh, q);
            else quant6_tile_ref(xt, bs, dim, dh, q);
            for (int j = 0; j < dim; j++) put16(out + 2 * (t * (size_t)dim + (size_t)j), dh[j]);
        }
        return;
    }
    uint8_t *scales = out, *codes = out + rows * 2;
    store_quant_fn fn = !simd ? NULL : bits == 8 ? store_quant8_avx2 : store_quant4_avx2;
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *xr = x + r * (size_t)dim;
        uint8_t *q = codes + r * row_bytes;
        put16(scales + 2 * r, fn ? fn(xr, dim, q) : quant_row_ref(xr, dim, bits, q));
    }
}

static void decode_section(const store_codec_ctx *c, const uint8_t *in, size_t rows, int dim, int bits, int bs,
                           uint16_t *x) {
    if (bits == 16) {
        memcpy(x, in, rows * (size_t)dim * 2);
        return;
    }
    const size_t row_bytes = (size_t)dim * (size_t)bits / 8;
    if (bits == 6) {
        store_dequant6_fn dq6 = c->avx2 && dim % 64 == 0 ? store_dequant6c_avx2 : dequant6_ref;
        const size_t tiles = rows / (size_t)bs;
        const uint8_t *codes = in + tiles * (size_t)dim * 2;
        float d[MAX_DIM];
        for (size_t t = 0; t < tiles; t++) {
            for (int j = 0; j < dim; j++) d[j] = ryot_fp16_to_fp32((uint16_t)get16(in + 2 * (t * (size_t)dim + (size_t)j)));
            for (int r = 0; r < bs; r++) {
                const size_t row = t * (size_t)bs + (size_t)r;
                dq6(codes + row * row_bytes, d, x + row * (size_t)dim, dim);
            }
        }
        return;
    }
    const uint8_t *scales = in, *codes = in + rows * 2;
    for (size_t r = 0; r < rows; r++) {
        const float d = ryot_fp16_to_fp32((uint16_t)get16(scales + 2 * r));
        uint16_t *xr = x + r * (size_t)dim;
        const uint8_t *q = codes + r * row_bytes;
        if (bits == 8) c->dq8((const int8_t *)q, d, xr, dim);
        else c->dq4(q, d, xr, dim);
    }
}

static bool buf_reserve(ryot_buf *b, size_t n) {
    if (b->cap >= n + 1) return true;
    char *p = realloc(b->data, n + 1);
    if (!p) return false;
    b->data = p;
    b->cap = n + 1;
    return true;
}

ryot_status store_kv_encode(store_codec_ctx *c, const store_kv_shape *sh, const store_codec_params *p,
                            const uint16_t *k, const uint16_t *v, ryot_buf *out, ryot_error *err) {
    ryot_status st = store_codec_check(sh, p, err);
    if (st) return st;
    const size_t rows = rows_of(sh);
    const size_t nk = section_bytes(rows, sh->head_dim_k, p->k_bits, sh->block_size);
    const size_t nraw = nk + section_bytes(rows, sh->head_dim_v, p->v_bits, sh->block_size);
    if (!buf_reserve(&c->raw, nraw)) return ryot_fail(err, RYOT_ERR_NOMEM, "store: out of memory");
    encode_section(c, k, rows, sh->head_dim_k, p->k_bits, sh->block_size, (uint8_t *)c->raw.data);
    encode_section(c, v, rows, sh->head_dim_v, p->v_bits, sh->block_size, (uint8_t *)c->raw.data + nk);

    uint8_t h[STORE_KV_HEADER] = {0};
    memcpy(h, KV_MAGIC, 4);
    h[4] = (uint8_t)p->k_bits;
    h[5] = (uint8_t)p->v_bits;
    h[6] = p->zstd_level > 0;
    put16(h + 8, (unsigned)sh->n_layer);
    put16(h + 10, (unsigned)sh->n_head_kv);
    put16(h + 12, (unsigned)sh->block_size);
    put16(h + 14, (unsigned)sh->head_dim_k);
    put16(h + 16, (unsigned)sh->head_dim_v);
    put32(h + 20, (uint32_t)nraw);
    const size_t at = out->len;
    const size_t bound = p->zstd_level > 0 ? ZSTD_compressBound(nraw) : nraw;
    if (!ryot_buf_append(out, h, sizeof h) || !buf_reserve(out, at + sizeof h + bound)) {
        out->len = at;
        return ryot_fail(err, RYOT_ERR_NOMEM, "store: out of memory");
    }
    if (p->zstd_level > 0) {
        size_t z = ZSTD_compressCCtx(c->cc, out->data + out->len, bound, c->raw.data, nraw, p->zstd_level);
        if (ZSTD_isError(z)) {
            out->len = at;
            return ryot_fail(err, RYOT_ERR_INTERNAL, "store: zstd: %s", ZSTD_getErrorName(z));
        }
        out->len += z;
    } else {
        memcpy(out->data + out->len, c->raw.data, nraw);
        out->len += nraw;
    }
    out->data[out->len] = 0;
    return RYOT_OK;
}

ryot_status store_kv_peek(const void *rec, size_t n, store_kv_shape *sh, store_codec_params *p, ryot_error *err) {
    const uint8_t *h = rec;
    if (n < STORE_KV_HEADER || (memcmp(h, KV_MAGIC, 4) && memcmp(h, KV_MAGIC_V1, 4)))
        return ryot_fail(err, RYOT_ERR_FORMAT, "store: not a KV block record");
    sh->n_layer = (int)get16(h + 8);
    sh->n_head_kv = (int)get16(h + 10);
    sh->block_size = (int)get16(h + 12);
    sh->head_dim_k = (int)get16(h + 14);
    sh->head_dim_v = (int)get16(h + 16);
    p->k_bits = h[4];
    p->v_bits = h[5];
    p->zstd_level = h[6];
    ryot_error e2;
    if (h[6] > 1 || store_codec_check(sh, p, &e2) || (h[3] == '1' && p->k_bits == 6))
        return ryot_fail(err, RYOT_ERR_FORMAT, "store: KV block header out of range");
    const size_t rows = rows_of(sh);
    if (get32(h + 20) != section_bytes(rows, sh->head_dim_k, p->k_bits, sh->block_size) +
                             section_bytes(rows, sh->head_dim_v, p->v_bits, sh->block_size))
        return ryot_fail(err, RYOT_ERR_FORMAT, "store: KV block length does not match its shape");
    return RYOT_OK;
}

ryot_status store_kv_decode(store_codec_ctx *c, const store_kv_shape *want, const void *rec, size_t n, uint16_t *k,
                            uint16_t *v, ryot_error *err) {
    store_kv_shape sh;
    store_codec_params p;
    ryot_status st = store_kv_peek(rec, n, &sh, &p, err);
    if (st) return st;
    if (memcmp(&sh, want, sizeof sh))
        return ryot_fail(err, RYOT_ERR_FORMAT, "store: KV block of another shape");
    const uint8_t *h = rec;
    const size_t nraw = get32(h + 20), rows = rows_of(&sh);
    const uint8_t *body = h + STORE_KV_HEADER;
    const size_t nbody = n - STORE_KV_HEADER;
    if (p.zstd_level) {
        if (!buf_reserve(&c->raw, nraw)) return ryot_fail(err, RYOT_ERR_NOMEM, "store: out of memory");
        unsigned long long fs = ZSTD_getFrameContentSize(body, nbody);
        if (fs != nraw) return ryot_fail(err, RYOT_ERR_FORMAT, "store: KV block frame size mismatch");
        size_t z = ZSTD_decompressDCtx(c->dc, c->raw.data, nraw, body, nbody);
        if (ZSTD_isError(z) || z != nraw)
            return ryot_fail(err, RYOT_ERR_FORMAT, "store: KV block does not decompress");
        body = (const uint8_t *)c->raw.data;
    } else if (nbody != nraw) {
        return ryot_fail(err, RYOT_ERR_FORMAT, "store: KV block truncated");
    }
    decode_section(c, body, rows, sh.head_dim_k, p.k_bits, sh.block_size, k);
    decode_section(c, body + section_bytes(rows, sh.head_dim_k, p.k_bits, sh.block_size), rows, sh.head_dim_v, p.v_bits,
                   sh.block_size, v);
    return RYOT_OK;
}

/* ------------------------------------------------------------ sealing */

void store_key_id(const uint8_t key[STORE_KEY_BYTES], uint8_t id[STORE_KEY_ID_BYTES]) {
    static const char ctx[] = "ryot store key id";
    uint8_t d[32];
    crypto_generichash(d, sizeof d, (const uint8_t *)ctx, sizeof ctx - 1, key, STORE_KEY_BYTES);
    memcpy(id, d, STORE_KEY_ID_BYTES);
}

/* The associated data: header then the caller's ad (one allocation-free
 * BLAKE2b / AEAD input needs them contiguous). */
static bool make_ad(const uint8_t *h, const void *ad, size_t ad_len, uint8_t *buf, size_t cap) {
    if (STORE_SEAL_HEADER + ad_len > cap) return false;
    memcpy(buf, h, STORE_SEAL_HEADER);
    if (ad_len) memcpy(buf + STORE_SEAL_HEADER, ad, ad_len);
    return true;
}

static void plain_tag(const uint8_t *adb, size_t adn, const void *plain, size_t n, uint8_t tag[SEAL_TAG]) {
    crypto_generichash_state s;
    crypto_generichash_init(&s, NULL, 0, SEAL_TAG);
    crypto_generichash_update(&s, adb, adn);
    if (n) crypto_generichash_update(&s, plain, n);
    crypto_generichash_final(&s, tag, SEAL_TAG);
}

#define AD_MAX 256

ryot_status store_seal(const uint8_t *key, const void *ad, size_t ad_len, const void *plain, size_t n, ryot_buf *out,
                       ryot_error *err) {
    uint8_t h[STORE_SEAL_HEADER] = {0}, adb[STORE_SEAL_HEADER + AD_MAX];
    memcpy(h, SEAL_MAGIC, 4);
    h[4] = key != NULL;
    if (key) store_key_id(key, h + 8);
    if (!make_ad(h, ad, ad_len, adb, sizeof adb)) return ryot_fail(err, RYOT_ERR_INVALID, "store: record key too long");
    const size_t at = out->len, adn = STORE_SEAL_HEADER + ad_len;
    if (!buf_reserve(out, at + STORE_SEAL_OVERHEAD + n)) return ryot_fail(err, RYOT_ERR_NOMEM, "store: out of memory");
    uint8_t *o = (uint8_t *)out->data + at;
    memcpy(o, h, sizeof h);
    o += sizeof h;
    if (key) {
        randombytes_buf(o, SEAL_NONCE);
        unsigned long long clen = 0;
        crypto_aead_xchacha20poly1305_ietf_encrypt(o + SEAL_NONCE, &clen, plain, n, adb, adn, NULL, o, key);
        out->len = at + sizeof h + SEAL_NONCE + (size_t)clen;
    } else {
        if (n) memcpy(o, plain, n);
        plain_tag(adb, adn, plain, n, o + n);
        out->len = at + sizeof h + n + SEAL_TAG;
    }
    out->data[out->len] = 0;
    return RYOT_OK;
}

ryot_status store_unseal(const uint8_t *key, const void *ad, size_t ad_len, const void *rec, size_t n, ryot_buf *out,
                         uint8_t *key_id, ryot_error *err) {
    const uint8_t *h = rec;
    uint8_t adb[STORE_SEAL_HEADER + AD_MAX];
    if (n < STORE_SEAL_HEADER + SEAL_TAG || memcmp(h, SEAL_MAGIC, 4) || h[4] > 1 || h[5] || h[6] || h[7])
        return ryot_fail(err, RYOT_ERR_FORMAT, "store: not a sealed record");
    if (key_id) memcpy(key_id, h + 8, STORE_KEY_ID_BYTES);
    if ((h[4] == 1) != (key != NULL))
        return ryot_fail(err, RYOT_ERR_FORMAT, h[4] ? "store: encrypted record and no key" : "store: plaintext record");
    if (!make_ad(h, ad, ad_len, adb, sizeof adb)) return ryot_fail(err, RYOT_ERR_INVALID, "store: record key too long");
    const size_t adn = STORE_SEAL_HEADER + ad_len;
    const uint8_t *body = h + STORE_SEAL_HEADER;
    size_t nbody = n - STORE_SEAL_HEADER;
    out->len = 0;
    if (key) {
        if (nbody < SEAL_NONCE + SEAL_TAG) return ryot_fail(err, RYOT_ERR_FORMAT, "store: record truncated");
        const size_t nplain = nbody - SEAL_NONCE - SEAL_TAG;
        if (!buf_reserve(out, nplain)) return ryot_fail(err, RYOT_ERR_NOMEM, "store: out of memory");
        unsigned long long m = 0;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)out->data, &m, NULL, body + SEAL_NONCE,
                                                       nbody - SEAL_NONCE, adb, adn, body, key) != 0)
            return ryot_fail(err, RYOT_ERR_FORMAT, "store: record fails authentication");
        out->len = (size_t)m;
    } else {
        const size_t nplain = nbody - SEAL_TAG;
        uint8_t tag[SEAL_TAG];
        plain_tag(adb, adn, body, nplain, tag);
        if (sodium_memcmp(tag, body + nplain, SEAL_TAG) != 0)
            return ryot_fail(err, RYOT_ERR_FORMAT, "store: record fails its integrity check");
        if (!buf_reserve(out, nplain)) return ryot_fail(err, RYOT_ERR_NOMEM, "store: out of memory");
        if (nplain) memcpy(out->data, body, nplain);
        out->len = nplain;
    }
    out->data[out->len] = 0;
    return RYOT_OK;
}
