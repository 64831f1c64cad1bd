/* Tokenizer conformance and behaviour.
 *
 * Conformance: every NAME.inp / NAME.out pair in
 * ${RYOT_TESTDATA:-../shared/testdata}/tokenizer/ (llama.cpp's vocab test
 * vectors).  .inp holds texts, each followed by "\n__ggml_vocab_test__\n";
 * .out has one line of space-separated ids per text.  Texts are tokenized
 * without BOS/EOS and without parsing specials; every id must match.  Any
 * mismatch prints the vocab, the text and both id lists.
 *
 * Also: decode(encode(text)) round trips (not for WordPiece, which folds case), streaming detokenization over
 * multi-byte text, special-token parsing on and off, load errors, the default
 * models when present in ~/.cache/ryot/models, and concurrent use. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#define MARKER "\n__ggml_vocab_test__\n"

/* ---------------------------------------------------------------- helpers */

static char datadir[1024];

static const char *tok_dir(void) {
    if (!datadir[0]) {
        const char *d = getenv("RYOT_TESTDATA");
        snprintf(datadir, sizeof datadir, "%s/tokenizer", d && *d ? d : "../shared/testdata");
    }
    return datadir;
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while ((r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) b = realloc(b, (cap *= 2) + 1);
    }
    fclose(f);
    b[len] = 0;
    *n = len;
    return b;
}

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Loads a tokenizer; returns the status, *out NULL on failure. */
static ryot_status load_path(const char *path, tokenizer **out, ryot_error *err) {
    gguf_file *f;
    *out = NULL;
    ryot_status st = gguf_open(path, &f, err);
    if (st) return st;
    st = tokenizer_load(f, out, err);
    gguf_close(f);
    return st;
}

static tokenizer *load_vocab(const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.gguf", tok_dir(), name);
    tokenizer *t;
    ryot_error err = {0};
    if (load_path(path, &t, &err)) fail_msg("loading %s: %s", path, err.msg);
    return t;
}

static void encode_ok(const tokenizer *t, const char *s, size_t n, unsigned flags, token_buf *out) {
    ryot_error err = {0};
    out->n = 0;
    if (tokenizer_encode(t, NULL, s, n, flags, out, &err)) fail_msg("encode: %s", err.msg);
}

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c < 0x20) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static bool valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t l;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) l = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) l = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) l = 4, cp = c & 0x07;
        else return false;
        if (i + l > n) return false;
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((l == 3 && cp < 0x800) || (l == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += l;
    }
    return true;
}

/* ---------------------------------------------------------------- test vectors */

typedef struct vectors {
    char *inp, *out;
    size_t n;
    const char **text; /* into inp */
    size_t *text_len;
    char **ids_line;   /* into out */
} vectors;

/* DIR/NAME.inp with the ids of DIR/NAME.OUT_SUFFIX. */
static bool vectors_load_from(const char *dir, const char *name, const char *out_suffix, vectors *v) {
    char p[1200];
    size_t ni, no;
    memset(v, 0, sizeof *v);
    snprintf(p, sizeof p, "%s/%s.inp", dir, name);
    if (!(v->inp = read_file(p, &ni))) return false;
    snprintf(p, sizeof p, "%s/%s%s", dir, name, out_suffix);
    if (!(v->out = read_file(p, &no))) fail_msg("%s.inp without %s%s", name, name, out_suffix);
    size_t cap = 64;
    v->text = malloc(cap * sizeof *v->text);
    v->text_len = malloc(cap * sizeof *v->text_len);
    for (char *pos = v->inp;;) {
        char *m = memmem(pos, (size_t)(v->inp + ni - pos), MARKER, strlen(MARKER));
        if (!m) break;
        if (v->n == cap) {
            cap *= 2;
            v->text = realloc(v->text, cap * sizeof *v->text);
            v->text_len = realloc(v->text_len, cap * sizeof *v->text_len);
        }
        v->text[v->n] = pos;
        v->text_len[v->n++] = (size_t)(m - pos);
        pos = m + strlen(MARKER);
    }
    v->ids_line = calloc(v->n, sizeof *v->ids_line);
    char *line = v->out;
    for (size_t i = 0; i < v->n; i++) {
        if (!line || !*line) fail_msg("%s.out has fewer lines than %s.inp has texts (%zu)", name, name, v->n);
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        v->ids_line[i] = line;
        line = nl ? nl + 1 : NULL;
    }
    return true;
}

