/* Sessions API (sessions.h): prefill-only jobs through the runner, whose
 * finished sequences write their blocks to the store, plus the session
 * records themselves. */
#include "server/sessions.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "server/openai.h"
#include "server/request.h"

static int fail(char **json, int status, const char *param, const char *code, const char *msg) {
    srv_error e;
    srv_error_set(&e, status, param, "%s", msg);
    if (code) e.code = code;
    *json = srv_json_error(&e);
    return status;
}

static int ok(char **json, json_t *o) {
    *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *json ? 200 : fail(json, 503, NULL, NULL, "out of memory");
}

/* Runs tokens as a prefill-only job (max_tokens 0) and waits for it. */
static int prefill(sched_runner *r, const int32_t *toks, int n, int64_t *cached, char **json) {
    const int32_t *prompts[1] = {toks};
    const int n_prompt[1] = {n};
    ryot_sampler_params sp = srv_request_openai_sampling();
    sp.temperature = 0;
    const sched_job_spec spec = {.id = "session", .prompts = prompts, .n_prompt = n_prompt, .n_prompts = 1,
                                 .prompt_param = "messages", .n = 1, .max_tokens = 0, .sp = sp,
                                 .tier = SCHED_NORMAL};
    sched_error se;
    sched_job *j = sched_job_new(r, &spec, &se);
    if (!j || sched_submit(r, j, &se)) {
        if (j) sched_job_unref(j);
        return fail(json, se.code == RYOT_ERR_INVALID ? 400 : se.code == RYOT_ERR_BUSY ? 429 : 503,
                    se.param[0] ? se.param : NULL, NULL, se.msg);
    }
    while (!sched_job_wait_done(j, 1000)) {}
    sched_job_result res;
    sched_job_result_get(j, &res);
    sched_job_unref(j);
    if (res.failed) return fail(json, res.err.code == RYOT_ERR_TIMEOUT ? 408 : 503, NULL, NULL, res.err.msg);
    *cached = res.cached_tokens;
    return 200;
}

int srv_session_save(const srv_sessions *s, sched_runner *r, const char *id, const char *body, size_t len,
                     char **json) {
    *json = NULL;
    if (!store_session_id_ok(id))
        return fail(json, 400, "id", NULL, "a session id is 1..128 characters of A-Z a-z 0-9 . _ -");
    srv_tokenize_req tr;
    srv_error e;
    if (srv_tokenize_parse(body ? body : "", len, &tr, &e)) {
        *json = srv_json_error(&e);
        return e.status;
    }
    const ryot_model *m = sched_runner_model(r);
    char *text = NULL;
    size_t tl = 0;
    ryot_error err = {0};
    int status = 200;
    if (tr.content) {
        text = strdup(tr.content);
        tl = text ? strlen(text) : 0;
        if (!text) status = fail(json, 503, NULL, NULL, "out of memory");
    } else {
        ryot_chat_message *cm = calloc((size_t)tr.n_messages + 1, sizeof *cm);
        for (int i = 0; cm && i < tr.n_messages; i++) {
            cm[i].role = tr.messages[i].role;
            cm[i].content = tr.messages[i].content ? tr.messages[i].content : "";
        }
        if (!cm) status = fail(json, 503, NULL, NULL, "out of memory");
        else if (ryot_chat_apply(m, cm, tr.n_messages, tr.add_generation_prompt, &text, &tl, &err))
            status = fail(json, 400, "messages", NULL, err.msg);
        free(cm);
    }
    srv_tokenize_free(&tr);
    int32_t *ids = NULL;
    int n = 0;
    if (status == 200 && ryot_tokenize(m, text, tl, RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL, &ids, &n, &err))
        status = fail(json, 400, "content", NULL, err.msg);
    free(text);
    if (status == 200 && n == 0) status = fail(json, 400, "content", NULL, "the session is empty");
    int64_t cached = 0;
    if (status == 200) status = prefill(r, ids, n, &cached, json);
    if (status == 200) {
        store_flush(s->st); /* the blocks are committed before the answer says so */
        if (store_session_put(s->st, id, s->model_id, ids, n, &err))
            status = fail(json, 503, NULL, "store_write_failed", err.msg);
    }
    free(ids);
    if (status != 200) return status;
    store_session_info *si = NULL;
    int n_si = 0;
    int n_blocks = 0;
    uint64_t bytes = 0;
    if (!store_session_list(s->st, s->model_id, s->block_size, &si, &n_si, &err))
        for (int i = 0; i < n_si; i++)
            if (!strcmp(si[i].id, id)) n_blocks = si[i].n_blocks, bytes = si[i].bytes;
    free(si);
    return ok(json, json_pack("{s:s,s:s,s:i,s:I,s:i,s:I}", "id", id, "object", "session", "n_tokens", n,
                              "cached_tokens", (json_int_t)cached, "n_blocks", n_blocks, "bytes",
                              (json_int_t)bytes));
}

int srv_session_restore(const srv_sessions *s, sched_runner *r, const char *id, char **json) {
    *json = NULL;
    if (!store_session_id_ok(id))
        return fail(json, 400, "id", NULL, "a session id is 1..128 characters of A-Z a-z 0-9 . _ -");
    uint8_t mid[STORE_MODEL_ID_BYTES];
    int32_t *ids = NULL;
    int n = 0;
    ryot_error err;
    ryot_status st = store_session_get(s->st, id, mid, &ids, &n, &err);
    if (st == RYOT_ERR_NOT_FOUND) return fail(json, 404, "id", "session_not_found", err.msg);
    if (st) return fail(json, st == RYOT_ERR_FORMAT ? 409 : 503, NULL, "session_unreadable", err.msg);
    int status = 200;
    if (memcmp(mid, s->model_id, sizeof mid))
        status = fail(json, 409, "id", "session_model_mismatch", "the session was saved with another model");
    int64_t cached = 0;
    if (status == 200) status = prefill(r, ids, n, &cached, json);
    free(ids);
    if (status != 200) return status;
    return ok(json, json_pack("{s:s,s:s,s:i,s:I}", "id", id, "object", "session", "n_tokens", n, "cached_tokens",
                              (json_int_t)cached));
}

int srv_session_list(const srv_sessions *s, char **json) {
    *json = NULL;
    store_session_info *si = NULL;
    int n = 0;
    ryot_error err;
    if (store_session_list(s->st, s->model_id, s->block_size, &si, &n, &err))
        return fail(json, 503, NULL, NULL, err.msg);
    json_t *data = json_array();
    for (int i = 0; data && i < n; i++) {
        if (!si[i].same_model) continue;
        json_array_append_new(data, json_pack("{s:s,s:s,s:i,s:i,s:I}", "id", si[i].id, "object", "session", "n_tokens",
                                              si[i].n_tokens, "n_blocks", si[i].n_blocks, "bytes",
                                              (json_int_t)si[i].bytes));
    }
    free(si);
    return ok(json, data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL);
}
