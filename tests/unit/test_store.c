/* Persistent store: the KV codec (round trip within the named error bound
 * per bit width, lossless at 16 bits, compression ratio, malformed input
 * refused), sealing (tamper, truncation, wrong key, moved record, mode
 * mismatch all refused), and the LMDB store (put/get across a reopen,
 * duplicates, tampered record counted as an auth failure and a miss, LRU
 * eviction under a small budget, sessions, verify, gc, rekey). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <math.h>
#include <sodium.h>

#include "core/rng.h"
#include "kernels/kernels.h"
#include "store/codec.h"
#include "store/store.h"

static const store_kv_shape SHAPE = {.n_layer = 3, .n_head_kv = 2, .block_size = 16, .head_dim_k = 64, .head_dim_v = 64};

/* KV-like data: per row a scale of its own, values roughly normal, a few
 * outliers (real K rows have a couple of large channels). */
static void fill(uint16_t *x, size_t n, int dim, uint64_t seed) {
    ryot_rng r;
    ryot_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i += (size_t)dim) {
        float s = 0.2f + 3.0f * (float)ryot_rng_uniform(&r);
        for (int j = 0; j < dim; j++) {
            float u = (float)ryot_rng_uniform(&r) + (float)ryot_rng_uniform(&r) + (float)ryot_rng_uniform(&r) - 1.5f;
            if (j == 7) u *= 6.0f;
            x[i + (size_t)j] = ryot_fp32_to_fp16(u * s);
        }
    }
}

/* Worst |decoded - original| relative to each row's max: the quantizer's
 * half step is 0.5/qmax of the max, plus F16 rounding of scale and result. */
static double worst_rel(const uint16_t *a, const uint16_t *b, size_t n, int dim) {
    double worst = 0;
    for (size_t i = 0; i < n; i += (size_t)dim) {
        float amax = 0;
        for (int j = 0; j < dim; j++) amax = fmaxf(amax, fabsf(ryot_fp16_to_fp32(a[i + (size_t)j])));
        for (int j = 0; j < dim; j++) {
            double d = fabs((double)ryot_fp16_to_fp32(a[i + (size_t)j]) - ryot_fp16_to_fp32(b[i + (size_t)j]));
            if (amax > 0 && d / amax > worst) worst = d / amax;
        }
    }
    return worst;
}

/* The same relative to each channel's max over a tile of bs rows (6-bit K
 * has a scale per channel of each layer and head's block_size rows). */
static double worst_rel_channel(const uint16_t *a, const uint16_t *b, size_t n, int dim, int bs) {
    double worst = 0;
    const size_t tile = (size_t)dim * (size_t)bs;
    for (size_t t = 0; t < n; t += tile)
        for (int j = 0; j < dim; j++) {
            float amax = 0;
            for (int r = 0; r < bs; r++) amax = fmaxf(amax, fabsf(ryot_fp16_to_fp32(a[t + (size_t)r * dim + j])));
            for (int r = 0; r < bs; r++) {
                const size_t i = t + (size_t)r * dim + j;
                double d = fabs((double)ryot_fp16_to_fp32(a[i]) - ryot_fp16_to_fp32(b[i]));
                if (amax > 0 && d / amax > worst) worst = d / amax;
            }
        }
    return worst;
}

