/* worker.h -- a worker process: listeners, client connections, local rooms,
 * and the link to the hub. */
#ifndef HERALD_WORKER_H
#define HERALD_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>
#include <jansson.h>

#include "config.h"
#include "ipc.h"
#include "map.h"
#include "proc.h"
#include "store.h"

struct conn;

/* Called with the hub's reply to a request (status, JSON body), or with 503
 * when the hub went away first. conn is NULL when it closed meanwhile. */
typedef void (*worker_reply_fn)(struct conn *c, uint64_t tag, int status,
				const char *json, size_t len);

struct worker_stats {
	uint64_t accepted;
	uint64_t delivered;        /* event frames queued to clients */
	uint64_t published;        /* publishes this worker sent to the hub */
	uint64_t slow_closed;      /* closed for exceeding the send queue */
	uint64_t rate_limited;
	uint64_t rejected;         /* connections refused by limits */
	uint64_t handshakes_evicted;  /* closed to make room for newer handshakes */
	uint64_t ws_opened;
};

struct worker {
	struct proc_ctx *ctx;
	struct config *cfg;
	struct ev_loop *loop;
	int slot;
	int64_t started_ms;
	bool stopping;

	int lfd[2];                /* client and admin listeners */
	ev_io lio[2];

	struct ipc_chan master;
	struct proc_hub_link hub;

	struct store *reader;      /* read-only database handle; NULL on an edge, which has
	                              no database: its reads go to the primary */
	struct map conns;          /* id -> struct conn */
	struct map pending;        /* request id -> struct pending_req */
	uint64_t next_req;
	uint64_t next_conn_id;     /* see WORKER_ID_SLOT_SHIFT */

	/* figures the hub sends every HUB_STATUS_MS */
	struct {
		uint64_t connections;
		bool db_writable;
		int64_t at;            /* mono ms of the last status */
	} hubstat;

	struct worker_stats stats;
};

extern struct worker worker;

/* Connection ids hold the worker's slot + 1 from this bit up. */
#define WORKER_ID_SLOT_SHIFT 44

void worker_main(struct proc_ctx *ctx) __attribute__((noreturn));

/* Sends a frame built with ipc_begin/ipc_end to the hub (b is reset).
 * Returns -1 when the hub is down: the caller answers 503 / unavailable. */
int worker_hub_send(struct buf *b);
/* Sends an API request (JSON with an "op") to the hub; fn gets the reply.
 * Returns -1 when the hub is down. */
int worker_request(struct conn *c, uint64_t tag, const char *json, size_t len,
		   worker_reply_fn fn);
/* Allocates a request id for an IPC message that expects IPC_REPLY. */
uint64_t worker_expect_reply(struct conn *c, uint64_t tag, worker_reply_fn fn);
/* Sends IPC_PUBLISH: rooms (a JSON array of checked room names), event, data
 * (JSON text, passed on as written) and idem_key (NULL: none); fn gets the
 * hub's reply. Returns -1 (fn is never called) when the hub is down. */
int worker_publish(struct conn *c, uint64_t tag, worker_reply_fn fn, json_t *rooms,
		   const char *event, const char *data, size_t data_len, const char *idem_key,
		   bool from_client);

#endif
