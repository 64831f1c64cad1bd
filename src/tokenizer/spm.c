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
 * when their score allows; SentencePiece itself does not).
 *
 * Speed: running one heap over a whole document costs a cache miss per
 * operation.  A pair can only be merged if its concatenation is a token, so
 * a cut between characters c and U+2581 can never be crossed when no token
 * contains "c" + U+2581.  spm_prepare collects the characters that do occur
 * there (Llama's vocab: none; Gemma's: '>'), and the text is merged word by
 * word between the other cuts, with the same result as one pass over the
 * whole text.  Words are memoized in the scratch's cache. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define SPACE "\xe2\x96\x81"
#define MAX_GLUE 256

static bool mergeable(uint8_t type) {
    return type == TOKEN_TYPE_NORMAL || type == TOKEN_TYPE_USER_DEFINED || type == TOKEN_TYPE_UNDEFINED;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

ryot_status spm_prepare(tokenizer *tok, ryot_error *err) {
    uint32_t glue[MAX_GLUE + 1];
    int n = 0;
    bool overflow = false;
    for (int32_t id = 0; id < tok->n_vocab && !overflow; id++) {
        const tok_entry *e = &tok->tokens[id];
        if (!mergeable(e->type)) continue;
        const uint8_t *t = (const uint8_t *)tok->blob + e->text_off;
        uint32_t prev = 0x2581;
        for (uint32_t i = 0; i < e->text_len;) {
            uint32_t cp;
            size_t l = tok_utf8_decode(t + i, e->text_len - i, &cp);
            if (!l) cp = 0x110000 + t[i], l = 1; /* an invalid byte: never equal to a character */
            if (cp == 0x2581 && i > 0 && prev != 0x2581) {
                bool seen = false;
                for (int k = 0; k < n && !seen; k++) seen = glue[k] == prev;
                if (!seen) {
                    if (n == MAX_GLUE) overflow = true;
                    else glue[n++] = prev;
                }
            }
            prev = cp;
            i += (uint32_t)l;
        }
    }
    tok->spm_split = !overflow;
    if (overflow || !n) return RYOT_OK;
    qsort(glue, (size_t)n, sizeof *glue, cmp_u32);
    tok->glue = malloc((size_t)n * sizeof *glue);
    if (!tok->glue) return ryot_fail(err, RYOT_ERR_NOMEM, "vocab");
    memcpy(tok->glue, glue, (size_t)n * sizeof *glue);
    tok->n_glue = n;
    return RYOT_OK;
}

static bool is_glue(const tokenizer *tok, uint32_t cp) {
    return tok->n_glue && bsearch(&cp, tok->glue, (size_t)tok->n_glue, sizeof cp, cmp_u32);
}

static bool push_pair(tokenizer_scratch *s, const char *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const tok_sym *L = &s->syms[l], *R = &s->syms[r];
    uint32_t size = L->len + R->len;
    int32_t id = tok_lookup(s->tok, w + L->off, size);
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

/* Merges one word w[0..n) (escaped text) and appends its tokens. */
static bool spm_word(tokenizer_scratch *s, const char *w, size_t n, token_buf *out) {
    const tokenizer *tok = s->tok;
    bool nomem;
    if (tok_cache_get(s, w, n, out, &nomem)) return true;
    if (nomem) return false;
    size_t n0 = out->n, ns = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)w + i, n - i, &cp);
        if (!l) l = 1; /* an invalid byte is a symbol of its own */
        if (ns == s->cap_syms && !tok_reserve((void **)&s->syms, &s->cap_syms, ns + 1, sizeof *s->syms)) return false;
        int32_t id = tok_lookup(tok, w + i, l);
        if (id >= 0 && !mergeable(tok->tokens[id].type)) id = -1;
        s->syms[ns] = (tok_sym){.off = (uint32_t)i, .len = (uint32_t)l, .prev = (int32_t)ns - 1, .next = -1, .id = id};
        if (ns) s->syms[ns - 1].next = (int32_t)ns;
        ns++;
        i += l;
    }
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < ns; i++)
        if (!push_pair(s, w, (int32_t)i, (int32_t)i + 1)) return false;
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
        if (!push_pair(s, w, L->prev, p.left) || !push_pair(s, w, p.left, L->next)) return false;
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        bool ok = sy[i].id >= 0 ? tok_push(out, sy[i].id) : push_bytes(tok, (const uint8_t *)w + sy[i].off, sy[i].len, out);
        if (!ok) return false;
    }
    tok_cache_put(s, w, n, out->ids + n0, out->n - n0);
    return true;
}

ryot_status spm_encode(tokenizer_scratch *s, const char *text, size_t len, bool space_prefix, token_buf *out,
                       ryot_error *err) {
    const tokenizer *tok = s->tok;
    /* Escape: ' ' -> U+2581 (3 bytes). */
    if (!tok_reserve((void **)&s->text, &s->cap_text, 3 * len + 3, 1)) goto nomem;
    char *t = s->text;
    size_t n = 0;
    if (space_prefix) memcpy(t, SPACE, 3), n = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ')
            memcpy(t + n, SPACE, 3), n += 3;
        else
            t[n++] = text[i];
    }
    if (!tok->spm_split) return spm_word(s, t, n, out) ? RYOT_OK : ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");

    /* Cut before each U+2581 that follows a character outside the glue set. */
    size_t start = 0;
    uint32_t prev = 0x2581;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)t + i, n - i, &cp);
        if (!l) cp = 0x110000 + (uint8_t)t[i], l = 1;
        if (cp == 0x2581 && prev != 0x2581 && i > start && !is_glue(tok, prev)) {
            if (!spm_word(s, t + start, i - start, out)) goto nomem;
            start = i;
        }
        prev = cp;
        i += l;
    }
    if (start < n && !spm_word(s, t + start, n - start, out)) goto nomem;
    return RYOT_OK;
nomem:
    return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");
}
