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

static chat_template *load_template(const gguf_file *f, ryot_chat_format format) {
    chat_template *t = NULL;
    gguf_str src;
    if (gguf_get_str(f, "tokenizer.chat_template", &src, NULL) == RYOT_OK &&
        chat_template_parse(src.data, src.len, &t, NULL) == RYOT_OK)
        return t;
    if (format > RYOT_CHAT_NONE && format <= RYOT_CHAT_LLAMA3) {
        const char *b = builtin_templates[format];
        if (chat_template_parse(b, strlen(b), &t, NULL) == RYOT_OK) return t;
    }
    return NULL;
}

void chat_init(chat *c, const gguf_file *f, const tokenizer *tok) {
    c->tok = tok;
    c->format = detect_format(f, tok);
    c->tmpl = load_template(f, c->format);
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

ryot_status chat_apply(const chat *c, const chat_msg *msgs, int n, bool add_generation_prompt, char **out,
                       size_t *out_len, ryot_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!c->tmpl) return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "chat: the model has no chat template or known format");
    const tokenizer *tok = c->tok;
    char *bos = token_text(tok, tokenizer_bos(tok)), *eos = token_text(tok, tokenizer_eos(tok));
    size_t len = 0;
    ryot_status st = bos && eos ? chat_template_render(c->tmpl, msgs, n, add_generation_prompt, bos, eos, out, &len, err)
                                : ryot_fail(err, RYOT_ERR_NOMEM, "chat: out of memory");
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
