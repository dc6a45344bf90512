/* session.c -- the client protocol on /ws (SPEC §3): authentication and
 * token refresh, subscriptions (with replay through room.c), client
 * publishing where a namespace allows it, notifications read state, workflow
 * actions, and the per-connection message rate limit. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "acl.h"
#include "http.h"
#include "ipc.h"
#include "jwt.h"
#include "log.h"
#include "proto.h"
#include "room.h"
#include "util.h"
#include "worker.h"

struct session {
	struct conn *conn;
	struct jwt_claims claims;   /* claims.sub NULL: anonymous */
	bool authenticated;
	bool expired;               /* token_expired sent; closing after the grace */
	ev_timer auth_timer;        /* auth timeout, token expiry, then grace */
	struct sub **subs;
	size_t nsubs, cap;
	double tokens;              /* rate limit bucket */
	ev_tstamp refilled;
	int subscribe_credits;      /* subscribes not charged to the bucket */
};

/* ---- replies ---------------------------------------------------------------------- */

static void send_buf(struct conn *c, struct buf *b)
{
	conn_ws_send_text(c, b->data, b->len);
	buf_free(b);
}

static void send_error(struct conn *c, const char *id, const char *code, const char *message)
{
	struct buf b = { 0 };
	buf_appends(&b, "{\"type\":\"error\",");
	proto_put_id(&b, id);
	buf_printf(&b, "\"code\":\"%s\",\"message\":", code);
	buf_append_json_str(&b, message, strlen(message));
	buf_appends(&b, "}");
	send_buf(c, &b);
}

/* The rooms a connection of this subject joins by itself: user:{sub} and
 * global. Returns how many were written to out. */
size_t session_auto_rooms(const struct jwt_claims *claims, char out[2][ROOM_MAX + 1])
{
	size_t n = 0;
	if (claims->sub) {
		snprintf(out[n], ROOM_MAX + 1, "user:%s", claims->sub);
		if (acl_room_valid(out[n], strlen(out[n])))
			n++;
	}
	if (config_namespace(worker.cfg, "global"))
		snprintf(out[n++], ROOM_MAX + 1, "global");
	return n;
}

static size_t auto_rooms(const struct session *s, char out[2][ROOM_MAX + 1])
{
	return session_auto_rooms(&s->claims, out);
}

static struct sub *find_sub(struct session *s, const char *room)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (strcmp(s->subs[i]->room->name, room) == 0)
			return s->subs[i];
	return NULL;
}

/* The connection's rooms; with joining, also the auto-joined rooms about to
 * be subscribed (welcome and authenticated are sent before their replies). */
static void put_rooms(struct buf *b, struct session *s, bool joining)
{
	char autos[2][ROOM_MAX + 1];
	size_t nauto = joining ? auto_rooms(s, autos) : 0;
	buf_appends(b, "[");
	for (size_t i = 0; i < s->nsubs; i++) {
		if (i)
			buf_appends(b, ",");
		buf_append_json_str(b, s->subs[i]->room->name, strlen(s->subs[i]->room->name));
	}
	bool comma = s->nsubs > 0;
	for (size_t i = 0; i < nauto; i++) {
		if (find_sub(s, autos[i]))
			continue;
		if (comma)
			buf_appends(b, ",");
		buf_append_json_str(b, autos[i], strlen(autos[i]));
		comma = true;
	}
	buf_appends(b, "]");
}

static void put_user(struct buf *b, struct session *s)
{
	if (s->claims.sub)
		buf_append_json_str(b, s->claims.sub, strlen(s->claims.sub));
	else
		buf_appends(b, "null");
}

/* ---- hub registry ------------------------------------------------------------------ */

void session_report_open(uint64_t id, const char *user, const char *addr, int64_t connected_at)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_CONN_OPEN);
	ipc_put_u64(&b, id);
	ipc_put_cstr(&b, user);
	ipc_put_cstr(&b, addr);
	ipc_put_u64(&b, (uint64_t)connected_at);
	ipc_end(&b, m);
	worker_hub_send(&b);
	buf_free(&b);
}

void session_report_room(uint64_t id, const char *room, bool joined)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_CONN_ROOM);
	ipc_put_u64(&b, id);
	ipc_put_cstr(&b, room);
	ipc_put_u8(&b, joined);
	ipc_end(&b, m);
	worker_hub_send(&b);
	buf_free(&b);
}

