/* store.h -- the SQLite database: schema migrations, rooms with epoch and seq,
 * stored messages, idempotency keys, retention, notifications, webhooks and
 * workflows.
 * The hub holds the only writable handle; workers open read-only handles. */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define STORE_EPOCH_LEN 16          /* hex characters */
#define STORE_IDEM_WINDOW_MS (24LL * 3600 * 1000)

/* NULL-terminated list of migration scripts generated from sql/ (schema.c). */
extern const char *const store_migrations[];

struct store;

struct store_room {
	int64_t id;
	char epoch[STORE_EPOCH_LEN + 1];
	int64_t last_seq;           /* 0 when nothing was ever stored */
};

struct store_message {
	int64_t seq;
	const char *event;          /* borrowed; valid during the callback */
	const char *data;           /* JSON text */
	size_t data_len;
	const char *ts;             /* RFC 3339 with milliseconds */
	int64_t gpos;               /* global position (0: stored before it existed) */
};

/* Opens path. Writable: creates it if needed, sets WAL and synchronous NORMAL
 * (FULL when full_sync), and applies the migrations past PRAGMA user_version
 * in one transaction each. Read-only: needs an existing, migrated database.
 * Returns NULL with a message in err. */
struct store *store_open(const char *path, bool readonly, bool full_sync,
			 char *err, size_t errlen);
void store_close(struct store *s);
const char *store_errmsg(struct store *s);

int store_begin(struct store *s);       /* 0 or -1 */
int store_commit(struct store *s);
void store_rollback(struct store *s);

/* Writable: true when a write transaction can be taken now (health checks). */
bool store_writable(struct store *s);

/* Looks up a room; with create, makes it (random epoch, last_seq 0) when
 * absent. Returns 1 found/created, 0 absent, -1 error. */
int store_room_get(struct store *s, const char *name, bool create, struct store_room *out);
/* Records the room's new last_seq and the gpos of its newest message
 * (inside the caller's transaction). */
int store_room_set_seq(struct store *s, int64_t room_id, int64_t last_seq, int64_t gpos);

/* Inserts one message with its global position (inside the caller's
 * transaction). idem_key may be NULL. */
int store_message_add(struct store *s, int64_t room_id, int64_t seq, int64_t gpos,
		      const char *event, const char *data, size_t data_len, const char *ts,
		      const char *idem_key, int64_t now_ms);
/* Seq stored earlier under idem_key in room within STORE_IDEM_WINDOW_MS of
 * now_ms: returns 1 with *seq set, 0 when none, -1 on error. */
int store_idem_find(struct store *s, int64_t room_id, const char *idem_key,
		    int64_t now_ms, int64_t *seq);

/* Reads the messages of room (by name) with seq > after, ascending, at most
 * limit, calling fn for each (stopping early if fn returns non-zero).
 * Returns the number of messages passed to fn, or -1. */
typedef int (*store_message_fn)(const struct store_message *m, void *arg);
int store_history(struct store *s, const char *room, int64_t after, int limit,
		  store_message_fn fn, void *arg);
/* The lowest retained seq of room, 0 when it has no messages; -1 on error. */
int64_t store_first_seq(struct store *s, const char *room);

/* Deletes, in room, messages with seq <= max_seq or ts older than before_ts
 * (NULL: no age limit), at most limit rows. Returns rows deleted or -1.
 * Run in small steps between commits. */
int store_prune_room(struct store *s, int64_t room_id, int64_t max_seq,
		     const char *before_ts, int limit);
/* Deletes at most limit idempotency keys, of any room, older than the window
 * at now_ms. Returns rows deleted or -1. */
int store_prune_idem(struct store *s, int64_t now_ms, int limit);
/* Every room as (id, name, last_seq) for pruning and listing; stops when fn returns non-zero. */
typedef int (*store_room_fn)(int64_t id, const char *name, int64_t last_seq, void *arg);
int store_rooms_each(struct store *s, store_room_fn fn, void *arg);
/* At most limit rooms with id > after_id, by id (pruning walks them all in
 * steps); returns how many were passed to fn, or -1. */
