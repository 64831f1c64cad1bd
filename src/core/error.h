/* Errors: two tiers (see STYLE.md).
 * - Anything input can cause returns a ryot_status and fills a ryot_error with
 *   a message naming what is wrong (field, offset, value).  Library code never
 *   exits; only src/cli/ may.
 * - Broken invariants (bugs) abort through RYOT_ASSERT with file:line. */
#ifndef RYOT_CORE_ERROR_H
#define RYOT_CORE_ERROR_H

#include <stdarg.h>

typedef enum ryot_status {
    RYOT_OK = 0,
    RYOT_ERR_IO,          /* open/read/mmap failed */
    RYOT_ERR_FORMAT,      /* malformed input file or data */
    RYOT_ERR_NOMEM,       /* allocation failed */
    RYOT_ERR_UNSUPPORTED, /* valid, but not something ryot handles */
    RYOT_ERR_INVALID,     /* bad argument or request */
    RYOT_ERR_NOT_FOUND,   /* missing key, tensor, file */
    RYOT_ERR_INTERNAL,
    RYOT_ERR_BUSY,        /* no capacity now (queue full); retry later */
    RYOT_ERR_UNAVAILABLE, /* shutting down, or out of a resource that may come back */
    RYOT_ERR_TIMEOUT,     /* a deadline passed */
} ryot_status;

#define RYOT_ERROR_MSG_MAX 320

typedef struct ryot_error {
    ryot_status code;
    char msg[RYOT_ERROR_MSG_MAX];
} ryot_error;

/* Records code and a printf-style message in *err (err may be NULL) and
 * returns code, so callers can write `return ryot_fail(err, ...)`. */
ryot_status ryot_fail(ryot_error *err, ryot_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with more context ("loading X: "). */
void ryot_error_prefix(ryot_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *ryot_strerror(ryot_status code);

void ryot_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#define RYOT_ASSERT(x) \
    do { \
        if (!(x)) ryot_assert_fail(#x, __FILE__, __LINE__); \
    } while (0)

#endif
