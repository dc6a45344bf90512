/* proc.h -- what every child process shares: the context the master hands
 * it at fork time and the common start of its life. */
#ifndef HERALD_PROC_H
#define HERALD_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>
#include "config.h"
#include "ipc.h"

/* What every child learns from the master at fork time. */
struct proc_ctx {
	struct config *cfg;
	int slot;                 /* worker index (0-based); 0 for the hub */
	int master_fd;            /* channel to the master; EOF means exit */
	int hub_listen_fd;        /* hub only: where workers connect */
	char hub_name[64];        /* abstract socket name of the hub */
};

/* The common start of every child (title, log name, signal mask reset,
 * death of the parent); returns the child's libev loop. */
struct ev_loop *proc_child_init(const char *title);

/* Reads the master's hello on fd; exits when the protocol version differs. */
void proc_expect_hello(int master_fd);

/* A child's link to the hub (workers and the courier): it connects, sends
 * the hello with the child's role and slot, checks the hub's version, and
 * tries again every 100 ms while the hub is away. */
struct proc_hub_link {
	struct ipc_chan ch;
	bool up;                    /* hellos exchanged */
	ev_timer retry;
	const char *name;           /* the hub's abstract socket */
	uint32_t role, slot;
	ipc_msg_fn on_msg;          /* every message after the hello */
	void (*on_up)(void);
	void (*on_lost)(void);      /* called once the link was up and went; may be NULL */
};

/* Sets l up (ch.fd -1 until connected) and makes the first attempt. */
void proc_hub_link_start(struct proc_hub_link *l, struct ev_loop *loop, const char *name,
			 uint32_t role, uint32_t slot, ipc_msg_fn on_msg, void (*on_up)(void),
			 void (*on_lost)(void));

/* Ends a child that stopped on purpose. Children leave with _exit (no atexit
 * work of the master's image); in a sanitizer build the leak check, which
 * would run at exit, runs here first. */
void proc_exit(int status) __attribute__((noreturn));

/* SIGHUP in a child: reads cur's file again. What needs a restart
 * (addresses, worker count, database) keeps its old value. Returns the new
 * configuration and frees cur unless it is the master's (ctx->cfg); on
 * error logs why and returns cur. */
struct config *proc_reload(const struct proc_ctx *ctx, struct config *cur);

#endif
