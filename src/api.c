/* api.c -- HTTP routes. Both listeners: the health probes. Client listener:
 * the WebSocket endpoints /ws and (test-only) /echo. Admin listener: the
 * server API of SPEC §9 behind the API key, and /metrics. Calls that need
 * the whole picture (connections, rooms, publishing) go to the hub; history
 * and notifications are read here through the worker's read-only handle (on
 * an edge, which has no database, the primary answers them). A primary also
 * serves its edges: /api/cluster/request, /api/cluster/frames and
 * /api/cluster/sio-session. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "acl.h"
#include "dashboard.h"
#include "ipc.h"
#include "log.h"
#include "proto.h"
#include "session.h"
#include "sio.h"
#include "store.h"
#include "util.h"
#include "wfstate.h"
#include "worker.h"

#define HUB_STALE_MS 2000      /* hub figures older than this mean the hub is down */
#define HISTORY_MAX 1000
#define FRAMES_MAX 512         /* messages per /api/cluster/frames */

struct route_req {
	struct conn *c;
	const struct http_request *req;
	const char *body;
	size_t len;
	const char *rest;          /* path after the route's prefix */
	size_t rest_len;
};

/* ---- responses ---------------------------------------------------------------------- */

static void respond(struct conn *c, int status, const char *type, const char *body, size_t len)
{
	struct buf out = { 0 };
	http_response(&out, status, type, body, len, conn_http_keep_alive(c));
	conn_http_reply(c, &out);
	buf_free(&out);
}

static void respond_json(struct conn *c, int status, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	respond(c, status, "application/json", s, strlen(s));
	free(s);
	json_decref(v);
}

static void respond_error(struct conn *c, int status, const char *code, const char *message)
{
	struct buf out = { 0 };
	http_error(&out, status, code, message, conn_http_keep_alive(c));
	conn_http_reply(c, &out);
	buf_free(&out);
}

/* Replies that waited on the hub carry their request's ticket as the tag. */
static bool resume(struct conn *c, uint64_t ticket)
{
	if (c)
		c->http_cur = (uint32_t)ticket;
	return c != NULL;
}

/* The hub's answer becomes the HTTP response as it is. */
static void hub_reply(struct conn *c, uint64_t tag, int status, const char *json, size_t len)
{
	if (resume(c, tag))
		respond(c, status, "application/json", json, len);
}

/* Forwards a JSON request to the hub; the reply comes back to fn. */
static void ask_hub(struct conn *c, json_t *q, worker_reply_fn fn)
{
	char *s = json_dumps(q, JSON_COMPACT);
	json_decref(q);
	if (worker_request(c, c->http_cur, s, strlen(s), fn) < 0)
		respond_error(c, 503, "unavailable", "hub unavailable, retry");
	free(s);
}

/* On an edge (no database), a route that reads it is answered by the primary:
 * the relay makes the same request of the primary's API. True when it did. */
static bool read_on_primary(struct route_req *r)
{
	if (worker.reader)
		return false;
	/* The target is visible ASCII (http.c), so valid JSON text. */
	ask_hub(r->c, json_pack("{s:s, s:s, s:s%}", "op", "http", "method", "GET", "path",
				r->req->target, r->req->target_len), hub_reply);
	return true;
}

/* ---- health ------------------------------------------------------------------------- */

static bool hub_alive(void)
{
	return worker.hub.up && mono_ms() - worker.hubstat.at < HUB_STALE_MS;
}

static void health(struct conn *c, const char *which)
{
	bool hub = hub_alive(), db = hub && worker.hubstat.db_writable;
	if (strcmp(which, "/health/live") == 0) {
		respond_json(c, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	bool ready = hub && db;
	int status = ready ? 200 : 503;
	if (strcmp(which, "/health/ready") == 0) {
		respond_json(c, status, json_pack("{s:s}", "status", ready ? "ready" : "not_ready"));
		return;
	}
	json_int_t conns = hub ? (json_int_t)worker.hubstat.connections : (json_int_t)conn_count();
	respond_json(c, status, json_pack("{s:s, s:I, s:I, s:s, s:s, s:i}",
		"status", ready ? "ok" : "degraded",
		"uptime", (json_int_t)((now_ms() - worker.started_ms) / 1000),
		"connections", conns, "hub", hub ? "up" : "down",
		"db", db ? "writable" : "unavailable", "worker", worker.slot + 1));
}

/* ---- WebSocket endpoints ------------------------------------------------------------- */

/* The handshake checks of RFC 6455 §4.2.1; returns false after answering. */
static bool ws_handshake_ok(struct conn *c, const struct http_request *req)
{
	const struct http_header *key = http_find_header(req, "Sec-WebSocket-Key");
	const struct http_header *ver = http_find_header(req, "Sec-WebSocket-Version");
	if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
		respond_error(c, 405, "bad_request", "WebSocket needs GET");
		return false;
	}
	if (!req->upgrade_websocket || !key || key->value_len != 24) {
		respond_error(c, 400, "bad_request", "not a valid WebSocket handshake");
		return false;
	}
	if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
		static const char body[] = "{\"error\":{\"code\":\"bad_request\",\"message\":\"unsupported WebSocket version\"}}";
		struct buf out = { 0 };
		buf_printf(&out, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
				 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			   sizeof(body) - 1, body);
		conn_http_reply(c, &out);
		buf_free(&out);
		return false;
	}
	const struct http_header *origin = http_find_header(req, "Origin");
	if (origin && !config_origin_allowed(worker.cfg, origin->value, origin->value_len)) {
		respond_error(c, 403, "forbidden", "origin not allowed");
		return false;
	}
	return true;
}

