/* Re-quantize a GGUF file (contract in modeltools.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "modeltools/modeltools_impl.h"

typedef enum action {
    ACT_COPY,     /* bytes as they are (same type, or kept) */
    ACT_CONVERT,  /* to_float then from_float */
} action;

typedef struct plan {
    ryot_type type; /* output type */
    action act;
} plan;

static void note(const requant_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const requant_opts *o, const char *fmt, ...) {
    if (!o->note) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->note(o->note_ctx, msg);
}

static bool is_float_type(ryot_type t) {
    return t == RYOT_TYPE_F32 || t == RYOT_TYPE_F16 || t == RYOT_TYPE_BF16;
}

/* Decides what happens to one tensor. */
static plan plan_tensor(const gguf_tensor *t, const requant_opts *o, char *name, requant_stats *s) {
    const kernel_traits *src = kernels_ref(t->type);
    uint64_t bytes;
    if (t->n_dims < 2) {
        s->n_1d++;
        if (t->type == RYOT_TYPE_F32) return (plan){t->type, ACT_COPY};
        if (is_float_type(t->type) && src->to_float) {
            s->n_to_f32++;
            return (plan){RYOT_TYPE_F32, ACT_CONVERT};
        }
        s->n_kept++;
        return (plan){t->type, ACT_COPY};
    }
    if (o->keep_output && !strcmp(name, "output.weight")) {
        s->n_kept++;
        return (plan){t->type, ACT_COPY};
    }
    if (t->type == o->type) {
        s->n_converted++;
        return (plan){t->type, ACT_COPY};
    }
    if (!ryot_row_size(o->type, t->ne[0], &bytes)) {
        note(o, "%s: rows of %llu are not a multiple of the %s block size %u; kept as %s", name,
             (unsigned long long)t->ne[0], ryot_type_name(o->type), ryot_type_get(o->type)->block_size,
             ryot_type_name(t->type));
        s->n_kept++;
        return (plan){t->type, ACT_COPY};
    }
    if (!src->to_float) {
        note(o, "%s: no dequantizer for %s; kept as it is", name, ryot_type_name(t->type));
        s->n_kept++;
        return (plan){t->type, ACT_COPY};
    }
    s->n_converted++;
    return (plan){o->type, ACT_CONVERT};
}

ryot_status requant_build(const gguf_file *in, const requant_opts *opts, uint8_t **buf, size_t *size,
                          requant_stats *stats, ryot_error *err) {
    *buf = NULL;
    *size = 0;
    requant_stats s = {0};
    ryot_type check;
    if (!modeltools_parse_type(ryot_type_name(opts->type), &check) || check != opts->type ||
        !kernels_ref(opts->type)->from_float)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "cannot write tensors of type %s", ryot_type_name(opts->type));

    ryot_status st = RYOT_OK;
    gguf_writer *w = gguf_writer_new(in->version >= 3 ? 3 : 2);
    plan *plans = calloc(in->n_tensors ? in->n_tensors : 1, sizeof *plans);
    char *name = NULL;
    float *row = NULL;
    uint8_t *b = NULL;
    size_t n = 0;
    gguf_file *f = NULL;
    uint64_t max_name = 0, max_row = 0;
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        if (in->tensors[i].name.len > max_name) max_name = in->tensors[i].name.len;
        if (in->tensors[i].ne[0] > max_row) max_row = in->tensors[i].ne[0];
    }
    name = malloc(max_name + 1);
    row = malloc((max_row ? max_row : 1) * sizeof *row);
    if (!plans || !name || !row) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        goto done;
    }

    /* metadata: everything, in order; the file type is replaced in place */
    bool have_ft = false, have_qv = false;
    for (uint64_t i = 0; i < in->n_kv; i++) {
        const gguf_kv *kv = &in->kv[i];
        char *key = strndup(kv->key.data, kv->key.len);
        if (!key) {
            st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (!strcmp(key, "general.file_type")) {
            gguf_writer_set_u32(w, key, modeltools_file_type(opts->type));
            have_ft = true;
        } else if (!strcmp(key, "general.quantization_version")) {
            gguf_writer_set_u32(w, key, 2);
            have_qv = true;
        } else {
            gguf_writer_set_value(w, key, &kv->value);
        }
        free(key);
    }
    if (!have_qv) gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (!have_ft) gguf_writer_set_u32(w, "general.file_type", modeltools_file_type(opts->type));

    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *t = &in->tensors[i];
        memcpy(name, t->name.data, t->name.len);
        name[t->name.len] = 0;
        plans[i] = plan_tensor(t, opts, name, &s);
        gguf_writer_add_tensor(w, name, plans[i].type, t->n_dims, t->ne, NULL);
        s.bytes_before += t->size;
    }

    st = modeltools_layout(w, &b, &n, &f, err);
    if (st != RYOT_OK) goto done;
    RYOT_ASSERT(f->n_tensors == in->n_tensors);
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *t = &in->tensors[i], *o = &f->tensors[i];
        uint8_t *dst = modeltools_tensor_dst(b, f, o);
        s.bytes_after += o->size;
        if (!t->data) {
            st = ryot_fail(err, RYOT_ERR_INVALID, "input file was opened without tensor data");
            goto done;
        }
        if (plans[i].act == ACT_COPY) {
            RYOT_ASSERT(o->size == t->size);
            memcpy(dst, t->data, t->size);
            continue;
        }
        const kernel_traits *from = kernels_ref(t->type), *to = kernels_ref(plans[i].type);
        uint64_t in_row, out_row;
        RYOT_ASSERT(ryot_row_size(t->type, t->ne[0], &in_row) && ryot_row_size(plans[i].type, t->ne[0], &out_row));
        uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        for (uint64_t r = 0; r < rows; r++) {
            from->to_float((const uint8_t *)t->data + r * in_row, row, (int64_t)t->ne[0]);
            to->from_float(row, dst + r * out_row, (int64_t)t->ne[0]);
        }
    }
    if (stats) *stats = s;
    *buf = b;
    *size = n;
    b = NULL;

done:
    gguf_close(f);
    gguf_writer_free(w);
    free(plans);
    free(name);
    free(row);
    free(b);
    return st;
}