static bool vectors_load(const char *name, vectors *v) { return vectors_load_from(tok_dir(), name, ".out", v); }

static void vectors_free(vectors *v) {
    free(v->inp);
    free(v->out);
    free(v->text);
    free(v->text_len);
    free(v->ids_line);
}

static size_t parse_ids(const char *line, int32_t *ids, size_t cap) {
    size_t n = 0;
    char *end;
    for (const char *p = line;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        p = end;
    }
    return n;
}

/* Names of the vocabs with test vectors, sorted. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static size_t list_vocabs_in(const char *dir, const char *suffix, char names[][64], size_t cap) {
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s (set RYOT_TESTDATA)", dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l > sl && l - sl < 64 && !strcmp(e->d_name + l - sl, suffix)) {
            memcpy(names[n], e->d_name, l - sl);
            names[n][l - sl] = 0;
            n++;
        }
    }
    closedir(d);
    char *ptrs[64];
    for (size_t i = 0; i < n; i++) ptrs[i] = names[i];
    qsort(ptrs, n, sizeof *ptrs, cmp_str);
    char tmp[64][64];
    for (size_t i = 0; i < n; i++) strcpy(tmp[i], ptrs[i]);
    memcpy(names, tmp, n * sizeof tmp[0]);
    return n;
}

static size_t list_vocabs(const char *suffix, char names[][64], size_t cap) {
    return list_vocabs_in(tok_dir(), suffix, names, cap);
}

/* Returns the number of mismatching cases; prints each. */
static size_t check_vectors(const char *name, const tokenizer *t, const vectors *v, unsigned flags, size_t *n_cases) {
    token_buf out = {0};
    int32_t want[4096];
    size_t bad = 0;
    for (size_t i = 0; i < v->n; i++) {
        encode_ok(t, v->text[i], v->text_len[i], flags, &out);
        size_t nw = parse_ids(v->ids_line[i], want, 4096);
        bool same = nw == out.n && !memcmp(want, out.ids, nw * sizeof *want);
        if (!same) {
            bad++;
            fprintf(stderr, "MISMATCH %s%s case %zu: text \"", name, flags & TOKENIZE_SPECIAL ? " (specials)" : "", i);
            print_escaped(v->text[i], v->text_len[i]);
            fprintf(stderr, "\"\n");
            print_ids("want", want, nw < 4096 ? nw : 4096);
            print_ids("got ", out.ids, out.n);
        }
    }
    *n_cases = v->n;
    token_buf_free(&out);
    return bad;
}

static void test_conformance(void **state) {
    (void)state;
    char names[64][64];
    size_t n = list_vocabs(".inp", names, 64);
    assert_true(n >= 10);
    size_t total_bad = 0, n_vocabs = 0;
    for (size_t k = 0; k < n; k++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.gguf", tok_dir(), names[k]);
        tokenizer *t;
        ryot_error err = {0};
        ryot_status st = load_path(path, &t, &err);
        if (st) fail_msg("loading %s: %s", path, err.msg);
        vectors v;
        assert_true(vectors_load(names[k], &v));
        size_t cases, bad = check_vectors(names[k], t, &v, 0, &cases);
        printf("  %-16s %zu/%zu cases identical\n", names[k], cases - bad, cases);
        total_bad += bad;
        n_vocabs++;
        vectors_free(&v);
        tokenizer_free(t);
    }
    assert_true(n_vocabs >= 11);
    assert_int_equal(total_bad, 0);
}

/* Our own vectors (tests/unit/data/gen_tokenizer_vectors.py, ids from
 * llama.cpp) on the vocabs of the shared test data: punctuation runs, digit
 * groups, mixed scripts, special-token texts as plain text (NAME.out) and
 * parsed (NAME.special.out).  gpt-neox has no tokenizer.ggml.pre: llama.cpp's
 * default pre-tokenizer. */
