/* Persistent context store: LMDB environment, writer thread, LRU budget,
 * sessions and admin (see store.h). */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/key.h"
#include "engine/api_internal.h"

#define BATCH_MAX 64          /* ops per write transaction */
#define READERS_MAX 4         /* threads decoding one store_get_blocks call, the caller included */
#define SESS_MAGIC "RSS1"

enum { OP_PUT, OP_TOUCH };

typedef struct store_op {
    struct store_op *next;
    int kind;
    store_rkey key;
    size_t bytes;     /* counted against the queue bound */
    uint16_t *k, *v;  /* OP_PUT: the block (store's shape) */
} store_op;

/* A few helper threads that join the caller on one job at a time: the
 * caller runs fn(arg, n) and each helper h fn(arg, h), then the caller
 * waits for the helpers (the job splits its work through an atomic index). */
#define GANG_MAX (READERS_MAX - 1)
typedef struct gang {
    int n;
    pthread_t t[GANG_MAX];
    pthread_mutex_t mu;
    pthread_cond_t cv, done;
    void (*fn)(void *arg, int worker);
    void *arg;
    uint64_t gen;
    int active;
    bool stop;
} gang;

typedef struct gang_start {
    gang *g;
    int h;
} gang_start;

static void *gang_main(void *p) {
    gang *g = ((gang_start *)p)->g;
    const int h = ((gang_start *)p)->h;
    free(p);
    uint64_t seen = 0;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->stop && g->gen == seen) pthread_cond_wait(&g->cv, &g->mu);
        if (g->stop) break;
        seen = g->gen;
        void (*fn)(void *, int) = g->fn;
        void *arg = g->arg;
        pthread_mutex_unlock(&g->mu);
        fn(arg, h);
        pthread_mutex_lock(&g->mu);
        if (--g->active == 0) pthread_cond_signal(&g->done);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void gang_init(gang *g) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    pthread_cond_init(&g->done, NULL);
}

/* Starts up to n helpers (fewer when a thread cannot start). */
static void gang_start_n(gang *g, int n) {
    for (int h = 0; h < n && h < GANG_MAX; h++) {
        gang_start *a = malloc(sizeof *a);
        if (!a) break;
        a->g = g, a->h = h;
        if (pthread_create(&g->t[h], NULL, gang_main, a) != 0) {
            free(a);
            break;
        }
        g->n++;
    }
}

/* Runs fn on the caller (worker g->n) and every helper; one caller at a time. */
static void gang_run(gang *g, void (*fn)(void *, int), void *arg) {
    if (g->n) {
        pthread_mutex_lock(&g->mu);
        g->fn = fn, g->arg = arg;
        g->gen++;
        g->active = g->n;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
    }
    fn(arg, g->n);
    if (g->n) {
        pthread_mutex_lock(&g->mu);
        while (g->active > 0) pthread_cond_wait(&g->done, &g->mu);
        pthread_mutex_unlock(&g->mu);
    }
}

static void gang_stop(gang *g) {
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    for (int h = 0; h < g->n; h++) pthread_join(g->t[h], NULL);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    pthread_cond_destroy(&g->done);
}

struct store {
    store_params p;
    uint8_t key[STORE_KEY_BYTES];
    bool has_key;
    MDB_env *env;
    MDB_dbi kv, lru, age, sess;
    size_t nk, nv;    /* elements of a block's K and V */

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* writer wakes */
    pthread_cond_t idle;    /* flush waits */
    store_op *head, *tail;
    size_t q_bytes;
    uint64_t enq, done;     /* ops queued / finished (flush) */
    bool stop, thread_started;
    pthread_t thread;

    pthread_mutex_t st_mu;
    store_stats st;         /* under st_mu */

    store_codec_ctx *wctx;  /* writer thread */
    pthread_mutex_t rd_mu;  /* readers share one decode context */
    store_codec_ctx *rctx;
    ryot_buf rbuf;          /* under rd_mu */

    /* store_get_blocks' helpers (each with its own decode context and
     * buffer) and the writer's encode helpers (each with its own context) */
    gang rg, wg;
    store_codec_ctx *hctx[GANG_MAX], *wctx_h[GANG_MAX];
    ryot_buf hbuf[GANG_MAX];
};

typedef struct read_job {
    store *s;
    const store_rkey *keys;
    uint16_t *const *k, *const *v;
    int n;
    atomic_int next;        /* the next block to take */
    ryot_status *st;        /* per block */
} read_job;

static void count(store *s, uint64_t *field, uint64_t n) {
    pthread_mutex_lock(&s->st_mu);
    *field += n;
    pthread_mutex_unlock(&s->st_mu);
}

static uint64_t now_stamp(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void be64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i)); }

static ryot_status lmdb_fail(ryot_error *err, int rc, const char *what, const char *dir) {
    const ryot_status code = rc == EACCES || rc == EROFS || rc == ENOSPC || rc == MDB_MAP_FULL ? RYOT_ERR_IO
                             : rc == ENOENT                                                  ? RYOT_ERR_NOT_FOUND
                                                                                             : RYOT_ERR_IO;
    const char *why = rc == EROFS || rc == EACCES ? "the directory is read-only or not accessible"
                      : rc == ENOSPC              ? "no space left on the device"
                                                  : mdb_strerror(rc);
    return ryot_fail(err, code, "store %s: %s: %s", dir, what, why);
}

/* ------------------------------------------------------------ keys */

void store_shape_of(const ryot_model *m, int block_size, store_kv_shape *sh) {
    const model_hparams *hp = &ryot_model_internal(m)->hp;
    *sh = (store_kv_shape){.n_layer = hp->n_layer,
                           .n_head_kv = hp->n_head_kv,
                           .block_size = block_size,
                           .head_dim_k = hp->head_dim,
                           .head_dim_v = hp->head_dim_v};
}

