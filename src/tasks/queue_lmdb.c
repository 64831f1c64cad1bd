/* The task queue's embedded backend (queue.h): one LMDB environment in a
 * directory, shared by the processes that open it (LMDB's own locking).
 *
 * Databases:
 *   q     key: tier (1 byte) + sequence number (8 bytes, big-endian), so key
 *         order is claim order; value: claimed_ms (int64, wall clock; 0: not
 *         claimed), attempts (int32), id length (uint16), id, body
 *   res   task id -> result (put with MDB_NOOVERWRITE: first wins)
 *   kv    key -> value (counters are decimal text)
 *   idx   index NUL member -> empty
 *   dead  the q key -> id NUL body
 *   meta  "seq" -> the next sequence number (uint64)
 * A claim scans q from its first key for a task not claimed or claimed
 * longer than visibility_ms ago; claimed tasks are at most the consumers'
 * workers plus dead ones, so the scan stays short.  Pushes in this process
 * wake its waiting claimers at once; other processes' pushes are seen
 * within a poll slice (POLL_MS). */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/clock.h"
#include "tasks/queue_impl.h"

#define MAP_SIZE ((size_t)4 << 30) /* sparse: only what is written takes disk */
#define POLL_MS 20
#define KEY_LEN 9
#define HDR_LEN 14

typedef struct lq {
    task_queue base;
    MDB_env *env;
    MDB_dbi q, res, kv, idx, dead, meta;
    pthread_mutex_t mu; /* the wake-up below */
    pthread_cond_t cv;
    uint64_t pushes;
} lq;

static ryot_status lfail(ryot_error *err, int rc, const char *what) {
    return ryot_fail(err, rc == MDB_MAP_FULL ? RYOT_ERR_BUSY : RYOT_ERR_IO, "task store: %s: %s", what,
                     mdb_strerror(rc));
}

static void put_u64be(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static void ref_of(const unsigned char *key, char *ref) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < KEY_LEN; i++) {
        ref[2 * i] = hex[key[i] >> 4];
        ref[2 * i + 1] = hex[key[i] & 15];
    }
    ref[2 * KEY_LEN] = 0;
}

static bool key_of(const char *ref, unsigned char *key) {
    if (strlen(ref) != 2 * KEY_LEN) return false;
    for (int i = 0; i < KEY_LEN; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            const char c = ref[2 * i + k];
            v = v * 16 + (unsigned)(c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 99);
        }
        if (v > 255) return false;
        key[i] = (unsigned char)v;
    }
    return true;
}

