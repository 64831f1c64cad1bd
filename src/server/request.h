/* OpenAI-style request bodies: parse and validate an HTTP body into a plain C
 * struct, or fill an srv_error that the HTTP layer turns into the JSON error
 * body (openai.h: srv_json_error).  No HTTP, no model here.
 *
 * Endpoints: POST /v1/chat/completions, POST /v1/completions, and the
 * llama-server style helpers /tokenize, /detokenize, /apply-template.
 *
 * Conventions for every body:
 *   - The body must be a JSON object (else 400, param "").  Duplicate keys:
 *     the last one wins (jansson).  "\u0000" inside a string is rejected
 *     (400), so every parsed string is a plain C string.
 *   - Unknown fields are ignored.  A known optional field set to null is the
 *     same as absent (the openai SDK sends explicit nulls for None).
 *   - Booleans must be true/false; integers may be written 7 or 7.0 but not
 *     7.5; numbers out of range (1e30 included) are 400, never UB.
 *   - Every failure is status 400, type "invalid_request_error", param naming
 *     the field ("temperature", "messages[1].content", "stop[0]",
 *     "logit_bias[abc]", ...; "" when the body itself is wrong).
 *
 * What is NOT checked here (the caller checks it once the model is known):
 * logit_bias token ids and /detokenize ids against the vocab size, prompt
 * length + max_tokens against the context size, and that "model" names the
 * loaded model (any string, or absent, is accepted here). */
#ifndef RYOT_SERVER_REQUEST_H
#define RYOT_SERVER_REQUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ryot.h"

#define SRV_MAX_N 16          /* "n" (choices per prompt) accepted: 1..16 */
#define SRV_MAX_PROMPTS 64    /* /v1/completions prompt array length */
#define SRV_MAX_STOP 4        /* stop strings, as OpenAI */
#define SRV_MAX_COMPLETION_LOGPROBS 5 /* /v1/completions "logprobs": 0..5 */
#define SRV_MAX_TIMEOUT_S 86400.0     /* "timeout": (0, 1 day] */
#define SRV_MAX_TOKENS_LIMIT (1 << 30) /* max_tokens above this: 400 */
#define SRV_MAX_TOOLS 128     /* "tools" entries, as OpenAI */

typedef enum srv_endpoint { SRV_EP_CHAT, SRV_EP_COMPLETIONS } srv_endpoint;

/* An error for the client.  Status -> type/code mapping (srv_error_set), as
 * OpenAI's API answers them:
 *   400, 404, 413 -> "invalid_request_error", code null
 *   401           -> "invalid_request_error", code "invalid_api_key"
 *   429           -> "requests",              code "rate_limit_exceeded"
 *   408, 504      -> "timeout",               code "timeout"
 *   503           -> "server_error",          code "service_unavailable"
 *   other 5xx     -> "server_error",          code null
 * The caller may set `code` to another static string afterwards (e.g.
 * "model_not_found" with a 404).  param "" and code NULL are JSON null. */
typedef struct srv_error {
    int status;
    char message[320];
    const char *type;  /* static string */
    char param[64];    /* offending field; "" -> null */
    const char *code;  /* static string or NULL -> null */
} srv_error;

/* Fills *e (e may be NULL): status, type/code from the table above, param
 * (NULL or "" -> none; truncated to fit) and a printf-style message. */