static const char *ws_protocol(const struct http_request *req)
{
	const struct http_header *h = http_find_header(req, "Sec-WebSocket-Protocol");
	return h && http_header_has_token(h, "herald.v1") ? "herald.v1" : NULL;
}

static void ws_endpoint(struct conn *c, const struct http_request *req)
{
	if (!ws_handshake_ok(c, req))
		return;
	/* A token in the URL or header is checked before upgrading: 401 is clearer
	 * than a close code. Without one, the client may send an auth message. */
	char token[JWT_MAX_LEN + 1];
	int tlen = req->query ? http_query_param(req->query, req->query_len, "token", token,
						 sizeof(token)) : -1;
	const struct http_header *authz = http_find_header(req, "Authorization");
	if (tlen < 0 && authz && authz->value_len > 7 && strncasecmp(authz->value, "Bearer ", 7) == 0 &&
	    authz->value_len - 7 <= JWT_MAX_LEN) {
		tlen = (int)(authz->value_len - 7);
		memcpy(token, authz->value + 7, (size_t)tlen);
		token[tlen] = '\0';
	}
	struct jwt_claims claims;
	if (tlen >= 0) {
		enum jwt_result r = session_verify_token(token, (size_t)tlen, &claims);
		if (r != JWT_OK) {
			respond_error(c, 401, r == JWT_EXPIRED ? "token_expired" : "auth_failed",
				      jwt_result_str(r));
			return;
		}
	}
	conn_ws_upgrade(c, req, ws_protocol(req), false);
	session_open(c, tlen >= 0 ? &claims : NULL);
}

/* ---- server API -------------------------------------------------------------------- */