static void test_extra_vectors(void **state) {
    (void)state;
    static const char dir[] = "tests/unit/data/tokenizer";
    char names[64][64];
    size_t n = list_vocabs_in(dir, ".inp", names, 64), total_bad = 0;
    assert_true(n >= 12);
    for (size_t k = 0; k < n; k++) {
        tokenizer *t = load_vocab(names[k]);
        for (int special = 0; special < 2; special++) {
            vectors v;
            assert_true(vectors_load_from(dir, names[k], special ? ".special.out" : ".out", &v));
            size_t cases, bad = check_vectors(names[k], t, &v, special ? TOKENIZE_SPECIAL : 0, &cases);
            printf("  %-16s %-9s %zu/%zu cases identical\n", names[k], special ? "specials" : "plain", cases - bad,
                   cases);
            total_bad += bad;
            vectors_free(&v);
        }
        tokenizer_free(t);
    }
    assert_int_equal(total_bad, 0);
}

/* decode(encode(text)) == text on every test text (SentencePiece: after
 * dropping the space prefix). */
static void test_round_trip(void **state) {
    (void)state;
    char names[64][64];
    size_t n = list_vocabs(".inp", names, 64), bad = 0;
    token_buf out = {0};
    for (size_t k = 0; k < n; k++) {
        if (!strcmp(names[k], "bert-bge")) continue;
        tokenizer *t = load_vocab(names[k]);
        vectors v;
        assert_true(vectors_load(names[k], &v));
        unsigned dflags = tokenizer_get_kind(t) == TOKENIZER_SPM ? DETOK_STRIP_SPACE : 0;
        for (size_t i = 0; i < v.n; i++) {
            encode_ok(t, v.text[i], v.text_len[i], 0, &out);
            char *dec;
            size_t dl;
            ryot_error err;
            assert_int_equal(tokenizer_decode(t, out.ids, out.n, dflags, &dec, &dl, &err), RYOT_OK);
            if (dl != v.text_len[i] || memcmp(dec, v.text[i], dl)) {
                bad++;
                fprintf(stderr, "ROUND TRIP %s case %zu: \"", names[k], i);
                print_escaped(v.text[i], v.text_len[i]);
                fprintf(stderr, "\" -> \"");
                print_escaped(dec, dl);
                fprintf(stderr, "\"\n");
            }
            free(dec);
        }
        vectors_free(&v);
        tokenizer_free(t);
    }
    token_buf_free(&out);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------------- streaming */

static const char MULTI[] =
    "Grüße 🦙🦙 (llama) 😶‍🌫️ 你好世界，こんにちは 안녕하세요 Ελληνικά ∑ x² → ∞ \xf0\x9f\x87\xaf\xf0\x9f\x87\xb5 end";

static void stream_check(const tokenizer *t, const char *text, unsigned dflags, const char *expect) {
    token_buf out = {0};
    encode_ok(t, text, strlen(text), 0, &out);
    detok d;
    ryot_error err;
    assert_int_equal(detok_init(&d, t, dflags, &err), RYOT_OK);
    char acc[4096];
    size_t n = 0, len;
    for (size_t i = 0; i < out.n; i++) {
        const char *p = detok_push(&d, out.ids[i], &len);
        if (!valid_utf8((const unsigned char *)p, len)) fail_msg("chunk after token %zu is not valid UTF-8", i);
        assert_true(n + len < sizeof acc);
        memcpy(acc + n, p, len);
        n += len;
    }
    const char *p = detok_flush(&d, &len);
    assert_true(valid_utf8((const unsigned char *)p, len));
    memcpy(acc + n, p, len);
    n += len;
    acc[n] = 0;
    assert_string_equal(acc, expect);
    detok_free(&d);
    token_buf_free(&out);
}

static void test_detok_stream(void **state) {
    (void)state;
    const char *names[] = {"gpt-2", "llama3", "llama-spm", "phi-3", "deepseek-llm", "falcon"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        tokenizer *t = load_vocab(names[k]);
        bool spm = tokenizer_get_kind(t) == TOKENIZER_SPM;
        stream_check(t, MULTI, spm ? DETOK_STRIP_SPACE : 0, MULTI);
        tokenizer_free(t);
    }
}

/* Pieces that split characters, fed by hand, and ill-formed bytes. */
static void test_detok_repair(void **state) {
    (void)state;
    tokenizer *t = load_vocab("gpt-2");
    detok d;
    ryot_error err;
    assert_int_equal(detok_init(&d, t, 0, &err), RYOT_OK);
    /* U+1F999 = F0 9F A6 99: one byte-level token per byte. */
    const uint8_t bytes[] = {0xf0, 0x9f, 0xa6, 0x99};
    char s[8];
    size_t len;
    for (int i = 0; i < 4; i++) {
        /* the token of a single byte: look it up through its decoded form */
        int32_t id = -1;
        for (int32_t k = 0; k < tokenizer_n_vocab(t) && id < 0; k++) {
            size_t pl;
            const char *p = tokenizer_token_bytes(t, k, &pl);
            if (pl == 1 && (uint8_t)p[0] == bytes[i]) id = k;
        }
        assert_true(id >= 0);
        const char *p = detok_push(&d, id, &len);
        if (i < 3) assert_int_equal(len, 0);
        else {
            memcpy(s, p, len);
            assert_int_equal(len, 4);
            assert_memory_equal(s, bytes, 4);
        }
    }
    /* A lone continuation byte, then a truncated sequence at the end. */
    token_buf out = {0};
    encode_ok(t, "a\x80" "b\xe4\xbd", 5, 0, &out);
    char acc[64];
    size_t n = 0;
    for (size_t i = 0; i < out.n; i++) {
        const char *p = detok_push(&d, out.ids[i], &len);
        memcpy(acc + n, p, len);
        n += len;
    }
    const char *p = detok_flush(&d, &len);
    memcpy(acc + n, p, len);
    n += len;
    assert_int_equal(n, 1 + 3 + 1 + 3);
    assert_memory_equal(acc, "a\xef\xbf\xbd" "b\xef\xbf\xbd", n);
    /* The exact decode keeps the invalid bytes. */
    char *dec;
    assert_int_equal(tokenizer_decode(t, out.ids, out.n, 0, &dec, &len, &err), RYOT_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(dec, "a\x80" "b\xe4\xbd", 5);
    free(dec);
    token_buf_free(&out);
    detok_free(&d);
    tokenizer_free(t);
}

/* ---------------------------------------------------------------- specials */

static bool contains(const token_buf *b, int32_t id) {
    for (size_t i = 0; i < b->n; i++)
        if (b->ids[i] == id) return true;
    return false;
}

static void test_specials(void **state) {
    (void)state;
    token_buf out = {0};
    tokenizer *t = load_vocab("llama3");
    const char *s = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
    encode_ok(t, s, strlen(s), TOKENIZE_SPECIAL, &out);
    assert_int_equal(out.ids[0], 128006);
    assert_true(contains(&out, 128007));
    assert_int_equal(out.ids[out.n - 1], 128009);
    encode_ok(t, s, strlen(s), 0, &out);
    assert_false(contains(&out, 128006) || contains(&out, 128007) || contains(&out, 128009));
    encode_ok(t, "Hi", 2, TOKENIZE_ADD_BOS | TOKENIZE_ADD_EOS, &out);
    assert_int_equal(out.n, 3);
    assert_int_equal(out.ids[0], 128000);
    assert_int_equal(out.ids[2], tokenizer_eos(t));
    assert_int_equal(tokenizer_default_flags(t), TOKENIZE_ADD_BOS);
    assert_true(tokenizer_is_eog(t, 128009));
    assert_false(tokenizer_is_eog(t, 128000));
    tokenizer_free(t);

    t = load_vocab("gpt-2");
    encode_ok(t, "a<|endoftext|>b", 15, TOKENIZE_SPECIAL, &out);
    assert_int_equal(out.n, 3);
    assert_int_equal(out.ids[1], 50256);
    encode_ok(t, "a<|endoftext|>b", 15, 0, &out);
    assert_true(out.n > 3);
    assert_false(contains(&out, 50256));
    assert_int_equal(tokenizer_default_flags(t), 0);
    tokenizer_free(t);

    /* SentencePiece: the space prefix comes back after a special, and a
     * control token is never formed from plain text. */
    t = load_vocab("llama-spm");
    token_buf a = {0};
    encode_ok(t, "<s>Hello", 8, TOKENIZE_SPECIAL, &out);
    encode_ok(t, "Hello", 5, 0, &a);
    assert_int_equal(out.ids[0], 1);
    assert_int_equal(out.n, a.n + 1);
    assert_memory_equal(out.ids + 1, a.ids, a.n * sizeof *a.ids);
    encode_ok(t, "<s>Hello", 8, 0, &out);
    assert_false(contains(&out, 1));
    assert_int_equal(tokenizer_default_flags(t), TOKENIZE_ADD_BOS);
    token_buf_free(&a);
    tokenizer_free(t);

    /* User-defined tokens are split out even without TOKENIZE_SPECIAL. */
    t = load_vocab("mpt");
    encode_ok(t, "a            b", 14, 0, &out); /* 12 spaces: user-defined token 50266 */
    assert_true(contains(&out, 50266));
    tokenizer_free(t);
    token_buf_free(&out);
}

/* WordPiece: [CLS]/[SEP] as BOS/EOS, accents and case folded, unknown words. */
static void test_wordpiece(void **state) {
    (void)state;
    tokenizer *t = load_vocab("bert-bge");
    assert_int_equal(tokenizer_get_kind(t), TOKENIZER_WPM);
    assert_int_equal(tokenizer_bos(t), 101);
    assert_int_equal(tokenizer_eos(t), 102);
    assert_int_equal(tokenizer_default_flags(t), TOKENIZE_ADD_BOS | TOKENIZE_ADD_EOS);
    token_buf a = {0}, b = {0};
    encode_ok(t, "Hello", 5, tokenizer_default_flags(t), &a);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.ids[0], 101);
    assert_int_equal(a.ids[2], 102);
    encode_ok(t, "CAFÉ déjà-vu", strlen("CAFÉ déjà-vu"), 0, &a);
    encode_ok(t, "cafe deja - vu", 14, 0, &b);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof *a.ids);
    encode_ok(t, "[CLS] x", 7, TOKENIZE_SPECIAL, &a);
    assert_int_equal(a.ids[0], 101);
    encode_ok(t, "\xe2\x9c\x85 \xff ok", 9, 0, &a); /* emoji: [UNK]; invalid byte: removed */
    assert_int_equal(a.n, 2);
    assert_int_equal(a.ids[0], tokenizer_unk(t));
    token_buf_free(&a);
    token_buf_free(&b);
    tokenizer_free(t);
}

