/* SentencePiece BPE (tokenizer.ggml.model "llama").
 *
 * Spaces become U+2581 (and one is prefixed when asked).  The text starts as
 * one symbol per UTF-8 character; adjacent pairs whose concatenation is a
 * vocab entry sit in a heap keyed by (score descending, left position); the
 * best is merged repeatedly.  A final symbol that is not a token is emitted as
 * <0xNN> byte tokens (or the unknown token when the vocab lacks those).
 *
 * Only normal and user-defined entries take part in merges: control tokens
 * such as "<s>" are never formed out of plain text (llama.cpp would form them
 * when their score allows; SentencePiece itself does not). */
#include <string.h>

#include "tokenizer/tok_internal.h"

static bool mergeable(uint8_t type) {
    return type == TOKEN_TYPE_NORMAL || type == TOKEN_TYPE_USER_DEFINED || type == TOKEN_TYPE_UNDEFINED;
}

static bool push_pair(tokenizer_scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const tok_sym *L = &s->syms[l], *R = &s->syms[r];
    uint32_t size = L->len + R->len;
    int32_t id = tok_lookup(s->tok, s->text + L->off, size);
    if (id < 0 || !mergeable(s->tok->tokens[id].type)) return true;
    return tok_heap_push(s, (tok_pair){.key_f = -s->tok->tokens[id].score, .key_u = 0, .left = l, .right = r,
                                       .result = id, .size = size});
}

static bool push_bytes(const tokenizer *tok, const uint8_t *p, size_t n, token_buf *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[p[i]];
        if (id < 0) id = tok->unk;
        if (id >= 0 && !tok_push(out, id)) return false;
    }
    return true;
}

ryot_status spm_encode(tokenizer_scratch *s, const char *text, size_t len, bool space_prefix, token_buf *out,
                       ryot_error *err) {
    const tokenizer *tok = s->tok;
    /* Escape: ' ' -> U+2581 (3 bytes). */
    size_t need = 3 * len + 3;
    if (!tok_reserve((void **)&s->text, &s->cap_text, need, 1)) goto nomem;
    char *t = s->text;
    size_t n = 0;
    if (space_prefix) memcpy(t, "\xe2\x96\x81", 3), n = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ')
            memcpy(t + n, "\xe2\x96\x81", 3), n += 3;
        else
            t[n++] = text[i];
    }
    if (!n) return RYOT_OK;

    /* One symbol per character; an invalid byte is a symbol of its own. */
    size_t ns = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)t + i, n - i, &cp);
        if (!l) l = 1;
        if (ns == s->cap_syms && !tok_reserve((void **)&s->syms, &s->cap_syms, ns + 1, sizeof *s->syms)) goto nomem;
        int32_t id = tok_lookup(tok, t + i, l);
        if (id >= 0 && !mergeable(tok->tokens[id].type)) id = -1;
        s->syms[ns] = (tok_sym){.off = (uint32_t)i, .len = (uint32_t)l, .prev = (int32_t)ns - 1, .next = -1, .id = id};
        if (ns) s->syms[ns - 1].next = (int32_t)ns;
        ns++;
        i += l;
    }
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < ns; i++)
        if (!push_pair(s, (int32_t)i, (int32_t)i + 1)) goto nomem;
    tok_sym *sy = s->syms;
    while (s->n_heap) {
        tok_pair p = tok_heap_pop(s);
        tok_sym *L = &sy[p.left], *R = &sy[p.right];
        if (L->len == 0 || R->len == 0 || L->len + R->len != p.size) continue; /* stale */
        L->len += R->len;
        L->id = p.result;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = p.left;
        if (!push_pair(s, L->prev, p.left) || !push_pair(s, p.left, L->next)) goto nomem;
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        bool ok = sy[i].id >= 0 ? tok_push(out, sy[i].id)
                                : push_bytes(tok, (const uint8_t *)t + sy[i].off, sy[i].len, out);
        if (!ok) goto nomem;
    }
    return RYOT_OK;
nomem:
    return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");
}