void store_model_id(const ryot_model *m, const store_kv_shape *sh, uint8_t id[STORE_MODEL_ID_BYTES]) {
    uint64_t size, data_offset;
    const unsigned char *p = ryot_model_file_bytes(m, &size, &data_offset);
    cache_key_builder kb;
    cache_key k;
    cache_key_begin(&kb, "store-model");
    cache_key_i64(&kb, 2, (int64_t)size);
    cache_key_bytes(&kb, 3, p, (size_t)data_offset);
    const uint64_t stride = (uint64_t)16 << 20, sample = 4096;
    for (uint64_t at = data_offset; at < size; at += stride)
        cache_key_bytes(&kb, 4, p + at, (size_t)(size - at < sample ? size - at : sample));
    cache_key_i64(&kb, 5, sh->n_layer);
    cache_key_i64(&kb, 6, sh->n_head_kv);
    cache_key_i64(&kb, 7, sh->block_size);
    cache_key_i64(&kb, 8, sh->head_dim_k);
    cache_key_i64(&kb, 9, sh->head_dim_v);
    cache_key_end(&kb, &k);
    memcpy(id, k.b, STORE_MODEL_ID_BYTES);
}

void store_chain(const uint8_t model_id[STORE_MODEL_ID_BYTES], const int32_t *tokens, int n_blocks, int bs,
                 store_rkey *keys) {
    uint8_t prev[16];
    memcpy(prev, model_id, 16);
    for (int i = 0; i < n_blocks; i++) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, 16);
        crypto_generichash_update(&st, prev, 16);
        uint8_t le[4 * 64];
        const int32_t *t = tokens + (size_t)i * (size_t)bs;
        for (int j = 0; j < bs;) { /* tokens as little-endian u32, 64 at a time */
            int n = bs - j < 64 ? bs - j : 64;
            for (int q = 0; q < n; q++) {
                uint32_t v = (uint32_t)t[j + q];
                le[4 * q] = (uint8_t)v, le[4 * q + 1] = (uint8_t)(v >> 8), le[4 * q + 2] = (uint8_t)(v >> 16),
                le[4 * q + 3] = (uint8_t)(v >> 24);
            }
            crypto_generichash_update(&st, le, (size_t)n * 4);
            j += n;
        }
        crypto_generichash_final(&st, prev, 16);
        memcpy(keys[i].b, model_id, 16);
        memcpy(keys[i].b + 16, prev, 16);
    }
}

ryot_status store_key_load(const char *path, uint8_t key[STORE_KEY_BYTES], ryot_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return ryot_fail(err, RYOT_ERR_IO, "--store-key-file %s: %s", path, strerror(errno));
    uint8_t buf[STORE_KEY_BYTES + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n != STORE_KEY_BYTES)
        return ryot_fail(err, RYOT_ERR_FORMAT, "--store-key-file %s: expected exactly %d bytes (ryot store keygen)",
                         path, STORE_KEY_BYTES);
    memcpy(key, buf, STORE_KEY_BYTES);
    sodium_memzero(buf, sizeof buf);
    return RYOT_OK;
}

/* ------------------------------------------------------------ environment */

static ryot_status env_open(const char *dir, double gb, bool read_only, MDB_env **out, MDB_dbi dbi[4],
                            ryot_error *err) {
    *out = NULL;
    struct stat sb;
    if (!read_only && stat(dir, &sb) != 0 && errno == ENOENT && mkdir(dir, 0700) != 0)
        return ryot_fail(err, RYOT_ERR_IO, "store %s: cannot create the directory: %s", dir, strerror(errno));
    if (stat(dir, &sb) != 0) return ryot_fail(err, RYOT_ERR_IO, "store %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return ryot_fail(err, RYOT_ERR_INVALID, "store %s: not a directory", dir);
    if (!read_only && access(dir, W_OK) != 0)
        return ryot_fail(err, RYOT_ERR_IO, "store %s: the directory is read-only or not writable", dir);
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc) return lmdb_fail(err, rc, "mdb_env_create", dir);
    mdb_env_set_maxdbs(env, 8);
    if (gb > 0) mdb_env_set_mapsize(env, (size_t)(gb * (double)(1ull << 30))); /* 0: the environment's own */
    rc = mdb_env_open(env, dir, MDB_NOTLS | (read_only ? MDB_RDONLY : 0), 0600);
    if (rc) {
        mdb_env_close(env);
        return lmdb_fail(err, rc, "opening the LMDB environment", dir);
    }
    MDB_txn *txn = NULL;
    rc = mdb_txn_begin(env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    static const char *names[4] = {"kv", "lru", "age", "sess"};
    for (int i = 0; !rc && i < 4; i++) rc = mdb_dbi_open(txn, names[i], read_only ? 0 : MDB_CREATE, &dbi[i]);
    if (!rc && !read_only) { /* a probe commit: a full disk or a broken directory fails here, not later */
        uint64_t t = now_stamp();
        MDB_dbi meta;
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta);
        MDB_val k = {.mv_size = 6, .mv_data = "opened"}, v = {.mv_size = sizeof t, .mv_data = &t};
        if (!rc) rc = mdb_put(txn, meta, &k, &v, 0);
        if (!rc) {
            rc = mdb_txn_commit(txn); /* frees txn either way */
            txn = NULL;
        }
    }
    if (txn && !rc) rc = mdb_txn_commit(txn); /* read-only: committing keeps the handles */
    else if (txn) mdb_txn_abort(txn);
    if (rc) {
        mdb_env_close(env);
        return lmdb_fail(err, rc, rc == MDB_NOTFOUND ? "not a ryot store (no databases)" : "first commit", dir);
    }
    *out = env;
    return RYOT_OK;
}