void session_report_close(uint64_t id)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_CONN_CLOSE);
	ipc_put_u64(&b, id);
	ipc_end(&b, m);
	worker_hub_send(&b);
	buf_free(&b);
}

static void report_open(struct session *s)
{
	session_report_open(s->conn->id, s->claims.sub, conn_addr(s->conn), s->conn->connected_at);
}

static void report_room(struct conn *c, const char *room, bool joined)
{
	session_report_room(c->id, room, joined);
}

void session_hub_back(void)
{
	for (struct conn *c = conn_first(); c; c = c->next) {
		struct session *s = c->session;
		if (!s || c->state != CONN_WS)
			continue;
		report_open(s);
		for (size_t i = 0; i < s->nsubs; i++)
			if (s->subs[i]->confirmed)
				report_room(c, s->subs[i]->room->name, true);
	}
}

/* ---- authentication ---------------------------------------------------------------- */

/* Verifies a token against the configured keys at the current time. */
static enum jwt_result verify(const char *token, size_t len, struct jwt_claims *out)
{
	const struct config *cfg = worker.cfg;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	size_t pklen = 0;
	struct jwt_keys keys = { 0 };
	if (cfg->jwt_secret && *cfg->jwt_secret) {
		keys.hs256_secret = (const uint8_t *)cfg->jwt_secret;
		keys.hs256_len = strlen(cfg->jwt_secret);
	}
	if (cfg->jwt_public_key && *cfg->jwt_public_key &&
	    sodium_base642bin(pk, sizeof(pk), cfg->jwt_public_key, strlen(cfg->jwt_public_key),
			      NULL, &pklen, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    pklen == sizeof(pk))
		keys.ed25519_pk = pk;
	keys.issuer = cfg->jwt_issuer;
	keys.audience = cfg->jwt_audience;
	keys.leeway = cfg->jwt_leeway;
	return jwt_verify(token, len, &keys, now_ms() / 1000, out);
}

enum jwt_result session_verify_token(const char *token, size_t len, struct jwt_claims *out)
{
	return verify(token, len, out);
}

static void arm_expiry(struct session *s)
{
	ev_timer_stop(worker.loop, &s->auth_timer);
	if (!s->claims.exp)
		return;
	double left = (double)(s->claims.exp + worker.cfg->jwt_leeway) - (double)now_ms() / 1000.0;
	ev_timer_set(&s->auth_timer, MAX(left, 0.001), 0);
	ev_timer_start(worker.loop, &s->auth_timer);
}

static void auth_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;
	struct conn *c = s->conn;
	if (!s->authenticated && !worker.cfg->allow_anonymous) {
		conn_ws_close(c, WS_CLOSE_AUTH_TIMEOUT, "authentication timeout");
		return;
	}
	if (!s->expired) {
		/* The token ran out: warn, then close unless a fresh one arrives. */
		s->expired = true;
		send_error(c, NULL, "token_expired", "token expired: send a new auth message");
		ev_timer_set(w, worker.cfg->token_grace, 0);
		ev_timer_start(loop, w);
		return;
	}
	conn_ws_close(c, WS_CLOSE_TOKEN_EXPIRED, "token expired");
}

/* ---- subscriptions ----------------------------------------------------------------- */

static void remove_sub(struct session *s, struct sub *sb)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i] == sb)
			s->subs[i] = s->subs[--s->nsubs];
	room_unsubscribe(sb);
}

/* Checks name against the namespace's rule for op (subscribe or publish).
 * Returns NULL when allowed, else the error code. */
const char *session_check_room(const struct jwt_claims *claims, const char *room, bool publish)
{
	if (!acl_room_valid(room, strlen(room)))
		return "bad_request";
	const struct ns_config *ns = config_namespace(worker.cfg, room);
	if (!ns)
		return "forbidden";
	const char *id;
	acl_room_namespace(room, &id);
	struct acl_subject subj = { claims->sub, claims->roles, claims->nroles, claims->rooms,
				    claims->nrooms };
	return acl_allows(publish ? &ns->publish : &ns->subscribe, &subj, room, id)
		       ? NULL : "forbidden";
}

static const char *check_room(struct session *s, const char *room, bool publish)
{
	return session_check_room(&s->claims, room, publish);
}

