/* relay.c -- an edge's relay (relay.h).
 *
 * A room is followed while a worker wants it: SUBSCRIBE to its channel, and
 * once Redis confirms, its head (epoch, seq) from the primary makes it ready
 * and is what the workers are told. From then on a message is handed on only
 * when it is the next one: the last seq delivered to workers grows by one,
 * with nothing lost or doubled. A message after a gap waits while the gap is
 * filled from the room's stream, else from the primary, which also answers
 * every two seconds with the heads of all rooms in case a room's last message
 * never reached Redis. */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "log.h"
#include "registry.h"
#include "uplink.h"
#include "util.h"

#define RELAY_TICK 1.0              /* seconds: primary's address, heartbeat, retries */
#define RELAY_HEADS_TICKS 2         /* ticks between the heads of every room */
#define RELAY_HEADS_BATCH 1000      /* rooms per heads call */
#define RELAY_FILL_CHUNK 512        /* messages per XRANGE or frames call */
#define RELAY_PENDING_MAX 1024      /* messages kept per room while a gap is filled */
#define RELAY_HISTORY_MAX (8u << 20)  /* bytes of frames in one history reply */
#define RELAY_REQUEST_PATH "/api/cluster/request"

/* A message that waits for the ones before it. */
struct pending {
	int64_t seq;
	char epoch[STORE_EPOCH_LEN + 1];
	struct sbuf *frame;
};

struct relay_room {
	char *name;
	char epoch[STORE_EPOCH_LEN + 1];
	int64_t last;              /* seq delivered to the workers */
	int64_t head;              /* the primary's last seq, as last heard */
	uint64_t workers;          /* bit per worker slot */
	unsigned refs;             /* the rooms map, and each fill in flight */
	uint32_t resets;           /* epoch changes: a fill started before one is stale */
	bool ready;                /* epoch and last known, the workers told */
	bool want_head;            /* ask the primary for its head */
	bool asking;               /* in a heads call */
	bool filling;              /* one fill at a time */
	bool verify;               /* the primary named another epoch: fill from its start */
	struct pending *pending;   /* by seq */
	size_t npending, cap;
};

/* A worker's request that waits on Redis or the primary. */
struct ask {
	struct link *l;            /* NULL once the worker went away */
	uint64_t req;
	char *room;                /* history */
	int64_t after;
	int limit;
	struct ask *prev, *next;
};

/* A fill: the room's messages after from. */
struct fill {
	struct relay_room *r;
	uint32_t resets;
	int64_t from;
};

static struct {
	const struct config *cfg;
	struct cluster_link sub;   /* SUBSCRIBE only; commands go on hub.redis */
	struct map rooms;          /* name -> relay_room */
	struct ask *asks;
	ev_timer tick;
	ev_prepare batch;
	unsigned ticks;
	bool heads_wanted;         /* rooms want their head: ask before the loop blocks */
	bool primary_up;           /* the last call reached it */
	bool stopping;
	char idem_token[17];       /* with the node name: keys of forwarded publishes */
	uint64_t idem_next;
} rl;

static void room_fill(struct relay_room *r);

/* ---- frames --------------------------------------------------------------------- */

/* What the relay reads of an IPC_DELIVER frame. */
struct frame {
	const char *room;
	size_t room_len;
	int64_t seq;
	char epoch[STORE_EPOCH_LEN + 1];
};

/* The IPC_DELIVER frame at the start of p[0..len): its length, or 0 when
 * there is no whole, valid one. */
static size_t frame_read(const char *p, size_t len, struct frame *f)
{
	uint16_t type;
	const uint8_t *payload;
	uint32_t plen;
	long n = ipc_frame_next((const uint8_t *)p, len, &type, &payload, &plen);
	if (n <= 0 || type != IPC_DELIVER)
		return 0;
	struct ipc_reader r;
	ipc_reader_init(&r, payload, plen);
	f->room = ipc_get_bytes(&r, &f->room_len);
	f->seq = (int64_t)ipc_get_u64(&r);
	ipc_get_str(&r, f->epoch, sizeof(f->epoch));
	return r.err || f->seq <= 0 ? 0 : (size_t)n;
}

