#include "server/respcache.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_FORMAT 1

void srv_cache_model_identity(const ryot_model *m, cache_key *out) {
    uint64_t size, data_offset;
    const unsigned char *p = ryot_model_file_bytes(m, &size, &data_offset);
    cache_key_builder kb;
    cache_key_begin(&kb, "model");
    cache_key_i64(&kb, 2, (int64_t)size);
    cache_key_bytes(&kb, 3, p, (size_t)data_offset);
    const uint64_t stride = (uint64_t)16 << 20, sample = 4096;
    for (uint64_t at = data_offset; at < size; at += stride)
        cache_key_bytes(&kb, 4, p + at, (size_t)(size - at < sample ? size - at : sample));
    cache_key_end(&kb, out);
}

static bool cacheable(const srv_request *req, const sched_job_spec *spec) {
    const ryot_sampler_params *sp = &spec->sp;
    /* echo answers carry the prompt text, which the record does not */
    return (sp->temperature == 0.0f || req->has_seed) && !sp->logprobs && !req->echo;
}

/* Every field of the key but the prompts (tags 5..26). */
static bool key_fields(cache_key_builder *kb, const srv_request *req, const sched_job_spec *spec);

bool srv_cache_request_key(const cache_key *model, const srv_request *req, const sched_job_spec *spec, cache_key *out) {
    if (!cacheable(req, spec)) return false;
    cache_key_builder kb;
    cache_key_begin(&kb, req->ep == SRV_EP_CHAT ? "chat" : "completions");
    cache_key_bytes(&kb, 2, model->b, sizeof model->b);
    cache_key_i64(&kb, 3, spec->n_prompts);
    for (int i = 0; i < spec->n_prompts; i++)
        cache_key_bytes(&kb, 4, spec->prompts[i], (size_t)spec->n_prompt[i] * sizeof *spec->prompts[i]);
    if (!key_fields(&kb, req, spec)) return false;
    cache_key_end(&kb, out);
    return true;
}

const char *srv_cache_semantic_context(const cache_key *model, const srv_request *req, const sched_job_spec *spec,
                                       cache_key *out) {
    if (req->ep != SRV_EP_CHAT || !cacheable(req, spec) || req->n_messages < 1) return NULL;
    const srv_message *last = &req->messages[req->n_messages - 1];
    if (strcmp(last->role, "user") || !last->content || !*last->content) return NULL;
    cache_key_builder kb;
    cache_key_begin(&kb, "semantic-chat");
    cache_key_bytes(&kb, 2, model->b, sizeof model->b);
    /* the messages as sent (the template is the model's, keyed above); of
     * the last only its role */
    cache_key_i64(&kb, 3, req->n_messages);
    for (int i = 0; i < req->n_messages; i++) {
        const srv_message *m = &req->messages[i];
        cache_key_str(&kb, 30, m->role);
        if (i == req->n_messages - 1) break;
        cache_key_str(&kb, 31, m->content);
        cache_key_str(&kb, 32, m->tool_call_id);
        cache_key_i64(&kb, 33, m->n_tool_calls);
        for (int j = 0; j < m->n_tool_calls; j++) {
            cache_key_str(&kb, 34, m->tool_calls[j].id);
            cache_key_str(&kb, 35, m->tool_calls[j].name);
            cache_key_str(&kb, 36, m->tool_calls[j].arguments);
        }
    }
    if (!key_fields(&kb, req, spec)) return NULL;
    cache_key_end(&kb, out);
    return last->content;
}

