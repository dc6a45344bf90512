/* room.h -- a worker's local rooms: which of its connections are subscribed
 * to what, fan-out of the hub's deliveries, and replay from the database. */
#ifndef HERALD_ROOM_H
#define HERALD_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store.h"

struct conn;
struct room;

/* One connection's subscription to one room. */
struct sub {
	struct room *room;
	struct conn *conn;
	size_t idx;              /* position in room->subs */
	int64_t start_seq;       /* where it started: sent_seq before any delivery */
	int64_t sent_seq;        /* last seq delivered on this connection */
	bool replaying;          /* history being read: live events are skipped */
	bool confirmed;          /* `subscribed` was sent */
	bool recovered;          /* for the `subscribed` reply */
	bool automatic;          /* an auto-join (set by the session) */
	int64_t replayed;
	char *req_id;            /* the subscribe's id (JSON text), or NULL */
	struct sub *replay_next; /* on the list of subscriptions replaying */
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
/* Removes a subscription (the conn keeps its own list in sync). */
void room_unsubscribe(struct sub *s);
/* Whether s has delivered anything since it started. */
bool room_sub_delivered(const struct sub *s);

struct room *room_find(const char *name);
size_t room_count(void);

/* From the hub. */
void room_on_state(const char *name, const char *epoch, int64_t last_seq);
void room_on_deliver(const char *name, int64_t seq, const char *epoch, const char *payload,
		     size_t len);
/* The hub (re)connected: register every room again and catch up what was
 * committed but never delivered while it was away. */
void room_rejoin_all(void);
/* The hub went away: rooms wait for its return. */
void room_hub_lost(void);

/* Prepares the replay machinery (reads through worker.reader). */
void room_init(void);

#endif