static bool authorized(const struct http_request *req)
{
	const char *key = worker.cfg->api_key;
	const struct http_header *h = http_find_header(req, "Authorization");
	if (!key || !*key || !h || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
		return false;
	return str_equal_ct(h->value + 7, h->value_len - 7, key, strlen(key));
}

static bool method_is(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* Parses the request body as a JSON object, answering 400 when it is not. */
static json_t *body_json(struct route_req *r, size_t flags)
{
	json_t *v;
	char err[160];
	if (proto_parse_object(r->body, r->len, worker.cfg->max_json_depth, flags, &v, err,
			       sizeof(err)) < 0) {
		respond_error(r->c, 400, "bad_request", err);
		return NULL;
	}
	return v;
}

/* Decodes the path segment rest[0..n) into out; false (after answering 400) when bad. */
static bool segment(struct route_req *r, const char *p, size_t n, char *out, size_t outlen)
{
	if (n == 0 || http_url_decode(p, n, out, outlen) < 0) {
		respond_error(r->c, 400, "bad_request", "bad path segment");
		return false;
	}
	return true;
}

/* Sends a publish to rooms (a JSON array) of q's event and idempotency_key,
 * with the data of the body as written, once they are checked; the hub's
 * reply is the response. */
static void publish_send(struct route_req *r, json_t *q, json_t *rooms, bool from_client)
{
	const char *event = json_string_value(json_object_get(q, "event"));
	json_t *idem = json_object_get(q, "idempotency_key");
	const char *err = NULL;
	if (!json_is_array(rooms) || json_array_size(rooms) == 0 || json_array_size(rooms) > 1000)
		err = "rooms must be an array of 1..1000 room names";
	else if (!event || !*event || strlen(event) > 128)
		err = "event must be a string of 1..128 bytes";
	else if (idem && (!json_is_string(idem) || json_string_length(idem) > 200))
		err = "idempotency_key must be a string of at most 200 bytes";
	size_t i;
	json_t *v;
	json_array_foreach(rooms, i, v) {
		if (!err && (!json_is_string(v) || !acl_room_valid(json_string_value(v), json_string_length(v))))
			err = "invalid room name";
	}
	size_t data_len;
	const char *data = proto_data(r->body, r->len, &data_len);
	if (err)
		respond_error(r->c, 400, "bad_request", err);
	else if (worker_publish(r->c, r->c->http_cur, hub_reply, rooms, event, data, data_len,
				json_string_value(idem), from_client) < 0)
		respond_error(r->c, 503, "unavailable", "hub unavailable, retry");
}

static void publish(struct route_req *r, bool broadcast)
{
	/* Integers beyond 64 bits are valid JSON: data is passed on as written. */
	json_t *q = body_json(r, JSON_DECODE_INT_AS_REAL);
	if (!q)
		return;
	json_t *room = json_object_get(q, "room");
	json_t *rooms = broadcast ? json_pack("[s]", "global")
			: json_is_string(room) ? json_pack("[O]", room)
			: json_incref(json_object_get(q, "rooms"));
	if (json_is_array(rooms))
		publish_send(r, q, rooms, false);
	else
		respond_error(r->c, 400, "bad_request",
			      "room (string) or rooms (array of 1..1000) required");
	json_decref(rooms);
	json_decref(q);
}

static int history_row(const struct store_message *m, void *arg)
{
	json_t *data = json_loadb(m->data, m->data_len, JSON_DECODE_ANY, NULL);
	json_array_append_new(arg, json_pack("{s:I, s:s, s:o, s:s}", "seq", (json_int_t)m->seq,
					     "event", m->event, "data", data ? data : json_null(),
					     "ts", m->ts));
	return 0;
}

static long query_long(const struct http_request *req, const char *key, long def)
{
	char v[32];
	if (!req->query || http_query_param(req->query, req->query_len, key, v, sizeof(v)) <= 0)
		return def;
	char *end;
	long n = strtol(v, &end, 10);
	return *end || n < 0 ? -1 : n;
}

static void history(struct route_req *r, const char *room)
{
	if (read_on_primary(r))
		return;
	long since = query_long(r->req, "since", 0), limit = query_long(r->req, "limit", 100);
	if (since < 0 || limit < 0) {
		respond_error(r->c, 400, "bad_request", "since and limit must be non-negative integers");
		return;
	}
	/* One read snapshot, so the room's seq, its messages and first_seq agree. */
	struct store_room sr;
	json_t *msgs = json_array();
	int64_t first = 0;
	int found = -1;
	if (store_begin(worker.reader) == 0) {
		found = store_room_get(worker.reader, room, false, &sr);
		if (found == 1 &&
		    store_history(worker.reader, room, since, (int)MIN(MAX(limit, 1), HISTORY_MAX),
				  history_row, msgs) < 0)
			found = -1;
		if (found == 1)
			first = store_first_seq(worker.reader, room);
		store_commit(worker.reader);
	}
	if (found != 1) {
		json_decref(msgs);
		if (found == 0)
			respond_error(r->c, 404, "not_found", "no such room");
		else
			respond_error(r->c, 500, "internal", "history unavailable");
		return;
	}
	respond_json(r->c, 200, json_pack("{s:s, s:s, s:I, s:I, s:o}", "room", room, "epoch",
					  sr.epoch, "seq", (json_int_t)sr.last_seq, "first_seq",
					  (json_int_t)MAX(first, 0), "messages", msgs));
}

static void rooms_route(struct route_req *r)
{
	char room[ROOM_MAX * 3 + 1];
	if (r->rest_len == 0) {
		char prefix[ROOM_MAX + 1];
		json_t *q = json_pack("{s:s}", "op", "rooms");
		if (r->req->query && http_query_param(r->req->query, r->req->query_len, "prefix",
						      prefix, sizeof(prefix)) >= 0)
			json_object_set_new(q, "prefix", json_string(prefix));
		ask_hub(r->c, q, hub_reply);
		return;
	}
	const char *slash = memchr(r->rest, '/', r->rest_len);
	size_t n = slash ? (size_t)(slash - r->rest) : r->rest_len;
	if (!segment(r, r->rest, n, room, sizeof(room)))
		return;
	if (!slash)
		ask_hub(r->c, json_pack("{s:s, s:s}", "op", "room", "room", room), hub_reply);
	else if (r->rest_len - n == 8 && memcmp(slash, "/history", 8) == 0)
		history(r, room);
	else
		respond_error(r->c, 404, "not_found", "no such route");
}

static void notifications_list(struct route_req *r, const char *user)
{
	if (read_on_primary(r))
		return;
	char v[8];
	bool unread = r->req->query &&
		      http_query_param(r->req->query, r->req->query_len, "unread", v, sizeof(v)) > 0 &&
		      strcmp(v, "true") == 0;
	long limit = query_long(r->req, "limit", 50), before = query_long(r->req, "before", 0);
	if (limit < 0 || before < 0) {
		respond_error(r->c, 400, "bad_request", "limit and before must be non-negative integers");
		return;
	}
	json_t *list = NULL;
	int64_t count = 0;
	if (store_begin(worker.reader) == 0) {   /* the list and the count agree */
		list = store_notifications_list(worker.reader, user, unread,
						(int)MIN(MAX(limit, 1), HISTORY_MAX), before);
		count = store_unread_count(worker.reader, user);
		store_commit(worker.reader);
	}
	if (!list) {
		respond_error(r->c, 500, "internal", "notifications unavailable");
		return;
	}
	respond_json(r->c, 200, json_pack("{s:s, s:I, s:o}", "user", user, "unread",
					  (json_int_t)MAX(count, 0), "notifications", list));
}

static void users_route(struct route_req *r)
{
	char user[256 * 3];
	const char *slash = memchr(r->rest, '/', r->rest_len);
	size_t n = slash ? (size_t)(slash - r->rest) : r->rest_len;
	if (!slash || !segment(r, r->rest, n, user, sizeof(user))) {
		if (!slash)
			respond_error(r->c, 404, "not_found", "no such route");
		return;
	}
	const char *tail = slash;
	size_t tl = r->rest_len - n;
#define TAIL_IS(s) (tl == strlen(s) && memcmp(tail, s, tl) == 0)
	if (TAIL_IS("/disconnect") && method_is(r->req, "POST")) {
		ask_hub(r->c, json_pack("{s:s, s:s}", "op", "disconnect", "user", user), hub_reply);
	} else if (TAIL_IS("/notifications") && method_is(r->req, "GET")) {
		notifications_list(r, user);
	} else if (TAIL_IS("/notifications/read") && method_is(r->req, "POST")) {
		json_t *q = r->len ? body_json(r, 0) : json_object();
		if (!q)
			return;
		json_t *ids = json_object_get(q, "ids");
		if (ids && !json_is_array(ids)) {
			json_decref(q);
			respond_error(r->c, 400, "bad_request", "ids must be an array");
			return;
		}
		json_t *fwd = json_pack("{s:s, s:s}", "op", "read", "user", user);
		if (ids)
			json_object_set(fwd, "ids", ids);
		else
			json_object_set_new(fwd, "all", json_true());
		json_decref(q);
		ask_hub(r->c, fwd, hub_reply);
	} else {
		respond_error(r->c, 404, "not_found", "no such route");
	}
#undef TAIL_IS
}

/* A user id is valid when user:{id} is a valid room name. */
static bool user_valid(const char *user)
{
	char room[ROOM_MAX + 2];
	int n = snprintf(room, sizeof(room), "user:%s", user);
	return *user && n < (int)sizeof(room) && acl_room_valid(room, (size_t)n);
}

static void notify(struct route_req *r)
{
	json_t *q = body_json(r, 0);
	if (!q)
		return;
	json_t *user = json_object_get(q, "user"), *users = json_object_get(q, "users");
	const char *type = json_string_value(json_object_get(q, "type"));
	json_t *list = json_array();
	if (json_is_string(user))
		json_array_append(list, user);
	else if (json_is_array(users))
		json_array_extend(list, users);
	size_t i;
	json_t *v;
	bool ok = json_array_size(list) > 0 && json_array_size(list) <= 10000 && type && *type;
	json_array_foreach(list, i, v)
		ok = ok && json_is_string(v) && user_valid(json_string_value(v));
	const char *fields[] = { "title", "message", "action_url" };
	for (size_t f = 0; f < ARRAY_SIZE(fields); f++) {
		json_t *x = json_object_get(q, fields[f]);
		ok = ok && (!x || json_is_string(x) || json_is_null(x));
	}
	if (!ok) {
		json_decref(list);
		json_decref(q);
		respond_error(r->c, 400, "bad_request",
			      "user or users (1..10000 ids making valid user:{id} rooms), type, and string title/message/action_url required");
		return;
	}
	json_object_set_new(q, "users", list);
	json_object_del(q, "user");
	json_object_set_new(q, "op", json_string("notify"));
	ask_hub(r->c, q, hub_reply);
}

/* /api/webhooks[/{id}[/deliveries[/{d}/retry] | /test]]: the hub keeps the
 * endpoints and checks every field; here the path becomes an op. */
static void webhooks_route(struct route_req *r)
{
	const struct http_request *req = r->req;
	bool get = method_is(req, "GET"), post = method_is(req, "POST");
	char id[64], delivery[64], value[64];
	const char *slash = memchr(r->rest, '/', r->rest_len);
	size_t n = slash ? (size_t)(slash - r->rest) : r->rest_len;
	const char *tail = slash ? slash : r->rest + r->rest_len;
	size_t tl = r->rest_len - n;
	json_t *q = NULL;
#define TAIL_IS(s) (tl == strlen(s) && memcmp(tail, s, tl) == 0)
	if (r->rest_len == 0) {
		if (get)
			q = json_pack("{s:s}", "op", "webhook_list");
		else if (post && (q = body_json(r, 0)))
			q = json_pack("{s:s, s:o}", "op", "webhook_create", "body", q);
		else if (!post)
			respond_error(r->c, 405, "method_not_allowed", "GET or POST");
		if (q)
			ask_hub(r->c, q, hub_reply);
		return;
	}
	if (!segment(r, r->rest, n, id, sizeof(id)))
		return;
	if (tl == 0 && get) {
		q = json_pack("{s:s, s:s}", "op", "webhook_get", "id", id);
	} else if (tl == 0 && method_is(req, "DELETE")) {
		q = json_pack("{s:s, s:s}", "op", "webhook_delete", "id", id);
	} else if (tl == 0 && method_is(req, "PATCH")) {
		json_t *body = body_json(r, 0);
		if (!body)
			return;
		q = json_pack("{s:s, s:s, s:o}", "op", "webhook_update", "id", id, "body", body);
	} else if (TAIL_IS("/test") && post) {
		q = json_pack("{s:s, s:s}", "op", "webhook_test", "id", id);
	} else if (TAIL_IS("/deliveries") && get) {
		q = json_pack("{s:s, s:s}", "op", "webhook_deliveries", "id", id);
		const char *keys[] = { "status", "before" };
		for (size_t i = 0; req->query && i < ARRAY_SIZE(keys); i++)
			if (http_query_param(req->query, req->query_len, keys[i], value, sizeof(value)) >= 0)
				json_object_set_new(q, keys[i], json_string(value));
		if (req->query && http_query_param(req->query, req->query_len, "limit", value,
						   sizeof(value)) >= 0)
			json_object_set_new(q, "limit", json_integer(strtoll(value, NULL, 10)));
	} else if (tl > strlen("/deliveries/") && memcmp(tail, "/deliveries/", 12) == 0 && post &&
		   tl - 12 > 6 && memcmp(tail + tl - 6, "/retry", 6) == 0) {
		if (!segment(r, tail + 12, tl - 12 - 6, delivery, sizeof(delivery)))
			return;
		q = json_pack("{s:s, s:s, s:s}", "op", "webhook_retry", "id", id, "delivery", delivery);
	} else {
		respond_error(r->c, 404, "not_found", "no such route");
		return;
	}
#undef TAIL_IS
	ask_hub(r->c, q, hub_reply);
}

/* ---- workflows ------------------------------------------------------------------------ */

/* GET /api/workflow-definitions, read here; POST goes to the hub. */
static void workflow_definitions(struct route_req *r)
{
	if (method_is(r->req, "POST")) {
		json_t *body = body_json(r, 0);
		if (body)
			ask_hub(r->c, json_pack("{s:s, s:o}", "op", "workflow_define", "body", body),
				hub_reply);
		return;
	}
	if (read_on_primary(r))
		return;
	json_t *rows = store_workflow_defs(worker.reader);
	if (!rows) {
		respond_error(r->c, 500, "internal", "definitions unavailable");
		return;
	}
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		const char *steps = json_string_value(json_object_get(row, "steps"));
		json_t *v = steps ? json_loads(steps, 0, NULL) : NULL;
		json_object_set_new(row, "steps", v ? v : json_array());
	}
	respond_json(r->c, 200, json_pack("{s:o}", "definitions", rows));
}

/* GET /api/workflows/{id}: the state, its history and the approvals of its
 * current step, from one read snapshot. */
static void workflow_show(struct route_req *r, const char *id)
{
	if (read_on_primary(r))
		return;
	json_t *row = NULL, *history = NULL, *approvals = NULL;
	int found = -1;
	int64_t n = wfstate_id_parse(id);
	if (!n) {
		found = 0;
	} else if (store_begin(worker.reader) == 0) {
		found = store_workflow_get(worker.reader, n, &row);
		if (found == 1) {
			history = store_workflow_history(worker.reader, n);
			approvals = store_workflow_approvals(worker.reader, n,
				(int)json_integer_value(json_object_get(row, "step")));
			if (!history || !approvals)
				found = -1;
		}
		store_commit(worker.reader);
	}
	if (found == 1) {
		json_t *v = wfstate_json(row);
		json_object_set(v, "history", history);
		json_object_set(v, "approvals", approvals);
		respond_json(r->c, 200, v);
	} else if (found == 0) {
		respond_error(r->c, 404, "not_found", "no such workflow");
	} else {
		respond_error(r->c, 500, "internal", "workflow unavailable");
	}
	json_decref(row);
	json_decref(history);
	json_decref(approvals);
}

/* GET /api/workflows?status=&definition=&created_by=&limit=&before=, newest first. */
static void workflows_list(struct route_req *r)
{
	if (read_on_primary(r))
		return;
	const struct http_request *req = r->req;
	char status[32], definition[WFSTATE_NAME_MAX * 3 + 1], by[ROOM_MAX * 3 + 1], before[32];
	struct store_workflow_filter f = { .limit = (int)query_long(req, "limit", 100) };
#define PARAM(key, out) (req->query && http_query_param(req->query, req->query_len, key, out, \
							sizeof(out)) >= 0 ? out : NULL)
	f.status = PARAM("status", status);
	f.definition = PARAM("definition", definition);
	f.created_by = PARAM("created_by", by);
	const char *b = PARAM("before", before);
