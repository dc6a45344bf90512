/* sio.c -- the Socket.IO v5 protocol on Engine.IO sessions: namespaces ("/"
 * and those of socketio_namespaces, each a socket of its own over one
 * session), CONNECT with the auth payload (the same JWT checks as /ws),
 * herald's verbs as events with acks, binary attachments, room events through
 * the shared fan-out of room.c, and connection state recovery on "/":
 * sessions are stored in SQLite by the hub (an edge's, by the primary's), and
 * a reconnecting client gets what it missed in every room, merged in
 * global-position order (docs/socketio.md). */
#include "sio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <sodium.h>

#include "acl.h"
#include "config.h"
#include "http.h"
#include "ipc.h"
#include "jwt.h"
#include "log.h"
#include "proto.h"
#include "room.h"
#include "session.h"
#include "siopkt.h"
#include "store.h"
#include "util.h"
#include "worker.h"
#include "ws.h"

#define SIO_ID_BYTES 10                  /* random socket ids (sid, pid) */
#define SIO_ID_LEN (2 * SIO_ID_BYTES)    /* as hex text */
#define REC_CHUNK 256                    /* rows per history read while recovering */
#define REC_QUEUE_LOW (256 * 1024)       /* read more when less than this is queued */
#define ALIAS_MAX 64

struct rec_row {
	int64_t seq, gpos;
	char *packet;
	size_t len;
};

/* One room's history being merged. */
struct rec_cursor {
	struct sub *sub;
	int64_t after;                       /* last seq merged */
	struct rec_row *rows;
	size_t n, i;
	bool done;                           /* nothing more can be read */
	struct history_fetch *fetch;         /* edge: its history request or retry, or NULL */
};

/* Connection state recovery in progress: the missed messages of every room,
 * sent in gpos order; live deliveries wait until all rooms are caught up. */
struct recovery {
	int64_t offset;
	struct rec_cursor *cur;
	size_t ncur;
	struct sio_conn *next;               /* on the list of recoveries */
};

/* A namespace as sockets know it: its name and the herald namespace whose
 * rooms it serves (NULL: every room). Interned: a socket keeps its own across
 * configuration reloads, and one namespace is one pointer. */
struct sio_nsp {
	const char *name;
	const char *ns;
};

/* A socket: one namespace connected over an Engine.IO session. */
struct sio_sock {
	struct eio_session *es;
	const struct sio_nsp *nsp;
	struct sio_sock *next;               /* the session's next socket */
	struct jwt_claims claims;            /* claims.sub NULL: anonymous */
	struct sub **subs;
	size_t nsubs, cap;
};

/* What a session needs now and then, allocated on demand and freed when idle. */
struct sio_more {
	/* a binary packet waiting for its attachments */
	char *bin_head;
	size_t bin_head_len;
	unsigned bin_want;
	struct buf *bins;
	size_t nbins;
	/* recovery of "/" */
	char **acks;                         /* sent once the session is stored */
	size_t nacks, acks_cap;
	struct recovery *rec;
};

/* The Socket.IO side of an Engine.IO session: its sockets, "/" first, and
 * what they share (one registry connection, the rate limit, the handshake's
 * token). Only "/" is recovered. */
struct sio_conn {
	struct sio_sock root;                /* "/" when main; root.next: the other sockets */
	bool main;                           /* connected to "/" */
	bool reported;                       /* the hub's registry knows it */
	bool asking;                         /* edge: "/"'s CONNECT waits for the primary */
	bool dirty;                          /* "/"'s session is to be stored */
	uint8_t sid[SIO_ID_BYTES];           /* "/"'s sid and pid (recovery) */
	uint8_t pid[SIO_ID_BYTES];
	char *token;                         /* from the handshake request */
	struct sio_more *more;
	double tokens;                       /* rate limit bucket */
	ev_tstamp refilled;
};

static const struct sio_nsp nsp_root = { "/", NULL };
static struct sio_nsp **nsps;           /* every other namespace seen */
static size_t nnsps, capnsps;
static uint64_t *dirty_ids;             /* sessions whose "/" is to be stored */
static size_t ndirty, capdirty;
static struct sio_conn *recovering;
static ev_idle rec_idle;
static ev_timer rec_wait;

static struct sio_conn *conn_of(const struct sio_sock *k)
{
	return eio_data(k->es);
}

/* The session with that Engine.IO id (NULL when it is gone). */
static struct sio_conn *conn_find(uint64_t id)
{
	struct eio_session *es = eio_find_id(id);
	return es ? eio_data(es) : NULL;
}

/* The first of the session's connected sockets (then ->next). */
static struct sio_sock *conn_socks(struct sio_conn *c)
{
	return c->main ? &c->root : c->root.next;
}

/* The session's socket connected to namespace name, or NULL. */
static struct sio_sock *sock_named(struct sio_conn *c, const char *name)
{
	for (struct sio_sock *k = conn_socks(c); k; k = k->next)
		if (strcmp(k->nsp->name, name) == 0)
			return k;
	return NULL;
}

static void id_text(const uint8_t id[SIO_ID_BYTES], char out[SIO_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < SIO_ID_BYTES; i++) {
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 15];
	}
	out[SIO_ID_LEN] = '\0';
}

/* Reads an id's text; -1 when it is not one. */
static int id_read(const char *text, uint8_t id[SIO_ID_BYTES])
{
	if (strlen(text) != SIO_ID_LEN || strspn(text, "0123456789abcdef") != SIO_ID_LEN)
		return -1;
	for (size_t i = 0; i < SIO_ID_BYTES; i++) {
		unsigned v;
		sscanf(text + 2 * i, "%2x", &v);
		id[i] = (uint8_t)v;
	}
	return 0;
}

static struct sio_more *more_of(struct sio_conn *c)
{
	if (!c->more)
		c->more = xcalloc(1, sizeof(*c->more));
	return c->more;
}

/* Frees c->more once nothing in it is in use. */
static void more_trim(struct sio_conn *c)
{
	struct sio_more *m = c->more;
	if (!m || m->bin_want || m->nacks || m->rec)
		return;
	free(m->acks);
	free(m);
	c->more = NULL;
}

/* The namespace a CONNECT names when it is served ("/", one of
 * socketio_namespaces, "/custom" in conformance mode), else NULL. */
static const struct sio_nsp *nsp_find(const char *name)
{
	if (strcmp(name, "/") == 0)
		return &nsp_root;
	const char *ns = config_sio_namespace(worker.cfg, name, strlen(name));
	if (!ns && !(worker.cfg->socketio_test && strcmp(name, "/custom") == 0))
		return NULL;
	for (size_t i = 0; i < nnsps; i++) {
		const struct sio_nsp *n = nsps[i];
		if (strcmp(n->name, name) == 0 && !n->ns == !ns && (!ns || strcmp(n->ns, ns) == 0))
			return n;
	}
	struct sio_nsp *n = xmalloc(sizeof(*n));
	n->name = xstrdup(name);
	n->ns = ns ? xstrdup(ns) : NULL;
	xgrow(&nsps, &capnsps, nnsps + 1, sizeof(*nsps));
	nsps[nnsps++] = n;
	return n;
}

const char *sio_nsp(const struct sio_sock *k)
{
	return k->nsp->name;
}

/* ---- aliases ------------------------------------------------------------------------ */

struct alias {
	char event[128];
	char verb[32];
	char room[ROOM_MAX + 1];             /* a template with {name} parts */
};
static struct alias aliases[ALIAS_MAX];
static size_t naliases;
static const struct config *aliases_cfg;

