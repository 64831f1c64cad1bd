/* WordPiece (tokenizer.ggml.model "bert"), as BERT's uncased tokenizers do it.
 *
 * Normalization, per character: NUL, U+FFFD and control characters (Cc, Cf,
 * Co, Cs; tab, LF and CR count as whitespace) are removed; whitespace ends a
 * word; CJK ideographs are words of their own; everything else is decomposed
 * (NFD), stripped of nonspacing marks (Mn) and lower-cased (wpm_tables.c),
 * and then each punctuation character (ASCII non-alphanumeric printables and
 * Unicode P*) is a word of its own.
 *
 * Each word is split greedily, longest match first: GGUF stores a word-initial
 * piece "x" as "\u2581x" and a continuation "##x" as "x".  A word with an
 * unmatched rest, or longer than 100 characters, becomes the unknown token. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define SPACE "\xe2\x96\x81"
#define MAX_WORD_CHARS 100

static bool in_ranges(const wpm_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return true;
    }
    return false;
}

static bool is_whitespace(uint32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static bool is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    return in_ranges(wpm_control, wpm_control_n, c);
}

static bool is_punct(uint32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    return in_ranges(wpm_punct, wpm_punct_n, c);
}

/* The ideograph blocks BERT pads with spaces. */
static bool is_cjk(uint32_t c) {
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2a6df) ||
           (c >= 0x2a700 && c <= 0x2b73f) || (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b820 && c <= 0x2ceaf) ||
           (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}

static int cmp_fold(const void *key, const void *elem) {
    uint32_t k = *(const uint32_t *)key, c = ((const wpm_fold *)elem)->cp;
    return k < c ? -1 : k > c;
}

/* Writes the normalized form of c (0 to 3 code points) to out. */
static int fold(uint32_t c, uint32_t out[3]) {
    if (c < 0x80) {
        out[0] = c >= 'A' && c <= 'Z' ? c + 32 : c;
        return 1;
    }
    if (c >= 0xac00 && c <= 0xd7a3) { /* Hangul syllable: canonical decomposition into jamo */
        uint32_t s = c - 0xac00;
        out[0] = 0x1100 + s / 588;
        out[1] = 0x1161 + (s % 588) / 28;
        if (s % 28) {
            out[2] = 0x11a7 + s % 28;
            return 3;
        }
        return 2;
    }
    if (in_ranges(wpm_mn, wpm_mn_n, c)) return 0;
    const wpm_fold *f = bsearch(&c, wpm_folds, wpm_folds_n, sizeof *wpm_folds, cmp_fold);
    if (!f) {
        out[0] = c;
        return 1;
    }
    int n = 0;
    while (n < 3 && f->out[n]) out[n] = f->out[n], n++;
    return n;
}

/* Splits one normalized word (in s->text after a U+2581 prefix: w points at
 * the prefix, n bytes of word follow it, nc characters). */
static bool wpm_word(tokenizer_scratch *s, const char *w, size_t n, size_t nc, token_buf *out) {
    const tokenizer *tok = s->tok;
    bool nomem;
    if (tok_cache_get(s, w, n + 3, out, &nomem)) return true;
    if (nomem) return false;
    size_t n0 = out->n;
    const char *word = w + 3;
    bool ok = nc <= MAX_WORD_CHARS;
    for (size_t start = 0; ok && start < n;) {
        /* Longest match from start, ending on a character boundary. */
        size_t end = n;
        if (end - start > tok->max_piece) end = start + tok->max_piece;
        while (end < n && ((uint8_t)word[end] & 0xc0) == 0x80) end--;
        int32_t id = -1;
        for (; end > start; end--) {
            if (end < n && ((uint8_t)word[end] & 0xc0) == 0x80) continue;
            id = start == 0 ? tok_lookup(tok, w, end + 3) : tok_lookup(tok, word + start, end - start);
            if (id >= 0) break;
        }
        if (id < 0) {
            ok = false;
            break;
        }
        if (!tok_push(out, id)) return false;
        start = end;
    }
    if (!ok) {
        out->n = n0;
        if (tok->unk >= 0 && !tok_push(out, tok->unk)) return false;
    }
    tok_cache_put(s, w, n + 3, out->ids + n0, out->n - n0);
    return true;
}

ryot_status wpm_encode(tokenizer_scratch *s, const char *text, size_t len, token_buf *out, ryot_error *err) {
    /* Normalized text grows at most 3 code points per input character, each
     * at most 4 bytes; plus the prefix. */
    if (!tok_reserve((void **)&s->text, &s->cap_text, 12 * len + 8, 1)) goto nomem;
    char *buf = s->text;
    size_t wn = 0, nc = 0; /* current word: bytes after the prefix, characters */
    memcpy(buf, SPACE, 3);
#define FLUSH()                                                                       \
    do {                                                                              \
        if (wn && !wpm_word(s, buf, wn, nc, out)) goto nomem;                          \
        wn = nc = 0;                                                                  \
    } while (0)
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t l = tok_utf8_decode((const uint8_t *)text + i, len - i, &c);
        if (!l) c = 0xfffd, l = 1; /* invalid byte: removed like U+FFFD */
        i += l;
        if (c == 0 || c == 0xfffd || is_control(c)) continue;
        if (is_whitespace(c)) {
            FLUSH();
            continue;
        }
        uint32_t f[3];
        int nf = is_cjk(c) ? (f[0] = c, 1) : fold(c, f);
        for (int k = 0; k < nf; k++) {
            bool alone = is_cjk(c) || is_punct(f[k]);
            if (alone) FLUSH();
            wn += tok_utf8_encode(f[k], buf + 3 + wn);
            nc++;
            if (alone) FLUSH();
        }
    }
    FLUSH();
#undef FLUSH
    return RYOT_OK;
nomem:
    return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize");
}