#undef PARAM
	f.before = b ? wfstate_id_parse(b) : 0;
	const char *why = f.limit < 1 || f.limit > 500 ? "limit must be from 1 to 500"
			  : f.status && wfstate_status_parse(f.status) < 0
			  ? "status must be pending, in_progress, approved, rejected or cancelled"
			  : b && !f.before ? "before must be a workflow id" : NULL;
	if (why) {
		respond_error(r->c, 400, "bad_request", why);
		return;
	}
	json_t *rows = store_workflows(worker.reader, &f);
	if (!rows) {
		respond_error(r->c, 500, "internal", "workflows unavailable");
		return;
	}
	json_t *list = json_array();
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
		json_array_append_new(list, wfstate_json(row));
	json_t *last = json_array_get(list, json_array_size(list) - 1);
	json_t *next = json_array_size(list) == (size_t)f.limit ? json_object_get(last, "id") : NULL;
	respond_json(r->c, 200, json_pack("{s:o, s:O}", "workflows", list,
					  "next_before", next ? next : json_null()));
	json_decref(rows);
}

/* /api/workflows[/bulk | /{id}[/approve|reject|cancel]]: reads here, writes in the hub. */
static void workflows_route(struct route_req *r)
{
	bool get = method_is(r->req, "GET"), post = method_is(r->req, "POST");
	char id[64];
	const char *slash = memchr(r->rest, '/', r->rest_len);
	size_t n = slash ? (size_t)(slash - r->rest) : r->rest_len;
	json_t *body;
	if (r->rest_len == 0 && get) {
		workflows_list(r);
	} else if (r->rest_len == 0 && post) {
		if ((body = body_json(r, 0)))
			ask_hub(r->c, json_pack("{s:s, s:o}", "op", "workflow_create", "body", body),
				hub_reply);
	} else if (r->rest_len == 0) {
		respond_error(r->c, 405, "method_not_allowed", "GET or POST");
	} else if (!slash && r->rest_len == 4 && memcmp(r->rest, "bulk", 4) == 0 && post) {
		if ((body = body_json(r, 0)))
			ask_hub(r->c, json_pack("{s:s, s:o}", "op", "workflow_bulk", "body", body),
				hub_reply);
	} else if (!segment(r, r->rest, n, id, sizeof(id))) {
		return;
	} else if (!slash && get) {
		workflow_show(r, id);
	} else if (slash && post && r->rest_len - n - 1 <= 7) {
		char action[8];
		snprintf(action, sizeof(action), "%.*s", (int)(r->rest_len - n - 1), slash + 1);
		if (wfstate_action_parse(action) < 0) {
			respond_error(r->c, 404, "not_found", "no such route");
		} else if ((body = r->len ? body_json(r, 0) : json_object())) {
			json_object_set_new(body, "op", json_string("workflow_act"));
			json_object_set_new(body, "action", json_string(action));
			json_object_set_new(body, "id", json_string(id));
			ask_hub(r->c, body, hub_reply);
		}
	} else {
		respond_error(r->c, 404, "not_found", "no such route");
	}
}

