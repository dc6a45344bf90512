/* hub.c -- the hub process: the only SQLite writer. It runs one libev loop
 * with a link to every worker and to the courier, dispatches their messages
 * to the hub's modules (see hub.h), answers the API calls that need a view
 * of every worker, and commits at the end of each loop turn. On an edge it is
 * the relay: the same links, registry and stats, with relay.c in place of the
 * database. */
#include "hub.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "pipeline.h"
#include "proto.h"
#include "publisher.h"
#include "registry.h"
#include "relay.h"
#include "retention.h"
#include "siostate.h"
#include "util.h"
#include "workflow.h"

#define STATUS_INTERVAL 0.25
#define HEADS_MAX 10000         /* rooms one heads request may ask about */

struct hub hub;

static struct {
	struct link *dead_links;   /* closed this loop turn, freed after it */
	struct hub_room **uncommitted;  /* rooms created in the open transaction */
	size_t nuncommitted, cap;
	ev_io accept_io;
	ev_prepare commit_watcher;
	ev_timer status_timer;
	ev_signal sig_term, sig_usr1;
	struct ipc_chan master;
	/* in a cluster: the heartbeat, and the deliveries per second it measures */
	ev_timer beat_timer;
	int64_t beat_at;            /* mono ms */
	json_int_t delivered, delivery_rate;
} h;

/* ---- rooms -------------------------------------------------------------------- */

struct hub_room *hub_room_find(const char *name)
{
	return map_get(&hub.rooms, name, strlen(name));
}

/* Loads a room from the database, making its row when create is set and it
 * has none; NULL when it has none (or the database failed, logged). */
static struct hub_room *room_load(const char *name, bool create)
{
	struct store_room sr;
	int found = store_room_get(hub.store, name, false, &sr);
	bool made = found == 0 && create;
	if (made)
		found = store_room_get(hub.store, name, true, &sr);
	if (found < 0)
		log_error("event=room_load_failed room=%s error=\"%s\"", name, store_errmsg(hub.store));
	if (found != 1)
		return NULL;
	struct hub_room *r = xcalloc(1, sizeof(*r));
	r->name = xstrdup(name);
	r->id = sr.id;
	memcpy(r->epoch, sr.epoch, sizeof(r->epoch));
	r->last_seq = sr.last_seq;
	pipeline_room_init(r);
	map_put(&hub.rooms, name, strlen(name), r);
	if (made) {
		/* The hub keeps nothing of a room before its first message, not even
		 * which workers subscribed to it: they all hear of its first
		 * messages, and those without subscribers say so (ROOM_LEAVE). */
		for (int s = 0; s < HUB_MAX_LINKS; s++)
			if (hub.links[s])
				r->workers |= 1ULL << s;
	}
	if (made && hub.in_txn) {
		/* Its row may be rolled back, and its id reused by the database. */
		r->uncommitted = true;
		xgrow(&h.uncommitted, &h.cap, h.nuncommitted + 1, sizeof(*h.uncommitted));
		h.uncommitted[h.nuncommitted++] = r;
	}
	return r;
}

struct hub_room *hub_room_get(const char *name)
{
	struct hub_room *r = hub_room_find(name);
	return r ? r : room_load(name, true);
}

void hub_room_free(struct hub_room *r)
{
	ev_timer_stop(hub.loop, &r->throttle_timer);
	map_del(&hub.rooms, r->name, strlen(r->name));
	free(r->name);
	free(r);
}

void hub_rooms_commit(void)
{
	for (size_t i = 0; i < h.nuncommitted; i++)
		h.uncommitted[i]->uncommitted = false;
	h.nuncommitted = 0;
}

void hub_rooms_rollback(void)
{
	/* Nothing else can hold them: they were made during the transaction. */
	for (size_t i = 0; i < h.nuncommitted; i++)
		hub_room_free(h.uncommitted[i]);
	h.nuncommitted = 0;
}

/* A room without a row has had no message: no epoch yet, seq 0. */
static void send_room_state(struct link *l, const char *name, const struct hub_room *r)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_ROOM_STATE);
	ipc_put_cstr(&b, name);
	ipc_put_cstr(&b, r ? r->epoch : "");
	ipc_put_u64(&b, r ? (uint64_t)r->last_seq : 0);
	ipc_end(&b, m);
	ipc_chan_send(&l->ch, &b);
	buf_free(&b);
}

