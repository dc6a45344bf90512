/* eio.h -- Engine.IO v4 sessions in a worker: the WebSocket transport,
 * HTTP long-polling with one outstanding GET, the upgrade from polling to
 * WebSocket, heartbeats, and the hand-over of requests for a session that
 * another worker owns. The protocol above it (Socket.IO, or the test-only
 * echo) plugs in through struct eio_app. */
#ifndef HERALD_EIO_H
#define HERALD_EIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"

struct conn;
struct eio_session;

/* What runs on top of a session. */
struct eio_app {
	/* The session is open (its open packet is queued); req is the request
	 * that created it. */
	void (*open)(struct eio_session *es, const struct http_request *req);
	/* One message packet: text, or binary data. */
	void (*message)(struct eio_session *es, bool binary, const char *p, size_t n);
	/* The session has ended (no more sends reach the client); its memory
	 * goes at the end of the loop turn. */
	void (*close)(struct eio_session *es, const char *reason);
};

/* The test-only Engine.IO echo (socketio_test): messages come back as sent. */
extern const struct eio_app eio_echo_app;

/* Worker start: the hand-over socket and the loop watchers. */
void eio_init(void);

/* An HTTP request to an Engine.IO endpoint served by app: a handshake, a
 * poll, a post, or a WebSocket (upgrade). Answers it (now or, for a poll,
 * when something is to be sent), or hands the socket to the worker that
 * owns the session. */
void eio_http(struct conn *c, const struct http_request *req, const char *body, size_t len,
	      const struct eio_app *app);
/* A complete WebSocket message on a connection carrying a session. */
void eio_ws_message(struct conn *c, int opcode, const char *p, size_t n);
/* The connection carrying (or upgrading) a session is closing. */
void eio_conn_closed(struct conn *c);
/* End of a loop turn: answers polls that have packets waiting, frees ended
 * sessions. Called before the connections are flushed. */
void eio_flush(void);

/* Sends a message packet holding p[0..n): text or binary. */
void eio_send_text(struct eio_session *es, const char *p, size_t n);
void eio_send_binary(struct eio_session *es, const void *p, size_t n);
/* Sends a complete Engine.IO text packet that many sessions receive:
 * ws_frame is it framed for WebSocket (a reference is taken), packet[0..n)
 * the same packet for polling. */
void eio_send_shared(struct eio_session *es, struct sbuf *ws_frame, const char *packet,
		     size_t n);
/* Bytes queued for the client and not yet written. */
size_t eio_backlog(const struct eio_session *es);
/* Whether the session still takes packets. */
bool eio_is_open(const struct eio_session *es);
/* Ends the session from the server side. */
void eio_close(struct eio_session *es, const char *reason);
/* Shutdown: ends every session (polls in the works are answered). */
void eio_close_all(const char *reason);
/* Ends the session when the loop turn is over (after what is queued was
 * handed to the transport). */
void eio_close_soon(struct eio_session *es, const char *reason);

void *eio_data(const struct eio_session *es);
void eio_set_data(struct eio_session *es, void *data);
/* A connection-like id (unique in the worker's id space), the client's address. */
uint64_t eio_id(const struct eio_session *es);
const char *eio_addr(const struct eio_session *es);
int64_t eio_connected_at(const struct eio_session *es);
/* Calls fn for every open session of app. */
void eio_foreach(const struct eio_app *app, void (*fn)(struct eio_session *es, void *arg),
		 void *arg);
/* The session with that id, or NULL. */
struct eio_session *eio_find_id(uint64_t id);
/* Number of open sessions. */
size_t eio_count(void);

#endif
