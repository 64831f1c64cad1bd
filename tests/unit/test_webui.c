/* The web page's Content-Security-Policy (server/webui.c): SHA-256 against
 * known digests at every padding boundary, the policy's hash sources for a
 * page with and without its inline elements, and the page compiled into
 * the binary (one inline script and style, no external URL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/webui.h"

static void b64_of(const char *s, size_t n, char out[45]) { srv_webui_sha256_b64(s, n, out); }

static void test_sha256_vectors(void **st) {
    (void)st;
    /* digests from an independent SHA-256 implementation; lengths 55, 56 and
     * 64 straddle the one/two-block padding split, 119 the two/three one */
    static const struct {
        size_t n_a; /* that many 'a', or (size_t)-1 for "abc" */
        const char *b64;
    } v[] = {
        {0, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
        {(size_t)-1, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="},
        {55, "n0OQ+NMMLdkuyfCVtl4rmumwqSWlJY4kHJ8ekQ9zQxg="},
        {56, "s1Q5pKxvCUi21vnjxq8PX1kM4g8b3nCQ73lwaG7Gc4o="},
        {64, "/+BU/nrgy23GXDr5th1SCfQ5hR20PQulmXM33xVGaOs="},
        {119, "MeulHDE6XAgiat8Y1KNZz9/Y0ugWsT9K+VL36mWE3Ps="},
        {1000, "Qe3s5C1j6Nm/UVqbppMuHCDLyfWl0TRkWttdsblzfqM="},
    };
    char buf[1000];
    memset(buf, 'a', sizeof buf);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[45];
        if (v[i].n_a == (size_t)-1) b64_of("abc", 3, out);
        else b64_of(buf, v[i].n_a, out);
        assert_string_equal(out, v[i].b64);
    }
}

static void test_csp_hashes(void **st) {
    (void)st;
    const char *page = "<html><style>p{}</style><body><script>go()</script></body></html>";
    char *csp = srv_webui_csp(page);
    assert_non_null(csp);
    char h_style[45], h_script[45], want[96];
    b64_of("p{}", 3, h_style);
    b64_of("go()", 4, h_script);
    snprintf(want, sizeof want, "script-src 'sha256-%s';", h_script);
    assert_non_null(strstr(csp, want));
    snprintf(want, sizeof want, "style-src 'sha256-%s';", h_style);
    assert_non_null(strstr(csp, want));
    assert_true(strncmp(csp, "default-src 'none';", 19) == 0);
    assert_non_null(strstr(csp, "connect-src 'self'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    assert_null(strstr(csp, "http"));
    assert_null(strstr(csp, "unsafe"));
    assert_null(strstr(csp, "*"));
    free(csp);

    /* no such element (or an unclosed one): nothing of that kind may run */
    csp = srv_webui_csp("<html><script>never closed");
    assert_non_null(csp);
    assert_non_null(strstr(csp, "script-src 'none';"));
    assert_non_null(strstr(csp, "style-src 'none';"));
    free(csp);
}

static void test_embedded_page(void **st) {
    (void)st;
    const char *p = (const char *)srv_webui_page;
    assert_true(srv_webui_page_len > 1000);
    assert_int_equal(strlen(p), srv_webui_page_len); /* NUL-terminated, no NUL inside */
    assert_true(strncmp(p, "<!DOCTYPE html>", 15) == 0);
    /* one inline script and one style, so the policy's two hashes cover all */
    const char *s = strstr(p, "<script>");
    assert_non_null(s);
    assert_null(strstr(s + 1, "<script"));
    const char *c = strstr(p, "<style>");
    assert_non_null(c);
    assert_null(strstr(c + 1, "<style"));
    assert_null(strstr(p, "http://"));
    assert_null(strstr(p, "https://"));
    assert_null(strstr(p, "innerHTML")); /* model output goes in as text only */
    char *csp = srv_webui_csp(p);
    assert_non_null(csp);
    assert_non_null(strstr(csp, "script-src 'sha256-")); /* both elements found and hashed */
    assert_non_null(strstr(csp, "style-src 'sha256-"));
    free(csp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_csp_hashes),
        cmocka_unit_test(test_embedded_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
