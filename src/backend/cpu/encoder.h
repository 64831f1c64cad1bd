/* BERT sentence encoder (GGUF architecture "bert", as `ryot convert` writes
 * it): token + position + token-type embeddings and LayerNorm, then per
 * layer bidirectional self-attention, residual and LayerNorm (post-LN), a
 * GELU (erf) FFN, residual and LayerNorm; the sentence vector is the mean of
 * the last hidden states over the sentence's tokens (or its [CLS] state),
 * L2-normalized when the model says so.
 *
 * A batch of sentences is evaluated as their tokens laid end to end: every
 * matmul runs over all of them at once, and attention only looks inside each
 * sentence, so no padding and no attention mask are needed and a sentence's
 * vector does not depend on the others in the batch.  Matmuls go through the
 * kernels' traits table (vec_dot_rows against activations in the weight
 * type's vec_dot_type), like the decoder's.
 *
 * Activation buffers are allocated at load for ENCODER_MAX_BATCH tokens
 * (at least one full context); longer batches are cut into chunks of whole
 * sentences.  An encoder is used by one thread at a time. */
#ifndef RYOT_BACKEND_CPU_ENCODER_H
#define RYOT_BACKEND_CPU_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

#define ENCODER_MAX_BATCH 2048

typedef struct encoder encoder;

typedef enum encoder_pooling {
    ENCODER_POOL_MEAN = 1, /* GGUF bert.pooling_type values */
    ENCODER_POOL_CLS = 2,
} encoder_pooling;

typedef struct encoder_hparams {
    int n_vocab;
    int n_ctx;     /* position embeddings: the longest sentence in tokens */
    int n_embd;
    int n_layer;
    int n_head;
    int head_dim;
    int n_ff;
    int n_types;   /* token-type embeddings (sentence A/B); type 0 is used */
    float eps;     /* LayerNorm */
    encoder_pooling pooling;
    bool normalize;
} encoder_hparams;

/* Maps path, reads the hyperparameters and tokenizer, binds and checks every
 * weight, and starts n_threads workers (0: online CPUs). */
ryot_status encoder_load(const char *path, int n_threads, encoder **out, ryot_error *err);
void encoder_free(encoder *e);
const encoder_hparams *encoder_get_hparams(const encoder *e);
const tokenizer *encoder_tokenizer(const encoder *e);
const char *encoder_name(const encoder *e); /* general.name, "" when absent */
int encoder_n_threads(const encoder *e);

/* Sentence i's token ids are ids[i][0..n_ids[i]) (1 <= n_ids[i] <= n_ctx,
 * each in [0, n_vocab)); out receives n_seq rows of n_embd floats.  Bad
 * input is RYOT_ERR_INVALID naming the sentence (and token) at fault. */
ryot_status encoder_encode(encoder *e, const int32_t *const *ids, const int *n_ids, int n_seq, float *out,
                           ryot_error *err);

#endif
