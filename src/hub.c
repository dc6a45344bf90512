/* hub.c -- the hub process: the only SQLite writer. It sequences and commits
 * publishes (group commit: one transaction per loop turn), then routes each
 * message once to every worker with subscribers in its room, and answers the
 * API calls that need a view of all workers (connections, rooms, stats). */
#include "hub.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ev.h>
#include <jansson.h>

#include "acl.h"
#include "ipc.h"
#include "log.h"
#include "map.h"
#include "proto.h"
#include "store.h"
#include "util.h"
#include "ws.h"

#define MAX_LINKS 64
#define STATUS_INTERVAL 0.25
#define EVICT_INTERVAL 5.0      /* seconds between sweeps of idle rooms */
#define PRUNE_INTERVAL 1.0      /* seconds between pruning ticks... */
#define PRUNE_BEHIND 0.01       /* ...and while there is a backlog */
#define PRUNE_STEP 500          /* rows deleted per room per visit */
#define PRUNE_BUDGET 5000       /* messages (and keys) deleted per tick */
#define PRUNE_ROOMS 256         /* rooms the walk visits per tick */
#define PRUNE_HOT 16            /* rooms with a backlog, visited every tick */

/* A worker's connection to the hub. */
struct link {
	struct ipc_chan ch;
	int slot;                  /* -1 until hello */
	json_t *stats;             /* the worker's latest figures */
	struct link *dead_next;
};

static struct link *dead_links;

/* A room as the hub sees it: sequence state and which workers want it.
 * It is loaded when something needs it and freed when idle (evict_cb);
 * the database holds its state in between. */
struct hub_room {
	char *name;
	int64_t id;
	char epoch[STORE_EPOCH_LEN + 1];
	int64_t last_seq;
	uint64_t workers;          /* bit per worker slot */
	size_t subscribers;        /* connections subscribed, over all workers */
	size_t pubs;               /* publishes in flight that name it */
	/* throttle: publishes inside the window wait; only the newest is kept */
	int64_t window_end;        /* mono ms */
	struct pub *held;
	ev_timer throttle_timer;
	bool prune_hot;            /* on hub.prune_hot */
};

enum pub_state {
	PUB_NEW,                   /* not yet placed */
	PUB_RELEASED,              /* its throttle window ended: store now */
	PUB_HELD,                  /* waiting in a throttle window */
	PUB_STORED,                /* sequenced in the open transaction */
	PUB_DONE,                  /* committed and routed, or settled otherwise */
};

struct pub_room {
	struct hub_room *room;
	enum pub_state state;
	int64_t seq;               /* 0 when not stored (superseded) */
	int64_t old_seq;           /* to undo a failed commit */
	bool duplicate;            /* idempotency key seen: seq is the original */
	bool superseded;           /* a newer publish won the throttle window */
};

/* One publish request, for one or many rooms. */
struct pub {
	struct link *from;         /* NULL when its worker went away */
	uint64_t req;
	char *event;
	char *data;
	size_t data_len;
	char *idem;                /* NULL when none */
	bool from_client;
	bool queued;               /* on the batch list */
	bool placing;              /* has rooms to place in the current batch */
	size_t nrooms;
	struct pub_room *rooms;
	size_t held;               /* rooms in PUB_HELD */
	struct pub *next;
};

/* A client connection, as reported by its worker. */
struct hub_conn {
	uint64_t id;
	int slot;
	char *user;                /* NULL when anonymous */
	char addr[INET_ADDRSTRLEN];
	int64_t connected_at;
	struct hub_room **rooms;   /* each counted in its room's subscribers */
	size_t nrooms, cap;
};

static struct {
	struct proc_ctx *ctx;
	struct config *cfg;
	struct ev_loop *loop;
	struct store *store;
	int64_t started_ms;
	bool db_writable;
	struct link *links[MAX_LINKS];     /* by slot */
	struct map rooms;                  /* name -> hub_room */
	struct map conns;                  /* id -> hub_conn */
	struct map counts;                 /* see count_add */
	struct pub *batch, **batch_tail;   /* arrived this loop turn */
	uint64_t published;                /* messages stored */
	uint64_t duplicates;
	uint64_t commits;
	ev_io accept_io;
	ev_prepare commit_watcher;
	ev_timer status_timer, prune_timer, evict_timer;
	int64_t prune_cursor;       /* id of the last room the pruning walk visited */
	struct hub_room *prune_hot[PRUNE_HOT];  /* loaded rooms with a backlog */
	size_t nprune_hot;
	ev_signal sig_term, sig_usr1;
	struct ipc_chan master;
} hub;

static void pub_free(struct pub *p)
{
	for (size_t i = 0; i < p->nrooms; i++)
		p->rooms[i].room->pubs--;
	free(p->event);
	free(p->data);
	free(p->idem);
	free(p->rooms);
	free(p);
}

/* ---- rooms -------------------------------------------------------------------- */

static void throttle_cb(struct ev_loop *loop, ev_timer *w, int revents);

