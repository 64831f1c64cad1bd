/* The task API's HTTP side (tasks/service.h over libmicrohttpd): called by
 * http.c for /v1/tasks, /v1/files and /v1/batches once the request body is
 * in and the API key checked. */
#ifndef RYOT_SERVER_TASKS_HTTP_H
#define RYOT_SERVER_TASKS_HTTP_H

#include <microhttpd.h>
#include <stddef.h>

#include "tasks/service.h"

enum MHD_Result srv_tasks_http(tasks_service *t, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *body, size_t len);

#endif
