/* `ryot tokenize`: print the token ids of stdin's text.
 *
 * Reads ALL of stdin as UTF-8 text and prints the ids on one line, separated
 * by single spaces, then a newline.  Defaults follow llama.cpp's test-vector
 * convention: no BOS/EOS added, special-token texts not parsed.  Works on
 * vocab-only GGUF files.
 *
 * Exit status: 0 ok; 1 missing or malformed file, or a tokenizer that cannot
 * be built (one line on stderr: "ryot tokenize: FILE: <message>"); 2 bad
 * usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot tokenize [-m FILE] [--bos] [--eos] [--special] [--pieces] < text\n"
            "\n"
            "Tokenize all of stdin and print the token ids on one line, separated by\n"
            "single spaces.  By default nothing is added and special-token texts such as\n"
            "\"<|endoftext|>\" are tokenized as plain text (llama.cpp's test-vector\n"
            "convention).  User-defined tokens of the vocab are always recognized.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE  GGUF model or vocab-only file (default: $RYOT_MODEL, else the\n"
            "                    default model in $RYOT_MODEL_DIR or ~/.cache/ryot/models)\n"
            "      --bos         prepend the BOS token (whatever the model's add_bos_token says)\n"
            "      --eos         append the EOS token\n"
            "      --special     parse control-token texts (e.g. \"<|im_start|>\") into their ids\n"
            "      --pieces      after the id line, print one line per token: the id, a tab,\n"
            "                    and the bytes it decodes to, with \\n \\r \\t \\\\ and \\xNN\n"
            "                    escapes for control bytes and bytes that are not valid UTF-8;\n"
            "                    control tokens show their text\n"
            "  -h, --help        show this help\n"
            "\n"
            "exit status: 0 ok, 1 missing or malformed file, 2 bad usage\n");
}

/* Length of a valid UTF-8 sequence at s (multi-byte only), else 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t l;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) l = 2;
    else if (c >= 0xe0 && c <= 0xef) l = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4) l = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else return 0;
    if (n < l || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < l; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return l;
}

static void print_piece(const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t l;
        if (c == '\n') fputs("\\n", stdout), i++;
        else if (c == '\r') fputs("\\r", stdout), i++;
        else if (c == '\t') fputs("\\t", stdout), i++;
        else if (c == '\\') fputs("\\\\", stdout), i++;
        else if (c >= 0x20 && c < 0x7f) putchar(c), i++;
        else if (c >= 0x80 && (l = utf8_seq(s + i, n - i)) > 0) fwrite(s + i, 1, l, stdout), i += l;
        else printf("\\x%02x", c), i++;
    }
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    unsigned flags = 0;
    int pieces = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--bos")) {
            flags |= TOKENIZE_ADD_BOS;
        } else if (!strcmp(a, "--eos")) {
            flags |= TOKENIZE_ADD_EOS;
        } else if (!strcmp(a, "--special")) {
            flags |= TOKENIZE_SPECIAL;
        } else if (!strcmp(a, "--pieces")) {
            pieces = 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ryot tokenize: %s needs a file\n", a);
                return 2;
            }
            path = argv[++i];
        } else {
            fprintf(stderr, "ryot tokenize: unknown option '%s' (see ryot tokenize --help)\n", a);
            return 2;
        }
    }
    if (!path && !(path = cli_default_model())) return 1;

    gguf_file *f;
    tokenizer *tok;
    ryot_error err = {0};
    if (gguf_open(path, &f, &err) != RYOT_OK) {
        fprintf(stderr, "ryot tokenize: %s: %s\n", path, err.msg);
        return 1;
    }
    ryot_status st = tokenizer_load(f, &tok, &err);
    gguf_close(f);
    if (st != RYOT_OK) {
        fprintf(stderr, "ryot tokenize: %s: %s\n", path, err.msg);
        return 1;
    }

    size_t n;
    char *text = cli_read_stream(stdin, &n);
    if (!text) {
        fprintf(stderr, "ryot tokenize: cannot read stdin\n");
        tokenizer_free(tok);
        return 1;
    }
    token_buf ids = {0};
    st = tokenizer_encode(tok, NULL, text, n, flags, &ids, &err);
    free(text);
    if (st != RYOT_OK) {
        fprintf(stderr, "ryot tokenize: %s\n", err.msg);
        tokenizer_free(tok);
        return 1;
    }
    for (size_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.ids[i]);
    putchar('\n');
    if (pieces) {
        for (size_t i = 0; i < ids.n; i++) {
            size_t len;
            const char *p = tokenizer_token_bytes(tok, ids.ids[i], &len);
            printf("%d\t", ids.ids[i]);
            print_piece(p, len);
            putchar('\n');
        }
    }
    token_buf_free(&ids);
    tokenizer_free(tok);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ryot tokenize: write failed\n");
        return 1;
    }
    return 0;
}