static void round_trip(int kb, int vb, int level, double bound_k, double bound_v, double *ratio) {
    const size_t nk = store_kv_elems_k(&SHAPE), nv = store_kv_elems_v(&SHAPE);
    uint16_t *k = malloc(nk * 2), *v = malloc(nv * 2), *k2 = malloc(nk * 2), *v2 = malloc(nv * 2);
    fill(k, nk, SHAPE.head_dim_k, 1);
    fill(v, nv, SHAPE.head_dim_v, 2);
    store_codec_ctx *c = store_codec_ctx_new();
    store_codec_params p = {.k_bits = kb, .v_bits = vb, .zstd_level = level};
    ryot_buf out = {0};
    ryot_error err;
    assert_int_equal(store_kv_encode(c, &SHAPE, &p, k, v, &out, &err), RYOT_OK);
    assert_int_equal(store_kv_decode(c, &SHAPE, out.data, out.len, k2, v2, &err), RYOT_OK);
    double ek = kb == 6 ? worst_rel_channel(k, k2, nk, SHAPE.head_dim_k, SHAPE.block_size)
                        : worst_rel(k, k2, nk, SHAPE.head_dim_k),
           ev = worst_rel(v, v2, nv, SHAPE.head_dim_v);
    assert_true(ek <= bound_k);
    assert_true(ev <= bound_v);
    if (kb == 16) assert_memory_equal(k, k2, nk * 2);
    if (vb == 16) assert_memory_equal(v, v2, nv * 2);
    *ratio = (double)(nk + nv) * 2 / (double)out.len;

    /* every truncation is refused, never read past */
    for (size_t cut = 0; cut < out.len; cut += out.len / 37 + 1)
        assert_int_equal(store_kv_decode(c, &SHAPE, out.data, cut, k2, v2, &err), RYOT_ERR_FORMAT);
    /* another shape is refused */
    store_kv_shape other = SHAPE;
    other.n_layer = 2;
    assert_int_equal(store_kv_decode(c, &other, out.data, out.len, k2, v2, &err), RYOT_ERR_FORMAT);
    ryot_buf_free(&out);
    store_codec_ctx_free(c);
    free(k), free(v), free(k2), free(v2);
}

static void test_codec_round_trip(void **state) {
    (void)state;
    double r16, r8, r84, r8z0;
    round_trip(16, 16, 0, 0, 0, &r16);
    /* 8 bits: half a step of max/127 (0.0039) + F16 rounding of the scale and value */
    round_trip(8, 8, 1, 0.0050, 0.0050, &r8);
    /* 4 bits: half a step of max/7 (0.071) + rounding */
    round_trip(8, 4, 1, 0.0050, 0.0760, &r84);
    round_trip(8, 8, 0, 0.0050, 0.0050, &r8z0);
    /* 6 bits: half a step of max/31 (0.016) + rounding; 6/4 needs no zstd for 3:1 */
    /* 6-bit K (a scale per channel of each 16-row tile here): half a step of max/31 (0.016) + rounding */
    double r64, r68;
    round_trip(6, 4, 0, 0.0180, 0.0760, &r64);
    round_trip(6, 8, 1, 0.0180, 0.0050, &r68);
    assert_true(r64 > 2.75);     /* 16-row tiles: 256 / (48 + 8 + 32 + 2) = 2.84; 64-row blocks give 3.05 */
    assert_true(r68 > 2.0);
    { /* the server's 64-position blocks: the default codec is over 3:1 before sealing, with no zstd */
        const store_kv_shape b64 = {.n_layer = 2, .n_head_kv = 2, .block_size = 64, .head_dim_k = 64, .head_dim_v = 64};
        const size_t n = store_kv_elems_k(&b64);
        uint16_t *k = malloc(n * 2), *v = malloc(n * 2);
        fill(k, n, 64, 7);
        fill(v, n, 64, 8);
        store_codec_ctx *c = store_codec_ctx_new();
        store_codec_params p = store_codec_default();
        ryot_buf out = {0};
        ryot_error err;
        assert_int_equal(p.zstd_level, 0);
        assert_int_equal(store_kv_encode(c, &b64, &p, k, v, &out, &err), RYOT_OK);
        assert_true((double)n * 4 / (double)(out.len + STORE_SEAL_OVERHEAD) > 3.0);
        ryot_buf_free(&out);
        store_codec_ctx_free(c);
        free(k), free(v);
    }
    assert_true(r16 > 0.99 && r16 <= 1.0);
    assert_true(r8 > 1.85);      /* 8-bit + F16 scale per 64 values: 1.94 before zstd */
    assert_true(r84 > 2.4);      /* 8-bit K + 4-bit V: 2.56 before zstd */
    assert_true(r8 >= r8z0 * 0.99);
}

/* The SIMD quantizers and dequantizers are bit-identical to the scalar
 * reference: the same record bytes, the same decoded values, on KV-like rows
 * and on rows with zeros, infinities, NaNs, tiny and huge values. */