/* ---- cluster: what a primary serves its edges ----------------------------------------- */

/* True on a primary. An edge, which has neither the hub nor the database these
 * calls are for, answers 404. */
static bool primary_only(struct route_req *r)
{
	if (worker.reader)
		return true;
	respond_error(r->c, 404, "not_found", "only the primary answers /api/cluster");
	return false;
}

/* POST /api/cluster/request: an edge's upward traffic, as its relay sends it.
 * A publish is sequenced here like any other; every other op goes to the hub
 * as it came. The hub's reply is the response. */
static void cluster_request(struct route_req *r)
{
	if (!primary_only(r))
		return;
	json_t *q = body_json(r, JSON_DECODE_INT_AS_REAL);
	if (!q)
		return;
	const char *op = json_string_value(json_object_get(q, "op"));
	if (!op)
		respond_error(r->c, 400, "bad_request", "op (string) required");
	else if (strcmp(op, "publish") == 0)
		publish_send(r, q, json_object_get(q, "rooms"),
			     json_is_true(json_object_get(q, "from_client")));
	else if (worker_request(r->c, r->c->http_cur, r->body, r->len, hub_reply) < 0)
		respond_error(r->c, 503, "unavailable", "hub unavailable, retry");
	json_decref(q);
}

struct frames_ctx {
	struct buf out;
	const char *room, *epoch;
};

