/* pipeline.c -- publishes, from arrival to acknowledgement. Each one is
 * checked against its idempotency key and its room's throttle window, given
 * the room's next seq, and stored together with everything else that arrived
 * in the same loop turn (group commit: one transaction). Only after the
 * commit is it routed, once per interested worker, and answered. */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "outbox.h"
#include "proto.h"
#include "publisher.h"
#include "util.h"

enum pub_state {
	PUB_NEW,                   /* not yet placed */
	PUB_RELEASED,              /* its throttle window ended: store now */
	PUB_HELD,                  /* waiting in a throttle window */
	PUB_STORED,                /* sequenced in the open transaction */
	PUB_SUPERSEDED,            /* replaced: waits for its replacement's commit */
	PUB_DONE,                  /* committed and routed, or settled otherwise */
};

struct pub_room {
	struct pub *pub;
	struct hub_room *room;
	enum pub_state state;
	int64_t seq;               /* 0 when not stored (superseded) */
	int64_t gpos;              /* its global position once stored */
	int64_t old_seq;           /* to undo a failed commit */
	bool duplicate;            /* idempotency key seen: seq is the original */
	bool superseded;           /* a newer publish won the throttle window */
	struct pub_room *next_superseded;   /* on room->superseded */
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
	bool failed;               /* a commit it depended on failed: answer 503 */
	size_t nrooms;
	struct pub_room *rooms;
	size_t held;               /* rooms in PUB_HELD */
	struct pub *next;
};

/* A message a job emitted in the open transaction, routed after the commit. */
struct emitted {
	struct hub_room *room;
	int64_t seq, old_seq, gpos;
	char *event, *data;
	size_t len;
};

static struct {
	struct pub *batch, **batch_tail;   /* arrived this loop turn */
	struct hub_job *jobs, **jobs_tail;
	struct emitted *emitted;           /* by the jobs of the open transaction */
	size_t nemitted, cap;
	struct hub_room **stored;          /* rooms given messages in the open transaction */
	size_t nstored, stored_cap;
	int64_t now;                       /* the open transaction's time */
	char ts[UTIL_TS_LEN + 1];
} pl = { .batch_tail = &pl.batch, .jobs_tail = &pl.jobs };

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
	hub_reply(p->from, p->req, 200, b.data, b.len);
	buf_free(&b);
}

/* Sends one committed message to every interested worker, and in a cluster
 * to Redis: the frame is encoded once and the same bytes are queued on each
 * worker's channel. With it go its global position and where its event
 * name, data and time are in it, from which workers build the Socket.IO
 * frame without parsing JSON. */
static void route(struct hub_room *r, int64_t seq, int64_t gpos, const char *event,
		  const char *data, size_t data_len)
{
	hub.published++;
	if (!r->workers && !publisher_on())
		return;
	struct buf b = { 0 };
	proto_deliver_frame(&b, r->name, seq, r->epoch, gpos, event, data, data_len, pl.ts);
	struct sbuf *frame = sbuf_from(b.data, b.len);
	buf_free(&b);
	for (int s = 0; s < HUB_MAX_LINKS; s++)
		if ((r->workers >> s & 1) && hub.links[s])
			ipc_chan_send_shared(&hub.links[s]->ch, frame);
	if (publisher_on())
		publisher_message(r->name, seq, frame);
	sbuf_unref(frame);
}

/* Writes one sequenced message and its webhook deliveries. It takes the
 * next global position (commit order over all rooms: the Socket.IO offset),
 * set in *gpos; a rolled-back one is simply never used. The room's own row
 * is written once per transaction, by rooms_save. */
static bool store_one(struct hub_room *r, int64_t seq, const char *event, const char *data,
		      size_t len, const char *idem, int64_t *gpos)
{
	*gpos = ++hub.gpos;
	if (!r->txn_gpos) {
		xgrow(&pl.stored, &pl.stored_cap, pl.nstored + 1, sizeof(*pl.stored));
		pl.stored[pl.nstored++] = r;
	}
	r->txn_gpos = *gpos;
	return store_message_add(hub.store, r->id, seq, *gpos, event, data, len, pl.ts, idem,
				 pl.now) == 0 &&
	       outbox_message(r->name, seq, event, data, len) == 0;
}

/* Before the commit: each room given messages records its newest seq and gpos. */
static bool rooms_save(void)
{
	for (size_t i = 0; i < pl.nstored; i++) {
		struct hub_room *r = pl.stored[i];
		if (store_room_set_seq(hub.store, r->id, r->last_seq, r->txn_gpos) < 0)
			return false;
	}
	return true;
}