/* socketio_alias = EVENT VERB TEMPLATE[, EVENT VERB TEMPLATE ...] */
static void aliases_load(void)
{
	if (aliases_cfg == worker.cfg)
		return;
	aliases_cfg = worker.cfg;
	naliases = 0;
	const char *p = worker.cfg->socketio_alias;
	while (p && *p && naliases < ALIAS_MAX) {
		size_t len = strcspn(p, ",");
		char item[512];
		snprintf(item, sizeof(item), "%.*s", (int)MIN(len, sizeof(item) - 1), p);
		struct alias *a = &aliases[naliases];
		char room[ROOM_MAX + 1] = "";
		if (sscanf(item, " %127s %31s %200s", a->event, a->verb, room) >= 2) {
			snprintf(a->room, sizeof(a->room), "%s", room);
			naliases++;
		}
		p += len;
		if (*p == ',')
			p++;
	}
}

static const struct alias *alias_find(const char *event)
{
	aliases_load();
	for (size_t i = 0; i < naliases; i++)
		if (strcmp(aliases[i].event, event) == 0)
			return &aliases[i];
	return NULL;
}

/* Fills {name} parts of tpl from arg: its member name, or arg itself when it
 * is a string or a number. Returns 0, or -1 when a part has no value. */
static int alias_room(const char *tpl, json_t *arg, char *out, size_t outlen)
{
	struct buf b = { 0 };
	int rc = 0;
	for (const char *p = tpl; *p; p++) {
		const char *end = *p == '{' ? strchr(p, '}') : NULL;
		if (!end) {
			buf_append(&b, p, 1);
			continue;
		}
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)MIN((size_t)(end - p - 1), sizeof(name) - 1),
			 p + 1);
		json_t *v = json_is_object(arg) ? json_object_get(arg, name) : arg;
		if (json_is_string(v))
			buf_appends(&b, json_string_value(v));
		else if (json_is_integer(v))
			buf_printf(&b, "%lld", (long long)json_integer_value(v));
		else
			rc = -1;
		p = end;
	}
	if (rc == 0 && b.len < outlen)
		snprintf(out, outlen, "%.*s", (int)b.len, b.data ? b.data : "");
	else
		rc = -1;
	buf_free(&b);
	return rc;
}

/* ---- sending ------------------------------------------------------------------------ */

static void send_packet(struct eio_session *es, struct buf *b)
{
	eio_send_text(es, b->data, b->len);
	buf_reset(b);
}

/* type, namespace, ack id, then the JSON payload (NULL: none). */
static void send_json(struct eio_session *es, int type, const char *nsp, int64_t id, json_t *v)
{
	struct buf b = { 0 };
	siopkt_put_header(&b, type, 0, nsp, id);
	if (v) {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		buf_appends(&b, s);
		free(s);
	}
	send_packet(es, &b);
	buf_free(&b);
}

static void connect_error(struct eio_session *es, const char *nsp, const char *message,
			  const char *code)
{
	json_t *v = code ? json_pack("{s:s, s:{s:s}}", "message", message, "data", "code", code)
			 : json_pack("{s:s}", "message", message);
	send_json(es, SIO_CONNECT_ERROR, nsp, -1, v);
	json_decref(v);
}

/* Emits event with one argument (steals v) on k's namespace. */
static void emit(struct sio_sock *k, const char *event, json_t *v)
{
	json_t *args = json_pack("[s, o]", event, v);
	send_json(k->es, SIO_EVENT, k->nsp->name, -1, args);
	json_decref(args);
}

/* An ack with one argument (steals v); without an ack id, errors are
 * emitted as an "error" event instead. */
static void ack(struct sio_sock *k, int64_t id, json_t *v)
{
	if (id >= 0) {
		json_t *args = json_pack("[o]", v);
		send_json(k->es, SIO_ACK, k->nsp->name, id, args);
		json_decref(args);
	} else if (json_is_false(json_object_get(v, "success"))) {
		emit(k, "error", v);
	} else {
		json_decref(v);
	}
}

static json_t *failure(const char *code, const char *message)
{
	return json_pack("{s:b, s:s, s:s}", "success", 0, "error", code, "message", message);
}

void sio_deliver(struct sio_sock *k, struct sbuf *ws_frame, const char *packet, size_t n)
{
	eio_send_shared(k->es, ws_frame, packet, n);
}

size_t sio_backlog(const struct sio_sock *k)
{
	return eio_backlog(k->es);
}

bool sio_is_open(const struct sio_sock *k)
{
	return eio_is_open(k->es);
}

/* ---- the registry ---------------------------------------------------------------------- */

/* The user of the first of the session's sockets (but skip) that has one. */
static const char *conn_user(struct sio_conn *c, const struct sio_sock *skip)
{
	for (struct sio_sock *k = conn_socks(c); k; k = k->next)
		if (k != skip && k->claims.sub)
			return k->claims.sub;
	return NULL;
}

/* The session is one registry connection, under the first user among its
 * sockets: per-user and per-address limits count Engine.IO connections. */
static void report_open(struct sio_conn *c)
{
	struct eio_session *es = c->root.es;
	session_report_open(eio_id(es), conn_user(c, NULL), eio_addr(es), eio_connected_at(es));
	c->reported = true;
}

/* A room of k's goes live or is left: the registry hears of it unless
 * another socket of the session holds the room too. */
static void report_room(struct sio_sock *k, struct sub *s, bool joined)
{
	struct sio_conn *c = conn_of(k);
	if (!c->reported)
		return;
	for (struct sio_sock *o = conn_socks(c); o; o = o->next)
		for (size_t i = 0; o != k && i < o->nsubs; i++)
			if (o->subs[i]->room == s->room && o->subs[i]->confirmed)
				return;
	session_report_room(eio_id(k->es), s->room->name, joined);
}

/* ---- persistence of sessions (recovery) ---------------------------------------------- */

/* Sessions are stored by the primary's hub, from an edge too (its relay
 * forwards the requests); an edge asks the primary what only its database
 * answers. */
static bool recovery_on(void)
{
	return worker.cfg->socketio_recovery;
}

/* k's rooms changed: stored at the end of the loop turn when k is "/". */
static void mark_dirty(struct sio_sock *k)
{
	struct sio_conn *c = conn_of(k);
	if (!recovery_on() || k != &c->root || !c->main || c->dirty)
		return;
	c->dirty = true;
	xgrow(&dirty_ids, &capdirty, ndirty + 1, sizeof(*dirty_ids));
	dirty_ids[ndirty++] = eio_id(k->es);
}

struct put_tag {
	uint64_t sock;
	char **acks;
	size_t nacks;
};

/* Sends the acks (to es unless NULL) and frees them. */
static void send_acks(struct eio_session *es, char **acks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (es)
			eio_send_text(es, acks[i], strlen(acks[i]));
		free(acks[i]);
	}
	free(acks);
}

static void put_reply(struct conn *conn, uint64_t tag, int status, const char *json, size_t len)
{
	struct put_tag *t = (struct put_tag *)(uintptr_t)tag;
	struct sio_conn *c = conn_find(t->sock);
	if (status != 200)
		log_warn("event=sio_session_store_failed status=%d", status);
	send_acks(c ? c->root.es : NULL, t->acks, t->nacks);
	free(t);
}

/* The session's rooms as stored: {room: [seq joined at, epoch]}. */
static json_t *rooms_json(struct sio_sock *k)
{
	json_t *o = json_object();
	for (size_t i = 0; i < k->nsubs; i++) {
		struct sub *s = k->subs[i];
		if (s->confirmed || s->held)
			json_object_set_new(o, s->room->name,
					    json_pack("[I, s]", (json_int_t)s->start_seq, s->room->epoch));
	}
	return o;
}

/* Stores "/"'s session; the acks waiting for it go once it is committed. */
static void put_session(struct sio_conn *c)
{
	struct sio_sock *k = &c->root;
	struct put_tag *t = xcalloc(1, sizeof(*t));
	t->sock = eio_id(k->es);
	if (c->more) {
		t->acks = c->more->acks;
		t->nacks = c->more->nacks;
		c->more->acks = NULL;
		c->more->nacks = c->more->acks_cap = 0;
		more_trim(c);
	}
	c->dirty = false;
	char sid[SIO_ID_LEN + 1], pid[SIO_ID_LEN + 1];
	id_text(c->sid, sid);
	id_text(c->pid, pid);
	json_t *q = json_pack("{s:s, s:s, s:s, s:s, s:o}", "op", "sio_put", "pid", pid, "sid", sid,
			      "user", k->claims.sub ? k->claims.sub : "", "rooms", rooms_json(k));
	if (!k->claims.sub)
		json_object_set_new(q, "user", json_null());
	char *text = json_dumps(q, JSON_COMPACT);
	json_decref(q);
	if (worker_request(NULL, (uint64_t)(uintptr_t)t, text, strlen(text), put_reply) < 0) {
		send_acks(k->es, t->acks, t->nacks);
		free(t);
	}
	free(text);
}

