/* libmicrohttpd glue of the task API (tasks/service.h): the query's
 * "after" and "limit", the multipart/form-data upload of POST /v1/files
 * (libmicrohttpd's post processor over the body already read), and the
 * reply (Retry-After with a 429). */
#include "server/tasks_http.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

typedef struct upload_acc {
    ryot_buf purpose, filename, file;
    bool has_purpose, has_file;
} upload_acc;

static enum MHD_Result upload_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                    const char *content_type, const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size) {
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    (void)off;
    upload_acc *u = cls;
    if (!key) return MHD_YES;
    ryot_buf *b = NULL;
    if (!strcmp(key, "purpose")) {
        b = &u->purpose;
        u->has_purpose = true;
    } else if (!strcmp(key, "file")) {
        b = &u->file;
        if (!u->has_file && filename) ryot_buf_append(&u->filename, filename, strlen(filename));
        u->has_file = true;
    }
    if (b && size && !ryot_buf_append(b, data, size)) return MHD_NO;
    return MHD_YES;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, tasks_reply *r) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r->content_type ? r->content_type : "application/json");
    if (r->status == 429) MHD_add_response_header(resp, "Retry-After", "1");
    if (r->status == 405) MHD_add_response_header(resp, "Allow", "GET, POST");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result srv_tasks_http(tasks_service *t, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *body, size_t len) {
    const char *after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
    const char *limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    tasks_upload up = {0};
    upload_acc acc = {0};
    const bool is_upload = !strcmp(url, "/v1/files") && !strcmp(method, "POST");
    if (is_upload) {
        struct MHD_PostProcessor *pp = MHD_create_post_processor(conn, 64 * 1024, upload_field, &acc);
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (!pp || !ct || strncasecmp(ct, "multipart/form-data", 19)) {
            up.bad = true;
        } else {
            if (len && MHD_post_process(pp, body, len) != MHD_YES) up.bad = true;
        }
        if (pp) MHD_destroy_post_processor(pp);
        /* NUL-terminate the text fields */
        if (acc.has_purpose && !ryot_buf_append(&acc.purpose, "", 1)) up.bad = true;
        if (acc.has_file && !ryot_buf_append(&acc.filename, "", 1)) up.bad = true;
        up.purpose = acc.has_purpose ? acc.purpose.data : NULL;
        up.filename = acc.has_file && acc.filename.len > 1 ? acc.filename.data : NULL;
        up.data = acc.has_file ? (acc.file.data ? acc.file.data : "") : NULL;
        up.len = acc.file.len;
    }
    tasks_reply r;
    tasks_handle(t, method, url, after, limit, body ? body : "", len, is_upload ? &up : NULL, &r);
    ryot_buf_free(&acc.purpose);
    ryot_buf_free(&acc.filename);
    ryot_buf_free(&acc.file);
    return send_reply(conn, &r);
}
