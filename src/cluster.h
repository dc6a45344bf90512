/* cluster.h -- herald in Redis (docs/scaling.md): the names of its keys and
 * a hiredis connection on a libev loop that comes back by itself. The
 * primary's hub and an edge's relay hold these connections; nothing else in
 * herald talks to Redis. */
#ifndef HERALD_CLUSTER_H
#define HERALD_CLUSTER_H

#include <stdbool.h>
#include <ev.h>
#include <hiredis/async.h>
#include <jansson.h>

#include "acl.h"
#include "config.h"

#define CLUSTER_RETRY 0.5           /* seconds between connection attempts */
#define CLUSTER_KEY_MAX (ROOM_MAX + 32)

/* Key names: the room's pub/sub channel, the room's stream, the primary's
 * address, a node's figures, the set of node names, a node's users. */
void cluster_key_room(char out[CLUSTER_KEY_MAX], const char *room);
void cluster_key_log(char out[CLUSTER_KEY_MAX], const char *room);
#define CLUSTER_KEY_PRIMARY "herald:primary"
#define CLUSTER_KEY_NODES "herald:nodes"
void cluster_key_node(char out[CLUSTER_KEY_MAX], const char *name);
void cluster_key_users(char out[CLUSTER_KEY_MAX], const char *name);
#define CLUSTER_ROOM_PREFIX "herald:room:"
#define CLUSTER_KEY_CONTROL "herald:control"  /* channel: {"op":"disconnect","user":U} */

/* A connection to cluster_redis. It is "up" once connected and the database
 * selected; when it drops, on_down is called and it reconnects every
 * CLUSTER_RETRY seconds, calling on_up again each time it is back. Commands
 * (redisAsyncCommand on ac) may only be sent while up. */
struct cluster_link {
	redisAsyncContext *ac;          /* NULL while down */
	bool up;
	const char *what;               /* for logs: "publisher", "subscriber", ... */
	struct ev_loop *loop;
	const struct config *cfg;
	ev_timer retry;
	void (*on_up)(struct cluster_link *l);
	void (*on_down)(struct cluster_link *l);
	void *data;
};

void cluster_link_open(struct cluster_link *l, struct ev_loop *loop, const struct config *cfg,
		       const char *what, void (*on_up)(struct cluster_link *),
		       void (*on_down)(struct cluster_link *), void *data);
/* Stops reconnecting and closes (pending replies are called with NULL). */
void cluster_link_close(struct cluster_link *l);
/* Writes what is queued on l without waiting (before the process exits). */
void cluster_link_flush(struct cluster_link *l);

/* Tells every edge to disconnect user's connections (a pub/sub message:
 * an edge cut off from Redis at that moment does not hear it). */
void cluster_disconnect(struct cluster_link *l, const char *user);

/* ---- the cluster view -------------------------------------------------------------- */

#define CLUSTER_BEAT 1.0            /* seconds between a node's heartbeats */
#define CLUSTER_NODE_TTL 10         /* seconds a node stays in the view without one */

/* Refreshes this node's entry: herald:node:{name} holds figures (an object of
 * strings and numbers), and it and herald:users:{name} expire unless the next
 * beat comes; the name joins herald:nodes. Nothing is sent while l is down. */
void cluster_node_beat(struct cluster_link *l, const char *name, json_t *figures);
/* A user's first connection on this node (present) or its last one gone. */
void cluster_node_user(struct cluster_link *l, const char *name, const char *user, bool present);
/* Replaces the node's set of users with users[0..n) (after the link came back:
 * what changed while it was down is lost). */
void cluster_node_users(struct cluster_link *l, const char *name, const char **users, size_t n);
/* The primary tells the edges where its API is (herald:primary, refreshed every beat). */
void cluster_primary_announce(struct cluster_link *l, const char *api_url);

/* Reads the cluster view (every beat) for node self: the live nodes' figures
 * and the count of distinct users over them; a node whose figures expired
 * leaves herald:nodes. The last view read is kept; nothing is sent while l is
 * down. self must outlive the read (a name from the configuration). */
void cluster_view_refresh(struct cluster_link *l, const char *self);
/* The last view read as {"nodes": [{name, figures...}], "totalConnections",
 * "uniqueUsers"}, with this node's entry (self) replaced by its current
 * figures. Returns a new reference; figures is not stolen. */
json_t *cluster_view_json(const char *self, json_t *figures);

#endif
