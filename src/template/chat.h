/* Chat prompts: a list of messages -> the prompt text a model expects.
 *
 * One path for every caller (the server's chat endpoints and /apply-template,
 * `ryot run --chat` through ryot_chat_apply): the GGUF's
 * tokenizer.chat_template when it parses, else a built-in template for the
 * detected format (ChatML, Gemma, Llama 3), rendered by chat_template.h with
 * the vocab's BOS/EOS texts. */
#ifndef RYOT_TEMPLATE_CHAT_H
#define RYOT_TEMPLATE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "ryot.h" /* ryot_chat_format */
#include "template/chat_template.h"
#include "template/tools.h"
#include "tokenizer/tokenizer.h"

typedef struct chat {
    const tokenizer *tok;  /* not owned; outlives the chat */
    ryot_chat_format format;
    chat_template *tmpl;   /* tokenizer.chat_template, else the built-in format's; NULL: none */
    bool native_tools;     /* tmpl is the GGUF's and renders `tools` itself */
} chat;

/* Detects the format (markers in tokenizer.chat_template, else a gemma3
 * general.architecture, else the vocab's special tokens) and parses the
 * template.  Never fails: a model without a usable template gets tmpl NULL,
 * and chat_apply then says so. */
void chat_init(chat *c, const gguf_file *f, const tokenizer *tok);
void chat_free(chat *c);

/* Renders msgs (add_generation_prompt as given) into *out (malloc'd,
 * NUL-terminated).  When the vocab adds BOS itself at tokenization, a BOS
 * text the template put first is dropped, so the prompt is meant to be
 * tokenized with BOS and special tokens.  RYOT_ERR_UNSUPPORTED without a
 * template; RYOT_ERR_INVALID for render errors (raise_exception included);
 * RYOT_ERR_NOMEM. */
ryot_status chat_apply(const chat *c, const chat_msg *msgs, int n, bool add_generation_prompt, char **out,
                       size_t *out_len, ryot_error *err);

/* The same over OpenAI-shaped messages (a JSON array of objects: role,
 * content (a string, or null for an assistant turn with tool_calls),
 * tool_calls [{id, type, function: {name, arguments (a JSON string)}}],
 * tool_call_id) and tools (a JSON array of OpenAI tool objects; NULL or
 * empty: none).  A null or missing content renders as "", as chat_apply's
 * NULL does.  A template that renders tools itself (native_tools) gets them
 * as `tools`, with each call's arguments string parsed into an object (the
 * Hugging Face convention); any other template gets the messages rewritten
 * by chat_tools_inline for the format's call style.  Errors as chat_apply. */
ryot_status chat_apply_json(const chat *c, const json_t *messages, const json_t *tools, bool add_generation_prompt,
                            char **out, size_t *out_len, ryot_error *err);

#endif
