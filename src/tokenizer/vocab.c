/* Vocabulary: loading tokenizer.ggml.* from GGUF, lookup tables, special ids,
 * decoded pieces, and the small getters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define KEY(k) "tokenizer.ggml." k

/* ---------------------------------------------------------------- hashing */

uint64_t tok_hash(const char *s, size_t len) {
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    uint64_t h = 0xcbf29ce484222325ull ^ (len * m);
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * m;
        h ^= h >> 31;
        s += 8;
        len -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, len);
    h = (h ^ v) * m;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static uint64_t pair_hash(uint64_t key) {
    key *= 0x9e3779b97f4a7c15ull;
    return key ^ (key >> 29);
}

static uint32_t table_size(uint64_t n) {
    uint32_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    return cap;
}

int32_t tok_lookup(const tokenizer *tok, const char *s, size_t len) {
    const str_table *t = &tok->lookup;
    uint64_t h = tok_hash(s, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        uint64_t sl = t->slots[i];
        if (sl == UINT64_MAX) return -1;
        if ((uint32_t)(sl >> 32) != tag) continue;
        int32_t id = (int32_t)(uint32_t)sl;
        const tok_entry *e = &tok->tokens[id];
        if (e->text_len == len && !memcmp(tok->blob + e->text_off, s, len)) return id;
    }
}

int32_t tok_merge_find(const tokenizer *tok, int32_t left, int32_t right, uint32_t *rank) {
    const merge_table *t = &tok->merges;
    if (!t->slots) return -1;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint32_t i = (uint32_t)pair_hash(key) & t->mask;
    for (;;) {
        const merge_slot *sl = &t->slots[i];
        if (sl->key == key) {
            *rank = sl->rank;
            return sl->result;
        }
        if (sl->key == UINT64_MAX) return -1;
        i = (i + 1) & t->mask;
    }
}

/* Later duplicates win, as in a map filled in id order. */
static void lookup_insert(tokenizer *tok, int32_t id) {
    str_table *t = &tok->lookup;
    const tok_entry *e = &tok->tokens[id];
    const char *s = tok->blob + e->text_off;
    uint64_t h = tok_hash(s, e->text_len);
    uint64_t slot = (h >> 32) << 32 | (uint32_t)id;
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        uint64_t cur = t->slots[i];
        if (cur == UINT64_MAX) {
            t->slots[i] = slot;
            return;
        }
        const tok_entry *c = &tok->tokens[(uint32_t)cur];
        if ((cur >> 32) == (h >> 32) && c->text_len == e->text_len &&
            !memcmp(tok->blob + c->text_off, s, e->text_len)) {
            t->slots[i] = slot;
            return;
        }
    }
}

/* ---------------------------------------------------------------- byte map */

static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
}

uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    /* Non-printable bytes take U+0100.. in byte order. */
    uint32_t k = 0;
    for (unsigned x = 0; x < b; x++) k += !byte_is_printable(x);
    return 0x100 + k;
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1; /* 68 non-printable bytes */
    uint32_t k = cp - 0x100;
    for (unsigned x = 0; x < 256; x++)
        if (!byte_is_printable(x) && k-- == 0) return (int)x;
    return -1;
}

/* ---------------------------------------------------------------- pieces */

/* Writes the bytes token `id` decodes to at dst (room for text_len bytes);
 * returns the length.  Decoded forms never exceed the vocab text. */