static uint64_t kv_used(store *s, MDB_txn *txn) {
    MDB_stat ms;
    if (mdb_stat(txn, s->kv, &ms)) return 0;
    return (uint64_t)ms.ms_psize * (ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages);
}

static uint64_t kv_records(store *s, MDB_txn *txn) {
    MDB_stat ms;
    return mdb_stat(txn, s->kv, &ms) ? 0 : ms.ms_entries;
}

static void refresh_gauges(store *s) {
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) return;
    uint64_t used = kv_used(s, txn), n = kv_records(s, txn);
    mdb_txn_abort(txn);
    pthread_mutex_lock(&s->st_mu);
    s->st.used_bytes = used;
    s->st.records = n;
    pthread_mutex_unlock(&s->st_mu);
}

/* Deletes one record and its LRU entries (inside txn). */
static int del_record(store *s, MDB_txn *txn, const MDB_val *key) {
    MDB_val lv;
    int rc = mdb_get(txn, s->lru, (MDB_val *)key, &lv);
    if (rc == 0 && lv.mv_size >= 8) {
        uint8_t ak[8 + STORE_RKEY_BYTES];
        memcpy(ak, lv.mv_data, 8); /* stored big-endian already */
        if (key->mv_size == STORE_RKEY_BYTES) {
            memcpy(ak + 8, key->mv_data, STORE_RKEY_BYTES);
            MDB_val a = {.mv_size = sizeof ak, .mv_data = ak};
            mdb_del(txn, s->age, &a, NULL);
        }
        mdb_del(txn, s->lru, (MDB_val *)key, NULL);
    }
    rc = mdb_del(txn, s->kv, (MDB_val *)key, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes the least recently used records until the kv pages are under
 * target bytes (in txn); returns the count, or -1 on an LMDB error. */
static int64_t evict_to(store *s, MDB_txn *txn, uint64_t target) {
    int64_t n = 0;
    while (kv_used(s, txn) > target) {
        MDB_cursor *cur;
        if (mdb_cursor_open(txn, s->age, &cur)) return -1;
        MDB_val k, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        uint8_t rk[STORE_RKEY_BYTES];
        bool have = rc == 0 && k.mv_size == 8 + STORE_RKEY_BYTES;
        if (have) memcpy(rk, (uint8_t *)k.mv_data + 8, STORE_RKEY_BYTES);
        if (rc == 0) mdb_cursor_del(cur, 0);
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND) break; /* nothing left to evict */
        if (rc) return -1;
        if (!have) continue;
        MDB_val key = {.mv_size = STORE_RKEY_BYTES, .mv_data = rk};
        mdb_del(txn, s->lru, &key, NULL);
        rc = mdb_del(txn, s->kv, &key, NULL);
        if (rc && rc != MDB_NOTFOUND) return -1;
        if (!rc) n++;
    }
    return n;
}

/* Sets a record's last-access stamp (in txn). */
static int stamp_record(store *s, MDB_txn *txn, const store_rkey *key, uint64_t stamp, uint32_t size) {
    MDB_val k = {.mv_size = STORE_RKEY_BYTES, .mv_data = (void *)key->b}, lv;
    if (mdb_get(txn, s->lru, &k, &lv) == 0 && lv.mv_size == 12) {
        uint8_t ak[8 + STORE_RKEY_BYTES];
        memcpy(ak, lv.mv_data, 8);
        memcpy(&size, (uint8_t *)lv.mv_data + 8, 4);
        memcpy(ak + 8, key->b, STORE_RKEY_BYTES);
        MDB_val a = {.mv_size = sizeof ak, .mv_data = ak};
        mdb_del(txn, s->age, &a, NULL);
    }
    uint8_t l[12], ak[8 + STORE_RKEY_BYTES];
    be64(l, stamp);
    memcpy(l + 8, &size, 4);
    memcpy(ak, l, 8);
    memcpy(ak + 8, key->b, STORE_RKEY_BYTES);
    MDB_val lvv = {.mv_size = sizeof l, .mv_data = l}, a = {.mv_size = sizeof ak, .mv_data = ak}, e = {0};
    int rc = mdb_put(txn, s->lru, &k, &lvv, 0);
    if (!rc) rc = mdb_put(txn, s->age, &a, &e, 0);
    return rc;
}

/* ------------------------------------------------------------ writer */

typedef struct encoded {
    store_op *op;
    ryot_buf rec;     /* sealed record (OP_PUT) */
    bool skip;
} encoded;

static void op_free(store_op *op) {
    if (!op) return;
    free(op->k);
    free(op);
}

/* One batch: encode outside the transaction, then one commit.  A failed
 * commit (full disk, map full even after eviction) counts the batch's puts
 * as write failures and goes on. */
typedef struct write_job {
    store *s;
    encoded *enc;
    int n;
    atomic_int next;
    atomic_int n_put;
} write_job;

/* Encodes and seals the job's puts until none is left (worker: a helper, or the writer). */
static void write_work(void *arg, int w) {
    write_job *j = arg;
    store *s = j->s;
    store_codec_ctx *cc = w < s->wg.n ? s->wctx_h[w] : s->wctx;
    ryot_buf plain = {0};
    for (;;) {
        const int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        encoded *en = &j->enc[i];
        if (en->skip || en->op->kind != OP_PUT) continue;
        ryot_error e;
        plain.len = 0;
        if (store_kv_encode(cc, &s->p.shape, &s->p.codec, en->op->k, en->op->v, &plain, &e) ||
            store_seal(s->has_key ? s->key : NULL, en->op->key.b, STORE_RKEY_BYTES, plain.data, plain.len, &en->rec,
                       &e)) {
            en->skip = true;
            count(s, &s->st.write_failures, 1);
        } else {
            atomic_fetch_add(&j->n_put, 1);
        }
    }
    ryot_buf_free(&plain);
}

static void write_batch(store *s, store_op **ops, int n) {
    encoded enc[BATCH_MAX];
    memset(enc, 0, sizeof enc);
    int to_encode = 0;
    for (int i = 0; i < n; i++) {
        enc[i].op = ops[i];
        if (ops[i]->kind != OP_PUT) continue;
        if (store_has(s, &ops[i]->key)) {
            enc[i].skip = true;
            count(s, &s->st.duplicates, 1);
            continue;
        }
        to_encode++;
    }
    /* the codec and the seal on the writer and its helpers, in parallel */
    write_job j = {.s = s, .enc = enc, .n = n};
    atomic_init(&j.next, 0);
    atomic_init(&j.n_put, 0);
    if (to_encode > 1) gang_run(&s->wg, write_work, &j);
    else write_work(&j, s->wg.n);
    const int n_put = atomic_load(&j.n_put);
    const uint64_t budget = s->st.budget_bytes;
    for (int attempt = 0; attempt < 2; attempt++) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        uint64_t bytes = 0, raw = 0;
        int64_t evicted = 0;
        int written = 0, dups = 0;
        const uint64_t stamp = now_stamp();
        if (!rc && attempt > 0) { /* the map filled up: make room first */
            evicted = evict_to(s, txn, (uint64_t)(STORE_LOW_WATER * (double)budget) / 2);
            if (evicted < 0) rc = EIO;
        }
        for (int i = 0; !rc && i < n; i++) {
            store_op *op = enc[i].op;
            if (op->kind == OP_TOUCH) {
                MDB_val k = {.mv_size = STORE_RKEY_BYTES, .mv_data = op->key.b}, v;
                if (mdb_get(txn, s->kv, &k, &v) == 0) rc = stamp_record(s, txn, &op->key, stamp, (uint32_t)v.mv_size);
                continue;
            }
            if (enc[i].skip) continue;
            MDB_val k = {.mv_size = STORE_RKEY_BYTES, .mv_data = op->key.b},
                    v = {.mv_size = enc[i].rec.len, .mv_data = enc[i].rec.data};
            rc = mdb_put(txn, s->kv, &k, &v, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST) { /* queued twice in this batch */
                rc = 0;
                dups++;
                continue;
            }
            if (!rc) rc = stamp_record(s, txn, &op->key, stamp, (uint32_t)v.mv_size);
            bytes += v.mv_size;
            raw += (s->nk + s->nv) * 2;
            written++;
        }
        if (!rc && kv_used(s, txn) > (uint64_t)(STORE_HIGH_WATER * (double)budget)) {
            int64_t e2 = evict_to(s, txn, (uint64_t)(STORE_LOW_WATER * (double)budget));
            if (e2 < 0) rc = EIO;
            else evicted += e2;
        }
        if (!rc) rc = mdb_txn_commit(txn);
        else if (txn) mdb_txn_abort(txn);
        if (!rc) {
            pthread_mutex_lock(&s->st_mu);
            s->st.writes += (uint64_t)written;
            s->st.bytes_written += bytes;
            s->st.raw_bytes_written += raw;
            s->st.evictions += (uint64_t)evicted;
            s->st.duplicates += (uint64_t)dups;
            pthread_mutex_unlock(&s->st_mu);
            break;
        }
        if (rc != MDB_MAP_FULL || attempt == 1) {
            fprintf(stderr, "ryot store: write failed (%d records lost): %s\n", n_put, mdb_strerror(rc));
            count(s, &s->st.write_failures, (uint64_t)n_put);
            break;
        }
    }
    for (int i = 0; i < n; i++) ryot_buf_free(&enc[i].rec);
    refresh_gauges(s);
}