void sio_flush(void)
{
	for (size_t i = 0; i < ndirty; i++) {
		struct sio_conn *c = conn_find(dirty_ids[i]);
		if (c && c->dirty)
			put_session(c);
	}
	ndirty = 0;
}

/* An ack that must wait until the session is stored (a subscription of "/"
 * is only acknowledged once a recovery would bring it back). */
static void ack_later(struct sio_sock *k, int64_t id, json_t *v)
{
	struct sio_conn *c = conn_of(k);
	if (!recovery_on() || k != &c->root) {
		ack(k, id, v);
		return;
	}
	json_t *args = json_pack("[o]", v);
	struct buf b = { 0 };
	siopkt_put_header(&b, SIO_ACK, 0, "/", id);
	char *s = json_dumps(args, JSON_COMPACT);
	buf_appends(&b, s);
	free(s);
	json_decref(args);
	buf_append(&b, "", 1);
	struct sio_more *m = more_of(c);
	xgrow(&m->acks, &m->acks_cap, m->nacks + 1, sizeof(*m->acks));
	m->acks[m->nacks++] = b.data;
	mark_dirty(k);
}

/* ---- subscriptions --------------------------------------------------------------------- */

static struct sub *find_sub(struct sio_sock *k, const char *room)
{
	for (size_t i = 0; i < k->nsubs; i++)
		if (strcmp(k->subs[i]->room->name, room) == 0)
			return k->subs[i];
	return NULL;
}

static void add_sub(struct sio_sock *k, struct sub *s)
{
	xgrow(&k->subs, &k->cap, k->nsubs + 1, sizeof(*k->subs));
	k->subs[k->nsubs++] = s;
}

static void drop_sub(struct sio_sock *k, struct sub *s)
{
	for (size_t i = 0; i < k->nsubs; i++)
		if (k->subs[i] == s)
			k->subs[i] = k->subs[--k->nsubs];
	if (s->confirmed)
		report_room(k, s, false);
	room_unsubscribe(s);
}

static json_t *sub_state(struct sub *s)
{
	return json_pack("{s:b, s:s, s:I, s:s}", "success", 1, "room", s->room->name,
			 "seq", (json_int_t)s->sent_seq, "epoch", s->room->epoch);
}

void sio_subscribed(struct sub *s)
{
	struct sio_sock *k = s->sio;
	if (s->confirmed)
		return;     /* a catch-up: nothing to say */
	s->confirmed = true;
	report_room(k, s, true);
	if (s->req_id) {
		ack_later(k, strtoll(s->req_id, NULL, 10), sub_state(s));
		free(s->req_id);
		s->req_id = NULL;
	}
	mark_dirty(k);
}

/* The herald room that name means on k's namespace into out: any room on
 * "/"; on a namespace served as herald namespace NS, NS:ID given as it is or
 * as ID. Returns NULL, or the failure to answer. */
static json_t *sock_room(const struct sio_sock *k, const char *name, char out[ROOM_MAX + 1])
{
	const char *ns = k->nsp->ns;
	size_t n = acl_room_namespace(name, NULL);
	int len;
	if (!ns || (n == strlen(ns) && memcmp(name, ns, n) == 0))
		len = snprintf(out, ROOM_MAX + 1, "%s", name);
	else if (!strchr(name, ':'))
		len = snprintf(out, ROOM_MAX + 1, "%s:%s", ns, name);
	else
		return failure("forbidden", "a room of another namespace");
	return len > ROOM_MAX ? failure("bad_request", "invalid room name") : NULL;
}

/* Subscribes to the room name means; the ack (when id >= 0) follows its
 * confirmation (or comes at once when the room was subscribed already).
 * Returns NULL then, else the failure, for the caller to report. */
static json_t *subscribe_one(struct sio_sock *k, const char *name, int64_t id)
{
	char room[ROOM_MAX + 1];
	json_t *f = sock_room(k, name, room);
	if (f)
		return f;
	const char *err = session_check_room(&k->claims, room, false);
	if (err)
		return failure(err, strcmp(err, "forbidden") == 0 ? "not allowed to subscribe"
								   : "invalid room name");
	struct sub *old = find_sub(k, room);
	if (old) {
		if (id >= 0) {
			if (old->confirmed)
				ack(k, id, sub_state(old));
			else
				ack(k, id, failure("conflict", "subscription in progress"));
		}
		return NULL;
	}
	if (k->nsubs >= (size_t)worker.cfg->max_rooms_per_connection)
		return failure("too_many_rooms", "max_rooms_per_connection reached");
	if (!worker.hub.up && !room_find(room))
		return failure("unavailable", "hub unavailable, retry");
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	add_sub(k, room_subscribe_sio(k, room, id >= 0 ? idtext : NULL, false));
	return NULL;
}

/* subscribe: "room" | {room} | {room, id} (room:id) | {rooms: [...]} */
static void on_subscribe(struct sio_sock *k, json_t *arg, int64_t id)
{
	/* One byte more than a room: a longer name stays too long. */
	char room[ROOM_MAX + 2];
	json_t *rooms = json_object_get(arg, "rooms");
	if (json_is_array(rooms)) {
		json_t *ok = json_array(), *errors = json_array(), *r;
		size_t i;
		json_array_foreach(rooms, i, r) {
			json_t *f = json_is_string(r) ? subscribe_one(k, json_string_value(r), -1)
						      : failure("bad_request", "rooms must be strings");
			if (f) {
				json_object_set(f, "room", r);
				json_array_append_new(errors, f);
			} else {
				json_array_append(ok, r);
			}
		}
		ack(k, id, json_pack("{s:b, s:o, s:o}", "success", json_array_size(errors) == 0,
				     "rooms", ok, "errors", errors));
		return;
	}
	const char *name = json_is_string(arg) ? json_string_value(arg)
					      : json_string_value(json_object_get(arg, "room"));
	json_t *rid = json_object_get(arg, "id");
	if (!name) {
		ack(k, id, failure("bad_request", "subscribe needs room or rooms"));
		return;
	}
	if (json_is_string(rid))
		snprintf(room, sizeof(room), "%s:%s", name, json_string_value(rid));
	else if (json_is_integer(rid))
		snprintf(room, sizeof(room), "%s:%lld", name, (long long)json_integer_value(rid));
	else
		snprintf(room, sizeof(room), "%s", name);
	json_t *f = subscribe_one(k, room, id);
	if (f) {
		json_object_set_new(f, "room", json_string(room));
		ack(k, id, f);
	}
}

static void on_unsubscribe(struct sio_sock *k, json_t *arg, int64_t id)
{
	json_t *rooms = json_object_get(arg, "rooms");
	json_t *list = json_array();
	if (json_is_array(rooms))
		json_array_extend(list, rooms);
	else if (json_is_string(arg))
		json_array_append(list, arg);
	else if (json_is_string(json_object_get(arg, "room")))
		json_array_append(list, json_object_get(arg, "room"));
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		char room[ROOM_MAX + 1];
		if (!json_is_string(r))
			continue;
		json_t *f = sock_room(k, json_string_value(r), room);
		struct sub *s = f ? NULL : find_sub(k, room);
		json_decref(f);
		if (s)
			drop_sub(k, s);
	}
	mark_dirty(k);
	if (json_array_size(list) == 1)
		ack(k, id, json_pack("{s:b, s:O}", "success", 1, "room", json_array_get(list, 0)));
	else
		ack(k, id, json_pack("{s:b, s:O}", "success", 1, "rooms", list));
	json_decref(list);
}

