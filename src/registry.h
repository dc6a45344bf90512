/* registry.h -- the client connections of every worker, as the hub sees them:
 * who is connected where, in which rooms, and the limits over all workers. */
#ifndef HERALD_REGISTRY_H
#define HERALD_REGISTRY_H

#include <stddef.h>
#include <jansson.h>

#include "hub.h"

/* IPC_CONN_OPEN, IPC_CONN_CLOSE and IPC_CONN_ROOM from a worker. */
void registry_open(struct link *l, struct ipc_reader *r);
void registry_close(struct ipc_reader *r);
void registry_room(struct ipc_reader *r);

/* A worker went away, and its connections with it. */
void registry_link_lost(struct link *l);

/* Connections over all workers; subscribers of a room; rooms with any;
 * distinct users connected. */
size_t registry_count(void);
size_t registry_subscribers(const char *room);
size_t registry_rooms(void);
size_t registry_users(void);

/* Sends the connected users, whole, to this node's entry in the cluster view
 * (when the Redis link is back: what changed while it was down was lost). */
void registry_cluster_users(void);

/* Adds connections, unique_users, anonymous and user_connections to stats. */
void registry_stats(json_t *stats);

/* Ops: connections, disconnect. */
hub_request_fn registry_request;
/* Closes every connection of user here (4008); returns how many. */
int registry_kick_user(const char *user);

#endif
