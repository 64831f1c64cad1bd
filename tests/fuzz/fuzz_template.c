/* libFuzzer target for the chat template interpreter.
 *
 * Input: template bytes up to the first NUL, then message contents separated
 * by NULs (at most 8; roles alternate user/assistant, and a first content that
 * starts with 'S' is a system message).  add_generation_prompt is the input
 * length's parity.  Contract (chat_template.h): parsing and rendering never
 * crash, hang or leak on any input; a successful render is NUL-terminated at
 * out_len and rendering the same parsed template again gives the same bytes.
 *
 *   make BUILD=build-fuzz FUZZ=1 build-fuzz/fuzz/fuzz_template
 *   build-fuzz/fuzz/fuzz_template -max_total_time=600 -timeout=30 tests/fuzz/corpus/template
 * Seeds: tests/fuzz/corpus/template/ (golden templates with a short conversation). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/chat_template.h"

#define MAX_MSGS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    const char *nul = memchr(p, 0, size);
    size_t tlen = nul ? (size_t)(nul - p) : size;

    /* contents: copied so that each is NUL-terminated */
    chat_msg msgs[MAX_MSGS];
    char *buf = NULL;
    int n = 0;
    if (nul) {
        size_t rest = size - tlen - 1;
        buf = malloc(rest + 1);
        if (!buf) return 0;
        memcpy(buf, nul + 1, rest);
        buf[rest] = 0;
        for (size_t i = 0; n < MAX_MSGS;) {
            msgs[n].content = buf + i;
            msgs[n].role = n == 0 && buf[i] == 'S' ? "system" : (n % 2 == 0 ? "user" : "assistant");
            n++;
            size_t l = strlen(buf + i);
            if (i + l >= rest) break;
            i += l + 1;
        }
    }

    chat_template *t = NULL;
    ryot_error err;
    if (chat_template_parse(p, tlen, &t, &err) == RYOT_OK) {
        bool agp = size & 1;
        char *out = NULL, *out2 = NULL;
        size_t len = 0, len2 = 0;
        ryot_status st = chat_template_render(t, msgs, n, agp, "<s>", "</s>", &out, &len, &err);
        if (st == RYOT_OK) {
            if (!out || out[len] != 0) abort();
            if (len <= 4096) {
                /* determinism, and the template is not changed by a render */
                if (chat_template_render(t, msgs, n, agp, "<s>", "</s>", &out2, &len2, &err) != RYOT_OK) abort();
                if (len2 != len || memcmp(out, out2, len) != 0) abort();
            }
        } else if (out || err.code != st) {
            abort(); /* failures leave no output and record their status (raise_exception('') has no text) */
        }
        free(out);
        free(out2);
        chat_template_free(t);
    } else if (t || !err.msg[0]) {
        abort(); /* parse errors always say why */
    }
    free(buf);
    return 0;
}