static uint32_t make_piece(const tokenizer *tok, const int map[0x144], int32_t id, char *dst) {
    const tok_entry *e = &tok->tokens[id];
    const uint8_t *s = (const uint8_t *)tok->blob + e->text_off;
    uint32_t n = e->text_len, o = 0;
    bool normal = e->type == TOKEN_TYPE_NORMAL || e->type == TOKEN_TYPE_UNUSED || e->type == TOKEN_TYPE_UNDEFINED;
    if (tok->kind == TOKENIZER_BPE && normal) {
        for (uint32_t i = 0; i < n;) {
            uint32_t cp;
            size_t l = tok_utf8_decode(s + i, n - i, &cp);
            if (l && cp < 0x144 && map[cp] >= 0) {
                dst[o++] = (char)map[cp];
                i += (uint32_t)l;
            } else { /* not a mapped byte: keep the raw text */
                if (!l) l = 1;
                memcpy(dst + o, s + i, l);
                o += (uint32_t)l;
                i += (uint32_t)l;
            }
        }
        return o;
    }
    if (tok->kind != TOKENIZER_BPE && e->type == TOKEN_TYPE_BYTE && n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
        char hex[3] = {(char)s[3], (char)s[4], 0}, *end;
        long v = strtol(hex, &end, 16);
        if (*end == 0) {
            dst[0] = (char)v;
            return 1;
        }
    }
    if (tok->kind != TOKENIZER_BPE && normal) {
        for (uint32_t i = 0; i < n;) {
            if (i + 3 <= n && s[i] == 0xe2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
                dst[o++] = ' ';
                i += 3;
            } else {
                dst[o++] = (char)s[i++];
            }
        }
        return o;
    }
    memcpy(dst, s, n);
    return n;
}

/* ---------------------------------------------------------------- load helpers */

static ryot_status get_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *id, ryot_error *err) {
    int64_t v;
    ryot_error e2;
    ryot_status st = gguf_get_i64(f, key, &v, &e2);
    if (st == RYOT_ERR_NOT_FOUND) return RYOT_OK;
    if (st != RYOT_OK) return ryot_fail(err, st, "%s", e2.msg);
    /* Out-of-range ids (some converters write -1 or the vocab size) mean none. */
    *id = (v >= 0 && v < n_vocab) ? (int32_t)v : -1;
    return RYOT_OK;
}

static ryot_status get_flag(const gguf_file *f, const char *key, bool *out, ryot_error *err) {
    ryot_error e2;
    bool v;
    ryot_status st = gguf_get_bool(f, key, &v, &e2);
    if (st == RYOT_ERR_NOT_FOUND) return RYOT_OK;
    if (st != RYOT_OK) return ryot_fail(err, st, "%s", e2.msg);
    *out = v;
    return RYOT_OK;
}

static ryot_status load_merges(tokenizer *tok, const gguf_file *f, ryot_error *err) {
    const gguf_array *arr;
    ryot_error e2;
    ryot_status st = gguf_get_arr(f, KEY("merges"), GGUF_TYPE_STRING, &arr, &e2);
    if (st == RYOT_ERR_NOT_FOUND) return ryot_fail(err, RYOT_ERR_FORMAT, "byte-level BPE vocab without " KEY("merges"));
    if (st != RYOT_OK) return ryot_fail(err, st, "%s", e2.msg);
    if (arr->n >= UINT32_MAX / 2) return ryot_fail(err, RYOT_ERR_FORMAT, KEY("merges") ": %llu entries", (unsigned long long)arr->n);
    merge_table *t = &tok->merges;
    uint32_t cap = table_size(arr->n);
    t->slots = malloc((size_t)cap * sizeof *t->slots);
    if (!t->slots) return ryot_fail(err, RYOT_ERR_NOMEM, "merge table (%u slots)", cap);
    t->mask = cap - 1;
    for (uint32_t i = 0; i < cap; i++) t->slots[i].key = UINT64_MAX;
    for (uint64_t r = 0; r < arr->n; r++) {
        gguf_str s = arr->strs[r];
        /* "left right": split at the first space after the first byte. */
        const char *sp = s.len > 1 ? memchr(s.data + 1, ' ', s.len - 1) : NULL;
        if (!sp) return ryot_fail(err, RYOT_ERR_FORMAT, KEY("merges") "[%llu]: no space separator", (unsigned long long)r);
        size_t ll = (size_t)(sp - s.data), rl = s.len - ll - 1;
        int32_t l = tok_lookup(tok, s.data, ll), rr = tok_lookup(tok, sp + 1, rl);
        if (l < 0 || rr < 0) continue; /* a side outside the vocab can never be formed */
        char stackbuf[512], *cat = ll + rl <= sizeof stackbuf ? stackbuf : malloc(ll + rl);
        if (!cat) return ryot_fail(err, RYOT_ERR_NOMEM, "merge text");
        memcpy(cat, s.data, ll);
        memcpy(cat + ll, sp + 1, rl);
        int32_t res = tok_lookup(tok, cat, ll + rl);
        if (cat != stackbuf) free(cat);
        if (res < 0) continue; /* merged text not a token: the merge is unusable */
        uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)rr;
        uint32_t i = (uint32_t)pair_hash(key) & t->mask;
        while (t->slots[i].key != UINT64_MAX && t->slots[i].key != key) i = (i + 1) & t->mask;
        if (t->slots[i].key == key) continue; /* duplicate: the first (best) rank stays */
        t->slots[i] = (merge_slot){.key = key, .rank = (uint32_t)r, .result = res};
    }
    return RYOT_OK;
}

