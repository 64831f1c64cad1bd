/* Subcommands.  Each takes argc/argv after the subcommand name (argv[0] is the
 * subcommand), returns the process exit status, and prints its own --help. */
#ifndef RYOT_CLI_H
#define RYOT_CLI_H

#include <stdbool.h>
#include <stdio.h>

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_embed(int argc, char **argv);
/* `ryot bench serve|compare|plot|kernels|tokenizer|membw|grammar`, one file each
 * (src/cli/bench_<name>.c), dispatched by cmd_bench. */
int cmd_bench_serve(int argc, char **argv);
int cmd_bench_compare(int argc, char **argv);
int cmd_bench_plot(int argc, char **argv);
int cmd_bench_kernels(int argc, char **argv);
int cmd_bench_tokenizer(int argc, char **argv);
int cmd_bench_membw(int argc, char **argv);
int cmd_bench_grammar(int argc, char **argv);
int cmd_bench_embed(int argc, char **argv);
int cmd_bench_semantic(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_bench_store(int argc, char **argv);
int cmd_store(int argc, char **argv);

/* The model used when -m is not given: $RYOT_MODEL, else the default model in
 * the cache ($RYOT_MODEL_DIR or ~/.cache/ryot/models).  Returns a static
 * buffer, or NULL (with a message on stderr saying how to fetch it). */
const char *cli_default_model(void);
/* The same for the embedding model: $RYOT_EMBED_MODEL, else
 * all-MiniLM-L6-v2.f32.gguf in the cache (embed.c). */
const char *cli_default_embed_model(void);

/* All of a stream / file, NUL-terminated (also counted in *len when len is
 * not NULL); malloc'd; NULL on a read error or out of memory. */
char *cli_read_stream(FILE *f, size_t *len);
char *cli_read_file(const char *path, size_t *len);

/* A flag value: the whole of s is a (decimal) number in [lo, hi] (NaN is not). */
bool cli_parse_long(const char *s, long lo, long hi, long *out);
bool cli_parse_double(const char *s, double lo, double hi, double *out);

#endif
