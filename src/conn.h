/* conn.h -- one client or admin TCP connection in a worker: reading, HTTP
 * request framing, the WebSocket upgrade and frame I/O, the output queue of
 * shared buffers written with writev, timers, and closing. */
#ifndef HERALD_CONN_H
#define HERALD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>

#include "buf.h"
#include "http.h"
#include "ws.h"

enum conn_listener { LISTENER_CLIENT, LISTENER_ADMIN };

enum conn_state {
	CONN_HTTP,         /* reading requests */
	CONN_WS,           /* WebSocket open */
	CONN_WS_CLOSING,   /* our close frame sent; waiting for the peer's */
	CONN_STREAM,       /* a one-way HTTP response body (server-sent events) */
	CONN_DRAINING,     /* flush what is queued, then close TCP */
	CONN_DEAD,         /* closed; freed at the end of the loop turn */
};

struct session;
struct eio_session;

struct conn {
	uint64_t id;
	int fd;
	enum conn_listener listener;
	enum conn_state state;
	ev_io io;                /* the socket: see watch() in conn.c */
	ev_timer timer;          /* handshake, keep-alive, ping and close deadlines */
	struct buf in;
	uint32_t ip;             /* peer IPv4, network order */
	char *fwd_addr;          /* client address from a trusted proxy's X-Forwarded-For, or NULL */
	int64_t connected_at;    /* wall clock ms */
	int64_t last_rx;         /* ev_now of the last bytes received */

	/* output: shared buffers, the first possibly partly written */
	struct sbuf **outq;
	size_t outq_len, outq_cap, out_off;
	size_t out_bytes;        /* queued and unwritten */
	struct conn *dirty_next; /* on the worker's list of conns to flush */
	bool dirty;

	/* HTTP: pipelined requests get consecutive tickets; responses, which
	 * may complete out of order (some wait for the hub), go out in order. */
	uint32_t http_next;      /* ticket of the next request dispatched */
	uint32_t http_sent;      /* ticket of the next response to send */
	uint32_t http_cur;       /* ticket conn_http_reply answers */
	struct sbuf **http_held; /* responses ready before their turn (ring) */
	bool http_closing;       /* the last request said close: read no more */
	bool dispatching;        /* inside api_handle: replies must not re-enter the parser */

	/* WebSocket */
	struct ws_reader ws;
	bool echo;               /* the test-only echo endpoint */
	bool ping_sent;
	struct session *session; /* the client protocol, for /ws */
	struct eio_session *eio; /* an Engine.IO session this WebSocket carries (or upgrades) */

	struct conn *prev, *next;  /* the worker's list of connections */
	bool handshaking;          /* on the list of handshakes, oldest first */
	struct conn *hs_prev, *hs_next;
};

/* Client connections still in their HTTP handshake. */
size_t conn_handshakes(void);

/* Accepts everything pending on a listening socket. Returns -1 when the
 * process is out of descriptors (the caller pauses accepting), else 0. */
int conn_accept_all(int lfd, enum conn_listener listener);

/* Queues a shared buffer (taking a reference) / a copy of bytes. The bytes go
 * out when the loop turn ends, together with everything else queued. */
void conn_send(struct conn *c, struct sbuf *s);
void conn_send_bytes(struct conn *c, const void *p, size_t n);
/* Queues one WebSocket text frame holding p. */
void conn_ws_send_text(struct conn *c, const char *p, size_t n);
/* Starts the close handshake with code and reason, then closes TCP. */
void conn_ws_close(struct conn *c, int code, const char *reason);
/* Closes the socket now; the conn is freed at the end of the loop turn. */
void conn_close(struct conn *c, const char *why);

/* HTTP side: the response built in out answers request c->http_cur (set
 * while a request is dispatched; a reply that waited on the hub sets it back
 * to its request's ticket). It goes out after the responses to earlier
 * requests, then more pipelined requests are read. The connection closes
 * after the response to a request that was not keep-alive. */
void conn_http_reply(struct conn *c, struct buf *out);
/* Answers request c->http_cur with head (status line and headers, without
 * Content-Length) and turns the connection into a one-way stream: whatever
 * conn_send queues afterwards is the response body, until conn_close (the
 * caller keeps the pace and bounds the queue). Input is read and dropped;
 * EOF closes. Returns -1, sending nothing, unless c->http_cur is the only
 * request in the works. */
int conn_http_stream(struct conn *c, struct buf *head);
/* Whether the response to c->http_cur keeps the connection open. */
bool conn_http_keep_alive(const struct conn *c);
/* Sends the 101 response and switches to WebSocket; protocol may be NULL.
 * Messages then go to the echo endpoint or to the session. */
void conn_ws_upgrade(struct conn *c, const struct http_request *req, const char *protocol,
		     bool echo);

/* A client connection that long-polls (Engine.IO): it leaves the handshake
 * budget, which is meant for sockets on their way to a WebSocket. */
void conn_long_poll(struct conn *c);
/* Takes over a client socket handed over by another worker, with the bytes
 * it had already read from it (data[0..n), copied), and processes them. */
void conn_adopt(int fd, const void *data, size_t n);

/* Writes every conn queued since the last call; frees closed conns. */
void conn_flush_all(void);
/* Shutdown: WebSockets start their close handshake with code and reason;
 * idle HTTP connections close now, busy ones after their last response. */
void conn_close_all(int code, const char *reason);
/* The client's address as text: the one a trusted proxy forwarded (see
 * trusted_proxies), else the peer's (a static buffer, valid until the next
 * call). */
const char *conn_addr(const struct conn *c);
/* Number of open connections. */
size_t conn_count(void);
struct conn *conn_first(void);

#endif
