/* hub.h -- the hub process: the only SQLite writer, the sequencer, the room
 * registry and the router of messages to workers.
 *
 * hub.c runs the loop, the links to the other processes and the dispatch of
 * their messages; the rest lives in one module per concern, all sharing the
 * state declared here:
 *   pipeline.c   publishes: sequencing, throttling, group commit, routing
 *   registry.c   client connections over all workers, their limits, kicks
 *   notify.c     stored notifications and their read state
 *   outbox.c     webhook endpoints and the deliveries each message creates
 *   workflow.c   approval workflows: definitions, instances, transitions
 *   retention.c  pruning history and freeing idle rooms
 *   publisher.c  in a cluster, committed messages handed to Redis
 * On an edge (node_role = edge) the same process is the relay: no database,
 * and relay.c in place of all but registry.c. */
#ifndef HERALD_HUB_H
#define HERALD_HUB_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>
#include <jansson.h>

#include "cluster.h"
#include "ipc.h"
#include "map.h"
#include "proc.h"
#include "store.h"

#define HUB_MAX_LINKS 64        /* worker slots: one bit each in hub_room.workers */

void hub_main(struct proc_ctx *ctx) __attribute__((noreturn));

/* ---- shared by the hub's modules ----------------------------------------- */

/* A connection from a worker or the courier. */
struct link {
	struct ipc_chan ch;
	int role;                  /* IPC_ROLE_WORKER or IPC_ROLE_COURIER; 0 until hello */
	int slot;                  /* worker slot; -1 until hello */
	json_t *stats;             /* the peer's latest figures */
	struct link *dead_next;
};

struct pub;
struct pub_room;

/* A room as the hub sees it: sequence state and which workers want it.
 * It is loaded when something needs it and freed when idle (retention.c);
 * the database holds its state in between. */
struct hub_room {
	char *name;
	int64_t id;
	char epoch[STORE_EPOCH_LEN + 1];
	int64_t last_seq;
	uint64_t workers;          /* bit per worker slot */
	size_t pubs;               /* publishes in flight that name it */
	/* throttle: publishes inside the window wait; only the newest is kept */
	int64_t window_end;        /* mono ms */
	struct pub *held;
	struct pub_room *superseded;  /* replaced by held, answered when it commits */
	ev_timer throttle_timer;
	bool prune_hot;            /* on the retention's list of rooms behind */
	bool uncommitted;          /* created in the open transaction */
	int64_t txn_gpos;          /* gpos of its newest message in the open transaction, or 0 */
};

struct hub {
	struct proc_ctx *ctx;
	struct config *cfg;
	struct ev_loop *loop;
	struct store *store;
	bool edge;                          /* the relay of an edge: store is NULL */
	int64_t started_ms;
	bool db_writable;
	bool in_txn;                        /* the pipeline's transaction is open */
	struct link *links[HUB_MAX_LINKS];  /* workers, by slot */
	struct link *courier;               /* NULL while it is not connected */
	struct map rooms;                   /* name -> hub_room */
	uint64_t published;                 /* messages stored */
	uint64_t duplicates;
	uint64_t commits;
	int64_t gpos;                       /* the last global position handed out */
	struct cluster_link redis;          /* cluster_redis commands; unused when standalone */
};

extern struct hub hub;

/* The room, loaded from the database (and created there) if needed; NULL
 * when the database failed. Only what writes to a room creates it: until its
 * first message, subscribing to it or reading it leaves no trace in the
 * database or here. A room created inside an open transaction is
 * forgotten again if that transaction rolls back (hub_rooms_rollback). */
struct hub_room *hub_room_get(const char *name);
/* The room if it is loaded, else NULL. */
struct hub_room *hub_room_find(const char *name);
void hub_room_free(struct hub_room *r);
void hub_rooms_commit(void);
void hub_rooms_rollback(void);

/* Answers an IPC_REQUEST (or a publish); nothing is sent when l is NULL. */
void hub_reply(struct link *l, uint64_t req, int status, const char *json, size_t len);
void hub_reply_error(struct link *l, uint64_t req, int status, const char *code,
		     const char *message);
void hub_reply_json(struct link *l, uint64_t req, int status, json_t *v);  /* steals v */

/* Each module answers the request ops it knows: true when op was its own. */
typedef bool hub_request_fn(struct link *l, uint64_t req, const char *op, json_t *q);

#endif