/* ---- replies ------------------------------------------------------------------ */

void hub_reply(struct link *l, uint64_t req, int status, const char *json, size_t len)
{
	if (!l || l->ch.fd < 0)
		return;
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_REPLY);
	ipc_put_u64(&b, req);
	ipc_put_u32(&b, (uint32_t)status);
	ipc_put_str(&b, json, len);
	ipc_end(&b, m);
	ipc_chan_send(&l->ch, &b);
	buf_free(&b);
}

void hub_reply_error(struct link *l, uint64_t req, int status, const char *code,
		     const char *message)
{
	struct buf b = { 0 };
	buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", code);
	buf_append_json_str(&b, message, strlen(message));
	buf_appends(&b, "}}");
	hub_reply(l, req, status, b.data, b.len);
	buf_free(&b);
}

void hub_reply_json(struct link *l, uint64_t req, int status, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	hub_reply(l, req, status, s, strlen(s));
	free(s);
	json_decref(v);
}

/* ---- API requests -------------------------------------------------------------- */

static json_t *room_json(const struct hub_room *r)
{
	int64_t first = store_first_seq(hub.store, r->name);
	return json_pack("{s:s, s:s, s:I, s:I, s:I}", "room", r->name, "epoch", r->epoch,
			 "seq", (json_int_t)r->last_seq, "first_seq", (json_int_t)MAX(first, 0),
			 "subscribers", (json_int_t)registry_subscribers(r->name));
}

struct rooms_ctx {
	json_t *arr;
	const char *prefix;
};

static int rooms_each(int64_t id, const char *name, int64_t last_seq, void *arg)
{
	struct rooms_ctx *rc = arg;
	if (rc->prefix && strncmp(name, rc->prefix, strlen(rc->prefix)) != 0)
		return 0;
	json_array_append_new(rc->arr, json_pack("{s:s, s:I, s:I}", "room", name, "seq",
						 (json_int_t)last_seq, "subscribers",
						 (json_int_t)registry_subscribers(name)));
	return json_array_size(rc->arr) >= 10000;
}

/* One of the workers' figures, summed over them. */
static json_int_t workers_sum(const char *figure)
{
	json_int_t sum = 0;
	for (int s = 0; s < HUB_MAX_LINKS; s++)
		if (hub.links[s] && hub.links[s]->stats)
			sum += json_integer_value(json_object_get(hub.links[s]->stats, figure));
	return sum;
}

/* This node's entry in the cluster view. */
static json_t *node_figures(void)
{
	bool link = hub.edge ? relay_link_up() : hub.redis.up;
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:I}",
			 "role", hub.edge ? "edge" : "primary",
			 "api", hub.ctx->cfg->node_api_url,
			 "connections", (json_int_t)registry_count(),
			 "rooms", (json_int_t)registry_rooms(),
			 "users", (json_int_t)registry_users(),
			 "deliveries_per_sec", h.delivery_rate,
			 "link", link ? "up" : "down",
			 "lag", hub.edge ? (json_int_t)relay_lag() : (json_int_t)publisher_lag(),
			 "updated_ms", (json_int_t)now_ms());
}