static int32_t find_special(const tokenizer *tok, const char *text) {
    int32_t id = tok_lookup(tok, text, strlen(text));
    if (id < 0) return -1;
    uint8_t t = tok->tokens[id].type;
    return t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED ? id : -1;
}

static void add_eog(tokenizer *tok, int32_t id) {
    if (id < 0) return;
    for (int i = 0; i < tok->n_eog; i++)
        if (tok->eog[i] == id) return;
    if (tok->n_eog < TOK_MAX_EOG) tok->eog[tok->n_eog++] = id;
}

static void find_eog(tokenizer *tok) {
    static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>", "<EOT>", "<|end_of_turn|>"};
    static const char *const eog_names[] = {"<|eot_id|>", "<|im_end|>",  "<|end|>",    "<end_of_turn>",
                                            "<|endoftext|>", "<|eom_id|>", "<EOT>", "<|return|>",
                                            "<|end_of_text|>", "<|end_of_turn|>"};
    if (tok->eot < 0)
        for (size_t i = 0; i < sizeof eot_names / sizeof *eot_names && tok->eot < 0; i++)
            tok->eot = find_special(tok, eot_names[i]);
    if (tok->eom < 0) tok->eom = find_special(tok, "<|eom_id|>");
    add_eog(tok, tok->eos);
    add_eog(tok, tok->eot);
    add_eog(tok, tok->eom);
    for (size_t i = 0; i < sizeof eog_names / sizeof *eog_names; i++) add_eog(tok, find_special(tok, eog_names[i]));
}

/* ---------------------------------------------------------------- control-looking tokens */

/* llama.cpp (as vendored in llama-cpp-python 0.3.36) retypes tokens by their
 * text at load, whatever tokenizer.ggml.token_type says: converters often
 * write these as user-defined, and a user-defined token is cut out of plain
 * text, so Phi-3's "</s>" became token 2 in text tokenized without specials.
 * As control tokens they are matched only when specials are parsed, and left
 * out of plain decoding.  Every end-of-generation spelling becomes control;
 * of the fill-in-the-middle spellings, only the first one present per role,
 * and only for a role whose id no key gives. */
static const char *const eog_texts[] = {
    "<|eot_id|>",      "<|im_end|>",     "<|end|>",    "<|return|>",       "<|call|>",
    "<|flush|>",       "<|calls|>",      "<end_of_turn>", "<|endoftext|>", "</s>",
    "<|eom_id|>",      "<EOT>",          "_<EOT>",     "[EOT]",            "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>",  "<turn|>",          "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[",
};