static bool frame_of(const struct frame *f, const char *room)
{
	return f->room_len == strlen(room) && memcmp(f->room, room, f->room_len) == 0;
}

/* A stream entry ([id, [field, value, ...]]): its seq (from the id "seq-0")
 * and its field f. */
static bool entry_read(const redisReply *e, int64_t *seq, const char **p, size_t *len)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
		return false;
	*seq = strtoll(e->element[0]->str, NULL, 10);
	const redisReply *fields = e->element[1];
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i], *v = fields->element[i + 1];
		if (k->type == REDIS_REPLY_STRING && strcmp(k->str, "f") == 0 &&
		    v->type == REDIS_REPLY_STRING) {
			*p = v->str;
			*len = v->len;
			return true;
		}
	}
	return false;
}

/* An XRANGE reply that begins with seq first. */
static bool stream_starts_at(const redisReply *reply, int64_t first)
{
	int64_t seq;
	const char *p;
	size_t len;
	return reply && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
	       entry_read(reply->element[0], &seq, &p, &len) && seq == first;
}

/* ---- rooms ---------------------------------------------------------------------- */

static struct relay_room *room_find(const char *name)
{
	return map_get(&rl.rooms, name, strlen(name));
}

static void pending_clear(struct relay_room *r)
{
	for (size_t i = 0; i < r->npending; i++)
		sbuf_unref(r->pending[i].frame);
	r->npending = 0;
}

static void room_release(struct relay_room *r)
{
	if (--r->refs)
		return;
	pending_clear(r);
	free(r->pending);
	free(r->name);
	free(r);
}

static void sub_reply(redisAsyncContext *ac, void *reply, void *arg);

/* SUBSCRIBE or UNSUBSCRIBE the room's channel; what Redis says of it comes to sub_reply. */
static void room_channel(const char *verb, const char *name)
{
	char key[CLUSTER_KEY_MAX];
	cluster_key_room(key, name);
	if (rl.sub.up)
		redisAsyncCommand(rl.sub.ac, sub_reply, NULL, "%s %s", verb, key);
}

/* Tells the workers of mask the room's epoch and last seq. */
static void room_tell(struct relay_room *r, uint64_t mask)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_ROOM_STATE);
	ipc_put_cstr(&b, r->name);
	ipc_put_cstr(&b, r->epoch);
	ipc_put_u64(&b, (uint64_t)r->last);
	ipc_end(&b, m);
	struct sbuf *frame = sbuf_from(b.data, b.len);
	buf_free(&b);
	for (int s = 0; s < HUB_MAX_LINKS; s++)
		if ((mask & (1ULL << s)) && hub.links[s])
			ipc_chan_send_shared(&hub.links[s]->ch, frame);
	sbuf_unref(frame);
}

static void room_forget(struct relay_room *r)
{
	room_channel("UNSUBSCRIBE", r->name);
	map_del(&rl.rooms, r->name, strlen(r->name));
	room_release(r);
}

/* ---- delivery in order ---------------------------------------------------------- */

static void room_deliver(struct relay_room *r, struct sbuf *frame, int64_t seq)
{
	for (int s = 0; s < HUB_MAX_LINKS; s++)
		if ((r->workers & (1ULL << s)) && hub.links[s])
			ipc_chan_send_shared(&hub.links[s]->ch, frame);
	r->last = seq;
}

static void pending_add(struct relay_room *r, struct sbuf *frame, int64_t seq, const char *epoch)
{
	size_t i = r->npending;
	while (i > 0 && r->pending[i - 1].seq > seq)
		i--;
	/* Beyond the cap the fill fetches it again: head covers it. */
	if ((i > 0 && r->pending[i - 1].seq == seq) || r->npending >= RELAY_PENDING_MAX)
		return;
	xgrow(&r->pending, &r->cap, r->npending + 1, sizeof(*r->pending));
	memmove(&r->pending[i + 1], &r->pending[i], (r->npending - i) * sizeof(*r->pending));
	r->pending[i].seq = seq;
	snprintf(r->pending[i].epoch, sizeof(r->pending[i].epoch), "%s", epoch);
	r->pending[i].frame = sbuf_ref(frame);
	r->npending++;
}

