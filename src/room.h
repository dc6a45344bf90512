/* room.h -- a worker's local rooms: which of its connections are subscribed
 * to what, fan-out of the hub's deliveries, and replay from the database (on
 * an edge, from the history its relay serves). */
#ifndef HERALD_ROOM_H
#define HERALD_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "acl.h"
#include "buf.h"
#include "ipc.h"
#include "store.h"

struct conn;
struct room;
struct history_fetch;
struct sio_sock;

/* One connection's subscription to one room (one per idle connection at
 * least: keep it small). */
struct sub {
	struct room *room;
	union {                  /* the subscriber, by is_sio */
		struct conn *conn;       /* the native protocol's connection */
		struct sio_sock *sio;    /* a Socket.IO socket */
	};
	int64_t start_seq;       /* where it started: sent_seq before any delivery */
	int64_t sent_seq;        /* last seq delivered on this connection */
	uint32_t idx;            /* position in room->subs */
	uint32_t replayed;
	bool is_sio;
	bool replaying;          /* history being read: live events are skipped */
	bool confirmed;          /* `subscribed` was sent */
	bool recovered;          /* for the `subscribed` reply */
	bool automatic;          /* an auto-join (set by the session) */
	bool held;               /* recovering: sio.c merges its history itself */
	char *req_id;            /* the subscribe's id (JSON text), or NULL */
	struct sub *replay_next; /* on the list of subscriptions replaying */
	struct history_fetch *fetch; /* edge: its history request or retry, or NULL */
};

struct room {
	char *name;
	struct sub **subs;
	size_t nsubs, cap;
	bool ready;              /* the hub told us epoch and last_seq */
	char epoch[STORE_EPOCH_LEN + 1];
	int64_t last_seq;        /* highest seq committed that we know of */
};

/* Where a new subscription starts: none = live only, else after seq in epoch.
 * gap: seqs the client asked for cannot be sent (recovered: false). */
struct sub_since {
	bool given;
	bool gap;
	int64_t seq;
	char epoch[STORE_EPOCH_LEN + 1];
};

/* Subscribes c to name; the `subscribed` reply (after any replay) is sent by
 * the room module once the hub has confirmed the room. req_id (JSON text of
 * the request's id, or NULL) is copied. */
struct sub *room_subscribe(struct conn *c, const char *name, const struct sub_since *since,
			   const char *req_id);
/* The same for a Socket.IO socket. held: the subscription waits, skipping
 * live messages, until room_sub_release (connection state recovery merges
 * the history of several rooms itself); its room is registered meanwhile. */
struct sub *room_subscribe_sio(struct sio_sock *k, const char *name, const char *req_id,
			       bool held);
/* A held subscription goes live after sent_seq (what was delivered). */
void room_sub_release(struct sub *s, int64_t sent_seq);
/* Removes a subscription (the conn keeps its own list in sync). */
void room_unsubscribe(struct sub *s);
/* Whether s has delivered anything since it started. */
bool room_sub_delivered(const struct sub *s);

struct room *room_find(const char *name);
size_t room_count(void);

/* From the hub. */
void room_on_state(const char *name, const char *epoch, int64_t last_seq);
/* A committed message as the hub delivers it: the native event (payload),
 * and slices of it from which the Socket.IO frame is built. */
struct room_msg {
	int64_t seq;
	int64_t gpos;              /* global position: the Socket.IO offset */
	const char *epoch;
	const char *payload;       /* the native protocol's event message */
	size_t len;
	const char *event;         /* the event name as a JSON string literal */
	size_t event_len;
	const char *data;          /* the data, JSON text */
	size_t data_len;
	const char *ts;            /* UTIL_TS_LEN characters */
};
void room_on_deliver(const char *name, const struct room_msg *m);
/* Decodes an IPC_DELIVER payload: a live delivery, or one of the frames that
 * answer an edge's history request. m points into the payload, name and
 * epoch receive the room and its epoch (m->epoch is epoch). False when it
 * is malformed. */
bool room_msg_decode(struct ipc_reader *r, char name[ROOM_MAX + 1],
		     char epoch[STORE_EPOCH_LEN + 1], struct room_msg *m);
/* Calls fn for each message of a history reply for room (the IPC_DELIVER
 * frames the relay answers op history with) until fn returns non-zero.
 * Returns 0, or -1 when a frame is malformed or of another room. */
int room_frames_each(const char *room, const char *body, size_t len,
		     int (*fn)(const struct room_msg *m, void *arg), void *arg);
/* On an edge, asks the relay for room's messages after seq `after` (at most
 * limit) and sets *owner while the request or its retry is on. fn gets the
 * reply's frames and says whether they were usable; when not (or the relay
 * could not answer) the request is made again after a second. Once it is
 * over, *owner is NULL again and wake() is called. */
typedef bool (*history_fetch_fn)(void *arg, const char *body, size_t len);
void history_fetch(struct history_fetch **owner, const char *room, int64_t after, int limit,
		   history_fetch_fn fn, void *arg, void (*wake)(void));
/* The owner is going: its request is dropped (a reply coming later is ignored). */
void history_fetch_cancel(struct history_fetch **owner);
/* The Socket.IO packet of a delivered message for subscribers of namespace
 * nsp, built from its slices (with its gpos as offset when recovery is on). */
void room_msg_sio_packet(struct buf *b, const char *nsp, const char *room,
			 const struct room_msg *m);
/* The hub (re)connected: register every room again and catch up what was
 * committed but never delivered while it was away. */
void room_rejoin_all(void);
/* The hub went away: rooms wait for its return. */
void room_hub_lost(void);

/* Prepares the replay machinery. */
void room_init(void);

#endif