static void test_codec_simd_matches_ref(void **state) {
    (void)state;
    const size_t nk = store_kv_elems_k(&SHAPE), nv = store_kv_elems_v(&SHAPE);
    uint16_t *k = malloc(nk * 2), *v = malloc(nv * 2), *a = malloc((nk + nv) * 2), *b = malloc((nk + nv) * 2);
    fill(k, nk, SHAPE.head_dim_k, 3);
    fill(v, nv, SHAPE.head_dim_v, 4);
    const int dk = SHAPE.head_dim_k;
    for (int j = 0; j < dk; j++) k[j] = 0;                         /* row 0: all zero */
    k[dk + 3] = 0x7c00, k[dk + 9] = 0xfc00, k[dk + 20] = 0x7e00;    /* row 1: +inf, -inf, NaN */
    for (int j = 0; j < dk; j++) k[2 * dk + j] = (uint16_t)(j % 3); /* row 2: subnormals (scale rounds to 0) */
    for (int j = 0; j < dk; j++) k[3 * dk + j] = j % 2 ? 0x7bff : 0xfbff; /* row 3: +-65504 */
    for (int j = 0; j < dk; j++) v[j] = 0xfe00;                      /* V row 0: all NaN */
    store_codec_ctx *c = store_codec_ctx_new();
    ryot_error err;
    static const int bits[][2] = {{8, 8}, {8, 4}, {6, 4}, {6, 8}, {16, 4}};
    for (size_t t = 0; t < sizeof bits / sizeof bits[0]; t++) {
        store_codec_params p = {.k_bits = bits[t][0], .v_bits = bits[t][1], .zstd_level = (int)(t % 2)};
        ryot_buf ref = {0}, simd = {0};
        store_codec_ctx_set_simd(c, false);
        assert_int_equal(store_kv_encode(c, &SHAPE, &p, k, v, &ref, &err), RYOT_OK);
        store_codec_ctx_set_simd(c, true);
        assert_int_equal(store_kv_encode(c, &SHAPE, &p, k, v, &simd, &err), RYOT_OK);
        assert_int_equal(ref.len, simd.len);
        assert_memory_equal(ref.data, simd.data, ref.len);
        store_codec_ctx_set_simd(c, false);
        assert_int_equal(store_kv_decode(c, &SHAPE, ref.data, ref.len, a, a + nk, &err), RYOT_OK);
        store_codec_ctx_set_simd(c, true);
        assert_int_equal(store_kv_decode(c, &SHAPE, ref.data, ref.len, b, b + nk, &err), RYOT_OK);
        assert_memory_equal(a, b, (nk + nv) * 2);
        /* the non-finite values code as 0 / the clamp, never as garbage */
        if (p.k_bits != 16) {
            assert_int_equal(ryot_fp16_to_fp32(a[dk + 20]), 0);
            for (int j = 0; j < dk; j++) assert_int_equal(a[j], 0);
        }
        ryot_buf_free(&ref);
        ryot_buf_free(&simd);
    }
    store_codec_ctx_free(c);
    free(k), free(v), free(a), free(b);
}

