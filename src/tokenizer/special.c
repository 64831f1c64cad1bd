/* Special-token partition: cutting unknown, control and user-defined token
 * texts out of the input before the model's own tokenizer runs.
 *
 * Semantics (those of llama.cpp and Hugging Face added tokens): specials are
 * taken longest first over the whole text.  For each length L, from the
 * longest down, every occurrence of a length-L special in what is still raw
 * text is cut out, left to right, non-overlapping.  Without TOKENIZE_SPECIAL
 * only user-defined tokens are eligible.  A cut token with TOK_STRIP_RIGHT
 * (LEFT) also removes the whitespace after (before) it from the text between
 * it and its neighbour.
 *
 * Cost: one walk of a byte trie from each position whose byte starts some
 * special gives the candidates (position, longest eligible match); the
 * length passes then only visit candidates.  An occurrence [i, i+L) overlaps
 * an earlier cut iff i or i+L-1 is covered, because earlier cuts are at least
 * L long. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static uint32_t edge_hash(uint32_t key) { return (key * 0x9e3779b1u) ^ (key >> 15); }

static uint32_t trie_child(const special_index *x, uint32_t node, uint8_t b) {
    uint32_t key = node << 8 | b;
    for (uint32_t i = edge_hash(key) & x->mask;; i = (i + 1) & x->mask) {
        if (x->edges[i].key == key) return x->edges[i].child;
        if (x->edges[i].key == UINT32_MAX) return 0; /* 0 = none (the root is never a child) */
    }
}

static uint8_t kind_of(uint8_t type) {
    if (type == TOKEN_TYPE_USER_DEFINED) return TRIE_END_USER;
    if (type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_UNKNOWN) return TRIE_END_CTRL;
    return 0;
}

static int cmp_desc(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

ryot_status special_init(tokenizer *tok, ryot_error *err) {
    special_index *x = &tok->specials;
    uint64_t bytes = 0;
    uint32_t count = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const tok_entry *e = &tok->tokens[id];
        /* Only the token a text lookup answers with can be matched. */
        if (!kind_of(e->type) || !e->text_len || tok_lookup(tok, tok->blob + e->text_off, e->text_len) != id) continue;
        bytes += e->text_len;
        count++;
    }
    if (!count) return RYOT_OK;
    if (bytes >= (1u << 23)) return ryot_fail(err, RYOT_ERR_FORMAT, "special tokens: %llu bytes of text", (unsigned long long)bytes);
    uint32_t cap = 16;
    while (cap < 2 * bytes) cap <<= 1;
    x->edges = malloc((size_t)cap * sizeof *x->edges);
    x->end = calloc(bytes + 1, 1);
    x->lens = malloc(count * sizeof *x->lens);
    if (!x->edges || !x->end || !x->lens) return ryot_fail(err, RYOT_ERR_NOMEM, "special token index");
    memset(x->edges, 0xff, (size_t)cap * sizeof *x->edges);
    x->mask = cap - 1;
    x->n_nodes = 1;
    uint32_t nl = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const tok_entry *e = &tok->tokens[id];
        uint8_t kind = kind_of(e->type);
        if (!kind || !e->text_len || tok_lookup(tok, tok->blob + e->text_off, e->text_len) != id) continue;
        const uint8_t *t = (const uint8_t *)tok->blob + e->text_off;
        uint32_t node = 0;
        for (uint32_t k = 0; k < e->text_len; k++) {
            uint32_t key = node << 8 | t[k], i = edge_hash(key) & x->mask;
            while (x->edges[i].key != UINT32_MAX && x->edges[i].key != key) i = (i + 1) & x->mask;
            if (x->edges[i].key == UINT32_MAX) x->edges[i] = (trie_edge){key, x->n_nodes++};
            node = x->edges[i].child;
        }
        x->end[node] |= kind;
        x->first[t[0] >> 3] |= (uint8_t)(1u << (t[0] & 7));
        x->lens[nl++] = e->text_len;
    }
    qsort(x->lens, nl, sizeof *x->lens, cmp_desc);
    uint32_t nd = 0;
    for (uint32_t i = 0; i < nl; i++)
        if (!nd || x->lens[nd - 1] != x->lens[i]) x->lens[nd++] = x->lens[i];
    x->n_lens = (int)nd;
    x->len_kind = calloc(nd, 1);
    if (!x->len_kind) return ryot_fail(err, RYOT_ERR_NOMEM, "special token index");
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const tok_entry *e = &tok->tokens[id];
        uint8_t kind = kind_of(e->type);
        if (!kind || !e->text_len) continue;
        for (uint32_t i = 0; i < nd; i++)
            if (x->lens[i] == e->text_len) x->len_kind[i] |= kind;
    }
    return RYOT_OK;
}

