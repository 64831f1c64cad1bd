/* The task queue on Redis Streams (queue.h).
 *
 * Keys: ryot:tasks:q:<tier> (streams, entries {id, body}, consumer group
 * "ryot"), ryot:tasks:dead (the dead-letter stream), ryot:tasks:attempts
 * (hash: task id -> deliveries), ryot:tasks:result:<id>, ryot:tasks:kv:<key>,
 * ryot:tasks:idx:<index> (sorted sets, all scores 0, ordered by member).
 *
 * Two connections: one shared behind a mutex for short commands, one for
 * claims (a blocking XREADGROUP holds it for up to a second).  A claim
 * first, at most every RECLAIM_MS, hands itself a task idle for
 * visibility_ms in any tier (XAUTOCLAIM), then reads new ones tier by tier,
 * then blocks on all tiers.  The group is (re)created on every connect (a
 * Redis restarted without its data starts empty). */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "tasks/queue_impl.h"

#define BACKOFF_MIN_S 0.1
#define BACKOFF_MAX_S 5.0
#define RECLAIM_MS 500
#define BLOCK_MAX_MS 1000
#define GROUP "ryot"
#define STASH_MAX TASK_TIERS

typedef struct rconn {
    redisContext *rc;
    double next_try, backoff;
    int extra_ms; /* added to the command timeout (blocking reads) */
} rconn;

typedef struct rq {
    task_queue base;
    char host[256];
    int port, db;
    pthread_mutex_t mu; /* shared */
    rconn sh;
    pthread_mutex_t cmu; /* claims: cl, stash, last_reclaim */
    rconn cl;
    task_msg stash[STASH_MAX]; /* read together with a claimed one (a blocking read over tiers) */
    int n_stash;
    double last_reclaim;
} rq;

static const char *PUSH_LUA =
    "local total = 0\n"
    "for i = 1, 5 do total = total + redis.call('XLEN', KEYS[i]) end\n"
    "local n = (#ARGV - 2) / 2\n"
    "local max = tonumber(ARGV[1])\n"
    "if max > 0 and total + n > max then return -1 - total end\n"
    "local s = KEYS[tonumber(ARGV[2])]\n"
    "for i = 3, #ARGV, 2 do redis.call('XADD', s, '*', 'id', ARGV[i], 'body', ARGV[i + 1]) end\n"
    "return total + n\n";

/* KEYS: result, stream, attempts, counter, dead; ARGV: result, entry id,
 * group, task id, count?, dead?, body */
static const char *COMPLETE_LUA =
    "local first = redis.call('SET', KEYS[1], ARGV[1], 'NX')\n"
    "if first and ARGV[6] == '1' then redis.call('XADD', KEYS[5], '*', 'id', ARGV[4], 'body', ARGV[7]) end\n"
    "redis.call('XACK', KEYS[2], ARGV[3], ARGV[2])\n"
    "redis.call('XDEL', KEYS[2], ARGV[2])\n"
    "redis.call('HDEL', KEYS[3], ARGV[4])\n"
    "if first then\n"
    "  if ARGV[5] == '1' then redis.call('INCR', KEYS[4]) end\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

static void stream_key(int tier, char *out, size_t n) { snprintf(out, n, "ryot:tasks:q:%d", tier); }

static void rc_fail(rconn *c) {
    if (c->rc) redisFree(c->rc);
    c->rc = NULL;
    c->next_try = ryot_now_s() + c->backoff;
    c->backoff = c->backoff * 2 < BACKOFF_MAX_S ? c->backoff * 2 : BACKOFF_MAX_S;
}

static ryot_status down(ryot_error *err, const rq *r) {
    return ryot_fail(err, RYOT_ERR_UNAVAILABLE, "the task queue (Redis at %s:%d) is unreachable", r->host, r->port);
}

/* A reply of the expected kind, or NULL (the connection dropped). */
static redisReply *cmd(rconn *c, int argc, const char **argv, const size_t *lens) {
    redisReply *r = redisCommandArgv(c->rc, argc, argv, lens);
    if (!r) {
        rc_fail(c);
        return NULL;
    }
    return r;
}