static struct hub_room *room_get(const char *name)
{
	struct hub_room *r = map_get(&hub.rooms, name, strlen(name));
	if (r)
		return r;
	struct store_room sr;
	if (store_room_get(hub.store, name, true, &sr) != 1) {
		log_error("event=room_create_failed room=%s error=\"%s\"", name,
			  store_errmsg(hub.store));
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->name = xstrdup(name);
	r->id = sr.id;
	memcpy(r->epoch, sr.epoch, sizeof(r->epoch));
	r->last_seq = sr.last_seq;
	ev_init(&r->throttle_timer, throttle_cb);
	r->throttle_timer.data = r;
	map_put(&hub.rooms, name, strlen(name), r);
	return r;
}

static void send_room_state(struct link *l, struct hub_room *r)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_ROOM_STATE);
	ipc_put_cstr(&b, r->name);
	ipc_put_cstr(&b, r->epoch);
	ipc_put_u64(&b, (uint64_t)r->last_seq);
	ipc_end(&b, m);
	ipc_chan_send(&l->ch, &b);
	buf_free(&b);
}

/* ---- publishing ----------------------------------------------------------------- */

static void reply(struct link *l, uint64_t req, int status, const char *json, size_t len)
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

static void reply_error(struct link *l, uint64_t req, int status, const char *code,
			const char *message)
{
	struct buf b = { 0 };
	buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", code);
	buf_append_json_str(&b, message, strlen(message));
	buf_appends(&b, "}}");
	reply(l, req, status, b.data, b.len);
	buf_free(&b);
}

static void append_result(struct buf *b, const struct pub_room *pr)
{
	buf_appends(b, "{\"room\":");
	buf_append_json_str(b, pr->room->name, strlen(pr->room->name));
	if (pr->superseded)
		buf_appends(b, ",\"seq\":null,\"superseded\":true");
	else
		buf_printf(b, ",\"seq\":%lld", (long long)pr->seq);
	buf_printf(b, ",\"epoch\":\"%s\"", pr->room->epoch);
	if (pr->duplicate)
		buf_appends(b, ",\"duplicate\":true");
	buf_appends(b, "}");
}

/* Answers a publish whose rooms are all settled: {room,seq,epoch} for one
 * room, {"results":[...]} for many. */
static void pub_answer(struct pub *p)
{
	struct buf b = { 0 };
	if (p->nrooms == 1) {
		append_result(&b, &p->rooms[0]);
	} else {
		buf_appends(&b, "{\"results\":[");
		for (size_t i = 0; i < p->nrooms; i++) {
			if (i)
				buf_appends(&b, ",");
			append_result(&b, &p->rooms[i]);
		}
		buf_appends(&b, "]}");
	}
	reply(p->from, p->req, 200, b.data, b.len);
	buf_free(&b);
}

/* Sends one committed message to every interested worker: the frame is
 * encoded once and the same bytes are queued on each worker's channel. */
static void route(struct hub_room *r, int64_t seq, const char *event, const char *data,
		  size_t data_len, const char *ts)
{
	if (!r->workers)
		return;
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_DELIVER);
	ipc_put_cstr(&b, r->name);
	ipc_put_u64(&b, (uint64_t)seq);
	size_t len_at = b.len;
	ipc_put_u32(&b, 0);
	size_t start = b.len;
	proto_event(&b, r->name, seq, r->epoch, event, data, data_len, ts);
	uint32_t plen = (uint32_t)(b.len - start);
	memcpy(b.data + len_at, &plen, 4);
	ipc_end(&b, m);
	struct sbuf *frame = sbuf_from(b.data, b.len);
	buf_free(&b);
	for (int s = 0; s < MAX_LINKS; s++)
		if ((r->workers >> s & 1) && hub.links[s])
			ipc_chan_send_shared(&hub.links[s]->ch, frame);
	sbuf_unref(frame);
}

static void batch_add(struct pub *p)
{
	if (p->queued)
		return;
	p->queued = true;
	p->next = NULL;
	*hub.batch_tail = p;
	hub.batch_tail = &p->next;
}

/* Decides, for one room of a publish, whether it is answered as a duplicate,
 * held by the room's throttle window, or sequenced in this transaction.
 * Returns -1 when the database could not tell. */
static int pub_place(struct pub *p, struct pub_room *pr, int64_t now, int64_t mono)
{
	struct hub_room *r = pr->room;
	if (p->idem) {
		int found = store_idem_find(hub.store, r->id, p->idem, now, &pr->seq);
		if (found < 0)
			return -1;
		if (found) {
			pr->duplicate = true;
			pr->state = PUB_DONE;
			hub.duplicates++;
			return 0;
		}
	}
	const struct ns_config *ns = config_namespace(hub.cfg, r->name);
	int throttle = ns ? ns->throttle_ms : 0;
	if (throttle > 0 && pr->state == PUB_NEW && mono < r->window_end) {
		if (r->held) {
			/* The newest wins: the one waiting is answered as superseded. */
			struct pub *old = r->held;
			for (size_t i = 0; i < old->nrooms; i++) {
				if (old->rooms[i].room == r && old->rooms[i].state == PUB_HELD) {
					old->rooms[i].state = PUB_DONE;
					old->rooms[i].superseded = true;
					old->held--;
				}
			}
			if (old->held == 0)
				batch_add(old);     /* to be answered after this commit */
		}
		r->held = p;
		p->held++;
		pr->state = PUB_HELD;
		if (!ev_is_active(&r->throttle_timer)) {
			ev_timer_set(&r->throttle_timer, (double)(r->window_end - mono) / 1000.0, 0);
			ev_timer_start(hub.loop, &r->throttle_timer);
		}
		return 0;
	}
	if (throttle > 0)
		r->window_end = mono + throttle;
	pr->old_seq = r->last_seq;
	pr->seq = ++r->last_seq;
	pr->state = PUB_STORED;
	return 0;
}

