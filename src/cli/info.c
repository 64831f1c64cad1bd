/* `ryot info`: describe a GGUF file (header, architecture hyperparameters,
 * tokenizer, tensors by type), or dump every key with --kv.
 *
 * Exit status: 0 ok; 1 the file is missing or malformed (one line on stderr:
 * "ryot info: FILE: <reader message>"); 2 bad usage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot info [-m FILE] [--kv]\n"
            "\n"
            "Describe a GGUF file: format version, counts, architecture and its\n"
            "hyperparameters (every <arch>.* key), tokenizer, and tensors by type.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE  the GGUF file (default: $RYOT_MODEL, else the default model\n"
            "                    in $RYOT_MODEL_DIR or ~/.cache/ryot/models); a single\n"
            "                    positional FILE works too\n"
            "      --kv          also dump every key: scalars in full, arrays as element type,\n"
            "                    length and their first elements\n"
            "  -h, --help        show this help\n"
            "\n"
            "exit status: 0 ok, 1 missing or malformed file, 2 bad usage\n");
}

/* ----------------------------------------------------------- formatting */

/* Prints s quoted, escaping control bytes, quotes and backslashes so that
 * one value stays on one line; at most max bytes (0: all) then "...". */
static void print_str(gguf_str s, uint64_t max) {
    uint64_t n = max && s.len > max ? max : s.len;
    putchar('"');
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.data[i];
        switch (c) {
        case '\n': fputs("\\n", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        default:
            if (c < 0x20 || c == 0x7f)
                printf("\\x%02x", c);
            else
                putchar(c); /* UTF-8 passes through */
        }
    }
    putchar('"');
    if (n < s.len) printf("... (%" PRIu64 " bytes)", s.len);
}

/* Shortest decimal that reads back as the same float / double. */
static void print_float(double x, bool single) {
    char buf[40];
    for (int prec = single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)x : back == x) break;
    }
    fputs(buf, stdout);
}

static void print_scalar(const gguf_value *v) {
    switch (v->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        printf("%" PRIu64, v->u64);
        break;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        printf("%" PRId64, v->i64);
        break;
    case GGUF_TYPE_FLOAT32: print_float(v->f64, true); break;
    case GGUF_TYPE_FLOAT64: print_float(v->f64, false); break;
    case GGUF_TYPE_BOOL: fputs(v->b ? "true" : "false", stdout); break;
    case GGUF_TYPE_STRING: print_str(v->str, 0); break;
    default: fputs("?", stdout);
    }
}

#define ARRAY_PREVIEW 8
#define ARRAY_STR_PREVIEW 40

static void print_array(const gguf_array *a, unsigned depth) {
    printf("%s[%" PRIu64 "]", gguf_type_name(a->type), a->n);
    if (depth > 2) return; /* deeper nesting: type and length only */
    fputs(" [", stdout);
    uint64_t n = a->n < ARRAY_PREVIEW ? a->n : ARRAY_PREVIEW;
    for (uint64_t i = 0; i < n; i++) {
        if (i) fputs(", ", stdout);
        if (a->type == GGUF_TYPE_STRING) {
            print_str(a->strs[i], ARRAY_STR_PREVIEW);
        } else if (a->type == GGUF_TYPE_ARRAY) {
            print_array(&a->vals[i].arr, depth + 1);
        } else {
            gguf_value v;
            if (gguf_arr_get_scalar(a, i, &v)) print_scalar(&v);
        }
    }
    if (n < a->n) fputs(", ...", stdout);
    putchar(']');
}

static void print_value(const gguf_value *v) {
    if (v->type == GGUF_TYPE_ARRAY)
        print_array(&v->arr, 1);
    else
        print_scalar(v);
}

static void print_bytes(uint64_t b) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)b;
    unsigned u = 0;
    while (x >= 1024 && u < 4) {
        x /= 1024;
        u++;
    }
    if (u == 0)
        printf("%" PRIu64 " B", b);
    else
        printf("%.2f %s", x, units[u]);
}