int store_rooms_after(struct store *s, int64_t after_id, int limit, store_room_fn fn, void *arg);

/* ---- notifications ---------------------------------------------------- */

struct store_notification {
	const char *user;
	const char *type;
	const char *title;          /* may be NULL */
	const char *message;        /* may be NULL */
	const char *data;           /* JSON text, may be NULL */
	const char *action_url;     /* may be NULL */
	const char *created_at;     /* RFC 3339 */
	int64_t seq;                /* seq of the event in user:{user} that carried it */
};
/* Inserts (inside the caller's transaction); returns the new id or -1. */
int64_t store_notification_add(struct store *s, const struct store_notification *n);
/* JSON array of the user's notifications, newest first, ids < before when
 * before > 0, only unread when unread_only. NULL on error. */
json_t *store_notifications_list(struct store *s, const char *user, bool unread_only,
				 int limit, int64_t before);
/* Marks ids (or all when ids is NULL) of user read at ts; returns how many changed or -1. */
int store_notifications_read(struct store *s, const char *user, const int64_t *ids,
			     size_t nids, const char *ts);
/* Unread count of user, or -1. */
int64_t store_unread_count(struct store *s, const char *user);

/* Caps the database file at about bytes (0: no cap): a write that would grow
 * it further fails as with a full disk (SQLITE_FULL). 0 or -1. */
int store_limit_size(struct store *s, size_t bytes);

/* ---- webhooks: endpoints and the delivery outbox -------------------------- */

struct store_webhook {
	const char *id, *url, *secret;
	const char *old_secret;         /* NULL: none */
	int64_t old_secret_until_ms;    /* 0: none */
	const char *events;             /* JSON array text */
	const char *rooms;              /* JSON array text, NULL: every room */
	int max_attempts, timeout_ms;
	bool enabled;
	const char *disabled_reason;    /* NULL while enabled */
	int failures;                   /* consecutive */
	int64_t paused_until_ms;        /* 0: the breaker is closed */
	const char *created_at;
};
/* Inserts the endpoint, or updates it in place when its id exists; 0 or -1. */
int store_webhook_put(struct store *s, const struct store_webhook *w);
/* Deletes the endpoint and its deliveries; 1, 0 when there was none, or -1. */
int store_webhook_delete(struct store *s, const char *id);
/* Every endpoint, oldest first, as objects with the columns of
 * webhook_endpoints (events and rooms still JSON text); NULL on error. */
json_t *store_webhooks(struct store *s);

/* Queues a delivery (status pending); returns its id or -1. room may be NULL
 * (seq is then 0 and stored as NULL). */
int64_t store_delivery_add(struct store *s, const char *endpoint, const char *event,
			   const char *room, int64_t seq, const char *body, size_t len,
			   int64_t next_attempt_ms, const char *ts);
/* The delivery as an object with the columns of webhook_deliveries but body;
 * NULL when there is none or on error. */
json_t *store_delivery_get(struct store *s, int64_t id);
/* Sets a delivery's state; 0 for next_attempt_ms or last_status stores NULL. */
int store_delivery_update(struct store *s, int64_t id, const char *status, int attempts,
			  int64_t next_attempt_ms, int last_status, const char *last_error,
			  const char *ts);
/* An endpoint's deliveries, newest first, ids < before when before > 0, only
 * those in status when it is not NULL; NULL on error. */
json_t *store_deliveries(struct store *s, const char *endpoint, const char *status, int limit,
			 int64_t before);
/* Calls fn for each of an endpoint's deliveries still to be sent whose time
 * has come (next_attempt_ms <= now_ms), the longest due first, at most limit;
 * body points into SQLite's memory, valid during the call. Returns how many
 * rows were passed, or -1 on error. */
