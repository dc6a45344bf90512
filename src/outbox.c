/* outbox.c -- webhook endpoints and the delivery outbox, in the hub.
 *
 * The endpoints live in the database and, for matching, in memory: every
 * message the pipeline stores is matched against each enabled endpoint's
 * event and room globs, and each match becomes a delivery row in the same
 * transaction. Everything that changes endpoints or deliveries (the API's
 * writes, the courier's results) runs as a pipeline job, so it is committed
 * with the group commit; when that commit fails the in-memory endpoints are
 * read back from the database. The courier is told after each commit what
 * became due, and learns each result's outcome once it is committed. */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#include "acl.h"
#include "config.h"
#include "log.h"
#include "pipeline.h"
#include "util.h"
#include "webhook.h"

#define URL_MAX 2048
#define GLOBS_MAX 100
#define GLOB_MAX 200
#define MAX_ATTEMPTS_MAX 1000
#define TIMEOUT_MAX 600000
#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define RESULTS_RETRY 1.0       /* seconds before results whose commit failed go again */

/* A courier's report of one attempt. */
struct result {
	int64_t delivery;
	uint32_t attempts, status, retry_after;
	char *error;
	char endpoint[32];          /* filled when applied */
};

static struct {
	json_t *endpoints;          /* rows of webhook_endpoints, events and rooms parsed */
	bool touched;               /* endpoints changed in the open transaction */
	bool wake_due, wake_endpoints;
	struct result *results;     /* reported, not yet committed */
	size_t nresults, cap;
	struct hub_job results_job;
	bool results_queued;
	ev_timer results_timer;
	uint64_t created, succeeded, failed;     /* deliveries, attempts since start */
} ob;

/* ---- endpoints in memory -------------------------------------------------------- */

static void endpoints_load(void)
{
	json_t *rows = store_webhooks(hub.store);
	if (!rows) {
		log_error("event=webhooks_load_failed error=\"%s\"", store_errmsg(hub.store));
		return;
	}
	size_t i;
	json_t *e;
	json_array_foreach(rows, i, e) {
		const char *k[] = { "events", "rooms" };
		for (size_t n = 0; n < 2; n++) {
			const char *text = json_string_value(json_object_get(e, k[n]));
			json_t *v = text ? json_loads(text, 0, NULL) : NULL;
			json_object_set_new(e, k[n], v ? v : json_null());
		}
	}
	json_decref(ob.endpoints);
	ob.endpoints = rows;
}

