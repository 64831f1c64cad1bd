/* Backend registration in Redis (see register.h). */
#include "router/register.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#define REG_TIMEOUT_MS 500

ryot_status rt_redis_url_parse(const char *url, char *host, size_t hn, int *port, int *db, ryot_error *err) {
    if (strncmp(url, "redis://", 8) != 0) return ryot_fail(err, RYOT_ERR_INVALID, "%s: not a redis:// URL", url);
    const char *p = url + 8;
    const size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= hn) return ryot_fail(err, RYOT_ERR_INVALID, "%s: missing or overlong host", url);
    memcpy(host, p, hl);
    host[hl] = 0;
    long pt = 6379, d = 0;
    const char *q = p + hl;
    char *end;
    if (*q == ':') {
        pt = strtol(q + 1, &end, 10);
        if (end == q + 1 || pt < 1 || pt > 65535) return ryot_fail(err, RYOT_ERR_INVALID, "%s: bad port", url);
        q = end;
    }
    if (*q == '/') {
        d = strtol(q + 1, &end, 10);
        if (end == q + 1 || d < 0 || d > 1 << 20) return ryot_fail(err, RYOT_ERR_INVALID, "%s: bad db", url);
        q = end;
    }
    if (*q) return ryot_fail(err, RYOT_ERR_INVALID, "%s: unexpected '%s'", url, q);
    *port = (int)pt;
    *db = (int)d;
    return RYOT_OK;
}

struct rt_register {
    char host[256];
    int port, db, ttl_ms;
    char key[600];
    char url[512];
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    redisContext *rc;
};

static redisContext *connect_db(rt_register *r) {
    if (r->rc) return r->rc;
    struct timeval tv = {.tv_sec = 0, .tv_usec = REG_TIMEOUT_MS * 1000};
    redisContext *rc = redisConnectWithTimeout(r->host, r->port, tv);
    if (!rc || rc->err) {
        if (rc) redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    if (r->db) {
        redisReply *x = redisCommand(rc, "SELECT %d", r->db);
        bool bad = !x || x->type == REDIS_REPLY_ERROR;
        if (x) freeReplyObject(x);
        if (bad) {
            redisFree(rc);
            return NULL;
        }
    }
    return r->rc = rc;
}

/* One command; a failure drops the connection (the next beat reconnects). */
static void command(rt_register *r, const char *fmt, const char *a, const char *b, int n) {
    redisContext *rc = connect_db(r);
    if (!rc) return;
    redisReply *x = b ? redisCommand(rc, fmt, a, b, n) : redisCommand(rc, fmt, a);
    bool bad = !x || x->type == REDIS_REPLY_ERROR;
    if (x) freeReplyObject(x);
    if (bad) {
        redisFree(rc);
        r->rc = NULL;
    }
}

static void *beat(void *arg) {
    rt_register *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        pthread_mutex_unlock(&r->mu);
        command(r, "SET %s %s PX %d", r->key, r->url, r->ttl_ms);
        pthread_mutex_lock(&r->mu);
        if (r->stop) break;
        struct timespec dl = ryot_deadline_ms(r->ttl_ms / 3 > 0 ? r->ttl_ms / 3 : 1);
        pthread_cond_timedwait(&r->cv, &r->mu, &dl);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

ryot_status rt_register_start(const char *redis_url, const char *advertise_url, int ttl_ms, rt_register **out,
                              ryot_error *err) {
    *out = NULL;
    rt_register *r = calloc(1, sizeof *r);
    if (!r) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    ryot_status st = rt_redis_url_parse(redis_url, r->host, sizeof r->host, &r->port, &r->db, err);
    if (!st && (strlen(advertise_url) >= sizeof r->url || strncmp(advertise_url, "http", 4) != 0))
        st = ryot_fail(err, RYOT_ERR_INVALID, "advertised URL '%.200s' is not an http:// URL", advertise_url);
    if (st) {
        free(r);
        return st;
    }
    snprintf(r->url, sizeof r->url, "%s", advertise_url);
    snprintf(r->key, sizeof r->key, "%s%s", RT_REGISTER_PREFIX, advertise_url);
    r->ttl_ms = ttl_ms > 0 ? ttl_ms : 3000;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->th, NULL, beat, r) != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return ryot_fail(err, RYOT_ERR_INTERNAL, "cannot start the registration thread");
    }
    *out = r;
    return RYOT_OK;
}

void rt_register_stop(rt_register *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    command(r, "DEL %s", r->key, NULL, 0);
    if (r->rc) redisFree(r->rc);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
