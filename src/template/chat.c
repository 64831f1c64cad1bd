/* Chat prompts: format detection, built-in templates, rendering (chat.h). */
#include "template/chat.h"

#include <stdlib.h>
#include <string.h>

static ryot_chat_format detect_format(const gguf_file *f, const tokenizer *tok) {
    gguf_str tmpl, arch;
    if (gguf_get_str(f, "tokenizer.chat_template", &tmpl, NULL) == RYOT_OK) {
        /* look for the markers in the template text */
        static const struct {
            const char *marker;
            ryot_chat_format f;
        } marks[] = {
            {"<|im_start|>", RYOT_CHAT_CHATML},
            {"<start_of_turn>", RYOT_CHAT_GEMMA},
            {"<|start_header_id|>", RYOT_CHAT_LLAMA3},
        };
        for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
            if (memmem(tmpl.data, tmpl.len, marks[i].marker, strlen(marks[i].marker))) return marks[i].f;
    }
    if (gguf_get_str(f, "general.architecture", &arch, NULL) == RYOT_OK && gguf_str_eq(arch, "gemma3"))
        return RYOT_CHAT_GEMMA;
    if (tok) {
        if (tokenizer_find(tok, "<|im_start|>", 12) >= 0) return RYOT_CHAT_CHATML;
        if (tokenizer_find(tok, "<start_of_turn>", 15) >= 0) return RYOT_CHAT_GEMMA;
        if (tokenizer_find(tok, "<|start_header_id|>", 19) >= 0) return RYOT_CHAT_LLAMA3;
    }
    return RYOT_CHAT_NONE;
}

/* The built-in formats as templates, for GGUFs without (or with a broken) tokenizer.chat_template. */
static const char *const builtin_templates[] = {
    [RYOT_CHAT_CHATML] = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    /* Gemma has no system role: system text opens the next user turn */
    [RYOT_CHAT_GEMMA] = "{% set ns = namespace(sys='') %}{% for m in messages %}{% if m.role == 'system' %}"
                        "{% set ns.sys = ns.sys + m.content + '\\n\\n' %}{% else %}<start_of_turn>"
                        "{{ 'model' if m.role == 'assistant' else m.role }}\n{% if m.role == 'user' %}{{ ns.sys }}"
                        "{% set ns.sys = '' %}{% endif %}{{ m.content }}<end_of_turn>\n{% endif %}{% endfor %}"
                        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    [RYOT_CHAT_LLAMA3] = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}"
                         "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
                         "<|end_header_id|>\n\n{% endif %}",
};

static chat_template *load_template(const gguf_file *f, ryot_chat_format format, bool *native_tools) {
    chat_template *t = NULL;
    gguf_str src;
    *native_tools = false;
    if (gguf_get_str(f, "tokenizer.chat_template", &src, NULL) == RYOT_OK &&
        chat_template_parse(src.data, src.len, &t, NULL) == RYOT_OK) {
        /* templates that render tools name the variable; the others never see it */
        *native_tools = memmem(src.data, src.len, "tools", 5) != NULL;
        return t;
    }
    if (format > RYOT_CHAT_NONE && format <= RYOT_CHAT_LLAMA3) {
        const char *b = builtin_templates[format];
        if (chat_template_parse(b, strlen(b), &t, NULL) == RYOT_OK) return t;
    }
    return NULL;
}

void chat_init(chat *c, const gguf_file *f, const tokenizer *tok) {
    c->tok = tok;
    c->format = detect_format(f, tok);
    c->tmpl = load_template(f, c->format, &c->native_tools);
}

void chat_free(chat *c) {
    if (!c) return;
    chat_template_free(c->tmpl);
    c->tmpl = NULL;
}

/* The text of special token id (BOS, EOS) as a C string; "" when none. */
static char *token_text(const tokenizer *tok, int32_t id) {
    size_t len = 0;
    const char *p = id >= 0 ? tokenizer_token_bytes(tok, id, &len) : NULL;
    if (!p) len = 0;
    char *s = malloc(len + 1);
    if (s) {
        if (len) memcpy(s, p, len);
        s[len] = 0;
    }
    return s;
}

/* Renders through render (a closure over the message form) with the vocab's
 * BOS/EOS texts, then drops a leading BOS text the tokenizer adds itself. */
typedef struct render_args {
    const chat_msg *msgs;
    int n;
    const json_t *messages, *tools;
} render_args;

static ryot_status apply(const chat *c, const render_args *a, bool add_generation_prompt, char **out,
                         size_t *out_len, ryot_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!c->tmpl) return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "chat: the model has no chat template or known format");
    const tokenizer *tok = c->tok;
    char *bos = token_text(tok, tokenizer_bos(tok)), *eos = token_text(tok, tokenizer_eos(tok));
    size_t len = 0;
    ryot_status st;
    if (!bos || !eos)
        st = ryot_fail(err, RYOT_ERR_NOMEM, "chat: out of memory");
    else if (a->messages)
        st = chat_template_render_json(c->tmpl, a->messages, a->tools, add_generation_prompt, bos, eos, out, &len, err);
    else
        st = chat_template_render(c->tmpl, a->msgs, a->n, add_generation_prompt, bos, eos, out, &len, err);
    /* tokenizing adds BOS when the vocab asks for it: drop the template's own */
    size_t nb = bos ? strlen(bos) : 0;
    if (!st && nb && (tokenizer_default_flags(tok) & TOKENIZE_ADD_BOS) && len >= nb && !memcmp(*out, bos, nb)) {
        memmove(*out, *out + nb, len - nb + 1);
        len -= nb;
    }
    free(bos);
    free(eos);
    if (out_len) *out_len = len;
    return st;
}

ryot_status chat_apply(const chat *c, const chat_msg *msgs, int n, bool add_generation_prompt, char **out,
                       size_t *out_len, ryot_error *err) {
    const render_args a = {.msgs = msgs, .n = n};
    return apply(c, &a, add_generation_prompt, out, out_len, err);
}

/* messages for a template that renders tools: each call's arguments string
 * parsed into an object when it is one. */
static json_t *native_messages(const json_t *messages) {
    json_t *out = json_deep_copy(messages);
    size_t i, k;
    json_t *m, *call;
    json_array_foreach(out, i, m) {
        json_array_foreach(json_object_get(m, "tool_calls"), k, call) {
            json_t *fn = json_object_get(call, "function");
            json_t *a = json_object_get(fn, "arguments");
            json_t *obj = json_is_string(a) ? json_loads(json_string_value(a), 0, NULL) : NULL;
            if (json_is_object(obj)) json_object_set(fn, "arguments", obj);
            json_decref(obj);
        }
    }
    return out;
}

ryot_status chat_apply_json(const chat *c, const json_t *messages, const json_t *tools, bool add_generation_prompt,
                            char **out, size_t *out_len, ryot_error *err) {
    if (tools && !json_array_size(tools)) tools = NULL;
    json_t *m = c->native_tools ? native_messages(messages)
                                : chat_tools_inline(chat_tools_style(c->format), messages, tools);
    size_t i;
    json_t *msg;
    json_array_foreach(m, i, msg) {
        json_t *content = json_object_get(msg, "content");
        if (!content || json_is_null(content)) json_object_set_new(msg, "content", json_string(""));
    }
    if (!m) {
        *out = NULL;
        if (out_len) *out_len = 0;
        return ryot_fail(err, RYOT_ERR_NOMEM, "chat: out of memory");
    }
    const render_args a = {.messages = m, .tools = c->native_tools ? tools : NULL};
    ryot_status st = apply(c, &a, add_generation_prompt, out, out_len, err);
    json_decref(m);
    return st;
}