#define FIM_TEXTS 8
static const struct {
    const char *key, *old_key; /* the role's id keys (old_key: the pre-FIM name) */
    const char *texts[FIM_TEXTS];
} fim_roles[] = {
    {KEY("fim_pre_token_id"), KEY("prefix_token_id"),
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
      "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"}},
    {KEY("fim_suf_token_id"), KEY("suffix_token_id"),
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>",
      "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"}},
    {KEY("fim_mid_token_id"), KEY("middle_token_id"),
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
      "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"}},
    {KEY("fim_pad_token_id"), NULL, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
    {KEY("fim_rep_token_id"), NULL, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
    {KEY("fim_sep_token_id"), NULL, {"<|file_sep|>"}},
};

static int32_t find_text(const tokenizer *tok, const char *text) { return tok_lookup(tok, text, strlen(text)); }

static void set_type(tokenizer *tok, const char *text, uint8_t type) {
    int32_t id = find_text(tok, text);
    if (id >= 0) tok->tokens[id].type = type;
}

static bool text_is(const tokenizer *tok, int32_t id, const char *text) {
    return id >= 0 && tok->tokens[id].text_len == strlen(text) &&
           !memcmp(tok->blob + tok->tokens[id].text_off, text, tok->tokens[id].text_len);
}

/* Needs the special ids (eos, eot, eom) read; runs before anything that
 * looks at the types (special_init, spm_prepare, find_eog). */
static ryot_status retype_controls(tokenizer *tok, const gguf_file *f, ryot_error *err) {
    for (size_t r = 0; r < sizeof fim_roles / sizeof *fim_roles; r++) {
        int32_t id = -1;
        ryot_status st = get_id(f, fim_roles[r].key, tok->n_vocab, &id, err);
        if (st == RYOT_OK && id < 0 && fim_roles[r].old_key) st = get_id(f, fim_roles[r].old_key, tok->n_vocab, &id, err);
        if (st != RYOT_OK) return st;
        for (int k = 0; k < FIM_TEXTS && id < 0 && fim_roles[r].texts[k]; k++)
            if ((id = find_text(tok, fim_roles[r].texts[k])) >= 0) tok->tokens[id].type = TOKEN_TYPE_CONTROL;
    }
    for (size_t i = 0; i < sizeof eog_texts / sizeof *eog_texts; i++) set_type(tok, eog_texts[i], TOKEN_TYPE_CONTROL);
    /* gpt-oss: these four are always rendered, so user-defined. */
    static const char *const harmony[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t i = 0; i < sizeof harmony / sizeof *harmony; i++) set_type(tok, harmony[i], TOKEN_TYPE_USER_DEFINED);
    /* o200k_harmony and solar-open: "<|end|>" is not an end of generation there. */
    bool has_call = find_text(tok, "<|call|>") >= 0 || find_text(tok, "<|calls|>") >= 0;
    if (has_call && (find_text(tok, "<|return|>") >= 0 || find_text(tok, "<|flush|>") >= 0))
        set_type(tok, "<|end|>", TOKEN_TYPE_USER_DEFINED);
    /* Gemma 4 and PLaMo: "</s>" is ordinary text. */
    const char *plamo = "<|plamo:eos|>";
    if (find_text(tok, "<|tool_response>") >= 0 || text_is(tok, tok->eos, plamo) || text_is(tok, tok->eot, plamo) ||
        text_is(tok, tok->eom, plamo))
        set_type(tok, "</s>", TOKEN_TYPE_NORMAL);
    return RYOT_OK;
}

static bool contains_any(const char *s, const char *const *subs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strstr(s, subs[i])) return true;
    return false;
}

/* A metadata string as a C string ("" when absent or not a string). */
static void get_cstr(const gguf_file *f, const char *key, char *buf, size_t cap) {
    gguf_str v = {0, NULL};
    ryot_error e2;
    buf[0] = 0;
    if (gguf_get_str(f, key, &v, &e2) != RYOT_OK || !v.data) return;
    size_t n = v.len < cap - 1 ? v.len : cap - 1;
    memcpy(buf, v.data, n);
    buf[n] = 0;
}

/* Whitespace swallowed by matched specials: llama.cpp sets it per model by
 * name, GGUF does not store it.  Phi-3: every special (after retype_controls)
 * but <unk>, <s> and <|endoftext|> eats the whitespace after it; some BERTs:
 * the mask token eats that before it. */