static void lq_free(task_queue *q) {
    lq *l = (lq *)q;
    if (l->env) mdb_env_close(l->env);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static int64_t get_i64(const unsigned char *p) {
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static ryot_status lq_push(task_queue *q, int n, const char *const *ids, int tier, const char *const *bodies,
                           const size_t *lens, ryot_error *err) {
    lq *l = (lq *)q;
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (rc) return lfail(err, rc, "begin");
    MDB_stat st;
    mdb_stat(t, l->q, &st);
    if (q->p.max_tasks > 0 && (int64_t)st.ms_entries + n > q->p.max_tasks) {
        mdb_txn_abort(t);
        return ryot_fail(err, RYOT_ERR_BUSY, "the task queue is full (%lld of %lld tasks outstanding)",
                         (long long)st.ms_entries, (long long)q->p.max_tasks);
    }
    uint64_t seq = 1;
    MDB_val mk = {3, "seq"}, mv;
    if (!mdb_get(t, l->meta, &mk, &mv) && mv.mv_size == 8) memcpy(&seq, mv.mv_data, 8);
    for (int i = 0; i < n && !rc; i++) {
        unsigned char key[KEY_LEN];
        key[0] = (unsigned char)tier;
        put_u64be(key + 1, seq++);
        const size_t idl = strlen(ids[i]);
        MDB_val k = {KEY_LEN, key}, v = {HDR_LEN + idl + lens[i], NULL};
        rc = mdb_put(t, l->q, &k, &v, MDB_RESERVE);
        if (rc) break;
        unsigned char *p = v.mv_data;
        memset(p, 0, HDR_LEN);
        p[12] = (unsigned char)idl;
        p[13] = (unsigned char)(idl >> 8);
        memcpy(p + HDR_LEN, ids[i], idl);
        if (lens[i]) memcpy(p + HDR_LEN + idl, bodies[i], lens[i]);
    }
    mv = (MDB_val){8, &seq};
    if (!rc) rc = mdb_put(t, l->meta, &mk, &mv, 0);
    if (rc) {
        mdb_txn_abort(t);
        return lfail(err, rc, "push");
    }
    if ((rc = mdb_txn_commit(t))) return lfail(err, rc, "commit");
    pthread_mutex_lock(&l->mu);
    l->pushes++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return RYOT_OK;
}

static int lq_claim_once(task_queue *q, task_msg *out, ryot_error *err) {
    lq *l = (lq *)q;
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (rc) {
        lfail(err, rc, "begin");
        return -1;
    }
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t, l->q, &c))) {
        mdb_txn_abort(t);
        lfail(err, rc, "cursor");
        return -1;
    }
    const int64_t now = ryot_wall_ms();
    MDB_val k, v;
    int got = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != KEY_LEN || v.mv_size < HDR_LEN) continue;
        const unsigned char *p = v.mv_data;
        const int64_t claimed = get_i64(p);
        if (claimed && now - claimed < q->p.visibility_ms) continue;
        const size_t idl = (size_t)p[12] | (size_t)p[13] << 8;
        if (idl == 0 || idl >= TASK_ID_MAX || HDR_LEN + idl > v.mv_size) continue;
        const size_t bl = v.mv_size - HDR_LEN - idl;
        out->body = malloc(bl + 1);
        if (!out->body) {
            ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
            got = -1;
            break;
        }
        memcpy(out->body, p + HDR_LEN + idl, bl);
        out->body[bl] = 0;
        out->len = bl;
        memcpy(out->id, p + HDR_LEN, idl);
        out->id[idl] = 0;
        int32_t att;
        memcpy(&att, p + 8, 4);
        out->attempt = att + 1;
        out->tier = ((const unsigned char *)k.mv_data)[0];
        ref_of(k.mv_data, out->ref);
        /* rewrite the header in a copy (the value in the map is read-only) */
        unsigned char *nv = malloc(v.mv_size);
        if (!nv) {
            task_msg_free(out);
            ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
            got = -1;
            break;
        }
        memcpy(nv, p, v.mv_size);
        memcpy(nv, &now, 8);
        att++;
        memcpy(nv + 8, &att, 4);
        MDB_val nvv = {v.mv_size, nv};
        rc = mdb_cursor_put(c, &k, &nvv, MDB_CURRENT);
        free(nv);
        if (rc) {
            task_msg_free(out);
            lfail(err, rc, "claim");
            got = -1;
        } else {
            got = 1;
        }
        break;
    }
    mdb_cursor_close(c);
    if (got != 1) {
        mdb_txn_abort(t);
        return got;
    }
    if ((rc = mdb_txn_commit(t))) {
        task_msg_free(out);
        lfail(err, rc, "commit");
        return -1;
    }
    return 1;
}

static void lq_wait(task_queue *q, int ms) {
    lq *l = (lq *)q;
    if (ms > POLL_MS) ms = POLL_MS;
    pthread_mutex_lock(&l->mu);
    const uint64_t seen = l->pushes;
    const struct timespec dl = ryot_deadline_ms(ms);
    while (l->pushes == seen)
        if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT) break;
    pthread_mutex_unlock(&l->mu);
}

static int lq_claim(task_queue *q, int wait_ms, task_msg *out, ryot_error *err) {
    const double end = ryot_now_s() + wait_ms / 1000.0;
    for (;;) {
        const int r = lq_claim_once(q, out, err);
        const double left = end - ryot_now_s();
        if (r || left <= 0) return r;
        lq_wait(q, (int)(left * 1000) + 1);
    }
}

