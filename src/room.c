/* room.c -- a worker's local rooms. A room is registered with the hub on its
 * first local subscriber and dropped after the last. Each message the hub
 * delivers is framed once and the same buffer is queued on every subscriber.
 *
 * Replay: a subscription that starts from an earlier seq is "replaying":
 * live deliveries skip it, and it reads history from the database in chunks
 * (on an edge, which has none, it asks its relay for them) until it reaches
 * the room's last_seq. Every seq up to last_seq is committed before the hub
 * routes it, so the switch to live loses and doubles nothing. */
#include "room.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ipc.h"
#include "log.h"
#include "map.h"
#include "proto.h"
#include "session.h"
#include "sio.h"
#include "siopkt.h"
#include "util.h"
#include "worker.h"
#include "ws.h"

#define REPLAY_CHUNK 512               /* rows per database read */
#define REPLAY_QUEUE_LOW (256 * 1024)  /* read more when less than this is queued */
#define FETCH_RETRY 1.0                /* edge: seconds before asking again after a failure */

static struct map rooms;
static struct sub *replaying;          /* subscriptions reading history */
static ev_idle replay_idle;
static ev_timer replay_wait;

size_t room_count(void)
{
	return rooms.count;
}

struct room *room_find(const char *name)
{
	return map_get(&rooms, name, strlen(name));
}

static void hub_room_msg(uint16_t type, const char *name)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, type);
	ipc_put_cstr(&b, name);
	ipc_end(&b, m);
	worker_hub_send(&b);
	buf_free(&b);
}

/* ---- subscribers of either protocol ------------------------------------------------ */

/* Bytes queued for the subscriber's client. */
static size_t sub_backlog(const struct sub *s)
{
	return s->is_sio ? sio_backlog(s->sio) : s->conn->out_bytes;
}

static bool sub_open(const struct sub *s)
{
	return s->is_sio ? sio_is_open(s->sio) : s->conn->state == CONN_WS;
}

static void sub_confirmed(struct sub *s)
{
	if (s->is_sio)
		sio_subscribed(s);
	else
		session_subscribed(s);
}

/* The Engine.IO packet of a stored message for Socket.IO subscribers of
 * namespace nsp. */
static void sio_packet(struct buf *b, const char *nsp, const char *room,
		       const struct store_message *m)
{
	struct buf ev = { 0 };
	buf_append_json_str(&ev, m->event, strlen(m->event));
	siopkt_event(b, nsp, ev.data, ev.len, room, m->seq, m->ts, m->data, m->data_len,
		     worker.cfg->socketio_recovery ? m->gpos : -1);
	buf_free(&ev);
}

void room_msg_sio_packet(struct buf *b, const char *nsp, const char *room,
			 const struct room_msg *m)
{
	char ts[UTIL_TS_LEN + 1];
	snprintf(ts, sizeof(ts), "%.*s", UTIL_TS_LEN, m->ts);
	siopkt_event(b, nsp, m->event, m->event_len, room, m->seq, ts, m->data, m->data_len,
		     worker.cfg->socketio_recovery ? m->gpos : -1);
}

static void replay_schedule(void)
{
	if (replaying && !ev_is_active(&replay_idle))
		ev_idle_start(worker.loop, &replay_idle);
}

static void replay_add(struct sub *s)
{
	s->replaying = true;
	s->replay_next = replaying;
	replaying = s;
	replay_schedule();
}

/* A live subscription missed messages (they were committed while the hub
 * was away, or lost with it): it reads them from history. Its client
 * hears of it only if some are no longer there (session_subscribed). */
static void catch_up(struct sub *s)
{
	s->recovered = true;
	s->replayed = 0;
	replay_add(s);
}

static void replay_remove(struct sub *s)
{
	for (struct sub **pp = &replaying; *pp; pp = &(*pp)->replay_next) {
		if (*pp == s) {
			*pp = s->replay_next;
			break;
		}
	}
	s->replaying = false;
}

struct replay_ctx {
	struct sub *sub;
	struct buf frame;     /* scratch for encoding */
	bool paused;          /* the send queue filled up: go on later */
};

/* Queues one replayed message on s: text[0..len) is it in s's protocol.
 * Returns non-zero to end the chunk: s's queue is full, or its client went. */
static int replay_send(struct replay_ctx *rc, int64_t seq, const char *text, size_t len)
{
	struct sub *s = rc->sub;
	if (seq != s->sent_seq + 1)
		s->recovered = false;   /* pruned: the missing ones are gone */
	struct sbuf *f = ws_frame_new(WS_OP_TEXT, text, len);
	if (s->is_sio)
		sio_deliver(s->sio, f, text, len);
	else
		conn_send(s->conn, f);
	sbuf_unref(f);
	s->sent_seq = seq;
	s->replayed++;
	rc->paused = sub_backlog(s) >= REPLAY_QUEUE_LOW;
	return rc->paused || !sub_open(s);
}

