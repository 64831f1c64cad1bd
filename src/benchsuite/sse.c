#include "benchsuite/sse.h"

#include <stdlib.h>
#include <string.h>

void sse_init(sse_parser *p) {
    memset(p, 0, sizeof *p);
    p->max_event = (size_t)16 << 20;
}

void sse_free(sse_parser *p) {
    ryot_buf_free(&p->line);
    ryot_buf_free(&p->data);
    memset(p, 0, sizeof *p);
}

static ryot_status dispatch(sse_parser *p, sse_event_fn fn, void *ud, ryot_error *err) {
    if (!p->have_data) return RYOT_OK;
    bool go = fn(ud, p->data.data ? p->data.data : "", p->data.len, p->is_error);
    p->have_data = p->is_error = false;
    ryot_buf_clear(&p->data);
    if (!go) return ryot_fail(err, RYOT_ERR_INVALID, "SSE: event handler stopped the stream");
    return RYOT_OK;
}

/* One complete line (without its terminator). */
static ryot_status take_line(sse_parser *p, const char *s, size_t n, sse_event_fn fn, void *ud,
                             ryot_error *err) {
    if (n == 0) return dispatch(p, fn, ud, err);
    if (s[0] == ':') return RYOT_OK; /* comment / keep-alive */
    const char *colon = memchr(s, ':', n);
    size_t name_len = colon ? (size_t)(colon - s) : n;
    const char *val = colon ? colon + 1 : s + n;
    size_t val_len = (size_t)(s + n - val);
    if (val_len && val[0] == ' ') val++, val_len--;
    bool is_data = name_len == 4 && !memcmp(s, "data", 4);
    bool is_err = name_len == 5 && !memcmp(s, "error", 5);
    if (!is_data && !is_err) return RYOT_OK;
    size_t need = p->data.len + (p->have_data ? 1 : 0) + val_len + 1;
    if (need > p->max_event) return ryot_fail(err, RYOT_ERR_FORMAT, "SSE: event larger than %zu bytes", p->max_event);
    if ((p->have_data && !ryot_buf_append(&p->data, "\n", 1)) || !ryot_buf_append(&p->data, val, val_len))
        return ryot_fail(err, RYOT_ERR_NOMEM, "SSE: out of memory");
    p->have_data = true;
    if (is_err) p->is_error = true;
    return RYOT_OK;
}

ryot_status sse_feed(sse_parser *p, const char *buf, size_t n, sse_event_fn fn, void *ud, ryot_error *err) {
    size_t i = 0;
    /* A "\r\n" split across feeds: the '\n' ends nothing new. */
    if (p->last_cr && n > 0 && buf[0] == '\n') i = 1;
    p->last_cr = false;
    while (i < n) {
        const char *s = buf + i;
        size_t rest = n - i, k = 0;
        while (k < rest && s[k] != '\n' && s[k] != '\r') k++;
        if (k == rest) { /* no terminator: carry the piece over */
            if (p->line.len + k + 1 > p->max_event)
                return ryot_fail(err, RYOT_ERR_FORMAT, "SSE: line longer than %zu bytes", p->max_event);
            if (!ryot_buf_append(&p->line, s, k)) return ryot_fail(err, RYOT_ERR_NOMEM, "SSE: out of memory");
            return RYOT_OK;
        }
        ryot_status st;
        if (p->line.len) {
            if (!ryot_buf_append(&p->line, s, k)) return ryot_fail(err, RYOT_ERR_NOMEM, "SSE: out of memory");
            size_t len = p->line.len;
            p->line.len = 0; /* the bytes stay valid until the next append */
            st = take_line(p, p->line.data, len, fn, ud, err);
        } else {
            st = take_line(p, s, k, fn, ud, err);
        }
        if (st != RYOT_OK) return st;
        i += k + 1;
        if (s[k] == '\r') {
            if (i < n && buf[i] == '\n')
                i++;
            else if (i == n)
                p->last_cr = true;
        }
    }
    return RYOT_OK;
}

ryot_status sse_finish(sse_parser *p, sse_event_fn fn, void *ud, ryot_error *err) {
    if (p->line.len) {
        size_t len = p->line.len;
        p->line.len = 0;
        ryot_status st = take_line(p, p->line.data, len, fn, ud, err);
        if (st != RYOT_OK) return st;
    }
    return dispatch(p, fn, ud, err);
}