static json_t *endpoint_find(const char *id)
{
	size_t i;
	json_t *e;
	json_array_foreach(ob.endpoints, i, e)
		if (id && strcmp(json_string_value(json_object_get(e, "id")), id) == 0)
			return e;
	return NULL;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int64_t num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* Writes an endpoint object back to its row. */
static int endpoint_save(json_t *e)
{
	char *events = json_dumps(json_object_get(e, "events"), JSON_COMPACT);
	json_t *rooms_v = json_object_get(e, "rooms");
	char *rooms = json_is_array(rooms_v) ? json_dumps(rooms_v, JSON_COMPACT) : NULL;
	struct store_webhook w = {
		.id = str(e, "id"), .url = str(e, "url"), .secret = str(e, "secret"),
		.old_secret = str(e, "old_secret"),
		.old_secret_until_ms = num(e, "old_secret_until_ms"),
		.events = events, .rooms = rooms,
		.max_attempts = (int)num(e, "max_attempts"), .timeout_ms = (int)num(e, "timeout_ms"),
		.enabled = num(e, "enabled") != 0, .disabled_reason = str(e, "disabled_reason"),
		.failures = (int)num(e, "failures"), .paused_until_ms = num(e, "paused_until_ms"),
		.created_at = str(e, "created_at"),
	};
	int rc = store_webhook_put(hub.store, &w);
	free(events);
	free(rooms);
	ob.touched = true;
	return rc;
}

static bool globs_match(json_t *globs, const char *s)
{
	size_t i;
	json_t *g;
	json_array_foreach(globs, i, g)
		if (webhook_glob(json_string_value(g), s))
			return true;
	return false;
}

/* The endpoint as the API shows it: never its secrets. */
static json_t *endpoint_json(json_t *e)
{
	int failures = (int)num(e, "failures");
	int64_t paused = num(e, "paused_until_ms");
	const char *state = failures < hub.cfg->webhook_breaker_failures ? "closed"
			    : paused > now_ms() ? "open" : "half_open";
	char until[UTIL_TS_LEN + 1];
	if (paused)
		ts_format(paused, until);
	return json_pack("{s:O, s:O, s:O, s:O, s:b, s:O, s:O, s:O, s:O, s:{s:s, s:i, s:o}}",
			 "id", json_object_get(e, "id"), "url", json_object_get(e, "url"),
			 "events", json_object_get(e, "events"), "rooms", json_object_get(e, "rooms"),
			 "enabled", num(e, "enabled") != 0,
			 "disabled_reason", json_object_get(e, "disabled_reason"),
			 "max_attempts", json_object_get(e, "max_attempts"),
			 "timeout_ms", json_object_get(e, "timeout_ms"),
			 "created_at", json_object_get(e, "created_at"),
			 "circuit", "state", state, "failures", failures,
			 "paused_until", paused ? json_string(until) : json_null());
}

/* ---- deliveries ------------------------------------------------------------------ */

/* Queues one delivery of a message (room NULL for webhook.test). The body is
 * fixed now, so every attempt sends and signs the same bytes. */
static int64_t delivery_add(json_t *e, const char *room, int64_t seq, const char *event,
			    const char *data, size_t len)
{
	struct buf b = { 0 };
	buf_appends(&b, "{\"type\":");
	buf_append_json_str(&b, event, strlen(event));
	buf_printf(&b, ",\"timestamp\":\"%s\",\"data\":", pipeline_ts());
	buf_append(&b, data, len);
	buf_appends(&b, ",\"room\":");
	if (room) {
		buf_append_json_str(&b, room, strlen(room));
		buf_printf(&b, ",\"seq\":%lld}", (long long)seq);
	} else {
		buf_appends(&b, "null,\"seq\":null}");
	}
	int64_t due = pipeline_now() + hub.cfg->webhook_retry_schedule.delay_s[0] * 1000;
	int64_t id = store_delivery_add(hub.store, str(e, "id"), event, room, seq, b.data, b.len,
					due, pipeline_ts());
	buf_free(&b);
	if (id > 0) {
		ob.created++;
		ob.wake_due = true;
	}
	return id;
}

int outbox_message(const char *room, int64_t seq, const char *event, const char *data,
		   size_t len)
{
	size_t i;
	json_t *e;
	json_array_foreach(ob.endpoints, i, e) {
		json_t *rooms = json_object_get(e, "rooms");
		if (!num(e, "enabled") || !globs_match(json_object_get(e, "events"), event) ||
		    (json_is_array(rooms) && !globs_match(rooms, room)))
			continue;
		if (delivery_add(e, room, seq, event, data, len) < 0)
			return -1;
	}
	return 0;
}

static void send_courier(struct buf *b)
{
	if (hub.courier)
		ipc_chan_send(&hub.courier->ch, b);
	buf_free(b);
}

static void wake_courier(uint8_t what)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_WEBHOOK_WAKE);
	ipc_put_u8(&b, what);
	ipc_end(&b, m);
	send_courier(&b);
}

void outbox_committed(bool ok)
{
	if (!ok && ob.touched)
		endpoints_load();
	if (ok && ob.wake_endpoints)
		wake_courier(WEBHOOK_WAKE_ENDPOINTS);
	if (ok && ob.wake_due)
		wake_courier(WEBHOOK_WAKE_DUE);
	ob.touched = ob.wake_due = ob.wake_endpoints = false;
}