static void *writer_main(void *arg) {
    store *s = arg;
    store_op *batch[BATCH_MAX];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head && s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        int n = 0;
        while (s->head && n < BATCH_MAX) {
            store_op *op = s->head;
            s->head = op->next;
            if (!s->head) s->tail = NULL;
            batch[n++] = op;
        }
        pthread_mutex_unlock(&s->mu);
        write_batch(s, batch, n);
        size_t freed = 0;
        for (int i = 0; i < n; i++) {
            freed += batch[i]->bytes;
            op_free(batch[i]);
        }
        pthread_mutex_lock(&s->mu);
        s->q_bytes -= freed;
        s->done += (uint64_t)n;
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static bool enqueue(store *s, store_op *op) {
    pthread_mutex_lock(&s->mu);
    if (s->stop || !s->thread_started || s->q_bytes + op->bytes > s->p.queue_bytes) {
        pthread_mutex_unlock(&s->mu);
        op_free(op);
        return false;
    }
    op->next = NULL;
    if (s->tail) s->tail->next = op;
    else s->head = op;
    s->tail = op;
    s->q_bytes += op->bytes;
    s->enq++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return true;
}

bool store_put_block(store *s, const store_rkey *key, const uint16_t *k, const uint16_t *v) {
    store_op *op = calloc(1, sizeof *op);
    if (op) op->k = malloc((s->nk + s->nv) * sizeof *op->k);
    if (!op || !op->k) {
        op_free(op);
        count(s, &s->st.dropped, 1);
        return false;
    }
    op->kind = OP_PUT;
    op->key = *key;
    op->v = op->k + s->nk;
    memcpy(op->k, k, s->nk * sizeof *k);
    memcpy(op->v, v, s->nv * sizeof *v);
    op->bytes = sizeof *op + (s->nk + s->nv) * 2;
    if (!enqueue(s, op)) {
        count(s, &s->st.dropped, 1);
        return false;
    }
    return true;
}

void store_flush(store *s) {
    pthread_mutex_lock(&s->mu);
    const uint64_t want = s->enq;
    while (s->done < want) pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ open / close */

ryot_status store_open(const store_params *p, store **out, ryot_error *err) {
    *out = NULL;
    if (sodium_init() < 0) return ryot_fail(err, RYOT_ERR_INTERNAL, "store: libsodium failed to initialise");
    if (!p->dir || !*p->dir) return ryot_fail(err, RYOT_ERR_INVALID, "store: no directory");
    if (!p->key && !p->plaintext)
        return ryot_fail(err, RYOT_ERR_INVALID,
                         "--store %s: no --store-key-file (make one with `ryot store keygen FILE`); "
                         "--store-plaintext stores records unencrypted",
                         p->dir);
    const bool use_shape = p->shape.n_layer > 0;
    /* admin use (no shape) without a size: the environment's own map size */
    const double gb = p->gb > 0 ? p->gb : use_shape ? 4.0 : 0.0;
    if (gb != 0.0 && (gb < 1.0 / 1024 || gb > 1 << 20))
        return ryot_fail(err, RYOT_ERR_INVALID, "--store-gb %g out of range", gb);
    if (use_shape) {
        ryot_status st = store_codec_check(&p->shape, &p->codec, err);
        if (st) return st;
    }
    store *s = calloc(1, sizeof *s);
    if (!s) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->p.gb = gb;
    if (!s->p.queue_bytes) s->p.queue_bytes = (size_t)256 << 20;
    if (p->key) {
        memcpy(s->key, p->key, STORE_KEY_BYTES);
        s->has_key = true;
    }
    s->p.key = NULL; /* the copy in s->key is the one used */
    s->p.dir = strdup(p->dir);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_mutex_init(&s->st_mu, NULL);
    pthread_mutex_init(&s->rd_mu, NULL);
    gang_init(&s->rg);
    gang_init(&s->wg);
    MDB_dbi dbi[4];
    ryot_status st = s->p.dir ? env_open(s->p.dir, gb, p->read_only, &s->env, dbi, err)
                              : ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    if (!st) {
        s->kv = dbi[0], s->lru = dbi[1], s->age = dbi[2], s->sess = dbi[3];
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        s->st.budget_bytes = info.me_mapsize;
        if (use_shape) {
            s->nk = store_kv_elems_k(&p->shape);
            s->nv = store_kv_elems_v(&p->shape);
        }
        s->wctx = store_codec_ctx_new();
        s->rctx = store_codec_ctx_new();
        if (!s->wctx || !s->rctx) st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    if (!st && use_shape && !p->read_only) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int want = p->read_threads > 0 ? p->read_threads : cpus > 0 ? (int)cpus : 1;
        if (want > READERS_MAX) want = READERS_MAX;
        int h = 0;
        while (h < want - 1 && (s->hctx[h] = store_codec_ctx_new()) && (s->wctx_h[h] = store_codec_ctx_new())) h++;
        gang_start_n(&s->rg, h);
        gang_start_n(&s->wg, h);
    }
    if (!st && !p->read_only) {
        if (pthread_create(&s->thread, NULL, writer_main, s) != 0)
            st = ryot_fail(err, RYOT_ERR_INTERNAL, "store: cannot start the writer thread");
        else s->thread_started = true;
    }
    if (st) {
        store_close(s);
        return st;
    }
    refresh_gauges(s);
    *out = s;
    return RYOT_OK;
}

void store_close(store *s) {
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    gang_stop(&s->rg);
    gang_stop(&s->wg);
    for (int h = 0; h < GANG_MAX; h++) {
        store_codec_ctx_free(s->hctx[h]);
        store_codec_ctx_free(s->wctx_h[h]);
        ryot_buf_free(&s->hbuf[h]);
    }
    for (store_op *op = s->head; op;) {
        store_op *n = op->next;
        op_free(op);
        op = n;
    }
    if (s->env) mdb_env_close(s->env);
    store_codec_ctx_free(s->wctx);
    store_codec_ctx_free(s->rctx);
    ryot_buf_free(&s->rbuf);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->st_mu);
    pthread_mutex_destroy(&s->rd_mu);
    sodium_memzero(s->key, sizeof s->key);
    free((char *)s->p.dir);
    free(s);
}

/* ------------------------------------------------------------ reads */

bool store_has(store *s, const store_rkey *key) {
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) return false;
    MDB_val k = {.mv_size = STORE_RKEY_BYTES, .mv_data = (void *)key->b}, v;
    const bool has = mdb_get(txn, s->kv, &k, &v) == 0;
    mdb_txn_abort(txn);
    return has;
}

