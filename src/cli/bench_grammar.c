/* `ryot bench grammar`: what grammar-constrained decoding adds per token.
 * One process, one context: N tokens decoded freely, then N tokens under a
 * JSON schema (a nested one by default), with the same sampler settings;
 * the grammar's work (mask, applying it, accepting the token) is timed apart
 * from the forward pass.  When the constrained text completes, a fresh
 * matcher starts (as a new request would, with a cold mask cache) while the
 * context goes on.  Exit status: 0 ok, 1 failure, 2 bad usage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "engine/sampler.h"
#include "grammar/grammar.h"
#include "ryot.h"

static const char NESTED_SCHEMA[] =
    "{\"type\":\"object\",\"$defs\":{\"address\":{\"type\":\"object\",\"properties\":{\"street\":{\"type\":\"string\"},"
    "\"city\":{\"type\":\"string\",\"maxLength\":30},\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}},"
    "\"required\":[\"city\",\"zip\"],\"additionalProperties\":false}},"
    "\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":40},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150},"
    "\"email\":{\"type\":\"string\",\"format\":\"email\"},"
    "\"born\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"score\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",\"blue\",\"other\"]},\"minItems\":1,\"maxItems\":4},"
    "\"id\":{\"anyOf\":[{\"type\":\"integer\",\"minimum\":1},{\"type\":\"string\",\"format\":\"uuid\"}]},"
    "\"home\":{\"$ref\":\"#/$defs/address\"},"
    "\"friends\":{\"type\":\"array\",\"maxItems\":3,\"items\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
    "\"string\"},\"since\":{\"type\":\"integer\",\"minimum\":1900,\"maximum\":2100}},\"required\":[\"name\"]}},"
    "\"active\":{\"type\":\"boolean\"}},"
    "\"required\":[\"name\",\"age\",\"tags\",\"home\"],\"additionalProperties\":false}";

typedef struct run_result {
    double forward_s, sample_s, grammar_s; /* totals over the run */
    int n, texts;                          /* tokens; completed texts (constrained run) */
    grammar_stats gs;                      /* summed over the matchers */
} run_result;

static void stats_add(grammar_stats *a, const grammar_matcher *m) {
    grammar_stats s;
    grammar_matcher_stats(m, &s);
    a->masks += s.masks, a->cache_hits += s.cache_hits, a->states += s.states, a->flushes += s.flushes;
}

/* n tokens from the prompt; g NULL: unconstrained. */
static ryot_status run(ryot_context *c, const ryot_model *m, const ryot_token *prompt, int n_prompt, int n,
                       const grammar *g, const grammar_vocab *v, run_result *r, ryot_error *err) {
    memset(r, 0, sizeof *r);
    const int32_t n_vocab = ryot_n_vocab(m);
    ryot_sampler_params sp = ryot_sampler_params_default();
    sp.seed = 1;
    sampler *s = NULL;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    uint32_t *bits = malloc((size_t)(n_vocab + 31) / 32 * sizeof *bits);
    grammar_matcher *gm = NULL;
    ryot_status st = logits && bits ? sampler_init(&s, &sp, n_vocab, err) : ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    if (!st && g) st = grammar_matcher_new(g, v, &gm, err);
    double t = ryot_now_s();
    if (!st) st = ryot_decode(c, prompt, n_prompt, 0, 1, err);
    r->forward_s += ryot_now_s() - t;
    for (int pos = n_prompt; !st && r->n < n; pos++) {
        memcpy(logits, ryot_get_logits(c, 0), (size_t)n_vocab * sizeof *logits);
        t = ryot_now_s();
        if (gm) {
            if ((st = grammar_mask(gm, bits))) break;
            grammar_mask_apply(bits, logits, n_vocab);
        }
        double t1 = ryot_now_s();
        ryot_token tok = sampler_sample(s, logits);
        double t2 = ryot_now_s();
        if (tok < 0) {
            st = ryot_fail(err, RYOT_ERR_INTERNAL, "no token allowed");
            break;
        }
        sampler_accept(s, tok);
        if (gm && !grammar_matcher_accept_token(gm, tok)) {
            st = ryot_fail(err, RYOT_ERR_INTERNAL, "the sampled token is outside the grammar");
            break;
        }
        if (gm && grammar_matcher_is_finished(gm)) { /* the next request's matcher */
            r->texts++;
            stats_add(&r->gs, gm);
            grammar_matcher_free(gm);
            gm = NULL;
            if ((st = grammar_matcher_new(g, v, &gm, err))) break;
        }
        double t3 = ryot_now_s();
        r->grammar_s += (t1 - t) + (t3 - t2);
        r->sample_s += t2 - t1;
        r->n++;
        t = ryot_now_s();
        st = ryot_decode(c, &tok, 1, pos, 1, err);
        r->forward_s += ryot_now_s() - t;
    }
    if (gm) stats_add(&r->gs, gm);
    grammar_matcher_free(gm);
    sampler_free(s);
    free(logits);
    free(bits);
    return st;
}