static json_t *stats_json(void)
{
	json_t *workers = json_array();
	for (int s = 0; s < HUB_MAX_LINKS; s++)
		if (hub.links[s] && hub.links[s]->stats)
			json_array_append(workers, hub.links[s]->stats);
	json_int_t delivered = workers_sum("delivered"), slow = workers_sum("slow_closed");
	json_int_t limited = workers_sum("rate_limited"), handshakes = workers_sum("handshakes");
	json_int_t evicted = workers_sum("handshakes_evicted");
	json_t *st = json_pack("{s:I, s:I, s:o, s:{s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:I}",
			       "rooms", (json_int_t)registry_rooms(),
			       "rooms_loaded", (json_int_t)hub.rooms.count,
			       "workers", workers,
			       "handshakes", "open", handshakes, "evicted", evicted,
			       "messages", "published", (json_int_t)hub.published,
			       "delivered", delivered, "duplicates", (json_int_t)hub.duplicates,
			       "slow_consumers_closed", slow, "rate_limited", limited,
			       "commits", (json_int_t)hub.commits,
			       "uptime", (json_int_t)((now_ms() - hub.started_ms) / 1000));
	registry_stats(st);
	if (hub.edge) {
		relay_stats(st);
	} else {
		outbox_stats(st);
		workflow_stats(st);
		publisher_stats(st);
	}
	if (hub.ctx->cfg->cluster_redis) {
		json_t *fig = node_figures();
		json_object_set_new(st, "cluster", cluster_view_json(hub.ctx->cfg->node_name, fig));
		json_decref(fig);
	}
	return st;
}

/* Each room's epoch and last seq, for edges: from memory when it is loaded,
 * else from the database. A room never published has epoch "" and seq 0,
 * and asking leaves no trace of it. */
static void heads_reply(struct link *l, uint64_t req, json_t *rooms)
{
	json_t *heads = json_object(), *v;
	size_t i;
	if (!json_is_array(rooms) || json_array_size(rooms) > HEADS_MAX)
		goto bad;
	json_array_foreach(rooms, i, v) {
		const char *name = json_string_value(v);
		if (!name)
			goto bad;
		struct hub_room *r = hub_room_find(name);
		struct store_room sr = { .epoch = "" };
		if (!r && store_room_get(hub.store, name, false, &sr) < 0) {
			hub_reply_error(l, req, 503, "unavailable", "database unavailable");
			goto fail;
		}
		const char *epoch = r ? r->epoch : sr.epoch;
		int64_t seq = r ? r->last_seq : sr.last_seq;
		json_object_set_new(heads, name, json_pack("{s:s, s:I}", "epoch", epoch, "seq",
							   (json_int_t)seq));
	}
	hub_reply_json(l, req, 200, json_pack("{s:o}", "heads", heads));
	return;
bad:
	hub_reply_error(l, req, 400, "bad_request", "rooms: an array of at most 10000 names");
fail:
	json_decref(heads);
}

static bool hub_request(struct link *l, uint64_t req, const char *op, json_t *q)
{
	const char *room = json_string_value(json_object_get(q, "room"));
	if (strcmp(op, "stats") == 0) {
		hub_reply_json(l, req, 200, stats_json());
	} else if (hub.edge) {
		return false;              /* rooms are the primary's */
	} else if (strcmp(op, "heads") == 0) {
		heads_reply(l, req, json_object_get(q, "rooms"));
	} else if (strcmp(op, "rooms") == 0) {
		struct rooms_ctx rc = { json_array(),
					json_string_value(json_object_get(q, "prefix")) };
		store_rooms_each(hub.store, rooms_each, &rc);
		hub_reply_json(l, req, 200, json_pack("{s:o}", "rooms", rc.arr));
	} else if (strcmp(op, "room") == 0 && room) {
		struct hub_room *hr = hub_room_find(room);
		if (!hr)
			hr = room_load(room, false);
		if (hr)
			hub_reply_json(l, req, 200, room_json(hr));
		else if (registry_subscribers(room))     /* subscribed, no message yet */
			hub_reply_json(l, req, 200, json_pack("{s:s, s:s, s:i, s:i, s:I}", "room", room,
				"epoch", "", "seq", 0, "first_seq", 0,
				"subscribers", (json_int_t)registry_subscribers(room)));
		else
			hub_reply_error(l, req, 404, "not_found", "no such room");
	} else {
		return false;
	}
	return true;
}

static hub_request_fn *const request_handlers[] = {
	hub_request, registry_request, notify_request, outbox_request, workflow_request,
	siostate_request,
};
/* An edge answers what its own processes know; the relay forwards the rest. */
static hub_request_fn *const edge_request_handlers[] = {
	hub_request, registry_request, relay_request,
};

