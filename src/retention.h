/* retention.h -- what the hub lets go: history outside each namespace's
 * retention, idempotency keys past their window, and idle rooms in memory. */
#ifndef HERALD_RETENTION_H
#define HERALD_RETENTION_H

#include "hub.h"

/* Starts the pruning and eviction timers on hub.loop. */
void retention_start(void);

#endif
