/* Private to src/tokenizer/: the tokenizer struct and the helpers its files
 * share.  Nothing outside this directory includes it. */
#ifndef RYOT_TOK_INTERNAL_H
#define RYOT_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

#define TOK_MAX_REGEX 6
#define TOK_MAX_EOG 16

typedef struct tok_entry {
    uint32_t text_off, text_len;   /* vocab string, in tokenizer.blob */
    uint32_t piece_off, piece_len; /* decoded bytes, in tokenizer.blob */
    float score;
    uint8_t type; /* token_type */
} tok_entry;

/* Open addressing, linear probing; slots hold token ids, -1 = empty.  Keys are
 * the token texts themselves. */
typedef struct str_table {
    int32_t *slots;
    uint32_t mask;
} str_table;

/* BPE merge ranks keyed on (left id, right id). */
typedef struct merge_slot {
    uint64_t key; /* (uint64)left << 32 | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t result;
} merge_slot;

typedef struct merge_table {
    merge_slot *slots;
    uint32_t mask;
} merge_table;

/* Special tokens grouped by text length, longest group first, so that the
 * partition pass matches longer specials before shorter ones. */
typedef struct special_group {
    uint32_t len;
    uint8_t first_any[32];  /* bitmap of first bytes: any special of this length */
    uint8_t first_user[32]; /* same, user-defined ones only (matched without TOKENIZE_SPECIAL) */
} special_group;

typedef struct pretok {
    int n;
    pcre2_code *re[TOK_MAX_REGEX];
} pretok;

struct tokenizer {
    tokenizer_kind kind;
    char pre_name[48];
    int32_t n_vocab;
    tok_entry *tokens; /* n_vocab */
    char *blob;        /* token texts and pieces */
    size_t blob_len;
    uint32_t max_piece; /* longest piece or text, bytes */
    str_table lookup;
    merge_table merges;
    pretok pre;
    bool ignore_merges; /* BPE: a pre-token that is itself a vocab entry is emitted as is */
    int32_t byte_id[256]; /* BPE: token of the mapped byte; SPM: <0xNN>; -1 if none */

    special_group *groups;
    int n_groups;

    int32_t bos, eos, eot, eom, pad, unk, sep, cls;
    int32_t eog[TOK_MAX_EOG];
    int n_eog;
    bool add_bos, add_eos, add_space_prefix;
};

/* A span of the input: raw text (id < 0) or a special token. */
typedef struct tok_frag {
    size_t off, len;
    int32_t id;
} tok_frag;

typedef struct tok_span {
    size_t off, len;
} tok_span;

/* Merge-loop symbol: a run of bytes of the working text. */
typedef struct tok_sym {
    uint32_t off, len; /* len 0 = merged away */
    int32_t prev, next;
    int32_t id;        /* token of the text, -1 when none */
} tok_sym;

/* Heap entry for both merge loops: ordered by key (BPE: rank ascending; SPM:
 * score descending, stored negated), then by left index ascending. */
typedef struct tok_pair {
    float key_f;
    uint32_t key_u;
    int32_t left, right;
    int32_t result;
    uint32_t size;
} tok_pair;

struct tokenizer_scratch {
    const tokenizer *tok;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    tok_frag *frags, *frags2;
    size_t n_frags, cap_frags, cap_frags2;
    tok_span *spans, *spans2;
    size_t n_spans, cap_spans, cap_spans2;
    tok_sym *syms;
    size_t cap_syms;
    tok_pair *heap;
    size_t n_heap, cap_heap;
    char *text; /* escaped / mapped working text */
    size_t cap_text;
};

/* ---- vocab.c */
uint64_t tok_hash(const char *s, size_t len);
int32_t tok_lookup(const tokenizer *tok, const char *s, size_t len);
int32_t tok_merge_find(const tokenizer *tok, int32_t left, int32_t right, uint32_t *rank);
static inline const char *tok_text(const tokenizer *tok, int32_t id) {
    return tok->blob + tok->tokens[id].text_off;
}

/* ---- pretok.c */
/* Compiles the regex list for a tokenizer.ggml.pre name; sets ignore_merges. */
ryot_status pretok_init(tokenizer *tok, const char *name, ryot_error *err);
void pretok_free(pretok *p);
/* Splits text[off..off+len) (valid UTF-8) into pre-tokens, appended to
 * s->spans. */
ryot_status pretok_split(tokenizer_scratch *s, const char *text, size_t off, size_t len, ryot_error *err);

/* ---- bpe.c, spm.c: tokenize one raw fragment, appending to out. */
ryot_status bpe_encode(tokenizer_scratch *s, const char *text, size_t len, token_buf *out, ryot_error *err);
ryot_status spm_encode(tokenizer_scratch *s, const char *text, size_t len, bool space_prefix, token_buf *out,
                       ryot_error *err);

/* ---- shared helpers (encode.c) */
bool tok_push(token_buf *out, int32_t id);
/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid or truncated;
 * *cp gets the code point. */
size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
size_t tok_utf8_encode(uint32_t cp, char *out);
/* Growth helpers: ensure room for `need` elements. */
bool tok_reserve(void **p, size_t *cap, size_t need, size_t elem);
/* Merge-loop heap, ordered as described at tok_pair. */
bool tok_heap_push(tokenizer_scratch *s, tok_pair p);
tok_pair tok_heap_pop(tokenizer_scratch *s);

/* The GPT-2 byte <-> code point mapping (printable bytes map to themselves,
 * the rest to U+0100 + k in byte order). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp); /* -1 when cp is not in the mapping */

#endif