typedef void store_due_fn(void *arg, int64_t id, int attempts, const char *body, size_t len);
int store_deliveries_due(struct store *s, const char *endpoint, int64_t now_ms, int limit,
			 store_due_fn fn, void *arg);
/* When the endpoint's next delivery falls due after after_ms: ms since 1970,
 * 0 when none is waiting, -1 on error. */
int64_t store_delivery_next_due(struct store *s, const char *endpoint, int64_t after_ms);
/* Deliveries still to be sent (pending or failed), and dead ones; 0 or -1. */
int store_delivery_counts(struct store *s, int64_t *queued, int64_t *dead);

/* ---- workflows: definitions, instances, history, approvals ---------------- */

/* Adds a definition (steps: JSON array text); 1 added, 0 when the name
 * exists, -1 on error. */
int store_workflow_def_add(struct store *s, const char *name, const char *steps, const char *ts);
/* The definition {name, steps (JSON text), created_at}: 1 with *out set (a
 * new reference), 0 when there is none, -1 on error. */
int store_workflow_def(struct store *s, const char *name, json_t **out);
/* Every definition by name, as store_workflow_def's objects; NULL on error. */
json_t *store_workflow_defs(struct store *s);

/* Adds an instance (pending, at step 0, version 1); returns its id or -1. */
int64_t store_workflow_add(struct store *s, const char *definition, const char *data,
			   const char *created_by, const char *ts);
/* The instance with its definition's steps: an object with the columns id,
 * definition, status, step, data, version, created_by, created_at,
 * updated_at and steps (see wfstate_json). 1 with *out set, 0, or -1. */
int store_workflow_get(struct store *s, int64_t id, json_t **out);
int store_workflow_update(struct store *s, int64_t id, const char *status, int step,
			  int64_t version, const char *ts);

struct store_workflow_filter {
	const char *status, *definition, *created_by;   /* NULL: any */
	int64_t before;             /* ids below it; 0: from the newest */
	int limit;
};
/* Instances as store_workflow_get's objects, newest first; NULL on error. */
json_t *store_workflows(struct store *s, const struct store_workflow_filter *f);
/* {status: count} over every instance; NULL on error. */
json_t *store_workflow_counts(struct store *s);

/* One history entry (step and comment may be NULL); 0 or -1. */
int store_workflow_history_add(struct store *s, int64_t id, const char *actor,
			       const char *action, const char *step, const char *comment,
			       const char *ts);
/* [{actor, action, step, comment, time}] oldest first; NULL on error. */
json_t *store_workflow_history(struct store *s, int64_t id);
/* Records actor's approval of step: 1, 0 when it had approved it already, -1. */
int store_workflow_approval_add(struct store *s, int64_t id, int step, const char *actor,
				const char *comment, const char *ts);
/* [{actor, comment, time}] of one step, in order; NULL on error. */
json_t *store_workflow_approvals(struct store *s, int64_t id, int step);

/* ---- Socket.IO: global positions and recoverable sessions ------------------- */

/* The highest gpos ever stored (0 when none), or -1 on error. */
int64_t store_max_gpos(struct store *s);

struct store_sio_session {
	const char *pid, *sid;
	const char *user;           /* NULL: anonymous */
	const char *rooms;          /* JSON {room: [joined seq, epoch]} */
};
/* Creates or replaces the session of pid, updated at now; 0 or -1. */
int store_sio_put(struct store *s, const struct store_sio_session *ss, int64_t now_ms);
/* Moves the session's updated time on to now (a disconnection); 0 or -1. */
int store_sio_touch(struct store *s, const char *pid, int64_t now_ms);
/* Deletes at most limit sessions not updated since before_ms; rows or -1. */
int store_sio_prune(struct store *s, int64_t before_ms, int limit);
/* The session of pid as {sid, user, rooms, updated_ms}: 1 with *out set (a
 * new reference), 0 when there is none, -1 on error. */
int store_sio_get(struct store *s, const char *pid, json_t **out);

#endif
