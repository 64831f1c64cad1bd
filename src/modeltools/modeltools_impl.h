/* Shared by modelgen.c and requant.c. */
#ifndef RYOT_MODELTOOLS_IMPL_H
#define RYOT_MODELTOOLS_IMPL_H

#include "modeltools/modeltools.h"

/* Serializes the writer (tensors declared without data come out as zeros)
 * and opens the result over the same buffer, so that tensor i's bytes are at
 * modeltools_tensor_dst(*buf, *f, &(*f)->tensors[i]).  On error nothing is
 * returned and nothing leaks. */
ryot_status modeltools_layout(gguf_writer *w, uint8_t **buf, size_t *size, gguf_file **f, ryot_error *err);

static inline uint8_t *modeltools_tensor_dst(uint8_t *buf, const gguf_file *f, const gguf_tensor *t) {
    return buf + f->data_offset + t->offset;
}

#endif