static json_t *rooms_list(struct sio_sock *k)
{
	json_t *a = json_array();
	for (size_t i = 0; i < k->nsubs; i++)
		json_array_append_new(a, json_string(k->subs[i]->room->name));
	return a;
}

/* ---- requests answered by the hub -------------------------------------------------------- */

struct req_tag {
	uint64_t sock;
	const struct sio_nsp *nsp;
	int64_t ack;
	int kind;                            /* REQ_* */
};
enum { REQ_PUBLISH, REQ_READ, REQ_WORKFLOW };

static void hub_answer(struct conn *conn, uint64_t tag, int status, const char *json, size_t len)
{
	struct req_tag *t = (struct req_tag *)(uintptr_t)tag;
	struct sio_conn *c = conn_find(t->sock);
	struct sio_sock *k = c ? sock_named(c, t->nsp->name) : NULL;
	json_t *v = k ? json_loadb(json, len, 0, NULL) : NULL;
	if (k && status == 200 && v) {
		json_t *out;
		if (t->kind == REQ_WORKFLOW)
			out = json_pack("{s:b, s:O}", "success", 1, "workflow", v);
		else if (t->kind == REQ_READ)
			out = json_pack("{s:b, s:O}", "success", 1, "count",
					json_object_get(v, "count"));
		else
			out = json_deep_copy(v);
		if (t->kind == REQ_PUBLISH)
			json_object_set_new(out, "success", json_true());
		ack(k, t->ack, out);
	} else if (k) {
		json_t *err = json_object_get(v, "error");
		const char *code = json_string_value(json_object_get(err, "code"));
		const char *msg = json_string_value(json_object_get(err, "message"));
		ack(k, t->ack, failure(code ? code : status == 503 ? "unavailable" : "internal",
				       msg ? msg : "request failed"));
	}
	json_decref(v);
	free(t);
}

static struct req_tag *req_tag(struct sio_sock *k, int64_t id, int kind)
{
	struct req_tag *t = xmalloc(sizeof(*t));
	*t = (struct req_tag){ eio_id(k->es), k->nsp, id, kind };
	return t;
}

static void ask_hub(struct sio_sock *k, int64_t id, int kind, json_t *q)
{
	char *text = json_dumps(q, JSON_COMPACT);
	json_decref(q);
	struct req_tag *t = req_tag(k, id, kind);
	if (worker_request(NULL, (uint64_t)(uintptr_t)t, text, strlen(text), hub_answer) < 0) {
		free(t);
		ack(k, id, failure("unavailable", "hub unavailable, retry"));
	}
	free(text);
}

/* publish {room, event, data}, where the namespace lets clients publish. */
static void on_publish(struct sio_sock *k, json_t *arg, int64_t id)
{
	const char *name = json_string_value(json_object_get(arg, "room"));
	const char *event = json_string_value(json_object_get(arg, "event"));
	char room[ROOM_MAX + 1];
	if (!name || !event || !*event || strlen(event) > 128) {
		ack(k, id, failure("bad_request", "publish needs room, event and data"));
		return;
	}
	json_t *f = sock_room(k, name, room);
	if (f) {
		ack(k, id, f);
		return;
	}
	const char *err = session_check_room(&k->claims, room, true);
	if (err) {
		ack(k, id, failure(err, "not allowed to publish here"));
		return;
	}
	json_t *data = json_object_get(arg, "data");
	char *text = json_dumps(data ? data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *rooms = json_pack("[s]", room);
	struct req_tag *t = req_tag(k, id, REQ_PUBLISH);
	if (worker_publish(NULL, (uint64_t)(uintptr_t)t, hub_answer, rooms, event, text,
			   strlen(text), NULL, true) < 0) {
		free(t);
		ack(k, id, failure("unavailable", "hub unavailable, retry"));
	}
	json_decref(rooms);
	free(text);
}

static void on_read(struct sio_sock *k, json_t *arg, int64_t id)
{
	if (!k->claims.sub) {
		ack(k, id, failure("auth_required", "notifications need a user"));
		return;
	}
	json_t *ids = json_object_get(arg, "ids");
	bool all = json_is_true(json_object_get(arg, "all"));
	if (!all && !json_is_array(ids)) {
		ack(k, id, failure("bad_request", "read needs ids or all: true"));
		return;
	}
	json_t *q = json_pack("{s:s, s:s}", "op", "read", "user", k->claims.sub);
	if (all)
		json_object_set_new(q, "all", json_true());
	else
		json_object_set(q, "ids", ids);
	ask_hub(k, id, REQ_READ, q);
}

static void on_workflow(struct sio_sock *k, json_t *arg, int64_t id)
{
	if (!k->claims.sub) {
		ack(k, id, failure("auth_required", "workflow actions need a user"));
		return;
	}
	json_t *q = session_workflow_op(&k->claims, arg);
	if (!q) {
		ack(k, id, failure("bad_request", "workflow needs action and workflow"));
		return;
	}
	ask_hub(k, id, REQ_WORKFLOW, q);
}

/* Token bucket shared with the native protocol's settings, one per session. */
static bool rate_ok(struct sio_conn *c)
{
	const struct config *cfg = worker.cfg;
	ev_tstamp now = ev_now(worker.loop);
	c->tokens = MIN(c->tokens + (now - c->refilled) * cfg->rate_per_sec,
			(double)cfg->rate_burst);
	c->refilled = now;
	c->tokens -= 1;
	if (c->tokens >= 0)
		return true;
	worker.stats.rate_limited++;
	if (c->tokens < -(double)cfg->rate_burst)
		eio_close_soon(c->root.es, "rate limit exceeded");
	return false;
}

/* One event on a socket: a verb, or an alias of one. */
static void on_verb(struct sio_sock *k, const char *event, json_t *arg, int64_t id)
{
	const struct alias *a = alias_find(event);
	json_t *made = NULL;
	if (a) {
		char room[ROOM_MAX + 1];
		event = a->verb;
		if (a->room[0]) {
			if (alias_room(a->room, arg, room, sizeof(room)) < 0) {
				ack(k, id, failure("bad_request", "missing a value of the alias's room"));
				return;
			}
			made = json_pack("{s:s}", "room", room);
			if (json_is_object(arg) && json_object_get(arg, "data"))
				json_object_set(made, "data", json_object_get(arg, "data"));
			if (json_is_object(arg) && json_object_get(arg, "event"))
				json_object_set(made, "event", json_object_get(arg, "event"));
			else
				json_object_set_new(made, "event", json_string(a->event));
			arg = made;
		}
	}
	if (!rate_ok(conn_of(k))) {
		ack(k, id, failure("rate_limited", "too many messages: slow down"));
	} else if (strcmp(event, "subscribe") == 0 || strcmp(event, "join") == 0) {
		on_subscribe(k, arg, id);
	} else if (strcmp(event, "unsubscribe") == 0 || strcmp(event, "leave") == 0) {
		on_unsubscribe(k, arg, id);
	} else if (strcmp(event, "getRooms") == 0 || strcmp(event, "subscriptions") == 0) {
		if (id >= 0)
			ack(k, id, rooms_list(k));
		else
			emit(k, "rooms", rooms_list(k));
	} else if (strcmp(event, "ping") == 0) {
		char ts[UTIL_TS_LEN + 1];
		ts_format(now_ms(), ts);
		json_t *pong = json_pack("{s:s, s:s}", "type", "pong", "ts", ts);
		if (id >= 0)
			ack(k, id, pong);
		else
			emit(k, "pong", pong);
	} else if (strcmp(event, "publish") == 0) {
		on_publish(k, arg, id);
	} else if (strcmp(event, "read") == 0) {
		on_read(k, arg, id);
	} else if (strcmp(event, "workflow") == 0) {
		on_workflow(k, arg, id);
	} else if (id >= 0) {
		ack(k, id, failure("bad_request", "unknown event"));
	}
	json_decref(made);
}

/* ---- connection state recovery --------------------------------------------------------------- */

static void rec_schedule(void)
{
	if (recovering && !ev_is_active(&rec_idle))
		ev_idle_start(worker.loop, &rec_idle);
}

static void rec_cursor_clear(struct rec_cursor *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->rows[i].packet);
	free(c->rows);
	c->rows = NULL;
	c->n = c->i = 0;
}