static void on_request(struct link *l, struct ipc_reader *r)
{
	uint64_t req = ipc_get_u64(r);
	size_t len;
	const char *text = ipc_get_bytes(r, &len);
	json_t *q = ipc_reader_done(r) ? json_loadb(text, len, 0, NULL) : NULL;
	const char *op = json_string_value(json_object_get(q, "op"));
	bool done = false;
	hub_request_fn *const *handlers = hub.edge ? edge_request_handlers : request_handlers;
	size_t n = hub.edge ? ARRAY_SIZE(edge_request_handlers) : ARRAY_SIZE(request_handlers);
	for (size_t i = 0; op && !done && i < n; i++)
		done = handlers[i](l, req, op, q);
	if (!op)
		hub_reply_error(l, req, 400, "bad_request", "malformed request");
	else if (!done)
		hub_reply_error(l, req, 400, "bad_request", "unknown operation");
	json_decref(q);
}

/* ---- links to workers and the courier ------------------------------------------ */

static void link_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r);

static void link_close(struct ipc_chan *ch)
{
	struct link *l = ch->data;
	if (l->role == IPC_ROLE_WORKER && hub.links[l->slot] == l) {
		hub.links[l->slot] = NULL;
		log_warn("event=worker_lost slot=%d", l->slot + 1);
		/* Its connections and room interests are gone with it. */
		uint64_t bit = 1ULL << l->slot;
		struct map_iter it = { 0 };
		struct map_entry *e;
		while ((e = map_next(&hub.rooms, &it)))
			((struct hub_room *)e->val)->workers &= ~bit;
		registry_link_lost(l);
		if (hub.edge)
			relay_link_lost(l);
	}
	if (l->role == IPC_ROLE_COURIER && hub.courier == l) {
		hub.courier = NULL;
		log_warn("event=courier_lost");
	}
	/* Requests still in flight are committed, but nobody waits for the answer. */
	pipeline_link_lost(l);
	workflow_link_lost(l);
	json_decref(l->stats);
	l->stats = NULL;
	/* Freed after the loop turn: the channel's read callback may still run. */
	l->dead_next = h.dead_links;
	h.dead_links = l;
}

static void drop_link(struct link *l)
{
	ipc_chan_close(&l->ch);
	link_close(&l->ch);
}

/* A worker names its slot; the courier is one. A newcomer in a taken place
 * is a restarted process: the old link is stale. */
static void on_hello(struct link *l, struct ipc_reader *r)
{
	uint32_t version = ipc_get_u32(r), role = ipc_get_u32(r), slot = ipc_get_u32(r);
	uint32_t pid = ipc_get_u32(r);
	bool worker = role == IPC_ROLE_WORKER && slot < HUB_MAX_LINKS;
	if (!ipc_reader_done(r) || version != IPC_VERSION || l->role ||
	    (!worker && role != IPC_ROLE_COURIER)) {
		log_error("event=bad_hello version=%u want=%u role=%u slot=%u", version,
			  IPC_VERSION, role, slot);
		drop_link(l);
		return;
	}
	struct link **place = worker ? &hub.links[slot] : &hub.courier;
	if (*place)
		drop_link(*place);
	l->role = (int)role;
	l->slot = worker ? (int)slot : -1;
	*place = l;
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_HELLO);
	ipc_put_u32(&b, IPC_VERSION);
	ipc_put_u32(&b, IPC_ROLE_HUB);
	ipc_put_u32(&b, 0);
	ipc_put_u32(&b, (uint32_t)getpid());
	ipc_end(&b, m);
	ipc_chan_send(&l->ch, &b);
	buf_free(&b);
	if (worker)
		log_info("event=worker_connected slot=%u pid=%u", slot + 1, pid);
	else
		outbox_courier_connected(pid);
}

/* The peer's latest figures, shown by the stats request. */
static void link_stats(struct link *l, struct ipc_reader *r)
{
	size_t len;
	const char *json = ipc_get_bytes(r, &len);
	json_t *v = ipc_reader_done(r) ? json_loadb(json, len, 0, NULL) : NULL;
	if (v) {
		json_decref(l->stats);
		l->stats = v;
	}
}

static void courier_msg(struct link *l, uint16_t type, struct ipc_reader *r)
{
	if (type == IPC_WORKER_STATS)
		link_stats(l, r);
	else if (type == IPC_WEBHOOK_RESULT)
		outbox_result(r);
	else
		log_warn("event=ipc_unexpected from=courier type=%u", type);
}