/* ---------------------------------------------------------------- load errors */

/* Copy of a vocab file with one key replaced (or dropped when value NULL). */
static void load_patched(const char *name, const char *key, const char *value, ryot_status want,
                         const char *want_msg) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.gguf", tok_dir(), name);
    gguf_file *f;
    ryot_error err = {0};
    assert_int_equal(gguf_open(path, &f, &err), RYOT_OK);
    gguf_writer *w = gguf_writer_new(3);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        char k[256];
        snprintf(k, sizeof k, "%.*s", (int)f->kv[i].key.len, f->kv[i].key.data);
        if (!strcmp(k, key)) continue;
        gguf_writer_set_value(w, k, &f->kv[i].value);
    }
    if (value) gguf_writer_set_str(w, key, value);
    uint8_t *buf;
    size_t size;
    assert_int_equal(gguf_writer_finish(w, &buf, &size, &err), RYOT_OK);
    gguf_writer_free(w);
    gguf_close(f);
    assert_int_equal(gguf_open_memory(buf, size, &f, &err), RYOT_OK);
    tokenizer *t;
    ryot_status st = tokenizer_load(f, &t, &err);
    assert_int_equal(st, want);
    if (want_msg && !strstr(err.msg, want_msg)) fail_msg("error '%s' does not mention '%s'", err.msg, want_msg);
    if (!st) tokenizer_free(t);
    else assert_null(t);
    gguf_close(f);
    free(buf);
}

