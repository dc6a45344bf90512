/* relay.h -- an edge's relay (SPEC §15): in the hub's process and in place of
 * its database and pipeline. It follows in Redis the rooms its workers have
 * subscribers in and hands their messages to the workers in order, filling
 * any gap from the room's stream, then from the primary; everything else the
 * workers ask for that only the primary knows is forwarded to it (uplink.h).
 * hub.c keeps the links to the workers, the registry and the stats. */
#ifndef HERALD_RELAY_H
#define HERALD_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "hub.h"

/* Opens the Redis link for SUBSCRIBE (hub.c opens hub.redis, which the relay
 * uses for its other commands) and the uplink. cfg holds the addresses and the api_key and must outlive the relay
 * (the master's copy: a reload does not move a node to another cluster). */
void relay_start(const struct config *cfg);
/* Closes the links and frees everything; requests in flight are answered
 * unavailable. */
void relay_stop(void);

/* A worker's IPC_ROOM_JOIN, IPC_ROOM_LEAVE or IPC_PUBLISH (forwarded to the
 * primary, whose answer is the reply): true when type was one of them. */
bool relay_msg(struct link *l, uint16_t type, struct ipc_reader *r);
/* A worker went away: its rooms and its requests in flight with it. */
void relay_link_lost(struct link *l);

/* Both Redis links up and the primary known: what the workers are told as
 * db_writable (an edge is not ready without them). */
bool relay_ready(void);
/* Adds the edge's own figures to stats, as its "relay" object. */
void relay_stats(json_t *stats);
/* For the node's entry in the cluster view: Redis and the primary both
 * reachable, and the messages committed on the primary not yet delivered. */
bool relay_link_up(void);
int64_t relay_lag(void);
/* hub.redis is up (again): look for the primary's address at once. */
void relay_redis_up(void);

/* Op history {room, after, limit} (frames from the stream, else the
 * primary), op http {method, path, body} (that call on the primary's API),
 * and every other op, forwarded to the primary as it is. */
hub_request_fn relay_request;

#endif
