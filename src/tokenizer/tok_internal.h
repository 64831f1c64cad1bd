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
    uint8_t type;  /* token_type */
    uint8_t strip; /* TOK_STRIP_*: whitespace this special swallows when matched */
} tok_entry;

#define TOK_STRIP_LEFT 1u  /* the whitespace just before it */
#define TOK_STRIP_RIGHT 2u /* the whitespace just after it */

/* Open addressing, linear probing.  A slot holds the upper 32 bits of the
 * text's hash and the token id (UINT64_MAX = empty), so that most misses are
 * settled without touching the token table. */
typedef struct str_table {
    uint64_t *slots;
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

/* Special tokens (unknown, control, user-defined): a byte trie over their
 * texts finds where they can start, and their distinct lengths, longest
 * first, drive the longest-first partition (special.c). */
typedef struct trie_edge {
    uint32_t key;   /* parent node << 8 | byte; UINT32_MAX = empty */
    uint32_t child;
} trie_edge;

#define TRIE_END_USER 1u /* a user-defined token ends here */
#define TRIE_END_CTRL 2u /* a control or unknown token ends here */

typedef struct special_index {
    trie_edge *edges;
    uint32_t mask;
    uint8_t *end;      /* per node: TRIE_END_* */
    uint32_t n_nodes;
    uint8_t first[32]; /* bytes with an edge from the root */
    uint32_t *lens;    /* distinct lengths, descending */
    uint8_t *len_kind; /* per length: TRIE_END_* of the tokens that have it */
    int n_lens;
} special_index;

typedef struct pretok {
    int n;
    pcre2_code *re[TOK_MAX_REGEX];
    bool jit[TOK_MAX_REGEX]; /* JIT-compiled: matched through pcre2_jit_match */
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

    special_index specials;

    /* SentencePiece: characters that some token has right before a U+2581.
     * Merges cannot cross a U+2581 preceded by any other character, so the
     * text is cut there into words merged independently (and cached). */
    uint32_t *glue; /* sorted code points */
    int n_glue;
    bool spm_split; /* false when the vocab glues too many characters */

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

typedef struct tok_cand {
    uint32_t pos, maxlen; /* longest eligible special starting at pos */
} tok_cand;

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

/* Per-scratch memo of merge results: word bytes -> ids.  Pre-tokens repeat
 * a lot (Zipf), and a word's tokens never depend on its context, so the merge
 * loop runs once per distinct word until the cache fills up and is cleared. */
typedef struct cache_slot {
    uint64_t hash; /* 0 = empty */
    uint32_t off;  /* into arena: n_ids int32 ids, then the key bytes */
    uint16_t key_len, n_ids;
} cache_slot;

typedef struct word_cache {
    cache_slot *slots;
    uint32_t mask, used;
    uint8_t *arena;
    size_t arena_len, arena_cap;
} word_cache;

#define TOK_CACHE_SLOTS (1u << 15)
#define TOK_CACHE_ARENA (2u << 20)
#define TOK_CACHE_MAX_KEY 128

struct tokenizer_scratch {
    const tokenizer *tok;
    word_cache cache; /* slots NULL: no caching (temporary scratch) */
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    tok_frag *frags, *taken;
    size_t n_frags, cap_frags, n_taken, cap_taken;
    tok_cand *cands;
    size_t cap_cands;
    uint64_t *covered; /* bitmap over the text */
    size_t cap_covered;
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

/* ---- special.c */
ryot_status special_init(tokenizer *tok, ryot_error *err);
void special_free(special_index *x);
/* Splits text into raw fragments and special tokens (s->frags). */
ryot_status special_partition(tokenizer_scratch *s, const char *text, size_t len, bool special, ryot_error *err);

/* ---- pretok.c */
/* Compiles the regex list for a tokenizer.ggml.pre name; sets ignore_merges. */
ryot_status pretok_init(tokenizer *tok, const char *name, ryot_error *err);
void pretok_free(pretok *p);
/* Splits text[off..off+len) (valid UTF-8) into pre-tokens, appended to
 * s->spans. */
ryot_status pretok_split(tokenizer_scratch *s, const char *text, size_t off, size_t len, ryot_error *err);

/* ---- wpm_tables.c (generated) */
typedef struct wpm_range {
    uint32_t lo, hi;
} wpm_range;
typedef struct wpm_fold {
    uint32_t cp;
    uint32_t out[3]; /* 0-terminated unless full */
} wpm_fold;
extern const wpm_range wpm_mn[], wpm_punct[], wpm_control[];
extern const size_t wpm_mn_n, wpm_punct_n, wpm_control_n;
extern const wpm_fold wpm_folds[];
extern const size_t wpm_folds_n;

/* ---- bpe.c, spm.c, wpm.c: tokenize one raw fragment, appending to out. */
ryot_status bpe_encode(tokenizer_scratch *s, const char *text, size_t len, token_buf *out, ryot_error *err);
ryot_status wpm_encode(tokenizer_scratch *s, const char *text, size_t len, token_buf *out, ryot_error *err);
ryot_status spm_prepare(tokenizer *tok, ryot_error *err);
ryot_status spm_encode(tokenizer_scratch *s, const char *text, size_t len, bool space_prefix, token_buf *out,
                       ryot_error *err);

/* ---- shared helpers (encode.c) */
/* Appends the cached ids of key to out and returns true, or returns false. */
bool tok_cache_get(tokenizer_scratch *s, const char *key, size_t len, token_buf *out, bool *nomem);
/* Remembers ids[0..n) as key's tokens (silently skipped when too big). */
void tok_cache_put(tokenizer_scratch *s, const char *key, size_t len, const int32_t *ids, size_t n);
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
