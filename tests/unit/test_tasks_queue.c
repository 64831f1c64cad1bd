/* The task queue (tasks/queue.h), the same semantic checks on both
 * backends: the embedded LMDB one in a temporary directory, and Redis
 * Streams against a real redis-server started here on a free port (the
 * Redis group is skipped when redis-server is not installed).
 * Checked: tier order then FIFO, the visibility timeout (a silent claim is
 * delivered again with its attempt counted, a touched one is not), first
 * result wins with its counter counted once, the dead-letter list, the
 * max_tasks bound (all or nothing), the key-value space, ordered indexes,
 * and (LMDB) that tasks survive closing and reopening. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tasks/queue.h"

#define VIS_MS 300

typedef struct fixture {
    bool redis;
    char dir[64];
    char url[64];
    pid_t pid;
    int port;
} fixture;

static fixture g_redis, g_lmdb;

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) || getsockname(s, (struct sockaddr *)&a, &l)) {
        close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

static bool redis_ping(int port) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

static void redis_flush(int port) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "FLUSHALL");
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
}

static int start_redis(void **state) {
    fixture *f = &g_redis;
    f->redis = true;
    f->port = free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", f->port);
    f->pid = fork();
    if (f->pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
               "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250 && !redis_ping(f->port); i++) {
        int st;
        if (waitpid(f->pid, &st, WNOHANG) == f->pid) {
            f->pid = 0;
            break;
        }
        sleep_ms(20);
    }
    if (!f->pid || !redis_ping(f->port)) {
        fprintf(stderr, "test_tasks_queue: redis-server did not start; skipping the Redis backend\n");
        if (f->pid) kill(f->pid, SIGKILL);
        f->pid = 0;
    }
    snprintf(f->url, sizeof f->url, "redis://127.0.0.1:%d", f->port);
    *state = f;
    return 0;
}

static int stop_redis(void **state) {
    (void)state;
    if (g_redis.pid) {
        kill(g_redis.pid, SIGKILL);
        waitpid(g_redis.pid, NULL, 0);
    }
    return 0;
}

static int setup_lmdb(void **state) {
    *state = &g_lmdb;
    return 0;
}

/* A fresh queue of the fixture's kind (empty store). */
static task_queue *open_q(void **state, int64_t max_tasks, const char *consumer) {
    fixture *f = *state;
    task_queue_params p = {.consumer = consumer, .visibility_ms = VIS_MS, .max_tasks = max_tasks, .timeout_ms = 1000};
    task_queue *q = NULL;
    ryot_error err = {0};
    if (f->redis) {
        if (!f->pid) return NULL;
        assert_int_equal(task_queue_open_redis(f->url, &p, &q, &err), RYOT_OK);
    } else {
        assert_int_equal(task_queue_open_dir(f->dir, &p, &q, &err), RYOT_OK);
    }
    return q;
}