void special_free(special_index *x) {
    free(x->edges);
    free(x->end);
    free(x->lens);
    free(x->len_kind);
    memset(x, 0, sizeof *x);
}

static bool covered(const uint64_t *bits, size_t i) { return bits[i >> 6] >> (i & 63) & 1; }

static void cover(uint64_t *bits, size_t i, size_t n) {
    for (size_t k = i; k < i + n; k++) bits[k >> 6] |= 1ull << (k & 63);
}

/* C's isspace in the C locale, as llama.cpp strips. */
static bool is_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static int cmp_frag_pos(const void *a, const void *b) {
    size_t x = ((const tok_frag *)a)->off, y = ((const tok_frag *)b)->off;
    return x < y ? -1 : x > y;
}

static bool frag_push(tok_frag **a, size_t *n, size_t *cap, size_t off, size_t len, int32_t id) {
    if (*n == *cap && !tok_reserve((void **)a, cap, *n + 1, sizeof **a)) return false;
    (*a)[(*n)++] = (tok_frag){off, len, id};
    return true;
}

ryot_status special_partition(tokenizer_scratch *s, const char *text, size_t len, bool special, ryot_error *err) {
    const tokenizer *tok = s->tok;
    const special_index *x = &tok->specials;
    const uint8_t *u = (const uint8_t *)text;
    uint8_t want = TRIE_END_USER | (special ? TRIE_END_CTRL : 0);
    s->n_frags = 0;
    s->n_taken = 0;

    /* Candidates: positions where an eligible special starts. */
    size_t nc = 0;
    if (x->n_nodes > 1) {
        for (size_t i = 0; i < len; i++) {
            if (!(x->first[u[i] >> 3] >> (u[i] & 7) & 1)) continue;
            uint32_t node = 0, maxlen = 0;
            for (size_t j = i; j < len; j++) {
                node = trie_child(x, node, u[j]);
                if (!node) break;
                if (x->end[node] & want) maxlen = (uint32_t)(j - i + 1);
            }
            if (!maxlen) continue;
            if (nc == s->cap_cands && !tok_reserve((void **)&s->cands, &s->cap_cands, nc + 1, sizeof *s->cands)) goto nomem;
            s->cands[nc++] = (tok_cand){(uint32_t)i, maxlen};
        }
    }
    if (nc) {
        size_t words = (len + 63) / 64;
        if (!tok_reserve((void **)&s->covered, &s->cap_covered, words, sizeof *s->covered)) goto nomem;
        memset(s->covered, 0, words * sizeof *s->covered);
        for (int g = 0; g < x->n_lens; g++) {
            if (!(x->len_kind[g] & want)) continue;
            uint32_t L = x->lens[g];
            for (size_t c = 0; c < nc; c++) {
                size_t i = s->cands[c].pos;
                if (s->cands[c].maxlen < L || covered(s->covered, i) || covered(s->covered, i + L - 1)) continue;
                int32_t id = tok_lookup(tok, text + i, L);
                if (id < 0 || !(kind_of(tok->tokens[id].type) & want)) continue;
                cover(s->covered, i, L);
                if (!frag_push(&s->taken, &s->n_taken, &s->cap_taken, i, L, id)) goto nomem;
            }
        }
        qsort(s->taken, s->n_taken, sizeof *s->taken, cmp_frag_pos);
    }
    /* Text between two cuts, less the whitespace the special before it
     * (TOK_STRIP_RIGHT) and the one after it (TOK_STRIP_LEFT) swallow. */
    size_t at = 0;
    for (size_t k = 0; k <= s->n_taken; k++) {
        const tok_frag *t = k < s->n_taken ? &s->taken[k] : NULL;
        size_t end = t ? t->off : len;
        if (k > 0 && tok->tokens[s->taken[k - 1].id].strip & TOK_STRIP_RIGHT)
            while (at < end && is_space(u[at])) at++;
        if (t && tok->tokens[t->id].strip & TOK_STRIP_LEFT)
            while (end > at && is_space(u[end - 1])) end--;
        if (end > at && !frag_push(&s->frags, &s->n_frags, &s->cap_frags, at, end - at, -1)) goto nomem;
        if (!t) break;
        if (!frag_push(&s->frags, &s->n_frags, &s->cap_frags, t->off, t->len, t->id)) goto nomem;
        at = t->off + t->len;
    }
    return RYOT_OK;
nomem:
    return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");
}