static int frame_row(const struct store_message *m, void *arg)
{
	struct frames_ctx *fc = arg;
	proto_deliver_frame(&fc->out, fc->room, m->seq, fc->epoch, m->gpos, m->event, m->data,
			    m->data_len, m->ts);
	return 0;
}

/* GET /api/cluster/frames?room=&after=&limit=: the stored messages of room
 * after seq `after`, as the IPC_DELIVER frames the hub routes, for a relay
 * filling a gap its Redis stream no longer covers. The room's epoch and last
 * seq are in headers (a room never published: "" and 0). */
static void cluster_frames(struct route_req *r)
{
	if (!primary_only(r))
		return;
	const struct http_request *req = r->req;
	char room[ROOM_MAX + 1];
	long after = query_long(req, "after", 0), limit = query_long(req, "limit", FRAMES_MAX);
	int n = req->query ? http_query_param(req->query, req->query_len, "room", room,
					      sizeof(room)) : -1;
	if (n <= 0 || !acl_room_valid(room, (size_t)n)) {
		respond_error(r->c, 400, "bad_request", "invalid room name");
		return;
	}
	if (after < 0 || limit < 1 || limit > FRAMES_MAX) {
		respond_error(r->c, 400, "bad_request", "after must be a seq and limit 1..512");
		return;
	}
	/* One read snapshot, so the messages and the headers agree. */
	struct store_room sr = { 0 };
	struct frames_ctx fc = { .room = room, .epoch = sr.epoch };
	int found = -1;
	if (store_begin(worker.reader) == 0) {
		found = store_room_get(worker.reader, room, false, &sr);
		if (found == 1 && store_history(worker.reader, room, after, (int)limit, frame_row,
						&fc) < 0)
			found = -1;
		store_commit(worker.reader);
	}
	if (found < 0) {
		buf_free(&fc.out);
		respond_error(r->c, 500, "internal", "history unavailable");
		return;
	}
	struct buf out = { 0 };
	buf_printf(&out, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
			 "Content-Length: %zu\r\nCache-Control: no-store\r\nX-Herald-Epoch: %s\r\n"
			 "X-Herald-Last-Seq: %lld\r\n%s\r\n", fc.out.len, sr.epoch,
		   (long long)sr.last_seq,
		   conn_http_keep_alive(r->c) ? "" : "Connection: close\r\n");
	buf_append(&out, fc.out.data, fc.out.len);
	conn_http_reply(r->c, &out);
	buf_free(&out);
	buf_free(&fc.out);
}

/* GET /api/cluster/sio-session?pid=&offset=&user=: whether a Socket.IO
 * socket reconnecting to an edge recovers the session pid (user absent:
 * anonymous; offset absent: it had received nothing). 200 {sid, rooms} when
 * it does, else 404. */
static void cluster_sio_session(struct route_req *r)
{
	if (!primary_only(r))
		return;
	const struct http_request *req = r->req;
	char pid[64], user[JWT_MAX_LEN + 1];
	long offset = query_long(req, "offset", 0);
	if (!req->query || http_query_param(req->query, req->query_len, "pid", pid, sizeof(pid)) <= 0 ||
	    offset < 0) {
		respond_error(r->c, 400, "bad_request", "pid and a non-negative offset required");
		return;
	}
	bool named = http_query_param(req->query, req->query_len, "user", user, sizeof(user)) >= 0;
	json_t *session = sio_session_recoverable(pid, named ? user : NULL, offset);
	if (session)
		respond_json(r->c, 200, session);
	else
		respond_error(r->c, 404, "not_found", "no recoverable session");
}

/* Prometheus text from the hub's stats. */
/* Appends s as a label value: \\, " and newlines escaped (node names are free text). */
static void metrics_label(struct buf *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_printf(b, "\\%c", *s);
		else if (*s == '\n')
			buf_appends(b, "\\n");
		else
			buf_append(b, s, 1);
	}
}

/* The cluster view (docs/scaling.md): totals, and each node's figures labelled
 * with its name and role. Nothing in a standalone node's stats. */
