/* Causal attention of one head over an F16 KV cache, flash style: keys and
 * values are streamed in tiles of ATTN_TILE_KV positions with an online
 * softmax, so no n x n score matrix exists.  Tiles are aligned to multiples
 * of ATTN_TILE_KV from position 0, so a query computes the same sequence of
 * operations whether it arrives alone (decode) or inside a prompt batch. */
#ifndef RYOT_BACKEND_CPU_ATTENTION_H
#define RYOT_BACKEND_CPU_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/ops.h"
#include "kernels/kernels.h"

#define ATTN_TILE_KV 64 /* key/value positions per tile */
#define ATTN_MAX_ROWS 32 /* query rows (positions x heads of a group) per work unit */

typedef struct attn_desc {
    int head_dim;   /* q and k */
    int head_dim_v; /* v and out */
    float scale;    /* multiplies q.k */
    int window;     /* 0: full causal; else query at p sees keys p-window+1..p */
    const kernel_ops *ops; /* NULL: the plain C ops */
} attn_desc;

/* Keys and values of one (layer, KV head) in a paged cache: position p's key
 * row (head_dim F16) is at k + blocks[p / block_size] * k_block_stride +
 * (p % block_size) * head_dim, values likewise.  Tiles are min(ATTN_TILE_KV,
 * block_size) positions (block_size a power of two >= 16), aligned from
 * position 0, so they never straddle a block.  attn_kv_contig describes
 * contiguous rows (one "block" holding every position). */
typedef struct attn_kv {
    const uint16_t *k, *v;
    const int32_t *blocks;
    size_t k_block_stride, v_block_stride; /* F16 elements between consecutive block ids */
    int block_size;
} attn_kv;

attn_kv attn_kv_contig(const uint16_t *k, const uint16_t *v);

/* Floats of scratch attn_flash needs for up to ATTN_MAX_ROWS query rows. */
size_t attn_scratch_floats(const attn_desc *d);

/* Positions per work unit for query heads sharing one KV head. */
static inline int attn_tile_q(int group) { return group >= ATTN_MAX_ROWS ? 1 : ATTN_MAX_ROWS / group; }

/* n_q positions pos0..pos0+n_q-1 of `group` query heads that share one KV
 * head (GQA): query (i, g) at q + i*q_stride + g*head_dim floats, output
 * (i, g) at out + i*o_stride + g*head_dim_v; n_q*group <= ATTN_MAX_ROWS.
 * Keys/values of positions 0..pos0+n_q-1: k rows of head_dim F16, v rows of
 * head_dim_v F16, contiguous.  Each K/V tile is loaded once for the group. */
void attn_flash(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0,
                const uint16_t *k, const uint16_t *v, float *out, size_t o_stride, float *scratch);

/* The same over a paged cache. */
void attn_flash_kv(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0, const attn_kv *kv,
                   float *out, size_t o_stride, float *scratch);
void attn_partial_kv(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0, int ka, int kb,
                     const attn_kv *kv, float *part, float *scratch);

/* Split-KV form (decode over long contexts): attn_partial runs the same
 * rows over the keys in [ka, kb) only (ka a multiple of ATTN_TILE_KV) and
 * leaves their unnormalized state in part (attn_part_floats: m, l, acc);
 * attn_merge combines n_parts such states (part_stride floats apart) into
 * the normalized output. */
size_t attn_part_floats(const attn_desc *d);
void attn_partial(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0, int ka, int kb,
                  const uint16_t *k, const uint16_t *v, float *part, float *scratch);
void attn_merge(const attn_desc *d, int n_q, int group, const float *parts, size_t part_stride, int n_parts,
                float *out, size_t o_stride);

/* Reference: full softmax over each query's visible keys in double, with Q
 * rounded to F16 as attn_flash does (tests). */
void attn_naive(const attn_desc *d, const float *q, size_t q_stride, int n_q, int pos0, const uint16_t *k,
                const uint16_t *v, float *out, size_t o_stride);

#endif
