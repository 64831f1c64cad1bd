/* Pre-tokenizers for byte-level BPE: a list of PCRE2 regexes per
 * tokenizer.ggml.pre name.  The regexes are the published pre-tokenizer
 * patterns of each model family (as recorded in their tokenizer.json files).
 *
 * A list is applied in sequence: each regex splits every piece produced by
 * the previous one, and the text between two matches stays a piece of its own
 * ("isolated" splitting), so no byte is ever dropped. */
#include <string.h>

#include "tokenizer/tok_internal.h"

/* GPT-2's pattern; the ancestor of most others. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

/* Llama 3 / tiktoken style; case-insensitive contractions spelled out so that
 * Unicode case folding cannot widen them. */
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                     \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+" \
                    "|\\s+(?!\\S)|\\s+"
/* Qwen2: as Llama 3, but digits one by one. */
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+" \
                    "|\\s+(?!\\S)|\\s+"

/* DeepSeek LLM: runs of cased letters (Lu/Ll/Lt, listed as ranges), ASCII and
 * full-width punctuation, trailing space, CJK runs, digit runs. */
#define RE_DEEPSEEK_LETTERS                                                                          \
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-"           \
    "\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"          \
    "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}"        \
    "\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}"        \
    "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"      \
    "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}"      \
    "\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"      \
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"     \
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"       \
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-"      \
    "\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"       \
    "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"      \
    "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"     \
    "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-"       \
    "\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+"
#define RE_DEEPSEEK_PUNCT "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

typedef struct pre_def {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    bool ignore_merges;
    const char *re[TOK_MAX_REGEX];
} pre_def;

static const pre_def pre_defs[] = {
    {"gpt-2|mpt|olmo|jais|trillion|gpt-neox", false, {RE_GPT2}},
    /* llama.cpp's default (a missing key or "default"): runs of punctuation
     * and of $+<=>^~| first, then GPT-2's rules, then digit runs cut into
     * groups of three from the left. */
    {"default", false, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama-bpe|llama3|llama-v3|falcon3", true, {RE_LLAMA3}},
    {"dbrx|smaug-bpe|chatglm-bpe", false, {RE_LLAMA3}},
    {"qwen2|stablelm2|deepseek-r1-qwen", false, {RE_QWEN2}},
    {"starcoder|refact|smollm|command-r|codeshell|exaone|minerva-7b", false, {"\\p{N}", RE_GPT2}},
    {"falcon", false, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"deepseek-llm", false, {"[\\r\\n]", RE_DEEPSEEK_LETTERS, RE_DEEPSEEK_PUNCT, "\\s+$", RE_CJK, "\\p{N}+"}},
    {"deepseek-coder", false, {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}},
};

static bool name_in(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == n && !memcmp(p, name, n)) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

ryot_status pretok_init(tokenizer *tok, const char *name, ryot_error *err) {
    const pre_def *d = NULL;
    for (size_t i = 0; i < sizeof pre_defs / sizeof *pre_defs && !d; i++)
        if (name_in(pre_defs[i].names, name)) d = &pre_defs[i];
    if (!d) return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", name);
    tok->ignore_merges = d->ignore_merges;
    pretok *p = &tok->pre;
    for (int i = 0; i < TOK_MAX_REGEX && d->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        /* $ means end of subject only (each piece is its own subject). */
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
        if (!re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return ryot_fail(err, RYOT_ERR_INTERNAL, "pre-tokenizer '%s' regex %d at %zu: %s", name, i, (size_t)eo,
                             (const char *)msg);
        }
        /* JIT is an optimization: without it pcre2_match interprets. */
        p->jit[p->n] = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
        p->re[p->n++] = re;
    }
    return RYOT_OK;
}

void pretok_free(pretok *p) {
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->re[i]);
    p->n = 0;
}

static bool span_push(tok_span **a, size_t *n, size_t *cap, size_t off, size_t len) {
    if (*n == *cap && !tok_reserve((void **)a, cap, *n + 1, sizeof **a)) return false;
    (*a)[(*n)++] = (tok_span){off, len};
    return true;
}

ryot_status pretok_split(tokenizer_scratch *s, const char *text, size_t off, size_t len, ryot_error *err) {
    const pretok *p = &s->tok->pre;
    s->n_spans = 0;
    if (!span_push(&s->spans, &s->n_spans, &s->cap_spans, off, len)) return ryot_fail(err, RYOT_ERR_NOMEM, "pre-tokenizer");
    for (int r = 0; r < p->n; r++) {
        size_t n2 = 0;
        for (size_t k = 0; k < s->n_spans; k++) {
            const char *subj = text + s->spans[k].off;
            size_t n = s->spans[k].len, base = s->spans[k].off, pos = 0, prev = 0;
            while (pos < n) {
                /* The subject is valid UTF-8 (checked by the caller). */
                int rc = p->jit[r] ? pcre2_jit_match(p->re[r], (PCRE2_SPTR)subj, n, pos, 0, s->md, s->mctx)
                                   : pcre2_match(p->re[r], (PCRE2_SPTR)subj, n, pos, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[128];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    return ryot_fail(err, RYOT_ERR_INVALID, "pre-tokenizer regex failed at byte %zu: %s", base + pos,
                                     (const char *)msg);
                }
                const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
                size_t ms = ov[0], me = ov[1];
                if (me <= ms) { /* empty match: step over one character */
                    pos = ms + 1;
                    while (pos < n && ((uint8_t)subj[pos] & 0xc0) == 0x80) pos++;
                    continue;
                }
                if ((ms > prev && !span_push(&s->spans2, &n2, &s->cap_spans2, base + prev, ms - prev)) ||
                    !span_push(&s->spans2, &n2, &s->cap_spans2, base + ms, me - ms))
                    return ryot_fail(err, RYOT_ERR_NOMEM, "pre-tokenizer");
                prev = pos = me;
            }
            if (prev < n && !span_push(&s->spans2, &n2, &s->cap_spans2, base + prev, n - prev))
                return ryot_fail(err, RYOT_ERR_NOMEM, "pre-tokenizer");
        }
        tok_span *t = s->spans;
        s->spans = s->spans2;
        s->spans2 = t;
        size_t c = s->cap_spans;
        s->cap_spans = s->cap_spans2;
        s->cap_spans2 = c;
        s->n_spans = n2;
    }
    return RYOT_OK;
}