static int replay_row(const struct store_message *m, void *arg)
{
	struct replay_ctx *rc = arg;
	struct sub *s = rc->sub;
	if (m->seq > s->room->last_seq)
		return 1;        /* committed later than we know of: it comes live */
	buf_reset(&rc->frame);
	if (s->is_sio)
		sio_packet(&rc->frame, sio_nsp(s->sio), s->room->name, m);
	else
		proto_event(&rc->frame, s->room->name, m->seq, s->room->epoch, m->event, m->data,
			    m->data_len, m->ts);
	return replay_send(rc, m->seq, rc->frame.data, rc->frame.len);
}

/* After a chunk of n messages (-1: the read failed): one that stopped short
 * of last_seq without pausing means retention removed the rest, so s goes
 * live from here on. Returns true when s finished replaying. */
static bool replay_chunk_end(struct sub *s, int n, bool paused)
{
	if (n < REPLAY_CHUNK && !paused && s->sent_seq < s->room->last_seq) {
		s->recovered = false;
		s->sent_seq = s->room->last_seq;
	}
	if (s->sent_seq < s->room->last_seq)
		return false;
	replay_remove(s);
	sub_confirmed(s);
	return true;
}

/* ---- history from the relay (an edge) ---------------------------------------------- */

/* A request for a room's history to the relay, in the hub's place, and when
 * it failed the wait before the next. An owner that goes away while the
 * request is out leaves it behind (owner NULL) for the reply to free. */
struct history_fetch {
	struct history_fetch **owner;  /* the owner's pointer to it */
	history_fetch_fn fn;
	void *arg;
	void (*wake)(void);
	ev_timer retry;
};

/* The fetch is over: the owner may ask again. */
static void fetch_end(struct history_fetch *f)
{
	*f->owner = NULL;
	void (*wake)(void) = f->wake;
	free(f);
	wake();
}

static void fetch_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	fetch_end(w->data);
}

static void fetch_reply(struct conn *c, uint64_t tag, int status, const char *body, size_t len)
{
	struct history_fetch *f = (struct history_fetch *)(uintptr_t)tag;
	if (!f->owner) {
		free(f);
	} else if (status != 200 || !f->fn(f->arg, body, len)) {
		/* The relay logs an unreachable primary, once rather than per owner. */
		log_debug("event=history_fetch_failed status=%d", status);
		ev_timer_start(worker.loop, &f->retry);
	} else {
		fetch_end(f);
	}
}

void history_fetch(struct history_fetch **owner, const char *room, int64_t after, int limit,
		   history_fetch_fn fn, void *arg, void (*wake)(void))
{
	char q[ROOM_MAX + 96];
	/* Valid room names need no escaping in JSON. */
	int n = snprintf(q, sizeof(q), "{\"op\":\"history\",\"room\":\"%s\",\"after\":%lld,"
			 "\"limit\":%d}", room, (long long)after, limit);
	struct history_fetch *f = xcalloc(1, sizeof(*f));
	*f = (struct history_fetch){ .owner = owner, .fn = fn, .arg = arg, .wake = wake };
	ev_timer_init(&f->retry, fetch_retry_cb, FETCH_RETRY, 0);
	f->retry.data = f;
	*owner = f;
	if (worker_request(NULL, (uint64_t)(uintptr_t)f, q, (size_t)n, fetch_reply) < 0)
		ev_timer_start(worker.loop, &f->retry);
}

void history_fetch_cancel(struct history_fetch **owner)
{
	struct history_fetch *f = *owner;
	if (!f)
		return;
	*owner = NULL;
	if (ev_is_active(&f->retry)) {
		ev_timer_stop(worker.loop, &f->retry);
		free(f);
	} else {
		f->owner = NULL;
	}
}

/* ---- replay on an edge ------------------------------------------------------------- */

struct frames_ctx {
	struct replay_ctx rc;
	int n;                /* messages of the chunk, as store_history counts rows */
};

/* One message of a history reply, replayed as replay_row does a row but
 * framed as its live delivery is. */