/* After the transaction, before any room may be freed. */
static void rooms_forget(void)
{
	for (size_t i = 0; i < pl.nstored; i++)
		pl.stored[i]->txn_gpos = 0;
	pl.nstored = 0;
}

static void batch_add(struct pub *p)
{
	if (p->queued)
		return;
	p->queued = true;
	p->next = NULL;
	*pl.batch_tail = p;
	pl.batch_tail = &p->next;
}

/* Decides, for one room of a publish, whether it is answered as a duplicate,
 * held by the room's throttle window, or sequenced in this transaction.
 * Returns -1 when the database could not tell. */
static int pub_place(struct pub *p, struct pub_room *pr, int64_t mono)
{
	struct hub_room *r = pr->room;
	if (p->idem) {
		int found = store_idem_find(hub.store, r->id, p->idem, pl.now, &pr->seq);
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
			/* The newest wins: the one waiting is answered as superseded,
			 * with the outcome of the commit that stores its replacement. */
			struct pub *old = r->held;
			for (size_t i = 0; i < old->nrooms; i++) {
				struct pub_room *or = &old->rooms[i];
				if (or->room == r && or->state == PUB_HELD) {
					or->state = PUB_SUPERSEDED;
					or->superseded = true;
					or->next_superseded = r->superseded;
					r->superseded = or;
					old->held--;
				}
			}
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

int64_t pipeline_emit(const char *room, const char *event, const char *data, size_t len)
{
	struct hub_room *r = hub_room_get(room);
	if (!r)
		return -1;
	xgrow(&pl.emitted, &pl.cap, pl.nemitted + 1, sizeof(*pl.emitted));
	struct emitted *e = &pl.emitted[pl.nemitted++];
	*e = (struct emitted){ r, r->last_seq + 1, r->last_seq, 0, xstrdup(event),
			       xstrndup(data, len), len };
	r->last_seq = e->seq;
	return store_one(r, e->seq, event, data, len, NULL, &e->gpos) ? e->seq : -1;
}

int64_t pipeline_now(void)
{
	return pl.now;
}

const char *pipeline_ts(void)
{
	return pl.ts;
}

/* After the transaction: routes what the jobs emitted, or takes their seqs
 * back, then lets each job answer. */
static void jobs_finish(struct hub_job *list, bool ok)
{
	for (size_t i = 0; i < pl.nemitted; i++) {
		struct emitted *e = &pl.emitted[i];
		if (ok)
			route(e->room, e->seq, e->gpos, e->event, e->data, e->len);
		else
			e->room->last_seq = MIN(e->room->last_seq, e->old_seq);
		free(e->event);
		free(e->data);
	}
	pl.nemitted = 0;
	if (ok)
		hub_rooms_commit();
	else
		hub_rooms_rollback();
	while (list) {
		struct hub_job *j = list;
		list = j->next;
		j->done(j, ok);
	}
}

/* Answers and frees a publish whose rooms are all settled. */
static void pub_finish(struct pub *p)
{
	if (!pub_settled(p))
		return;
	if (p->failed)
		hub_reply_error(p->from, p->req, 503, "unavailable", "database write failed");
	else
		pub_answer(p);
	pub_free(p);
}

/* The publish that replaced r's superseded ones has committed (or failed):
 * each of them is settled with that outcome, and answered once all its
 * rooms are (unless it is still on the batch list, which answers it). */
static void settle_superseded(struct hub_room *r, bool ok)
{
	struct pub_room *pr = r->superseded;
	r->superseded = NULL;
	while (pr) {
		struct pub_room *next = pr->next_superseded;
		struct pub *p = pr->pub;
		pr->state = PUB_DONE;
		p->failed |= !ok;
		if (!p->queued)
			pub_finish(p);
		pr = next;
	}
}

/* Group commit: everything that arrived in this loop turn, one transaction;
 * nothing is delivered or acknowledged before the commit succeeded. When it
 * fails, every publish that had rooms to place in it is answered 503 (a
 * duplicate found in this batch may point at a rolled-back original) and
 * each room's seq goes back to what it was before the batch. */
static void commit_batch(void)
{
	struct pub *list = pl.batch;
	struct hub_job *jobs = pl.jobs;
	pl.batch = NULL;
	pl.batch_tail = &pl.batch;
	pl.jobs = NULL;
	pl.jobs_tail = &pl.jobs;
	if (!list && !jobs)
		return;
	pl.now = now_ms();
	ts_format(pl.now, pl.ts);
	int64_t mono = mono_ms();
	for (struct pub *p = list; p; p = p->next) {
		p->placing = false;
		for (size_t i = 0; i < p->nrooms; i++)
			p->placing |= p->rooms[i].state <= PUB_RELEASED;
	}
	bool ok = store_begin(hub.store) == 0;
	hub.in_txn = ok;
	for (struct pub *p = list; ok && p; p = p->next) {
		for (size_t i = 0; ok && i < p->nrooms; i++) {
			struct pub_room *pr = &p->rooms[i];
			if (pr->state <= PUB_RELEASED && pub_place(p, pr, mono) < 0)
				ok = false;
			else if (pr->state == PUB_STORED)
				ok = store_one(pr->room, pr->seq, p->event, p->data, p->data_len, p->idem,
					       &pr->gpos);
		}
	}
	for (struct hub_job *j = jobs; ok && j; j = j->next)
		ok = j->run(j) == 0;
	if (ok)
		ok = rooms_save() && store_commit(hub.store) == 0;
	if (!ok) {
		log_error("event=commit_failed error=\"%s\"", store_errmsg(hub.store));
		store_rollback(hub.store);
	}
	rooms_forget();
	hub.in_txn = false;
	hub.commits++;

	struct pub *p, *next;
	for (p = list; p; p = next) {
		next = p->next;
		p->queued = false;
		if (!ok && p->placing) {
			for (size_t i = 0; i < p->nrooms; i++) {
				struct pub_room *pr = &p->rooms[i];
				struct hub_room *r = pr->room;
				/* The first seq a room handed out in this batch is the
				 * smallest old_seq: what the database still holds. */
				if (pr->state == PUB_STORED)
					r->last_seq = MIN(r->last_seq, pr->old_seq);
				if (pr->state == PUB_STORED || r->held == p)
					settle_superseded(r, false);
				if (r->held == p)
					r->held = NULL;
				if (pr->state != PUB_SUPERSEDED)
					pr->state = PUB_DONE;
			}
			p->failed = true;
			pub_finish(p);
			continue;
		}
		for (size_t i = 0; i < p->nrooms; i++) {
			struct pub_room *pr = &p->rooms[i];
			if (pr->state != PUB_STORED)
				continue;
			route(pr->room, pr->seq, pr->gpos, p->event, p->data, p->data_len);
			pr->state = PUB_DONE;
			settle_superseded(pr->room, true);
		}
		pub_finish(p);
	}
	jobs_finish(jobs, ok);
	outbox_committed(ok);
}

void pipeline_commit(void)
{
	/* A commit can settle publishes, or requeue jobs, for the next pass. */
	while (pl.batch || pl.jobs)
		commit_batch();
}

void pipeline_job(struct hub_job *j)
{
	j->next = NULL;
	*pl.jobs_tail = j;
	pl.jobs_tail = &j->next;
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

void pipeline_room_init(struct hub_room *r)
{
	ev_init(&r->throttle_timer, throttle_cb);
	r->throttle_timer.data = r;
}

void pipeline_publish(struct link *l, struct ipc_reader *r)
{
	struct pub *p = xcalloc(1, sizeof(*p));
	p->from = l;
	p->req = ipc_get_u64(r);
	uint32_t n = ipc_get_u32(r);
	if (n == 0 || n > 1000 || r->err) {
		hub_reply_error(l, p->req, 400, "bad_request", "bad room count");
		free(p);
		return;
	}
	p->rooms = xcalloc(n, sizeof(*p->rooms));
	for (uint32_t i = 0; i < n; i++) {
		char name[ROOM_MAX + 1];
		p->rooms[i].pub = p;
		ipc_get_str(r, name, sizeof(name));
		if (r->err)
			break;
		p->rooms[i].room = hub_room_get(name);
		if (!p->rooms[i].room) {
			hub_reply_error(l, p->req, 503, "unavailable", "database unavailable");
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
		hub_reply_error(l, p->req, 400, "bad_request", "malformed publish");
		pub_free(p);
		return;
	}
	batch_add(p);
}

void pipeline_link_lost(struct link *l)
{
	for (struct pub *p = pl.batch; p; p = p->next)
		if (p->from == l)
			p->from = NULL;
	for (struct hub_job *j = pl.jobs; j; j = j->next)
		if (j->from == l)
			j->from = NULL;
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&hub.rooms, &it))) {
		struct hub_room *r = e->val;
		if (r->held && r->held->from == l)
			r->held->from = NULL;
		for (struct pub_room *pr = r->superseded; pr; pr = pr->next_superseded)
			if (pr->pub->from == l)
				pr->pub->from = NULL;
	}
}
