/* libFuzzer target for the tokenizers.
 *
 * Three vocabs are loaded once: byte-level BPE ($RYOT_FUZZ_VOCAB, default the
 * gpt-2 test vocab), SentencePiece ($RYOT_FUZZ_VOCAB_SPM, default llama-spm)
 * and WordPiece ($RYOT_FUZZ_VOCAB_WPM, default bert-bge); paths are relative
 * to the repository root.  Input byte 0 picks the vocab (bit 0: BPE/SPM, bit 3
 * set: WordPiece), whether specials are parsed (bit 1) and whether the
 * reusable scratch or a temporary one is used (bit 2); the rest is the text:
 * arbitrary bytes, invalid UTF-8 and NULs included.
 *
 * Invalid UTF-8 contract (tokenizer.h): never an error, never a crash; each
 * invalid byte becomes a byte token.  Both default vocabs have a token for
 * every byte, so decoding must give the input back exactly (SentencePiece:
 * after dropping the space prefix; with specials parsed, only for BPE, since
 * SentencePiece adds a space after each special; WordPiece folds case and
 * drops characters, so it is only checked for safety).  The streaming
 * detokenizer must emit valid UTF-8 only, and for valid UTF-8 input the same
 * bytes as the exact decode.
 *
 *   make fuzz && build-fuzz/fuzz/fuzz_tokenizer -max_total_time=60 tests/fuzz/corpus/tokenizer
 * Seeds: tests/fuzz/corpus/tokenizer/ (hand-written texts; first byte = selector). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static tokenizer *toks[3];
static tokenizer_scratch *scratch[3];

static tokenizer *load(const char *env, const char *def) {
    const char *path = getenv(env);
    if (!path || !*path) path = def;
    gguf_file *f;
    tokenizer *t;
    ryot_error err;
    if (gguf_open(path, &f, &err) || tokenizer_load(f, &t, &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s: %s (set %s)\n", path, err.msg, env);
        abort();
    }
    gguf_close(f);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    toks[0] = load("RYOT_FUZZ_VOCAB", "../shared/testdata/tokenizer/gpt-2.gguf");
    toks[1] = load("RYOT_FUZZ_VOCAB_SPM", "../shared/testdata/tokenizer/llama-spm.gguf");
    toks[2] = load("RYOT_FUZZ_VOCAB_WPM", "../shared/testdata/tokenizer/bert-bge.gguf");
    for (int i = 0; i < 3; i++)
        if (!(scratch[i] = tokenizer_scratch_new(toks[i]))) abort();
    return 0;
}

static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t l;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) l = 2;
        else if (c >= 0xe0 && c <= 0xef) l = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4) l = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else return false;
        if (i + l > n || s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t k = 2; k < l; k++)
            if ((s[i + k] & 0xc0) != 0x80) return false;
        i += l;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int which = data[0] & 8 ? 2 : data[0] & 1;
    bool special = data[0] & 2, shared = !(data[0] & 4);
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    const tokenizer *t = toks[which];
    bool spm = tokenizer_get_kind(t) == TOKENIZER_SPM, wpm = tokenizer_get_kind(t) == TOKENIZER_WPM;

    token_buf ids = {0};
    ryot_error err;
    if (tokenizer_encode(t, shared ? scratch[which] : NULL, text, n, special ? TOKENIZE_SPECIAL : 0, &ids, &err)) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        abort();
    }
    for (size_t i = 0; i < ids.n; i++)
        if (ids.ids[i] < 0 || ids.ids[i] >= tokenizer_n_vocab(t)) abort();

    char *dec;
    size_t dl;
    unsigned dflags = (special ? DETOK_SPECIAL : 0) | (spm ? DETOK_STRIP_SPACE : 0);
    if (tokenizer_decode(t, ids.ids, ids.n, dflags, &dec, &dl, &err)) abort();
    /* SentencePiece writes spaces as U+2581, so a literal U+2581 in the
     * input decodes as a space: the round trip is exact only without it. */
    bool spm_lossy = spm && memmem(text, n, "\xe2\x96\x81", 3);
    if (!(special && spm) && !wpm && !spm_lossy && (dl != n || memcmp(dec, text, n))) {
        fprintf(stderr, "round trip differs: %zu bytes in, %zu out\n", n, dl);
        abort();
    }

    detok d;
    if (detok_init(&d, t, dflags, &err)) abort();
    char *acc = malloc(3 * dl + 16);
    size_t an = 0, len;
    for (size_t i = 0; i <= ids.n; i++) {
        const char *p = i < ids.n ? detok_push(&d, ids.ids[i], &len) : detok_flush(&d, &len);
        if (!valid_utf8((const unsigned char *)p, len)) abort();
        if (an + len > 3 * dl + 16) abort();
        memcpy(acc + an, p, len);
        an += len;
    }
    if (valid_utf8((const unsigned char *)dec, dl) && (an != dl || memcmp(acc, dec, dl))) abort();
    free(acc);
    detok_free(&d);
    free(dec);
    token_buf_free(&ids);
    return 0;
}