void session_subscribed(struct sub *sb)
{
	struct conn *c = sb->conn;
	bool first = !sb->confirmed;
	if (!first && sb->recovered)
		return;      /* a catch-up that lost nothing goes unsaid */
	sb->confirmed = true;
	if (first)
		report_room(c, sb->room->name, true);
	struct buf b = { 0 };
	buf_appends(&b, "{\"type\":\"subscribed\",");
	proto_put_id(&b, sb->req_id);
	buf_appends(&b, "\"room\":");
	buf_append_json_str(&b, sb->room->name, strlen(sb->room->name));
	buf_printf(&b, ",\"seq\":%lld,\"epoch\":\"%s\",\"recovered\":%s,\"replayed\":%lld}",
		   (long long)sb->sent_seq, sb->room->epoch, sb->recovered ? "true" : "false",
		   (long long)sb->replayed);
	send_buf(c, &b);
	free(sb->req_id);
	sb->req_id = NULL;
}

/* Parses {seq, epoch}; false when malformed. */
static bool parse_since(json_t *v, struct sub_since *out)
{
	json_t *seq = json_object_get(v, "seq"), *epoch = json_object_get(v, "epoch");
	if (!json_is_object(v) || !json_is_integer(seq) || json_integer_value(seq) < 0)
		return false;
	out->given = true;
	out->seq = json_integer_value(seq);
	const char *e = json_string_value(epoch);
	snprintf(out->epoch, sizeof(out->epoch), "%s", e ? e : "");
	return !epoch || json_is_string(epoch);
}

/* Subscribes to room, from since_json when given. Subscribing again to a
 * room of the connection restarts the subscription, but never sends again
 * what this connection has already received: a subscription that delivered
 * something goes on after its last seq, and says recovered: false if the
 * client asked for seqs from before where it started. automatic: an
 * auto-join, which a later subscribe may take over while it is starting. */
static void subscribe_one(struct session *s, const char *room, json_t *since_json,
			  const char *id, bool automatic)
{
	struct conn *c = s->conn;
	const char *err = check_room(s, room, false);
	if (err) {
		send_error(c, id, err, strcmp(err, "forbidden") == 0 ? "not allowed to subscribe"
								    : "invalid room name");
		return;
	}
	struct sub_since since = { 0 };
	if (since_json && !parse_since(since_json, &since)) {
		send_error(c, id, "bad_request", "since must be {seq, epoch}");
		return;
	}
	struct sub *old = find_sub(s, room);
	if (old && !old->confirmed && !old->automatic) {
		send_error(c, id, "conflict", "subscription in progress");
		return;
	}
	if (!old && s->nsubs >= (size_t)worker.cfg->max_rooms_per_connection) {
		send_error(c, id, "too_many_rooms", "max_rooms_per_connection reached");
		return;
	}
	if (!worker.hub.up && !room_find(room)) {
		send_error(c, id, "unavailable", "hub unavailable, retry");
		return;
	}
	if (old) {
		if (since.given && room_sub_delivered(old) &&
		    strcmp(since.epoch, old->room->epoch) == 0) {
			since.gap = since.seq < old->start_seq;
			since.seq = MAX(since.seq, old->sent_seq);
		}
		if (old->confirmed)
			report_room(c, room, false);
		remove_sub(s, old);
	}
	struct sub *sb = room_subscribe(c, room, since_json ? &since : NULL, id);
	sb->automatic = automatic;
	xgrow(&s->subs, &s->cap, s->nsubs + 1, sizeof(*s->subs));
	s->subs[s->nsubs++] = sb;
}

/* subscribe / resume: room, rooms (array), or a rooms map with positions. */
static void on_subscribe(struct session *s, json_t *msg, const char *id, bool resume)
{
	json_t *room = json_object_get(msg, "room"), *rooms = json_object_get(msg, "rooms");
	json_t *since = json_object_get(msg, "since");
	if (resume && json_is_object(rooms)) {
		const char *name;
		json_t *pos;
		json_object_foreach(rooms, name, pos)
			subscribe_one(s, name, pos, id, false);
	} else if (!resume && json_is_string(room)) {
		subscribe_one(s, json_string_value(room), since, id, false);
	} else if (!resume && json_is_array(rooms) && json_array_size(rooms) > 0) {
		size_t i;
		json_t *r;
		json_array_foreach(rooms, i, r) {
			if (!json_is_string(r)) {
				send_error(s->conn, id, "bad_request", "rooms must be strings");
				continue;
			}
			json_t *pos = json_is_object(since) ? json_object_get(since, json_string_value(r))
							     : NULL;
			subscribe_one(s, json_string_value(r), pos, id, false);
		}
	} else {
		send_error(s->conn, id, "bad_request",
			   resume ? "resume needs rooms: {room: {seq, epoch}}"
				  : "subscribe needs room or rooms");
	}
}