/* Hands on the waiting messages that now follow; a gap left is filled. */
static void room_drain(struct relay_room *r)
{
	size_t i = 0;
	for (; i < r->npending && r->pending[i].seq <= r->last + 1; i++) {
		if (r->pending[i].seq == r->last + 1)
			room_deliver(r, r->pending[i].frame, r->pending[i].seq);
		sbuf_unref(r->pending[i].frame);
	}
	if (i) {
		r->npending -= i;
		memmove(r->pending, r->pending + i, r->npending * sizeof(*r->pending));
	}
	room_fill(r);
}

/* The primary's room has another history (it was created again): its seqs
 * start over. The workers hear of it as after a hub restart. */
static void room_reset(struct relay_room *r, const char *epoch)
{
	bool had_history = r->epoch[0] || r->last;
	if (had_history)
		log_warn("event=room_epoch_changed room=%s epoch=%s was=%s", r->name, epoch,
			 r->epoch);
	snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
	r->last = r->head = 0;
	r->resets++;
	pending_clear(r);
	if (had_history)
		room_tell(r, r->workers);
}

/* A message for r, live or fetched: handed on when it is the next one,
 * dropped when the workers had it, kept while the ones before it are not. */
static void room_offer(struct relay_room *r, struct sbuf *frame, int64_t seq, const char *epoch)
{
	if (!r->ready) {
		pending_add(r, frame, seq, epoch);
		return;
	}
	if (strcmp(epoch, r->epoch) != 0)
		room_reset(r, epoch);
	if (seq <= r->last)
		return;
	r->head = MAX(r->head, seq);
	if (seq == r->last + 1) {
		room_deliver(r, frame, seq);
		room_drain(r);
	} else {
		pending_add(r, frame, seq, epoch);
		room_fill(r);
	}
}

/* Offers every frame of r in body (concatenated frames); returns how many. */
static size_t room_offer_all(struct relay_room *r, const char *body, size_t len)
{
	struct frame f;
	size_t n = 0, used;
	for (; len > 0 && (used = frame_read(body, len, &f)) > 0; body += used, len -= used) {
		if (!frame_of(&f, r->name))
			break;
		struct sbuf *frame = sbuf_from(body, used);
		room_offer(r, frame, f.seq, f.epoch);
		sbuf_unref(frame);
		n++;
	}
	return n;
}

/* The primary's head of r: a new room is ready; one behind is filled. */
static void room_head(struct relay_room *r, const char *epoch, int64_t seq)
{
	if (r->ready) {
		if (strcmp(epoch, r->epoch) == 0)
			r->head = MAX(r->head, seq);
		else if (*epoch)
			r->verify = true;    /* maybe a stale answer: the history itself tells */
		room_fill(r);
		return;
	}
	snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
	r->last = seq;
	r->head = MAX(r->head, seq);
	r->ready = true;
	room_tell(r, r->workers);
	/* What came live meanwhile, in order, now that there is a place to start. */
	struct pending *early = r->pending;
	size_t n = r->npending;
	r->pending = NULL;
	r->npending = r->cap = 0;
	for (size_t i = 0; i < n; i++) {
		room_offer(r, early[i].frame, early[i].seq, early[i].epoch);
		sbuf_unref(early[i].frame);
	}
	free(early);
	room_fill(r);
}

/* ---- filling gaps --------------------------------------------------------------- */

static bool room_behind(const struct relay_room *r)
{
	return r->verify || r->last < r->head || r->npending;
}

static void fill_end(struct fill *f)
{
	f->r->filling = false;
	room_release(f->r);
	free(f);
}

/* True (and f ended) when its answer is of no use: the room is forgotten,
 * or its epoch changed since the fill began (it starts again). */
static bool fill_stale(struct fill *f)
{
	struct relay_room *r = f->r;
	bool gone = rl.stopping || room_find(r->name) != r;
	if (!gone && f->resets == r->resets)
		return false;
	fill_end(f);               /* r lives on while it is followed */
	if (!gone)
		room_fill(r);
	return true;
}

