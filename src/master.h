/* master.h -- the supervisor: forks the hub and the workers, restarts them, relays signals. */
#ifndef HERALD_MASTER_H
#define HERALD_MASTER_H

#include "config.h"

/* Runs the master until SIGTERM/SIGINT; returns the exit status. */
int master_run(struct config *cfg);

#endif