/* The delivery as the API shows it. */
static json_t *delivery_json(json_t *row)
{
	char id[32], next[UTIL_TS_LEN + 1];
	snprintf(id, sizeof(id), "msg_%lld", (long long)num(row, "id"));
	int64_t due = num(row, "next_attempt_ms");
	if (due)
		ts_format(due, next);
	return json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:o, s:O, s:O}",
			 "id", id, "endpoint", json_object_get(row, "endpoint_id"),
			 "event", json_object_get(row, "event"), "room", json_object_get(row, "room"),
			 "seq", json_object_get(row, "seq"), "status", json_object_get(row, "status"),
			 "attempts", json_object_get(row, "attempts"),
			 "last_status", json_object_get(row, "last_status"),
			 "last_error", json_object_get(row, "last_error"),
			 "next_attempt_at", due ? json_string(next) : json_null(),
			 "created_at", json_object_get(row, "created_at"),
			 "updated_at", json_object_get(row, "updated_at"));
}

/* "msg_12" or "12" -> 12; 0 when it is neither. */
static int64_t delivery_id(const char *s)
{
	if (!s)
		return 0;
	if (strncmp(s, "msg_", 4) == 0)
		s += 4;
	char *end;
	long long v = strtoll(s, &end, 10);
	return *s && *end == '\0' && v > 0 ? v : 0;
}

/* ---- the courier's results --------------------------------------------------------- */

/* What one attempt's outcome makes of its delivery and its endpoint. */
static int result_apply(struct result *res)
{
	json_t *row = store_delivery_get(hub.store, res->delivery);
	if (!row)
		return 0;               /* deleted with its endpoint meanwhile */
	const char *status = str(row, "status");
	json_t *e = endpoint_find(str(row, "endpoint_id"));
	snprintf(res->endpoint, sizeof(res->endpoint), "%s", str(row, "endpoint_id"));
	/* A report of an attempt already counted (resent after a reconnect). */
	if (!e || num(row, "attempts") != res->attempts ||
	    (strcmp(status, "pending") != 0 && strcmp(status, "failed") != 0)) {
		json_decref(row);
		return 0;
	}
	json_decref(row);
	int attempts = (int)res->attempts + 1;
	int64_t now = pipeline_now(), next = 0;
	int failures = (int)num(e, "failures");
	int64_t paused = num(e, "paused_until_ms");
	const char *to;
	if (res->status >= 200 && res->status < 300) {
		to = "succeeded";
		failures = 0;
		paused = 0;
		ob.succeeded++;
	} else if (res->status == 410) {
		to = "dead";
		json_object_set_new(e, "enabled", json_integer(0));
		json_object_set_new(e, "disabled_reason", json_string("gone"));
		log_warn("event=webhook_gone endpoint=%s", res->endpoint);
	} else {
		ob.failed++;
		if (++failures >= hub.cfg->webhook_breaker_failures)
			paused = now + hub.cfg->webhook_breaker_cooldown_ms;
		if (attempts >= num(e, "max_attempts")) {
			to = "dead";
		} else {
			to = "failed";
			next = now + webhook_next_delay_ms(&hub.cfg->webhook_retry_schedule,
							   (unsigned)attempts, randombytes_random(),
							   res->status == 429 || res->status == 503
							   ? res->retry_after : 0);
		}
	}
	bool endpoint_changed = res->status == 410 || failures != num(e, "failures") ||
				paused != num(e, "paused_until_ms");
	json_object_set_new(e, "failures", json_integer(failures));
	json_object_set_new(e, "paused_until_ms", json_integer(paused));
	if (endpoint_changed && endpoint_save(e) < 0)
		return -1;
	return store_delivery_update(hub.store, res->delivery, to, attempts, next,
				     (int)res->status, *res->error ? res->error : NULL,
				     pipeline_ts());
}

static int results_run(struct hub_job *j)
{
	for (size_t i = 0; i < ob.nresults; i++)
		if (result_apply(&ob.results[i]) < 0)
			return -1;
	return 0;
}