static void test_codec_bad_params(void **state) {
    (void)state;
    ryot_error err;
    store_codec_params p = store_codec_default();
    p.k_bits = 4;
    assert_int_equal(store_codec_check(&SHAPE, &p, &err), RYOT_ERR_INVALID);
    p = store_codec_default();
    p.k_bits = 6;
    store_kv_shape not4 = SHAPE;
    not4.head_dim_k = 62;
    assert_int_equal(store_codec_check(&not4, &p, &err), RYOT_ERR_INVALID);
    p = store_codec_default();
    p.v_bits = 5;
    assert_int_equal(store_codec_check(&SHAPE, &p, &err), RYOT_ERR_INVALID);
    store_kv_shape odd = SHAPE;
    odd.head_dim_v = 63;
    p = store_codec_default();
    p.v_bits = 4;
    assert_int_equal(store_codec_check(&odd, &p, &err), RYOT_ERR_INVALID);
    /* the earlier record version (RKV1: no 6-bit codes) is still read; a
     * 6-bit record claiming it is refused */
    {
        const size_t nk = store_kv_elems_k(&SHAPE), nv = store_kv_elems_v(&SHAPE);
        uint16_t *kk = malloc(nk * 2), *vv = malloc(nv * 2), *k2 = malloc(nk * 2), *v2 = malloc(nv * 2);
        fill(kk, nk, SHAPE.head_dim_k, 5);
        fill(vv, nv, SHAPE.head_dim_v, 6);
        store_codec_ctx *c = store_codec_ctx_new();
        for (int kb = 8; kb >= 6; kb -= 2) {
            store_codec_params q = {.k_bits = kb, .v_bits = 4, .zstd_level = 1};
            ryot_buf rec = {0};
            assert_int_equal(store_kv_encode(c, &SHAPE, &q, kk, vv, &rec, &err), RYOT_OK);
            assert_memory_equal(rec.data, "RKV2", 4);
            rec.data[3] = '1';
            assert_int_equal(store_kv_decode(c, &SHAPE, rec.data, rec.len, k2, v2, &err),
                             kb == 8 ? RYOT_OK : RYOT_ERR_FORMAT);
            ryot_buf_free(&rec);
        }
        store_codec_ctx_free(c);
        free(kk), free(vv), free(k2), free(v2);
    }
    /* a garbage record */
    uint8_t junk[64] = "RKV1";
    uint16_t k[8], v[8];
    store_codec_ctx *c = store_codec_ctx_new();
    assert_int_equal(store_kv_decode(c, &SHAPE, junk, sizeof junk, k, v, &err), RYOT_ERR_FORMAT);
    store_codec_ctx_free(c);
}

