/* publisher.h -- the primary's hand-off of committed messages to Redis
 * (docs/scaling.md): each one, in commit order, is published on its room's
 * channel and appended to its room's stream, over hub.redis. */
#ifndef HERALD_PUBLISHER_H
#define HERALD_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "buf.h"

/* Starts handing messages to Redis (the primary of a cluster): from then on
 * publisher_on() is true and route() gives every committed message here. */
void publisher_start(void);
bool publisher_on(void);

/* One committed message, in commit order: frame is its IPC_DELIVER frame
 * (publisher takes its own reference). It is queued until Redis has it;
 * queuing never waits for Redis. */
void publisher_message(const char *room, int64_t seq, struct sbuf *frame);

/* hub.redis is up (again): sends what Redis does not have yet, in order. */
void publisher_resend(void);

/* Messages queued that Redis does not have yet. */
size_t publisher_lag(void);

/* Adds cluster_dropped (messages dropped from a full queue) to stats. */
void publisher_stats(json_t *stats);

#endif
