/* outbox.h -- webhook endpoints and their deliveries, on the hub's side:
 * every stored message that an enabled endpoint's globs match gets a
 * delivery row in the same transaction; the courier sends them and reports
 * each attempt, and the outbox commits what follows (retry, success, dead). */
#ifndef HERALD_OUTBOX_H
#define HERALD_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "hub.h"

/* Loads the endpoints; exits when the database cannot be read. */
void outbox_start(void);

/* Inside the pipeline's transaction: queues the deliveries of one stored
 * message. 0, or -1 when the database failed. */
int outbox_message(const char *room, int64_t seq, const char *event, const char *data,
		   size_t len);

/* The pipeline's transaction ended: tells the courier what it made due. */
void outbox_committed(bool ok);

/* The courier (re)connected, or sent IPC_WEBHOOK_RESULT. */
void outbox_courier_connected(uint32_t pid);
void outbox_result(struct ipc_reader *r);

/* Adds the webhooks figures (and the courier's) to stats. */
void outbox_stats(json_t *stats);

/* Ops: webhook_create, webhook_list, webhook_get, webhook_update,
 * webhook_delete, webhook_deliveries, webhook_retry, webhook_test. */
hub_request_fn outbox_request;

#endif