static int fresh(void **state) {
    fixture *f = *state;
    if (f->redis) {
        if (f->pid) redis_flush(f->port);
    } else {
        snprintf(f->dir, sizeof f->dir, "/tmp/ryot-tq-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
    }
    return 0;
}

static int cleanup(void **state) {
    fixture *f = *state;
    if (!f->redis && f->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        f->dir[0] = 0;
    }
    return 0;
}

static void push1(task_queue *q, const char *id, int tier, const char *body) {
    const char *ids[1] = {id}, *bodies[1] = {body};
    size_t lens[1] = {strlen(body)};
    ryot_error err = {0};
    assert_int_equal(task_queue_push(q, 1, ids, tier, bodies, lens, &err), RYOT_OK);
}

static void claim_expect(task_queue *q, const char *id, int attempt, task_msg *m) {
    ryot_error err = {0};
    assert_int_equal(task_queue_claim(q, 0, m, &err), 1);
    assert_string_equal(m->id, id);
    assert_int_equal(m->attempt, attempt);
}

static void claim_none(task_queue *q) {
    task_msg m;
    ryot_error err = {0};
    assert_int_equal(task_queue_claim(q, 0, &m, &err), 0);
}

static void complete(task_queue *q, task_msg *m, const char *res, const char *counter, bool want_first) {
    bool first = !want_first;
    ryot_error err = {0};
    assert_int_equal(task_queue_complete(q, m, res, strlen(res), counter, &first, &err), RYOT_OK);
    assert_int_equal(first, want_first);
}

static void test_order(void **state) {
    task_queue *q = open_q(state, 0, "c1");
    if (!q) skip();
    push1(q, "a", 4, "A");
    push1(q, "b", 2, "B");
    push1(q, "c", 4, "C");
    push1(q, "d", 0, "D");
    const char *want[] = {"d", "b", "a", "c"};
    const char *body[] = {"D", "B", "A", "C"};
    for (int i = 0; i < 4; i++) {
        task_msg m;
        claim_expect(q, want[i], 1, &m);
        assert_string_equal(m.body, body[i]);
        assert_int_equal(m.len, 1);
        complete(q, &m, "ok", NULL, true);
        task_msg_free(&m);
    }
    claim_none(q);
    /* a claim that waits returns once something is pushed meanwhile, or after the wait */
    task_msg m;
    ryot_error err = {0};
    assert_int_equal(task_queue_claim(q, 50, &m, &err), 0);
    task_queue_stats st;
    assert_int_equal(task_queue_stats_get(q, &st, &err), RYOT_OK);
    assert_int_equal(st.outstanding, 0);
    task_queue_free(q);
}

static void test_visibility(void **state) {
    task_queue *q = open_q(state, 0, "c1");
    if (!q) skip();
    task_queue *q2 = open_q(state, 0, "c2"); /* another consumer (instance) */
    push1(q, "t1", 3, "body1");
    task_msg a, b;
    claim_expect(q, "t1", 1, &a);
    claim_none(q2); /* claimed, not yet stale */
    sleep_ms(VIS_MS + 700);  /* past the visibility timeout and the Redis reclaim interval */
    claim_expect(q2, "t1", 2, &b); /* consumer 1 "died": delivered again, attempt 2 */
    assert_string_equal(b.body, "body1");
    /* b's worker keeps it alive with touch: not delivered a third time */
    for (int i = 0; i < 4; i++) {
        sleep_ms(VIS_MS / 2);
        ryot_error err = {0};
        assert_int_equal(task_queue_touch(q2, &b, &err), RYOT_OK);
    }
    claim_none(q);
    /* both finish: the first result wins and the counter counts once */
    complete(q2, &b, "result-b", "cnt", true);
    complete(q, &a, "result-a", "cnt", false);
    char *v = NULL;
    size_t n = 0;
    ryot_error err = {0};
    assert_int_equal(task_queue_result(q, "t1", &v, &n, &err), 1);
    assert_string_equal(v, "result-b");
    free(v);
    int64_t c = -1;
    assert_int_equal(task_kv_counter(q, "cnt", &c, &err), RYOT_OK);
    assert_int_equal(c, 1);
    assert_int_equal(task_queue_result(q, "nope", &v, &n, &err), 0);
    task_queue_stats st;
    assert_int_equal(task_queue_stats_get(q, &st, &err), RYOT_OK);
    assert_int_equal(st.outstanding, 0);
    task_msg_free(&a);
    task_msg_free(&b);
    task_queue_free(q2);
    task_queue_free(q);
}

static void test_dead_letter(void **state) {
    task_queue *q = open_q(state, 0, "c1");
    if (!q) skip();
    push1(q, "x", 1, "poison");
    task_msg m;
    claim_expect(q, "x", 1, &m);
    bool first = false;
    ryot_error err = {0};
    assert_int_equal(task_queue_dead(q, &m, "{\"failed\":1}", 12, "fails", &first, &err), RYOT_OK);
    assert_true(first);
    task_msg_free(&m);
    claim_none(q);
    task_queue_stats st;
    assert_int_equal(task_queue_stats_get(q, &st, &err), RYOT_OK);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.dead, 1);
    int64_t c = 0;
    assert_int_equal(task_kv_counter(q, "fails", &c, &err), RYOT_OK);
    assert_int_equal(c, 1);
    task_queue_free(q);
}