static void results_done(struct hub_job *j, bool committed)
{
	ob.results_queued = false;
	if (!committed) {
		/* They stay, and go again shortly. */
		ev_timer_start(hub.loop, &ob.results_timer);
		return;
	}
	for (size_t i = 0; i < ob.nresults; i++) {
		struct result *res = &ob.results[i];
		json_t *e = endpoint_find(res->endpoint);
		struct buf b = { 0 };
		size_t m = ipc_begin(&b, IPC_WEBHOOK_SETTLED);
		ipc_put_u64(&b, (uint64_t)res->delivery);
		ipc_put_cstr(&b, res->endpoint);
		ipc_put_u8(&b, e && num(e, "enabled"));
		ipc_put_u32(&b, e ? (uint32_t)num(e, "failures") : 0);
		ipc_put_u64(&b, e ? (uint64_t)num(e, "paused_until_ms") : 0);
		ipc_end(&b, m);
		send_courier(&b);
		free(res->error);
	}
	ob.nresults = 0;
}

static void results_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (ob.nresults && !ob.results_queued) {
		ob.results_queued = true;
		pipeline_job(&ob.results_job);
	}
}

void outbox_result(struct ipc_reader *r)
{
	struct result res = { 0 };
	res.delivery = (int64_t)ipc_get_u64(r);
	res.attempts = ipc_get_u32(r);
	res.status = ipc_get_u32(r);
	res.retry_after = ipc_get_u32(r);
	size_t len;
	const char *err = ipc_get_bytes(r, &len);
	ipc_get_u64(r);             /* started_ms and duration_ms: for the courier's figures */
	ipc_get_u32(r);
	if (!ipc_reader_done(r)) {
		log_warn("event=bad_webhook_result");
		return;
	}
	res.error = xstrndup(err, MIN(len, 500));
	xgrow(&ob.results, &ob.cap, ob.nresults + 1, sizeof(*ob.results));
	ob.results[ob.nresults++] = res;
	if (!ob.results_queued && !ev_is_active(&ob.results_timer)) {
		ob.results_queued = true;
		pipeline_job(&ob.results_job);
	}
}

void outbox_courier_connected(uint32_t pid)
{
	log_info("event=courier_connected pid=%u", pid);
}

/* ---- API ----------------------------------------------------------------------------- */

/* A request that writes: run in the pipeline's transaction, answered after it. */
struct write_job {
	struct hub_job job;
	json_t *q;
	int status;
	json_t *answer;             /* or the error: */
	const char *code, *message;
};

static int fail(struct write_job *w, int status, const char *code, const char *message)
{
	w->status = status;
	w->code = code;
	w->message = message;
	return 0;
}

static bool glob_list_valid(json_t *v, size_t min, size_t maxlen)
{
	size_t i;
	json_t *g;
	if (!json_is_array(v) || json_array_size(v) < min || json_array_size(v) > GLOBS_MAX)
		return false;
	json_array_foreach(v, i, g) {
		const char *s = json_string_value(g);
		if (!s || !*s || strlen(s) > maxlen)
			return false;
	}
	return true;
}

