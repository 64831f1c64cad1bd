/* Type names, file types and fallbacks shared by the generator and the quantizer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/kernels.h"
#include "modeltools/modeltools_impl.h"

static const ryot_type writable[] = {
    RYOT_TYPE_F32,  RYOT_TYPE_F16,  RYOT_TYPE_BF16, RYOT_TYPE_Q4_0, RYOT_TYPE_Q4_1, RYOT_TYPE_Q5_0,
    RYOT_TYPE_Q5_1, RYOT_TYPE_Q8_0, RYOT_TYPE_Q4_K, RYOT_TYPE_Q5_K, RYOT_TYPE_Q6_K,
};

bool modeltools_parse_type(const char *name, ryot_type *out) {
    if (!name) return false;
    char buf[16];
    size_t n = strlen(name);
    if (n >= sizeof buf) return false;
    memcpy(buf, name, n + 1);
    /* llama.cpp's mix names (Q4_K_M, Q5_K_S...) name their main K type */
    if (n == 6 && !strncasecmp(buf, "Q", 1) && !strncasecmp(buf + 2, "_K_", 3) &&
        strchr("MSLmsl", buf[5]))
        buf[4] = 0;
    for (size_t i = 0; i < sizeof writable / sizeof writable[0]; i++) {
        if (!strcasecmp(buf, ryot_type_name(writable[i]))) {
            *out = writable[i];
            return true;
        }
    }
    return false;
}

uint32_t modeltools_file_type(ryot_type t) {
    switch (t) {
    case RYOT_TYPE_F32: return 0;
    case RYOT_TYPE_F16: return 1;
    case RYOT_TYPE_Q4_0: return 2;
    case RYOT_TYPE_Q4_1: return 3;
    case RYOT_TYPE_Q8_0: return 7;
    case RYOT_TYPE_Q5_0: return 8;
    case RYOT_TYPE_Q5_1: return 9;
    case RYOT_TYPE_Q4_K: return 15;
    case RYOT_TYPE_Q5_K: return 17;
    case RYOT_TYPE_Q6_K: return 18;
    case RYOT_TYPE_BF16: return 32;
    default: return 0;
    }
}

ryot_type modeltools_row_type(ryot_type want, uint64_t row_len) {
    uint64_t bytes;
    if (ryot_row_size(want, row_len, &bytes)) return want;
    ryot_type fb = RYOT_TYPE_F16;
    switch (want) {
    case RYOT_TYPE_Q4_K: fb = RYOT_TYPE_Q5_0; break;
    case RYOT_TYPE_Q5_K: fb = RYOT_TYPE_Q5_1; break;
    case RYOT_TYPE_Q6_K: fb = RYOT_TYPE_Q8_0; break;
    default: break;
    }
    if (ryot_row_size(fb, row_len, &bytes)) return fb;
    return RYOT_TYPE_F16;
}

ryot_status modeltools_write_file(const char *path, const uint8_t *buf, size_t size, ryot_error *err) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return ryot_fail(err, RYOT_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    size_t n = fwrite(buf, 1, size, fp);
    int e = errno;
    if (n != size) {
        fclose(fp);
        return ryot_fail(err, RYOT_ERR_IO, "writing %s: %s", path, strerror(e));
    }
    if (fclose(fp) != 0) return ryot_fail(err, RYOT_ERR_IO, "closing %s: %s", path, strerror(errno));
    return RYOT_OK;
}

ryot_status modeltools_layout(gguf_writer *w, uint8_t **buf, size_t *size, gguf_file **f, ryot_error *err) {
    *buf = NULL;
    *size = 0;
    *f = NULL;
    uint8_t *b;
    size_t n;
    ryot_status st = gguf_writer_finish(w, &b, &n, err);
    if (st != RYOT_OK) return st;
    st = gguf_open_memory(b, n, f, err);
    if (st != RYOT_OK) {
        free(b);
        ryot_error_prefix(err, "reading back the written layout: ");
        return st;
    }
    *buf = b;
    *size = n;
    return RYOT_OK;
}