static bool key_fields(cache_key_builder *kb, const srv_request *req, const sched_job_spec *spec) {
    const ryot_sampler_params *sp = &spec->sp;
    char *tools = req->tools ? json_dumps(req->tools, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
    if (req->tools && !tools) return false;
    cache_key_i64(kb, 5, spec->n);
    cache_key_i64(kb, 6, spec->max_tokens);
    cache_key_i64(kb, 7, spec->n_stop);
    for (int i = 0; i < spec->n_stop; i++) cache_key_str(kb, 8, spec->stop[i]);
    cache_key_i64(kb, 9, spec->ignore_eos);
    /* greedy output depends on no other sampling field than the bias and
     * the penalties, but keying them all is simpler and never wrong */
    cache_key_f64(kb, 10, sp->temperature);
    cache_key_i64(kb, 11, sp->top_k);
    cache_key_f64(kb, 12, sp->top_p);
    cache_key_f64(kb, 13, sp->min_p);
    cache_key_f64(kb, 14, sp->repeat_penalty);
    cache_key_f64(kb, 15, sp->frequency_penalty);
    cache_key_f64(kb, 16, sp->presence_penalty);
    cache_key_i64(kb, 17, sp->penalty_last_n);
    cache_key_i64(kb, 18, req->has_seed ? (int64_t)sp->seed : -1);
    cache_key_i64(kb, 19, sp->n_logit_bias);
    for (int i = 0; i < sp->n_logit_bias; i++) {
        cache_key_i64(kb, 20, sp->logit_bias[i].token);
        cache_key_f64(kb, 21, sp->logit_bias[i].bias);
    }
    cache_key_str(kb, 22, req->grammar_src);
    /* tools reach the prompt only through the template (and not at all with
     * "none"), and the choice picks the grammar and the parsing: key them */
    cache_key_str(kb, 23, tools);
    free(tools);
    cache_key_i64(kb, 24, req->tool_choice);
    cache_key_i64(kb, 25, req->tool_choice == SRV_TOOL_NAMED ? req->tool_named : -1);
    cache_key_i64(kb, 26, req->parallel_tool_calls);
    return true;
}

char *srv_cache_encode(const srv_cached *c, size_t *len) {
    json_t *choices = json_array();
    json_t *o = json_pack("{s:i,s:o,s:{s:I,s:I,s:I}}", "v", VALUE_FORMAT, "choices", choices, "usage", "prompt",
                          (json_int_t)c->usage.prompt_tokens, "completion", (json_int_t)c->usage.completion_tokens,
                          "cached", (json_int_t)c->usage.cached_tokens);
    if (!o) return NULL;
    for (int i = 0; i < c->n; i++) {
        json_t *ch = json_pack("{s:s%,s:i}", "text", c->choices[i].text ? c->choices[i].text : "",
                               c->choices[i].len, "finish", (int)c->choices[i].finish);
        if (!ch || json_array_append_new(choices, ch)) {
            json_decref(o);
            return NULL;
        }
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) *len = strlen(s);
    return s;
}

void srv_cached_free(srv_cached *c) {
    for (int i = 0; c->choices && i < c->n; i++) free(c->choices[i].text);
    free(c->choices);
    memset(c, 0, sizeof *c);
}

int srv_cache_decode(const void *val, size_t len, int n_choices, srv_cached *out) {
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(val, len, 0, NULL);
    json_t *choices = NULL;
    json_int_t v = 0, prompt = 0, completion = 0, cached = 0;
    if (!o || json_unpack(o, "{s:I,s:o,s:{s:I,s:I,s:I}}", "v", &v, "choices", &choices, "usage", "prompt", &prompt,
                          "completion", &completion, "cached", &cached) ||
        v != VALUE_FORMAT || !json_is_array(choices) || json_array_size(choices) != (size_t)n_choices ||
        n_choices < 1)
        goto bad;
    out->choices = calloc((size_t)n_choices, sizeof *out->choices);
    if (!out->choices) goto bad;
    out->n = n_choices;
    for (int i = 0; i < n_choices; i++) {
        const char *text;
        size_t tl;
        int finish;
        if (json_unpack(json_array_get(choices, (size_t)i), "{s:s%,s:i}", "text", &text, &tl, "finish", &finish) ||
            (finish != SCHED_FINISH_STOP && finish != SCHED_FINISH_LENGTH))
            goto bad;
        out->choices[i].text = malloc(tl + 1);
        if (!out->choices[i].text) goto bad;
        memcpy(out->choices[i].text, text, tl);
        out->choices[i].text[tl] = 0;
        out->choices[i].len = tl;
        out->choices[i].finish = (sched_finish)finish;
    }
    out->usage = (srv_usage){prompt, completion, cached};
    json_decref(o);
    return 0;
bad:
    json_decref(o);
    srv_cached_free(out);
    return -1;
}
