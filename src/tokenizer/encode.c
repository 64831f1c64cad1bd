/* Encoding driver: special-token partition, dispatch to the model's merge
 * loop, whole-sequence decoding, scratch memory and shared helpers. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* ---------------------------------------------------------------- helpers */

bool tok_reserve(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return false;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

bool tok_push(token_buf *out, int32_t id) {
    if (out->n == out->cap && !tok_reserve((void **)&out->ids, &out->cap, out->n + 1, sizeof *out->ids)) return false;
    out->ids[out->n++] = id;
    return true;
}

void token_buf_free(token_buf *b) {
    free(b->ids);
    b->ids = NULL;
    b->n = b->cap = 0;
}

size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (!n) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

size_t tok_utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool pair_less(const tok_pair *a, const tok_pair *b) {
    if (a->key_f != b->key_f) return a->key_f < b->key_f;
    if (a->key_u != b->key_u) return a->key_u < b->key_u;
    return a->left < b->left;
}

bool tok_heap_push(tokenizer_scratch *s, tok_pair p) {
    if (s->n_heap == s->cap_heap && !tok_reserve((void **)&s->heap, &s->cap_heap, s->n_heap + 1, sizeof *s->heap))
        return false;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_less(&p, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = p;
    return true;
}

tok_pair tok_heap_pop(tokenizer_scratch *s) {
    tok_pair top = s->heap[0], last = s->heap[--s->n_heap];
    size_t n = s->n_heap, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!pair_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* ---------------------------------------------------------------- word cache */

bool tok_cache_get(tokenizer_scratch *s, const char *key, size_t len, token_buf *out, bool *nomem) {
    word_cache *c = &s->cache;
    *nomem = false;
    if (!c->slots || len > TOK_CACHE_MAX_KEY) return false;
    uint64_t h = tok_hash(key, len) | 1;
    for (uint32_t i = (uint32_t)h & c->mask;; i = (i + 1) & c->mask) {
        const cache_slot *sl = &c->slots[i];
        if (!sl->hash) return false;
        if (sl->hash != h || sl->key_len != len) continue;
        const uint8_t *p = c->arena + sl->off;
        if (memcmp(p + (size_t)sl->n_ids * 4, key, len)) continue;
        if (!tok_reserve((void **)&out->ids, &out->cap, out->n + sl->n_ids, sizeof *out->ids)) {
            *nomem = true;
            return false;
        }
        memcpy(out->ids + out->n, p, (size_t)sl->n_ids * 4);
        out->n += sl->n_ids;
        return true;
    }
}

void tok_cache_put(tokenizer_scratch *s, const char *key, size_t len, const int32_t *ids, size_t n) {
    word_cache *c = &s->cache;
    if (!c->slots || len > TOK_CACHE_MAX_KEY || n > UINT16_MAX) return;
    size_t need = n * 4 + len;
    need = (need + 3) & ~(size_t)3;
    if (c->arena_len + need > c->arena_cap || c->used >= (c->mask + 1) / 2) {
        /* Full: start over (cheaper than eviction, and the hot words return
         * within a few hundred pre-tokens). */
        memset(c->slots, 0, ((size_t)c->mask + 1) * sizeof *c->slots);
        c->used = 0;
        c->arena_len = 0;
    }
    uint64_t h = tok_hash(key, len) | 1;
    uint32_t i = (uint32_t)h & c->mask;
    while (c->slots[i].hash) i = (i + 1) & c->mask;
    uint8_t *p = c->arena + c->arena_len;
    memcpy(p, ids, n * 4);
    memcpy(p + n * 4, key, len);
    c->slots[i] = (cache_slot){.hash = h, .off = (uint32_t)c->arena_len, .key_len = (uint16_t)len, .n_ids = (uint16_t)n};
    c->arena_len += need;
    c->used++;
}

/* ---------------------------------------------------------------- scratch */

static tokenizer_scratch *scratch_create(const tokenizer *tok, bool with_cache) {
    tokenizer_scratch *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->tok = tok;
    if (tok->pre.n) {
        s->md = pcre2_match_data_create(1, NULL); /* the patterns capture nothing */
        s->mctx = pcre2_match_context_create(NULL);
        /* A JIT stack larger than the 32 KiB default, so that long runs of
         * one character class cannot exhaust it. */
        s->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (!s->md || !s->mctx || !s->jit_stack) {
            tokenizer_scratch_free(s);
            return NULL;
        }
        pcre2_jit_stack_assign(s->mctx, NULL, s->jit_stack);
    }
    if (!with_cache) return s;
    s->cache.slots = calloc(TOK_CACHE_SLOTS, sizeof *s->cache.slots);
    s->cache.arena = malloc(TOK_CACHE_ARENA);
    if (!s->cache.slots || !s->cache.arena) {
        tokenizer_scratch_free(s);
        return NULL;
    }
    s->cache.mask = TOK_CACHE_SLOTS - 1;
    s->cache.arena_cap = TOK_CACHE_ARENA;
    return s;
}

tokenizer_scratch *tokenizer_scratch_new(const tokenizer *tok) { return scratch_create(tok, true); }

void tokenizer_scratch_free(tokenizer_scratch *s) {
    if (!s) return;
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit_stack);
    free(s->cache.slots);
    free(s->cache.arena);
    free(s->frags);
    free(s->taken);
    free(s->cands);
    free(s->covered);
    free(s->spans);
    free(s->spans2);
    free(s->syms);
    free(s->heap);
    free(s->text);
    free(s);
}

/* ---------------------------------------------------------------- encode */

static ryot_status encode(tokenizer_scratch *s, const char *text, size_t len, unsigned flags, token_buf *out,
                          ryot_error *err) {
    const tokenizer *tok = s->tok;
    if (len > INT32_MAX / 4) return ryot_fail(err, RYOT_ERR_INVALID, "text of %zu bytes is too long to tokenize", len);
    if ((flags & TOKENIZE_ADD_BOS) && tok->bos >= 0 && !tok_push(out, tok->bos))
        return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");
    ryot_status st = special_partition(s, text, len, (flags & TOKENIZE_SPECIAL) != 0, err);
    if (st != RYOT_OK) return st;
    if (!len) s->n_frags = 0; /* empty text: no tokens, not even a space prefix */
    bool after_special = true; /* SentencePiece adds its space prefix at the start and after specials */
    for (size_t k = 0; k < s->n_frags; k++) {
        tok_frag f = s->frags[k];
        if (f.id >= 0) {
            if (!tok_push(out, f.id)) return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");
            after_special = true;
            continue;
        }
        switch (tok->kind) {
        case TOKENIZER_BPE: st = bpe_encode(s, text + f.off, f.len, out, err); break;
        case TOKENIZER_SPM:
            st = spm_encode(s, text + f.off, f.len, tok->add_space_prefix && after_special, out, err);
            break;
        case TOKENIZER_WPM: st = wpm_encode(s, text + f.off, f.len, out, err); break;
        }
        if (st != RYOT_OK) return st;
        after_special = false;
    }
    if (flags & TOKENIZE_ADD_EOS) {
        if (tok->eos >= 0 && !tok_push(out, tok->eos)) return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");
    }
    return RYOT_OK;
}

ryot_status tokenizer_encode(const tokenizer *tok, tokenizer_scratch *scratch, const char *text, size_t len,
                             unsigned flags, token_buf *out, ryot_error *err) {
    tokenizer_scratch *s = scratch;
    /* A one-off scratch skips the word cache: it would be filled and thrown away. */
    if (!s && !(s = scratch_create(tok, false))) return ryot_fail(err, RYOT_ERR_NOMEM, "tokenizer scratch");
    RYOT_ASSERT(s->tok == tok);
    size_t n0 = out->n;
    ryot_status st = encode(s, text ? text : "", text ? len : 0, flags, out, err);
    if (st != RYOT_OK) out->n = n0;
    if (s != scratch) tokenizer_scratch_free(s);
    return st;
}

/* ---------------------------------------------------------------- decode */

ryot_status tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, unsigned flags, char **out,
                             size_t *out_len, ryot_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < tok->n_vocab) total += tok->tokens[ids[i]].piece_len;
    char *buf = malloc(total + 1);
    if (!buf) return ryot_fail(err, RYOT_ERR_NOMEM, "decode of %zu bytes", total);
    size_t o = 0;
    bool started = false;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) continue;
        const tok_entry *e = &tok->tokens[ids[i]];
        if ((e->type == TOKEN_TYPE_CONTROL || e->type == TOKEN_TYPE_UNKNOWN) && !(flags & DETOK_SPECIAL)) continue;
        const char *p = tok->blob + e->piece_off;
        size_t l = e->piece_len;
        if (!started && l) {
            started = true;
            if ((flags & DETOK_STRIP_SPACE) && p[0] == ' ') p++, l--;
        }
        memcpy(buf + o, p, l);
        o += l;
    }
    buf[o] = 0;
    *out = buf;
    *out_len = o;
    return RYOT_OK;
}
