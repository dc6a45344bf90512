/* siostate.h -- the hub's side of Socket.IO connection state recovery:
 * workers' sessions stored (and their disconnections noted) in the group
 * commit, answered once committed. */
#ifndef HERALD_SIOSTATE_H
#define HERALD_SIOSTATE_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "hub.h"

/* Request ops "sio_put" {pid, sid, user, rooms} and "sio_touch" {pid} or
 * {pids: [...]}, answered once committed. */
bool siostate_request(struct link *l, uint64_t req, const char *op, json_t *q);

#endif