static bool pub_settled(const struct pub *p)
{
	for (size_t i = 0; i < p->nrooms; i++)
		if (p->rooms[i].state != PUB_DONE)
			return false;
	return true;
}

/* Group commit: everything that arrived in this loop turn, one transaction;
 * nothing is delivered or acknowledged before the commit succeeded. When it
 * fails, every publish that had rooms to place in it is answered 503 (a
 * duplicate found in this batch may point at a rolled-back original) and
 * each room's seq goes back to what it was before the batch. */
static void commit_batch(void)
{
	struct pub *list = hub.batch;
	hub.batch = NULL;
	hub.batch_tail = &hub.batch;
	if (!list)
		return;
	int64_t now = now_ms(), mono = mono_ms();
	char ts[UTIL_TS_LEN + 1];
	ts_format(now, ts);
	for (struct pub *p = list; p; p = p->next) {
		p->placing = false;
		for (size_t i = 0; i < p->nrooms; i++)
			p->placing |= p->rooms[i].state <= PUB_RELEASED;
	}
	bool ok = store_begin(hub.store) == 0;
	for (struct pub *p = list; ok && p; p = p->next) {
		for (size_t i = 0; ok && i < p->nrooms; i++) {
			struct pub_room *pr = &p->rooms[i];
			if (pr->state <= PUB_RELEASED && pub_place(p, pr, now, mono) < 0)
				ok = false;
			else if (pr->state == PUB_STORED)
				ok = store_message_add(hub.store, pr->room->id, pr->seq, p->event,
						       p->data, p->data_len, ts, p->idem, now) == 0 &&
				     store_room_set_seq(hub.store, pr->room->id, pr->seq) == 0;
		}
	}
	if (ok)
		ok = store_commit(hub.store) == 0;
	if (!ok) {
		log_error("event=commit_failed error=\"%s\"", store_errmsg(hub.store));
		store_rollback(hub.store);
	}
	hub.commits++;

	struct pub *p, *next;
	for (p = list; p; p = next) {
		next = p->next;
		p->queued = false;
		if (!ok && p->placing) {
			for (size_t i = 0; i < p->nrooms; i++) {
				struct pub_room *pr = &p->rooms[i];
				/* The first seq a room handed out in this batch is the
				 * smallest old_seq: what the database still holds. */
				if (pr->state == PUB_STORED)
					pr->room->last_seq = MIN(pr->room->last_seq, pr->old_seq);
				if (pr->room->held == p)
					pr->room->held = NULL;
			}
			reply_error(p->from, p->req, 503, "unavailable", "database write failed");
			pub_free(p);
			continue;
		}
		for (size_t i = 0; i < p->nrooms; i++) {
			struct pub_room *pr = &p->rooms[i];
			if (pr->state != PUB_STORED)
				continue;
			route(pr->room, pr->seq, p->event, p->data, p->data_len, ts);
			hub.published++;
			pr->state = PUB_DONE;
		}
		if (pub_settled(p)) {
			pub_answer(p);
			pub_free(p);
		}
	}
}

/* A throttle window ended: the newest publish held in it is stored now,
 * and opens the next window. */
static void throttle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hub_room *r = w->data;
	struct pub *p = r->held;
	if (!p)
		return;
	r->held = NULL;
	for (size_t i = 0; i < p->nrooms; i++) {
		if (p->rooms[i].room == r && p->rooms[i].state == PUB_HELD) {
			p->rooms[i].state = PUB_RELEASED;
			p->held--;
		}
	}
	batch_add(p);
}

static void on_publish(struct link *l, struct ipc_reader *r)
{
	struct pub *p = xcalloc(1, sizeof(*p));
	p->from = l;
	p->req = ipc_get_u64(r);
	uint32_t n = ipc_get_u32(r);
	if (n == 0 || n > 1000 || r->err) {
		reply_error(l, p->req, 400, "bad_request", "bad room count");
		free(p);
		return;
	}
	p->rooms = xcalloc(n, sizeof(*p->rooms));
	for (uint32_t i = 0; i < n; i++) {
		char name[ROOM_MAX + 1];
		ipc_get_str(r, name, sizeof(name));
		if (r->err)
			break;
		p->rooms[i].room = room_get(name);
		if (!p->rooms[i].room) {
			reply_error(l, p->req, 503, "unavailable", "database unavailable");
			pub_free(p);
			return;
		}
		p->rooms[i].room->pubs++;
		p->nrooms++;
	}
	size_t len;
	const char *s = ipc_get_bytes(r, &len);
	p->event = xstrndup(s, len);
	s = ipc_get_bytes(r, &p->data_len);
	p->data = xstrndup(s, p->data_len);
	s = ipc_get_bytes(r, &len);
	p->idem = len ? xstrndup(s, len) : NULL;
	p->from_client = ipc_get_u8(r) != 0;
	if (!ipc_reader_done(r)) {
		reply_error(l, p->req, 400, "bad_request", "malformed publish");
		pub_free(p);
		return;
	}
	batch_add(p);
}

static void commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	/* A commit can settle publishes that then wait for the next pass. */
	while (hub.batch)
		commit_batch();
	for (int s = 0; s < MAX_LINKS; s++)
		if (hub.links[s])
			ipc_chan_flush(&hub.links[s]->ch);
	while (dead_links) {
		struct link *l = dead_links;
		dead_links = l->dead_next;
		free(l);
	}
}

/* ---- connections registry ------------------------------------------------------ */