static void set_strip(tokenizer *tok, const gguf_file *f) {
    char name[256], pre[64], arch[64];
    get_cstr(f, "general.name", name, sizeof name);
    get_cstr(f, KEY("pre"), pre, sizeof pre);
    get_cstr(f, "general.architecture", arch, sizeof arch);
    for (char *c = name; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    static const char *const jina[] = {"jina-v2-de", "jina-v2-es", "jina-v2-code"};
    static const char *const mask_archs[] = {"nomic-bert-moe", "jina-bert-v3"};
    static const char *const phi3[] = {"phi-3", "phi3"};
    static const char *const modern_bert[] = {"modern-bert"};
    int32_t id;
    if (contains_any(pre, jina, 3) || contains_any(arch, mask_archs, 2)) {
        if ((id = find_text(tok, "<mask>")) >= 0) tok->tokens[id].strip |= TOK_STRIP_LEFT;
    } else if (contains_any(name, phi3, 2)) {
        for (int32_t i = 0; i < tok->n_vocab; i++) {
            uint8_t t = tok->tokens[i].type;
            if (t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED || t == TOKEN_TYPE_UNKNOWN)
                tok->tokens[i].strip |= TOK_STRIP_RIGHT;
        }
        if ((id = find_text(tok, "</s>")) >= 0) tok->tokens[id].strip |= TOK_STRIP_RIGHT;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < 3; i++)
            if ((id = find_text(tok, keep[i])) >= 0) tok->tokens[id].strip &= (uint8_t)~TOK_STRIP_RIGHT;
    } else if (contains_any(name, modern_bert, 1)) {
        if ((id = find_text(tok, "[MASK]")) >= 0) tok->tokens[id].strip |= TOK_STRIP_LEFT;
    }
}

/* ---------------------------------------------------------------- load */

