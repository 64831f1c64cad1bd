/* Incremental detokenizer: token pieces in, valid UTF-8 out.
 *
 * Pieces of byte-level and byte-fallback tokens can end in the middle of a
 * character; those trailing bytes wait in `pend` (at most 3) for the next
 * piece.  Bytes that can never start or continue a character are replaced by
 * U+FFFD, one per maximal ill-formed subsequence (the Unicode recommendation),
 * so a stream never carries broken UTF-8. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static const char REPLACEMENT[3] = {(char)0xef, (char)0xbf, (char)0xbd};

ryot_status detok_init(detok *d, const tokenizer *tok, unsigned flags, ryot_error *err) {
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->flags = flags;
    d->cap = 3 * ((size_t)tok->max_piece + 4) + 1;
    d->buf = malloc(d->cap);
    if (!d->buf) return ryot_fail(err, RYOT_ERR_NOMEM, "detokenizer buffer");
    return RYOT_OK;
}

void detok_free(detok *d) {
    free(d->buf);
    d->buf = NULL;
}

/* Allowed range of the second byte of a sequence led by `lead` (the others
 * are always 80..BF). */
static void second_range(uint8_t lead, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80, *hi = 0xbf;
    if (lead == 0xe0) *lo = 0xa0;
    else if (lead == 0xed) *hi = 0x9f;
    else if (lead == 0xf0) *lo = 0x90;
    else if (lead == 0xf4) *hi = 0x8f;
}

static size_t seq_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xc2 && lead <= 0xdf) return 2;
    if (lead >= 0xe0 && lead <= 0xef) return 3;
    if (lead >= 0xf0 && lead <= 0xf4) return 4;
    return 0;
}

/* Moves the valid part of pend+piece into d->buf; keeps an unfinished tail in
 * pend unless `final`. */
static size_t run(detok *d, const uint8_t *piece, size_t n, bool final) {
    uint8_t in[4];
    size_t np = d->n_pend, total = np + n, o = 0, i = 0;
    memcpy(in, d->pend, np);
#define AT(j) ((j) < np ? in[(j)] : piece[(j) - np])
    d->n_pend = 0;
    if (!d->started && total) {
        d->started = true;
        if ((d->flags & DETOK_STRIP_SPACE) && AT(0) == ' ') i = 1;
    }
    while (i < total) {
        uint8_t c = AT(i);
        size_t want = seq_len(c);
        if (want == 1) {
            d->buf[o++] = (char)c;
            i++;
            continue;
        }
        if (want == 0) {
            memcpy(d->buf + o, REPLACEMENT, 3), o += 3;
            i++;
            continue;
        }
        size_t k = 1;
        uint8_t lo, hi;
        second_range(c, &lo, &hi);
        while (k < want && i + k < total) {
            uint8_t b = AT(i + k);
            if (k == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) break;
            k++;
        }
        if (k == want) {
            for (size_t j = 0; j < k; j++) d->buf[o++] = (char)AT(i + j);
        } else if (i + k == total && !final) {
            for (size_t j = 0; j < k; j++) d->pend[d->n_pend++] = AT(i + j); /* may still complete */
        } else {
            memcpy(d->buf + o, REPLACEMENT, 3), o += 3;
        }
        i += k;
    }
#undef AT
    return o;
}

const char *detok_push(detok *d, int32_t id, size_t *len) {
    *len = 0;
    const tokenizer *tok = d->tok;
    if (id < 0 || id >= tok->n_vocab) return d->buf;
    const tok_entry *e = &tok->tokens[id];
    if ((e->type == TOKEN_TYPE_CONTROL || e->type == TOKEN_TYPE_UNKNOWN) && !(d->flags & DETOK_SPECIAL)) return d->buf;
    *len = run(d, (const uint8_t *)tok->blob + e->piece_off, e->piece_len, false);
    return d->buf;
}

const char *detok_flush(detok *d, size_t *len) {
    *len = run(d, NULL, 0, true);
    return d->buf;
}