static void test_load_errors(void **state) {
    (void)state;
    load_patched("gpt-2", "tokenizer.ggml.pre", "no-such-pre", RYOT_ERR_UNSUPPORTED, "'no-such-pre'");
    load_patched("gpt-2", "tokenizer.ggml.model", "wordsoup", RYOT_ERR_UNSUPPORTED, "'wordsoup'");
    load_patched("gpt-2", "tokenizer.ggml.merges", NULL, RYOT_ERR_FORMAT, "merges");
    load_patched("gpt-2", "tokenizer.ggml.tokens", NULL, RYOT_ERR_FORMAT, "tokens");
    /* Missing pre: llama.cpp's default pre-tokenizer. */
    load_patched("gpt-2", "tokenizer.ggml.pre", NULL, RYOT_OK, NULL);
    load_patched("gpt-2", "tokenizer.ggml.pre", "qwen2", RYOT_OK, NULL);
}

/* Every vocab in the directory loads, encodes and decodes back (WordPiece:
 * lower-cased). */
static void test_all_load(void **state) {
    (void)state;
    char names[64][64];
    size_t n = list_vocabs(".gguf", names, 64);
    assert_true(n >= 12);
    for (size_t k = 0; k < n; k++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.gguf", tok_dir(), names[k]);
        tokenizer *t;
        ryot_error err = {0};
        ryot_status st = load_path(path, &t, &err);
        if (st) fail_msg("%s: %s", names[k], err.msg);
        /* Something encodes and decodes back. */
        token_buf out = {0};
        encode_ok(t, "Hello world 123", 15, 0, &out);
        assert_true(out.n >= 3);
        char *dec;
        size_t dl;
        assert_int_equal(tokenizer_decode(t, out.ids, out.n, DETOK_STRIP_SPACE, &dec, &dl, &err), RYOT_OK);
        assert_string_equal(dec, tokenizer_get_kind(t) == TOKENIZER_WPM ? "hello world 123" : "Hello world 123");
        free(dec);
        token_buf_free(&out);
        tokenizer_free(t);
    }
}

