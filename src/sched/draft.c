/* Draft-model proposals for speculative decoding (see draft.h). */
#include "sched/draft.h"

#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

struct drafter {
    const model *m;
    const tokenizer *tok;
    draft_params p;
    int n_vocab;
    int ctx;               /* positions the draft engine holds (<= the target's) */
    engine *e;
    kv_cache *kv;
    void *cand;            /* sampler scratch shared by every draft sampler */
    float *row;            /* one row of logits, sampling scratch */
    int32_t *btoks;        /* (batch_tokens) */
    engine_seq *bseq;      /* (max_seqs) */
    int *bwho;             /* (max_seqs) request of each batch sequence */
};

/* The same vocabulary: ids mean the same bytes in both models. */
static ryot_status check_vocab(const ryot_model *target, const ryot_model *draft, ryot_error *err) {
    const tokenizer *a = ryot_model_tokenizer(target), *b = ryot_model_tokenizer(draft);
    const int32_t na = tokenizer_n_vocab(a), nb = tokenizer_n_vocab(b);
    if (na != nb || ryot_model_internal(target)->hp.n_vocab != ryot_model_internal(draft)->hp.n_vocab)
        return ryot_fail(err, RYOT_ERR_INVALID,
                         "the draft model's vocabulary (%d tokens) is not the target's (%d tokens)", nb, na);
    for (int32_t id = 0; id < na; id++) {
        size_t la, lb;
        const char *ta = tokenizer_token_bytes(a, id, &la), *tb = tokenizer_token_bytes(b, id, &lb);
        if (la != lb || (la && memcmp(ta, tb, la)))
            return ryot_fail(err, RYOT_ERR_INVALID,
                             "the draft model's vocabulary differs from the target's at token %d", (int)id);
    }
    if (tokenizer_bos(a) != tokenizer_bos(b) || tokenizer_eos(a) != tokenizer_eos(b))
        return ryot_fail(err, RYOT_ERR_INVALID, "the draft model's BOS/EOS tokens are not the target's");
    return RYOT_OK;
}

