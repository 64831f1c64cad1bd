/* A growable byte buffer, always NUL-terminated once anything was appended
 * (data is NULL before).  The one buffer type of the library: the server's
 * output channels and SSE bytes, metrics text, JSON assembly. */
#ifndef RYOT_CORE_BUF_H
#define RYOT_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ryot_buf {
    char *data;
    size_t len, cap;
} ryot_buf;

/* Appends p[0..n) (doubling the capacity when needed); false when out of
 * memory, leaving the buffer as it was. */
bool ryot_buf_append(ryot_buf *b, const void *p, size_t n);
/* printf-style append; false when out of memory. */
bool ryot_buf_printf(ryot_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties the buffer, keeping its memory. */
void ryot_buf_clear(ryot_buf *b);
void ryot_buf_free(ryot_buf *b);

#endif