/* ---- recovery on an edge: history from the relay ------------------------------------------- */

/* One message of the relay's reply as a row of c, as rec_row_cb makes one of
 * a stored message. */
static int rec_frame(const struct room_msg *m, void *arg)
{
	struct rec_cursor *c = arg;
	struct room *room = c->sub->room;
	/* Another epoch: the rest of ours is gone. Committed later than this
	 * worker knows of: it comes live. */
	if (strcmp(m->epoch, room->epoch) != 0 || m->seq > room->last_seq || c->n == REC_CHUNK)
		return 1;
	struct rec_row *row = &c->rows[c->n++];
	struct buf b = { 0 };
	room_msg_sio_packet(&b, "/", room->name, m);
	row->seq = m->seq;
	row->gpos = m->gpos;
	row->packet = b.data;
	row->len = b.len;
	return 0;
}

/* The relay's reply for c as its next rows: false when a frame is malformed. */
static bool rec_frames(void *arg, const char *body, size_t len)
{
	struct rec_cursor *c = arg;
	c->rows = xcalloc(REC_CHUNK, sizeof(*c->rows));
	if (room_frames_each(c->sub->room->name, body, len, rec_frame, c) < 0) {
		rec_cursor_clear(c);
		return false;
	}
	if (c->n == 0) {
		/* Gone meanwhile (pruned): live from the room's last seq. */
		c->done = true;
		c->after = c->sub->room->last_seq;
	}
	return true;
}

/* ---- the merge ---------------------------------------------------------------------------- */

static void rec_free(struct sio_conn *c)
{
	struct recovery *r = c->more ? c->more->rec : NULL;
	if (!r)
		return;
	for (struct sio_conn **pp = &recovering; *pp; pp = &(*pp)->more->rec->next) {
		if (*pp == c) {
			*pp = r->next;
			break;
		}
	}
	for (size_t i = 0; i < r->ncur; i++) {
		history_fetch_cancel(&r->cur[i].fetch);
		rec_cursor_clear(&r->cur[i]);
	}
	free(r->cur);
	free(r);
	c->more->rec = NULL;
	more_trim(c);
}

static int rec_row_cb(const struct store_message *m, void *arg)
{
	struct rec_cursor *c = arg;
	struct rec_row *row = &c->rows[c->n++];
	struct buf ev = { 0 }, b = { 0 };
	buf_append_json_str(&ev, m->event, strlen(m->event));
	siopkt_event(&b, "/", ev.data, ev.len, c->sub->room->name, m->seq, m->ts, m->data,
		     m->data_len, m->gpos);
	buf_free(&ev);
	row->seq = m->seq;
	row->gpos = m->gpos;
	row->packet = b.data;
	row->len = b.len;
	return 0;
}

/* Reads the next rows of c; false when there is nothing to read now (on an
 * edge: until the relay's answer comes, c->fetch meanwhile). */
static bool rec_refill(struct rec_cursor *c)
{
	struct room *room = c->sub->room;
	rec_cursor_clear(c);
	if (c->fetch || c->done || c->after >= room->last_seq)
		return false;
	if (!worker.reader) {
		history_fetch(&c->fetch, room->name, c->after, REC_CHUNK, rec_frames, c, rec_schedule);
		return false;
	}
	c->rows = xcalloc(REC_CHUNK, sizeof(*c->rows));
	int n = store_history(worker.reader, room->name, c->after, REC_CHUNK, rec_row_cb, c);
	if (n <= 0) {
		/* Gone meanwhile (pruned): live from the room's last seq. */
		c->done = true;
		c->after = room->last_seq;
		return false;
	}
	/* Committed later than what this worker knows: it comes live. */
	while (c->n > 0 && c->rows[c->n - 1].seq > room->last_seq)
		free(c->rows[--c->n].packet);
	return c->n > 0;
}

/* Sends what "/" missed, in gpos order over its rooms, while its queue has
 * room. Returns true when it is done: every room caught up with what this
 * worker knows, at the same moment, so the subscriptions go live together
 * and the offsets the client sees never go back. */
static bool rec_step(struct sio_conn *conn)
{
	struct sio_sock *k = &conn->root;
	struct recovery *r = conn->more->rec;
	while (sio_backlog(k) < REC_QUEUE_LOW && sio_is_open(k)) {
		struct rec_cursor *best = NULL;
		bool fetching = false;
		for (size_t i = 0; i < r->ncur; i++) {
			struct rec_cursor *c = &r->cur[i];
			if (c->i == c->n && !rec_refill(c)) {
				fetching = fetching || c->fetch;
				continue;
			}
			if (!best || c->rows[c->i].gpos < best->rows[best->i].gpos)
				best = c;
		}
		if (fetching)
			return false;   /* the merge needs every room's next row */
		if (!best) {
			for (size_t i = 0; i < r->ncur; i++) {
				struct rec_cursor *c = &r->cur[i];
				room_sub_release(c->sub, c->after);
				report_room(k, c->sub, true);
			}
			rec_free(conn);
			mark_dirty(k);
			return true;
		}
		struct rec_row *row = &best->rows[best->i++];
		best->after = row->seq;
		best->sub->sent_seq = row->seq;
		if (row->gpos > r->offset && row->seq > best->sub->start_seq) {
			struct sbuf *f = ws_frame_new(WS_OP_TEXT, row->packet, row->len);
			sio_deliver(k, f, row->packet, row->len);
			sbuf_unref(f);
		}
	}
	return false;
}

/* Why a recovery cannot step now: REC_POLL, its queue is full or a room not
 * ready yet (looked at again shortly); REC_REPLY, a request to the relay is
 * out (its reply or retry schedules it again). */
enum { REC_READY, REC_POLL, REC_REPLY };

static int rec_wait_state(struct sio_conn *c)
{
	struct recovery *r = c->more->rec;
	bool ready = sio_backlog(&c->root) < REC_QUEUE_LOW;
	for (size_t i = 0; i < r->ncur; i++) {
		if (r->cur[i].fetch)
			return REC_REPLY;
		ready = ready && r->cur[i].sub->room->ready;
	}
	return ready ? REC_READY : REC_POLL;
}

static void rec_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	bool progressed = false, polling = false;
	struct sio_conn *c = recovering, *next;
	for (; c; c = next) {
		next = c->more->rec->next;
		int state = rec_wait_state(c);
		polling = polling || state == REC_POLL;
		if (state != REC_READY)
			continue;
		progressed = true;
		rec_step(c);
	}
	ev_idle_stop(loop, w);
	if (progressed) {
		rec_schedule();
	} else if (polling) {
		ev_timer_set(&rec_wait, 0.005, 0);
		ev_timer_start(loop, &rec_wait);
	}
}

static void rec_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	rec_schedule();
}

struct first_row {
	int64_t seq, gpos;
	bool found;
};

static int first_row_cb(const struct store_message *m, void *arg)
{
	struct first_row *f = arg;
	f->seq = m->seq;
	f->gpos = m->gpos;
	f->found = true;
	return 1;
}

/* Whether a room joined at seq `joined` (in epoch) can be replayed for a
 * client that got everything up to offset. */
static bool room_recoverable(const char *room, int64_t joined, const char *epoch, int64_t offset)
{
	struct store_room sr;
	int found = store_room_get(worker.reader, room, false, &sr);
	if (found < 0)
		return false;
	if (found == 0)
		return joined == 0;
	if (epoch[0] && strcmp(epoch, sr.epoch) != 0)
		return false;
	if (sr.last_seq <= joined)
		return sr.last_seq == joined;
	struct first_row f = { 0 };
	if (store_history(worker.reader, room, joined, 1, first_row_cb, &f) < 0 || !f.found)
		return false;
	/* Missing rows before the first retained one were pruned: harmless only
	 * if the client had them (they come before it in gpos order). */
	return f.seq == joined + 1 || f.gpos <= offset;
}

