#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ryot_status ryot_fail(ryot_error *err, ryot_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void ryot_error_prefix(ryot_error *err, const char *fmt, ...) {
    if (!err) return;
    char head[RYOT_ERROR_MSG_MAX];
    char old[RYOT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t h = strnlen(head, sizeof head - 1);
    memcpy(err->msg, head, h);
    size_t o = strnlen(old, sizeof old - 1);
    if (o > sizeof err->msg - 1 - h) o = sizeof err->msg - 1 - h;
    memcpy(err->msg + h, old, o);
    err->msg[h + o] = 0;
}

const char *ryot_strerror(ryot_status code) {
    switch (code) {
    case RYOT_OK: return "ok";
    case RYOT_ERR_IO: return "i/o error";
    case RYOT_ERR_FORMAT: return "malformed input";
    case RYOT_ERR_NOMEM: return "out of memory";
    case RYOT_ERR_UNSUPPORTED: return "unsupported";
    case RYOT_ERR_INVALID: return "invalid argument";
    case RYOT_ERR_NOT_FOUND: return "not found";
    case RYOT_ERR_INTERNAL: return "internal error";
    case RYOT_ERR_BUSY: return "busy";
    case RYOT_ERR_UNAVAILABLE: return "unavailable";
    case RYOT_ERR_TIMEOUT: return "timeout";
    }
    return "unknown error";
}

void ryot_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "ryot: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
