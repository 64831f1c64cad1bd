/* The grammar vocab of a model's tokenizer (grammar.h). */
#include <stdlib.h>

#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

ryot_status grammar_vocab_from_tokenizer(const struct tokenizer *tok, grammar_vocab **out, ryot_error *err) {
    *out = NULL;
    const int32_t n = tokenizer_n_vocab(tok);
    const char **bytes = malloc((size_t)n * sizeof *bytes);
    size_t *len = malloc((size_t)n * sizeof *len);
    int32_t *eog = malloc((size_t)n * sizeof *eog);
    if (!bytes || !len || !eog) {
        free(bytes), free(len), free(eog);
        return ryot_fail(err, RYOT_ERR_NOMEM, "grammar vocab: out of memory");
    }
    int n_eog = 0;
    for (int32_t i = 0; i < n; i++) {
        /* the bytes the streaming detokenizer emits for the token: control,
         * unknown and unused tokens emit nothing, so they are never allowed */
        token_type t = tokenizer_token_type(tok, i);
        bytes[i] = "", len[i] = 0;
        if (tokenizer_is_eog(tok, i)) eog[n_eog++] = i;
        else if (t != TOKEN_TYPE_CONTROL && t != TOKEN_TYPE_UNKNOWN && t != TOKEN_TYPE_UNUSED)
            bytes[i] = tokenizer_token_bytes(tok, i, &len[i]);
        if (!bytes[i]) bytes[i] = "", len[i] = 0;
    }
    ryot_status st = grammar_vocab_new(bytes, len, n, eog, n_eog, out, err);
    free(bytes);
    free(len);
    free(eog);
    return st;
}