/* Connections per user ("u" + name) and per address ("a" + address). */
static intptr_t count_add(char kind, const char *name, int delta)
{
	char key[300];
	int n = snprintf(key, sizeof(key), "%c%s", kind, name);
	size_t len = (size_t)MIN(n, (int)sizeof(key) - 1);
	intptr_t v = (intptr_t)map_get(&hub.counts, key, len) + delta;
	if (v > 0)
		map_put(&hub.counts, key, len, (void *)v);
	else
		map_del(&hub.counts, key, len);
	return v;
}

static void send_kick(int slot, uint64_t id, int code, const char *reason)
{
	if (!hub.links[slot])
		return;
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_KICK);
	ipc_put_u64(&b, id);
	ipc_put_u32(&b, (uint32_t)code);
	ipc_put_cstr(&b, reason);
	ipc_end(&b, m);
	ipc_chan_send(&hub.links[slot]->ch, &b);
	buf_free(&b);
}

static void conn_room(struct hub_conn *hc, struct hub_room *r, bool joined)
{
	if (joined) {
		xgrow(&hc->rooms, &hc->cap, hc->nrooms + 1, sizeof(*hc->rooms));
		hc->rooms[hc->nrooms++] = r;
		r->subscribers++;
		return;
	}
	for (size_t i = 0; i < hc->nrooms; i++) {
		if (hc->rooms[i] == r) {
			hc->rooms[i] = hc->rooms[--hc->nrooms];
			if (r->subscribers)
				r->subscribers--;
			return;
		}
	}
}

static void conn_drop(struct hub_conn *hc)
{
	while (hc->nrooms)
		conn_room(hc, hc->rooms[0], false);
	if (hc->user)
		count_add('u', hc->user, -1);
	count_add('a', hc->addr, -1);
	map_del_u64(&hub.conns, hc->id);
	free(hc->rooms);
	free(hc->user);
	free(hc);
}

static void on_conn_open(struct link *l, struct ipc_reader *r)
{
	char user[256], addr[INET_ADDRSTRLEN];
	uint64_t id = ipc_get_u64(r);
	ipc_get_str(r, user, sizeof(user));
	ipc_get_str(r, addr, sizeof(addr));
	int64_t at = (int64_t)ipc_get_u64(r);
	if (!ipc_reader_done(r))
		return;
	struct hub_conn *hc = map_get_u64(&hub.conns, id);
	intptr_t per_addr = 0;
	if (hc) {
		/* Known already (an anonymous connection authenticated): it keeps
		 * its rooms and only gains a user. */
		if (hc->user)
			count_add('u', hc->user, -1);
		free(hc->user);
	} else {
		hc = xcalloc(1, sizeof(*hc));
		hc->id = id;
		hc->slot = l->slot;
		snprintf(hc->addr, sizeof(hc->addr), "%s", addr);
		hc->connected_at = at;
		map_put_u64(&hub.conns, id, hc);
		per_addr = count_add('a', hc->addr, 1);
	}
	hc->user = user[0] ? xstrdup(user) : NULL;
	/* Limits over all workers: the newest connection over a cap is closed. */
	intptr_t per_user = hc->user ? count_add('u', hc->user, 1) : 0;
	if (per_addr > hub.cfg->max_connections_per_ip)
		send_kick(l->slot, id, WS_CLOSE_POLICY, "too many connections from this address");
	else if (per_user > hub.cfg->max_connections_per_user)
		send_kick(l->slot, id, WS_CLOSE_POLICY, "too many connections for this user");
}

/* ---- API requests -------------------------------------------------------------- */

static json_t *conn_json(const struct hub_conn *hc)
{
	char at[UTIL_TS_LEN + 1];
	ts_format(hc->connected_at, at);
	json_t *rooms = json_array();
	for (size_t i = 0; i < hc->nrooms; i++)
		json_array_append_new(rooms, json_string(hc->rooms[i]->name));
	return json_pack("{s:I, s:o, s:i, s:s, s:o, s:s}", "id", (json_int_t)hc->id,
			 "user", hc->user ? json_string(hc->user) : json_null(),
			 "worker", hc->slot + 1, "remote_addr", hc->addr, "rooms", rooms,
			 "connected_at", at);
}

static json_t *room_json(const struct hub_room *r)
{
	int64_t first = store_first_seq(hub.store, r->name);
	return json_pack("{s:s, s:s, s:I, s:I, s:I}", "room", r->name, "epoch", r->epoch,
			 "seq", (json_int_t)r->last_seq, "first_seq", (json_int_t)MAX(first, 0),
			 "subscribers", (json_int_t)r->subscribers);
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
	struct hub_room *r = map_get(&hub.rooms, name, strlen(name));
	json_array_append_new(rc->arr, json_pack("{s:s, s:I, s:I}", "room", name, "seq",
						 (json_int_t)last_seq, "subscribers",
						 (json_int_t)(r ? r->subscribers : 0)));
	return json_array_size(rc->arr) >= 10000;
}

