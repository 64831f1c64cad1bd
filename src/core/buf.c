#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ryot_buf_append(ryot_buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return false;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return true;
}

bool ryot_buf_printf(ryot_buf *b, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return false;
    if ((size_t)n < sizeof line) return ryot_buf_append(b, line, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return false;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    bool ok = ryot_buf_append(b, big, (size_t)n);
    free(big);
    return ok;
}

void ryot_buf_clear(ryot_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

void ryot_buf_free(ryot_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