/* --------------------------------------------------------------- sections */

static void print_key_line(const char *label, const gguf_file *f, const char *key, const char *absent) {
    printf("  %-15s ", label);
    const gguf_kv *kv = gguf_find(f, key);
    if (kv)
        print_value(&kv->value);
    else
        fputs(absent, stdout);
    putchar('\n');
}

static void print_hparams(const gguf_file *f, gguf_str arch) {
    char prefix[256];
    if (arch.len + 2 > sizeof prefix || memchr(arch.data, 0, arch.len)) return;
    memcpy(prefix, arch.data, arch.len);
    prefix[arch.len] = '.';
    size_t plen = arch.len + 1;
    printf("\nhyperparameters (%.*s.*):\n", (int)arch.len, arch.data);
    int shown = 0;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (kv->key.len <= plen || memcmp(kv->key.data, prefix, plen)) continue;
        printf("  %-40.*s ", (int)(kv->key.len - plen), kv->key.data + plen);
        print_value(&kv->value);
        putchar('\n');
        shown++;
    }
    if (!shown) puts("  (none)");
}

static void print_tokenizer(const gguf_file *f) {
    puts("\ntokenizer:");
    const gguf_kv *model = gguf_find(f, "tokenizer.ggml.model");
    print_key_line("model", f, "tokenizer.ggml.model", "(none)");
    bool gpt2 = model && model->value.type == GGUF_TYPE_STRING && gguf_str_eq(model->value.str, "gpt2");
    print_key_line("pre", f, "tokenizer.ggml.pre", gpt2 ? "(none: gpt-2 default)" : "(none)");

    static const char *const counted[][2] = {
        {"vocab size", "tokenizer.ggml.tokens"},
        {"merges", "tokenizer.ggml.merges"},
    };
    for (unsigned i = 0; i < 2; i++) {
        const gguf_kv *kv = gguf_find(f, counted[i][1]);
        printf("  %-15s ", counted[i][0]);
        if (!kv)
            puts("(none)");
        else if (kv->value.type != GGUF_TYPE_ARRAY)
            printf("(%s is a %s, not an array)\n", counted[i][1], gguf_type_name(kv->value.type));
        else
            printf("%" PRIu64 "\n", kv->value.arr.n);
    }
    static const struct {
        const char *label, *key;
        bool always; /* else only when present */
    } ids[] = {
        {"bos id", "tokenizer.ggml.bos_token_id", true},
        {"eos id", "tokenizer.ggml.eos_token_id", true},
        {"eot id", "tokenizer.ggml.eot_token_id", true},
        {"eom id", "tokenizer.ggml.eom_token_id", false},
        {"padding id", "tokenizer.ggml.padding_token_id", true},
        {"unknown id", "tokenizer.ggml.unknown_token_id", true},
        {"separator id", "tokenizer.ggml.seperator_token_id", false}, /* sic: the key's spelling */
        {"cls id", "tokenizer.ggml.cls_token_id", false},
        {"mask id", "tokenizer.ggml.mask_token_id", false},
    };
    for (unsigned i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].always || gguf_find(f, ids[i].key)) print_key_line(ids[i].label, f, ids[i].key, "(none)");
    print_key_line("add_bos", f, "tokenizer.ggml.add_bos_token", "(unset)");
    print_key_line("add_eos", f, "tokenizer.ggml.add_eos_token", "(unset)");
    const gguf_kv *tmpl = gguf_find(f, "tokenizer.chat_template");
    printf("  %-15s ", "chat template");
    if (tmpl && tmpl->value.type == GGUF_TYPE_STRING)
        printf("yes (%" PRIu64 " bytes)\n", tmpl->value.str.len);
    else
        puts(tmpl ? "yes (not a string)" : "no");
}