static ryot_status lq_touch(task_queue *q, const task_msg *m, ryot_error *err) {
    lq *l = (lq *)q;
    unsigned char key[KEY_LEN];
    if (!key_of(m->ref, key)) return ryot_fail(err, RYOT_ERR_INVALID, "bad task reference");
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (rc) return lfail(err, rc, "begin");
    MDB_val k = {KEY_LEN, key}, v;
    rc = mdb_get(t, l->q, &k, &v);
    if (rc == MDB_NOTFOUND) { /* completed meanwhile */
        mdb_txn_abort(t);
        return RYOT_OK;
    }
    unsigned char *nv = rc ? NULL : malloc(v.mv_size);
    if (!rc && nv) {
        memcpy(nv, v.mv_data, v.mv_size);
        const int64_t now = ryot_wall_ms();
        memcpy(nv, &now, 8);
        MDB_val nvv = {v.mv_size, nv};
        rc = mdb_put(t, l->q, &k, &nvv, 0);
    }
    free(nv);
    if (rc || !nv) {
        mdb_txn_abort(t);
        return rc ? lfail(err, rc, "touch") : ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    return (rc = mdb_txn_commit(t)) ? lfail(err, rc, "commit") : RYOT_OK;
}

/* counter += 1 in kv (decimal text) */
static int counter_add(lq *l, MDB_txn *t, const char *key) {
    MDB_val k = {strlen(key), (void *)key}, v;
    long long n = 0;
    if (!mdb_get(t, l->kv, &k, &v)) {
        char b[32];
        const size_t m = v.mv_size < sizeof b - 1 ? v.mv_size : sizeof b - 1;
        memcpy(b, v.mv_data, m);
        b[m] = 0;
        n = strtoll(b, NULL, 10);
    }
    char b[32];
    const int len = snprintf(b, sizeof b, "%lld", n + 1);
    v = (MDB_val){(size_t)len, b};
    return mdb_put(t, l->kv, &k, &v, 0);
}

static ryot_status lq_complete(task_queue *q, const task_msg *m, const char *result, size_t len, const char *count_key,
                               bool dead, bool *first, ryot_error *err) {
    lq *l = (lq *)q;
    unsigned char key[KEY_LEN];
    const bool have_key = key_of(m->ref, key);
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (rc) return lfail(err, rc, "begin");
    MDB_val rk = {strlen(m->id), (void *)m->id}, rv = {len, (void *)result};
    rc = mdb_put(t, l->res, &rk, &rv, MDB_NOOVERWRITE);
    *first = rc == 0;
    if (rc == MDB_KEYEXIST) rc = 0;
    if (!rc && *first && count_key) rc = counter_add(l, t, count_key);
    if (!rc && have_key) {
        MDB_val k = {KEY_LEN, key};
        if (dead) {
            const size_t il = strlen(m->id);
            MDB_val dv = {il + 1 + m->len, NULL};
            if (!(rc = mdb_put(t, l->dead, &k, &dv, MDB_RESERVE))) {
                memcpy(dv.mv_data, m->id, il + 1);
                if (m->len) memcpy((char *)dv.mv_data + il + 1, m->body, m->len);
            }
        }
        if (!rc) {
            rc = mdb_del(t, l->q, &k, NULL);
            if (rc == MDB_NOTFOUND) rc = 0; /* removed by whoever completed it first */
        }
    }
    if (rc) {
        mdb_txn_abort(t);
        *first = false;
        return lfail(err, rc, "complete");
    }
    if ((rc = mdb_txn_commit(t))) {
        *first = false;
        return lfail(err, rc, "commit");
    }
    return RYOT_OK;
}

static int lq_kv_get(task_queue *q, const char *ns, const char *key, char **val, size_t *len, ryot_error *err) {
    lq *l = (lq *)q;
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t);
    if (rc) {
        lfail(err, rc, "begin");
        return -1;
    }
    MDB_val k = {strlen(key), (void *)key}, v;
    rc = mdb_get(t, strcmp(ns, TASK_NS_RESULT) ? l->kv : l->res, &k, &v);
    int r = 0;
    if (!rc) {
        if (!(*val = malloc(v.mv_size + 1))) {
            ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
            r = -1;
        } else {
            if (v.mv_size) memcpy(*val, v.mv_data, v.mv_size);
            (*val)[v.mv_size] = 0;
            *len = v.mv_size;
            r = 1;
        }
    } else if (rc != MDB_NOTFOUND) {
        lfail(err, rc, "get");
        r = -1;
    }
    mdb_txn_abort(t);
    return r;
}

static ryot_status lq_kv_put(task_queue *q, const char *key, const char *val, size_t len, bool nx, bool *stored,
                             ryot_error *err) {
    lq *l = (lq *)q;
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (rc) return lfail(err, rc, "begin");
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    rc = mdb_put(t, l->kv, &k, &v, nx ? MDB_NOOVERWRITE : 0);
    *stored = rc == 0;
    if (rc == MDB_KEYEXIST) {
        mdb_txn_abort(t);
        return RYOT_OK;
    }
    if (rc) {
        mdb_txn_abort(t);
        return lfail(err, rc, "put");
    }
    if ((rc = mdb_txn_commit(t))) {
        *stored = false;
        return lfail(err, rc, "commit");
    }
    return RYOT_OK;
}

static ryot_status lq_stats(task_queue *q, task_queue_stats *out, ryot_error *err) {
    lq *l = (lq *)q;
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t);
    if (rc) return lfail(err, rc, "begin");
    MDB_stat s;
    mdb_stat(t, l->q, &s);
    out->outstanding = (int64_t)s.ms_entries;
    mdb_stat(t, l->dead, &s);
    out->dead = (int64_t)s.ms_entries;
    mdb_txn_abort(t);
    return RYOT_OK;
}