static void fill_primary_done(void *arg, int status, const char *body, size_t len);

static void primary_seen(int status)
{
	bool up = status != 0;
	if (rl.stopping)
		return;
	if (up != rl.primary_up)
		log_msg(up ? LOG_INFO : LOG_WARN, "event=primary_%s", up ? "up" : "down");
	rl.primary_up = up;
}

static void fill_from_primary(struct fill *f)
{
	char path[ROOM_MAX + 96];
	snprintf(path, sizeof(path), "/api/cluster/frames?room=%s&after=%lld&limit=%d", f->r->name,
		 (long long)f->from, RELAY_FILL_CHUNK);
	uplink_call("GET", path, NULL, 0, fill_primary_done, f);
}

static void fill_stream_done(redisAsyncContext *ac, void *reply, void *arg)
{
	struct fill *f = arg;
	if (fill_stale(f))
		return;
	redisReply *rep = reply;
	if (!stream_starts_at(rep, f->from + 1)) {
		fill_from_primary(f);      /* the stream does not reach back that far */
		return;
	}
	struct relay_room *r = f->r;
	int64_t last = r->last;
	uint32_t resets = r->resets;
	for (size_t i = 0; i < rep->elements; i++) {
		int64_t seq;
		const char *p;
		size_t len;
		if (!entry_read(rep->element[i], &seq, &p, &len) || room_offer_all(r, p, len) != 1)
			break;
	}
	if (r->last == last && r->resets == resets) {
		fill_from_primary(f);      /* nothing of use in the stream */
		return;
	}
	r->verify = false;
	fill_end(f);
	room_fill(r);
}

static void fill_primary_done(void *arg, int status, const char *body, size_t len)
{
	struct fill *f = arg;
	primary_seen(status);
	if (fill_stale(f))
		return;
	struct relay_room *r = f->r;
	if (status != 200) {
		/* The tick tries again. */
		log_debug("event=fill_failed room=%s status=%d", r->name, status);
		fill_end(f);
		return;
	}
	int64_t last = r->last;
	uint32_t resets = r->resets;
	room_offer_all(r, body, len);
	if (r->last == last && r->resets == resets && !r->verify) {
		/* Nothing more is to be had: what is missing was pruned. */
		if (r->npending) {
			log_warn("event=gap_skipped room=%s after=%lld next=%lld", r->name,
				 (long long)r->last, (long long)r->pending[0].seq);
			r->last = r->pending[0].seq - 1;
		} else {
			r->head = r->last;
		}
	}
	r->verify = false;
	fill_end(f);
	room_drain(r);
}

/* Fetches what r misses, from the stream when Redis is there, else from the
 * primary; one fill at a time, each followed by the next until caught up. */
static void room_fill(struct relay_room *r)
{
	if (rl.stopping || !r->ready || r->filling || !room_behind(r))
		return;
	struct fill *f = xmalloc(sizeof(*f));
	*f = (struct fill){ .r = r, .resets = r->resets, .from = r->verify ? 0 : r->last };
	r->filling = true;
	r->refs++;
	char key[CLUSTER_KEY_MAX];
	cluster_key_log(key, r->name);
	if (!hub.redis.up ||
	    redisAsyncCommand(hub.redis.ac, fill_stream_done, f, "XRANGE %s %lld-0 + COUNT %d", key,
			      (long long)f->from + 1, RELAY_FILL_CHUNK) != REDIS_OK)
		fill_from_primary(f);
}

/* ---- heads ---------------------------------------------------------------------- */

struct heads_call {
	char **names;
	size_t n;
};