static void metrics_cluster(struct buf *b, json_t *v)
{
	json_t *cl = json_object_get(v, "cluster");
	if (!cl)
		return;
	buf_printf(b, "# HELP herald_cluster_dropped_total Messages dropped from the queue to Redis\n"
		      "# TYPE herald_cluster_dropped_total counter\nherald_cluster_dropped_total %lld\n"
		      "# HELP herald_cluster_connections Client connections on every node\n"
		      "# TYPE herald_cluster_connections gauge\nherald_cluster_connections %lld\n"
		      "# HELP herald_cluster_unique_users Distinct users connected over every node\n"
		      "# TYPE herald_cluster_unique_users gauge\nherald_cluster_unique_users %lld\n",
		   (long long)json_integer_value(json_object_get(v, "cluster_dropped")),
		   (long long)json_integer_value(json_object_get(cl, "totalConnections")),
		   (long long)json_integer_value(json_object_get(cl, "uniqueUsers")));
	static const char *const figures[] = { "connections", "rooms", "users",
					       "deliveries_per_sec", "lag", "link_up" };
	for (size_t f = 0; f < ARRAY_SIZE(figures); f++) {
		buf_printf(b, "# HELP herald_cluster_node_%s Per node: %s\n"
			      "# TYPE herald_cluster_node_%s gauge\n", figures[f], figures[f], figures[f]);
		size_t i;
		json_t *node;
		json_array_foreach(json_object_get(cl, "nodes"), i, node) {
			long long val = strcmp(figures[f], "link_up") == 0
				? strcmp(json_string_value(json_object_get(node, "link")) ?: "", "up") == 0
				: (long long)json_integer_value(json_object_get(node, figures[f]));
			buf_printf(b, "herald_cluster_node_%s{node=\"", figures[f]);
			metrics_label(b, json_string_value(json_object_get(node, "name")));
			buf_appends(b, "\",role=\"");
			metrics_label(b, json_string_value(json_object_get(node, "role")));
			buf_printf(b, "\"} %lld\n", val);
		}
	}
}

static void metrics_reply(struct conn *c, uint64_t tag, int status, const char *json, size_t len)
{
	if (!resume(c, tag))
		return;
	json_t *v = status == 200 ? json_loadb(json, len, 0, NULL) : NULL;
	if (!v) {
		respond_error(c, 503, "unavailable", "hub unavailable");
		return;
	}
	json_t *msgs = json_object_get(v, "messages"), *wh = json_object_get(v, "webhooks");
	json_t *wf = json_object_get(v, "workflows");
	struct buf b = { 0 };
	struct { const char *name, *help, *type; json_t *val; } m[] = {
		{ "herald_connections", "Open client connections", "gauge", json_object_get(v, "connections") },
		{ "herald_unique_users", "Distinct authenticated users connected", "gauge", json_object_get(v, "unique_users") },
		{ "herald_anonymous_connections", "Anonymous connections", "gauge", json_object_get(v, "anonymous") },
		{ "herald_rooms", "Rooms with subscribers", "gauge", json_object_get(v, "rooms") },
		{ "herald_rooms_loaded", "Rooms held in the hub's memory", "gauge", json_object_get(v, "rooms_loaded") },
		{ "herald_messages_published_total", "Messages stored and routed", "counter", json_object_get(msgs, "published") },
		{ "herald_messages_delivered_total", "Event frames queued to clients", "counter", json_object_get(msgs, "delivered") },
		{ "herald_publish_duplicates_total", "Publishes answered from an idempotency key", "counter", json_object_get(msgs, "duplicates") },
		{ "herald_slow_consumers_closed_total", "Connections closed for a full send queue", "counter", json_object_get(msgs, "slow_consumers_closed") },
		{ "herald_rate_limited_total", "Client messages refused by the rate limit", "counter", json_object_get(msgs, "rate_limited") },
		{ "herald_commits_total", "Hub transactions", "counter", json_object_get(v, "commits") },
		{ "herald_handshakes", "Client sockets not yet upgraded", "gauge",
		  json_object_get(json_object_get(v, "handshakes"), "open") },
		{ "herald_handshakes_evicted_total", "Handshakes closed to make room for newer ones", "counter",
		  json_object_get(json_object_get(v, "handshakes"), "evicted") },
		{ "herald_uptime_seconds", "Seconds since the hub started", "gauge", json_object_get(v, "uptime") },
		{ "herald_webhook_endpoints", "Registered webhook endpoints", "gauge", json_object_get(wh, "endpoints") },
		{ "herald_webhook_queued", "Webhook deliveries waiting to be sent", "gauge", json_object_get(wh, "queued") },
		{ "herald_webhook_dead", "Webhook deliveries given up on", "gauge", json_object_get(wh, "dead") },
		{ "herald_webhook_deliveries_created_total", "Webhook deliveries queued", "counter", json_object_get(wh, "created") },
		{ "herald_webhook_attempts_succeeded_total", "Webhook attempts answered 2xx", "counter", json_object_get(wh, "succeeded") },
		{ "herald_webhook_attempts_failed_total", "Webhook attempts that failed", "counter", json_object_get(wh, "failed") },
		{ "herald_webhook_in_flight", "Webhook attempts in flight in the courier", "gauge",
		  json_object_get(json_object_get(wh, "courier"), "in_flight") },
		{ "herald_workflows_created_total", "Workflows created", "counter", json_object_get(wf, "created") },
		{ "herald_workflow_transitions_total", "Workflow approvals, rejections and cancellations committed", "counter",
		  json_object_get(wf, "transitions") },
		{ "herald_workflow_refused_total", "Workflow actions refused by the rules", "counter",
		  json_object_get(wf, "refused") },
		{ "herald_workflow_bulks_total", "Bulk workflow actions completed", "counter", json_object_get(wf, "bulks") },
	};
	for (size_t i = 0; i < ARRAY_SIZE(m); i++)
		buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", m[i].name, m[i].help,
			   m[i].name, m[i].type, m[i].name, (long long)json_integer_value(m[i].val));
	buf_appends(&b, "# HELP herald_worker_connections Open connections per worker\n"
			"# TYPE herald_worker_connections gauge\n");
	size_t i;
	json_t *w;
	json_array_foreach(json_object_get(v, "workers"), i, w)
		buf_printf(&b, "herald_worker_connections{worker=\"%lld\"} %lld\n",
			   (long long)json_integer_value(json_object_get(w, "slot")) + 1,
			   (long long)json_integer_value(json_object_get(w, "connections")));
	buf_appends(&b, "# HELP herald_workflows Workflows by status\n# TYPE herald_workflows gauge\n");
	const char *st;
	json_t *count;
	json_object_foreach(json_object_get(wf, "by_status"), st, count)
		buf_printf(&b, "herald_workflows{status=\"%s\"} %lld\n", st,
			   (long long)json_integer_value(count));
	metrics_cluster(&b, v);
	respond(c, 200, "text/plain; version=0.0.4", b.data, b.len);
	buf_free(&b);
	json_decref(v);
}