/* One block with the given decode context and buffer: LMDB read from the
 * map, unseal, decode into k/v; counts the hit or miss and queues the
 * last-access update. */
static ryot_status get_one(store *s, store_codec_ctx *cc, ryot_buf *buf, const store_rkey *key, uint16_t *kd,
                           uint16_t *vd, ryot_error *err) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        count(s, &s->st.misses, 1);
        return lmdb_fail(err, rc, "read", s->p.dir);
    }
    MDB_val k = {.mv_size = STORE_RKEY_BYTES, .mv_data = (void *)key->b}, v;
    rc = mdb_get(txn, s->kv, &k, &v);
    if (rc) {
        mdb_txn_abort(txn);
        count(s, &s->st.misses, 1);
        return ryot_fail(err, RYOT_ERR_NOT_FOUND, "store: no such record");
    }
    /* decode straight from the map: v stays valid until the txn ends */
    ryot_status st = store_unseal(s->has_key ? s->key : NULL, key->b, STORE_RKEY_BYTES, v.mv_data, v.mv_size, buf,
                                  NULL, err);
    if (!st) st = store_kv_decode(cc, &s->p.shape, buf->data, buf->len, kd, vd, err);
    const size_t n = v.mv_size;
    mdb_txn_abort(txn);
    pthread_mutex_lock(&s->st_mu);
    if (st) {
        s->st.auth_failures++;
        s->st.misses++;
    } else {
        s->st.hits++;
        s->st.bytes_read += n;
    }
    pthread_mutex_unlock(&s->st_mu);
    if (st) return RYOT_ERR_FORMAT;
    if (s->thread_started) { /* last access, off this thread */
        store_op *op = calloc(1, sizeof *op);
        if (op) {
            op->kind = OP_TOUCH;
            op->key = *key;
            op->bytes = sizeof *op;
            enqueue(s, op);
        }
    }
    return RYOT_OK;
}

