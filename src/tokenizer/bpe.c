/* Byte-level BPE (tokenizer.ggml.model "gpt2").
 *
 * Each pre-token starts as one symbol per byte (the token of the byte's
 * printable stand-in).  Adjacent pairs with a merge rule sit in a min-heap
 * keyed by (rank, left position); the best pair is merged, its stale heap
 * entries are skipped when popped, and the two new neighbour pairs are pushed.
 * O(n log n) per pre-token. */
#include <string.h>

#include "tokenizer/tok_internal.h"

static bool push_pair(tokenizer_scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const tok_sym *L = &s->syms[l], *R = &s->syms[r];
    if (L->id < 0 || R->id < 0) return true;
    uint32_t rank;
    int32_t res = tok_merge_find(s->tok, L->id, R->id, &rank);
    if (res < 0) return true;
    return tok_heap_push(s, (tok_pair){.key_f = 0, .key_u = rank, .left = l, .right = r, .result = res,
                                       .size = L->len + R->len});
}

/* A symbol without a token (a vocab lacking some byte): the unknown token if
 * there is one, else nothing. */
static bool push_missing(const tokenizer *tok, token_buf *out) { return tok->unk < 0 || tok_push(out, tok->unk); }

static ryot_status bpe_word(tokenizer_scratch *s, const uint8_t *w, size_t n, token_buf *out, ryot_error *err) {
    const tokenizer *tok = s->tok;
    if (n == 1) {
        int32_t id = tok->byte_id[w[0]];
        if (!(id >= 0 ? tok_push(out, id) : push_missing(tok, out))) goto nomem;
        return RYOT_OK;
    }
    bool nomem;
    if (tok_cache_get(s, (const char *)w, n, out, &nomem)) return RYOT_OK;
    if (nomem) goto nomem;
    size_t n0 = out->n;
    if (tok->ignore_merges) {
        /* Llama 3: a pre-token that is already a vocab entry is kept whole,
         * even where the merge rules would split it differently. */
        if (!tok_reserve((void **)&s->text, &s->cap_text, 2 * n, 1)) goto nomem;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) o += tok_utf8_encode(tok_byte_to_cp(w[i]), s->text + o);
        int32_t id = tok_lookup(tok, s->text, o);
        if (id >= 0 && tok->tokens[id].type == TOKEN_TYPE_NORMAL) {
            if (!tok_push(out, id)) goto nomem;
            tok_cache_put(s, (const char *)w, n, out->ids + n0, 1);
            return RYOT_OK;
        }
    }
    if (!tok_reserve((void **)&s->syms, &s->cap_syms, n, sizeof *s->syms)) goto nomem;
    tok_sym *sy = s->syms;
    for (size_t i = 0; i < n; i++)
        sy[i] = (tok_sym){.off = (uint32_t)i, .len = 1, .prev = (int32_t)i - 1,
                          .next = i + 1 < n ? (int32_t)i + 1 : -1, .id = tok->byte_id[w[i]]};
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!push_pair(s, (int32_t)i, (int32_t)i + 1)) goto nomem;
    while (s->n_heap) {
        tok_pair p = tok_heap_pop(s);
        tok_sym *L = &sy[p.left], *R = &sy[p.right];
        /* Stale: one side was merged away or grew since the pair was pushed. */
        if (L->len == 0 || R->len == 0 || L->len + R->len != p.size) continue;
        L->len += R->len;
        L->id = p.result;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = p.left;
        if (!push_pair(s, L->prev, p.left) || !push_pair(s, p.left, L->next)) goto nomem;
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        if (sy[i].id >= 0) {
            if (!tok_push(out, sy[i].id)) goto nomem;
        } else if (!push_missing(tok, out)) {
            goto nomem;
        }
    }
    tok_cache_put(s, (const char *)w, n, out->ids + n0, out->n - n0);
    return RYOT_OK;
nomem:
    return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");
}

/* Length of the longest valid UTF-8 prefix of s[0..n). */
static size_t valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        if (!l) break;
        i += l;
    }
    return i;
}

ryot_status bpe_encode(tokenizer_scratch *s, const char *text, size_t len, token_buf *out, ryot_error *err) {
    const uint8_t *u = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        size_t v = valid_prefix(u + i, len - i);
        if (v) {
            ryot_status st = pretok_split(s, text, i, v, err);
            if (st != RYOT_OK) return st;
            for (size_t k = 0; k < s->n_spans; k++) {
                st = bpe_word(s, u + s->spans[k].off, s->spans[k].len, out, err);
                if (st != RYOT_OK) return st;
            }
            i += v;
        }
        if (i < len) { /* an invalid byte: a pre-token of its own */
            ryot_status st = bpe_word(s, u + i, 1, out, err);
            if (st != RYOT_OK) return st;
            i++;
        }
    }
    return RYOT_OK;
}
