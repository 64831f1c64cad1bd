#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

typedef struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} subcommand;

/* Weak defaults let a subcommand's file arrive in its own commit. */
#define WEAK_CMD(name) \
    __attribute__((weak)) int name(int argc, char **argv) { \
        (void)argc; \
        fprintf(stderr, "ryot %s: not built into this binary\n", argv[0]); \
        return 2; \
    }
WEAK_CMD(cmd_info)
WEAK_CMD(cmd_tokenize)
WEAK_CMD(cmd_run)
WEAK_CMD(cmd_bench)
WEAK_CMD(cmd_perplexity)
WEAK_CMD(cmd_gen)
WEAK_CMD(cmd_quantize)
WEAK_CMD(cmd_serve)
WEAK_CMD(cmd_convert)
WEAK_CMD(cmd_embed)
WEAK_CMD(cmd_route)
WEAK_CMD(cmd_store)

static const subcommand commands[] = {
    {"info", cmd_info, "describe a GGUF file: architecture, hyperparameters, tokenizer, tensors"},
    {"tokenize", cmd_tokenize, "print the token ids of stdin's text"},
    {"run", cmd_run, "generate text from a prompt"},
    {"bench", cmd_bench, "engine benchmark: prompt processing and generation tok/s"},
    {"perplexity", cmd_perplexity, "perplexity of a model over a text file"},
    {"gen", cmd_gen, "write a GGUF model with random weights (any architecture and shape)"},
    {"quantize", cmd_quantize, "re-quantize a GGUF model to another tensor type"},
    {"convert", cmd_convert, "convert a Hugging Face BERT sentence encoder to GGUF"},
    {"embed", cmd_embed, "sentence embeddings of stdin's lines (BERT encoder GGUF)"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
    {"route", cmd_route, "OpenAI-compatible front over several ryot serve backends (health, prefix-aware)"},
    {"store", cmd_store, "persistent context store: keygen, stats, verify, gc, rekey"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot <command> [options]\n"
            "\n"
            "ryot runs GGUF language models on CPUs and serves them over an OpenAI-compatible API.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "`ryot <command> --help` describes the command's flags.\n"
            "Without -m, commands use $RYOT_MODEL, else %s in $RYOT_MODEL_DIR\n"
            "(default ~/.cache/ryot/models; scripts/fetch-models.sh puts it there).\n",
            DEFAULT_MODEL_FILE);
}

const char *cli_default_model(void) {
    static char path[4096];
    const char *env = getenv("RYOT_MODEL");
    if (env && *env) return env;
    const char *dir = getenv("RYOT_MODEL_DIR");
    const char *home = getenv("HOME");
    if (dir && *dir)
        snprintf(path, sizeof path, "%s/%s", dir, DEFAULT_MODEL_FILE);
    else
        snprintf(path, sizeof path, "%s/.cache/ryot/models/%s", home ? home : ".", DEFAULT_MODEL_FILE);
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "ryot: no -m given and the default model %s is missing; run scripts/fetch-models.sh\n",
                path);
        return NULL;
    }
    return path;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ryot: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
