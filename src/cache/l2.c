#include "cache/l2.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/clock.h"

#define MAGIC "RYC1"
#define HEADER (4 + CACHE_KEY_BYTES + 4)
#define MAX_RAW ((size_t)64 << 20) /* no record decompresses to more */
#define BACKOFF_MIN_S 0.1
#define BACKOFF_MAX_S 5.0
#define ZSTD_LEVEL 3

struct cache_l2 {
    pthread_mutex_t mu;
    char host[256];
    int port, db;
    int timeout_ms;
    int64_t ttl_s;
    redisContext *rc;    /* NULL: not connected */
    double next_try;     /* ryot_now_s() before which no connect is tried */
    double backoff;
    bool ever_connected;
    cache_l2_stats st;
};

ryot_status cache_l2_new(const char *url, int timeout_ms, int64_t ttl_s, cache_l2 **out, ryot_error *err) {
    *out = NULL;
    const char *p = url;
    if (strncmp(p, "redis://", 8))
        return ryot_fail(err, RYOT_ERR_INVALID, "--redis %s: expected redis://HOST[:PORT][/DB]", url);
    p += 8;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof ((cache_l2 *)0)->host)
        return ryot_fail(err, RYOT_ERR_INVALID, "--redis %s: missing or overlong host", url);
    long port = 6379, db = 0;
    const char *q = p + hl;
    char *end;
    if (*q == ':') {
        port = strtol(q + 1, &end, 10);
        if (end == q + 1 || port < 1 || port > 65535)
            return ryot_fail(err, RYOT_ERR_INVALID, "--redis %s: bad port", url);
        q = end;
    }
    if (*q == '/') {
        db = strtol(q + 1, &end, 10);
        if (end == q + 1 || db < 0 || db > 1 << 20) return ryot_fail(err, RYOT_ERR_INVALID, "--redis %s: bad db", url);
        q = end;
    }
    if (*q) return ryot_fail(err, RYOT_ERR_INVALID, "--redis %s: unexpected '%s'", url, q);
    cache_l2 *c = calloc(1, sizeof *c);
    if (!c) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    memcpy(c->host, p, hl);
    c->port = (int)port;
    c->db = (int)db;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5;
    c->ttl_s = ttl_s >= 1 ? ttl_s : 1;
    c->backoff = BACKOFF_MIN_S;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return RYOT_OK;
}

void cache_l2_free(cache_l2 *c) {
    if (!c) return;
    if (c->rc) redisFree(c->rc);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void cache_l2_redis_key(const cache_key *k, char out[CACHE_L2_KEY_MAX]) {
    char hex[2 * CACHE_KEY_BYTES + 1];
    cache_key_hex(k, hex);
    snprintf(out, CACHE_L2_KEY_MAX, "ryot:cache:%s", hex);
}

/* A failure: count it, drop the connection, back off. */
static void fail_locked(cache_l2 *c) {
    c->st.errors++;
    if (c->rc) redisFree(c->rc);
    c->rc = NULL;
    c->next_try = ryot_now_s() + c->backoff;
    c->backoff = c->backoff * 2 < BACKOFF_MAX_S ? c->backoff * 2 : BACKOFF_MAX_S;
}

static bool connected_locked(cache_l2 *c) {
    if (c->rc) return true;
    if (ryot_now_s() < c->next_try) return false;
    struct timeval tv = {.tv_sec = c->timeout_ms / 1000, .tv_usec = (c->timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(c->host, c->port, tv);
    if (!rc || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
        if (rc) redisFree(rc);
        fail_locked(c);
        return false;
    }
    c->rc = rc;
    if (c->db) {
        redisReply *r = redisCommand(rc, "SELECT %d", c->db);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
        if (!ok) {
            fail_locked(c);
            return false;
        }
    }
    if (c->ever_connected) c->st.reconnects++;
    c->ever_connected = true;
    c->backoff = BACKOFF_MIN_S;
    return true;
}

/* The value in a record, or false when it is not one of k's. */
static bool decode(const cache_key *k, const char *rec, size_t n, void **val, size_t *len) {
    if (n < HEADER || memcmp(rec, MAGIC, 4) || memcmp(rec + 4, k->b, CACHE_KEY_BYTES)) return false;
    const unsigned char *l = (const unsigned char *)rec + 4 + CACHE_KEY_BYTES;
    size_t raw = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
    if (raw > MAX_RAW) return false;
    unsigned long long fs = ZSTD_getFrameContentSize(rec + HEADER, n - HEADER);
    if (fs != raw) return false;
    void *out = malloc(raw ? raw : 1);
    if (!out) return false;
    size_t got = ZSTD_decompress(out, raw, rec + HEADER, n - HEADER);
    if (ZSTD_isError(got) || got != raw) {
        free(out);
        return false;
    }
    *val = out;
    *len = raw;
    return true;
}

bool cache_l2_get(cache_l2 *c, const cache_key *k, void **val, size_t *len) {
    char key[CACHE_L2_KEY_MAX];
    cache_l2_redis_key(k, key);
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    if (!connected_locked(c)) {
        c->st.misses++;
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    redisReply *r = redisCommand(c->rc, "GET %s", key);
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        fail_locked(c);
    } else if (r->type == REDIS_REPLY_STRING) {
        hit = decode(k, r->str, (size_t)r->len, val, len);
        if (!hit) c->st.corrupt++;
    }
    if (r) freeReplyObject(r);
    if (hit) c->st.hits++;
    else c->st.misses++;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void cache_l2_put(cache_l2 *c, const cache_key *k, const void *val, size_t len) {
    if (len > MAX_RAW) return;
    size_t bound = ZSTD_compressBound(len);
    char *rec = malloc(HEADER + bound);
    if (!rec) return;
    size_t z = ZSTD_compress(rec + HEADER, bound, val, len, ZSTD_LEVEL);
    if (ZSTD_isError(z)) {
        free(rec);
        return;
    }
    memcpy(rec, MAGIC, 4);
    memcpy(rec + 4, k->b, CACHE_KEY_BYTES);
    unsigned char *l = (unsigned char *)rec + 4 + CACHE_KEY_BYTES;
    for (int i = 0; i < 4; i++) l[i] = (unsigned char)(len >> (8 * i));
    char key[CACHE_L2_KEY_MAX];
    cache_l2_redis_key(k, key);
    pthread_mutex_lock(&c->mu);
    if (connected_locked(c)) {
        redisReply *r = redisCommand(c->rc, "SET %s %b EX %lld", key, rec, HEADER + z, (long long)c->ttl_s);
        if (!r || r->type != REDIS_REPLY_STATUS) fail_locked(c);
        else c->st.stores++;
        if (r) freeReplyObject(r);
    }
    pthread_mutex_unlock(&c->mu);
    free(rec);
}

void cache_l2_stats_get(cache_l2 *c, cache_l2_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->up = c->rc != NULL;
    pthread_mutex_unlock(&c->mu);
}