static void test_max_tasks(void **state) {
    task_queue *q = open_q(state, 3, "c1");
    if (!q) skip();
    const char *ids[3] = {"m1", "m2", "m3"}, *bodies[3] = {"1", "2", "3"};
    size_t lens[3] = {1, 1, 1};
    ryot_error err = {0};
    assert_int_equal(task_queue_push(q, 2, ids, 2, bodies, lens, &err), RYOT_OK);
    /* two more would be 4 > 3: refused, and neither is queued */
    const char *ids2[2] = {"m3", "m4"};
    assert_int_equal(task_queue_push(q, 2, ids2, 2, bodies, lens, &err), RYOT_ERR_BUSY);
    assert_non_null(strstr(err.msg, "full"));
    push1(q, "m3", 2, "3");
    assert_int_equal(task_queue_push(q, 1, ids2 + 1, 2, bodies, lens, &err), RYOT_ERR_BUSY);
    /* a claimed task still counts; a completed one does not */
    task_msg m;
    claim_expect(q, "m1", 1, &m);
    assert_int_equal(task_queue_push(q, 1, ids2 + 1, 2, bodies, lens, &err), RYOT_ERR_BUSY);
    complete(q, &m, "r", NULL, true);
    task_msg_free(&m);
    assert_int_equal(task_queue_push(q, 1, ids2 + 1, 2, bodies, lens, &err), RYOT_OK);
    const char *want[] = {"m2", "m3", "m4"};
    for (int i = 0; i < 3; i++) {
        claim_expect(q, want[i], 1, &m);
        complete(q, &m, "r", NULL, true);
        task_msg_free(&m);
    }
    claim_none(q);
    task_queue_free(q);
}

static void test_kv_index(void **state) {
    task_queue *q = open_q(state, 0, "c1");
    if (!q) skip();
    ryot_error err = {0};
    bool stored = false;
    assert_int_equal(task_kv_put(q, "obj:1", "one", 3, true, &stored, &err), RYOT_OK);
    assert_true(stored);
    assert_int_equal(task_kv_put(q, "obj:1", "uno", 3, true, &stored, &err), RYOT_OK);
    assert_false(stored);
    char *v = NULL;
    size_t n = 0;
    assert_int_equal(task_kv_get(q, "obj:1", &v, &n, &err), 1);
    assert_string_equal(v, "one");
    free(v);
    assert_int_equal(task_kv_put(q, "obj:1", "eins", 4, false, &stored, &err), RYOT_OK);
    assert_true(stored);
    assert_int_equal(task_kv_get(q, "obj:1", &v, &n, &err), 1);
    assert_int_equal(n, 4);
    assert_string_equal(v, "eins");
    free(v);
    assert_int_equal(task_kv_get(q, "obj:2", &v, &n, &err), 0);
    /* binary values keep their length */
    assert_int_equal(task_kv_put(q, "bin", "a\0b", 3, false, &stored, &err), RYOT_OK);
    assert_int_equal(task_kv_get(q, "bin", &v, &n, &err), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "a\0b", 3);
    free(v);

    const char *mem[] = {"batch_0001", "batch_0003", "batch_0002", "batch_0004"};
    for (int i = 0; i < 4; i++) assert_int_equal(task_index_add(q, "batches", mem[i], &err), RYOT_OK);
    assert_int_equal(task_index_add(q, "other", "zzz", &err), RYOT_OK);
    assert_int_equal(task_index_add(q, "batchez", "x", &err), RYOT_OK);
    char **m;
    int cnt;
    bool more;
    assert_int_equal(task_index_list(q, "batches", NULL, 3, &m, &cnt, &more, &err), RYOT_OK);
    assert_int_equal(cnt, 3);
    assert_true(more);
    assert_string_equal(m[0], "batch_0004");
    assert_string_equal(m[1], "batch_0003");
    assert_string_equal(m[2], "batch_0002");
    task_index_list_free(m, cnt);
    assert_int_equal(task_index_list(q, "batches", "batch_0002", 3, &m, &cnt, &more, &err), RYOT_OK);
    assert_int_equal(cnt, 1);
    assert_false(more);
    assert_string_equal(m[0], "batch_0001");
    task_index_list_free(m, cnt);
    assert_int_equal(task_index_list(q, "batches", "batch_0001", 3, &m, &cnt, &more, &err), RYOT_OK);
    assert_int_equal(cnt, 0);
    task_index_list_free(m, cnt);
    assert_int_equal(task_index_list(q, "none", NULL, 3, &m, &cnt, &more, &err), RYOT_OK);
    assert_int_equal(cnt, 0);
    task_index_list_free(m, cnt);
    task_queue_free(q);
}

