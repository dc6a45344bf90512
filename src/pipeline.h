/* pipeline.h -- the hub's publish pipeline: every message is sequenced,
 * stored with its webhook deliveries in one group commit per loop turn, and
 * only then routed to the workers and acknowledged. */
#ifndef HERALD_PIPELINE_H
#define HERALD_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub.h"

/* Sets up a newly loaded room's throttle timer. */
void pipeline_room_init(struct hub_room *r);

/* IPC_PUBLISH from a worker: queued for the next commit. */
void pipeline_publish(struct link *l, struct ipc_reader *r);

/* Work that must commit atomically with the messages it emits (notifications,
 * workflow transitions). run is called inside the next group commit's open
 * transaction: it reads and writes through hub.store, emits messages with
 * pipeline_emit and returns 0, or -1 when the database failed (the whole
 * batch then rolls back). done follows once the transaction has committed
 * (true) or rolled back (false); it answers the request and may free the job
 * or queue it again (a bulk action does a chunk per commit). */
struct hub_job {
	int (*run)(struct hub_job *j);
	void (*done)(struct hub_job *j, bool committed);
	struct link *from;         /* who asked (NULL once it went away) */
	uint64_t req;
	struct hub_job *next;
};
void pipeline_job(struct hub_job *j);

/* Inside a job's run: sequences and stores one message in room (loaded or
 * created as needed), with the webhook deliveries it matches. It is routed
 * when the transaction commits; its seq is taken back if it rolls back.
 * Returns the seq, or -1 when the database failed. */
int64_t pipeline_emit(const char *room, const char *event, const char *data, size_t len);

/* The commit's time, as stored with every message of the open transaction. */
int64_t pipeline_now(void);
const char *pipeline_ts(void);

/* Commits everything queued (at the end of each loop turn and at shutdown). */
void pipeline_commit(void);

/* A worker went away: its publishes are still committed, unanswered. */
void pipeline_link_lost(struct link *l);

#endif