static json_t *stats_json(void)
{
	size_t anonymous = 0;
	struct map_iter it = { 0 };
	struct map_entry *e;
	json_t *per_user = json_object();
	while ((e = map_next(&hub.conns, &it))) {
		struct hub_conn *hc = e->val;
		if (!hc->user) {
			anonymous++;
			continue;
		}
		json_t *n = json_object_get(per_user, hc->user);
		json_object_set_new(per_user, hc->user,
				    json_integer(n ? json_integer_value(n) + 1 : 1));
	}
	json_t *workers = json_array();
	json_int_t delivered = 0, slow = 0, limited = 0;
	for (int s = 0; s < MAX_LINKS; s++) {
		struct link *l = hub.links[s];
		if (!l || !l->stats)
			continue;
		json_array_append(workers, l->stats);
		delivered += json_integer_value(json_object_get(l->stats, "delivered"));
		slow += json_integer_value(json_object_get(l->stats, "slow_closed"));
		limited += json_integer_value(json_object_get(l->stats, "rate_limited"));
	}
	size_t active = 0;
	it = (struct map_iter){ 0 };
	while ((e = map_next(&hub.rooms, &it)))
		active += ((struct hub_room *)e->val)->subscribers > 0;
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:o, s:I}",
			 "connections", (json_int_t)hub.conns.count,
			 "unique_users", (json_int_t)json_object_size(per_user),
			 "anonymous", (json_int_t)anonymous,
			 "rooms", (json_int_t)active,
			 "rooms_loaded", (json_int_t)hub.rooms.count,
			 "workers", workers,
			 "messages", "published", (json_int_t)hub.published,
			 "delivered", delivered, "duplicates", (json_int_t)hub.duplicates,
			 "slow_consumers_closed", slow, "rate_limited", limited,
			 "commits", (json_int_t)hub.commits,
			 "user_connections", per_user,
			 "uptime", (json_int_t)((now_ms() - hub.started_ms) / 1000));
}

static void reply_json(struct link *l, uint64_t req, int status, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	reply(l, req, status, s, strlen(s));
	free(s);
	json_decref(v);
}

static int kick_where(const char *user, uint64_t id)
{
	int n = 0;
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&hub.conns, &it))) {
		struct hub_conn *hc = e->val;
		if ((user && hc->user && strcmp(hc->user, user) == 0) || (!user && hc->id == id)) {
			send_kick(hc->slot, hc->id, WS_CLOSE_KICKED, "disconnected by the server");
			n++;
		}
	}
	return n;
}

/* Notifications for many users in one transaction: each is stored with the
 * seq of the `notification` event that carries it in user:{id}. */
static void notify(struct link *l, uint64_t req, json_t *q)
{
	json_t *users = json_object_get(q, "users");
	size_t n = json_array_size(users);
	struct { struct hub_room *room; int64_t seq, old_seq, id; char *data; } *out =
		xcalloc(n, sizeof(*out));
	int64_t now = now_ms();
	char ts[UTIL_TS_LEN + 1];
	ts_format(now, ts);
	char *extra = json_object_get(q, "data")
			      ? json_dumps(json_object_get(q, "data"), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	const char *type = json_string_value(json_object_get(q, "type"));
	const char *title = json_string_value(json_object_get(q, "title"));
	const char *message = json_string_value(json_object_get(q, "message"));
	const char *url = json_string_value(json_object_get(q, "action_url"));
	/* Rooms are created before the transaction: one created inside it would
	 * stay in memory after a rollback under an id the database reuses. */
	bool ok = true;
	for (size_t i = 0; ok && i < n; i++) {
		char room[ROOM_MAX + 1];
		snprintf(room, sizeof(room), "user:%s", json_string_value(json_array_get(users, i)));
		out[i].room = acl_room_valid(room, strlen(room)) ? room_get(room) : NULL;
		ok = out[i].room != NULL;
	}
	ok = ok && store_begin(hub.store) == 0;
	for (size_t done = 0; ok && done < n; done++) {
		const char *user = json_string_value(json_array_get(users, done));
		struct hub_room *r = out[done].room;
		out[done].old_seq = r->last_seq;
		out[done].seq = ++r->last_seq;
		struct store_notification sn = { user, type, title, message, extra, url, ts,
						 out[done].seq };
		out[done].id = store_notification_add(hub.store, &sn);
		json_t *ev = json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:b}",
			"id", (json_int_t)out[done].id, "user", user, "type", type,
			"title", title ? json_string(title) : json_null(),
			"message", message ? json_string(message) : json_null(),
			"data", extra ? json_loads(extra, JSON_DECODE_ANY, NULL) : json_null(),
			"action_url", url ? json_string(url) : json_null(),
			"created_at", ts, "read", 0);
		out[done].data = json_dumps(ev, JSON_COMPACT);
		json_decref(ev);
		ok = out[done].id > 0 &&
		     store_message_add(hub.store, r->id, out[done].seq, "notification", out[done].data,
				       strlen(out[done].data), ts, NULL, now) == 0 &&
		     store_room_set_seq(hub.store, r->id, out[done].seq) == 0;
	}
	if (ok)
		ok = store_commit(hub.store) == 0;
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++) {
		if (!out[i].seq)
			continue;
		if (ok) {
			route(out[i].room, out[i].seq, "notification", out[i].data, strlen(out[i].data), ts);
			hub.published++;
			json_array_append_new(list, json_pack("{s:s, s:I, s:I}", "user",
				json_string_value(json_array_get(users, i)), "id", (json_int_t)out[i].id,
				"seq", (json_int_t)out[i].seq));
		} else {
			/* As in commit_batch: back to the seq before the first one taken. */
			out[i].room->last_seq = MIN(out[i].room->last_seq, out[i].old_seq);
		}
		free(out[i].data);
	}
	free(out);
	free(extra);
	if (!ok) {
		log_error("event=notify_failed error=\"%s\"", store_errmsg(hub.store));
		store_rollback(hub.store);
		json_decref(list);
		reply_error(l, req, 503, "unavailable", "database write failed");
		return;
	}
	reply_json(l, req, 200, json_pack("{s:I, s:o}", "count", (json_int_t)n, "notifications", list));
}