static bool connected(rq *q, rconn *c) {
    if (c->rc) return true;
    if (ryot_now_s() < c->next_try) return false;
    const int ms = q->base.p.timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    const int cms = ms + c->extra_ms;
    struct timeval ctv = {.tv_sec = cms / 1000, .tv_usec = (cms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(q->host, q->port, tv);
    if (!rc || rc->err || redisSetTimeout(rc, ctv) != REDIS_OK) {
        if (rc) redisFree(rc);
        rc_fail(c);
        return false;
    }
    c->rc = rc;
    if (q->db) {
        redisReply *r = redisCommand(rc, "SELECT %d", q->db);
        const bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
        if (!ok) {
            rc_fail(c);
            return false;
        }
    }
    for (int t = 0; t < TASK_TIERS; t++) {
        char k[32];
        stream_key(t, k, sizeof k);
        redisReply *r = redisCommand(rc, "XGROUP CREATE %s " GROUP " 0 MKSTREAM", k);
        /* BUSYGROUP: it exists */
        const bool ok = r && (r->type == REDIS_REPLY_STATUS || (r->type == REDIS_REPLY_ERROR && strstr(r->str, "BUSYGROUP")));
        if (r) freeReplyObject(r);
        if (!ok) {
            rc_fail(c);
            return false;
        }
    }
    c->backoff = BACKOFF_MIN_S;
    return true;
}

static void rq_free(task_queue *q) {
    rq *r = (rq *)q;
    if (r->sh.rc) redisFree(r->sh.rc);
    if (r->cl.rc) redisFree(r->cl.rc);
    for (int i = 0; i < r->n_stash; i++) task_msg_free(&r->stash[i]);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->cmu);
    free(r);
}

static ryot_status rq_push(task_queue *q, int n, const char *const *ids, int tier, const char *const *bodies,
                           const size_t *lens, ryot_error *err) {
    rq *r = (rq *)q;
    const int argc = 3 + TASK_TIERS + 2 + 2 * n;
    const char **argv = calloc((size_t)argc, sizeof *argv);
    size_t *alen = calloc((size_t)argc, sizeof *alen);
    char keys[TASK_TIERS][32], nk[16], max[32], tk[16];
    if (!argv || !alen) {
        free(argv);
        free(alen);
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    int a = 0;
    argv[a++] = "EVAL";
    argv[a++] = PUSH_LUA;
    snprintf(nk, sizeof nk, "%d", TASK_TIERS);
    argv[a++] = nk;
    for (int t = 0; t < TASK_TIERS; t++) {
        stream_key(t, keys[t], sizeof keys[t]);
        argv[a++] = keys[t];
    }
    snprintf(max, sizeof max, "%lld", (long long)q->p.max_tasks);
    argv[a++] = max;
    snprintf(tk, sizeof tk, "%d", tier + 1);
    argv[a++] = tk;
    for (int i = 0; i < a; i++) alen[i] = strlen(argv[i]);
    for (int i = 0; i < n; i++) {
        argv[a] = ids[i];
        alen[a++] = strlen(ids[i]);
        argv[a] = bodies[i];
        alen[a++] = lens[i];
    }
    ryot_status st = RYOT_OK;
    pthread_mutex_lock(&r->mu);
    redisReply *rep = connected(r, &r->sh) ? cmd(&r->sh, argc, argv, alen) : NULL;
    if (!rep) {
        st = down(err, r);
    } else if (rep->type != REDIS_REPLY_INTEGER) {
        st = ryot_fail(err, RYOT_ERR_IO, "task queue push: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
    } else if (rep->integer < 0) {
        st = ryot_fail(err, RYOT_ERR_BUSY, "the task queue is full (%lld of %lld tasks outstanding)",
                       (long long)(-1 - rep->integer), (long long)q->p.max_tasks);
    }
    if (rep) freeReplyObject(rep);
    pthread_mutex_unlock(&r->mu);
    free(argv);
    free(alen);
    return st;
}

/* An entry [id, [field, value, ...]] of stream tier -> m (0), or -1 when malformed or out of memory. */
static int entry_msg(const redisReply *e, int tier, task_msg *m) {
    memset(m, 0, sizeof *m);
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY || e->element[0]->len >= sizeof m->ref)
        return -1;
    memcpy(m->ref, e->element[0]->str, e->element[0]->len);
    m->tier = tier;
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        if (!strcmp(k->str, "id") && v->len > 0 && v->len < TASK_ID_MAX) {
            memcpy(m->id, v->str, v->len);
            m->id[v->len] = 0;
        } else if (!strcmp(k->str, "body") && !m->body) {
            if (!(m->body = malloc(v->len + 1))) return -1;
            memcpy(m->body, v->str, v->len);
            m->body[v->len] = 0;
            m->len = v->len;
        }
    }
    if (!m->id[0] || !m->body) {
        task_msg_free(m);
        return -1;
    }
    return 0;
}

/* Removes a malformed entry so that it is not delivered forever. */
static void drop_entry(rq *r, int tier, const char *ref) {
    char k[32];
    stream_key(tier, k, sizeof k);
    redisReply *x = redisCommand(r->cl.rc, "XACK %s " GROUP " %s", k, ref);
    if (x) freeReplyObject(x);
    if (r->cl.rc && (x = redisCommand(r->cl.rc, "XDEL %s %s", k, ref))) freeReplyObject(x);
}

/* XAUTOCLAIM over the tiers: 1 with *m, 0 none, -1 connection lost. */
static int reclaim(rq *r, task_msg *m) {
    for (int t = 0; t < TASK_TIERS; t++) {
        char k[32];
        stream_key(t, k, sizeof k);
        redisReply *x = redisCommand(r->cl.rc, "XAUTOCLAIM %s " GROUP " %s %lld 0-0 COUNT 1", k, r->base.consumer,
                                     (long long)r->base.p.visibility_ms);
        if (!x) {
            rc_fail(&r->cl);
            return -1;
        }
        int got = 0;
        if (x->type == REDIS_REPLY_ARRAY && x->elements >= 2 && x->element[1]->type == REDIS_REPLY_ARRAY &&
            x->element[1]->elements >= 1) {
            const redisReply *e = x->element[1]->element[0];
            if (entry_msg(e, t, m) == 0) got = 1;
            else if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->type == REDIS_REPLY_STRING)
                drop_entry(r, t, e->element[0]->str);
        }
        freeReplyObject(x);
        if (got) return 1;
    }
    return 0;
}

