#include "server/webui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* SHA-256 and base64 come from libsodium (already linked for the response
 * cache and the embeddings' base64). */
void srv_webui_sha256_b64(const void *p, size_t n, char out[45]) {
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, p, n);
    sodium_bin2base64(out, 45, d, sizeof d, sodium_base64_VARIANT_ORIGINAL);
}

/* ------------------------------------------------------------------ policy */

/* "'sha256-...'" of the text between open and close, or "'none'". */
static void source_of(const char *page, const char *open, const char *close, char out[56]) {
    const char *a = strstr(page, open);
    const char *b = a ? strstr(a + strlen(open), close) : NULL;
    if (!b) {
        snprintf(out, 56, "'none'");
        return;
    }
    a += strlen(open);
    char h[45];
    srv_webui_sha256_b64(a, (size_t)(b - a), h);
    snprintf(out, 56, "'sha256-%s'", h);
}

char *srv_webui_csp(const char *page) {
    char script[56], style[56];
    source_of(page, "<script>", "</script>", script);
    source_of(page, "<style>", "</style>", style);
    char *out = NULL;
    if (asprintf(&out,
                 "default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src data:; "
                 "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                 script, style) < 0)
        return NULL;
    return out;
}