ryot_status store_get_block(store *s, const store_rkey *key, uint16_t *kd, uint16_t *vd, ryot_error *err) {
    RYOT_ASSERT(s->nk > 0);
    pthread_mutex_lock(&s->rd_mu);
    ryot_status st = get_one(s, s->rctx, &s->rbuf, key, kd, vd, err);
    pthread_mutex_unlock(&s->rd_mu);
    return st;
}

/* Takes blocks of the job until none is left (worker: a helper, or the caller). */
static void read_work(void *arg, int w) {
    read_job *j = arg;
    store *s = j->s;
    store_codec_ctx *cc = w < s->rg.n ? s->hctx[w] : s->rctx;
    ryot_buf *buf = w < s->rg.n ? &s->hbuf[w] : &s->rbuf;
    for (;;) {
        const int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        ryot_error e;
        j->st[i] = get_one(s, cc, buf, &j->keys[i], j->k[i], j->v[i], &e);
    }
}

int store_get_blocks(store *s, const store_rkey *keys, int n, uint16_t *const *k, uint16_t *const *v) {
    RYOT_ASSERT(s->nk > 0);
    if (n <= 0) return 0;
    ryot_status st_one[64], *st = n <= 64 ? st_one : malloc((size_t)n * sizeof *st);
    if (!st) return 0;
    read_job j = {.s = s, .keys = keys, .k = k, .v = v, .n = n, .st = st};
    atomic_init(&j.next, 0);
    pthread_mutex_lock(&s->rd_mu); /* one call at a time uses the helpers */
    if (n > 1) gang_run(&s->rg, read_work, &j);
    else read_work(&j, s->rg.n);
    pthread_mutex_unlock(&s->rd_mu);
    int ok = 0;
    while (ok < n && st[ok] == RYOT_OK) ok++;
    if (st != st_one) free(st);
    return ok;
}

void store_get_stats(store *s, store_stats *out) {
    pthread_mutex_lock(&s->st_mu);
    *out = s->st;
    pthread_mutex_unlock(&s->st_mu);
    pthread_mutex_lock(&s->mu);
    out->queue_bytes = s->q_bytes;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ sessions */

bool store_session_id_ok(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > STORE_SESSION_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static void sess_ad(const char *id, uint8_t *ad, size_t *n) {
    /* "sess:" + id, so a session record cannot pass for a block record */
    memcpy(ad, "sess:", 5);
    size_t l = strlen(id);
    memcpy(ad + 5, id, l);
    *n = 5 + l;
}

ryot_status store_session_put(store *s, const char *id, const uint8_t model_id[STORE_MODEL_ID_BYTES],
                              const int32_t *tokens, int n, ryot_error *err) {
    if (!store_session_id_ok(id)) return ryot_fail(err, RYOT_ERR_INVALID, "bad session id");
    ryot_buf plain = {0}, rec = {0};
    uint32_t nn = (uint32_t)n;
    bool ok = ryot_buf_append(&plain, SESS_MAGIC, 4) && ryot_buf_append(&plain, model_id, STORE_MODEL_ID_BYTES) &&
              ryot_buf_append(&plain, &nn, 4) && (n == 0 || ryot_buf_append(&plain, tokens, (size_t)n * 4));
    uint8_t ad[5 + STORE_SESSION_ID_MAX];
    size_t adn;
    sess_ad(id, ad, &adn);
    ryot_status st = ok ? store_seal(s->has_key ? s->key : NULL, ad, adn, plain.data, plain.len, &rec, err)
                        : ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    ryot_buf_free(&plain);
    if (st) return st;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    MDB_val k = {.mv_size = strlen(id), .mv_data = (void *)id}, v = {.mv_size = rec.len, .mv_data = rec.data};
    if (!rc) {
        rc = mdb_put(txn, s->sess, &k, &v, 0);
        if (!rc) rc = mdb_txn_commit(txn);
        else mdb_txn_abort(txn);
    }
    ryot_buf_free(&rec);
    if (rc) {
        count(s, &s->st.write_failures, 1);
        return lmdb_fail(err, rc, "saving a session", s->p.dir);
    }
    return RYOT_OK;
}

static ryot_status sess_decode(store *s, const char *id, const MDB_val *v, uint8_t model_id[STORE_MODEL_ID_BYTES],
                               int32_t **tokens, int *n, ryot_error *err) {
    uint8_t ad[5 + STORE_SESSION_ID_MAX];
    size_t adn;
    sess_ad(id, ad, &adn);
    ryot_buf plain = {0};
    ryot_status st = store_unseal(s->has_key ? s->key : NULL, ad, adn, v->mv_data, v->mv_size, &plain, NULL, err);
    if (!st) {
        uint32_t nn = 0;
        if (plain.len < 24 || memcmp(plain.data, SESS_MAGIC, 4) ||
            (memcpy(&nn, plain.data + 20, 4), (size_t)nn * 4 != plain.len - 24))
            st = ryot_fail(err, RYOT_ERR_FORMAT, "session %s: malformed record", id);
        else {
            memcpy(model_id, plain.data + 4, STORE_MODEL_ID_BYTES);
            *n = (int)nn;
            *tokens = malloc((size_t)nn * 4 + 4);
            if (!*tokens) st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
            else if (nn) memcpy(*tokens, plain.data + 24, (size_t)nn * 4);
        }
    }
    ryot_buf_free(&plain);
    return st;
}

ryot_status store_session_get(store *s, const char *id, uint8_t model_id[STORE_MODEL_ID_BYTES], int32_t **tokens,
                              int *n, ryot_error *err) {
    *tokens = NULL;
    *n = 0;
    if (!store_session_id_ok(id)) return ryot_fail(err, RYOT_ERR_INVALID, "bad session id");
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_fail(err, rc, "read", s->p.dir);
    MDB_val k = {.mv_size = strlen(id), .mv_data = (void *)id}, v;
    rc = mdb_get(txn, s->sess, &k, &v);
    ryot_status st = rc ? ryot_fail(err, RYOT_ERR_NOT_FOUND, "no session '%s'", id)
                        : sess_decode(s, id, &v, model_id, tokens, n, err);
    mdb_txn_abort(txn);
    if (st == RYOT_ERR_FORMAT) count(s, &s->st.auth_failures, 1);
    return st;
}

ryot_status store_session_list(store *s, const uint8_t model_id[STORE_MODEL_ID_BYTES], int bs,
                               store_session_info **out, int *n_out, ryot_error *err) {
    *out = NULL;
    *n_out = 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_fail(err, rc, "read", s->p.dir);
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, s->sess, &cur);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_fail(err, rc, "read", s->p.dir);
    }
    store_session_info *a = NULL;
    int n = 0, cap = 0;
    ryot_status st = RYOT_OK;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > STORE_SESSION_ID_MAX) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            store_session_info *b = realloc(a, (size_t)cap * sizeof *b);
            if (!b) {
                st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
                break;
            }
            a = b;
        }
        store_session_info *si = &a[n];
        memset(si, 0, sizeof *si);
        memcpy(si->id, k.mv_data, k.mv_size);
        uint8_t mid[STORE_MODEL_ID_BYTES];
        int32_t *toks = NULL;
        int nt = 0;
        ryot_error e2;
        if (sess_decode(s, si->id, &v, mid, &toks, &nt, &e2)) continue; /* unreadable: not listed */
        si->n_tokens = nt;
        si->same_model = model_id && !memcmp(mid, model_id, STORE_MODEL_ID_BYTES);
        const int nb = bs > 0 ? nt / bs : 0;
        store_rkey *keys = nb ? malloc((size_t)nb * sizeof *keys) : NULL;
        if (keys) {
            store_chain(mid, toks, nb, bs, keys);
            for (int i = 0; i < nb; i++) {
                MDB_val rk = {.mv_size = STORE_RKEY_BYTES, .mv_data = keys[i].b}, rv;
                if (mdb_get(txn, s->kv, &rk, &rv)) break;
                si->n_blocks++;
                si->bytes += rv.mv_size;
            }
        }
        free(keys);
        free(toks);
        n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (st) {
        free(a);
        return st;
    }
    *out = a;
    *n_out = n;
    return RYOT_OK;
}