static ryot_status load(tokenizer *tok, const gguf_file *f, ryot_error *err) {
    ryot_error e2;
    gguf_str model;
    ryot_status st = gguf_get_str(f, KEY("model"), &model, &e2);
    if (st == RYOT_ERR_NOT_FOUND) return ryot_fail(err, RYOT_ERR_FORMAT, "no " KEY("model") " key: not a vocab");
    if (st != RYOT_OK) return ryot_fail(err, st, "%s", e2.msg);
    if (gguf_str_eq(model, "gpt2"))
        tok->kind = TOKENIZER_BPE;
    else if (gguf_str_eq(model, "llama"))
        tok->kind = TOKENIZER_SPM;
    else if (gguf_str_eq(model, "bert"))
        tok->kind = TOKENIZER_WPM;
    else
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "unsupported tokenizer model '%.*s'",
                         (int)(model.len > 64 ? 64 : model.len), model.data);

    const gguf_array *toks, *scores = NULL, *types = NULL;
    if ((st = gguf_get_arr(f, KEY("tokens"), GGUF_TYPE_STRING, &toks, &e2)) != RYOT_OK)
        return ryot_fail(err, st == RYOT_ERR_NOT_FOUND ? RYOT_ERR_FORMAT : st, "%s", e2.msg);
    if (toks->n == 0 || toks->n > INT32_MAX / 2)
        return ryot_fail(err, RYOT_ERR_FORMAT, KEY("tokens") ": %llu entries", (unsigned long long)toks->n);
    st = gguf_get_arr(f, KEY("scores"), GGUF_TYPE_FLOAT32, &scores, &e2);
    if (st == RYOT_ERR_NOT_FOUND) scores = NULL;
    else if (st != RYOT_OK) return ryot_fail(err, st, "%s", e2.msg);
    else if (scores->n != toks->n)
        return ryot_fail(err, RYOT_ERR_FORMAT, KEY("scores") " has %llu entries, tokens %llu",
                         (unsigned long long)scores->n, (unsigned long long)toks->n);
    st = gguf_get_arr(f, KEY("token_type"), GGUF_TYPE_INT32, &types, &e2);
    if (st == RYOT_ERR_NOT_FOUND) types = NULL;
    else if (st != RYOT_OK) return ryot_fail(err, st, "%s", e2.msg);
    else if (types->n != toks->n)
        return ryot_fail(err, RYOT_ERR_FORMAT, KEY("token_type") " has %llu entries, tokens %llu",
                         (unsigned long long)types->n, (unsigned long long)toks->n);

    int32_t n = (int32_t)toks->n;
    tok->n_vocab = n;
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) total += toks->strs[i].len;
    if (2 * total + 1 >= UINT32_MAX) return ryot_fail(err, RYOT_ERR_FORMAT, KEY("tokens") ": %llu bytes of text", (unsigned long long)total);
    tok->tokens = calloc((size_t)n, sizeof *tok->tokens);
    tok->blob = malloc(2 * total + 1);
    tok->lookup.slots = malloc((size_t)table_size((uint64_t)n) * sizeof *tok->lookup.slots);
    if (!tok->tokens || !tok->blob || !tok->lookup.slots) return ryot_fail(err, RYOT_ERR_NOMEM, "vocab of %d tokens", n);
    tok->lookup.mask = table_size((uint64_t)n) - 1;
    memset(tok->lookup.slots, 0xff, ((size_t)tok->lookup.mask + 1) * sizeof *tok->lookup.slots);

    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        tok_entry *e = &tok->tokens[i];
        e->text_off = (uint32_t)off;
        e->text_len = (uint32_t)toks->strs[i].len;
        memcpy(tok->blob + off, toks->strs[i].data, e->text_len);
        off += e->text_len;
        e->score = scores ? gguf_arr_f32(scores, (uint64_t)i) : 0.0f;
        int32_t t = types ? gguf_arr_i32(types, (uint64_t)i) : TOKEN_TYPE_NORMAL;
        e->type = (uint8_t)(t >= TOKEN_TYPE_UNDEFINED && t <= TOKEN_TYPE_BYTE ? t : TOKEN_TYPE_NORMAL);
        if (e->text_len > tok->max_piece) tok->max_piece = e->text_len;
        lookup_insert(tok, i);
    }
    int map[0x144];
    for (int c = 0; c < 0x144; c++) map[c] = tok_cp_to_byte((uint32_t)c);
    for (int32_t i = 0; i < n; i++) {
        tok_entry *e = &tok->tokens[i];
        e->piece_off = (uint32_t)off;
        e->piece_len = make_piece(tok, map, i, tok->blob + off);
        off += e->piece_len;
    }
    tok->blob_len = off;

    /* Special ids: per-model defaults, then the keys. */
    tok->bos = tok->eos = tok->eot = tok->eom = tok->pad = tok->unk = tok->sep = tok->cls = -1;
    if (tok->kind == TOKENIZER_SPM) {
        tok->bos = n > 1 ? 1 : -1;
        tok->eos = n > 2 ? 2 : -1;
        tok->unk = 0;
        tok->add_bos = true;
        tok->add_space_prefix = true;
    } else if (tok->kind == TOKENIZER_WPM) {
        tok->add_bos = tok->add_eos = true; /* [CLS] text [SEP] */
    }
    const struct {
        const char *key;
        int32_t *id;
    } ids[] = {
        {KEY("bos_token_id"), &tok->bos},       {KEY("eos_token_id"), &tok->eos},
        {KEY("eot_token_id"), &tok->eot},       {KEY("eom_token_id"), &tok->eom},
        {KEY("padding_token_id"), &tok->pad},   {KEY("unknown_token_id"), &tok->unk},
        {KEY("seperator_token_id"), &tok->sep}, {KEY("cls_token_id"), &tok->cls},
    };
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        if ((st = get_id(f, ids[i].key, n, ids[i].id, err)) != RYOT_OK) return st;

    if (tok->kind == TOKENIZER_WPM) { /* BERT names its BOS/EOS [CLS] and [SEP] */
        if (tok->bos < 0) tok->bos = tok->cls;
        if (tok->eos < 0) tok->eos = tok->sep;
    }

    gguf_str pre = {0, NULL};
    st = gguf_get_str(f, KEY("pre"), &pre, &e2);
    if (st != RYOT_OK && st != RYOT_ERR_NOT_FOUND) return ryot_fail(err, st, "%s", e2.msg);
    if (tok->kind == TOKENIZER_BPE) {
        char name[48];
        if (!pre.data) {
            strcpy(name, "default"); /* no key: llama.cpp's default pre-tokenizer */
        } else {
            if (pre.len >= sizeof name)
                return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "unknown pre-tokenizer '%.*s' (" KEY("pre") ")", 64,
                                 pre.data);
            memcpy(name, pre.data, pre.len);
            name[pre.len] = 0;
        }
        if ((st = pretok_init(tok, name, err)) != RYOT_OK) return st;
        snprintf(tok->pre_name, sizeof tok->pre_name, "%s", name);
        if ((st = load_merges(tok, f, err)) != RYOT_OK) return st;
        if (tok->ignore_merges) tok->add_bos = true; /* llama3 defaults */
    } else {
        tok->pre_name[0] = 0;
    }

    if ((st = get_flag(f, KEY("add_bos_token"), &tok->add_bos, err)) != RYOT_OK) return st;
    if ((st = get_flag(f, KEY("add_eos_token"), &tok->add_eos, err)) != RYOT_OK) return st;
    if ((st = get_flag(f, KEY("add_space_prefix"), &tok->add_space_prefix, err)) != RYOT_OK) return st;

    /* Byte tokens: the mapped byte (byte-level BPE) or <0xNN> (SentencePiece),
     * accepted only when the token really decodes to that byte (DeepSeek's
     * vocabs reuse the stand-ins of bytes that never occur in UTF-8, such as
     * "õ" for F5, as user-defined tokens for the character itself). */
    for (int b = 0; b < 256; b++) {
        char s[8];
        if (tok->kind == TOKENIZER_BPE) {
            size_t l = tok_utf8_encode(tok_byte_to_cp((uint8_t)b), s);
            tok->byte_id[b] = tok_lookup(tok, s, l);
        } else {
            snprintf(s, sizeof s, "<0x%02X>", b);
            tok->byte_id[b] = tok_lookup(tok, s, 6);
            if (tok->byte_id[b] < 0) {
                s[0] = (char)b;
                tok->byte_id[b] = tok_lookup(tok, s, 1);
            }
        }
        int32_t id = tok->byte_id[b];
        if (id >= 0 && (tok->tokens[id].piece_len != 1 || (uint8_t)tok->blob[tok->tokens[id].piece_off] != b))
            tok->byte_id[b] = -1;
    }
    if ((st = retype_controls(tok, f, err)) != RYOT_OK) return st;
    set_strip(tok, f);
    if (tok->kind == TOKENIZER_SPM && (st = spm_prepare(tok, err)) != RYOT_OK) return st;
    if ((st = special_init(tok, err)) != RYOT_OK) return st;
    find_eog(tok);
    return RYOT_OK;
}