static void mark_read(struct link *l, uint64_t req, json_t *q, const char *user)
{
	json_t *ids = json_object_get(q, "ids");
	size_t n = json_array_size(ids);
	int64_t *v = n ? xcalloc(n, sizeof(*v)) : NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = json_integer_value(json_array_get(ids, i));
	char ts[UTIL_TS_LEN + 1];
	ts_format(now_ms(), ts);
	bool all = json_is_true(json_object_get(q, "all"));
	int count = all || n ? store_notifications_read(hub.store, user, all ? NULL : v, n, ts) : 0;
	free(v);
	if (count < 0) {
		reply_error(l, req, 503, "unavailable", "database write failed");
		return;
	}
	reply_json(l, req, 200, json_pack("{s:i, s:I}", "count", count, "unread",
					  (json_int_t)store_unread_count(hub.store, user)));
}

static void on_request(struct link *l, struct ipc_reader *r)
{
	uint64_t req = ipc_get_u64(r);
	size_t len;
	const char *text = ipc_get_bytes(r, &len);
	json_t *q = ipc_reader_done(r) ? json_loadb(text, len, 0, NULL) : NULL;
	const char *op = json_string_value(json_object_get(q, "op"));
	if (!op) {
		reply_error(l, req, 400, "bad_request", "malformed request");
		json_decref(q);
		return;
	}
	const char *user = json_string_value(json_object_get(q, "user"));
	const char *room = json_string_value(json_object_get(q, "room"));
	if (strcmp(op, "stats") == 0) {
		reply_json(l, req, 200, stats_json());
	} else if (strcmp(op, "rooms") == 0) {
		struct rooms_ctx rc = { json_array(),
					json_string_value(json_object_get(q, "prefix")) };
		store_rooms_each(hub.store, rooms_each, &rc);
		reply_json(l, req, 200, json_pack("{s:o}", "rooms", rc.arr));
	} else if (strcmp(op, "room") == 0 && room) {
		struct hub_room *hr = map_get(&hub.rooms, room, strlen(room));
		struct store_room sr;
		if (!hr && store_room_get(hub.store, room, false, &sr) == 1)
			hr = room_get(room);
		if (hr)
			reply_json(l, req, 200, room_json(hr));
		else
			reply_error(l, req, 404, "not_found", "no such room");
	} else if (strcmp(op, "connections") == 0) {
		json_t *arr = json_array();
		struct map_iter it = { 0 };
		struct map_entry *e;
		while ((e = map_next(&hub.conns, &it))) {
			struct hub_conn *hc = e->val;
			if (!user || (hc->user && strcmp(hc->user, user) == 0))
				json_array_append_new(arr, conn_json(hc));
		}
		reply_json(l, req, 200, json_pack("{s:o}", "connections", arr));
	} else if (strcmp(op, "disconnect") == 0) {
		uint64_t id = (uint64_t)json_integer_value(json_object_get(q, "id"));
		int n = user ? kick_where(user, 0) : kick_where(NULL, id);
		if (!user && n == 0)
			reply_error(l, req, 404, "not_found", "no such connection");
		else
			reply_json(l, req, 200, json_pack("{s:i}", "disconnected", n));
	} else if (strcmp(op, "notify") == 0) {
		notify(l, req, q);
	} else if (strcmp(op, "read") == 0 && user) {
		mark_read(l, req, q, user);
	} else {
		reply_error(l, req, 400, "bad_request", "unknown operation");
	}
	json_decref(q);
}

/* ---- links to workers ------------------------------------------------------------ */

static void link_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r);

static void link_close(struct ipc_chan *ch)
{
	struct link *l = ch->data;
	if (l->slot >= 0 && hub.links[l->slot] == l) {
		hub.links[l->slot] = NULL;
		log_warn("event=worker_lost slot=%d", l->slot + 1);
		/* Its connections and room interests are gone with it. */
		uint64_t bit = 1ULL << l->slot;
		struct map_iter it = { 0 };
		struct map_entry *e;
		while ((e = map_next(&hub.rooms, &it)))
			((struct hub_room *)e->val)->workers &= ~bit;
		it = (struct map_iter){ 0 };
		while ((e = map_next(&hub.conns, &it)))
			if (((struct hub_conn *)e->val)->slot == l->slot)
				conn_drop(e->val);
	}
	/* Publishes still in flight are committed, but nobody waits for the answer. */
	for (struct pub *p = hub.batch; p; p = p->next)
		if (p->from == l)
			p->from = NULL;
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&hub.rooms, &it))) {
		struct hub_room *r = e->val;
		if (r->held && r->held->from == l)
			r->held->from = NULL;
	}
	json_decref(l->stats);
	l->stats = NULL;
	/* Freed after the loop turn: the channel's read callback may still run. */
	l->dead_next = dead_links;
	dead_links = l;
}

