/* Chat templates: a small, safe interpreter for the Jinja2 subset that
 * Hugging Face chat templates (GGUF key tokenizer.chat_template) use.
 *
 * Semantics follow Python jinja2 as transformers' apply_chat_template sets it
 * up: an ImmutableSandboxedEnvironment with trim_blocks=True and
 * lstrip_blocks=True (so the newline after a block tag is dropped, and spaces
 * before a block tag at the start of a line too), the loopcontrols extension
 * ({% break %}, {% continue %}), raise_exception(msg) as a global, and a
 * tojson filter that is json.dumps(x, ensure_ascii=False) (no HTML escaping,
 * keys in insertion order).  The render variables are messages (a list of
 * {role, content} dicts), add_generation_prompt, bos_token and eos_token
 * (and tools, with chat_template_render_json);
 * every other name is undefined (falsy, renders as "", iterates as empty).
 * One trailing newline of the template is dropped, as jinja2 does.
 *
 * Supported: text, {{ }}, {% if/elif/else %}, {% for %} (tuple targets, an
 * `if` filter, {% else %}, loop.index/index0/revindex/revindex0/first/last/
 * length/previtem/nextitem/cycle), {% set %} (names, tuples, ns.attr, block
 * set), {% generation %}, {# #}, whitespace control (- and +); expressions with
 * Python semantics (ints are 64-bit: overflow is an error where Python would
 * grow), the usual filters, tests and str/dict methods.  Not supported (parse
 * error): macros, call/filter blocks, include/import/extends, raw, recursive
 * loops, `%` string formatting.  Case mapping (upper, lower, title,
 * capitalize) covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic;
 * other characters are left as they are.
 *
 * Safety: templates come from untrusted model files and renders run per
 * request.  Parsing is bounded by the source size and a nesting depth; a
 * render is bounded in loop iterations, evaluation steps, memory and output
 * size (CHAT_TEMPLATE_MAX_*), and fails with a message when a limit is hit.
 * Invalid UTF-8 is passed through byte by byte.
 *
 * A parsed template is immutable and may be rendered from several threads at
 * once. */
#ifndef RYOT_CHAT_TEMPLATE_H
#define RYOT_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

struct json_t; /* jansson's */

#define CHAT_TEMPLATE_MAX_SOURCE (4u << 20)      /* template bytes */
#define CHAT_TEMPLATE_MAX_DEPTH 128              /* nesting of blocks and expressions (render stack: < 1 MiB) */
#define CHAT_TEMPLATE_MAX_ITERATIONS 1000000     /* loop iterations per render, all loops together */
#define CHAT_TEMPLATE_MAX_STEPS 50000000         /* evaluation steps per render (work on big values counts) */
#define CHAT_TEMPLATE_MAX_OUTPUT (16u << 20)     /* bytes of output */
#define CHAT_TEMPLATE_MAX_MEMORY (128u << 20)    /* bytes of working memory per render */
#define CHAT_TEMPLATE_MAX_RANGE 100000           /* items of one range(), as jinja2's sandbox */

typedef struct chat_msg {
    const char *role;
    const char *content; /* NULL: none */
} chat_msg;

typedef struct chat_template chat_template;

/* Parses src[0..len) (need not be NUL-terminated; NULs are text).  Errors
 * (RYOT_ERR_FORMAT) name the line and what was expected. */
ryot_status chat_template_parse(const char *src, size_t len, chat_template **out, ryot_error *err);

/* Renders the template over msgs.  bos_token/eos_token may be NULL (then "").
 * *out is malloc'd and NUL-terminated (free()).  Errors: raise_exception in
 * the template gives RYOT_ERR_INVALID with exactly its message; any other
 * render error (type errors, undefined attribute access, limits) gives
 * RYOT_ERR_INVALID with "chat template line N: ..."; RYOT_ERR_NOMEM on
 * allocation failure. */
ryot_status chat_template_render(const chat_template *t, const chat_msg *msgs, int n_msgs, bool add_generation_prompt,
                                 const char *bos_token, const char *eos_token, char **out, size_t *out_len,
                                 ryot_error *err);

/* The same over JSON values (jansson): messages an array of objects with any
 * fields (role, content, tool_calls, tool_call_id, ...), tools an array
 * (OpenAI tool objects) set as the variable `tools`, or NULL to leave it
 * undefined.  Objects become dicts in their key order, arrays lists, JSON
 * numbers ints or floats, null None.  The JSON must outlive the call. */
ryot_status chat_template_render_json(const chat_template *t, const struct json_t *messages, const struct json_t *tools,
                                      bool add_generation_prompt, const char *bos_token, const char *eos_token,
                                      char **out, size_t *out_len, ryot_error *err);

void chat_template_free(chat_template *t);

#endif