static void unsubscribe_one(struct session *s, const char *room, const char *id)
{
	struct sub *sb = find_sub(s, room);
	if (sb) {
		if (sb->confirmed)
			report_room(s->conn, room, false);
		remove_sub(s, sb);
	}
	struct buf b = { 0 };
	buf_appends(&b, "{\"type\":\"unsubscribed\",");
	proto_put_id(&b, id);
	buf_appends(&b, "\"room\":");
	buf_append_json_str(&b, room, strlen(room));
	buf_appends(&b, "}");
	send_buf(s->conn, &b);
}

static void on_unsubscribe(struct session *s, json_t *msg, const char *id)
{
	json_t *room = json_object_get(msg, "room"), *rooms = json_object_get(msg, "rooms");
	if (json_is_string(room)) {
		unsubscribe_one(s, json_string_value(room), id);
	} else if (json_is_array(rooms)) {
		size_t i;
		json_t *r;
		json_array_foreach(rooms, i, r)
			if (json_is_string(r))
				unsubscribe_one(s, json_string_value(r), id);
	} else {
		send_error(s->conn, id, "bad_request", "unsubscribe needs room or rooms");
	}
}

/* Joins the auto-joined rooms, with the positions the client gave, if any
 * (a room joined already, like `global` before an `auth`, moves to its
 * position). */
static void auto_join(struct session *s, json_t *positions)
{
	char autos[2][ROOM_MAX + 1];
	size_t n = auto_rooms(s, autos);
	for (size_t i = 0; i < n; i++) {
		json_t *pos = json_object_get(positions, autos[i]);
		if (pos || !find_sub(s, autos[i]))
			subscribe_one(s, autos[i], pos, NULL, true);
	}
}

/* ---- welcome and authenticated ------------------------------------------------------ */

/* welcome or authenticated, and what follows it: on an edge it waits for the
 * user's unread count, which only the primary's database has. */
struct greeting {
	bool welcome;               /* welcome, else authenticated */
	char *id;                   /* the auth's id (JSON text), or NULL */
	bool start;                 /* then report the connection and join the automatic rooms */
	json_t *positions;          /* where those start (the auth's rooms), or NULL */
};

static void greeting_free(struct greeting *g)
{
	free(g->id);
	json_decref(g->positions);
	free(g);
}

/* Sends g with the user's unread notifications, then starts the session if it is to. */
static void greet(struct session *s, struct greeting *g, int64_t unread)
{
	struct buf b = { 0 };
	if (g->welcome) {
		buf_printf(&b, "{\"type\":\"welcome\",\"client_id\":\"%llu\",\"user\":",
			   (unsigned long long)s->conn->id);
		put_user(&b, s);
		buf_appends(&b, ",\"rooms\":");
		put_rooms(&b, s, g->start);
		buf_printf(&b, ",\"heartbeat\":%d", worker.cfg->ping_interval);
	} else {
		buf_appends(&b, "{\"type\":\"authenticated\",");
		proto_put_id(&b, g->id);
		buf_appends(&b, "\"user\":");
		put_user(&b, s);
		buf_appends(&b, ",\"rooms\":");
		put_rooms(&b, s, g->start);
	}
	buf_printf(&b, ",\"unread\":%lld}", (long long)MAX(unread, 0));
	send_buf(s->conn, &b);
	if (g->start) {
		report_open(s);
		auto_join(s, g->positions);
	}
	greeting_free(g);
}

static void greeting_reply(struct conn *c, uint64_t tag, int status, const char *json, size_t len)
{
	struct greeting *g = (struct greeting *)(uintptr_t)tag;
	json_t *v = status == 200 ? json_loadb(json, len, 0, NULL) : NULL;
	if (c && c->session)
		greet(c->session, g, json_integer_value(json_object_get(v, "unread")));
	else
		greeting_free(g);
	json_decref(v);
}

/* Greets at once with the count from the database (0 when anonymous). An edge
 * asks the primary's API through its relay, and greets when the count comes
 * (0 if it cannot have it, as when the database fails). */