static int replay_frame(const struct room_msg *m, void *arg)
{
	struct frames_ctx *fc = arg;
	struct sub *s = fc->rc.sub;
	struct room *r = s->room;
	/* Another epoch: the room was reset and the rest of ours is gone.
	 * Committed later than we know of: it comes live. */
	if (strcmp(m->epoch, r->epoch) != 0 || m->seq > r->last_seq)
		return 1;
	fc->n++;
	if (m->seq <= s->sent_seq)
		return 0;
	if (!s->is_sio)
		return replay_send(&fc->rc, m->seq, m->payload, m->len);
	buf_reset(&fc->rc.frame);
	room_msg_sio_packet(&fc->rc.frame, sio_nsp(s->sio), r->name, m);
	return replay_send(&fc->rc, m->seq, fc->rc.frame.data, fc->rc.frame.len);
}

/* Replays to s the frames of a history reply: false when one is malformed. */
static bool replay_frames(void *arg, const char *body, size_t len)
{
	struct sub *s = arg;
	struct frames_ctx fc = { .rc = { .sub = s } };
	int rc = room_frames_each(s->room->name, body, len, replay_frame, &fc);
	buf_free(&fc.rc.frame);
	if (rc < 0) {
		log_warn("event=replay_frames_malformed room=%s", s->room->name);
		return false;
	}
	replay_chunk_end(s, fc.n, fc.rc.paused);
	return true;
}

/* ---- replay ------------------------------------------------------------------------ */

/* Reads one chunk for s. Returns true when s finished replaying. */
static bool replay_step(struct sub *s)
{
	if (!worker.reader && s->sent_seq < s->room->last_seq) {
		history_fetch(&s->fetch, s->room->name, s->sent_seq, REPLAY_CHUNK, replay_frames, s,
			      replay_schedule);
		return false;
	}
	struct replay_ctx rc = { .sub = s };
	int n = 0;
	if (s->sent_seq < s->room->last_seq) {
		n = store_history(worker.reader, s->room->name, s->sent_seq, REPLAY_CHUNK, replay_row, &rc);
		if (n < 0)
			log_error("event=replay_failed room=%s error=\"%s\"", s->room->name,
				  store_errmsg(worker.reader));
	}
	buf_free(&rc.frame);
	return replay_chunk_end(s, n, rc.paused);
}

static void replay_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	bool progressed = false, blocked = false;
	struct sub *s = replaying, *next;
	for (; s; s = next) {
		next = s->replay_next;
		if (s->fetch)
			continue;   /* its reply or its retry schedules us again */
		if (!s->room->ready || !sub_open(s) || sub_backlog(s) >= REPLAY_QUEUE_LOW) {
			blocked = true;   /* let the client read first */
			continue;
		}
		progressed = true;
		replay_step(s);
	}
	if (progressed && replaying)
		return;
	ev_idle_stop(loop, w);
	if (blocked)
		ev_timer_start(loop, &replay_wait);   /* queues are full: poll, do not spin */
}

static void replay_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	replay_schedule();
}

/* ---- subscriptions ----------------------------------------------------------------- */

/* The starting point of a subscription once the room's state is known. */
static void sub_start(struct sub *s, const struct sub_since *since)
{
	struct room *r = s->room;
	int64_t from = r->last_seq;
	s->recovered = !(since && since->gap);
	if (since && since->given) {
		from = since->seq;
		/* Seq 0 without an epoch is the start of any history: what a
		 * client was told of a room before its first message. */
		if (strcmp(since->epoch, r->epoch) != 0 && (from != 0 || since->epoch[0])) {
			/* Another history: the client's seq means nothing here. */
			s->recovered = false;
			from = r->last_seq;
		} else if (from > r->last_seq) {
			/* Seen on another worker before the hub's delivery reached
			 * this one: valid if committed, and the live stream skips
			 * up to it. An edge has no database to check: a seq the
			 * client was given elsewhere is committed, and one it made
			 * up only costs it those messages. */
			struct store_room sr;
			if (worker.reader &&
			    (store_room_get(worker.reader, r->name, false, &sr) != 1 ||
			     from > sr.last_seq)) {
				s->recovered = false;
				from = r->last_seq;
			}
		} else if (r->last_seq - from > worker.cfg->replay_limit) {
			s->recovered = false;
			from = r->last_seq - worker.cfg->replay_limit;
		}
	}
	s->start_seq = s->sent_seq = from;
	if (from < r->last_seq)
		replay_add(s);
	else
		sub_confirmed(s);
}

bool room_sub_delivered(const struct sub *s)
{
	return s->sent_seq > s->start_seq;
}

struct pending_since {
	struct sub *sub;
	struct sub_since since;
};

/* Subscriptions waiting for the hub to confirm their room. */
static struct pending_since *waiting;
static size_t nwaiting, capwaiting;

static struct sub *subscribe(struct conn *c, struct sio_sock *k, const char *name,
			     const struct sub_since *since, const char *req_id, bool held);