static void test_seal(void **state) {
    (void)state;
    uint8_t key[STORE_KEY_BYTES], key2[STORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    randombytes_buf(key2, sizeof key2);
    const char *msg = "the KV of a long system prompt";
    const char ad[] = "record-key-1", ad2[] = "record-key-2";
    for (int mode = 0; mode < 2; mode++) {
        const uint8_t *k = mode ? key : NULL;
        ryot_buf rec = {0}, out = {0};
        ryot_error err;
        assert_int_equal(store_seal(k, ad, sizeof ad, msg, strlen(msg), &rec, &err), RYOT_OK);
        if (mode) assert_null(memmem(rec.data, rec.len, "system prompt", 13)); /* encrypted */
        assert_int_equal(store_unseal(k, ad, sizeof ad, rec.data, rec.len, &out, NULL, &err), RYOT_OK);
        assert_int_equal(out.len, strlen(msg));
        assert_memory_equal(out.data, msg, out.len);
        /* every single flipped bit is detected */
        for (size_t i = 0; i < rec.len; i++) {
            rec.data[i] ^= 0x10;
            assert_int_equal(store_unseal(k, ad, sizeof ad, rec.data, rec.len, &out, NULL, &err), RYOT_ERR_FORMAT);
            rec.data[i] ^= 0x10;
        }
        for (size_t cut = 0; cut < rec.len; cut++)
            assert_int_equal(store_unseal(k, ad, sizeof ad, rec.data, cut, &out, NULL, &err), RYOT_ERR_FORMAT);
        /* moved under another record key */
        assert_int_equal(store_unseal(k, ad2, sizeof ad2, rec.data, rec.len, &out, NULL, &err), RYOT_ERR_FORMAT);
        /* wrong key, or the other mode */
        assert_int_equal(store_unseal(mode ? key2 : key, ad, sizeof ad, rec.data, rec.len, &out, NULL, &err),
                         RYOT_ERR_FORMAT);
        if (mode) assert_int_equal(store_unseal(NULL, ad, sizeof ad, rec.data, rec.len, &out, NULL, &err), RYOT_ERR_FORMAT);
        ryot_buf_free(&rec);
        ryot_buf_free(&out);
    }
}

/* ------------------------------------------------------------ the store */

static char *tmpdir(void) {
    char *d = strdup("/tmp/ryot-test-store-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rmdir_all(const char *d) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static store *open_store(const char *dir, const uint8_t *key, double gb) {
    store_params p = {.dir = dir, .gb = gb, .key = key, .plaintext = key == NULL, .codec = store_codec_default(),
                      .shape = SHAPE};
    store *s;
    ryot_error err;
    ryot_status st = store_open(&p, &s, &err);
    if (st) fail_msg("%s", err.msg);
    return s;
}

static void test_store_requires_key(void **state) {
    (void)state;
    char *d = tmpdir();
    store_params p = {.dir = d, .codec = store_codec_default(), .shape = SHAPE};
    store *s;
    ryot_error err;
    assert_int_equal(store_open(&p, &s, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "--store-plaintext"));
    /* a read-only directory: a clear error at open */
    if (geteuid() != 0) {
        char *ro = tmpdir();
        assert_int_equal(chmod(ro, 0500), 0);
        p.dir = ro;
        p.plaintext = true;
        assert_int_not_equal(store_open(&p, &s, &err), RYOT_OK);
        assert_non_null(strstr(err.msg, "read-only"));
        chmod(ro, 0700);
        rmdir_all(ro);
        free(ro);
    }
    rmdir_all(d);
    free(d);
}

static void test_store_put_get(void **state) {
    (void)state;
    char *d = tmpdir();
    uint8_t key[STORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    const size_t nk = store_kv_elems_k(&SHAPE), nv = store_kv_elems_v(&SHAPE);
    uint16_t *k = malloc(nk * 2), *v = malloc(nv * 2), *k2 = malloc(nk * 2), *v2 = malloc(nv * 2);
    int32_t toks[4 * 16];
    for (int i = 0; i < 64; i++) toks[i] = 100 + i;
    uint8_t mid[STORE_MODEL_ID_BYTES] = {1, 2, 3};
    store_rkey keys[4];
    store_chain(mid, toks, 4, 16, keys);
    /* the chain is a prefix chain: changing block 2 changes keys 2 and 3 only */
    store_rkey keys_b[4];
    toks[2 * 16 + 5]++;
    store_chain(mid, toks, 4, 16, keys_b);
    toks[2 * 16 + 5]--;
    assert_memory_equal(keys[1].b, keys_b[1].b, STORE_RKEY_BYTES);
    assert_memory_not_equal(keys[2].b, keys_b[2].b, STORE_RKEY_BYTES);
    assert_memory_not_equal(keys[3].b, keys_b[3].b, STORE_RKEY_BYTES);

    store *s = open_store(d, key, 0.0625);
    ryot_error err;
    for (int i = 0; i < 3; i++) {
        fill(k, nk, SHAPE.head_dim_k, 10 + (uint64_t)i);
        fill(v, nv, SHAPE.head_dim_v, 20 + (uint64_t)i);
        assert_true(store_put_block(s, &keys[i], k, v));
    }
    assert_true(store_put_block(s, &keys[0], k, v)); /* a duplicate: skipped by the writer */
    store_flush(s);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.writes, 3);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.records, 3);
    assert_true(st.raw_bytes_written > 2 * st.bytes_written);
    store_close(s);

    /* after a reopen (a restart) */
    s = open_store(d, key, 0.0625);
    fill(k, nk, SHAPE.head_dim_k, 12);
    fill(v, nv, SHAPE.head_dim_v, 22);
    assert_int_equal(store_get_block(s, &keys[2], k2, v2, &err), RYOT_OK);
    assert_true(worst_rel_channel(k, k2, nk, SHAPE.head_dim_k, SHAPE.block_size) < 0.018); /* default: 6-bit K */
    assert_true(worst_rel(v, v2, nv, SHAPE.head_dim_v) < 0.076); /*                    4-bit V */
    assert_int_equal(store_get_block(s, &keys[3], k2, v2, &err), RYOT_ERR_NOT_FOUND);
    assert_true(store_has(s, &keys[0]));
    assert_false(store_has(s, &keys[3]));
    store_close(s);

    /* store_get_blocks: the same values as store_get_block, in parallel or on
     * the caller alone; the leading run of hits (keys[3] is a miss) */
    for (int threads = 1; threads <= 3; threads++) {
        store_params p = {.dir = d, .gb = 0.0625, .key = key, .codec = store_codec_default(), .shape = SHAPE,
                          .read_threads = threads};
        assert_int_equal(store_open(&p, &s, &err), RYOT_OK);
        uint16_t *buf = malloc(4 * (nk + nv) * 2), *kp[4], *vp[4];
        for (int i = 0; i < 4; i++) kp[i] = buf + (size_t)i * (nk + nv), vp[i] = kp[i] + nk;
        assert_int_equal(store_get_blocks(s, keys, 4, kp, vp), 3);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(store_get_block(s, &keys[i], k2, v2, &err), RYOT_OK);
            assert_memory_equal(kp[i], k2, nk * 2);
            assert_memory_equal(vp[i], v2, nv * 2);
        }
        store_rkey gap[3] = {keys[0], keys[3], keys[1]};
        assert_int_equal(store_get_blocks(s, gap, 3, kp, vp), 1);
        assert_int_equal(store_get_blocks(s, keys, 0, kp, vp), 0);
        store_get_stats(s, &st);
        assert_int_equal(st.hits, 3 + 3 + 2);
        assert_int_equal(st.misses, 1 + 1);
        free(buf);
        store_close(s);
    }

    /* the wrong key: a counted miss, never loaded */
    uint8_t other[STORE_KEY_BYTES];
    randombytes_buf(other, sizeof other);
    s = open_store(d, other, 0.0625);
    assert_int_equal(store_get_block(s, &keys[2], k2, v2, &err), RYOT_ERR_FORMAT);
    store_get_stats(s, &st);
    assert_int_equal(st.auth_failures, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 0);
    store_close(s);

    /* tamper one byte of record 1 in place, through LMDB */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, d, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "kv", 0, &dbi), 0);
    MDB_val mk = {.mv_size = STORE_RKEY_BYTES, .mv_data = keys[1].b}, mv;
    assert_int_equal(mdb_get(txn, dbi, &mk, &mv), 0);
    uint8_t *copy = malloc(mv.mv_size);
    memcpy(copy, mv.mv_data, mv.mv_size);
    copy[mv.mv_size / 2] ^= 1;
    MDB_val nv2 = {.mv_size = mv.mv_size, .mv_data = copy};
    assert_int_equal(mdb_put(txn, dbi, &mk, &nv2, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);

    s = open_store(d, key, 0.0625);
    assert_int_equal(store_get_block(s, &keys[1], k2, v2, &err), RYOT_ERR_FORMAT);
    assert_int_equal(store_get_block(s, &keys[0], k2, v2, &err), RYOT_OK);
    store_get_stats(s, &st);
    assert_int_equal(st.auth_failures, 1);
    assert_int_equal(st.hits, 1);
    store_verify_report r;
    assert_int_equal(store_verify(s, &r, &err), RYOT_OK);
    assert_int_equal(r.records, 3);
    assert_int_equal(r.ok, 2);
    assert_int_equal(r.bad, 1);
    uint64_t deleted;
    assert_int_equal(store_gc(s, 0.99, &deleted, &err), RYOT_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(store_verify(s, &r, &err), RYOT_OK);
    assert_int_equal(r.records, 2);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.lru_missing, 0);
    assert_true(store_has(s, &keys[2]));
    assert_int_equal(store_get_block(s, &keys[2], k2, v2, &err), RYOT_OK);

    /* sessions */
    assert_int_equal(store_session_put(s, "conv-1", mid, toks, 40, &err), RYOT_OK);
    int32_t *t2;
    int n2;
    uint8_t mid2[STORE_MODEL_ID_BYTES];
    assert_int_equal(store_session_get(s, "conv-1", mid2, &t2, &n2, &err), RYOT_OK);
    assert_int_equal(n2, 40);
    assert_memory_equal(t2, toks, 40 * 4);
    assert_memory_equal(mid2, mid, sizeof mid);
    free(t2);
    assert_int_equal(store_session_get(s, "nope", mid2, &t2, &n2, &err), RYOT_ERR_NOT_FOUND);
    assert_int_equal(store_session_get(s, "bad/id", mid2, &t2, &n2, &err), RYOT_ERR_INVALID);
    store_session_info *si;
    int n_si;
    assert_int_equal(store_session_list(s, mid, 16, &si, &n_si, &err), RYOT_OK);
    assert_int_equal(n_si, 1);
    assert_string_equal(si[0].id, "conv-1");
    assert_int_equal(si[0].n_tokens, 40);
    assert_int_equal(si[0].n_blocks, 1); /* block 0 is there, block 1 was deleted by gc */
    assert_true(si[0].bytes > 0 && si[0].same_model);
    free(si);
    store_close(s);

    /* rekey: every record reopens under the new key and not the old */
    uint64_t done;
    if (store_rekey(d, key, other, &done, &err)) fail_msg("%s", err.msg);
    assert_int_equal(done, 3); /* 2 blocks + 1 session */
    assert_int_equal(store_rekey(d, key, other, &done, &err), RYOT_OK);
    assert_int_equal(done, 0); /* a second run has nothing left */
    s = open_store(d, other, 0.0625);
    assert_int_equal(store_get_block(s, &keys[0], k2, v2, &err), RYOT_OK);
    assert_int_equal(store_session_get(s, "conv-1", mid2, &t2, &n2, &err), RYOT_OK);
    free(t2);
    assert_int_equal(store_verify(s, &r, &err), RYOT_OK);
    assert_int_equal(store_get_block(s, &keys[2], k2, v2, &err), RYOT_OK);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.sessions_bad, 0);
    store_close(s);
    s = open_store(d, key, 0.0625);
    assert_int_equal(store_get_block(s, &keys[0], k2, v2, &err), RYOT_ERR_FORMAT);
    store_close(s);

    rmdir_all(d);
    free(d);
    free(k), free(v), free(k2), free(v2);
}

