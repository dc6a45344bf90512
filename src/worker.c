/* worker.c -- a worker process: it binds the client and admin listeners
 * itself (SO_REUSEPORT), owns its connections, keeps the link to the hub and
 * turns the hub's messages into deliveries and replies. */
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <jansson.h>

#include "conn.h"
#include "eio.h"
#include "log.h"
#include "room.h"
#include "session.h"
#include "sio.h"
#include "util.h"

#define STATS_INTERVAL 0.25
#define ACCEPT_PAUSE 0.1       /* seconds without accepting when out of descriptors */

struct worker worker;

struct pending_req {
	uint64_t conn_id;
	uint64_t tag;
	worker_reply_fn fn;
};

static ev_prepare flush_watcher;
static ev_timer stats_timer, stop_timer, accept_pause;
static ev_signal sig_term, sig_usr1;

/* ---- requests to the hub ------------------------------------------------------ */

int worker_hub_send(struct buf *b)
{
	if (!worker.hub.up) {
		buf_reset(b);
		return -1;
	}
	ipc_chan_send(&worker.hub.ch, b);
	return 0;
}

uint64_t worker_expect_reply(struct conn *c, uint64_t tag, worker_reply_fn fn)
{
	struct pending_req *p = xmalloc(sizeof(*p));
	p->conn_id = c ? c->id : 0;
	p->tag = tag;
	p->fn = fn;
	uint64_t id = ++worker.next_req;
	map_put_u64(&worker.pending, id, p);
	return id;
}

static void finish_request(uint64_t id, int status, const char *json, size_t len)
{
	struct pending_req *p = map_del_u64(&worker.pending, id);
	if (!p)
		return;
	struct conn *c = p->conn_id ? map_get_u64(&worker.conns, p->conn_id) : NULL;
	p->fn(c, p->tag, status, json, len);
	free(p);
}

/* ---- the hub link --------------------------------------------------------------- */

static void send_stats(void);

static void hub_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r)
{
	char room[ROOM_MAX + 1], epoch[STORE_EPOCH_LEN + 1];
	switch (type) {
	case IPC_ROOM_STATE: {
		ipc_get_str(r, room, sizeof(room));
		ipc_get_str(r, epoch, sizeof(epoch));
		int64_t seq = (int64_t)ipc_get_u64(r);
		if (ipc_reader_done(r))
			room_on_state(room, epoch, seq);
		return;
	}
	case IPC_DELIVER: {
		struct room_msg m;
		if (room_msg_decode(r, room, epoch, &m))
			room_on_deliver(room, &m);
		return;
	}
	case IPC_REPLY: {
		size_t len;
		uint64_t id = ipc_get_u64(r);
		int status = (int)ipc_get_u32(r);
		const char *json = ipc_get_bytes(r, &len);
		if (ipc_reader_done(r))
			finish_request(id, status, json, len);
		return;
	}
	case IPC_KICK: {
		char reason[124];
		uint64_t id = ipc_get_u64(r);
		int code = (int)ipc_get_u32(r);
		ipc_get_str(r, reason, sizeof(reason));
		struct conn *c = map_get_u64(&worker.conns, id);
		if (ipc_reader_done(r) && c)
			conn_ws_close(c, code, reason);
		else if (ipc_reader_done(r))
			sio_kick(id, reason);
		return;
	}
	case IPC_HUB_STATUS:
		worker.hubstat.connections = ipc_get_u64(r);
		worker.hubstat.db_writable = ipc_get_u8(r) != 0;
		worker.hubstat.at = mono_ms();
		return;
	default:
		log_warn("event=ipc_unexpected from=hub type=%u", type);
	}
}

static void hub_up(void)
{
	send_stats();
	room_rejoin_all();
	session_hub_back();
	sio_hub_back();
}

static void hub_lost(void)
{
	room_hub_lost();
	/* Everything waiting on the hub gets 503 now rather than never. */
	struct map_iter it = { 0 };
	struct map_entry *e;
	static const char unavailable[] = "{\"error\":{\"code\":\"unavailable\",\"message\":\"hub unavailable\"}}";
	while ((e = map_next(&worker.pending, &it))) {
		uint64_t id;
		memcpy(&id, e->key, sizeof(id));
		finish_request(id, 503, unavailable, sizeof(unavailable) - 1);
	}
}

/* ---- the master link -------------------------------------------------------------- */

static void master_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r)
{
	if (type == IPC_RELOAD)
		worker.cfg = proc_reload(worker.ctx, worker.cfg);
}

static void master_lost(struct ipc_chan *ch)
{
	/* Without a master nobody supervises us: leave at once. */
	_exit(0);
}

/* ---- listeners and lifecycle ------------------------------------------------------- */