static void heads_done(void *arg, int status, const char *body, size_t len)
{
	struct heads_call *hc = arg;
	primary_seen(status);
	json_t *v = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *heads = json_object_get(v, "heads");
	if (status != 200)
		log_debug("event=heads_failed status=%d rooms=%zu", status, hc->n);
	for (size_t i = 0; i < hc->n; i++) {
		struct relay_room *r = rl.stopping ? NULL : room_find(hc->names[i]);
		json_t *h = json_object_get(heads, hc->names[i]);
		const char *epoch = json_string_value(json_object_get(h, "epoch"));
		json_t *seq = json_object_get(h, "seq");
		if (r)
			r->asking = false;
		if (r && epoch && json_is_integer(seq) && strlen(epoch) <= STORE_EPOCH_LEN) {
			r->want_head = false;
			room_head(r, epoch, json_integer_value(seq));
		}
		free(hc->names[i]);
	}
	json_decref(v);
	free(hc->names);
	free(hc);
}

static void heads_call(char **names, size_t n)
{
	struct heads_call *hc = xmalloc(sizeof(*hc));
	*hc = (struct heads_call){ names, n };
	struct buf b = { 0 };
	buf_appends(&b, "{\"op\":\"heads\",\"rooms\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_appends(&b, ",");
		buf_append_json_str(&b, names[i], strlen(names[i]));
	}
	buf_appends(&b, "]}");
	uplink_call("POST", RELAY_REQUEST_PATH, b.data, b.len, heads_done, hc);
	buf_free(&b);
}

/* Asks the heads of the rooms that want theirs, in batches; probe: even
 * when none does (the primary's reachability). */
static void heads_send(bool probe)
{
	rl.heads_wanted = false;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&rl.rooms, &it))) {
		struct relay_room *r = e->val;
		if (!r->want_head || r->asking)
			continue;
		r->asking = true;
		xgrow(&names, &cap, n + 1, sizeof(*names));
		names[n++] = xstrdup(r->name);
		if (n == RELAY_HEADS_BATCH) {
			heads_call(names, n);
			names = NULL;
			n = cap = 0;
		}
	}
	if (n || probe)
		heads_call(names, n);
	else
		free(names);
}

static void batch_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	if (rl.heads_wanted)
		heads_send(false);
}

/* ---- Redis ---------------------------------------------------------------------- */

/* A message of the primary's to every edge: a user's disconnect. */
static void control(const redisReply *m)
{
	if (strcmp(m->element[0]->str, "message") != 0 || m->element[2]->type != REDIS_REPLY_STRING)
		return;
	json_t *v = json_loadb(m->element[2]->str, m->element[2]->len, 0, NULL);
	const char *op = json_string_value(json_object_get(v, "op"));
	const char *user = json_string_value(json_object_get(v, "user"));
	if (op && user && strcmp(op, "disconnect") == 0)
		log_info("event=disconnect_user user=%s connections=%d", user,
			 registry_kick_user(user));
	json_decref(v);
}

/* Every reply on the subscriber link: confirmations and messages. */
static void sub_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	redisReply *m = reply;
	if (!m || m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
	    m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_STRING)
		return;
	const char *channel = m->element[1]->str;
	if (strcmp(channel, CLUSTER_KEY_CONTROL) == 0) {
		control(m);
		return;
	}
	size_t plen = sizeof(CLUSTER_ROOM_PREFIX) - 1;
	struct relay_room *r = strncmp(channel, CLUSTER_ROOM_PREFIX, plen) == 0
			       ? room_find(channel + plen) : NULL;
	if (!r)
		return;
	if (strcmp(m->element[0]->str, "subscribe") == 0) {
		/* From now on nothing is missed: the head the primary gives is a
		 * safe place to start (or to check the room is not behind). */
		r->want_head = true;
		rl.heads_wanted = true;
		return;
	}
	if (strcmp(m->element[0]->str, "message") != 0 || m->element[2]->type != REDIS_REPLY_STRING)
		return;
	struct frame f;
	const char *p = m->element[2]->str;
	size_t len = m->element[2]->len;
	if (frame_read(p, len, &f) != len || !frame_of(&f, r->name)) {
		log_warn("event=bad_frame room=%s bytes=%zu", r->name, len);
		return;
	}
	struct sbuf *frame = sbuf_from(p, len);
	room_offer(r, frame, f.seq, f.epoch);
	sbuf_unref(frame);
}

