/* Tokenizers built from GGUF metadata (tokenizer.ggml.*).
 *
 *   model "gpt2"  byte-level BPE: a PCRE2 pre-tokenizer chosen by
 *                 tokenizer.ggml.pre splits the text, each piece's bytes are
 *                 mapped to printable code points and merged by rank.
 *   model "llama" SentencePiece BPE: spaces become U+2581, the highest-scoring
 *                 adjacent pair that is a vocab entry is merged repeatedly,
 *                 and characters with no token fall back to <0xNN> tokens.
 *   model "bert"  WordPiece, BERT-uncased style: control characters removed,
 *                 NFD, nonspacing marks dropped, lower case, words split at
 *                 whitespace, punctuation and CJK ideographs, then greedy
 *                 longest-match pieces ([UNK] for a word that does not split).
 *
 * The results follow llama.cpp's conventions (its tokenizer test vectors pass
 * unchanged), including two that are easy to miss:
 *   - user-defined tokens (token_type 4) are always split out of the text
 *     before the model runs, like Hugging Face "added tokens"; control and
 *     unknown tokens (types 3 and 2) only when TOKENIZE_SPECIAL is given.
 *     Special texts are matched longest first over the whole text.
 *   - SentencePiece's space prefix is added at the start of the text and after
 *     every special token, when tokenizer.ggml.add_space_prefix allows it.
 *
 * One deliberate difference: in SentencePiece, control tokens are never merged
 * out of plain text ("<s>" typed by a user stays text unless TOKENIZE_SPECIAL
 * is given; llama.cpp would form token 1 from it when its score allows).
 *
 * Invalid UTF-8 input never fails and never reaches PCRE2: the text is split
 * into valid runs; in byte-level BPE each invalid byte becomes its own piece
 * (the byte's token; bytes the vocab has no token for, e.g. C0/C1/F5..FF in
 * DeepSeek's vocabs, become the unknown token or are dropped when there is
 * none), in SentencePiece it becomes a <0xNN> byte token, in WordPiece it is
 * removed like U+FFFD.
 *
 * A tokenizer is immutable after load and may be used from several threads at
 * once.  Working memory lives in a tokenizer_scratch: pass one per thread (it
 * also caches the tokens of recent words, 2-3x faster on real text), or NULL
 * to use a temporary one without the cache. */
#ifndef RYOT_TOKENIZER_H
#define RYOT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"

typedef struct tokenizer tokenizer;
typedef struct tokenizer_scratch tokenizer_scratch;

typedef enum tokenizer_kind {
    TOKENIZER_BPE, /* "gpt2" */
    TOKENIZER_SPM, /* "llama" */
    TOKENIZER_WPM, /* "bert" */
} tokenizer_kind;

/* GGUF tokenizer.ggml.token_type values. */
typedef enum token_type {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,
} token_type;

/* Builds the tokenizer from f's metadata.  Everything needed is copied: the
 * gguf_file may be closed afterwards.  Errors name the key at fault (an
 * unknown tokenizer.ggml.pre is an error naming it). */
ryot_status tokenizer_load(const gguf_file *f, tokenizer **out, ryot_error *err);
void tokenizer_free(tokenizer *tok);

/* Per-thread working memory (regex match data, JIT stack, symbol and heap
 * arrays, a word cache of about 3 MiB).  NULL on allocation failure. */
tokenizer_scratch *tokenizer_scratch_new(const tokenizer *tok);
void tokenizer_scratch_free(tokenizer_scratch *s);

/* Growable id buffer, owned by the caller; start zeroed, free with
 * token_buf_free.  Reuse it across calls to avoid allocations. */
typedef struct token_buf {
    int32_t *ids;
    size_t n, cap;
} token_buf;

void token_buf_free(token_buf *b);

enum {
    TOKENIZE_ADD_BOS = 1u << 0, /* prepend the BOS id (when the vocab has one) */
    TOKENIZE_ADD_EOS = 1u << 1, /* append the EOS id (when the vocab has one) */
    TOKENIZE_SPECIAL = 1u << 2, /* control/unknown token texts become their ids */
};

