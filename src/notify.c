/* notify.c -- notifications for many users at once: every row and every
 * `notification` event is written in the pipeline's group commit, so the
 * users get all of them or, when the database fails, none. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pipeline.h"
#include "proto.h"
#include "util.h"

struct notify_job {
	struct hub_job job;
	json_t *q;                 /* the request: users, type, title, ... */
	json_t *out;               /* [{user, id, seq}] once run */
};

static int notify_run(struct hub_job *j)
{
	struct notify_job *nj = (struct notify_job *)j;
	json_t *q = nj->q, *users = json_object_get(q, "users"), *data = json_object_get(q, "data");
	const char *type = json_string_value(json_object_get(q, "type"));
	const char *title = json_string_value(json_object_get(q, "title"));
	const char *message = json_string_value(json_object_get(q, "message"));
	const char *url = json_string_value(json_object_get(q, "action_url"));
	char *extra = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	size_t i;
	json_t *v;
	int rc = 0;
	json_array_clear(nj->out);
	json_array_foreach(users, i, v) {
		const char *user = json_string_value(v);
		char room[ROOM_MAX + 1];
		snprintf(room, sizeof(room), "user:%s", user);
		struct hub_room *r = hub_room_get(room);
		if (!r) {
			rc = -1;
			break;
		}
		/* The row names the seq of the event that carries it: the room's
		 * next one, which pipeline_emit takes below. */
		int64_t seq = r->last_seq + 1;
		struct store_notification sn = { user, type, title, message, extra, url,
						 pipeline_ts(), seq };
		int64_t id = store_notification_add(hub.store, &sn);
		if (id < 0) {
			rc = -1;
			break;
		}
		json_t *ev = json_pack("{s:I, s:s, s:s, s:o, s:o, s:O, s:o, s:s, s:b}",
			"id", (json_int_t)id, "user", user, "type", type,
			"title", title ? json_string(title) : json_null(),
			"message", message ? json_string(message) : json_null(),
			"data", data ? data : json_null(),
			"action_url", url ? json_string(url) : json_null(),
			"created_at", pipeline_ts(), "read", 0);
		char *text = json_dumps(ev, JSON_COMPACT);
		json_decref(ev);
		int64_t got = pipeline_emit(room, "notification", text, strlen(text));
		free(text);
		if (got != seq) {
			rc = -1;
			break;
		}
		json_array_append_new(nj->out, json_pack("{s:s, s:I, s:I}", "user", user,
							 "id", (json_int_t)id, "seq", (json_int_t)seq));
	}
	free(extra);
	return rc;
}

static void notify_done(struct hub_job *j, bool committed)
{
	struct notify_job *nj = (struct notify_job *)j;
	if (committed)
		hub_reply_json(j->from, j->req, 200,
			       json_pack("{s:I, s:O}", "count", (json_int_t)json_array_size(nj->out),
					 "notifications", nj->out));
	else
		hub_reply_error(j->from, j->req, 503, "unavailable", "database write failed");
	json_decref(nj->q);
	json_decref(nj->out);
	free(nj);
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
		hub_reply_error(l, req, 503, "unavailable", "database write failed");
		return;
	}
	hub_reply_json(l, req, 200, json_pack("{s:i, s:I}", "count", count, "unread",
					      (json_int_t)store_unread_count(hub.store, user)));
}

bool notify_request(struct link *l, uint64_t req, const char *op, json_t *q)
{
	const char *user = json_string_value(json_object_get(q, "user"));
	if (strcmp(op, "notify") == 0) {
		struct notify_job *nj = xcalloc(1, sizeof(*nj));
		nj->job = (struct hub_job){ .run = notify_run, .done = notify_done,
					    .from = l, .req = req };
		nj->q = json_incref(q);
		nj->out = json_array();
		pipeline_job(&nj->job);
	} else if (strcmp(op, "read") == 0 && user) {
		mark_read(l, req, q, user);
	} else {
		return false;
	}
	return true;
}