static void send_greeting(struct session *s, struct greeting *g)
{
	const char *user = s->claims.sub;
	if (!user || worker.reader) {
		greet(s, g, user ? store_unread_count(worker.reader, user) : 0);
		return;
	}
	struct buf q = { 0 };
	buf_appends(&q, "{\"op\":\"http\",\"method\":\"GET\",\"path\":\"/api/users/");
	/* Percent-encoded, the id is a path segment and a JSON string alike. */
	http_url_encode(&q, user);
	buf_appends(&q, "/notifications?unread=true&limit=1\"}");
	if (worker_request(s->conn, (uint64_t)(uintptr_t)g, q.data, q.len, greeting_reply) < 0)
		greet(s, g, 0);
	buf_free(&q);
}

static void on_auth(struct session *s, json_t *msg, const char *id)
{
	const char *token = json_string_value(json_object_get(msg, "token"));
	if (!token) {
		send_error(s->conn, id, "bad_request", "auth needs a token");
		return;
	}
	struct jwt_claims claims;
	enum jwt_result r = verify(token, strlen(token), &claims);
	if (r != JWT_OK) {
		send_error(s->conn, id, r == JWT_EXPIRED ? "token_expired" : "auth_failed",
			   jwt_result_str(r));
		return;
	}
	if (s->authenticated && (!claims.sub || !s->claims.sub || strcmp(claims.sub, s->claims.sub))) {
		jwt_claims_free(&claims);
		send_error(s->conn, id, "auth_failed", "a connection cannot change its user");
		return;
	}
	bool first = !s->authenticated;
	jwt_claims_free(&s->claims);
	s->claims = claims;
	s->authenticated = true;
	s->expired = false;
	arm_expiry(s);
	struct greeting *g = xcalloc(1, sizeof(*g));
	g->id = id ? xstrdup(id) : NULL;
	g->start = first;
	g->positions = json_incref(json_object_get(msg, "rooms"));
	send_greeting(s, g);
}

/* ---- publish and read -------------------------------------------------------------- */

/* The hub's reply to a client publish or read: tag is the request id text. */
static void publish_reply(struct conn *c, uint64_t tag, int status, const char *json, size_t len)
{
	char *id = (char *)(uintptr_t)tag;
	json_t *v = c ? json_loadb(json, len, 0, NULL) : NULL;
	if (c && status == 200 && v) {
		struct buf b = { 0 };
		buf_appends(&b, "{\"type\":\"published\",");
		proto_put_id(&b, id);
		buf_append(&b, json + 1, len - 1);   /* the hub's {room,seq,epoch} fields */
		send_buf(c, &b);
	} else if (c) {
		json_t *err = json_object_get(v, "error");
		const char *code = json_string_value(json_object_get(err, "code"));
		const char *msg = json_string_value(json_object_get(err, "message"));
		send_error(c, id, code ? code : "internal", msg ? msg : "publish failed");
	}
	json_decref(v);
	free(id);
}

/* raw[0..n) is the message's text, whose data member is passed on verbatim. */
static void on_publish(struct session *s, json_t *msg, const char *raw, size_t n, const char *id)
{
	const char *room = json_string_value(json_object_get(msg, "room"));
	const char *event = json_string_value(json_object_get(msg, "event"));
	if (!room || !event || !*event || strlen(event) > 128) {
		send_error(s->conn, id, "bad_request", "publish needs room, event and data");
		return;
	}
	const char *err = check_room(s, room, true);
	if (err) {
		send_error(s->conn, id, err, "not allowed to publish here");
		return;
	}
	size_t data_len;
	const char *data = proto_data(raw, n, &data_len);
	json_t *rooms = json_pack("[s]", room);
	char *tag = id ? xstrdup(id) : NULL;
	if (worker_publish(s->conn, (uint64_t)(uintptr_t)tag, publish_reply, rooms, event, data,
			   data_len, NULL, true) < 0) {
		free(tag);
		send_error(s->conn, id, "unavailable", "hub unavailable, retry");
	}
	json_decref(rooms);
}

static void read_reply(struct conn *c, uint64_t tag, int status, const char *json, size_t len)
{
	char *id = (char *)(uintptr_t)tag;
	json_t *v = c ? json_loadb(json, len, 0, NULL) : NULL;
	if (c && status == 200 && v) {
		struct buf b = { 0 };
		buf_appends(&b, "{\"type\":\"read\",");
		proto_put_id(&b, id);
		buf_printf(&b, "\"count\":%lld}",
			   (long long)json_integer_value(json_object_get(v, "count")));
		send_buf(c, &b);
	} else if (c) {
		send_error(c, id, status == 503 ? "unavailable" : "internal", "read failed");
	}
	json_decref(v);
	free(id);
}

