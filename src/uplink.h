/* uplink.h -- an edge's HTTP calls to the primary's admin API (docs/scaling.md):
 * libcurl's multi interface on the relay's libev loop, authenticated with the
 * shared api_key. Used by relay.c for everything that only the primary can
 * answer: writes, room heads and history the Redis stream no longer holds. */
#ifndef HERALD_UPLINK_H
#define HERALD_UPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

#include "config.h"

/* status: the primary's HTTP status, or 0 when it could not be reached (no
 * address known yet, refused, timed out); body is not NUL-terminated and is
 * only valid during the call. */
typedef void (*uplink_done_fn)(void *arg, int status, const char *body, size_t len);

/* cfg (api_key) must outlive the uplink. */
void uplink_init(struct ev_loop *loop, const struct config *cfg);
/* Calls in flight are answered with status 0; none may be made after. */
void uplink_free(void);
/* The primary's admin API, e.g. "http://10.0.0.1:8081", as advertised in Redis. */
void uplink_set_primary(const char *api_url);
bool uplink_known(void);
/* method "GET", "POST" or another (DELETE...); path with its query; body may
 * be NULL. fn is always called, later, exactly once (with status 0 when the
 * call could not be made). */
void uplink_call(const char *method, const char *path, const char *body, size_t len,
		 uplink_done_fn fn, void *arg);
/* Calls in flight (stats). */
size_t uplink_pending(void);

#endif