void srv_error_set(srv_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void srv_error_setv(srv_error *e, int status, const char *param, const char *fmt, va_list ap);

/* A tool call: of an assistant message in a request, or parsed from the
 * model's output for a response.  arguments is JSON text (OpenAI sends and
 * expects a string). */
typedef struct srv_tool_call {
    char *id;
    char *name;
    char *arguments;
} srv_tool_call;

/* One chat message.  role is normalized: "system", "user", "assistant" or
 * "tool" ("developer" becomes "system").  content is the string, or the
 * "text" parts of a content array concatenated with no separator; NULL only
 * for an assistant message whose content is null/absent (e.g. tool calls).
 * assistant: "tool_calls" [{"id", "type": "function", "function": {"name",
 * "arguments": string}}] (names as tool names, below); tool: "tool_call_id"
 * (optional; a string when given) and content.  Other fields (name, ...) are ignored. */
typedef struct srv_message {
    char *role;
    char *content;
    srv_tool_call *tool_calls;
    int n_tool_calls;
    char *tool_call_id;   /* role "tool" only */
} srv_message;

/* "tool_choice": "auto" (the default with tools), "none" (the default
 * without), "required", or {"type": "function", "function": {"name": ...}}. */
typedef enum srv_tool_choice {
    SRV_TOOL_AUTO,
    SRV_TOOL_NONE,
    SRV_TOOL_REQUIRED,
    SRV_TOOL_NAMED,
} srv_tool_choice;

typedef struct srv_request {
    srv_endpoint ep;
    char *model;                 /* NULL when absent */

    /* chat: at least one message */
    srv_message *messages;
    int n_messages;

    /* completions: a string, an array of 1..SRV_MAX_PROMPTS strings, an
     * array of token ids (one prompt), or an array of 1..SRV_MAX_PROMPTS
     * items each a string or an array of token ids; each prompt is a
     * separate generation with n choices (choice index = prompt index * n +
     * i).  "" is accepted (the caller decides what an empty prompt means,
     * e.g. BOS only); an empty id list is not.  Prompt i is text prompts[i]
     * or, when prompt_ids && prompt_ids[i], n_prompt_ids[i] >= 1 ids (ids in
     * [0, INT32_MAX], not yet checked against the vocab; prompts[i] NULL). */
    char **prompts;
    int32_t **prompt_ids;        /* NULL when every prompt is text */
    int *n_prompt_ids;
    int n_prompts;
    bool echo;                   /* completions: the text (and logprobs) start with the prompt's */

    /* -1 when absent (the caller picks: the server's --default-max-tokens
     * for chat, OpenAI's 16 for /v1/completions).  chat: max_completion_tokens
     * is an alias; when both are given max_completion_tokens wins.
     * 1..SRV_MAX_TOKENS_LIMIT (completions: 0 too, nothing generated). */
    int max_tokens;

    /* OpenAI defaults, not llama.cpp's: temperature 1 (0..2; 0 = greedy),
     * top_p 1 (0..1), top_k 0 (off; extension), min_p 0 (0..1; extension),
     * repeat_penalty 1 (extension "repetition_penalty" or "repeat_penalty",
     * (0, 100]), presence/frequency_penalty 0 (-2..2), penalty_last_n -1
     * (whole history; extension "repeat_last_n" >= -1), seed
     * RYOT_SEED_RANDOM unless "seed" is given (any int64, stored as its
     * uint64 bit pattern; -1 therefore means random, as in llama.cpp).
     * logprobs: chat "logprobs": bool + "top_logprobs" 0..20 (needs
     * logprobs true); completions "logprobs": integer 0..5 -> logprobs true,
     * top_logprobs = that integer.
     * sp.logit_bias points into logit_bias below (owned by the request). */
    ryot_sampler_params sp;
    unsigned sp_given; /* SRV_GIVEN_* bits: the fields the request set itself */
    bool has_seed;
    ryot_logit_bias *logit_bias; /* (n_logit_bias) ids >= 0, not yet checked against the vocab */
    int n_logit_bias;               /* -100 maps to -INFINITY (ban); others in [-100, 100] are added as is */

    char **stop;                 /* 0..4 non-empty strings */
    int n_stop;
    int n;                       /* 1..SRV_MAX_N, default 1 */
    bool stream;
    bool include_usage;          /* stream_options.include_usage (stream_options needs stream) */
    char *user;                  /* NULL when absent */
    int priority;                /* sched tier 0..4 (sched_tier), default 2 (normal); "priority":
                                  * "critical".."background" or an integer 0..4 */
    double timeout_s;            /* 0: none; else (0, SRV_MAX_TIMEOUT_S] ("timeout", seconds) */
    bool ignore_eos;             /* extension: keep generating past EOS (benchmarks) */
    /* Structured output, compiled here (on the HTTP thread): NULL, or the
     * grammar of "response_format" {"type": "json_object"} (any JSON
     * object) or {"type": "json_schema", "json_schema": {"schema": ...}}
     * (no schema: any JSON object; "name" and "strict" are checked for type
     * and otherwise ignored: output always follows the schema), or of the
     * extension "grammar" (grammar text, grammar/grammar.h).  Both at once
     * is 400 (param "grammar"); a schema or grammar that does not compile is
     * 400 naming "response_format" or "grammar" with the compiler's message
     * (the schema path, or line:column).  A reference: srv_request_free
     * drops it. */
    struct grammar *grammar;
    /* the constraint as given, for the response cache's key:
     * "response_format:" + it dumped with sorted keys, or "grammar:" + the
     * grammar text (NULL when neither) */
    char *grammar_src;

    /* chat "tools": up to SRV_MAX_TOOLS {"type": "function", "function":
     * {"name", "description", "parameters"}}: names [a-zA-Z0-9_-]{1,64},
     * unique; description a string; parameters a JSON schema object whose
     * "type", if given, is "object" (absent: {"type": "object",
     * "properties": {}} is filled in).  Kept as a normalized JSON array
     * (owned; NULL when absent or empty) with exactly those fields. */
    json_t *tools;
    int n_tools;
    srv_tool_choice tool_choice;
    int tool_named;              /* SRV_TOOL_NAMED: index into tools; an unknown name is a 400 */
    bool parallel_tool_calls;    /* default true; false: at most one call per choice */
} srv_request;

/* Parses body[0..len) for endpoint ep.  Returns 0 and fills *out (free with
 * srv_request_free), or -1 with *err filled (status 400) and *out zeroed
 * (srv_request_free on it is a no-op).
 *
 * Also rejected (400), because ryot would otherwise silently ignore them:
 * completions a non-empty "suffix", "best_of" other than n;
 * chat "tool_choice" "required" or a function without tools, or with a
 * "response_format"/"grammar" constraint. */
int srv_request_parse(const char *body, size_t len, srv_endpoint ep, srv_request *out, srv_error *err);
void srv_request_free(srv_request *r);

/* Which sampling fields a request gave (srv_request.sp_given). */
enum {
    SRV_GIVEN_TEMPERATURE = 1u << 0,
    SRV_GIVEN_TOP_P = 1u << 1,
    SRV_GIVEN_TOP_K = 1u << 2,
    SRV_GIVEN_MIN_P = 1u << 3,
    SRV_GIVEN_REPEAT_PENALTY = 1u << 4,
    SRV_GIVEN_PENALTY_LAST_N = 1u << 5,
};
/* OpenAI's defaults (temperature 1, no top-k/top-p/min-p, no penalties): what
 * a parsed request starts from. */
ryot_sampler_params srv_request_openai_sampling(void);
/* The server's defaults for the fields in sp_given that the request left out
 * (the server passes OpenAI's, with the model's general.sampling.* keys over
 * them: ryot_model_sampling_defaults). */
void srv_request_default_sampling(srv_request *r, const ryot_sampler_params *defaults);

/* POST /tokenize: {"content": string} or {"messages": [...]} (the caller
 * renders the chat template and tokenizes the result), exactly one of the
 * two; "add_special" (default false), "parse_special" (default true),
 * "with_pieces" (default false), "add_generation_prompt" (messages only,
 * default true). */
typedef struct srv_tokenize_req {
    char *content;               /* NULL when messages are given */
    srv_message *messages;
    int n_messages;
    bool add_special;
    bool parse_special;
    bool with_pieces;
    bool add_generation_prompt;
} srv_tokenize_req;
int srv_tokenize_parse(const char *body, size_t len, srv_tokenize_req *out, srv_error *err);
void srv_tokenize_free(srv_tokenize_req *r);

/* POST /detokenize: {"tokens": [int, ...]}; ids in [0, INT32_MAX] (vocab
 * range checked by the caller); an empty array is fine. */
typedef struct srv_detokenize_req {
    int32_t *tokens;
    int n_tokens;
} srv_detokenize_req;
int srv_detokenize_parse(const char *body, size_t len, srv_detokenize_req *out, srv_error *err);
void srv_detokenize_free(srv_detokenize_req *r);

/* POST /apply-template: {"messages": [...], "tools": [...] (optional),
 * "add_generation_prompt": bool (default true)} -> the caller renders and
 * answers {"prompt": ...}. */
typedef struct srv_template_req {
    srv_message *messages;
    int n_messages;
    json_t *tools;               /* "tools" as in a chat request; NULL when none */
    bool add_generation_prompt;
} srv_template_req;
int srv_template_parse(const char *body, size_t len, srv_template_req *out, srv_error *err);
void srv_template_free(srv_template_req *r);

/* Frees an array of messages as the parsers build them. */
void srv_messages_free(srv_message *m, int n);

#endif
