/* Token sampler: turns one row of logits into a token id.
 *
 * Pipeline, in this order (each stage is skipped when its parameter is at
 * its "off" value):
 *   1. logit bias      logit[id] += bias           (-INFINITY bans the token)
 *   2. penalties       over the tokens in the penalty window (see below):
 *                      repetition (llama.cpp style): logit > 0 ? logit / r : logit * r
 *                      frequency/presence (OpenAI):  logit -= count * f + (count > 0) * p
 *   -- log-probabilities are taken here (see "Log-probabilities") --
 *   3. greedy          temperature <= 0: argmax, ties -> lowest id; stop
 *   4. top-k           keep the k largest logits (ties -> lower id kept)
 *   5. temperature     logit /= T
 *   6. softmax         over the kept tokens
 *   7. top-p           keep the smallest prefix, by descending probability,
 *                      whose mass reaches p (at least one token)
 *   8. min-p           drop tokens whose probability < min_p * max probability
 *   9. sample          one draw from the renormalized kept distribution
 * Tokens whose logit is -inf or NaN after step 2 are never chosen.
 *
 * Penalty window: the last `penalty_last_n` tokens passed to sampler_accept
 * (all of them when -1; none when 0).  Repetition, frequency and presence
 * penalties all use that one window.  The caller decides what to accept:
 * generated tokens only, or the prompt too.
 *
 * Log-probabilities: when enabled, they are the log-softmax of the logits
 * after logit bias and penalties but before temperature and truncation
 * (top-k/top-p/min-p), i.e. the model's distribution at temperature 1 as the
 * request shaped it.  A banned token has logprob -INFINITY.  With greedy
 * sampling they are computed all the same.
 *
 * Determinism: the RNG is xoshiro256** seeded through splitmix64; candidate
 * orderings use a total order (logit descending, then id ascending), so the
 * same seed and logits give the same tokens regardless of the C library.
 *
 * Memory: sampler_init allocates every buffer (sized to n_vocab and the
 * penalty window); sampler_sample and sampler_accept never allocate.
 * A sampler is not thread-safe: one per sequence. */
#ifndef RYOT_ENGINE_SAMPLER_H
#define RYOT_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "ryot.h" /* ryot_sampler_params */


typedef struct sampler_token_logprob {
    int32_t token;
    float logprob;
} sampler_token_logprob;

typedef struct sampler_logprobs {
    sampler_token_logprob chosen;
    int32_t n_top;                                        /* = top_logprobs (fewer if n_vocab is smaller) */
    sampler_token_logprob top[RYOT_MAX_TOP_LOGPROBS];  /* by logprob descending, ties -> lower id */
} sampler_logprobs;

typedef struct sampler sampler;


/* Validates p (message names the bad field) and allocates everything. */
ryot_status sampler_init(sampler **s, const ryot_sampler_params *p, int32_t n_vocab, ryot_error *err);
void sampler_free(sampler *s);

/* Picks a token from logits[0..n_vocab).  The array is used as scratch and
 * is modified.  Returns -1 only when no token has a finite logit after bias
 * and penalties (everything banned).  Does not add the token to the history:
 * call sampler_accept. */
int32_t sampler_sample(sampler *s, float *logits);

/* sampler_sample for the verification of a drafted token (speculative
 * decoding).  q: the distribution the draft was drawn from (n_vocab floats,
 * summing to 1, q[draft] > 0), or NULL for a deterministic draft (one-hot
 * at draft); draft -1: none, the same as sampler_sample.  Greedy: the
 * argmax, whatever the draft.  Otherwise, with p the distribution after
 * steps 1-8: returns draft with probability min(1, p(draft) / q(draft)),
 * else a draw from max(p - q, 0) renormalized, so the token returned is
 * distributed as p exactly when the draft is distributed as q.  The caller
 * accepts the draft when the result equals it. */
int32_t sampler_sample_draft(sampler *s, float *logits, int32_t draft, const float *q);

/* sampler_sample that also writes the distribution it drew from (after
 * steps 1-8, normalized; greedy: one-hot at the argmax) to q_out[0..n_vocab):
 * how a draft model proposes tokens for sampler_sample_draft. */
int32_t sampler_sample_q(sampler *s, float *logits, float *q_out);

/* Steps 1-2 alone, in place: logit bias, then penalties from the history.
 * sampler_sample does this first; exposed for tests and for callers that want
 * the shaped logits. */
void sampler_apply_penalties(sampler *s, float *logits);

/* Log-probabilities of the last sampler_sample call; NULL unless
 * params.logprobs, or before the first call, or after it returned -1. */
const sampler_logprobs *sampler_last_logprobs(const sampler *s);

/* Log-probabilities of `token` and of the n_top (0..RYOT_MAX_TOP_LOGPROBS)
 * most likely tokens under one row of raw logits (no bias, no penalties),
 * with sampler_sample's arithmetic: a chosen token that is also the most
 * likely gets the same float as top[0].  Used for prompt tokens (echo) and
 * for scoring a given continuation. */
void sampler_row_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t n_top, sampler_logprobs *out);

/* Appends a token to the penalty history (ids outside the vocab are ignored). */
void sampler_accept(sampler *s, int32_t token);

/* Clears the history and restarts the RNG from the seed it was given (or
 * drew) at init, so a reset sampler repeats its earlier output. */
void sampler_reset(sampler *s);

/* Many samplers used by one thread may share their candidate scratch (the
 * largest buffer, n_vocab entries, rewritten by every sampler_sample): after
 * sampler_share_scratch(s, buf) s uses buf (sampler_scratch_size bytes, owned
 * by the caller, outliving s) instead of its own. */
size_t sampler_scratch_size(int32_t n_vocab);
void sampler_share_scratch(sampler *s, void *scratch);

/* The seed in use (the drawn one when RYOT_SEED_RANDOM was asked). */
uint64_t sampler_seed(const sampler *s);

#endif
