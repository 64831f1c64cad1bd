/* ryot public C API: load a GGUF model, tokenize, create a context, decode
 * batches of tokens, read logits.
 *
 * Conventions: functions that can fail on input return a ryot_status and fill
 * a ryot_error (may be NULL) with a message naming what is wrong; nothing here
 * exits or prints.  Objects are freed with their _free function (NULL is
 * accepted).  A model is immutable after load and may be shared by several
 * contexts; a context belongs to one thread at a time.
 *
 *   ryot_model *m;  ryot_context *c;  ryot_error err;
 *   ryot_model_load("model.gguf", &m, &err);
 *   ryot_context_new(m, NULL, &c, &err);             // defaults
 *   ryot_tokenize(m, text, len, RYOT_TOK_ADD_BOS, &ids, &n, &err);
 *   ryot_decode(c, ids, n, 0, 1, &err);              // prompt at position 0
 *   const float *logits = ryot_get_logits(c, 0);     // next-token logits
 */
#ifndef RYOT_H
#define RYOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h" /* ryot_status, ryot_error, ryot_strerror */

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t ryot_token;
typedef struct ryot_model ryot_model;
typedef struct ryot_context ryot_context;
struct tokenizer;

/* ---------------------------------------------------------------- model */

/* Maps the file, validates it, reads hyperparameters and the tokenizer, and
 * binds every weight (shapes and types checked). */
ryot_status ryot_model_load(const char *path, ryot_model **out, ryot_error *err);
void ryot_model_free(ryot_model *m);

typedef struct ryot_model_info {
    const char *arch;      /* "llama", "qwen2", "gemma3" */
    const char *name;      /* general.name, "" when absent */
    const char *type_name; /* most common weight type, e.g. "Q4_1" */
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;
    int n_ff;
    uint64_t n_params;
    uint64_t size_bytes;   /* weight bytes */
} ryot_model_info;

void ryot_model_get_info(const ryot_model *m, ryot_model_info *info);
/* The model file's bytes as mapped (valid while m lives): *size bytes, of
 * which the first *data_offset are the header (metadata and tensor table)
 * and the rest the tensor data.  For identifying the file (the server's
 * response-cache keys), not for parsing. */
const void *ryot_model_file_bytes(const ryot_model *m, uint64_t *size, uint64_t *data_offset);

/* The model's tokenizer (src/tokenizer/tokenizer.h), for streaming
 * detokenization (detok_*) and vocab queries; owned by the model. */
const struct tokenizer *ryot_model_tokenizer(const ryot_model *m);

/* The model's chat format and template (src/template/chat.h), for the
 * server's OpenAI-shaped messages and tools (chat_apply_json); owned by the
 * model. */
const struct chat *ryot_model_chat(const ryot_model *m);

/* ---------------------------------------------------------------- tokens */

enum {
    RYOT_TOK_ADD_BOS = 1u << 0,   /* prepend BOS if the vocab asks for it (tokenizer.ggml.add_bos_token) */
    RYOT_TOK_SPECIAL = 1u << 1,   /* special-token texts (e.g. "<|im_start|>") become their ids */
};

/* Tokenizes text[0..len) into *ids (malloc'd, free()), *n ids. */
ryot_status ryot_tokenize(const ryot_model *m, const char *text, size_t len, unsigned flags, ryot_token **ids,
                          int *n, ryot_error *err);
/* Bytes of ids (exact; special tokens rendered when `special`): *out is
 * malloc'd and NUL-terminated (free()). */
ryot_status ryot_detokenize(const ryot_model *m, const ryot_token *ids, int n, bool special, char **out,
                            size_t *len, ryot_error *err);
ryot_token ryot_token_bos(const ryot_model *m); /* -1 when none */
ryot_token ryot_token_eos(const ryot_model *m); /* -1 when none */
bool ryot_token_is_eog(const ryot_model *m, ryot_token t); /* EOS, EOT, end-of-turn... */

/* ---------------------------------------------------------------- chat */