json_t *sio_session_recoverable(const char *pid, const char *user, int64_t offset)
{
	json_t *row = NULL;
	uint8_t id[SIO_ID_BYTES];
	if (id_read(pid, id) < 0 || store_sio_get(worker.reader, pid, &row) != 1)
		return NULL;
	json_t *rooms = json_object_get(row, "rooms");
	const char *owner = json_string_value(json_object_get(row, "user"));
	int64_t updated = json_integer_value(json_object_get(row, "updated_ms"));
	const char *sid = json_string_value(json_object_get(row, "sid"));
	if (!sid || id_read(sid, id) < 0 ||
	    updated + (int64_t)worker.cfg->socketio_recovery_window * 1000 < now_ms())
		goto fail;
	if ((owner == NULL) != (user == NULL) || (owner && strcmp(owner, user)))
		goto fail;
	const char *name;
	json_t *v;
	json_object_foreach(rooms, name, v) {
		int64_t joined = json_integer_value(json_array_get(v, 0));
		const char *epoch = json_string_value(json_array_get(v, 1));
		if (!acl_room_valid(name, strlen(name)) || !epoch ||
		    !room_recoverable(name, joined, epoch, offset))
			goto fail;
	}
	json_t *out = json_pack("{s:s, s:O}", "sid", sid, "rooms", rooms);
	json_decref(row);
	return out;
fail:
	json_decref(row);
	return NULL;
}

static void connected(struct sio_conn *c, struct sio_sock *k, const uint8_t *sid,
		      bool recovered);

/* "/" (opened) comes back as the session pid that sio_session_recoverable
 * found in `session`: the same sid, every room it had (held) and what it
 * missed after offset. -1 (and nothing done) when session is not one. */
static int resume(struct sio_conn *c, const char *pid, json_t *session, int64_t offset)
{
	struct sio_sock *k = &c->root;
	json_t *rooms = json_object_get(session, "rooms");
	const char *sid = json_string_value(json_object_get(session, "sid"));
	if (!json_is_object(rooms) || !sid || id_read(sid, c->sid) < 0 || id_read(pid, c->pid) < 0)
		return -1;
	connected(c, k, c->sid, true);
	struct recovery *r = xcalloc(1, sizeof(*r));
	r->offset = offset;
	r->cur = xcalloc(json_object_size(rooms) + 1, sizeof(*r->cur));
	const char *name;
	json_t *v;
	json_object_foreach(rooms, name, v) {
		/* Rooms the token no longer allows stay behind. */
		if (session_check_room(&k->claims, name, false) || find_sub(k, name) ||
		    k->nsubs >= (size_t)worker.cfg->max_rooms_per_connection)
			continue;
		int64_t joined = json_integer_value(json_array_get(v, 0));
		struct sub *s = room_subscribe_sio(k, name, NULL, true);
		s->start_seq = s->sent_seq = joined;
		add_sub(k, s);
		r->cur[r->ncur++] = (struct rec_cursor){ .sub = s, .after = joined };
	}
	more_of(c)->rec = r;
	r->next = recovering;
	recovering = c;
	rec_schedule();
	log_debug("event=sio_recover sid=%s rooms=%zu offset=%lld", sid, r->ncur,
		  (long long)offset);
	return 0;
}

/* ---- namespaces --------------------------------------------------------------------------- */

/* The socket of namespace nsp connects with claims (taken over). */
static struct sio_sock *sock_open(struct sio_conn *c, const struct sio_nsp *nsp,
				  struct jwt_claims *claims)
{
	struct sio_sock *k = &c->root;
	if (nsp == &nsp_root) {
		c->main = true;
	} else {
		k = xcalloc(1, sizeof(*k));
		k->es = c->root.es;
		k->nsp = nsp;
		k->next = c->root.next;
		c->root.next = k;
	}
	k->claims = *claims;
	return k;
}

/* k disconnects: it leaves its rooms, and the session's registry connection
 * ends with its last socket. */
static void sock_close(struct sio_conn *c, struct sio_sock *k)
{
	if (k == &c->root)
		rec_free(c);
	while (k->nsubs)
		drop_sub(k, k->subs[k->nsubs - 1]);
	free(k->subs);
	k->subs = NULL;
	k->cap = 0;
	jwt_claims_free(&k->claims);
	if (k == &c->root) {
		c->main = false;
	} else {
		struct sio_sock **pp = &c->root.next;
		while (*pp != k)
			pp = &(*pp)->next;
		*pp = k->next;
		free(k);
	}
	if (c->reported && !conn_socks(c)) {
		session_report_close(eio_id(c->root.es));
		c->reported = false;
	}
}

/* k is connected: the CONNECT reply (with the pid on "/" when recovery is
 * on), the registry, and on "/" the auto-joined rooms unless recovered. */
static void connected(struct sio_conn *c, struct sio_sock *k, const uint8_t *sid,
		      bool recovered)
{
	bool root = k == &c->root;
	char sid_text[SIO_ID_LEN + 1], pid_text[SIO_ID_LEN + 1];
	id_text(sid, sid_text);
	id_text(c->pid, pid_text);
	json_t *v = root && recovery_on()
			    ? json_pack("{s:s, s:s}", "sid", sid_text, "pid", pid_text)
			    : json_pack("{s:s}", "sid", sid_text);
	send_json(k->es, SIO_CONNECT, k->nsp->name, -1, v);
	json_decref(v);
	/* The first socket opens the registry's connection; the first user is its user. */
	if (!c->reported || (k->claims.sub && !conn_user(c, k)))
		report_open(c);
	if (!root || recovered)
		return;
	char autos[2][ROOM_MAX + 1];
	size_t n = session_auto_rooms(&k->claims, autos);
	for (size_t i = 0; i < n; i++)
		if (!find_sub(k, autos[i]))
			add_sub(k, room_subscribe_sio(k, autos[i], NULL, false));
	mark_dirty(k);
}

/* The claims of a CONNECT: its auth payload's token, else the handshake's.
 * Returns 0, or -1 after answering CONNECT_ERROR on nsp. */
static int authenticate(struct sio_conn *c, const char *nsp, json_t *auth,
			struct jwt_claims *out)
{
	const char *token = json_string_value(json_object_get(auth, "token"));
	memset(out, 0, sizeof(*out));
	if (!token)
		token = c->token;
	if (token) {
		enum jwt_result r = session_verify_token(token, strlen(token), out);
		if (r != JWT_OK) {
			connect_error(c->root.es, nsp, jwt_result_str(r),
				      r == JWT_EXPIRED ? "token_expired" : "auth_failed");
			return -1;
		}
	} else if (!worker.cfg->allow_anonymous) {
		connect_error(c->root.es, nsp, "authentication required", "auth_required");
		return -1;
	}
	return 0;
}

/* Conformance mode: packets sent a moment later, in a write of their own.
 * The protocol suites wait for one message at a time and miss a second one
 * that arrives in the same read as the first. */
struct deferred {
	uint64_t sock;
	char *packet;
};
static struct deferred *deferred;
static size_t ndeferred, capdeferred;
static ev_timer deferred_timer;

static void deferred_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	for (size_t i = 0; i < ndeferred; i++) {
		struct sio_conn *c = conn_find(deferred[i].sock);
		if (c)
			eio_send_text(c->root.es, deferred[i].packet, strlen(deferred[i].packet));
		free(deferred[i].packet);
	}
	ndeferred = 0;
}

