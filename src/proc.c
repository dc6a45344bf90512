/* proc.c -- the start of every child process: its title in ps, its log name,
 * its signals, and the master's hello. */
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "util.h"

struct ev_loop *proc_child_init(const char *title)
{
	char full[64];
	snprintf(full, sizeof(full), "heraldd: %s", title);
	proctitle_set(full);
	log_set_name(title);
	/* The master blocks the signals it waits for; children use libev's. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	return ev_default_loop(EVFLAG_AUTO);
}

void proc_expect_hello(int master_fd)
{
	uint8_t hdr[IPC_HEADER + 16];
	size_t got = 0;
	while (got < sizeof(hdr)) {
		ssize_t n = read(master_fd, hdr + got, sizeof(hdr) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		got += (size_t)n;
	}
	uint16_t type;
	const uint8_t *payload;
	uint32_t plen;
	if (ipc_frame_next(hdr, got, &type, &payload, &plen) != (long)sizeof(hdr) ||
	    type != IPC_HELLO)
		fatal("event=bad_hello from=master");
	struct ipc_reader r;
	ipc_reader_init(&r, payload, plen);
	uint32_t version = ipc_get_u32(&r);
	if (version != IPC_VERSION)
		fatal("event=version_mismatch from=master version=%u want=%u", version, IPC_VERSION);
}

struct config *proc_reload(const struct proc_ctx *ctx, struct config *cur)
{
	struct config *fresh = xcalloc(1, sizeof(*fresh));
	char err[512];
	if (config_load(fresh, cur->path, err, sizeof(err)) < 0) {
		log_error("event=reload_failed error=\"%s\"", err);
		free(fresh);
		return cur;
	}
	char **keep[] = { &fresh->listen, &fresh->admin_listen, &fresh->database };
	const char *old[] = { cur->listen, cur->admin_listen, cur->database };
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		free(*keep[i]);
		*keep[i] = xstrdup(old[i]);
	}
	fresh->workers = cur->workers;
	if (cur != ctx->cfg) {
		config_free(cur);
		free(cur);
	}
	log_set_level((enum log_level)fresh->log_level);
	log_info("event=reloaded");
	return fresh;
}