/* Tokenizes text[0..len) and APPENDS the ids to out.  `flags` is a mask of
 * TOKENIZE_*; what the model itself asks for is tokenizer_default_flags().
 * Fails only on allocation failure, a text of 512 MiB or more, or a regex
 * engine error (resource limits on pathological input); out then holds what
 * it held before. */
ryot_status tokenizer_encode(const tokenizer *tok, tokenizer_scratch *scratch, const char *text, size_t len,
                             unsigned flags, token_buf *out, ryot_error *err);

/* TOKENIZE_ADD_BOS / _ADD_EOS as tokenizer.ggml.add_bos_token / add_eos_token
 * say (defaults: SentencePiece adds BOS, WordPiece [CLS] and [SEP], byte-level
 * BPE nothing unless the pre-tokenizer is llama3's). */
unsigned tokenizer_default_flags(const tokenizer *tok);

/* Concatenated bytes of ids (exact, no UTF-8 repair), malloc'd and
 * NUL-terminated.  Control and unknown tokens render as their text only with
 * DETOK_SPECIAL; DETOK_STRIP_SPACE drops one leading space (the SentencePiece
 * prefix).  Out-of-range ids are skipped. */
ryot_status tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, unsigned flags, char **out,
                             size_t *out_len, ryot_error *err);

/* ---------------------------------------------------------------- vocab */
tokenizer_kind tokenizer_get_kind(const tokenizer *tok);
const char *tokenizer_pre_name(const tokenizer *tok); /* e.g. "gpt-2", "smollm"; "" for SPM */
int32_t tokenizer_n_vocab(const tokenizer *tok);
/* Special ids; -1 when the vocab has none. */
int32_t tokenizer_bos(const tokenizer *tok);
int32_t tokenizer_eos(const tokenizer *tok);
int32_t tokenizer_eot(const tokenizer *tok);
int32_t tokenizer_pad(const tokenizer *tok);
int32_t tokenizer_unk(const tokenizer *tok);
/* End of generation: EOS, EOT, EOM and the usual end-of-turn control tokens. */
bool tokenizer_is_eog(const tokenizer *tok, int32_t id);
token_type tokenizer_token_type(const tokenizer *tok, int32_t id); /* UNDEFINED when out of range */
/* The vocab string (byte-level or U+2581-escaped form), NULL when out of range. */
const char *tokenizer_token_text(const tokenizer *tok, int32_t id, size_t *len);
/* The bytes the token stands for (what decoding emits; for control tokens,
 * their text).  NULL when out of range.  Not NUL-terminated. */
const char *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len);
/* Exact vocab lookup of a token's text; -1 when absent. */
int32_t tokenizer_find(const tokenizer *tok, const char *text, size_t len);

/* ---------------------------------------------------------------- streaming
 * Incremental detokenizer: feed ids one at a time; each call returns the bytes
 * that are ready.  Output is always valid UTF-8: an incomplete sequence at the
 * end of a piece waits for the next piece, bytes that can never form a
 * character become U+FFFD.  detok_flush returns what is left (an unfinished
 * sequence as U+FFFD).  The returned pointer is valid until the next call. */
enum {
    DETOK_SPECIAL = 1u << 0,     /* render control/unknown tokens as their text */
    DETOK_STRIP_SPACE = 1u << 1, /* drop one space at the very start of the output */
};

typedef struct detok {
    const tokenizer *tok;
    unsigned flags;
    bool started;     /* some byte was emitted or dropped */
    uint8_t pend[4];  /* incomplete UTF-8 sequence carried over */
    size_t n_pend;
    char *buf;        /* output buffer, sized at init for the longest piece */
    size_t cap;
} detok;

ryot_status detok_init(detok *d, const tokenizer *tok, unsigned flags, ryot_error *err);
const char *detok_push(detok *d, int32_t id, size_t *len);
const char *detok_flush(detok *d, size_t *len);
void detok_free(detok *d);

#endif