static void send_deferred(struct sio_sock *k, int type, json_t *v)
{
	struct buf b = { 0 };
	siopkt_put_header(&b, type, 0, k->nsp->name, -1);
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	buf_appends(&b, s);
	free(s);
	buf_append(&b, "", 1);
	xgrow(&deferred, &capdeferred, ndeferred + 1, sizeof(*deferred));
	deferred[ndeferred++] = (struct deferred){ eio_id(k->es), b.data };
	if (!ev_is_active(&deferred_timer)) {
		ev_now_update(worker.loop);
		ev_timer_set(&deferred_timer, 0.01, 0);
		ev_timer_start(worker.loop, &deferred_timer);
	}
}

/* Conformance mode: the reference server's behaviour on "/" and "/custom". */
static void connect_test(struct sio_conn *c, const struct sio_nsp *nsp, json_t *auth)
{
	struct jwt_claims none = { 0 };
	struct sio_sock *k = sock_open(c, nsp, &none);
	uint8_t sid[SIO_ID_BYTES];
	char text[SIO_ID_LEN + 1];
	randombytes_buf(sid, sizeof(sid));
	id_text(sid, text);
	json_t *v = json_pack("{s:s}", "sid", text);
	send_json(k->es, SIO_CONNECT, nsp->name, -1, v);
	json_decref(v);
	json_t *args = auth ? json_pack("[s, O]", "auth", auth) : json_pack("[s, {}]", "auth");
	send_deferred(k, SIO_EVENT, args);
	json_decref(args);
}

/* Conformance mode: message -> message-back, message-with-ack -> ack, with
 * the same arguments and attachments (m: NULL when there are none). */
static void test_event(struct sio_sock *k, int64_t id, json_t *args, const struct sio_more *m)
{
	const char *event = json_string_value(json_array_get(args, 0));
	size_t nbins = m ? m->nbins : 0;
	int type;
	if (strcmp(event, "message") == 0) {
		json_array_set_new(args, 0, json_string("message-back"));
		type = nbins ? SIO_BINARY_EVENT : SIO_EVENT;
		id = -1;
	} else if (strcmp(event, "message-with-ack") == 0 && id >= 0) {
		json_array_remove(args, 0);
		type = nbins ? SIO_BINARY_ACK : SIO_ACK;
	} else {
		return;
	}
	struct buf b = { 0 };
	siopkt_put_header(&b, type, (unsigned)nbins, k->nsp->name, id);
	char *s = json_dumps(args, JSON_COMPACT);
	buf_appends(&b, s);
	free(s);
	send_packet(k->es, &b);
	buf_free(&b);
	for (size_t i = 0; i < nbins; i++)
		eio_send_binary(k->es, m->bins[i].data, m->bins[i].len);
}

/* "/" connects with claims (taken over): as session (recovered, see resume)
 * when it is not NULL and can be resumed, else as a new socket. */
static void root_open(struct sio_conn *c, struct jwt_claims *claims, const char *pid,
		      json_t *session, int64_t offset)
{
	struct sio_sock *k = sock_open(c, &nsp_root, claims);
	if (session && resume(c, pid, session, offset) == 0)
		return;
	randombytes_buf(c->sid, sizeof(c->sid));
	randombytes_buf(c->pid, sizeof(c->pid));
	connected(c, k, c->sid, false);
}

/* An edge's CONNECT of "/" waiting for the primary's answer. */
struct ask_tag {
	uint64_t sock;
	struct jwt_claims claims;
	char pid[SIO_ID_LEN + 1];
	int64_t offset;
};

static void session_reply(struct conn *conn, uint64_t tag, int status, const char *json,
			  size_t len)
{
	struct ask_tag *t = (struct ask_tag *)(uintptr_t)tag;
	struct sio_conn *c = conn_find(t->sock);
	json_t *session = status == 200 ? json_loadb(json, len, 0, NULL) : NULL;
	if (status != 200 && status != 404)
		log_debug("event=sio_recover_ask_failed status=%d", status);
	if (c) {
		c->asking = false;
		root_open(c, &t->claims, t->pid, session, t->offset);
	} else {
		jwt_claims_free(&t->claims);
	}
	json_decref(session);
	free(t);
}

/* An edge has no database: whether the session pid can be recovered is the
 * primary's to say (GET /api/cluster/sio-session through the relay). "/" is
 * connected when the answer comes; its packets wait meanwhile (the client
 * sends none before the CONNECT reply). */
static void ask_primary(struct sio_conn *c, struct jwt_claims *claims, const char *pid,
			int64_t offset)
{
	struct ask_tag *t = xmalloc(sizeof(*t));
	t->sock = eio_id(c->root.es);
	t->claims = *claims;
	snprintf(t->pid, sizeof(t->pid), "%s", pid);
	t->offset = offset;
	struct buf path = { 0 };
	buf_printf(&path, "/api/cluster/sio-session?pid=%s&offset=%lld", pid, (long long)offset);
	if (claims->sub) {
		buf_appends(&path, "&user=");
		http_url_encode(&path, claims->sub);
	}
	json_t *q = json_pack("{s:s, s:s, s:s%}", "op", "http", "method", "GET", "path", path.data,
			      path.len);
	char *text = json_dumps(q, JSON_COMPACT);
	json_decref(q);
	buf_free(&path);
	c->asking = true;
	if (worker_request(NULL, (uint64_t)(uintptr_t)t, text, strlen(text), session_reply) < 0)
		session_reply(NULL, (uint64_t)(uintptr_t)t, 503, NULL, 0);
	free(text);
}

/* CONNECT to "/" with claims (taken over): recovered when auth's {pid, offset}
 * name a session that can be, else new. */
static void connect_root(struct sio_conn *c, struct jwt_claims *claims, json_t *auth)
{
	const char *pid = json_string_value(json_object_get(auth, "pid"));
	json_t *offset_json = json_object_get(auth, "offset");
	int64_t offset = 0;
	uint8_t id[SIO_ID_BYTES];
	/* Without an offset the socket had received nothing: all since it joined. */
	if (json_is_string(offset_json)) {
		char *end;
		offset = strtoll(json_string_value(offset_json), &end, 10);
		if (*end || offset < 0)
			pid = NULL;
	} else if (offset_json && !json_is_null(offset_json)) {
		pid = NULL;
	}
	if (!recovery_on() || !pid || id_read(pid, id) < 0) {
		root_open(c, claims, NULL, NULL, 0);
	} else if (!worker.reader) {
		ask_primary(c, claims, pid, offset);
	} else {
		json_t *session = sio_session_recoverable(pid, claims->sub, offset);
		root_open(c, claims, pid, session, offset);
		json_decref(session);
	}
}

/* CONNECT to namespace name with its auth payload (NULL: none). */
static void on_connect(struct sio_conn *c, const char *name, json_t *auth)
{
	const struct sio_nsp *nsp = nsp_find(name);
	struct jwt_claims claims;
	if (!nsp) {
		connect_error(c->root.es, name, "Invalid namespace", NULL);
		return;
	}
	if (sock_named(c, name) || (nsp == &nsp_root && c->asking))
		return;     /* connected already, or connecting */
	if (worker.cfg->socketio_test) {
		connect_test(c, nsp, auth);
		return;
	}
	if (authenticate(c, name, auth, &claims) < 0)
		return;
	if (nsp == &nsp_root) {
		connect_root(c, &claims, auth);
		return;
	}
	uint8_t sid[SIO_ID_BYTES];
	randombytes_buf(sid, sizeof(sid));
	connected(c, sock_open(c, nsp, &claims), sid, false);
}

/* ---- packets -------------------------------------------------------------------------------- */

static void bins_clear(struct sio_conn *c)
{
	struct sio_more *m = c->more;
	if (!m)
		return;
	for (size_t i = 0; i < m->nbins; i++)
		buf_free(&m->bins[i]);
	free(m->bins);
	m->bins = NULL;
	m->nbins = 0;
	free(m->bin_head);
	m->bin_head = NULL;
	m->bin_want = 0;
	more_trim(c);
}

/* A complete packet (with its attachments in c->more->bins). Returns -1 when
 * it is malformed: the connection is then closed. */