static void link_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r)
{
	struct link *l = ch->data;
	char room[ROOM_MAX + 1];
	if (type == IPC_HELLO) {
		on_hello(l, r);
		return;
	}
	if (!l->role) {
		log_error("event=message_before_hello type=%u", type);
		drop_link(l);
		return;
	}
	if (l->role == IPC_ROLE_COURIER) {
		courier_msg(l, type, r);
		return;
	}
	if (hub.edge && relay_msg(l, type, r))
		return;
	switch (type) {
	case IPC_ROOM_JOIN: {
		ipc_get_str(r, room, sizeof(room));
		if (!ipc_reader_done(r))
			return;
		struct hub_room *hr = hub_room_find(room);
		if (!hr)
			hr = room_load(room, false);
		if (hr)
			hr->workers |= 1ULL << l->slot;
		send_room_state(l, room, hr);
		return;
	}
	case IPC_ROOM_LEAVE: {
		ipc_get_str(r, room, sizeof(room));
		struct hub_room *hr = hub_room_find(room);
		if (ipc_reader_done(r) && hr)
			hr->workers &= ~(1ULL << l->slot);
		return;
	}
	case IPC_PUBLISH:
		pipeline_publish(l, r);
		return;
	case IPC_CONN_OPEN:
		registry_open(l, r);
		return;
	case IPC_CONN_CLOSE:
		registry_close(r);
		return;
	case IPC_CONN_ROOM:
		registry_room(r);
		return;
	case IPC_WORKER_STATS:
		link_stats(l, r);
		return;
	case IPC_REQUEST:
		on_request(l, r);
		return;
	default:
		log_warn("event=ipc_unexpected from=worker type=%u", type);
	}
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (!ipc_peer_trusted(fd)) {
			log_warn("event=untrusted_peer");
			close(fd);
			continue;
		}
		struct link *l = xcalloc(1, sizeof(*l));
		l->slot = -1;
		ipc_chan_open(&l->ch, loop, fd, link_msg, link_close, l);
	}
}

/* ---- the loop ------------------------------------------------------------------ */

/* Commits what the loop turn gathered and sends what that produced. */
static void commit_and_flush(void)
{
	pipeline_commit();
	for (int s = 0; s < HUB_MAX_LINKS; s++)
		if (hub.links[s])
			ipc_chan_flush(&hub.links[s]->ch);
	if (hub.courier)
		ipc_chan_flush(&hub.courier->ch);
}

static void commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	commit_and_flush();
	while (h.dead_links) {
		struct link *l = h.dead_links;
		h.dead_links = l->dead_next;
		free(l);
	}
}

static void status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	static int ticks;
	if (hub.edge) {
		hub.db_writable = relay_ready();
	} else {
		if (ticks++ % 4 == 0)
			hub.db_writable = store_writable(hub.store);
		hub.gpos = store_max_gpos(hub.store);
		if (hub.gpos < 0)
			fatal("event=database_failed error=\"%s\"", store_errmsg(hub.store));
	}
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_HUB_STATUS);
	ipc_put_u64(&b, registry_count());
	ipc_put_u8(&b, hub.db_writable);
	ipc_end(&b, m);
	struct sbuf *frame = sbuf_from(b.data, b.len);
	buf_free(&b);
	for (int s = 0; s < HUB_MAX_LINKS; s++)
		if (hub.links[s])
			ipc_chan_send_shared(&hub.links[s]->ch, frame);
	sbuf_unref(frame);
}

/* ---- the cluster (docs/scaling.md) --------------------------------------------- */

/* Refreshes this node's entry and the primary's address, and reads the view
 * back for the stats. */
