/* Incremental Server-Sent Events parser (the text/event-stream framing of
 * streamed completions).  Bytes arrive in arbitrary pieces (a line, even a
 * "\r\n", may be split across reads); every complete event, i.e. its "data:"
 * lines joined by '\n' and ended by a blank line, is handed to a callback.
 * Comment lines (":...") and fields other than data are ignored, except that
 * an "error:" field is delivered as data with is_error set (some servers
 * report mid-stream failures that way). */
#ifndef RYOT_BENCHSUITE_SSE_H
#define RYOT_BENCHSUITE_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

/* Returns false to stop parsing (sse_feed then returns RYOT_ERR_INVALID). */
typedef bool (*sse_event_fn)(void *ud, const char *data, size_t len, bool is_error);

typedef struct sse_parser {
    ryot_buf line; /* the partial line carried between feeds */
    ryot_buf data; /* the event being assembled */
    bool have_data, is_error, last_cr;
    size_t max_event; /* a bigger line or event is an error (default 16 MiB) */
} sse_parser;

void sse_init(sse_parser *p);
void sse_free(sse_parser *p);
/* Consumes all n bytes; calls fn for each completed event.  Errors: out of
 * memory, an oversized event, or fn returning false. */
ryot_status sse_feed(sse_parser *p, const char *buf, size_t n, sse_event_fn fn, void *ud, ryot_error *err);
/* End of stream: dispatches an event still pending without its blank line. */
ryot_status sse_finish(sse_parser *p, sse_event_fn fn, void *ud, ryot_error *err);

#endif