typedef enum ryot_chat_format {
    RYOT_CHAT_NONE = 0,
    RYOT_CHAT_CHATML, /* <|im_start|>role\n...<|im_end|>\n  (SmolLM2, Qwen) */
    RYOT_CHAT_GEMMA,  /* <start_of_turn>user\n...<end_of_turn>\n  (Gemma) */
    RYOT_CHAT_LLAMA3, /* <|start_header_id|>user<|end_header_id|>\n\n...<|eot_id|> */
} ryot_chat_format;

/* Detected from tokenizer.chat_template, else the architecture, else the
 * vocab's special tokens. */
ryot_chat_format ryot_model_chat_format(const ryot_model *m);
const char *ryot_chat_format_name(ryot_chat_format f);

typedef struct ryot_chat_message { const char *role; const char *content; } ryot_chat_message;
/* Renders messages with the model's tokenizer.chat_template (jinja subset, bos/eos tokens from the vocab,
 * add_generation_prompt as given); when the GGUF has no template, falls back to the detected built-in
 * format (ryot_model_chat_format: ChatML, Gemma, Llama 3). *out malloc'd, NUL-terminated.
 * Tokenize the result with RYOT_TOK_ADD_BOS | RYOT_TOK_SPECIAL: when the vocab adds BOS itself, a BOS
 * text the template put first is removed, so there is never a double BOS.  A template that does not
 * parse falls back like a missing one.  raise_exception() in the template and other render errors give
 * RYOT_ERR_INVALID with the message (a client error); RYOT_ERR_UNSUPPORTED when there is no format. */
ryot_status ryot_chat_apply(const ryot_model *m, const ryot_chat_message *msgs, int n, bool add_generation_prompt, char **out, size_t *out_len, ryot_error *err);

/* ---------------------------------------------------------------- sampling */

/* seed value meaning "pick one from the clock and the OS" at init */
#define RYOT_SEED_RANDOM UINT64_MAX
/* OpenAI allows top_logprobs up to 20 */
#define RYOT_MAX_TOP_LOGPROBS 20

typedef struct ryot_logit_bias {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans */
} ryot_logit_bias;

typedef struct ryot_sampler_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0 or >= n_vocab: off */
    float top_p;             /* (0, 1]; 1: off */
    float min_p;             /* [0, 1]; 0: off */
    float repeat_penalty;    /* > 0; 1: off */
    float frequency_penalty; /* 0: off (OpenAI range -2..2, not enforced) */
    float presence_penalty;  /* 0: off */
    int32_t penalty_last_n;  /* window for all penalties; -1: whole history; 0: off */
    uint64_t seed;           /* RYOT_SEED_RANDOM: random */
    const ryot_logit_bias *logit_bias; /* copied by sampler_init; same id twice: biases add */
    int32_t n_logit_bias;
    bool logprobs;           /* compute the chosen token's logprob (sampler_last_logprobs) */
    int32_t top_logprobs;    /* 0..RYOT_MAX_TOP_LOGPROBS alternatives; needs logprobs */
} ryot_sampler_params;

/* Defaults (llama.cpp's): temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1 (off), frequency/presence 0, penalty_last_n 64, random
 * seed, no bias, no logprobs. */
ryot_sampler_params ryot_sampler_params_default(void);

/* The model's recommended sampling, from the GGUF keys general.sampling.temp,
 * .top_k, .top_p, .min_p, .penalty_repeat and .penalty_last_n: each one the
 * file carries, with a valid value, replaces that field of *sp; the others
 * (and an out-of-range value) leave *sp as it is.  Returns how many fields it
 * set.  The server and `ryot run` start each request's parameters here. */
int ryot_model_sampling_defaults(const ryot_model *m, ryot_sampler_params *sp);

/* ---------------------------------------------------------------- context */

typedef struct ryot_context_params {
    int n_ctx;        /* KV positions; 0: min(training context, 4096) */
    int n_batch;      /* most tokens per internal forward chunk; 0: 512 */
    int n_threads;    /* 0: online CPUs */
    int n_logits_max; /* logits rows one decode may return; 0: 1 (perplexity wants n_batch) */
} ryot_context_params;