static void test_store_eviction(void **state) {
    (void)state;
    char *d = tmpdir();
    const size_t nk = store_kv_elems_k(&SHAPE), nv = store_kv_elems_v(&SHAPE);
    uint16_t *k = malloc(nk * 2), *v = malloc(nv * 2), *k2 = malloc(nk * 2), *v2 = malloc(nv * 2);
    fill(k, nk, SHAPE.head_dim_k, 5);
    fill(v, nv, SHAPE.head_dim_v, 6);
    /* 2 MiB budget, ~12 KiB records: about 130 fit under the high water mark */
    store *s = open_store(d, NULL, 2.0 / 1024);
    uint8_t mid[STORE_MODEL_ID_BYTES] = {9};
    enum { N = 400 };
    store_rkey *keys = malloc(N * sizeof *keys);
    int32_t toks[16];
    ryot_error err;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 16; j++) toks[j] = i * 16 + j;
        store_chain(mid, toks, 1, 16, &keys[i]);
        assert_true(store_put_block(s, &keys[i], k, v));
        store_flush(s);
        if (i == 20) { /* keep record 0 recently used */
            assert_int_equal(store_get_block(s, &keys[0], k2, v2, &err), RYOT_OK);
            store_flush(s);
        }
        if (i > 20 && i % 10 == 0) {
            assert_int_equal(store_get_block(s, &keys[0], k2, v2, &err), RYOT_OK);
            store_flush(s);
        }
    }
    store_stats st;
    store_get_stats(s, &st);
    assert_true(st.evictions > 0);
    assert_int_equal(st.write_failures, 0);
    assert_true(st.used_bytes <= (uint64_t)(STORE_HIGH_WATER * (double)st.budget_bytes));
    /* the recently used record survived, the oldest untouched ones did not */
    assert_true(store_has(s, &keys[0]));
    assert_false(store_has(s, &keys[1]));
    assert_true(store_has(s, &keys[N - 1]));
    store_close(s);
    rmdir_all(d);
    free(d);
    free(keys);
    free(k), free(v), free(k2), free(v2);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_round_trip), cmocka_unit_test(test_codec_bad_params),
        cmocka_unit_test(test_codec_simd_matches_ref), cmocka_unit_test(test_seal),
        cmocka_unit_test(test_store_requires_key), cmocka_unit_test(test_store_put_get),
        cmocka_unit_test(test_store_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