static void beat(void)
{
	json_int_t delivered = workers_sum("delivered");
	int64_t now = mono_ms();
	/* A restarted worker counts from 0 again. */
	if (h.beat_at)
		h.delivery_rate = MAX(delivered - h.delivered, 0) * 1000 / MAX(now - h.beat_at, 1);
	h.delivered = delivered;
	h.beat_at = now;
	json_t *fig = node_figures();
	cluster_node_beat(&hub.redis, hub.ctx->cfg->node_name, fig);
	json_decref(fig);
	if (!hub.edge)
		cluster_primary_announce(&hub.redis, hub.ctx->cfg->node_api_url);
	cluster_view_refresh(&hub.redis, hub.ctx->cfg->node_name);
}

static void beat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	beat();
}

static void redis_up(struct cluster_link *l)
{
	if (hub.edge)
		relay_redis_up();
	else
		publisher_resend();
	registry_cluster_users();
	beat();
}

/* The cluster's identity and address are the start-up configuration's (a
 * reload does not change them). */
static void cluster_start(void)
{
	cluster_link_open(&hub.redis, hub.loop, hub.ctx->cfg, hub.edge ? "relay" : "hub", redis_up,
			  NULL, NULL);
	if (!hub.edge)
		publisher_start();
	ev_timer_init(&h.beat_timer, beat_cb, CLUSTER_BEAT, CLUSTER_BEAT);
	ev_timer_start(hub.loop, &h.beat_timer);
}

static void shutdown_hub(void)
{
	commit_and_flush();
	cluster_link_flush(&hub.redis);
	cluster_link_close(&hub.redis);
	if (hub.edge)
		relay_stop();
	else
		store_close(hub.store);
	log_info("event=hub_stopped published=%llu", (unsigned long long)hub.published);
	proc_exit(0);
}

static void sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	shutdown_hub();
}

static void sigusr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_reopen();
}

static void master_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r)
{
	if (type != IPC_RELOAD)
		return;
	hub.cfg = proc_reload(hub.ctx, hub.cfg);
	if (!hub.edge && store_limit_size(hub.store, hub.cfg->max_database_size) < 0)
		log_error("event=reload_failed error=\"%s\"", store_errmsg(hub.store));
}

static void master_lost(struct ipc_chan *ch)
{
	shutdown_hub();
}

static void open_database(const struct config *cfg)
{
	char err[256];
	hub.store = store_open(cfg->database, false, cfg->durability_full, err, sizeof(err));
	if (!hub.store)
		fatal("event=database_failed path=%s error=\"%s\"", cfg->database, err);
	if (store_limit_size(hub.store, cfg->max_database_size) < 0)
		fatal("event=database_failed error=\"%s\"", store_errmsg(hub.store));
	hub.db_writable = store_writable(hub.store);
}

void hub_main(struct proc_ctx *ctx)
{
	hub.edge = ctx->cfg->node_edge;
	struct ev_loop *loop = proc_child_init(hub.edge ? "relay" : "hub");
	proc_expect_hello(ctx->master_fd);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	hub.ctx = ctx;
	hub.cfg = ctx->cfg;
	hub.loop = loop;
	hub.started_ms = now_ms();
	if (!hub.edge)
		open_database(ctx->cfg);

	ipc_chan_open(&h.master, loop, ctx->master_fd, master_msg, master_lost, NULL);
	ev_io_init(&h.accept_io, accept_cb, ctx->hub_listen_fd, EV_READ);
	ev_io_start(loop, &h.accept_io);
	ev_prepare_init(&h.commit_watcher, commit_cb);
	ev_prepare_start(loop, &h.commit_watcher);
	ev_timer_init(&h.status_timer, status_cb, 0, STATUS_INTERVAL);
	ev_timer_start(loop, &h.status_timer);
	if (hub.edge) {
		relay_start(ctx->cfg);
	} else {
		retention_start();
		outbox_start();
	}
	if (ctx->cfg->cluster_redis)
		cluster_start();
	ev_signal_init(&h.sig_term, sigterm_cb, SIGTERM);
	ev_signal_start(loop, &h.sig_term);
	ev_signal_init(&h.sig_usr1, sigusr1_cb, SIGUSR1);
	ev_signal_start(loop, &h.sig_usr1);
	if (!hub.edge)
		log_info("event=hub_ready database=%s durability=%s", ctx->cfg->database,
			 ctx->cfg->durability_full ? "full" : "normal");
	ev_run(loop, 0);
	_exit(0);
}