/* A restart keeps queued and claimed tasks and results (LMDB). */
static void test_reopen(void **state) {
    task_queue *q = open_q(state, 0, "c1");
    push1(q, "p1", 4, "one");
    push1(q, "p2", 4, "two");
    task_msg m;
    claim_expect(q, "p1", 1, &m);
    task_msg_free(&m); /* the process "dies" holding p1 */
    task_queue_free(q);
    q = open_q(state, 0, "c1");
    claim_expect(q, "p2", 1, &m);
    complete(q, &m, "done", NULL, true);
    task_msg_free(&m);
    claim_none(q);
    sleep_ms(VIS_MS + 50);
    claim_expect(q, "p1", 2, &m);
    complete(q, &m, "done", NULL, true);
    task_msg_free(&m);
    char *v;
    size_t n;
    ryot_error err = {0};
    assert_int_equal(task_queue_result(q, "p2", &v, &n, &err), 1);
    free(v);
    task_queue_free(q);
}

/* A Redis that is not there: calls fail with UNAVAILABLE, quickly. */
static void test_redis_down(void **state) {
    (void)state;
    task_queue_params p = {.timeout_ms = 200};
    task_queue *q;
    ryot_error err = {0};
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    assert_int_equal(task_queue_open_redis(url, &p, &q, &err), RYOT_OK);
    const char *ids[1] = {"a"}, *bodies[1] = {"b"};
    size_t lens[1] = {1};
    assert_int_equal(task_queue_push(q, 1, ids, 0, bodies, lens, &err), RYOT_ERR_UNAVAILABLE);
    task_msg m;
    assert_int_equal(task_queue_claim(q, 0, &m, &err), -1);
    assert_int_equal(err.code, RYOT_ERR_UNAVAILABLE);
    task_queue_free(q);
    assert_int_equal(task_queue_open_redis("http://x", &p, &q, &err), RYOT_ERR_INVALID);
    assert_int_equal(task_queue_open_redis("redis://h:99999", &p, &q, &err), RYOT_ERR_INVALID);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest lmdb[] = {
        cmocka_unit_test_setup_teardown(test_order, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_visibility, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_dead_letter, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_max_tasks, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_kv_index, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_reopen, fresh, cleanup),
    };
    const struct CMUnitTest redis[] = {
        cmocka_unit_test_setup_teardown(test_order, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_visibility, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_dead_letter, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_max_tasks, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_kv_index, fresh, cleanup),
        cmocka_unit_test(test_redis_down),
    };
    int rc = cmocka_run_group_tests_name("lmdb", lmdb, setup_lmdb, NULL);
    rc |= cmocka_run_group_tests_name("redis", redis, start_redis, stop_redis);
    return rc;
}