/* XREADGROUP over the tiers (block_ms < 0: no blocking): 1 with *m (more in
 * the stash), 0 none, -1 connection lost. */
static int read_new(rq *r, int block_ms, task_msg *m) {
    const char *argv[10 + 2 * TASK_TIERS];
    char keys[TASK_TIERS][32], blk[16];
    int a = 0;
    argv[a++] = "XREADGROUP";
    argv[a++] = "GROUP";
    argv[a++] = GROUP;
    argv[a++] = r->base.consumer;
    argv[a++] = "COUNT";
    argv[a++] = "1";
    if (block_ms >= 0) {
        snprintf(blk, sizeof blk, "%d", block_ms);
        argv[a++] = "BLOCK";
        argv[a++] = blk;
    }
    argv[a++] = "STREAMS";
    for (int t = 0; t < TASK_TIERS; t++) {
        stream_key(t, keys[t], sizeof keys[t]);
        argv[a++] = keys[t];
    }
    for (int t = 0; t < TASK_TIERS; t++) argv[a++] = ">";
    size_t lens[10 + 2 * TASK_TIERS];
    for (int i = 0; i < a; i++) lens[i] = strlen(argv[i]);
    redisReply *x = cmd(&r->cl, a, argv, lens);
    if (!x) return -1;
    int got = 0;
    if (x->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < x->elements; s++) {
            const redisReply *sr = x->element[s];
            if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 || sr->element[0]->type != REDIS_REPLY_STRING ||
                sr->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const char *name = sr->element[0]->str;
            const int tier = (int)strtol(name + strlen("ryot:tasks:q:"), NULL, 10);
            for (size_t i = 0; i < sr->element[1]->elements; i++) {
                const redisReply *e = sr->element[1]->element[i];
                task_msg t;
                if (entry_msg(e, tier, &t)) {
                    if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->type == REDIS_REPLY_STRING)
                        drop_entry(r, tier, e->element[0]->str);
                    continue;
                }
                if (!got || t.tier < m->tier) { /* keep the most urgent, stash the other */
                    if (got && r->n_stash < STASH_MAX) r->stash[r->n_stash++] = *m;
                    else if (got) task_msg_free(m);
                    *m = t;
                    got = 1;
                } else if (r->n_stash < STASH_MAX) {
                    r->stash[r->n_stash++] = t;
                } else {
                    task_msg_free(&t); /* still pending for us: reclaimed after the visibility timeout */
                }
            }
        }
    }
    freeReplyObject(x);
    return got;
}

