/* wsclient.h -- a small WebSocket client (RFC 6455, client side) for heraldctl
 * and herald-bench: connect, upgrade, masked text frames out, messages in. */
#ifndef HERALD_WSCLIENT_H
#define HERALD_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/types.h>

#include "buf.h"
#include "ws.h"

#define WSCLIENT_KEY_LEN 24             /* base64 of 16 random bytes */

enum wsclient_state {
	WSCLIENT_CONNECTING,   /* TCP connect and upgrade request in progress */
	WSCLIENT_UPGRADING,    /* request sent, waiting for 101 */
	WSCLIENT_OPEN,
	WSCLIENT_CLOSED,       /* close frame received or sent; fd still open */
};

/* One connection. Both modes share it: the blocking calls below poll the fd
 * themselves; an event loop instead calls wsclient_flush when the fd is
 * writable and wsclient_read + wsclient_next when it is readable. */
struct wsclient {
	int fd;
	enum wsclient_state state;
	struct ws_reader reader;
	struct buf in;          /* received bytes; in_off of them already decoded */
	size_t in_off;
	struct buf out;         /* bytes not yet written */
	char key[WSCLIENT_KEY_LEN + 1];
	bool eof;               /* the socket reached EOF or failed */
	int close_code;         /* from the peer's close frame, or 1006 when the
				   connection dropped without one */
	int http_status;        /* status of a refused upgrade (not 101) */
	const char *error;      /* why the connection is over, for messages */
};

/* A received message; data points into the client's buffers and stays
 * valid until the next wsclient_read or wsclient_next call. */
struct wsclient_msg {
	int opcode;             /* WS_OP_TEXT or WS_OP_BINARY */
	const char *data;
	size_t len;
};

/* The parts of an HTTP response head the tools need. */
struct wsclient_response {
	int status;
	size_t content_length;  /* 0 when absent */
	bool close;             /* Connection: close */
	const char *accept;     /* Sec-WebSocket-Accept value, NULL when absent */
	size_t accept_len;
};

/* Parses a response head at p[0..n). Returns its length (body follows),
 * -2 when incomplete, -1 when malformed. Never allocates. */
int wsclient_parse_response(const char *p, size_t n, struct wsclient_response *r);

/* Starts a non-blocking connection to dst (from src when non-NULL, port 0:
 * any ephemeral port) and queues the upgrade request for path (which may
 * carry a query, e.g. "/ws?token=..."). Returns 0 (w initialised, fd in
 * progress) or -1 with errno set and nothing to free. */
int wsclient_start(struct wsclient *w, const struct sockaddr_in *dst,
		   const struct sockaddr_in *src, const char *path, const char *host);

/* Writes what is queued. Returns 1 when everything went, 0 when the socket
 * is full (wait for writable), -1 on error (the connection is dead). */
int wsclient_flush(struct wsclient *w);

/* Reads what the socket has. Returns bytes read (> 0), 0 when nothing is
 * available, -1 on error or EOF (close_code 1006 unless a close came first);
 * bytes read before still decode, then wsclient_next returns -1. */
ssize_t wsclient_read(struct wsclient *w);

/* Decodes the next message from the bytes read so far. Completes the
 * upgrade first; answers pings (pong queued) and close frames (close echoed,
 * state CLOSED) itself. Returns 1 with msg filled, 0 when more input is
 * needed, -1 when the connection is over: refused upgrade (http_status),
 * protocol failure, or close (close_code). Queued replies need a flush. */
int wsclient_next(struct wsclient *w, struct wsclient_msg *msg);

/* Queues a masked frame (text, close, ...); flushing is the caller's. */
void wsclient_queue(struct wsclient *w, int opcode, const void *p, size_t n);

/* Closes the descriptor and frees the buffers; w may be reused. */
void wsclient_free(struct wsclient *w);

/* ---- blocking use ---------------------------------------------------------- */

/* Connects to "host:port" (IPv4) and completes the upgrade of path within
 * timeout_ms. Returns 0, or -1 with a message in err (the server's error body
 * when it refused the upgrade). On failure w holds nothing to free. */
int wsclient_open(struct wsclient *w, const char *hostport, const char *path,
		  int timeout_ms, char *err, size_t errlen);

/* Sends one text message, waiting until it is written. 0 or -1. */
int wsclient_send_text(struct wsclient *w, const char *p, size_t n);

/* Waits up to timeout_ms (-1: forever) for a message. Returns 1 with msg,
 * 0 on timeout or when a signal interrupted the wait, -1 when the connection
 * is over (see wsclient_next). */
int wsclient_recv(struct wsclient *w, struct wsclient_msg *msg, int timeout_ms);

/* Sends a close frame and waits briefly for the peer's, then frees w. */
void wsclient_close(struct wsclient *w, int code, const char *reason);

#endif
