/* api.h -- HTTP routes of both listeners: health probes, the WebSocket
 * endpoints, and the server API, metrics and dashboard on the admin listener. */
#ifndef HERALD_API_H
#define HERALD_API_H

#include <stddef.h>
#include "conn.h"
#include "http.h"

/* Handles one complete request; answers now (conn_http_reply) or later, after
 * setting c->pending_req, when the hub must answer. */
void api_handle(struct conn *c, const struct http_request *req, const char *body, size_t len);

#endif
