/* proc.c -- what every child process shares: its start (title in ps, log
 * name, signals, the master's hello), its reload, and its link to the hub. */
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <ev.h>

#include "ipc.h"
#include "log.h"
#ifdef __SANITIZE_ADDRESS__
#define PROC_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PROC_LSAN 1
#endif
#endif
#ifdef PROC_LSAN
#include <sanitizer/lsan_interface.h>
#endif
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

void proc_exit(int status)
{
#ifdef PROC_LSAN
	__lsan_do_leak_check();
#endif
	_exit(status);
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

/* ---- the link to the hub ---------------------------------------------------------- */

#define HUB_RETRY 0.1          /* seconds between attempts to reach the hub */

static void hub_link_connect(struct proc_hub_link *l);

static void hub_link_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r)
{
	struct proc_hub_link *l = ch->data;
	if (l->up) {
		l->on_msg(ch, type, r);
		return;
	}
	uint32_t version = type == IPC_HELLO ? ipc_get_u32(r) : 0;
	if (version != IPC_VERSION) {
		log_error("event=version_mismatch from=hub type=%u version=%u want=%u", type,
			  version, IPC_VERSION);
		ipc_chan_close(ch);
		ch->on_close(ch);
		return;
	}
	l->up = true;
	log_info("event=hub_connected");
	l->on_up();
}

static void hub_link_lost(struct ipc_chan *ch)
{
	struct proc_hub_link *l = ch->data;
	bool was_up = l->up;
	l->up = false;
	if (was_up) {
		log_warn("event=hub_lost");
		if (l->on_lost)
			l->on_lost();
	}
	ev_timer_start(ch->loop, &l->retry);
}

static void hub_link_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hub_link_connect(w->data);
}

static void hub_link_connect(struct proc_hub_link *l)
{
	int fd = ipc_connect(l->name);
	if (fd < 0) {
		ev_timer_start(l->ch.loop, &l->retry);
		return;
	}
	ipc_chan_open(&l->ch, l->ch.loop, fd, hub_link_msg, hub_link_lost, l);
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_HELLO);
	ipc_put_u32(&b, IPC_VERSION);
	ipc_put_u32(&b, l->role);
	ipc_put_u32(&b, l->slot);
	ipc_put_u32(&b, (uint32_t)getpid());
	ipc_end(&b, m);
	ipc_chan_send(&l->ch, &b);
	buf_free(&b);
}

void proc_hub_link_start(struct proc_hub_link *l, struct ev_loop *loop, const char *name,
			 uint32_t role, uint32_t slot, ipc_msg_fn on_msg, void (*on_up)(void),
			 void (*on_lost)(void))
{
	*l = (struct proc_hub_link){ .name = name, .role = role, .slot = slot, .on_msg = on_msg,
				     .on_up = on_up, .on_lost = on_lost };
	l->ch.fd = -1;
	l->ch.loop = loop;
	ev_timer_init(&l->retry, hub_link_retry_cb, HUB_RETRY, 0);
	l->retry.data = l;
	hub_link_connect(l);
}