static void on_read(struct session *s, json_t *msg, const char *id)
{
	if (!s->claims.sub) {
		send_error(s->conn, id, "auth_required", "notifications need a user");
		return;
	}
	json_t *ids = json_object_get(msg, "ids");
	bool all = json_is_true(json_object_get(msg, "all"));
	if (!all && !json_is_array(ids)) {
		send_error(s->conn, id, "bad_request", "read needs ids or all: true");
		return;
	}
	json_t *q = json_pack("{s:s, s:s}", "op", "read", "user", s->claims.sub);
	if (all)
		json_object_set_new(q, "all", json_true());
	else
		json_object_set(q, "ids", ids);
	if (!worker.hub.up) {
		json_decref(q);
		send_error(s->conn, id, "unavailable", "hub unavailable, retry");
		return;
	}
	char *text = json_dumps(q, JSON_COMPACT);
	json_decref(q);
	worker_request(s->conn, (uint64_t)(uintptr_t)(id ? xstrdup(id) : NULL), text,
		       strlen(text), read_reply);
	free(text);
}

/* ---- workflows ---------------------------------------------------------------------- */

/* The hub's answer to a workflow action: the state, or the refusal. */
static void workflow_reply(struct conn *c, uint64_t tag, int status, const char *json, size_t len)
{
	char *id = (char *)(uintptr_t)tag;
	json_t *v = c ? json_loadb(json, len, 0, NULL) : NULL;
	if (c && status == 200 && v) {
		struct buf b = { 0 };
		buf_appends(&b, "{\"type\":\"workflow\",");
		proto_put_id(&b, id);
		buf_appends(&b, "\"workflow\":");
		buf_append(&b, json, len);
		buf_appends(&b, "}");
		send_buf(c, &b);
	} else if (c) {
		json_t *err = json_object_get(v, "error");
		const char *code = json_string_value(json_object_get(err, "code"));
		const char *msg = json_string_value(json_object_get(err, "message"));
		send_error(c, id, code ? code : "internal", msg ? msg : "workflow action failed");
	}
	json_decref(v);
	free(id);
}

