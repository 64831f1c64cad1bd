/* JSON bodies ryot serve sends back, in the shapes of OpenAI's API (and
 * llama-server's for /tokenize, /detokenize, /apply-template).
 *
 * Every builder returns a malloc'd, NUL-terminated compact JSON text (free
 * it with free()), or NULL when out of memory.  Inputs are plain C structs
 * the caller keeps; nothing is retained.
 *
 * Text: every (pointer, length) string may hold any bytes.  Invalid UTF-8 is
 * replaced by U+FFFD (one per maximal invalid subpart, as Unicode
 * recommends), so the output is always valid JSON; NUL bytes become \u0000.
 * The caller should still only pass complete UTF-8 sequences for generated
 * text (the streaming detokenizer does that).  A NULL pointer with length 0
 * is the empty string.
 *
 * Numbers: a logprob of -inf (banned token) or NaN is written as -9999.0,
 * which is what OpenAI reports for "impossible". */
#ifndef RYOT_SERVER_OPENAI_H
#define RYOT_SERVER_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/runner.h" /* sched_finish, sched_token_lp */
#include "server/request.h"

#define SRV_ID_MAX 48 /* buffer size for srv_make_id */

/* prefix + 24 random hex digits (getrandom; falls back to clock ^ counter)
 * into buf[0..n), always NUL-terminated (truncated if n is small).
 * Prefixes OpenAI uses: "chatcmpl-", "cmpl-". */
void srv_make_id(char *buf, size_t n, const char *prefix);

/* Common fields of a completion object. */
typedef struct srv_resp_meta {
    const char *id;                 /* "chatcmpl-..." / "cmpl-..." */
    int64_t created;                /* unix seconds */
    const char *model;
    const char *system_fingerprint; /* NULL: field omitted */
} srv_resp_meta;

/* "usage": total_tokens = prompt + completion.  cached_tokens >= 0 adds
 * "prompt_tokens_details": {"cached_tokens": n} (prefix-cache hits). */
typedef struct srv_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cached_tokens;          /* -1: omit prompt_tokens_details */
} srv_usage;

const char *srv_finish_name(sched_finish f); /* "stop", "length", NULL */

/* ------------------------------------------------------------ errors */

/* {"error":{"message","type","param","code"}}; param ""/code NULL -> null. */
char *srv_json_error(const srv_error *e);

/* ------------------------------------------------------------ chat */

/* A choice of a chat.completion.  with_logprobs false -> "logprobs": null;
 * true -> {"content":[{"token","logprob","bytes","top_logprobs":[...]}...],
 * "refusal":null} over lp[0..n_lp). */
typedef struct srv_chat_choice {
    int index;
    const char *content;
    size_t content_len;
    sched_finish finish;
    bool with_logprobs;
    const sched_token_lp *lp;
    int n_lp;
    /* n_tool_calls > 0: the message gets "tool_calls": [{"id", "type":
     * "function", "function": {"name", "arguments"}}], "content" is null
     * when content is NULL, and finish_reason is "tool_calls" unless the
     * choice ran out of tokens ("length") */
    const srv_tool_call *tool_calls;
    int n_tool_calls;
} srv_chat_choice;

/* {"id","object":"chat.completion","created","model",["system_fingerprint"],
 *  "choices":[{"index","message":{"role":"assistant","content","refusal":null},
 *  "logprobs","finish_reason"}],"usage":{...}} */
char *srv_json_chat_completion(const srv_resp_meta *m, const srv_chat_choice *c, int n_choices,
                               const srv_usage *usage);

/* A choice of a chat.completion.chunk.  delta: {"role":"assistant"} when
 * role is set (content then goes with it if non-NULL), {"content": ...}
 * when content is non-NULL, {} otherwise (the final chunk that carries
 * finish_reason).  OpenAI's stream: a first chunk with role (and
 * content ""), content chunks, then one with finish_reason and delta {}. */
typedef struct srv_chat_delta {
    int index;
    bool role;
    const char *content;            /* NULL: no "content" key */
    size_t content_len;
    sched_finish finish;              /* NONE -> null */
    bool with_logprobs;             /* false -> "logprobs": null */
    const sched_token_lp *lp;
    int n_lp;
    /* n_tool_calls > 0: "tool_calls": [{"index": tool_index0 + k, "id",
     * "type": "function", "function": {"name", "arguments"}}], each call
     * whole in one piece */
    const srv_tool_call *tool_calls;
    int n_tool_calls;
    int tool_index0;
    bool finish_tool_calls;         /* finish STOP reads "tool_calls" (calls were sent) */
} srv_chat_delta;

