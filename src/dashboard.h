/* dashboard.h -- the dashboard on the admin listener: its static files
 * (GET /, GET /assets/NAME from dashboard_dir) and its live stream of
 * figures and room events (GET /api/stream, server-sent events). */
#ifndef HERALD_DASHBOARD_H
#define HERALD_DASHBOARD_H

#include "conn.h"
#include "http.h"

/* Most live streams one worker serves at once; more are answered 503. */
#define DASHBOARD_STREAMS_MAX 16

/* Answers GET / (index.html) and GET /assets/NAME with the file from
 * dashboard_dir: 404 for names outside the flat set of allowed names and
 * types, 304 when If-None-Match holds the file's ETag. */
void dashboard_static(struct conn *c, const struct http_request *req);

/* Starts the live stream for GET /api/stream[?room=R] (the caller checked
 * the API key): `stats` events every second (the hub's /api/stats with the
 * worker's view of hub and database health), and `message` events of room R
 * as they are stored, starting with its last few. Answers 400/503 itself
 * when it cannot. */
void dashboard_stream(struct conn *c, const struct http_request *req);

#endif