ryot_status drafter_new(const ryot_model *target, const ryot_model *draft, const draft_params *p, drafter **out,
                        ryot_error *err) {
    *out = NULL;
    ryot_status st = check_vocab(target, draft, err);
    if (st) return st;
    drafter *d = calloc(1, sizeof *d);
    if (!d) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    d->m = ryot_model_internal(draft);
    d->tok = ryot_model_tokenizer(draft);
    d->p = *p;
    d->n_vocab = d->m->hp.n_vocab;
    d->ctx = p->ctx;
    if (d->m->hp.n_ctx_train > 0 && d->ctx > d->m->hp.n_ctx_train) d->ctx = d->m->hp.n_ctx_train;
    engine_params ep = engine_params_default(d->m);
    ep.n_ctx = d->ctx;
    ep.n_batch = p->batch_tokens;
    if (p->n_threads > 0) ep.n_threads = p->n_threads;
    ep.n_logits_max = p->max_seqs;
    ep.kv_block_size = p->kv_block_size;
    ep.kv_blocks = p->kv_blocks;
    ep.max_seqs = p->max_seqs;
    st = engine_new(d->m, &ep, &d->e, err);
    if (!st) st = kv_cache_new(p->kv_blocks, p->kv_block_size, &d->kv, err);
    if (!st) {
        d->cand = malloc(sampler_scratch_size(d->n_vocab));
        d->row = malloc((size_t)d->n_vocab * sizeof *d->row);
        d->btoks = malloc((size_t)p->batch_tokens * sizeof *d->btoks);
        d->bseq = calloc((size_t)p->max_seqs, sizeof *d->bseq);
        d->bwho = calloc((size_t)p->max_seqs, sizeof *d->bwho);
        if (!d->cand || !d->row || !d->btoks || !d->bseq || !d->bwho)
            st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    if (st) {
        drafter_free(d);
        return st;
    }
    *out = d;
    return RYOT_OK;
}

void drafter_free(drafter *d) {
    if (!d) return;
    if (d->e) engine_free(d->e);
    kv_cache_free(d->kv);
    free(d->cand);
    free(d->row);
    free(d->btoks);
    free(d->bseq);
    free(d->bwho);
    free(d);
}

ryot_status draft_seq_init(drafter *d, draft_seq *s, int max_tokens, const ryot_sampler_params *sp,
                           ryot_error *err) {
    memset(s, 0, sizeof *s);
    ryot_status st = kv_seq_init(&s->kv, max_tokens, d->p.kv_block_size, err);
    if (st || sp->temperature <= 0.0f) return st;
    ryot_sampler_params p = *sp;
    p.logprobs = false;
    p.top_logprobs = 0;
    p.seed = sp->seed == RYOT_SEED_RANDOM ? RYOT_SEED_RANDOM : sp->seed ^ 0x5DEECE66DULL; /* its own stream */
    if ((st = sampler_init(&s->smp, &p, d->n_vocab, err))) return st;
    sampler_share_scratch(s->smp, d->cand);
    if (!(s->q = malloc((size_t)d->p.k_max * (size_t)d->n_vocab * sizeof *s->q)))
        return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    return RYOT_OK;
}

void draft_seq_release(drafter *d, draft_seq *s) {
    kv_seq_release(d->kv, &s->kv);
    s->n_done = 0;
    s->n_fed = 0;
}

void draft_seq_free(draft_seq *s) {
    if (s->kv.blocks) kv_seq_destroy(&s->kv);
    sampler_free(s->smp);
    free(s->q);
    memset(s, 0, sizeof *s);
}

/* Draws draft i of request r from the logits row. */
static int32_t draw(drafter *d, draft_req *r, const float *logits, int i) {
    memcpy(d->row, logits, (size_t)d->n_vocab * sizeof *d->row);
    if (!r->s->smp) {
        int32_t b = 0;
        for (int32_t t = 1; t < d->n_vocab; t++)
            if (d->row[t] > d->row[b]) b = t;
        return b;
    }
    return sampler_sample_q(r->s->smp, d->row, r->s->q + (size_t)i * (size_t)d->n_vocab);
}

void drafter_propose(drafter *d, draft_req *reqs, int n) {
    /* what each request feeds next: its catch-up rows, then its last draft */
    int active = 0;
    for (int i = 0; i < n; i++) {
        draft_req *r = &reqs[i];
        r->n_out = 0;
        r->s->n_fed = 0;
        if (r->k > d->p.k_max) r->k = d->p.k_max;
        if (r->n_toks + r->k - 1 > d->ctx) r->k = d->ctx - r->n_toks + 1;
        /* KV for the tokens and the k - 1 drafts fed back; none: no drafts */
        if (r->k <= 0 || r->s->n_done >= r->n_toks || !kv_seq_reserve(d->kv, &r->s->kv, r->n_toks + r->k - 1)) {
            r->k = 0;
            continue;
        }
        active++;
    }
    while (active > 0) {
        int nt = 0, ns = 0;
        for (int i = 0; i < n && ns < d->p.max_seqs && nt < d->p.batch_tokens; i++) {
            draft_req *r = &reqs[i];
            if (r->k == 0 || r->n_out == r->k) continue;
            draft_seq *s = r->s;
            const int pos = s->n_done;
            int m;
            if (pos < r->n_toks) { /* catching up with the sequence's own tokens */
                m = r->n_toks - pos;
                if (m > d->p.batch_tokens - nt) m = d->p.batch_tokens - nt;
                memcpy(d->btoks + nt, r->toks + pos, (size_t)m * sizeof *d->btoks);
            } else { /* the last draft, fed back */
                m = 1;
                d->btoks[nt] = r->out[r->n_out - 1];
            }
            d->bseq[ns] = (engine_seq){.blocks = s->kv.blocks,
                                       .n_blocks = s->kv.n_blocks,
                                       .pos = pos,
                                       .n = m,
                                       .n_logits = pos + m >= r->n_toks ? 1 : 0};
            d->bwho[ns++] = i;
            nt += m;
        }
        ryot_error err = {0};
        if (engine_forward(d->e, d->btoks, nt, d->bseq, ns, &err)) {
            for (int i = 0; i < n; i++)
                if (reqs[i].k) draft_seq_release(d, reqs[i].s), reqs[i].n_out = 0, reqs[i].k = 0;
            return;
        }
        for (int b = 0, row = 0; b < ns; b++) {
            draft_req *r = &reqs[d->bwho[b]];
            draft_seq *s = r->s;
            const bool fed_draft = s->n_done >= r->n_toks;
            s->n_done += d->bseq[b].n;
            if (fed_draft) s->n_fed++;
            if (!d->bseq[b].n_logits) continue;
            const int32_t t = draw(d, r, engine_logits(d->e, row++), r->n_out);
            if (t < 0) { /* nothing drawable: stop here */
                r->k = r->n_out;
            } else {
                r->out[r->n_out++] = t;
                if (tokenizer_is_eog(d->tok, t)) r->k = r->n_out;
            }
            if (r->n_out == r->k) active--;
        }
    }
}

void draft_seq_rollback(drafter *d, draft_seq *s, int n_toks_before, int accepted) {
    const int fed = accepted < s->n_fed ? accepted : s->n_fed;
    const int keep = n_toks_before + fed;
    if (s->n_done > keep) s->n_done = keep;
    kv_seq_truncate(d->kv, &s->kv, s->n_done);
    s->n_fed = 0;
}