/* {"id","object":"chat.completion.chunk","created","model",
 *  ["system_fingerprint"],"choices":[...]} plus "usage":
 *   usage != NULL       -> "usage": {...} (the final usage chunk: pass
 *                          n_choices 0 to get "choices": [], as OpenAI)
 *   usage NULL, include_usage -> "usage": null
 *   else                -> no "usage" key */
char *srv_json_chat_chunk(const srv_resp_meta *m, const srv_chat_delta *c, int n_choices,
                          bool include_usage, const srv_usage *usage);

/* ------------------------------------------------------------ completions */

/* A choice of a text_completion.  Logprobs object (with_logprobs):
 * {"tokens":[str],"token_logprobs":[num],"top_logprobs":[{tok:lp,...}],
 *  "text_offset":[int]}; text_offset counts characters from the start of
 * the whole completion text, computed from the tokens' own bytes: a token's
 * offset is the number of UTF-8 lead bytes (bytes that start a character)
 * in the tokens before it, so a token that starts inside a multi-byte
 * character points just past that character's start, offsets never
 * decrease, and streamed and non-streamed answers agree.  The first token
 * of this choice is at text_offset0 (0 in a non-stream response; in stream
 * chunks the sum of srv_utf8_leads over the tokens sent before).  Tokens with the same text collapse in a top_logprobs
 * dict (the first, i.e. most likely, kept).  An entry with no_logprob (the
 * first prompt token under echo) has token_logprobs and top_logprobs null. */
typedef struct srv_completion_choice {
    int index;
    const char *text;
    size_t text_len;
    sched_finish finish;
    bool with_logprobs;
    const sched_token_lp *lp;
    int n_lp;
    int64_t text_offset0;
} srv_completion_choice;

/* {"id","object":"text_completion","created","model",["system_fingerprint"],
 *  "choices":[{"index","text","logprobs","finish_reason"}],"usage":{...}} */
char *srv_json_completion(const srv_resp_meta *m, const srv_completion_choice *c, int n_choices,
                          const srv_usage *usage);

/* Stream chunk: same object and choice shape (finish NONE -> null); usage
 * as in srv_json_chat_chunk. */
char *srv_json_completion_chunk(const srv_resp_meta *m, const srv_completion_choice *c,
                                int n_choices, bool include_usage, const srv_usage *usage);

/* Characters text[0..len) counts as in JSON output (after U+FFFD
 * replacement): what to add to text_offset0 between stream chunks. */
int64_t srv_utf8_chars(const char *text, size_t len);
/* UTF-8 lead bytes (any byte but 10xxxxxx) in text[0..len): text_offset steps. */
int64_t srv_utf8_leads(const char *text, size_t len);

/* ------------------------------------------------------------ other endpoints */

/* GET /v1/models: {"object":"list","data":[{"id","object":"model","created",
 * "owned_by":"ryot"}, ...]} */
char *srv_json_models(const char *const *ids, int n, int64_t created);
/* The same with "status" on model i when status[i] is not NULL ("loaded",
 * "unloaded", "loading", "failed": server/registry.h). */
char *srv_json_models_status(const char *const *ids, const char *const *status, int n, int64_t created);

/* POST /tokenize: {"tokens":[id,...]} or, when pieces is non-NULL,
 * {"tokens":[{"id":id,"piece":str},...]} where piece is a string when the
 * token's bytes are valid UTF-8 and an array of byte values otherwise (as
 * llama-server).  pieces[i] = (text, len) of tokens[i]. */
typedef struct srv_piece {
    const char *text;
    size_t len;
} srv_piece;
char *srv_json_tokenize(const int32_t *tokens, int n, const srv_piece *pieces);

/* POST /detokenize: {"content": text} */
char *srv_json_detokenize(const char *text, size_t len);

/* POST /apply-template: {"prompt": text} */
char *srv_json_apply_template(const char *prompt, size_t len);

#endif