static ryot_status lq_index_add(task_queue *q, const char *index, const char *member, ryot_error *err) {
    lq *l = (lq *)q;
    const size_t il = strlen(index), ml = strlen(member);
    char *kb = malloc(il + 1 + ml);
    if (!kb) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    memcpy(kb, index, il);
    kb[il] = 0;
    memcpy(kb + il + 1, member, ml);
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (!rc) {
        MDB_val k = {il + 1 + ml, kb}, v = {0, ""};
        rc = mdb_put(t, l->idx, &k, &v, 0);
        if (rc) mdb_txn_abort(t);
        else rc = mdb_txn_commit(t);
    }
    free(kb);
    return rc ? lfail(err, rc, "index") : RYOT_OK;
}

static ryot_status lq_index_list(task_queue *q, const char *index, const char *after, int limit, char ***members,
                                 int *n, bool *more, ryot_error *err) {
    lq *l = (lq *)q;
    const size_t il = strlen(index), al = after ? strlen(after) : 0;
    char *start = malloc(il + 1 + al + 1);
    char **out = calloc((size_t)limit, sizeof *out);
    if (!start || !out) {
        free(start);
        free(out);
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    /* the first key at or past the start: "index NUL after", or past the
     * whole index ("index \x01") */
    memcpy(start, index, il);
    start[il] = after ? 0 : 1;
    if (after) memcpy(start + il + 1, after, al);
    MDB_txn *t;
    MDB_cursor *c = NULL;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t);
    if (!rc && (rc = mdb_cursor_open(t, l->idx, &c))) mdb_txn_abort(t);
    if (rc) {
        free(start);
        free(out);
        return lfail(err, rc, "list");
    }
    MDB_val k = {after ? il + 1 + al : il + 1, start}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = rc == MDB_NOTFOUND ? mdb_cursor_get(c, &k, &v, MDB_LAST) : mdb_cursor_get(c, &k, &v, MDB_PREV);
    int cnt = 0;
    for (; !rc; rc = mdb_cursor_get(c, &k, &v, MDB_PREV)) {
        if (k.mv_size <= il || memcmp(k.mv_data, index, il) || ((char *)k.mv_data)[il] != 0) break;
        if (cnt == limit) {
            *more = true;
            break;
        }
        const size_t ml = k.mv_size - il - 1;
        if (!(out[cnt] = malloc(ml + 1))) break;
        memcpy(out[cnt], (char *)k.mv_data + il + 1, ml);
        out[cnt++][ml] = 0;
    }
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    free(start);
    *members = out;
    *n = cnt;
    return RYOT_OK;
}

static const task_queue_ops lq_ops = {
    .name = "lmdb",
    .free = lq_free,
    .push = lq_push,
    .claim = lq_claim,
    .touch = lq_touch,
    .complete = lq_complete,
    .kv_get = lq_kv_get,
    .kv_put = lq_kv_put,
    .stats = lq_stats,
    .index_add = lq_index_add,
    .index_list = lq_index_list,
};

ryot_status task_queue_lmdb_open(const char *dir, const task_queue_params *p, task_queue **out, ryot_error *err) {
    *out = NULL;
    if (mkdir(dir, 0700) && errno != EEXIST)
        return ryot_fail(err, RYOT_ERR_IO, "--tasks-dir %s: %s", dir, strerror(errno));
    lq *l = calloc(1, sizeof *l);
    if (!l) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    task_queue_init_common(&l->base, &lq_ops, p);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    int rc = mdb_env_create(&l->env);
    if (!rc) rc = mdb_env_set_maxdbs(l->env, 8);
    if (!rc) rc = mdb_env_set_mapsize(l->env, MAP_SIZE);
    if (!rc) rc = mdb_env_open(l->env, dir, MDB_NOTLS, 0600);
    MDB_txn *t = NULL;
    if (!rc) rc = mdb_txn_begin(l->env, NULL, 0, &t);
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"q", &l->q}, {"res", &l->res}, {"kv", &l->kv}, {"idx", &l->idx}, {"dead", &l->dead}, {"meta", &l->meta}};
    for (size_t i = 0; !rc && i < sizeof dbs / sizeof dbs[0]; i++) rc = mdb_dbi_open(t, dbs[i].name, MDB_CREATE, dbs[i].dbi);
    if (t) {
        if (rc) mdb_txn_abort(t);
        else rc = mdb_txn_commit(t);
    }
    if (rc) {
        ryot_status st = ryot_fail(err, RYOT_ERR_IO, "--tasks-dir %s: %s", dir, mdb_strerror(rc));
        lq_free(&l->base);
        return st;
    }
    *out = &l->base;
    return RYOT_OK;
}