int cmd_bench_grammar(int argc, char **argv) {
    const char *model = NULL, *schema_path = NULL;
    double n_gen = 128, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ryot bench grammar [-m MODEL.gguf] [-n N] [-t THREADS] [--schema FILE.json]\n"
                   "\nDecodes N tokens (default 128) freely, then N under a JSON schema (default: a\n"
                   "nested one: required and optional properties, arrays, enums, bounds, formats,\n"
                   "patterns, anyOf, $ref), same context and sampler settings, and reports ms/token\n"
                   "of each, the grammar's own time per token (mask, applying it, accepting the\n"
                   "token) against the forward pass, and the mask cache hit rate.  A completed\n"
                   "text restarts the matcher, as a new request would (cold cache).\n");
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) {
            model = v, i++;
        } else if (!strcmp(a, "-n") && v && cli_parse_double(v, 1, 100000, &n_gen)) {
            i++;
        } else if (!strcmp(a, "-t") && v && cli_parse_double(v, 0, 1024, &threads)) {
            i++;
        } else if (!strcmp(a, "--schema") && v) {
            schema_path = v, i++;
        } else {
            fprintf(stderr, "ryot bench grammar: bad option '%s'\n", a);
            return 2;
        }
    }
    if (!model && !(model = cli_default_model())) return 1;
    char *schema_text = schema_path ? cli_read_file(schema_path, NULL) : strdup(NESTED_SCHEMA);
    if (!schema_text) {
        fprintf(stderr, "ryot bench grammar: cannot read %s\n", schema_path ? schema_path : "the schema");
        return 1;
    }
    ryot_error err = {0};
    ryot_model *m = NULL;
    ryot_context *c = NULL;
    grammar *g = NULL;
    grammar_vocab *v = NULL;
    ryot_token *prompt = NULL;
    char *text = NULL;
    int n_prompt = 0, rc = 1;
    json_error_t je;
    json_t *schema = json_loads(schema_text, 0, &je);
    free(schema_text);
    if (!schema) {
        fprintf(stderr, "ryot bench grammar: schema: %s (line %d)\n", je.text, je.line);
        return 1;
    }
    const int n = (int)n_gen;
    ryot_context_params cp = ryot_context_default_params();
    cp.n_ctx = 2 * n + 256;
    cp.n_threads = (int)threads;
    const ryot_chat_message msg = {"user", "Describe a fictional person as JSON."};
    size_t text_len = 0;
    double t_compile = ryot_now_s(), t_vocab = 0;
    ryot_status st = grammar_from_schema(schema, &g, &err);
    t_compile = ryot_now_s() - t_compile;
    if (!st) st = ryot_model_load(model, &m, &err);
    if (!st) {
        t_vocab = ryot_now_s();
        st = grammar_vocab_from_tokenizer(ryot_model_tokenizer(m), &v, &err);
        t_vocab = ryot_now_s() - t_vocab;
    }
    if (!st) st = ryot_context_new(m, &cp, &c, &err);
    if (!st) st = ryot_chat_apply(m, &msg, 1, true, &text, &text_len, &err);
    if (!st) st = ryot_tokenize(m, text, text_len, RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL, &prompt, &n_prompt, &err);
    run_result free_run, json_run;
    if (!st) st = run(c, m, prompt, n_prompt, n, NULL, NULL, &free_run, &err);
    if (!st) st = run(c, m, prompt, n_prompt, n, g, v, &json_run, &err);
    if (st) {
        fprintf(stderr, "ryot bench grammar: %s\n", err.msg);
    } else {
        const double f_ms = 1e3 * (free_run.forward_s + free_run.sample_s) / free_run.n;
        const double j_ms = 1e3 * (json_run.forward_s + json_run.sample_s + json_run.grammar_s) / json_run.n;
        const double g_ms = 1e3 * json_run.grammar_s / json_run.n;
        const double fwd_ms = 1e3 * json_run.forward_s / json_run.n;
        const grammar_stats *gs = &json_run.gs;
        printf("model %s, %d threads, vocab %d, %d tokens per run\n", model, ryot_context_n_threads(c), ryot_n_vocab(m), n);
        printf("schema compile %.2f ms, grammar vocab build %.1f ms (once per model)\n", 1e3 * t_compile, 1e3 * t_vocab);
        printf("unconstrained:  %.3f ms/token (forward %.3f, sample %.3f)\n", f_ms,
               1e3 * free_run.forward_s / free_run.n, 1e3 * free_run.sample_s / free_run.n);
        printf("json schema:    %.3f ms/token (forward %.3f, sample %.3f, grammar %.3f); %d texts completed\n", j_ms,
               fwd_ms, 1e3 * json_run.sample_s / json_run.n, g_ms, json_run.texts);
        printf("ratio %.3f; grammar time / decode time per token %.2f%%\n", j_ms / f_ms,
               100.0 * g_ms / (fwd_ms + 1e3 * json_run.sample_s / json_run.n));
        printf("mask cache: %llu of %llu masks hit (%.1f%%), %llu DFA states, %llu rebuilds\n",
               (unsigned long long)gs->cache_hits, (unsigned long long)gs->masks,
               gs->masks ? 100.0 * (double)gs->cache_hits / (double)gs->masks : 0.0, (unsigned long long)gs->states,
               (unsigned long long)gs->flushes);
        rc = 0;
    }
    free(prompt);
    free(text);
    ryot_context_free(c);
    grammar_vocab_free(v);
    grammar_free(g);
    ryot_model_free(m);
    json_decref(schema);
    return rc;
}