static int dispatch(struct sio_conn *c, const char *p, size_t n)
{
	struct siopkt pkt;
	if (siopkt_parse(p, n, &pkt) < 0)
		return -1;
	char nsp[SIO_NSP_MAX + 1];
	snprintf(nsp, sizeof(nsp), "%.*s", (int)pkt.nsp_len, pkt.nsp);
	struct sio_sock *k = sock_named(c, nsp);
	json_t *v = NULL;
	if (pkt.data_len) {
		if (proto_json_depth(pkt.data, pkt.data_len) > worker.cfg->max_json_depth)
			return -1;
		v = json_loadb(pkt.data, pkt.data_len, JSON_DECODE_ANY, NULL);
		if (!v)
			return -1;
	}
	int rc = 0;
	switch (pkt.type) {
	case SIO_CONNECT:
		if (v && !json_is_object(v))
			rc = -1;
		else
			on_connect(c, nsp, v);
		break;
	case SIO_DISCONNECT:
		if (k)
			sock_close(c, k);
		break;
	case SIO_EVENT:
	case SIO_BINARY_EVENT:
		if (!json_is_array(v) || !json_is_string(json_array_get(v, 0)))
			rc = -1;
		else if (k && worker.cfg->socketio_test)
			test_event(k, pkt.id, v, c->more);
		else if (k)
			on_verb(k, json_string_value(json_array_get(v, 0)), json_array_get(v, 1), pkt.id);
		break;
	case SIO_ACK:
	case SIO_BINARY_ACK:
		if (!json_is_array(v))
			rc = -1;
		break;     /* herald asks clients nothing */
	default:
		rc = -1;
	}
	json_decref(v);
	return rc;
}

static void sio_on_message(struct eio_session *es, bool binary, const char *p, size_t n)
{
	struct sio_conn *c = eio_data(es);
	struct sio_more *m = c->more;
	int rc = 0;
	if (binary) {
		if (!m || !m->bin_want)
			goto fail;
		m->bins = xrealloc(m->bins, (m->nbins + 1) * sizeof(*m->bins));
		m->bins[m->nbins] = (struct buf){ 0 };
		buf_append(&m->bins[m->nbins++], p, n);
		if (m->nbins < m->bin_want)
			return;
		rc = dispatch(c, m->bin_head, m->bin_head_len);
		bins_clear(c);
	} else {
		if (m && m->bin_want)
			goto fail;
		struct siopkt pkt;
		if (siopkt_parse(p, n, &pkt) < 0)
			goto fail;
		if (pkt.attachments > 0) {
			m = more_of(c);
			m->bin_head = xstrndup(p, n);
			m->bin_head_len = n;
			m->bin_want = pkt.attachments;
			return;
		}
		rc = dispatch(c, p, n);
	}
	if (rc == 0)
		return;
fail:
	bins_clear(c);
	eio_close(es, "parse error");
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

static void sio_on_open(struct eio_session *es, const struct http_request *req)
{
	struct sio_conn *c = xcalloc(1, sizeof(*c));
	c->root.es = es;
	c->root.nsp = &nsp_root;
	c->tokens = worker.cfg->rate_burst;
	c->refilled = ev_now(worker.loop);
	eio_set_data(es, c);
	/* A token may come with the handshake, as on /ws. */
	char token[JWT_MAX_LEN + 1];
	int tlen = req->query ? http_query_param(req->query, req->query_len, "token", token,
						 sizeof(token)) : -1;
	const struct http_header *authz = http_find_header(req, "Authorization");
	if (tlen < 0 && authz && authz->value_len > 7 && strncasecmp(authz->value, "Bearer ", 7) == 0 &&
	    authz->value_len - 7 <= JWT_MAX_LEN)
		tlen = snprintf(token, sizeof(token), "%.*s", (int)(authz->value_len - 7),
				authz->value + 7);
	if (tlen >= 0)
		c->token = xstrdup(token);
}

static void touch_reply(struct conn *conn, uint64_t tag, int status, const char *json, size_t len)
{
}

static void sio_on_close(struct eio_session *es, const char *reason)
{
	struct sio_conn *c = eio_data(es);
	if (!c)
		return;
	if (c->main && recovery_on()) {
		/* The recovery window starts when the connection is lost. */
		if (c->dirty)
			put_session(c);
		char q[128], pid[SIO_ID_LEN + 1];
		id_text(c->pid, pid);
		int n = snprintf(q, sizeof(q), "{\"op\":\"sio_touch\",\"pid\":\"%s\"}", pid);
		worker_request(NULL, 0, q, (size_t)n, touch_reply);
	}
	rec_free(c);
	struct sio_sock *k = conn_socks(c), *next;
	for (; k; k = next) {
		next = k->next;
		for (size_t i = 0; i < k->nsubs; i++)
			room_unsubscribe(k->subs[i]);
		free(k->subs);
		jwt_claims_free(&k->claims);
		if (k != &c->root)
			free(k);
	}
	if (c->reported)
		session_report_close(eio_id(es));
	if (c->more) {
		send_acks(NULL, c->more->acks, c->more->nacks);
		c->more->acks = NULL;
		c->more->nacks = 0;
		bins_clear(c);
	}
	free(c->token);
	free(c);
	eio_set_data(es, NULL);
}

const struct eio_app sio_app = { sio_on_open, sio_on_message, sio_on_close };

static void hub_back_one(struct eio_session *es, void *arg)
{
	struct sio_conn *c = eio_data(es);
	if (!c->reported)
		return;
	report_open(c);
	for (struct sio_sock *k = conn_socks(c); k; k = k->next)
		for (size_t i = 0; i < k->nsubs; i++)
			if (k->subs[i]->confirmed)
				session_report_room(eio_id(es), k->subs[i]->room->name, true);
}

void sio_hub_back(void)
{
	eio_foreach(&sio_app, hub_back_one, NULL);
}

void sio_kick(uint64_t id, const char *reason)
{
	struct sio_conn *c = conn_find(id);
	if (!c)
		return;
	for (struct sio_sock *k = conn_socks(c); k; k = k->next)
		send_json(k->es, SIO_DISCONNECT, k->nsp->name, -1, NULL);
	eio_close_soon(c->root.es, reason);
}

/* Long-quiet connections: their sessions are touched now and then, so that
 * one that dies with its worker (no disconnection noted) still has its full
 * window. Up to 1000 pids a request. */
static ev_timer touch_timer;

static void touch_send(json_t *pids)
{
	json_t *q = json_pack("{s:s, s:O}", "op", "sio_touch", "pids", pids);
	char *text = json_dumps(q, JSON_COMPACT);
	worker_request(NULL, 0, text, strlen(text), touch_reply);
	free(text);
	json_decref(q);
	json_array_clear(pids);
}

static void touch_one(struct eio_session *es, void *pids)
{
	struct sio_conn *c = eio_data(es);
	if (!c->main)
		return;
	char pid[SIO_ID_LEN + 1];
	id_text(c->pid, pid);
	json_array_append_new(pids, json_string(pid));
	if (json_array_size(pids) == 1000)
		touch_send(pids);
}

static void touch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (recovery_on()) {
		json_t *pids = json_array();
		eio_foreach(&sio_app, touch_one, pids);
		if (json_array_size(pids))
			touch_send(pids);
		json_decref(pids);
	}
	double every = MAX(1.0, MIN(3600.0, worker.cfg->socketio_recovery_window / 4.0));
	ev_timer_set(w, every, 0);
	ev_timer_start(loop, w);
}

void sio_init(void)
{
	ev_init(&touch_timer, touch_cb);
	ev_timer_set(&touch_timer, MAX(1.0, MIN(3600.0, worker.cfg->socketio_recovery_window / 4.0)), 0);
	ev_timer_start(worker.loop, &touch_timer);
	ev_idle_init(&rec_idle, rec_idle_cb);
	ev_timer_init(&rec_wait, rec_wait_cb, 0.005, 0);
	ev_timer_init(&deferred_timer, deferred_cb, 0.01, 0);
}