ryot_context_params ryot_context_default_params(void);

/* Allocates activations, the F16 KV cache and the worker threads, once. */
ryot_status ryot_context_new(const ryot_model *m, const ryot_context_params *p, ryot_context **out,
                             ryot_error *err);
void ryot_context_free(ryot_context *c);
int ryot_context_n_ctx(const ryot_context *c);
int ryot_context_n_threads(const ryot_context *c);
/* Positions currently in the KV cache. */
int ryot_context_n_past(const ryot_context *c);

/* Evaluates tokens[0..n) at positions pos..pos+n-1 of the context's sequence
 * (pos <= n_past; cached positions from pos on are replaced), computing
 * logits for the last n_logits tokens (0 <= n_logits <= min(n, n_logits_max)).
 * Prompt and generated tokens use the same call: a prompt is one call with
 * n tokens, each generated token one call with n = 1. */
ryot_status ryot_decode(ryot_context *c, const ryot_token *tokens, int n, int pos, int n_logits, ryot_error *err);

/* Row i of the last decode's logits (n_vocab floats; i counts from the first
 * of its n_logits tokens); NULL when out of range.  Valid until the next
 * decode. */
const float *ryot_get_logits(const ryot_context *c, int i);
int ryot_n_vocab(const ryot_model *m);

/* ---------------------------------------------------------------- embeddings
 * Sentence embeddings from a BERT encoder GGUF (`ryot convert` writes one
 * from a Hugging Face sentence-transformers directory).  An embedder owns
 * its weights, tokenizer, buffers and worker threads; one thread at a time.
 *
 *   ryot_embedder *em;
 *   ryot_embedder_load("all-MiniLM-L6-v2.f32.gguf", 0, &em, &err);
 *   float v[2 * 384];  const char *texts[] = {"a cat", "a dog"};
 *   ryot_embed(em, texts, NULL, 2, v, NULL, &err);  // two unit vectors
 */
typedef struct ryot_embedder ryot_embedder;

/* n_threads 0: online CPUs. */
ryot_status ryot_embedder_load(const char *path, int n_threads, ryot_embedder **out, ryot_error *err);
void ryot_embedder_free(ryot_embedder *e);
int ryot_embedder_dim(const ryot_embedder *e);        /* floats per vector (n_embd) */
int ryot_embedder_max_tokens(const ryot_embedder *e); /* longest input in tokens, [CLS] and [SEP] included */
int ryot_embedder_n_vocab(const ryot_embedder *e);
int ryot_embedder_n_threads(const ryot_embedder *e);
const char *ryot_embedder_name(const ryot_embedder *e); /* general.name, "" when absent */
/* True when vectors come out L2-normalized (the model's bert.normalize_embeddings). */
bool ryot_embedder_normalizes(const ryot_embedder *e);

/* The ids the encoder sees for text: [CLS] pieces [SEP], special-token texts
 * ("[MASK]") as their ids, like Hugging Face tokenizers.  *ids malloc'd. */
ryot_status ryot_embed_tokenize(const ryot_embedder *e, const char *text, size_t len, ryot_token **ids, int *n,
                                ryot_error *err);
/* out: n rows of ryot_embedder_dim floats for the token sequences ids[i][0..n_ids[i]);
 * RYOT_ERR_INVALID names the sequence (and token) that is empty, too long or out of the vocab. */
ryot_status ryot_embed_tokens(ryot_embedder *e, const ryot_token *const *ids, const int *n_ids, int n, float *out,
                              ryot_error *err);
/* Tokenizes texts[i] (lens[i] bytes; lens NULL: NUL-terminated) and embeds them in one batch;
 * *n_tokens (may be NULL) gets the number of tokens evaluated.  A text longer than
 * ryot_embedder_max_tokens is RYOT_ERR_INVALID naming its index. */
ryot_status ryot_embed(ryot_embedder *e, const char *const *texts, const size_t *lens, int n, float *out,
                       long *n_tokens, ryot_error *err);

#ifdef __cplusplus
}
#endif

#endif