/* Counts a delivery: the attempt number, or -1 (connection lost). */
static int count_attempt(rq *r, const char *id) {
    redisReply *x = redisCommand(r->cl.rc, "HINCRBY ryot:tasks:attempts %s 1", id);
    if (!x) {
        rc_fail(&r->cl);
        return -1;
    }
    const int n = x->type == REDIS_REPLY_INTEGER ? (int)x->integer : 1;
    freeReplyObject(x);
    return n;
}

static int rq_claim(task_queue *q, int wait_ms, task_msg *out, ryot_error *err) {
    rq *r = (rq *)q;
    const double end = ryot_now_s() + wait_ms / 1000.0;
    pthread_mutex_lock(&r->cmu);
    int got = 0;
    for (;;) {
        if (r->n_stash) {
            int best = 0;
            for (int i = 1; i < r->n_stash; i++)
                if (r->stash[i].tier < r->stash[best].tier) best = i;
            *out = r->stash[best];
            r->stash[best] = r->stash[--r->n_stash];
            got = 1;
        }
        if (!got && !connected(r, &r->cl)) {
            got = -1;
        } else if (!got && ryot_now_s() - r->last_reclaim >= RECLAIM_MS / 1000.0) {
            r->last_reclaim = ryot_now_s();
            got = reclaim(r, out);
        }
        if (!got) got = read_new(r, -1, out);
        if (!got) {
            const double left = end - ryot_now_s();
            if (left > 0) {
                int ms = (int)(left * 1000);
                if (ms > BLOCK_MAX_MS) ms = BLOCK_MAX_MS;
                got = read_new(r, ms < 1 ? 1 : ms, out);
            }
        }
        if (got == 1) {
            const int n = count_attempt(r, out->id);
            if (n < 0) {
                /* lost with the connection: pending for us, reclaimed later */
                task_msg_free(out);
                got = -1;
            } else {
                out->attempt = n;
            }
        }
        if (got || ryot_now_s() >= end) break;
    }
    pthread_mutex_unlock(&r->cmu);
    if (got < 0) {
        down(err, r);
        /* do not spin on a dead Redis: the caller retries after this */
        const double left = end - ryot_now_s();
        if (left > 0) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)((left < 0.1 ? left : 0.1) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    return got;
}

static ryot_status rq_touch(task_queue *q, const task_msg *m, ryot_error *err) {
    rq *r = (rq *)q;
    char k[32];
    stream_key(m->tier, k, sizeof k);
    ryot_status st = RYOT_OK;
    pthread_mutex_lock(&r->mu);
    redisReply *x = connected(r, &r->sh)
                        ? redisCommand(r->sh.rc, "XCLAIM %s " GROUP " %s 0 %s JUSTID", k, q->consumer, m->ref)
                        : NULL;
    if (!x) {
        if (r->sh.rc) rc_fail(&r->sh);
        st = down(err, r);
    } else {
        freeReplyObject(x);
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

static ryot_status rq_complete(task_queue *q, const task_msg *m, const char *result, size_t len, const char *count_key,
                               bool dead, bool *first, ryot_error *err) {
    rq *r = (rq *)q;
    char rk[TASK_ID_MAX + 32], sk[32], ck[TASK_ID_MAX + 256];
    snprintf(rk, sizeof rk, "ryot:tasks:result:%s", m->id);
    stream_key(m->tier, sk, sizeof sk);
    snprintf(ck, sizeof ck, "ryot:tasks:kv:%s", count_key ? count_key : "-");
    const char *argv[] = {"EVAL", COMPLETE_LUA, "5", rk, sk, "ryot:tasks:attempts", ck, "ryot:tasks:dead",
                          result, m->ref, GROUP, m->id, count_key ? "1" : "0", dead ? "1" : "0",
                          m->body ? m->body : ""};
    const int argc = (int)(sizeof argv / sizeof argv[0]);
    size_t lens[sizeof argv / sizeof argv[0]];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    lens[8] = len;
    lens[14] = m->body ? m->len : 0;
    ryot_status st = RYOT_OK;
    *first = false;
    pthread_mutex_lock(&r->mu);
    redisReply *x = connected(r, &r->sh) ? cmd(&r->sh, argc, argv, lens) : NULL;
    if (!x) st = down(err, r);
    else if (x->type != REDIS_REPLY_INTEGER)
        st = ryot_fail(err, RYOT_ERR_IO, "task queue complete: %s", x->type == REDIS_REPLY_ERROR ? x->str : "bad reply");
    else *first = x->integer == 1;
    if (x) freeReplyObject(x);
    pthread_mutex_unlock(&r->mu);
    return st;
}

static int rq_kv_get(task_queue *q, const char *ns, const char *key, char **val, size_t *len, ryot_error *err) {
    rq *r = (rq *)q;
    const size_t kl = strlen(key);
    char *k = malloc(kl + 32);
    if (!k) {
        ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        return -1;
    }
    const int n = snprintf(k, kl + 32, "ryot:tasks:%s:%s", ns, key);
    const char *argv[] = {"GET", k};
    const size_t lens[] = {3, (size_t)n};
    int ret = 0;
    pthread_mutex_lock(&r->mu);
    redisReply *x = connected(r, &r->sh) ? cmd(&r->sh, 2, argv, lens) : NULL;
    if (!x) {
        down(err, r);
        ret = -1;
    } else if (x->type == REDIS_REPLY_STRING) {
        if ((*val = malloc(x->len + 1))) {
            memcpy(*val, x->str, x->len);
            (*val)[x->len] = 0;
            *len = x->len;
            ret = 1;
        } else {
            ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
            ret = -1;
        }
    } else if (x->type != REDIS_REPLY_NIL) {
        ryot_fail(err, RYOT_ERR_IO, "task store get: %s", x->type == REDIS_REPLY_ERROR ? x->str : "bad reply");
        ret = -1;
    }
    if (x) freeReplyObject(x);
    pthread_mutex_unlock(&r->mu);
    free(k);
    return ret;
}

static ryot_status rq_kv_put(task_queue *q, const char *key, const char *val, size_t len, bool nx, bool *stored,
                             ryot_error *err) {
    rq *r = (rq *)q;
    const size_t kl = strlen(key);
    char *k = malloc(kl + 32);
    if (!k) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    const int n = snprintf(k, kl + 32, "ryot:tasks:kv:%s", key);
    const char *argv[] = {"SET", k, val, "NX"};
    const size_t lens[] = {3, (size_t)n, len, 2};
    ryot_status st = RYOT_OK;
    *stored = false;
    pthread_mutex_lock(&r->mu);
    redisReply *x = connected(r, &r->sh) ? cmd(&r->sh, nx ? 4 : 3, argv, lens) : NULL;
    if (!x) st = down(err, r);
    else if (x->type == REDIS_REPLY_STATUS) *stored = true;
    else if (x->type != REDIS_REPLY_NIL)
        st = ryot_fail(err, RYOT_ERR_IO, "task store put: %s", x->type == REDIS_REPLY_ERROR ? x->str : "bad reply");
    if (x) freeReplyObject(x);
    pthread_mutex_unlock(&r->mu);
    free(k);
    return st;
}

static ryot_status rq_stats(task_queue *q, task_queue_stats *out, ryot_error *err) {
    rq *r = (rq *)q;
    ryot_status st = RYOT_OK;
    pthread_mutex_lock(&r->mu);
    for (int t = 0; t <= TASK_TIERS && !st; t++) {
        char k[32];
        if (t < TASK_TIERS) stream_key(t, k, sizeof k);
        else snprintf(k, sizeof k, "ryot:tasks:dead");
        redisReply *x = connected(r, &r->sh) ? redisCommand(r->sh.rc, "XLEN %s", k) : NULL;
        if (!x) {
            if (r->sh.rc) rc_fail(&r->sh);
            st = down(err, r);
            break;
        }
        const int64_t v = x->type == REDIS_REPLY_INTEGER ? (int64_t)x->integer : 0;
        if (t < TASK_TIERS) out->outstanding += v;
        else out->dead = v;
        freeReplyObject(x);
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

static ryot_status rq_index_add(task_queue *q, const char *index, const char *member, ryot_error *err) {
    rq *r = (rq *)q;
    ryot_status st = RYOT_OK;
    pthread_mutex_lock(&r->mu);
    redisReply *x = connected(r, &r->sh) ? redisCommand(r->sh.rc, "ZADD ryot:tasks:idx:%s 0 %s", index, member) : NULL;
    if (!x) {
        if (r->sh.rc) rc_fail(&r->sh);
        st = down(err, r);
    } else {
        if (x->type == REDIS_REPLY_ERROR) st = ryot_fail(err, RYOT_ERR_IO, "task index: %s", x->str);
        freeReplyObject(x);
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

static ryot_status rq_index_list(task_queue *q, const char *index, const char *after, int limit, char ***members,
                                 int *n, bool *more, ryot_error *err) {
    rq *r = (rq *)q;
    char start[TASK_ID_MAX + 2];
    if (after) snprintf(start, sizeof start, "(%s", after);
    else snprintf(start, sizeof start, "+");
    ryot_status st = RYOT_OK;
    pthread_mutex_lock(&r->mu);
    redisReply *x = connected(r, &r->sh) ? redisCommand(r->sh.rc, "ZREVRANGEBYLEX ryot:tasks:idx:%s %s - LIMIT 0 %d",
                                                        index, start, limit + 1)
                                         : NULL;
    if (!x) {
        if (r->sh.rc) rc_fail(&r->sh);
        st = down(err, r);
    } else if (x->type == REDIS_REPLY_ARRAY) {
        char **out = calloc((size_t)limit, sizeof *out);
        int cnt = 0;
        for (size_t i = 0; out && i < x->elements; i++) {
            if ((int)i == limit) {
                *more = true;
                break;
            }
            if (x->element[i]->type == REDIS_REPLY_STRING && (out[cnt] = strdup(x->element[i]->str))) cnt++;
        }
        if (!out) st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        *members = out;
        *n = cnt;
    } else {
        st = ryot_fail(err, RYOT_ERR_IO, "task index list: %s", x->type == REDIS_REPLY_ERROR ? x->str : "bad reply");
    }
    if (x) freeReplyObject(x);
    pthread_mutex_unlock(&r->mu);
    return st;
}

static const task_queue_ops rq_ops = {
    .name = "redis",
    .free = rq_free,
    .push = rq_push,
    .claim = rq_claim,
    .touch = rq_touch,
    .complete = rq_complete,
    .kv_get = rq_kv_get,
    .kv_put = rq_kv_put,
    .stats = rq_stats,
    .index_add = rq_index_add,
    .index_list = rq_index_list,
};

ryot_status task_queue_redis_open(const char *url, const task_queue_params *p, task_queue **out, ryot_error *err) {
    *out = NULL;
    const char *s = url;
    if (strncmp(s, "redis://", 8))
        return ryot_fail(err, RYOT_ERR_INVALID, "task queue %s: expected redis://HOST[:PORT][/DB]", url);
    s += 8;
    const size_t hl = strcspn(s, ":/");
    if (hl == 0 || hl >= sizeof ((rq *)0)->host)
        return ryot_fail(err, RYOT_ERR_INVALID, "task queue %s: missing or overlong host", url);
    long port = 6379, db = 0;
    const char *t = s + hl;
    char *end;
    if (*t == ':') {
        port = strtol(t + 1, &end, 10);
        if (end == t + 1 || port < 1 || port > 65535)
            return ryot_fail(err, RYOT_ERR_INVALID, "task queue %s: bad port", url);
        t = end;
    }
    if (*t == '/') {
        db = strtol(t + 1, &end, 10);
        if (end == t + 1 || db < 0 || db > 1 << 20) return ryot_fail(err, RYOT_ERR_INVALID, "task queue %s: bad db", url);
        t = end;
    }
    if (*t) return ryot_fail(err, RYOT_ERR_INVALID, "task queue %s: unexpected '%s'", url, t);
    rq *r = calloc(1, sizeof *r);
    if (!r) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    task_queue_init_common(&r->base, &rq_ops, p);
    memcpy(r->host, s, hl);
    r->port = (int)port;
    r->db = (int)db;
    r->sh.backoff = r->cl.backoff = BACKOFF_MIN_S;
    r->cl.extra_ms = BLOCK_MAX_MS;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->cmu, NULL);
    *out = &r->base;
    return RYOT_OK;
}