struct sub *room_subscribe(struct conn *c, const char *name, const struct sub_since *since,
			   const char *req_id)
{
	return subscribe(c, NULL, name, since, req_id, false);
}

struct sub *room_subscribe_sio(struct sio_sock *k, const char *name, const char *req_id,
			       bool held)
{
	return subscribe(NULL, k, name, NULL, req_id, held);
}

void room_sub_release(struct sub *s, int64_t sent_seq)
{
	s->held = false;
	s->replaying = false;
	s->confirmed = true;
	s->sent_seq = MAX(sent_seq, s->sent_seq);
	if (s->room->ready && s->sent_seq < s->room->last_seq)
		catch_up(s);
}

static struct sub *subscribe(struct conn *c, struct sio_sock *k, const char *name,
			     const struct sub_since *since, const char *req_id, bool held)
{
	struct room *r = room_find(name);
	if (!r) {
		r = xcalloc(1, sizeof(*r));
		r->name = xstrdup(name);
		map_put(&rooms, name, strlen(name), r);
		hub_room_msg(IPC_ROOM_JOIN, name);
	}
	struct sub *s = xcalloc(1, sizeof(*s));
	s->room = r;
	if (k) {
		s->sio = k;
		s->is_sio = true;
	} else {
		s->conn = c;
	}
	s->held = held;
	s->req_id = req_id ? xstrdup(req_id) : NULL;
	s->idx = r->nsubs;
	s->replaying = true;   /* nothing live until its starting point is known */
	xgrow(&r->subs, &r->cap, r->nsubs + 1, sizeof(*r->subs));
	r->subs[r->nsubs++] = s;
	if (held)
		return s;
	if (r->ready) {
		s->replaying = false;
		sub_start(s, since);
	} else {
		xgrow(&waiting, &capwaiting, nwaiting + 1, sizeof(*waiting));
		waiting[nwaiting].sub = s;
		waiting[nwaiting].since = since ? *since : (struct sub_since){ 0 };
		nwaiting++;
	}
	return s;
}

static void room_free(struct room *r)
{
	map_del(&rooms, r->name, strlen(r->name));
	free(r->subs);
	free(r->name);
	free(r);
}

void room_unsubscribe(struct sub *s)
{
	struct room *r = s->room;
	if (s->replaying)
		replay_remove(s);
	history_fetch_cancel(&s->fetch);
	for (size_t i = 0; i < nwaiting; i++) {
		if (waiting[i].sub == s) {
			waiting[i] = waiting[--nwaiting];
			break;
		}
	}
	r->subs[s->idx] = r->subs[--r->nsubs];
	r->subs[s->idx]->idx = s->idx;
	free(s->req_id);
	free(s);
	if (r->nsubs == 0) {
		hub_room_msg(IPC_ROOM_LEAVE, r->name);
		room_free(r);
	}
}

/* ---- from the hub ------------------------------------------------------------------ */

void room_on_state(const char *name, const char *epoch, int64_t last_seq)
{
	struct room *r = room_find(name);
	if (!r)
		return;
	bool was_ready = r->ready;
	int64_t known = r->last_seq;
	/* A room that had no message has no epoch: what came since is its first. */
	bool same_epoch = strcmp(r->epoch, epoch) == 0 || !r->epoch[0];
	snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
	r->last_seq = last_seq;
	r->ready = true;
	if (was_ready && same_epoch && last_seq > known) {
		/* Committed while the hub was away and never delivered: catch up. */
		for (size_t i = 0; i < r->nsubs; i++)
			if (!r->subs[i]->replaying)
				catch_up(r->subs[i]);
	}
	for (size_t i = 0; i < nwaiting;) {
		struct pending_since *p = &waiting[i];
		if (p->sub->room != r) {
			i++;
			continue;
		}
		struct sub *s = p->sub;
		struct sub_since since = p->since;
		waiting[i] = waiting[--nwaiting];
		s->replaying = false;
		sub_start(s, &since);
	}
	replay_schedule();
}

bool room_msg_decode(struct ipc_reader *r, char name[ROOM_MAX + 1],
		     char epoch[STORE_EPOCH_LEN + 1], struct room_msg *m)
{
	uint32_t off[5];
	ipc_get_str(r, name, ROOM_MAX + 1);
	m->seq = (int64_t)ipc_get_u64(r);
	ipc_get_str(r, epoch, STORE_EPOCH_LEN + 1);
	m->epoch = epoch;
	m->gpos = (int64_t)ipc_get_u64(r);
	for (int i = 0; i < 5; i++)
		off[i] = ipc_get_u32(r);
	m->payload = ipc_get_bytes(r, &m->len);
	/* The slices must lie inside the payload. */
	if (!ipc_reader_done(r) || off[0] > m->len || off[1] > m->len - off[0] ||
	    off[2] > m->len || off[3] > m->len - off[2] || off[4] > m->len ||
	    UTIL_TS_LEN > m->len - off[4])
		return false;
	m->event = m->payload + off[0];
	m->event_len = off[1];
	m->data = m->payload + off[2];
	m->data_len = off[3];
	m->ts = m->payload + off[4];
	return true;
}

