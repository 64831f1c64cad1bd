/* The web chat page served at / : src/server/webui/index.html, one
 * hand-written HTML file with one inline <style> and one inline <script>,
 * compiled into the binary by the Makefile (as the C array below, in
 * $(BUILD)/gen/webui_page.c), and the Content-Security-Policy it is served
 * with.
 *
 * The policy allows exactly the page's own inline style and script by their
 * SHA-256 hashes (CSP level 2 hash sources) and fetches to the same origin;
 * nothing else loads: no other script, style, frame, form target or base
 * URL, and the page cannot be framed.  Inline event-handler attributes and
 * style attributes are refused under it, so the page uses neither. */
#ifndef RYOT_SERVER_WEBUI_H
#define RYOT_SERVER_WEBUI_H

#include <stddef.h>
#include <stdint.h>

extern const unsigned char srv_webui_page[]; /* NUL-terminated */
extern const size_t srv_webui_page_len;      /* bytes, without the NUL */

/* SHA-256 (libsodium) of p[0..n), in standard base64 with padding (44
 * characters and a NUL), the form CSP hash sources use. */
void srv_webui_sha256_b64(const void *p, size_t n, char out[45]);

/* The policy for a page (NUL-terminated): its first <script>...</script>
 * and first <style>...</style> (tags written exactly so, no attributes) are
 * allowed by hash; an element the page lacks gets 'none'.  malloc'd; NULL
 * when out of memory. */
char *srv_webui_csp(const char *page);

#endif