static bool url_valid(const char *u)
{
	if (!u || strlen(u) > URL_MAX)
		return false;
	size_t skip = strncasecmp(u, "https://", 8) == 0 ? 8 : strncasecmp(u, "http://", 7) == 0 ? 7 : 0;
	if (!skip || !u[skip] || u[skip] == '/')
		return false;
	for (const char *p = u; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* Checks the fields given in body and sets them on endpoint e. Returns the
 * reason when one is invalid (e is then unchanged or partly set: the caller
 * drops it). */
static const char *endpoint_set(json_t *e, json_t *body)
{
	json_t *v;
	if ((v = json_object_get(body, "url"))) {
		if (!url_valid(json_string_value(v)))
			return "url must be an http:// or https:// URL";
		json_object_set(e, "url", v);
	}
	if ((v = json_object_get(body, "events"))) {
		if (!glob_list_valid(v, 1, GLOB_MAX))
			return "events must be a list of 1 to 100 event names or globs";
		json_object_set(e, "events", v);
	}
	if ((v = json_object_get(body, "rooms"))) {
		if (!json_is_null(v) && !glob_list_valid(v, 1, ROOM_MAX))
			return "rooms must be null or a list of 1 to 100 room names or globs";
		json_object_set(e, "rooms", v);
	}
	if ((v = json_object_get(body, "max_attempts"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > MAX_ATTEMPTS_MAX)
			return "max_attempts must be an integer from 1 to 1000";
		json_object_set(e, "max_attempts", v);
	}
	if ((v = json_object_get(body, "timeout_ms"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > TIMEOUT_MAX)
			return "timeout_ms must be an integer from 1 to 600000";
		json_object_set(e, "timeout_ms", v);
	}
	if ((v = json_object_get(body, "enabled"))) {
		if (!json_is_boolean(v))
			return "enabled must be true or false";
		json_object_set_new(e, "enabled", json_integer(json_is_true(v)));
		if (json_is_true(v)) {
			/* Enabled again: a fresh start for the breaker. */
			json_object_set_new(e, "disabled_reason", json_null());
			json_object_set_new(e, "failures", json_integer(0));
			json_object_set_new(e, "paused_until_ms", json_integer(0));
		} else {
			json_object_set_new(e, "disabled_reason", json_string("api"));
		}
	}
	if ((v = json_object_get(body, "secret"))) {
		uint8_t key[WEBHOOK_KEY_MAX];
		if (!json_is_string(v) || webhook_secret_key(json_string_value(v), key) < 0)
			return "secret must be whsec_ followed by base64";
		sodium_memzero(key, sizeof(key));
	}
	return NULL;
}

/* Sets a new secret (the given one or a fresh one); the old one keeps
 * signing beside it for webhook_secret_overlap seconds. Returns the secret. */
static const char *secret_rotate(json_t *e, json_t *given, bool keep_old)
{
	char fresh[WEBHOOK_SECRET_MAX];
	if (!given)
		webhook_secret_new(fresh);
	if (keep_old && hub.cfg->webhook_secret_overlap > 0) {
		json_object_set(e, "old_secret", json_object_get(e, "secret"));
		json_object_set_new(e, "old_secret_until_ms",
				    json_integer(pipeline_now() + hub.cfg->webhook_secret_overlap * 1000LL));
	}
	json_object_set_new(e, "secret", given ? json_copy(given) : json_string(fresh));
	sodium_memzero(fresh, sizeof(fresh));
	return str(e, "secret");
}

static int op_create(struct write_job *w, json_t *body)
{
	char id[3 + 16 + 1] = "wh_";
	random_hex(id + 3, 8);
	json_t *e = json_pack("{s:s, s:s, s:n, s:n, s:i, s:i, s:i, s:n, s:i, s:i, s:s}",
			      "id", id, "secret", "", "old_secret", "rooms", "max_attempts", 10,
			      "timeout_ms", hub.cfg->webhook_timeout_ms, "enabled", 1,
			      "disabled_reason", "failures", 0, "paused_until_ms", 0,
			      "created_at", pipeline_ts());
	const char *why = !json_is_object(body) ? "a JSON object is required"
			  : !json_object_get(body, "url") ? "url is required"
			  : !json_object_get(body, "events") ? "events is required"
			  : endpoint_set(e, body);
	if (why) {
		json_decref(e);
		return fail(w, 400, "bad_request", why);
	}
	const char *secret = secret_rotate(e, json_object_get(body, "secret"), false);
	if (endpoint_save(e) < 0) {
		json_decref(e);
		return -1;
	}
	ob.wake_endpoints = true;
	json_array_append(ob.endpoints, e);
	w->status = 201;
	w->answer = endpoint_json(e);
	json_object_set_new(w->answer, "secret", json_string(secret));
	json_decref(e);
	return 0;
}

static int op_update(struct write_job *w, json_t *e, json_t *body)
{
	if (!json_is_object(body))
		return fail(w, 400, "bad_request", "a JSON object is required");
	json_t *copy = json_deep_copy(e);
	const char *why = endpoint_set(copy, body);
	json_t *rotate = json_object_get(body, "rotate_secret");
	if (!why && rotate && !json_is_boolean(rotate))
		why = "rotate_secret must be true or false";
	if (why) {
		json_decref(copy);
		return fail(w, 400, "bad_request", why);
	}
	json_t *given = json_object_get(body, "secret");
	const char *secret = given || json_is_true(rotate) ? secret_rotate(copy, given, true) : NULL;
	if (endpoint_save(copy) < 0) {
		json_decref(copy);
		return -1;
	}
	json_object_update(e, copy);
	ob.wake_endpoints = true;
	w->status = 200;
	w->answer = endpoint_json(e);
	if (secret)
		json_object_set_new(w->answer, "secret", json_string(secret));
	json_decref(copy);
	return 0;
}

static int op_delete(struct write_job *w, json_t *e)
{
	if (store_webhook_delete(hub.store, str(e, "id")) < 0)
		return -1;
	w->status = 200;
	w->answer = json_pack("{s:O, s:b}", "id", json_object_get(e, "id"), "deleted", 1);
	size_t i;
	json_t *x;
	json_array_foreach(ob.endpoints, i, x) {
		if (x == e) {
			json_array_remove(ob.endpoints, i);
			break;
		}
	}
	ob.touched = ob.wake_endpoints = true;
	return 0;
}

static int op_retry(struct write_job *w, json_t *e)
{
	int64_t id = delivery_id(str(w->q, "delivery"));
	json_t *row = id ? store_delivery_get(hub.store, id) : NULL;
	if (!row || strcmp(str(row, "endpoint_id"), str(e, "id")) != 0) {
		json_decref(row);
		return fail(w, 404, "not_found", "no such delivery");
	}
	const char *status = str(row, "status");
	const char *why = !num(e, "enabled") ? "the endpoint is disabled"
			  : strcmp(status, "dead") && strcmp(status, "failed")
			  ? "only a dead or failed delivery can be retried" : NULL;
	if (why) {
		json_decref(row);
		return fail(w, 409, "conflict", why);
	}
	/* One more attempt on the same row, with the same webhook-id. */
	int rc = store_delivery_update(hub.store, id, "pending", (int)num(row, "attempts"),
				       pipeline_now(), (int)num(row, "last_status"),
				       str(row, "last_error"), pipeline_ts());
	json_decref(row);
	if (rc < 0 || !(row = store_delivery_get(hub.store, id)))
		return -1;
	ob.wake_due = true;
	w->status = 200;
	w->answer = delivery_json(row);
	json_decref(row);
	return 0;
}

static int op_test(struct write_job *w, json_t *e)
{
	if (!num(e, "enabled"))
		return fail(w, 409, "conflict", "the endpoint is disabled");
	json_t *v = json_pack("{s:O, s:s}", "endpoint", json_object_get(e, "id"), "message",
			      "a test delivery from herald");
	char *data = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	int64_t id = delivery_add(e, NULL, 0, "webhook.test", data, strlen(data));
	free(data);
	json_t *row = id > 0 ? store_delivery_get(hub.store, id) : NULL;
	if (!row)
		return -1;
	w->status = 202;
	w->answer = delivery_json(row);
	json_decref(row);
	return 0;
}

static int write_run(struct hub_job *j)
{
	struct write_job *w = (struct write_job *)j;
	const char *op = str(w->q, "op");
	json_t *body = json_object_get(w->q, "body");
	if (strcmp(op, "webhook_create") == 0)
		return op_create(w, body);
	json_t *e = endpoint_find(str(w->q, "id"));
	if (!e)
		return fail(w, 404, "not_found", "no such webhook");
	if (strcmp(op, "webhook_update") == 0)
		return op_update(w, e, body);
	if (strcmp(op, "webhook_delete") == 0)
		return op_delete(w, e);
	if (strcmp(op, "webhook_retry") == 0)
		return op_retry(w, e);
	return op_test(w, e);
}

static void write_done(struct hub_job *j, bool committed)
{
	struct write_job *w = (struct write_job *)j;
	if (!committed)
		hub_reply_error(j->from, j->req, 503, "unavailable", "database write failed");
	else if (w->answer)
		hub_reply_json(j->from, j->req, w->status, json_incref(w->answer));
	else
		hub_reply_error(j->from, j->req, w->status, w->code, w->message);
	json_decref(w->answer);
	json_decref(w->q);
	free(w);
}

static void list_deliveries(struct link *l, uint64_t req, json_t *q, json_t *e)
{
	const char *status = str(q, "status");
	if (status && strcmp(status, "pending") && strcmp(status, "failed") &&
	    strcmp(status, "succeeded") && strcmp(status, "dead")) {
		hub_reply_error(l, req, 400, "bad_request",
				"status must be pending, failed, succeeded or dead");
		return;
	}
	json_t *lim = json_object_get(q, "limit");
	int64_t limit = lim ? json_integer_value(lim) : LIST_DEFAULT;
	int64_t before = json_object_get(q, "before") ? delivery_id(str(q, "before")) : 0;
	if (limit < 1 || limit > LIST_MAX || (json_object_get(q, "before") && !before)) {
		hub_reply_error(l, req, 400, "bad_request",
				"limit must be from 1 to 1000 and before a delivery id");
		return;
	}
	json_t *rows = store_deliveries(hub.store, str(e, "id"), status, (int)limit, before);
	if (!rows) {
		hub_reply_error(l, req, 503, "unavailable", "database read failed");
		return;
	}
	json_t *list = json_array();
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
		json_array_append_new(list, delivery_json(row));
	json_decref(rows);
	hub_reply_json(l, req, 200, json_pack("{s:o}", "deliveries", list));
}

bool outbox_request(struct link *l, uint64_t req, const char *op, json_t *q)
{
	if (strncmp(op, "webhook_", 8) != 0)
		return false;
	op += 8;
	if (strcmp(op, "list") == 0) {
		json_t *list = json_array();
		size_t i;
		json_t *e;
		json_array_foreach(ob.endpoints, i, e)
			json_array_append_new(list, endpoint_json(e));
		hub_reply_json(l, req, 200, json_pack("{s:o}", "webhooks", list));
		return true;
	}
	if (strcmp(op, "get") == 0 || strcmp(op, "deliveries") == 0) {
		json_t *e = endpoint_find(str(q, "id"));
		if (!e)
			hub_reply_error(l, req, 404, "not_found", "no such webhook");
		else if (*op == 'g')
			hub_reply_json(l, req, 200, endpoint_json(e));
		else
			list_deliveries(l, req, q, e);
		return true;
	}
	if (strcmp(op, "create") && strcmp(op, "update") && strcmp(op, "delete") &&
	    strcmp(op, "retry") && strcmp(op, "test"))
		return false;
	struct write_job *w = xcalloc(1, sizeof(*w));
	w->job = (struct hub_job){ .run = write_run, .done = write_done, .from = l, .req = req };
	w->q = json_incref(q);
	pipeline_job(&w->job);
	return true;
}

void outbox_stats(json_t *stats)
{
	int64_t queued = -1, dead = -1;
	store_delivery_counts(hub.store, &queued, &dead);
	json_t *courier = hub.courier && hub.courier->stats ? json_incref(hub.courier->stats)
							    : json_null();
	json_object_set_new(stats, "webhooks",
		json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
			  "endpoints", (json_int_t)json_array_size(ob.endpoints),
			  "queued", (json_int_t)queued, "dead", (json_int_t)dead,
			  "created", (json_int_t)ob.created, "succeeded", (json_int_t)ob.succeeded,
			  "failed", (json_int_t)ob.failed, "courier", courier));
}

void outbox_start(void)
{
	ob.results_job = (struct hub_job){ .run = results_run, .done = results_done };
	ev_timer_init(&ob.results_timer, results_retry_cb, RESULTS_RETRY, 0);
	endpoints_load();
	if (!ob.endpoints)
		fatal("event=webhooks_unreadable error=\"%s\"", store_errmsg(hub.store));
}