json_t *session_workflow_op(const struct jwt_claims *claims, json_t *msg)
{
	json_t *wf = json_object_get(msg, "workflow"), *action = json_object_get(msg, "action");
	if (!json_is_string(wf) || !json_is_string(action))
		return NULL;
	json_t *roles = json_array();
	for (size_t i = 0; i < claims->nroles; i++)
		json_array_append_new(roles, json_string(claims->roles[i]));
	json_t *q = json_pack("{s:s, s:O, s:O, s:s, s:o}", "op", "workflow_act", "action", action,
			      "id", wf, "actor", claims->sub, "roles", roles);
	const char *keys[] = { "comment", "version" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (json_object_get(msg, keys[i]))
			json_object_set(q, keys[i], json_object_get(msg, keys[i]));
	return q;
}

/* workflow {action, workflow, comment, version?}: acts as the token's sub
 * with its roles; the hub checks the rules. */
static void on_workflow(struct session *s, json_t *msg, const char *id)
{
	if (!s->claims.sub) {
		send_error(s->conn, id, "auth_required", "workflow actions need a user");
		return;
	}
	json_t *q = session_workflow_op(&s->claims, msg);
	if (!q) {
		send_error(s->conn, id, "bad_request", "workflow needs action and workflow");
		return;
	}
	char *text = json_dumps(q, JSON_COMPACT);
	json_decref(q);
	char *tag = id ? xstrdup(id) : NULL;
	if (worker_request(s->conn, (uint64_t)(uintptr_t)tag, text, strlen(text),
			   workflow_reply) < 0) {
		free(tag);
		send_error(s->conn, id, "unavailable", "hub unavailable, retry");
	}
	free(text);
}

/* ---- the session's lifecycle --------------------------------------------------------- */

/* Token bucket: false (message dropped) when the client is over its rate;
 * a client far over it is closed with 1008. */
static bool rate_ok(struct session *s)
{
	const struct config *cfg = worker.cfg;
	ev_tstamp now = ev_now(worker.loop);
	s->tokens = MIN(s->tokens + (now - s->refilled) * cfg->rate_per_sec, (double)cfg->rate_burst);
	s->refilled = now;
	s->tokens -= 1;
	if (s->tokens >= 0)
		return true;
	worker.stats.rate_limited++;
	if (s->tokens < -(double)cfg->rate_burst) {
		conn_ws_close(s->conn, WS_CLOSE_POLICY, "rate limit exceeded");
		return false;
	}
	send_error(s->conn, NULL, "rate_limited", "too many messages: slow down");
	return false;
}

void session_open(struct conn *c, struct jwt_claims *claims)
{
	struct session *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	c->session = s;
	s->tokens = worker.cfg->rate_burst;
	s->refilled = ev_now(worker.loop);
	/* Filling the room allowance one subscribe at a time is not abuse. */
	s->subscribe_credits = worker.cfg->max_rooms_per_connection;
	ev_init(&s->auth_timer, auth_timer_cb);
	s->auth_timer.data = s;
	if (claims) {
		s->claims = *claims;
		s->authenticated = true;
		arm_expiry(s);
	} else if (!worker.cfg->allow_anonymous) {
		ev_timer_set(&s->auth_timer, worker.cfg->auth_timeout, 0);
		ev_timer_start(worker.loop, &s->auth_timer);
	}
	struct greeting *g = xcalloc(1, sizeof(*g));
	g->welcome = true;
	g->start = s->authenticated || worker.cfg->allow_anonymous;
	send_greeting(s, g);
}

void session_message(struct conn *c, int opcode, const char *p, size_t n)
{
	struct session *s = c->session;
	if (!rate_ok(s))
		return;
	if (opcode != WS_OP_TEXT) {
		send_error(c, NULL, "bad_request", "messages are JSON text");
		return;
	}
	json_t *msg;
	char err[160];
	if (proto_parse_object(p, n, worker.cfg->max_json_depth, 0, &msg, err, sizeof(err)) < 0) {
		send_error(c, NULL, "bad_request", err);
		return;
	}
	char *id = proto_id_dup(msg);
	const char *type = json_string_value(json_object_get(msg, "type"));
	if (!type) {
		send_error(c, id, "bad_request", "missing type");
	} else if (strcmp(type, "ping") == 0) {
		struct buf b = { 0 };
		char ts[UTIL_TS_LEN + 1];
		ts_format(now_ms(), ts);
		buf_appends(&b, "{\"type\":\"pong\",");
		proto_put_id(&b, id);
		buf_printf(&b, "\"ts\":\"%s\"}", ts);
		send_buf(c, &b);
	} else if (strcmp(type, "auth") == 0) {
		on_auth(s, msg, id);
	} else if (!s->authenticated && !worker.cfg->allow_anonymous) {
		send_error(c, id, "auth_required", "authenticate first");
	} else if (strcmp(type, "subscribe") == 0 || strcmp(type, "resume") == 0) {
		if (s->subscribe_credits > 0) {
			s->subscribe_credits--;
			s->tokens += 1;
		}
		on_subscribe(s, msg, id, type[0] == 'r');
	} else if (strcmp(type, "unsubscribe") == 0) {
		on_unsubscribe(s, msg, id);
	} else if (strcmp(type, "subscriptions") == 0) {
		struct buf b = { 0 };
		buf_appends(&b, "{\"type\":\"subscriptions\",");
		proto_put_id(&b, id);
		buf_appends(&b, "\"rooms\":");
		put_rooms(&b, s, false);
		buf_appends(&b, "}");
		send_buf(c, &b);
	} else if (strcmp(type, "publish") == 0) {
		on_publish(s, msg, p, n, id);
	} else if (strcmp(type, "read") == 0) {
		on_read(s, msg, id);
	} else if (strcmp(type, "workflow") == 0) {
		on_workflow(s, msg, id);
	} else {
		send_error(c, id, "bad_request", "unknown message type");
	}
	free(id);
	json_decref(msg);
}

void session_close(struct conn *c)
{
	struct session *s = c->session;
	for (size_t i = 0; i < s->nsubs; i++)
		room_unsubscribe(s->subs[i]);
	free(s->subs);
	ev_timer_stop(worker.loop, &s->auth_timer);
	session_report_close(c->id);
	jwt_claims_free(&s->claims);
	free(s);
	c->session = NULL;
}