/* ------------------------------------------------------------ admin */

/* Whether one kv record opens and decodes (any shape). */
static bool record_ok(store *s, const MDB_val *k, const MDB_val *v, ryot_buf *plain, uint64_t *raw) {
    ryot_error e;
    if (k->mv_size != STORE_RKEY_BYTES) return false;
    if (store_unseal(s->has_key ? s->key : NULL, k->mv_data, k->mv_size, v->mv_data, v->mv_size, plain, NULL, &e))
        return false;
    store_kv_shape sh;
    store_codec_params cp;
    if (store_kv_peek(plain->data, plain->len, &sh, &cp, &e)) return false;
    const size_t nk = store_kv_elems_k(&sh), nv = store_kv_elems_v(&sh);
    uint16_t *buf = malloc((nk + nv) * sizeof *buf);
    if (!buf) return false;
    bool ok = store_kv_decode(s->rctx, &sh, plain->data, plain->len, buf, buf + nk, &e) == RYOT_OK;
    free(buf);
    *raw += (nk + nv) * 2;
    return ok;
}

ryot_status store_verify(store *s, store_verify_report *r, ryot_error *err) {
    memset(r, 0, sizeof *r);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_fail(err, rc, "read", s->p.dir);
    MDB_cursor *cur;
    ryot_buf plain = {0};
    MDB_val k, v, lv;
    rc = mdb_cursor_open(txn, s->kv, &cur);
    for (int g = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        r->records++;
        r->bytes += v.mv_size;
        if (record_ok(s, &k, &v, &plain, &r->raw_bytes)) r->ok++;
        else r->bad++;
        if (mdb_get(txn, s->lru, &k, &lv)) r->lru_missing++;
    }
    if (!rc) mdb_cursor_close(cur);
    rc = mdb_cursor_open(txn, s->sess, &cur);
    for (int g = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        r->sessions++;
        char id[STORE_SESSION_ID_MAX + 1] = {0};
        uint8_t mid[STORE_MODEL_ID_BYTES];
        int32_t *toks = NULL;
        int nt;
        ryot_error e2;
        if (k.mv_size == 0 || k.mv_size > STORE_SESSION_ID_MAX) {
            r->sessions_bad++;
            continue;
        }
        memcpy(id, k.mv_data, k.mv_size);
        if (sess_decode(s, id, &v, mid, &toks, &nt, &e2)) r->sessions_bad++;
        free(toks);
    }
    if (!rc) mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    ryot_buf_free(&plain);
    return RYOT_OK;
}