static void print_tensors(const gguf_file *f) {
    uint64_t count[RYOT_TYPE_COUNT] = {0}, bytes[RYOT_TYPE_COUNT] = {0}, elems[RYOT_TYPE_COUNT] = {0};
    uint64_t total_bytes = 0, total_elems = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* validated: fits in int64 */
        count[t->type]++;
        bytes[t->type] += t->size; /* tensors do not overlap and lie in the file: no overflow */
        elems[t->type] += n;
        total_bytes += t->size;
        total_elems += n;
    }
    printf("\ntensors by type:\n  %-8s %7s %14s %14s %12s\n", "type", "count", "elements", "bytes", "size");
    for (unsigned t = 0; t < RYOT_TYPE_COUNT; t++) {
        if (!count[t]) continue;
        printf("  %-8s %7" PRIu64 " %14" PRIu64 " %14" PRIu64 "   ", ryot_type_name(t), count[t], elems[t], bytes[t]);
        print_bytes(bytes[t]);
        putchar('\n');
    }
    printf("  %-8s %7" PRIu64 " %14" PRIu64 " %14" PRIu64 "   ", "total", f->n_tensors, total_elems, total_bytes);
    print_bytes(total_bytes);
    putchar('\n');
}

static void print_all_kv(const gguf_file *f) {
    printf("\nkeys (%" PRIu64 "):\n", f->n_kv);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        gguf_value key = {.type = GGUF_TYPE_STRING, .str = kv->key};
        /* keys are printed bare unless they hold something odd */
        bool plain = true;
        for (uint64_t k = 0; k < kv->key.len; k++) {
            unsigned char c = (unsigned char)kv->key.data[k];
            if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') plain = false;
        }
        fputs("  ", stdout);
        if (plain)
            printf("%-40.*s", (int)kv->key.len, kv->key.data);
        else
            print_scalar(&key);
        printf(" %-6s ", gguf_type_name(kv->value.type));
        print_value(&kv->value);
        putchar('\n');
    }
}

static void print_info(const char *path, const gguf_file *f, bool dump_kv) {
    printf("file:           %s\n", path);
    printf("version:        %u\n", f->version);
    printf("tensors:        %" PRIu64 "\n", f->n_tensors);
    printf("kv pairs:       %" PRIu64 "\n", f->n_kv);
    printf("alignment:      %" PRIu64 "\n", f->alignment);
    printf("data offset:    %" PRIu64 "\n", f->data_offset);
    printf("file size:      %zu (", f->size);
    print_bytes(f->size);
    puts(")");

    const gguf_kv *arch = gguf_find(f, "general.architecture");
    printf("architecture:   ");
    if (arch)
        print_value(&arch->value);
    else
        fputs("(none)", stdout);
    putchar('\n');
    const gguf_kv *name = gguf_find(f, "general.name");
    printf("name:           ");
    if (name)
        print_value(&name->value);
    else
        fputs("(none)", stdout);
    putchar('\n');
    const gguf_kv *ft = gguf_find(f, "general.file_type");
    if (ft) {
        printf("file type:      ");
        print_value(&ft->value);
        putchar('\n');
    }

    if (arch && arch->value.type == GGUF_TYPE_STRING) print_hparams(f, arch->value.str);
    print_tokenizer(f);
    print_tensors(f);
    if (dump_kv) print_all_kv(f);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool dump_kv = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--kv")) {
            dump_kv = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ryot info: %s needs a file\n", a);
                usage(stderr);
                return 2;
            }
            if (path) goto two_files;
            path = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ryot info: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            if (path) goto two_files;
            path = a;
        }
    }
    if (!path) {
        path = cli_default_model(); /* prints its own message when missing */
        if (!path) return 1;
    }
    gguf_file *f = NULL;
    ryot_error err = {0};
    if (gguf_open(path, &f, &err) != RYOT_OK) {
        fprintf(stderr, "ryot info: %s: %s\n", path, err.msg);
        return 1;
    }
    print_info(path, f, dump_kv);
    gguf_close(f);
    if (fflush(stdout) != 0) return 1;
    return 0;

two_files:
    fprintf(stderr, "ryot info: give one file\n");
    usage(stderr);
    return 2;
}