static void api_route(struct route_req *r)
{
	const struct http_request *req = r->req;
	const char *p = req->path + 4;           /* after "/api" */
	size_t n = req->path_len - 4;
#define IS(s) (n == strlen(s) && memcmp(p, s, n) == 0)
#define PREFIX(s) (n > strlen(s) && memcmp(p, s, strlen(s)) == 0 && \
		   (r->rest = p + strlen(s), r->rest_len = n - strlen(s), true))
	bool get = method_is(req, "GET"), post = method_is(req, "POST");
	char id[32];
	if (!authorized(req)) {
		respond_error(r->c, 401, "unauthorized", "missing or wrong API key");
	} else if (IS("/publish") && post) {
		publish(r, false);
	} else if (IS("/broadcast") && post) {
		publish(r, true);
	} else if (IS("/rooms") && get) {
		rooms_route(r);
	} else if (PREFIX("/rooms/") && get) {
		rooms_route(r);
	} else if (IS("/connections") && get) {
		char user[256];
		json_t *q = json_pack("{s:s}", "op", "connections");
		if (req->query && http_query_param(req->query, req->query_len, "user", user, sizeof(user)) >= 0)
			json_object_set_new(q, "user", json_string(user));
		ask_hub(r->c, q, hub_reply);
	} else if (PREFIX("/connections/") && method_is(req, "DELETE")) {
		char *end;
		if (!segment(r, r->rest, r->rest_len, id, sizeof(id)))
			return;
		unsigned long long cid = strtoull(id, &end, 10);
		if (*end || !cid)
			respond_error(r->c, 404, "not_found", "no such connection");
		else
			ask_hub(r->c, json_pack("{s:s, s:I}", "op", "disconnect", "id", (json_int_t)cid),
				hub_reply);
	} else if (PREFIX("/users/")) {
		users_route(r);
	} else if (IS("/stats") && get) {
		ask_hub(r->c, json_pack("{s:s}", "op", "stats"), hub_reply);
	} else if (IS("/stream") && get) {
		dashboard_stream(r->c, req);
	} else if (IS("/notifications") && post) {
		notify(r);
	} else if (IS("/webhooks")) {
		webhooks_route(r);
	} else if (PREFIX("/webhooks/")) {
		webhooks_route(r);
	} else if (IS("/workflow-definitions") && (get || post)) {
		workflow_definitions(r);
	} else if (IS("/workflows") || PREFIX("/workflows/")) {
		workflows_route(r);
	} else if (IS("/cluster/request") && post) {
		cluster_request(r);
	} else if (IS("/cluster/frames") && get) {
		cluster_frames(r);
	} else if (IS("/cluster/sio-session") && get) {
		cluster_sio_session(r);
	} else {
		respond_error(r->c, 404, "not_found", "no such route");
	}
#undef IS
#undef PREFIX
}

/* Whether path[0..n) is socketio_path, with or without its trailing slash. */
static bool socketio_path(const char *path, size_t n)
{
	const char *want = worker.cfg->socketio_path;
	size_t wn = strlen(want);
	if (wn > 1 && want[wn - 1] == '/' && n == wn - 1)
		wn--;
	return n == wn && memcmp(path, want, n) == 0;
}

void api_handle(struct conn *c, const struct http_request *req, const char *body, size_t len)
{
	struct route_req r = { c, req, body, len, "", 0 };
	const char *p = req->path;
	size_t n = req->path_len;
#define IS(s) (n == strlen(s) && memcmp(p, s, n) == 0)
	if (IS("/health") || IS("/health/live") || IS("/health/ready")) {
		char which[16];
		snprintf(which, sizeof(which), "%.*s", (int)n, p);
		health(c, which);
	} else if (c->listener == LISTENER_CLIENT && IS("/ws")) {
		ws_endpoint(c, req);
	} else if (c->listener == LISTENER_CLIENT && socketio_path(p, n)) {
		eio_http(c, req, body, len, &sio_app);
	} else if (c->listener == LISTENER_CLIENT && worker.cfg->socketio_test &&
		   (IS("/engine.io/") || IS("/engine.io"))) {
		eio_http(c, req, body, len, &eio_echo_app);
	} else if (c->listener == LISTENER_CLIENT && IS("/echo") && worker.cfg->echo) {
		if (ws_handshake_ok(c, req))
			conn_ws_upgrade(c, req, ws_protocol(req), true);
	} else if (c->listener == LISTENER_ADMIN && n >= 4 && memcmp(p, "/api", 4) == 0 &&
		   (n == 4 || p[4] == '/')) {
		api_route(&r);
	} else if (c->listener == LISTENER_ADMIN && IS("/metrics") && method_is(req, "GET")) {
		ask_hub(c, json_pack("{s:s}", "op", "stats"), metrics_reply);
	} else if (c->listener == LISTENER_ADMIN && (IS("/") || (n > 8 && memcmp(p, "/assets/", 8) == 0))) {
		dashboard_static(c, req);
	} else {
		respond_error(c, 404, "not_found", "no such route");
	}
#undef IS
}