static void sub_up(struct cluster_link *l)
{
	redisAsyncCommand(rl.sub.ac, sub_reply, NULL, "SUBSCRIBE %s", CLUSTER_KEY_CONTROL);
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&rl.rooms, &it)))
		room_channel("SUBSCRIBE", ((struct relay_room *)e->val)->name);
}

static void primary_got(redisAsyncContext *ac, void *reply, void *arg)
{
	redisReply *r = reply;
	if (rl.stopping || !r)
		return;
	if (r->type == REDIS_REPLY_STRING)
		uplink_set_primary(r->str);
	else if (r->type == REDIS_REPLY_NIL)
		uplink_set_primary(NULL);
}

static void primary_poll(void)
{
	if (hub.redis.up)
		redisAsyncCommand(hub.redis.ac, primary_got, NULL, "GET %s", CLUSTER_KEY_PRIMARY);
}

void relay_redis_up(void)
{
	primary_poll();
}

/* ---- the cluster view ----------------------------------------------------------- */

int64_t relay_lag(void)
{
	int64_t lag = 0;
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&rl.rooms, &it))) {
		struct relay_room *r = e->val;
		if (r->ready && r->head > r->last)
			lag += r->head - r->last;
	}
	return lag;
}

bool relay_link_up(void)
{
	return hub.redis.up && rl.sub.up && uplink_known() && rl.primary_up;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	bool all = rl.ticks++ % RELAY_HEADS_TICKS == 0;
	primary_poll();
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&rl.rooms, &it))) {
		struct relay_room *r = e->val;
		r->want_head |= all && r->ready;
		room_fill(r);              /* one that failed tries again */
	}
	heads_send(all);
}

/* ---- workers' requests ---------------------------------------------------------- */

static struct ask *ask_new(struct link *l, uint64_t req)
{
	struct ask *a = xcalloc(1, sizeof(*a));
	a->l = l;
	a->req = req;
	a->next = rl.asks;
	if (rl.asks)
		rl.asks->prev = a;
	rl.asks = a;
	return a;
}

static void ask_free(struct ask *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else
		rl.asks = a->next;
	if (a->next)
		a->next->prev = a->prev;
	free(a->room);
	free(a);
}

static void unavailable(struct ask *a)
{
	hub_reply_error(a->l, a->req, 503, "unavailable", "cluster unavailable, retry");
}

static void forward_done(void *arg, int status, const char *body, size_t len)
{
	struct ask *a = arg;
	primary_seen(status);
	if (status == 0)
		unavailable(a);
	else
		hub_reply(a->l, a->req, status, body, len);
	ask_free(a);
}

/* Only a ready edge forwards: without Redis, what it writes could not come
 * back to its own clients, so it refuses like a node whose hub is down. */
static void forward(struct link *l, uint64_t req, const char *method, const char *path,
		    const char *body, size_t len)
{
	struct ask *a = ask_new(l, req);
	if (!relay_ready()) {
		unavailable(a);
		ask_free(a);
		return;
	}
	uplink_call(method, path, body, len, forward_done, a);
}

/* The longest run of whole frames at the start of p[0..len) that fits a
 * history reply (the first always does). */
static size_t frames_fit(const char *p, size_t len)
{
	struct frame f;
	size_t at = 0, n;
	while (at < len && (n = frame_read(p + at, len - at, &f)) > 0 &&
	       (at == 0 || at + n <= RELAY_HISTORY_MAX))
		at += n;
	return at;
}

static void history_primary_done(void *arg, int status, const char *body, size_t len)
{
	struct ask *a = arg;
	primary_seen(status);
	if (status == 0)
		unavailable(a);
	else
		hub_reply(a->l, a->req, status, body, status == 200 ? frames_fit(body, len) : len);
	ask_free(a);
}

static void history_from_primary(struct ask *a)
{
	char path[ROOM_MAX + 96];
	snprintf(path, sizeof(path), "/api/cluster/frames?room=%s&after=%lld&limit=%d", a->room,
		 (long long)a->after, a->limit);
	uplink_call("GET", path, NULL, 0, history_primary_done, a);
}

