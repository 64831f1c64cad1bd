/* Persistent context store: KV blocks of prompt prefixes in LMDB, quantized
 * and zstd-compressed (codec.h), sealed per record with XChaCha20-Poly1305
 * (or an integrity tag with --store-plaintext), so that a restarted server
 * or one whose RAM prefix cache evicted a prefix loads its blocks instead of
 * prefilling them again.
 *
 * Record keys (STORE_RKEY_BYTES): the model id (16 bytes: BLAKE2b of the
 * model file's identity and the KV shape) then a 16-byte BLAKE2b chain over
 * the prefix, chain(i) = H(chain(i-1), tokens of block i), chain(-1) = the
 * model id: like the RAM prefix index's hash chain, but cryptographic, so
 * that a key names one exact token prefix of one model and needs no token
 * comparison.  The record key is the sealed record's associated data.
 *
 * LMDB databases in DIR (one environment, map size = the --store-gb budget):
 *   kv    rkey -> sealed encoded KV block
 *   lru   rkey -> u64 last-access stamp (ns since the epoch), u32 record bytes
 *   age   u64 big-endian stamp + rkey -> "" (the LRU order, oldest first)
 *   sess  session id -> sealed session (model id, token count, tokens)
 * When the kv pages pass STORE_HIGH_WATER of the budget, the writer deletes
 * the least recently used records down to STORE_LOW_WATER.
 *
 * Threads: store_put_block (the engine thread) copies the block into a
 * bounded queue and returns at once (a full queue drops the write, counted);
 * one writer thread encodes, seals and commits in batches (one LMDB write
 * transaction per batch, synced: a committed record survives kill -9 and
 * power loss, an uncommitted one is simply absent).  store_get_block runs
 * on the caller's thread (an LMDB read transaction, then decode);
 * store_get_blocks shares the blocks between the caller and reader helper
 * threads; the last-access updates go through the queue.  Everything else is safe from
 * any thread. */
#ifndef RYOT_STORE_STORE_H
#define RYOT_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "ryot.h"
#include "store/codec.h"

#define STORE_MODEL_ID_BYTES 16
#define STORE_RKEY_BYTES 32
#define STORE_SESSION_ID_MAX 128
#define STORE_HIGH_WATER 0.80
#define STORE_LOW_WATER 0.65

typedef struct store store;

typedef struct store_rkey {
    uint8_t b[STORE_RKEY_BYTES];
} store_rkey;

typedef struct store_params {
    const char *dir;
    double gb;                    /* size budget (LMDB map size), GiB (default 4; without a shape
                                   * the environment's own) */
    const uint8_t *key;           /* STORE_KEY_BYTES, or NULL with plaintext */
    bool plaintext;               /* required when key is NULL */
    store_codec_params codec;
    store_kv_shape shape;         /* blocks put and got (all zero: admin use only) */
    size_t queue_bytes;           /* writer queue bound (default 256 MiB) */
    bool read_only;               /* admin: verify/stats without writing */
    int read_threads;             /* threads decoding one store_get_blocks call, the caller
                                   * included (0: online CPUs, at most 4; 1: the caller only) */
} store_params;

typedef struct store_stats {
    uint64_t hits, misses;        /* store_get_block */
    uint64_t auth_failures;       /* records that failed to open or decode (counted as misses too) */
    uint64_t writes;              /* blocks committed */
    uint64_t write_failures;      /* commits that failed (full disk, map full after eviction, ...) */
    uint64_t dropped;             /* puts refused: queue full */
    uint64_t duplicates;          /* puts skipped: already stored */
    uint64_t evictions;           /* records deleted for the budget */
    uint64_t bytes_written;       /* sealed bytes committed */
    uint64_t raw_bytes_written;   /* F16 bytes those records hold */
    uint64_t bytes_read;          /* sealed bytes of hits */
    uint64_t queue_bytes;         /* now in the queue */
    uint64_t records;             /* now in the store */
    uint64_t used_bytes;          /* pages of the kv database */
    uint64_t budget_bytes;        /* map size */
} store_stats;

/* Opens (creating) the store at p->dir.  Errors name the directory and the
 * cause: missing key without plaintext, unreadable or read-only directory,
 * full disk (a probe commit at open), a map smaller than the data. */
ryot_status store_open(const store_params *p, store **out, ryot_error *err);
/* Writes what is queued, stops the writer, closes. */
void store_close(store *s);