ryot_status tokenizer_load(const gguf_file *f, tokenizer **out, ryot_error *err) {
    *out = NULL;
    tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return ryot_fail(err, RYOT_ERR_NOMEM, "tokenizer");
    ryot_status st = load(tok, f, err);
    if (st != RYOT_OK) {
        tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return RYOT_OK;
}

void tokenizer_free(tokenizer *tok) {
    if (!tok) return;
    pretok_free(&tok->pre);
    free(tok->tokens);
    free(tok->blob);
    free(tok->lookup.slots);
    free(tok->merges.slots);
    special_free(&tok->specials);
    free(tok->glue);
    free(tok);
}

/* ---------------------------------------------------------------- getters */

tokenizer_kind tokenizer_get_kind(const tokenizer *tok) { return tok->kind; }
const char *tokenizer_pre_name(const tokenizer *tok) { return tok->pre_name; }
int32_t tokenizer_n_vocab(const tokenizer *tok) { return tok->n_vocab; }
int32_t tokenizer_bos(const tokenizer *tok) { return tok->bos; }
int32_t tokenizer_eos(const tokenizer *tok) { return tok->eos; }
int32_t tokenizer_eot(const tokenizer *tok) { return tok->eot; }
int32_t tokenizer_pad(const tokenizer *tok) { return tok->pad; }
int32_t tokenizer_unk(const tokenizer *tok) { return tok->unk; }

unsigned tokenizer_default_flags(const tokenizer *tok) {
    return (tok->add_bos ? TOKENIZE_ADD_BOS : 0u) | (tok->add_eos ? TOKENIZE_ADD_EOS : 0u);
}

bool tokenizer_is_eog(const tokenizer *tok, int32_t id) {
    for (int i = 0; i < tok->n_eog; i++)
        if (tok->eog[i] == id) return true;
    return false;
}

token_type tokenizer_token_type(const tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab) return TOKEN_TYPE_UNDEFINED;
    return (token_type)tok->tokens[id].type;
}

const char *tokenizer_token_text(const tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = tok->tokens[id].text_len;
    return tok->blob + tok->tokens[id].text_off;
}

const char *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = tok->tokens[id].piece_len;
    return tok->blob + tok->tokens[id].piece_off;
}

int32_t tokenizer_find(const tokenizer *tok, const char *text, size_t len) { return tok_lookup(tok, text, len); }