ryot_status store_gc(store *s, double frac_target, uint64_t *deleted, ryot_error *err) {
    *deleted = 0;
    if (frac_target <= 0) frac_target = STORE_LOW_WATER;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return lmdb_fail(err, rc, "gc", s->p.dir);
    MDB_cursor *cur;
    ryot_buf plain = {0};
    uint64_t raw = 0;
    rc = mdb_cursor_open(txn, s->kv, &cur);
    MDB_val k, v;
    /* collect the bad keys first: deleting under an iterating cursor is legal
     * in LMDB but the next position then needs care */
    store_rkey *bad = NULL;
    size_t n_bad = 0, cap = 0;
    for (int g = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (record_ok(s, &k, &v, &plain, &raw) || k.mv_size != STORE_RKEY_BYTES) continue;
        if (n_bad == cap) {
            cap = cap ? 2 * cap : 64;
            store_rkey *b = realloc(bad, cap * sizeof *b);
            if (!b) break;
            bad = b;
        }
        memcpy(bad[n_bad++].b, k.mv_data, STORE_RKEY_BYTES);
    }
    if (!rc) mdb_cursor_close(cur);
    ryot_buf_free(&plain);
    rc = 0;
    for (size_t i = 0; !rc && i < n_bad; i++) {
        MDB_val key = {.mv_size = STORE_RKEY_BYTES, .mv_data = bad[i].b};
        rc = del_record(s, txn, &key);
    }
    free(bad);
    int64_t ev = rc ? 0 : evict_to(s, txn, (uint64_t)(frac_target * (double)s->st.budget_bytes));
    if (ev < 0) rc = EIO;
    if (!rc) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc) return lmdb_fail(err, rc, "gc", s->p.dir);
    *deleted = n_bad + (uint64_t)ev;
    refresh_gauges(s);
    return RYOT_OK;
}

/* Reseals the records of one database; returns the count or -1. */
static ryot_status rekey_db(MDB_env *env, MDB_dbi dbi, bool sess, const uint8_t *old_key, const uint8_t *new_key,
                            uint64_t *done, const char *dir, ryot_error *err) {
    uint8_t new_id[STORE_KEY_ID_BYTES] = {0};
    if (new_key) store_key_id(new_key, new_id);
    ryot_buf plain = {0}, recs[BATCH_MAX];
    uint8_t keys[BATCH_MAX][STORE_SESSION_ID_MAX];
    size_t klen[BATCH_MAX];
    memset(recs, 0, sizeof recs);
    ryot_status st = RYOT_OK;
    for (;;) { /* one committed batch per pass; a pass that changes nothing ends it */
        MDB_txn *txn;
        int rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc) {
            st = lmdb_fail(err, rc, "rekey", dir);
            break;
        }
        MDB_cursor *cur = NULL;
        rc = mdb_cursor_open(txn, dbi, &cur);
        int changed = 0;
        MDB_val k, v;
        for (int g = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0 && changed < BATCH_MAX;
             g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            uint8_t ad[5 + STORE_SESSION_ID_MAX], kid[STORE_KEY_ID_BYTES];
            size_t adn = k.mv_size;
            if (sess) {
                if (k.mv_size == 0 || k.mv_size > STORE_SESSION_ID_MAX) continue;
                char id[STORE_SESSION_ID_MAX + 1] = {0};
                memcpy(id, k.mv_data, k.mv_size);
                sess_ad(id, ad, &adn);
            } else {
                if (k.mv_size != STORE_RKEY_BYTES) continue;
                memcpy(ad, k.mv_data, adn);
            }
            ryot_error e2;
            /* already under the new key (an earlier, interrupted run): skip */
            if (v.mv_size >= STORE_SEAL_HEADER && ((const uint8_t *)v.mv_data)[4] == (new_key != NULL) &&
                !memcmp((const uint8_t *)v.mv_data + 8, new_id, STORE_KEY_ID_BYTES))
                continue;
            if (store_unseal(old_key, ad, adn, v.mv_data, v.mv_size, &plain, kid, &e2)) continue; /* neither: left */
            recs[changed].len = 0;
            st = store_seal(new_key, ad, adn, plain.data, plain.len, &recs[changed], err);
            if (st) break;
            memcpy(keys[changed], k.mv_data, k.mv_size);
            klen[changed++] = k.mv_size;
        }
        if (cur) mdb_cursor_close(cur);
        /* written after the walk: keys and values the cursor handed out
         * point into pages a write may move */
        for (int i = 0; !st && i < changed; i++) {
            MDB_val kk = {.mv_size = klen[i], .mv_data = keys[i]}, nv = {.mv_size = recs[i].len, .mv_data = recs[i].data};
            rc = mdb_put(txn, dbi, &kk, &nv, 0);
            if (rc) st = lmdb_fail(err, rc, "rekey", dir);
        }
        if (!st) {
            rc = mdb_txn_commit(txn);
            if (rc) st = lmdb_fail(err, rc, "rekey commit", dir);
        } else {
            mdb_txn_abort(txn);
        }
        if (st) break;
        *done += (uint64_t)changed;
        if (changed < BATCH_MAX) break;
    }
    if (plain.data) sodium_memzero(plain.data, plain.cap);
    ryot_buf_free(&plain);
    for (int i = 0; i < BATCH_MAX; i++) ryot_buf_free(&recs[i]);
    return st;
}

ryot_status store_rekey(const char *dir, const uint8_t *old_key, const uint8_t *new_key, uint64_t *done,
                        ryot_error *err) {
    *done = 0;
    if (sodium_init() < 0) return ryot_fail(err, RYOT_ERR_INTERNAL, "store: libsodium failed to initialise");
    MDB_env *env;
    MDB_dbi dbi[4];
    ryot_status st = env_open(dir, 0, false, &env, dbi, err); /* map size: the environment's own */
    if (st) return st;
    st = rekey_db(env, dbi[0], false, old_key, new_key, done, dir, err);
    if (!st) st = rekey_db(env, dbi[3], true, old_key, new_key, done, dir, err);
    mdb_env_close(env);
    return st;
}