static void history_stream_done(redisAsyncContext *ac, void *reply, void *arg)
{
	struct ask *a = arg;
	redisReply *rep = reply;
	if (rl.stopping) {
		unavailable(a);
		ask_free(a);
		return;
	}
	if (!stream_starts_at(rep, a->after + 1)) {
		history_from_primary(a);
		return;
	}
	struct buf b = { 0 };
	for (size_t i = 0; i < rep->elements; i++) {
		int64_t seq;
		const char *p;
		size_t len;
		if (!entry_read(rep->element[i], &seq, &p, &len) || frames_fit(p, len) != len ||
		    (b.len && b.len + len > RELAY_HISTORY_MAX))
			break;
		buf_append(&b, p, len);
	}
	hub_reply(a->l, a->req, 200, b.data, b.len);
	buf_free(&b);
	ask_free(a);
}

/* Frames of room after seq `after`: the stream holds the recent ones. */
static void history(struct link *l, uint64_t req, json_t *q)
{
	const char *room = json_string_value(json_object_get(q, "room"));
	json_int_t after = json_integer_value(json_object_get(q, "after"));
	json_int_t limit = json_integer_value(json_object_get(q, "limit"));
	if (!room || strlen(room) > ROOM_MAX || after < 0) {
		hub_reply_error(l, req, 400, "bad_request", "history needs room and after");
		return;
	}
	struct ask *a = ask_new(l, req);
	a->room = xstrdup(room);
	a->after = after;
	a->limit = limit > 0 && limit < RELAY_FILL_CHUNK ? (int)limit : RELAY_FILL_CHUNK;
	char key[CLUSTER_KEY_MAX];
	cluster_key_log(key, room);
	if (!hub.redis.up ||
	    redisAsyncCommand(hub.redis.ac, history_stream_done, a, "XRANGE %s %lld-0 + COUNT %d",
			      key, (long long)a->after + 1, a->limit) != REDIS_OK)
		history_from_primary(a);
}

/* Op http: a read the primary's database answers. */
static void http(struct link *l, uint64_t req, json_t *q)
{
	const char *method = json_string_value(json_object_get(q, "method"));
	const char *path = json_string_value(json_object_get(q, "path"));
	json_t *body = json_object_get(q, "body");
	if (!path || path[0] != '/' || (body && !json_is_string(body) && !json_is_null(body))) {
		hub_reply_error(l, req, 400, "bad_request", "http needs a path and a string body");
		return;
	}
	forward(l, req, method ? method : "GET", path, json_string_value(body),
		json_string_length(body));
}

bool relay_request(struct link *l, uint64_t req, const char *op, json_t *q)
{
	if (strcmp(op, "history") == 0) {
		history(l, req, q);
	} else if (strcmp(op, "http") == 0) {
		http(l, req, q);
	} else {
		char *s = json_dumps(q, JSON_COMPACT);
		forward(l, req, "POST", RELAY_REQUEST_PATH, s, strlen(s));
		free(s);
	}
	return true;
}

/* ---- workers' rooms and publishes ----------------------------------------------- */

static void relay_join(struct link *l, const char *name)
{
	struct relay_room *r = room_find(name);
	if (!r) {
		r = xcalloc(1, sizeof(*r));
		r->name = xstrdup(name);
		r->refs = 1;
		map_put(&rl.rooms, name, strlen(name), r);
		room_channel("SUBSCRIBE", name);
	}
	uint64_t bit = 1ULL << l->slot;
	r->workers |= bit;
	if (r->ready)
		room_tell(r, bit);
}

static void relay_leave(struct link *l, const char *name)
{
	struct relay_room *r = room_find(name);
	if (!r)
		return;
	r->workers &= ~(1ULL << l->slot);
	if (!r->workers)
		room_forget(r);
}