/* The KV block shape of a model with blocks of block_size positions. */
void store_shape_of(const ryot_model *m, int block_size, store_kv_shape *sh);
/* The model id for a model and KV shape. */
void store_model_id(const ryot_model *m, const store_kv_shape *sh, uint8_t id[STORE_MODEL_ID_BYTES]);
/* keys[i] for blocks 0..n_blocks-1 of tokens (n_blocks * bs tokens). */
void store_chain(const uint8_t model_id[STORE_MODEL_ID_BYTES], const int32_t *tokens, int n_blocks, int bs,
                 store_rkey *keys);

/* Queues one block (k, v: the store's shape) for writing; false when the
 * queue is full (dropped, counted) or the store is closing. */
bool store_put_block(store *s, const store_rkey *key, const uint16_t *k, const uint16_t *v);
/* Whether a record exists (no decode). */
bool store_has(store *s, const store_rkey *key);
/* Loads one block: RYOT_OK, RYOT_ERR_NOT_FOUND (miss), RYOT_ERR_FORMAT (the
 * record failed authentication or decoding: counted, a miss; nothing
 * trustworthy was written to k/v... the caller must not use them). */
ryot_status store_get_block(store *s, const store_rkey *key, uint16_t *k, uint16_t *v, ryot_error *err);
/* Loads blocks 0..n-1 (keys[i] into k[i], v[i]) on the caller's thread and
 * the store's reader helpers (params.read_threads), in parallel; returns how
 * many leading blocks loaded (a miss or a bad record ends the run: blocks
 * after it may have been written too, and must not be used).  Counts each
 * block as store_get_block does. */
int store_get_blocks(store *s, const store_rkey *keys, int n, uint16_t *const *k, uint16_t *const *v);
/* Waits until everything queued so far is committed (or failed). */
void store_flush(store *s);

void store_get_stats(store *s, store_stats *out);

/* Sessions: a conversation's tokens under an id (1..STORE_SESSION_ID_MAX
 * bytes of [A-Za-z0-9._-]); its KV is the block records of that prefix. */
bool store_session_id_ok(const char *id);
ryot_status store_session_put(store *s, const char *id, const uint8_t model_id[STORE_MODEL_ID_BYTES],
                              const int32_t *tokens, int n, ryot_error *err);
/* *tokens is malloc'd (caller frees).  RYOT_ERR_NOT_FOUND, or RYOT_ERR_FORMAT
 * when the record fails to open. */
ryot_status store_session_get(store *s, const char *id, uint8_t model_id[STORE_MODEL_ID_BYTES], int32_t **tokens,
                              int *n, ryot_error *err);
typedef struct store_session_info {
    char id[STORE_SESSION_ID_MAX + 1];
    int n_tokens;
    int n_blocks;        /* full blocks of its prefix present in the store */
    uint64_t bytes;      /* their sealed bytes */
    bool same_model;     /* saved for the model id passed to store_session_list */
} store_session_info;
/* All sessions (malloc'd array, caller frees); block counts for block size bs. */
ryot_status store_session_list(store *s, const uint8_t model_id[STORE_MODEL_ID_BYTES], int bs,
                               store_session_info **out, int *n, ryot_error *err);

/* Admin (ryot store ...). */
typedef struct store_verify_report {
    uint64_t records, ok, bad, sessions, sessions_bad, lru_missing;
    uint64_t bytes, raw_bytes;
} store_verify_report;
/* Opens and decodes every record (and session) with the store's key. */
ryot_status store_verify(store *s, store_verify_report *r, ryot_error *err);
/* Deletes records that fail verify and evicts down to the low water mark
 * (frac_target of the budget; <= 0: STORE_LOW_WATER).  *deleted gets the count. */
ryot_status store_gc(store *s, double frac_target, uint64_t *deleted, ryot_error *err);
/* Reseals every record sealed under old_key (NULL: plaintext) with new_key
 * (NULL: plaintext), in batches of committed transactions: a crash leaves
 * every record whole under one key or the other, and running it again
 * finishes the job.  *done: records rewritten. */
ryot_status store_rekey(const char *dir, const uint8_t *old_key, const uint8_t *new_key, uint64_t *done,
                        ryot_error *err);

/* Reads a 32-byte key file (exactly STORE_KEY_BYTES bytes, not readable by
 * others is not enforced but warned by the CLI). */
ryot_status store_key_load(const char *path, uint8_t key[STORE_KEY_BYTES], ryot_error *err);

#endif