/* ---------------------------------------------------------------- odd input */

static void test_odd_input(void **state) {
    (void)state;
    const char *names[] = {"gpt-2", "llama3", "llama-spm", "deepseek-llm", "falcon", "starcoder"}; /* exact: first 4 */
    size_t big = 200000;
    char *s = malloc(big);
    token_buf out = {0};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        tokenizer *t = load_vocab(names[k]);
        /* Every byte value, NULs and invalid sequences included, must not
         * break anything. */
        char all[512];
        for (int i = 0; i < 512; i++) all[i] = (char)(i * 7 + (i >> 8));
        encode_ok(t, all, sizeof all, TOKENIZE_SPECIAL, &out);
        /* Exact round trip for every byte that may occur in UTF-8 (C0, C1 and
         * F5..FF never do, and DeepSeek has no token for them), even in
         * ill-formed sequences.  Falcon and StarCoder lack tokens for some
         * control bytes, which are then dropped. */
        for (int i = 0; i < 512; i++) {
            unsigned c = (unsigned char)all[i];
            if (c == 0xc0 || c == 0xc1 || c >= 0xf5) all[i] = (char)(c & 0x7f);
        }
        encode_ok(t, all, sizeof all, 0, &out);
        char *dec;
        size_t dl;
        ryot_error err;
        assert_int_equal(tokenizer_decode(t, out.ids, out.n, tokenizer_get_kind(t) == TOKENIZER_SPM ? DETOK_STRIP_SPACE : 0,
                                          &dec, &dl, &err), RYOT_OK);
        if (k < 4) {
            assert_int_equal(dl, sizeof all);
            assert_memory_equal(dec, all, dl);
        }
        free(dec);
        /* Long runs of one character class. */
        const char fill[] = {' ', 'a', '\n', '7', '!'};
        for (size_t f = 0; f < sizeof fill; f++) {
            memset(s, fill[f], big);
            encode_ok(t, s, big, 0, &out);
            assert_true(out.n > 0);
        }
        encode_ok(t, "", 0, 0, &out);
        assert_int_equal(out.n, 0);
        tokenizer_free(t);
    }
    free(s);
    token_buf_free(&out);
}

/* ---------------------------------------------------------------- threads */

typedef struct worker {
    const tokenizer *t;
    const vectors *v;
    size_t bad;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    tokenizer_scratch *s = tokenizer_scratch_new(w->t);
    token_buf out = {0}, ref = {0};
    for (int rep = 0; rep < 20; rep++)
        for (size_t i = 0; i < w->v->n; i++) {
            out.n = 0;
            ryot_error err;
            if (tokenizer_encode(w->t, s, w->v->text[i], w->v->text_len[i], 0, &out, &err)) w->bad++;
            int32_t want[4096];
            size_t nw = parse_ids(w->v->ids_line[i], want, 4096);
            if (nw != out.n || memcmp(want, out.ids, nw * sizeof *want)) w->bad++;
        }
    token_buf_free(&out);
    token_buf_free(&ref);
    tokenizer_scratch_free(s);
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    tokenizer *t = load_vocab("llama3");
    vectors v;
    assert_true(vectors_load("llama3", &v));
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){t, &v, 0};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
    vectors_free(&v);
    tokenizer_free(t);
}

/* ---------------------------------------------------------------- default models */