static void relay_publish(struct link *l, struct ipc_reader *r)
{
	uint64_t req = ipc_get_u64(r);
	uint32_t n = ipc_get_u32(r);
	struct buf b = { 0 };
	size_t len;
	const char *s;
	buf_appends(&b, "{\"op\":\"publish\",\"rooms\":[");
	for (uint32_t i = 0; i < n && !r->err; i++) {
		if (i)
			buf_appends(&b, ",");
		s = ipc_get_bytes(r, &len);
		buf_append_json_str(&b, s, len);
	}
	buf_appends(&b, "],\"event\":");
	s = ipc_get_bytes(r, &len);
	buf_append_json_str(&b, s, len);
	buf_appends(&b, ",\"data\":");
	s = ipc_get_bytes(r, &len);
	buf_append(&b, s, len);
	buf_appends(&b, ",\"idempotency_key\":");
	s = ipc_get_bytes(r, &len);
	if (len) {
		buf_append_json_str(&b, s, len);
	} else {
		/* Made here, so that a forward that is sent twice (libcurl retries a
		 * request on a kept-alive connection the primary closed) is stored once. */
		char key[160];
		int k = snprintf(key, sizeof(key), "%.100s/%s/%llu", rl.cfg->node_name,
				 rl.idem_token, (unsigned long long)++rl.idem_next);
		buf_append_json_str(&b, key, (size_t)k);
	}
	buf_printf(&b, ",\"from_client\":%s}", ipc_get_u8(r) ? "true" : "false");
	if (ipc_reader_done(r))
		forward(l, req, "POST", RELAY_REQUEST_PATH, b.data, b.len);
	else
		hub_reply_error(l, req, 400, "bad_request", "malformed publish");
	buf_free(&b);
}

bool relay_msg(struct link *l, uint16_t type, struct ipc_reader *r)
{
	char room[ROOM_MAX + 1];
	if (type == IPC_PUBLISH) {
		relay_publish(l, r);
		return true;
	}
	if (type != IPC_ROOM_JOIN && type != IPC_ROOM_LEAVE)
		return false;
	ipc_get_str(r, room, sizeof(room));
	if (ipc_reader_done(r) && type == IPC_ROOM_JOIN)
		relay_join(l, room);
	else if (ipc_reader_done(r))
		relay_leave(l, room);
	return true;
}

void relay_link_lost(struct link *l)
{
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&rl.rooms, &it)))
		relay_leave(l, ((struct relay_room *)e->val)->name);
	for (struct ask *a = rl.asks; a; a = a->next)
		if (a->l == l)
			a->l = NULL;
}

/* ---- state and lifecycle -------------------------------------------------------- */

bool relay_ready(void)
{
	return hub.redis.up && rl.sub.up && uplink_known();
}

void relay_stats(json_t *stats)
{
	json_object_set_new(stats, "relay",
			    json_pack("{s:{s:s, s:s}, s:I, s:I, s:I}",
				      "link", "redis", hub.redis.up && rl.sub.up ? "up" : "down",
				      "primary", uplink_known() && rl.primary_up ? "up" : "down",
				      "lag", (json_int_t)relay_lag(),
				      "rooms_followed", (json_int_t)rl.rooms.count,
				      "calls_in_flight", (json_int_t)uplink_pending()));
}

void relay_start(const struct config *cfg)
{
	rl.cfg = cfg;
	random_hex(rl.idem_token, (sizeof(rl.idem_token) - 1) / 2);
	uplink_init(hub.loop, cfg);
	cluster_link_open(&rl.sub, hub.loop, cfg, "subscriber", sub_up, NULL, NULL);
	ev_timer_init(&rl.tick, tick_cb, RELAY_TICK, RELAY_TICK);
	ev_timer_start(hub.loop, &rl.tick);
	ev_prepare_init(&rl.batch, batch_cb);
	ev_prepare_start(hub.loop, &rl.batch);
	log_info("event=relay_ready node=%s redis=%s:%d", cfg->node_name, cfg->redis_host,
		 cfg->redis_port);
}

void relay_stop(void)
{
	rl.stopping = true;
	ev_timer_stop(hub.loop, &rl.tick);
	ev_prepare_stop(hub.loop, &rl.batch);
	/* Calls in flight end now, each releasing what it holds. */
	cluster_link_close(&rl.sub);
	uplink_free();
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&rl.rooms, &it)))
		room_forget(e->val);
	map_free(&rl.rooms);
}