static void on_hello(struct link *l, struct ipc_reader *r)
{
	uint32_t version = ipc_get_u32(r), role = ipc_get_u32(r), slot = ipc_get_u32(r);
	uint32_t pid = ipc_get_u32(r);
	if (!ipc_reader_done(r) || version != IPC_VERSION || role != IPC_ROLE_WORKER ||
	    slot >= MAX_LINKS) {
		log_error("event=bad_hello version=%u want=%u role=%u slot=%u", version,
			  IPC_VERSION, role, slot);
		ipc_chan_close(&l->ch);
		link_close(&l->ch);
		return;
	}
	if (hub.links[slot]) {
		/* A restarted worker: the old link is stale. */
		struct link *old = hub.links[slot];
		ipc_chan_close(&old->ch);
		link_close(&old->ch);
	}
	l->slot = (int)slot;
	hub.links[slot] = l;
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_HELLO);
	ipc_put_u32(&b, IPC_VERSION);
	ipc_put_u32(&b, IPC_ROLE_HUB);
	ipc_put_u32(&b, 0);
	ipc_put_u32(&b, (uint32_t)getpid());
	ipc_end(&b, m);
	ipc_chan_send(&l->ch, &b);
	buf_free(&b);
	log_info("event=worker_connected slot=%u pid=%u", slot + 1, pid);
}

static void link_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r)
{
	struct link *l = ch->data;
	char room[ROOM_MAX + 1];
	if (type == IPC_HELLO) {
		on_hello(l, r);
		return;
	}
	if (l->slot < 0) {
		log_error("event=message_before_hello type=%u", type);
		ipc_chan_close(ch);
		link_close(ch);
		return;
	}
	switch (type) {
	case IPC_ROOM_JOIN: {
		ipc_get_str(r, room, sizeof(room));
		struct hub_room *hr = ipc_reader_done(r) ? room_get(room) : NULL;
		if (hr) {
			hr->workers |= 1ULL << l->slot;
			send_room_state(l, hr);
		}
		return;
	}
	case IPC_ROOM_LEAVE: {
		ipc_get_str(r, room, sizeof(room));
		struct hub_room *hr = map_get(&hub.rooms, room, strlen(room));
		if (ipc_reader_done(r) && hr)
			hr->workers &= ~(1ULL << l->slot);
		return;
	}
	case IPC_PUBLISH:
		on_publish(l, r);
		return;
	case IPC_CONN_OPEN:
		on_conn_open(l, r);
		return;
	case IPC_CONN_CLOSE: {
		struct hub_conn *hc = map_get_u64(&hub.conns, ipc_get_u64(r));
		if (ipc_reader_done(r) && hc)
			conn_drop(hc);
		return;
	}
	case IPC_CONN_ROOM: {
		struct hub_conn *hc = map_get_u64(&hub.conns, ipc_get_u64(r));
		ipc_get_str(r, room, sizeof(room));
		bool joined = ipc_get_u8(r) != 0;
		struct hub_room *hr = !ipc_reader_done(r) || !hc ? NULL
				      : joined ? room_get(room) : map_get(&hub.rooms, room, strlen(room));
		if (hr)
			conn_room(hc, hr, joined);
		return;
	}
	case IPC_WORKER_STATS: {
		size_t len;
		const char *json = ipc_get_bytes(r, &len);
		json_t *v = ipc_reader_done(r) ? json_loadb(json, len, 0, NULL) : NULL;
		if (v) {
			json_decref(l->stats);
			l->stats = v;
		}
		return;
	}
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

/* ---- housekeeping --------------------------------------------------------------- */

static void status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	static int ticks;
	if (ticks++ % 4 == 0)
		hub.db_writable = store_writable(hub.store);
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_HUB_STATUS);
	ipc_put_u64(&b, hub.conns.count);
	ipc_put_u8(&b, hub.db_writable);
	ipc_end(&b, m);
	struct sbuf *frame = sbuf_from(b.data, b.len);
	buf_free(&b);
	for (int s = 0; s < MAX_LINKS; s++)
		if (hub.links[s])
			ipc_chan_send_shared(&hub.links[s]->ch, frame);
	sbuf_unref(frame);
}

/* Frees the rooms nothing holds: no worker wants them, no connection is in
 * them, no publish in flight names them (held ones included, so nothing
 * uncommitted is left in memory), no throttle window is open and pruning is
 * not behind on them.
 * room_get loads them again from the database, as they were. */
static void evict_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	int64_t mono = mono_ms();
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&hub.rooms, &it))) {
		struct hub_room *r = e->val;
		if (r->workers || r->subscribers || r->pubs || r->prune_hot || r->window_end > mono)
			continue;
		map_del(&hub.rooms, r->name, strlen(r->name));
		free(r->name);
		free(r);
	}
}

/* Deletes, in small steps between commits, what falls outside a room's
 * retention: more than history_size messages, or older than history_ttl.
 * A walk visits every stored room in turn, by id, whether loaded or not; a
 * loaded room that had more to delete than one visit takes (it receives
 * more than PRUNE_STEP messages a tick) is visited again every tick until
 * it has caught up, without holding the walk up. Each tick is bounded, so
 * publishes never wait long behind it; ticks come quickly while behind. */
struct prune_pass {
	int budget;               /* rows this tick may still delete */
	int64_t cursor;           /* id of the last room the walk visited */
	bool behind;              /* some room had more to delete */
	bool failed;
};

/* One visit: returns whether the room has more to delete. */
static bool prune_visit(struct prune_pass *pp, int64_t id, const char *name, int64_t last_seq)
{
	const struct ns_config *ns = config_namespace(hub.cfg, name);
	int limit = MIN(PRUNE_STEP, pp->budget);
	if (!ns || limit <= 0)
		return false;
	char cutoff[UTIL_TS_LEN + 1];
	if (ns->history_ttl > 0)
		ts_format(now_ms() - (int64_t)ns->history_ttl * 1000, cutoff);
	int n = store_prune_room(hub.store, id, last_seq - ns->history_size,
				 ns->history_ttl > 0 ? cutoff : NULL, limit);
	if (n < 0) {
		pp->failed = true;
		return false;
	}
	pp->budget -= n;
	pp->behind |= n >= limit;
	return n >= limit;
}

