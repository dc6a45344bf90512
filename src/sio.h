/* sio.h -- the Socket.IO v5 protocol on Engine.IO sessions (docs/socketio.md):
 * namespaces, CONNECT with the auth payload, herald's verbs as events with
 * acks, room events fanned out as shared frames, and connection state
 * recovery from SQLite. */
#ifndef HERALD_SIO_H
#define HERALD_SIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "buf.h"
#include "eio.h"

struct sio_sock;
struct sub;

/* The Engine.IO application serving socketio_path. */
extern const struct eio_app sio_app;

void sio_init(void);

/* Fan-out: queues a room event built once for every Socket.IO subscriber
 * (ws_frame: framed for WebSocket; packet[0..n): the same for polling). */
void sio_deliver(struct sio_sock *k, struct sbuf *ws_frame, const char *packet, size_t n);
size_t sio_backlog(const struct sio_sock *k);
bool sio_is_open(const struct sio_sock *k);
/* k's namespace name, interned: sockets of one namespace (as configured when
 * they connected) share the pointer. */
const char *sio_nsp(const struct sio_sock *k);
/* A subscription of k reached live delivery: acknowledge the subscribe. */
void sio_subscribed(struct sub *s);

/* The hub is back: report every socket and its rooms again. */
void sio_hub_back(void);
/* The hub asks to disconnect the connection with that id (a kick): every
 * socket of its Engine.IO session. */
void sio_kick(uint64_t id, const char *reason);
/* End of a loop turn: stores the sessions that changed (recovery). */
void sio_flush(void);
/* Whether the session pid can be recovered by user (NULL: anonymous) with
 * everything up to offset received: {sid, rooms} (a new reference) when it
 * can, else NULL. Reads the database: the primary answers for its edges. */
json_t *sio_session_recoverable(const char *pid, const char *user, int64_t offset);

#endif