static int listen_on(const char *addr)
{
	struct sockaddr_in sa;
	if (parse_hostport(addr, &sa) < 0)
		fatal("event=bad_address addr=%s", addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		fatal("event=socket_failed error=\"%s\"", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0)
		fatal("event=listen_failed addr=%s error=\"%s\"", addr, strerror(errno));
	return fd;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	if (conn_accept_all(w->fd, (enum conn_listener)(intptr_t)w->data) < 0) {
		/* Out of descriptors: the listener stays readable, so stop
		 * watching it for a moment rather than spin. */
		for (int i = 0; i < 2; i++)
			ev_io_stop(loop, &worker.lio[i]);
		ev_timer_start(loop, &accept_pause);
	}
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (worker.stopping)
		return;
	for (int i = 0; i < 2; i++)
		ev_io_start(loop, &worker.lio[i]);
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	sio_flush();
	eio_flush();
	conn_flush_all();
	if (worker.hub.ch.fd >= 0)
		ipc_chan_flush(&worker.hub.ch);
}

/* Reports this worker's figures to the hub: periodically, and at once when
 * the link comes up, so that the hub lists every connected worker. */
static void send_stats(void)
{
	if (!worker.hub.up)
		return;
	const struct worker_stats *s = &worker.stats;
	char json[512];
	int n = snprintf(json, sizeof(json),
			 "{\"slot\":%d,\"pid\":%d,\"connections\":%zu,\"rooms\":%zu,"
			 "\"accepted\":%llu,\"delivered\":%llu,\"slow_closed\":%llu,"
			 "\"rate_limited\":%llu,\"rejected\":%llu,\"handshakes\":%zu,"
			 "\"handshakes_evicted\":%llu}",
			 worker.slot, (int)getpid(), conn_count(), room_count(),
			 (unsigned long long)s->accepted, (unsigned long long)s->delivered,
			 (unsigned long long)s->slow_closed, (unsigned long long)s->rate_limited,
			 (unsigned long long)s->rejected, conn_handshakes(),
			 (unsigned long long)s->handshakes_evicted);
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_WORKER_STATS);
	ipc_put_str(&b, json, (size_t)n);
	ipc_end(&b, m);
	worker_hub_send(&b);
	buf_free(&b);
}

static void stats_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	send_stats();
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	int64_t elapsed = mono_ms() - (int64_t)(w->data ? (intptr_t)w->data : 0);
	if (conn_count() == 0 || elapsed > (int64_t)(worker.cfg->shutdown_timeout - 1) * 1000) {
		conn_flush_all();
		log_info("event=worker_stopped open=%zu", conn_count());
		proc_exit(0);
	}
}

static void sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	if (worker.stopping)
		return;
	worker.stopping = true;
	log_info("event=worker_stopping connections=%zu", conn_count());
	for (int i = 0; i < 2; i++) {
		ev_io_stop(loop, &worker.lio[i]);
		close(worker.lfd[i]);
	}
	eio_close_all("server shutting down");
	conn_close_all(WS_CLOSE_GOING_AWAY, "server shutting down");
	stop_timer.data = (void *)(intptr_t)mono_ms();
	ev_timer_init(&stop_timer, stop_cb, 0.05, 0.05);
	ev_timer_start(loop, &stop_timer);
}

static void sigusr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_reopen();
}

void worker_main(struct proc_ctx *ctx)
{
	char title[32];
	snprintf(title, sizeof(title), "worker %d", ctx->slot + 1);
	struct ev_loop *loop = proc_child_init(title);
	proc_expect_hello(ctx->master_fd);
	signal(SIGINT, SIG_IGN);     /* the master decides; a terminal's ^C reaches us all */
	signal(SIGHUP, SIG_IGN);

	worker.ctx = ctx;
	worker.cfg = ctx->cfg;
	worker.loop = loop;
	worker.slot = ctx->slot;
	worker.started_ms = now_ms();
	/* Connection ids carry the worker slot and start time, so they stay unique
	 * across restarts and tell which worker holds a connection. */
	worker.next_conn_id = ((uint64_t)(ctx->slot + 1) << WORKER_ID_SLOT_SHIFT) |
			      (((uint64_t)now_ms() & 0xfffff) << 24);

	const char *addrs[2] = { worker.cfg->listen, worker.cfg->admin_listen };
	for (int i = 0; i < 2; i++) {
		worker.lfd[i] = listen_on(addrs[i]);
		ev_io_init(&worker.lio[i], accept_cb, worker.lfd[i], EV_READ);
		worker.lio[i].data = (void *)(intptr_t)i;
		ev_io_start(loop, &worker.lio[i]);
	}
	ev_timer_init(&accept_pause, accept_resume_cb, ACCEPT_PAUSE, 0);
	if (!worker.cfg->node_edge) {    /* an edge has no database */
		char err[256];
		worker.reader = store_open(worker.cfg->database, true, false, err, sizeof(err));
		if (!worker.reader)
			fatal("event=database_failed mode=read_only path=%s error=\"%s\"",
			      worker.cfg->database, err);
	}
	room_init();
	eio_init();
	sio_init();

	ipc_chan_open(&worker.master, loop, ctx->master_fd, master_msg, master_lost, NULL);
	proc_hub_link_start(&worker.hub, loop, ctx->hub_name, IPC_ROLE_WORKER, (uint32_t)ctx->slot,
			    hub_msg, hub_up, hub_lost);

	ev_prepare_init(&flush_watcher, flush_cb);
	ev_prepare_start(loop, &flush_watcher);
	ev_timer_init(&stats_timer, stats_cb, STATS_INTERVAL, STATS_INTERVAL);
	ev_timer_start(loop, &stats_timer);
	ev_signal_init(&sig_term, sigterm_cb, SIGTERM);
	ev_signal_start(loop, &sig_term);
	ev_signal_init(&sig_usr1, sigusr1_cb, SIGUSR1);
	ev_signal_start(loop, &sig_usr1);

	log_info("event=worker_ready listen=%s admin_listen=%s", worker.cfg->listen,
		 worker.cfg->admin_listen);
	ev_run(loop, 0);
	_exit(0);
}