static int prune_walk_room(int64_t id, const char *name, int64_t last_seq, void *arg)
{
	struct prune_pass *pp = arg;
	pp->cursor = id;
	if (prune_visit(pp, id, name, last_seq) && hub.nprune_hot < PRUNE_HOT) {
		struct hub_room *r = map_get(&hub.rooms, name, strlen(name));
		if (r && !r->prune_hot) {
			r->prune_hot = true;
			hub.prune_hot[hub.nprune_hot++] = r;
		}
	}
	return pp->budget <= 0 || pp->failed;
}

static void prune_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct prune_pass pp = { .budget = PRUNE_BUDGET, .cursor = hub.prune_cursor };
	if (store_begin(hub.store) < 0)
		return;
	for (size_t i = 0; i < hub.nprune_hot;) {
		struct hub_room *r = hub.prune_hot[i];
		if (prune_visit(&pp, r->id, r->name, r->last_seq)) {
			i++;
		} else {
			r->prune_hot = false;
			hub.prune_hot[i] = hub.prune_hot[--hub.nprune_hot];
		}
	}
	int rooms = pp.failed ? -1 : store_rooms_after(hub.store, hub.prune_cursor, PRUNE_ROOMS,
							prune_walk_room, &pp);
	int keys = rooms < 0 || pp.failed ? -1 : store_prune_idem(hub.store, now_ms(), PRUNE_BUDGET);
	if (keys < 0 || store_commit(hub.store) < 0) {
		log_error("event=prune_failed error=\"%s\"", store_errmsg(hub.store));
		store_rollback(hub.store);
		return;
	}
	/* Past the last room: the next round starts from the first. */
	hub.prune_cursor = rooms < PRUNE_ROOMS && pp.budget > 0 ? 0 : pp.cursor;
	w->repeat = pp.behind || keys >= PRUNE_BUDGET ? PRUNE_BEHIND : PRUNE_INTERVAL;
	ev_timer_again(loop, w);
}

static void shutdown_hub(void)
{
	while (hub.batch)
		commit_batch();
	for (int s = 0; s < MAX_LINKS; s++)
		if (hub.links[s])
			ipc_chan_flush(&hub.links[s]->ch);
	store_close(hub.store);
	log_info("event=hub_stopped published=%llu", (unsigned long long)hub.published);
	_exit(0);
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
	struct config *fresh = xcalloc(1, sizeof(*fresh));
	char err[512];
	if (config_load(fresh, hub.cfg->path, err, sizeof(err)) < 0) {
		log_error("event=reload_failed error=\"%s\"", err);
		free(fresh);
		return;
	}
	/* Namespaces and limits change; the database stays where it is. */
	free(fresh->database);
	fresh->database = xstrdup(hub.cfg->database);
	if (hub.cfg != hub.ctx->cfg) {
		config_free(hub.cfg);
		free(hub.cfg);
	}
	hub.cfg = fresh;
	log_set_level((enum log_level)fresh->log_level);
	log_info("event=reloaded");
}

static void master_lost(struct ipc_chan *ch)
{
	shutdown_hub();
}

void hub_main(struct proc_ctx *ctx)
{
	struct ev_loop *loop = proc_child_init("hub");
	proc_expect_hello(ctx->master_fd);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	hub.ctx = ctx;
	hub.cfg = ctx->cfg;
	hub.loop = loop;
	hub.started_ms = now_ms();
	hub.batch_tail = &hub.batch;
	char err[256];
	hub.store = store_open(ctx->cfg->database, false, ctx->cfg->durability_full, err,
			       sizeof(err));
	if (!hub.store)
		fatal("event=database_failed path=%s error=\"%s\"", ctx->cfg->database, err);
	hub.db_writable = store_writable(hub.store);

	ipc_chan_open(&hub.master, loop, ctx->master_fd, master_msg, master_lost, NULL);
	ev_io_init(&hub.accept_io, accept_cb, ctx->hub_listen_fd, EV_READ);
	ev_io_start(loop, &hub.accept_io);
	ev_prepare_init(&hub.commit_watcher, commit_cb);
	ev_prepare_start(loop, &hub.commit_watcher);
	ev_timer_init(&hub.status_timer, status_cb, 0, STATUS_INTERVAL);
	ev_timer_start(loop, &hub.status_timer);
	ev_timer_init(&hub.prune_timer, prune_cb, PRUNE_INTERVAL, PRUNE_INTERVAL);
	ev_timer_start(loop, &hub.prune_timer);
	ev_timer_init(&hub.evict_timer, evict_cb, EVICT_INTERVAL, EVICT_INTERVAL);
	ev_timer_start(loop, &hub.evict_timer);
	ev_signal_init(&hub.sig_term, sigterm_cb, SIGTERM);
	ev_signal_start(loop, &hub.sig_term);
	ev_signal_init(&hub.sig_usr1, sigusr1_cb, SIGUSR1);
	ev_signal_start(loop, &hub.sig_usr1);
	log_info("event=hub_ready database=%s durability=%s", ctx->cfg->database,
		 ctx->cfg->durability_full ? "full" : "normal");
	ev_run(loop, 0);
	_exit(0);
}