static tokenizer *load_model(const char *file) {
    const char *dir = getenv("RYOT_MODEL_DIR");
    const char *home = getenv("HOME");
    char path[1200];
    if (dir && *dir) snprintf(path, sizeof path, "%s/%s", dir, file);
    else snprintf(path, sizeof path, "%s/.cache/ryot/models/%s", home ? home : ".", file);
    if (!file_exists(path)) return NULL;
    tokenizer *t;
    ryot_error err = {0};
    if (load_path(path, &t, &err)) fail_msg("%s: %s", path, err.msg);
    return t;
}

static void round_trip_str(const tokenizer *t, const char *s, unsigned dflags) {
    token_buf out = {0};
    encode_ok(t, s, strlen(s), 0, &out);
    char *dec;
    size_t dl;
    ryot_error err;
    assert_int_equal(tokenizer_decode(t, out.ids, out.n, dflags, &dec, &dl, &err), RYOT_OK);
    assert_string_equal(dec, s);
    free(dec);
    token_buf_free(&out);
}

static void test_smollm(void **state) {
    (void)state;
    tokenizer *t = load_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!t) skip();
    assert_string_equal(tokenizer_pre_name(t), "smollm");
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_int_equal(tokenizer_default_flags(t), 0);
    assert_true(tokenizer_is_eog(t, 2));
    token_buf out = {0};
    encode_ok(t, "Hello world", 11, 0, &out);
    assert_int_equal(out.n, 2);
    size_t l;
    const char *p = tokenizer_token_bytes(t, out.ids[1], &l);
    assert_int_equal(l, 6);
    assert_memory_equal(p, " world", 6);
    /* smollm splits digits one by one */
    encode_ok(t, "12345", 5, 0, &out);
    assert_int_equal(out.n, 5);
    const char *chat = "<|im_start|>user\nHi<|im_end|>\n";
    encode_ok(t, chat, strlen(chat), TOKENIZE_SPECIAL, &out);
    assert_int_equal(out.ids[0], 1);
    assert_true(contains(&out, 2));
    round_trip_str(t, MULTI, 0);
    round_trip_str(t, "int main(void) {\n\treturn 0;\n}\n", 0);
    stream_check(t, MULTI, 0, MULTI);
    token_buf_free(&out);
    tokenizer_free(t);
}

static void test_gemma(void **state) {
    (void)state;
    tokenizer *t = load_model("gemma-3-270m-q4_k_m.gguf");
    if (!t) skip();
    assert_int_equal(tokenizer_get_kind(t), TOKENIZER_SPM);
    assert_int_equal(tokenizer_bos(t), 2);
    assert_int_equal(tokenizer_eos(t), 1);
    assert_true(tokenizer_is_eog(t, tokenizer_find(t, "<end_of_turn>", 13)));
    assert_int_equal(tokenizer_eot(t), tokenizer_find(t, "<end_of_turn>", 13));
    assert_int_equal(tokenizer_default_flags(t), TOKENIZE_ADD_BOS);
    token_buf out = {0};
    encode_ok(t, "Hello world", 11, 0, &out);
    assert_int_equal(out.n, 2);
    assert_int_equal(out.ids[0], tokenizer_find(t, "Hello", 5)); /* no space prefix for gemma */
    assert_int_equal(out.ids[1], tokenizer_find(t, "\xe2\x96\x81world", 8));
    /* "\n\n" is a user-defined token: split out without TOKENIZE_SPECIAL */
    encode_ok(t, "a\n\nb", 4, 0, &out);
    assert_int_equal(out.n, 3);
    assert_int_equal(out.ids[1], 108);
    const char *chat = "<start_of_turn>user\nHi<end_of_turn>\n";
    encode_ok(t, chat, strlen(chat), TOKENIZE_SPECIAL | TOKENIZE_ADD_BOS, &out);
    assert_int_equal(out.ids[0], 2);
    assert_int_equal(out.ids[1], tokenizer_find(t, "<start_of_turn>", 15));
    round_trip_str(t, MULTI, 0);
    round_trip_str(t, "  leading spaces and\ttabs\n\n\nand newlines ", 0);
    stream_check(t, MULTI, 0, MULTI);
    token_buf_free(&out);
    tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance), cmocka_unit_test(test_extra_vectors), cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_detok_stream),
        cmocka_unit_test(test_detok_repair), cmocka_unit_test(test_specials),   cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_all_load),     cmocka_unit_test(test_odd_input),  cmocka_unit_test(test_threads),
        cmocka_unit_test(test_smollm),       cmocka_unit_test(test_gemma),     cmocka_unit_test(test_wordpiece),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
