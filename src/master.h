/* master.h -- the supervisor: forks the hub and the workers, restarts them, relays signals. */
#ifndef HERALD_MASTER_H
#define HERALD_MASTER_H

#include "config.h"

/* What every child learns from the master at fork time. */
struct proc_ctx {
	struct config *cfg;
	int slot;                 /* worker index (0-based); 0 for the hub */
	int master_fd;            /* channel to the master; EOF means exit */
	int hub_listen_fd;        /* hub only: where workers connect */
	char hub_name[64];        /* abstract socket name of the hub */
};

/* Runs the master until SIGTERM/SIGINT; returns the exit status. */
int master_run(struct config *cfg);

/* Child side: the common start of every process (title, log name, signal
 * mask reset, death of the parent); returns the child's libev loop. */
struct ev_loop *proc_child_init(const char *title);
/* Reads the master's hello on fd; exits when the protocol version differs. */
void proc_expect_hello(int master_fd);

#endif