int room_frames_each(const char *room, const char *body, size_t len,
		     int (*fn)(const struct room_msg *m, void *arg), void *arg)
{
	for (size_t off = 0; off < len;) {
		char name[ROOM_MAX + 1], epoch[STORE_EPOCH_LEN + 1];
		struct room_msg m;
		struct ipc_reader rd;
		uint16_t type;
		const uint8_t *payload;
		uint32_t plen;
		long used = ipc_frame_next((const uint8_t *)body + off, len - off, &type, &payload,
					   &plen);
		if (used <= 0 || type != IPC_DELIVER)
			return -1;
		off += (size_t)used;
		ipc_reader_init(&rd, payload, plen);
		if (!room_msg_decode(&rd, name, epoch, &m) || strcmp(name, room) != 0)
			return -1;
		if (fn(&m, arg))
			break;
	}
	return 0;
}

/* A delivery's Socket.IO frame for one namespace: for polling and framed
 * for WebSocket. */
struct nsp_frame {
	const char *nsp;
	struct buf packet;
	struct sbuf *ws;
};
static struct nsp_frame *frames;       /* those of the delivery in progress */
static size_t nframes, capframes;

/* The frame of m for Socket.IO subscribers of nsp, built by the first of them. */
static const struct nsp_frame *nsp_frame(const char *nsp, const char *room,
					 const struct room_msg *m)
{
	for (size_t i = 0; i < nframes; i++)
		if (frames[i].nsp == nsp)
			return &frames[i];
	xgrow(&frames, &capframes, nframes + 1, sizeof(*frames));
	struct nsp_frame *f = &frames[nframes++];
	f->nsp = nsp;
	f->packet = (struct buf){ 0 };
	room_msg_sio_packet(&f->packet, nsp, room, m);
	f->ws = ws_frame_new(WS_OP_TEXT, f->packet.data, f->packet.len);
	return f;
}

void room_on_deliver(const char *name, const struct room_msg *m)
{
	int64_t seq = m->seq;
	const char *epoch = m->epoch;
	struct room *r = room_find(name);
	if (!r) {
		/* The first messages of a new room reach every worker. */
		hub_room_msg(IPC_ROOM_LEAVE, name);
		return;
	}
	if (!r->ready)
		return;
	if (!r->epoch[0])
		snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
	if (seq > r->last_seq)
		r->last_seq = seq;
	/* Framed once per protocol (and Socket.IO namespace), when the room has a
	 * subscriber of it: every subscriber's queue holds the same buffer. */
	struct sbuf *f = NULL;
	uint64_t n = 0;
	for (size_t i = 0; i < r->nsubs; i++) {
		struct sub *s = r->subs[i];
		if (s->replaying || seq <= s->sent_seq)
			continue;
		if (seq != s->sent_seq + 1) {
			/* A gap (a delivery lost with a dying hub). */
			catch_up(s);
			continue;
		}
		s->sent_seq = seq;
		if (s->is_sio) {
			const struct nsp_frame *sf = nsp_frame(sio_nsp(s->sio), name, m);
			sio_deliver(s->sio, sf->ws, sf->packet.data, sf->packet.len);
		} else {
			if (!f)
				f = ws_frame_new(WS_OP_TEXT, m->payload, m->len);
			conn_send(s->conn, f);
		}
		n++;
	}
	if (f)
		sbuf_unref(f);
	for (size_t i = 0; i < nframes; i++) {
		sbuf_unref(frames[i].ws);
		buf_free(&frames[i].packet);
	}
	nframes = 0;
	worker.stats.delivered += n;
	replay_schedule();
}

void room_rejoin_all(void)
{
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&rooms, &it)))
		hub_room_msg(IPC_ROOM_JOIN, ((struct room *)e->val)->name);
}

void room_hub_lost(void)
{
	/* Rooms keep their subscribers and state; room_on_state will catch up. */
}

void room_init(void)
{
	ev_idle_init(&replay_idle, replay_cb);
	ev_timer_init(&replay_wait, replay_wait_cb, 0.005, 0);
}
