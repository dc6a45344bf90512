/* workflow.c -- approval workflows in the hub. Every write is a pipeline job:
 * the rule check (wfstate.c), the rows it changes and the events it emits
 * (with their webhook deliveries) are one transaction, answered after the
 * commit. A bulk action does a chunk of ids per commit, so the publishes
 * arriving meanwhile wait at most one commit. */
#include "workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "pipeline.h"
#include "util.h"
#include "wfstate.h"

#define BULK_MAX 1000
#define BULK_CHUNK 50              /* ids per commit */
#define BULK_PROGRESS_EVERY 10

static struct {
	struct bulk_job *bulks;    /* running, between their chunks */
	uint64_t created, transitions, refused, bulks_done;
} wf;

/* ---- events -------------------------------------------------------------------- */

/* The rooms a workflow's events go to: its own, the watchers', its creator's,
 * and those of the users who may approve its current step. */
static json_t *event_rooms(json_t *row, json_t *state)
{
	char room[ROOM_MAX + 1];
	json_t *rooms = json_array();
	snprintf(room, sizeof(room), "workflow:%s", json_string_value(json_object_get(state, "id")));
	json_array_append_new(rooms, json_string(room));
	json_array_append_new(rooms, json_string("workflows"));
	snprintf(room, sizeof(room), "user:%s", json_string_value(json_object_get(row, "created_by")));
	json_array_append_new(rooms, json_string(room));
	const char *status = json_string_value(json_object_get(row, "status"));
	if (wfstate_finished(wfstate_status_parse(status)))
		return rooms;
	const char *text = json_string_value(json_object_get(row, "steps"));
	json_t *steps = text ? json_loads(text, 0, NULL) : NULL;
	json_t *step = json_array_get(steps, (size_t)json_integer_value(json_object_get(row, "step")));
	size_t i, k;
	json_t *u, *have;
	json_array_foreach(json_object_get(json_object_get(step, "approvers"), "users"), i, u) {
		snprintf(room, sizeof(room), "user:%s", json_string_value(u));
		bool dup = false;
		json_array_foreach(rooms, k, have)
			dup |= strcmp(json_string_value(have), room) == 0;
		if (!dup)
			json_array_append_new(rooms, json_string(room));
	}
	json_decref(steps);
	return rooms;
}

/* Emits each of events (NULL-terminated) with data {state..., change} to
 * every room of the workflow. 0, or -1 when the database failed. */
static int emit(json_t *row, json_t *state, json_t *change, const char *const *events)
{
	json_t *data = json_deep_copy(state);
	json_object_set(data, "change", change);
	char *text = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	json_t *rooms = event_rooms(row, state);
	int rc = 0;
	for (size_t e = 0; rc == 0 && events[e]; e++) {
		size_t i;
		json_t *r;
		json_array_foreach(rooms, i, r) {
			if (pipeline_emit(json_string_value(r), events[e], text, strlen(text)) < 0) {
				rc = -1;
				break;
			}
		}
	}
	json_decref(rooms);
	free(text);
	return rc;
}

static json_t *change_json(const char *action, const char *actor, json_t *step,
			   const char *comment)
{
	return json_pack("{s:s, s:s, s:O, s:o, s:s}", "action", action, "actor", actor,
			 "step", step ? step : json_null(),
			 "comment", comment ? json_string(comment) : json_null(),
			 "time", pipeline_ts());
}

/* ---- requests ----------------------------------------------------------------------- */

/* What an action asks, checked. */
struct act_req {
	enum wfstate_action action;
	struct wfstate_actor actor;
	const char *comment;
	int64_t version;           /* -1: any */
};

/* One action's outcome: status 200, or the refusal; state is the workflow
 * afterwards (or as it stays), NULL when there is none. */
struct act_res {
	int status;
	const char *code, *message;
	json_t *state;
};

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Checks the actor, roles, comment and (when versioned) version fields of q
 * into a; returns the reason when one is malformed. */
static const char *act_parse(json_t *q, struct act_req *a, bool versioned)
{
	json_t *roles = json_object_get(q, "roles"), *comment = json_object_get(q, "comment");
	json_t *version = json_object_get(q, "version");
	int action = wfstate_action_parse(str(q, "action"));
	if (action < 0)
		return "action must be approve, reject or cancel";
	*a = (struct act_req){ (enum wfstate_action)action, { str(q, "actor"), NULL }, NULL, -1 };
	if (!wfstate_user_valid(a->actor.id))
		return "actor must be a user id (user:{actor} a valid room)";
	if (roles && !json_is_null(roles)) {
		size_t i;
		json_t *r;
		if (!json_is_array(roles))
			return "roles must be a list of strings";
		json_array_foreach(roles, i, r)
			if (!json_is_string(r))
				return "roles must be a list of strings";
		a->actor.roles = roles;
	}
	if (comment && !json_is_null(comment)) {
		if (!json_is_string(comment) || json_string_length(comment) > WFSTATE_COMMENT_MAX)
			return "comment must be a string of at most 2000 bytes";
		a->comment = json_string_value(comment);
	}
	if (versioned && version && !json_is_null(version)) {
		if (!json_is_integer(version) || json_integer_value(version) < 0)
			return "version must be a non-negative integer";
		a->version = json_integer_value(version);
	}
	return NULL;
}

/* Applies a to workflow id inside the open transaction. Returns -1 when the
 * database failed, else 0 with the outcome in res. */
static int act_one(int64_t id, const struct act_req *a, struct act_res *res)
{
	json_t *row = NULL;
	*res = (struct act_res){ 200, NULL, NULL, NULL };
	int found = id > 0 ? store_workflow_get(hub.store, id, &row) : 0;
	if (found <= 0) {
		*res = (struct act_res){ 404, "not_found", "no such workflow", NULL };
		return found;
	}
	const char *text = str(row, "steps");
	struct wfstate w = {
		.status = (enum wfstate_status)wfstate_status_parse(str(row, "status")),
		.step = (int)json_integer_value(json_object_get(row, "step")),
		.version = json_integer_value(json_object_get(row, "version")),
		.created_by = str(row, "created_by"),
		.steps = text ? json_loads(text, 0, NULL) : NULL,
	};
	struct wfstate_facts f = { 0, false, a->version };
	int rc = 0;
	json_t *approvals = NULL;
	if (!wfstate_finished(w.status) && a->action == WFSTATE_APPROVE) {
		if (!(approvals = store_workflow_approvals(hub.store, id, w.step))) {
			rc = -1;
			goto out;
		}
		size_t i;
		json_t *x;
		json_array_foreach(approvals, i, x) {
			f.approvals++;
			f.approved_already |= strcmp(str(x, "actor"), a->actor.id) == 0;
		}
	}
	struct wfstate_outcome o;
	json_t *at = json_incref(json_object_get(wfstate_current(&w), "name"));
	if (wfstate_apply(&w, a->action, &a->actor, &f, &o) != 0) {
		*res = (struct act_res){ o.status, o.code, o.message, wfstate_json(row) };
		wf.refused++;
		json_decref(at);
		goto out;
	}
	const char *done = wfstate_action_done(a->action);
	const char *status = wfstate_status_name(w.status);
	if ((a->action == WFSTATE_APPROVE &&
	     store_workflow_approval_add(hub.store, id, o.step, a->actor.id, a->comment,
					 pipeline_ts()) != 1) ||
	    store_workflow_history_add(hub.store, id, a->actor.id, done, json_string_value(at),
				       a->comment, pipeline_ts()) < 0 ||
	    store_workflow_update(hub.store, id, status, w.step, w.version, pipeline_ts()) < 0) {
		json_decref(at);
		rc = -1;
		goto out;
	}
	json_object_set_new(row, "status", json_string(status));
	json_object_set_new(row, "step", json_integer(w.step));
	json_object_set_new(row, "version", json_integer(w.version));
	json_object_set_new(row, "updated_at", json_string(pipeline_ts()));
	res->state = wfstate_json(row);
	char event[32];
	snprintf(event, sizeof(event), "workflow.%s", done);
	const char *events[] = { event, "workflow.updated", o.completed ? "workflow.completed" : NULL,
				 NULL };
	json_t *change = change_json(done, a->actor.id, at, a->comment);
	rc = emit(row, res->state, change, events);
	json_decref(change);
	json_decref(at);
	wf.transitions++;
out:
	json_decref(approvals);
	json_decref(w.steps);
	json_decref(row);
	return rc;
}

/* ---- writes: define, create, act -------------------------------------------------- */

struct write_job {
	struct hub_job job;
	json_t *q;
	struct act_res res;        /* status 201/200 with state as the answer, or the refusal */
};

static int fail(struct write_job *w, int status, const char *code, const char *message)
{
	w->res = (struct act_res){ status, code, message, NULL };
	return 0;
}

static int op_define(struct write_job *w, json_t *body)
{
	const char *why;
	json_t *def = wfstate_definition(body, &why);
	if (!def)
		return fail(w, 400, "bad_request", why);
	char *steps = json_dumps(json_object_get(def, "steps"), JSON_COMPACT);
	int added = store_workflow_def_add(hub.store, str(def, "name"), steps, pipeline_ts());
	free(steps);
	if (added <= 0) {
		json_decref(def);
		return added < 0 ? -1 : fail(w, 409, "conflict", "a definition of that name exists");
	}
	json_object_set_new(def, "created_at", json_string(pipeline_ts()));
	w->res = (struct act_res){ 201, NULL, NULL, def };
	return 0;
}

static int op_create(struct write_job *w, json_t *body)
{
	const char *name = str(body, "definition"), *by = str(body, "created_by");
	json_t *data = json_object_get(body, "data");
	if (!json_is_object(body) || !name)
		return fail(w, 400, "bad_request", "definition (a definition's name) is required");
	if (!wfstate_user_valid(by))
		return fail(w, 400, "bad_request", "created_by must be a user id (user:{id} a valid room)");
	json_t *def = NULL, *row = NULL;
	int found = store_workflow_def(hub.store, name, &def);
	if (found <= 0)
		return found < 0 ? -1 : fail(w, 404, "not_found", "no such workflow definition");
	json_decref(def);
	char *text = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	int64_t id = store_workflow_add(hub.store, name, text ? text : "{}", by, pipeline_ts());
	free(text);
	if (id < 0 || store_workflow_get(hub.store, id, &row) != 1)
		return -1;
	w->res = (struct act_res){ 201, NULL, NULL, wfstate_json(row) };
	json_t *at = json_object_get(w->res.state, "current_step");
	const char *events[] = { "workflow.created", NULL };
	json_t *change = change_json("created", by, at, NULL);
	int rc = store_workflow_history_add(hub.store, id, by, "created", json_string_value(at), NULL,
					    pipeline_ts()) < 0 ? -1 : emit(row, w->res.state, change, events);
	json_decref(change);
	json_decref(row);
	wf.created++;
	return rc;
}

static int op_act(struct write_job *w)
{
	struct act_req a;
	const char *why = act_parse(w->q, &a, true);
	if (why)
		return fail(w, 400, "bad_request", why);
	return act_one(wfstate_id_parse(str(w->q, "id")), &a, &w->res);
}

static int write_run(struct hub_job *j)
{
	struct write_job *w = (struct write_job *)j;
	const char *op = str(w->q, "op");
	json_decref(w->res.state);
	w->res = (struct act_res){ 0 };
	if (strcmp(op, "workflow_define") == 0)
		return op_define(w, json_object_get(w->q, "body"));
	if (strcmp(op, "workflow_create") == 0)
		return op_create(w, json_object_get(w->q, "body"));
	return op_act(w);
}

/* The error object of a refusal; with the workflow's state (and its current
 * version, which a version conflict is about) when there is one. */
static json_t *error_json(const struct act_res *res)
{
	json_t *v = json_pack("{s:{s:s, s:s}}", "error", "code", res->code, "message", res->message);
	if (res->state) {
		json_object_set(json_object_get(v, "error"), "version",
				json_object_get(res->state, "version"));
		json_object_set(v, "workflow", res->state);
	}
	return v;
}

static void write_done(struct hub_job *j, bool committed)
{
	struct write_job *w = (struct write_job *)j;
	if (!committed)
		hub_reply_error(j->from, j->req, 503, "unavailable", "database write failed");
	else if (w->res.code)
		hub_reply_json(j->from, j->req, w->res.status, error_json(&w->res));
	else
		hub_reply_json(j->from, j->req, w->res.status, json_incref(w->res.state));
	json_decref(w->res.state);
	json_decref(w->q);
	free(w);
}

/* ---- bulk actions ------------------------------------------------------------------- */

struct bulk_job {
	struct hub_job job;
	json_t *q;                 /* the request's body: ids, actor, roles, comment */
	struct act_req act;        /* borrows from q */
	char bulk_id[24];
	char room[ROOM_MAX + 1];   /* user:{actor} */
	json_t *results;
	size_t done, total, succeeded, failed;
	ev_timer next_chunk;       /* the next chunk goes in the next loop turn's commit */
	struct bulk_job *next;
};

static int bulk_emit(struct bulk_job *b, const char *event, json_t *data)
{
	char *text = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	int rc = pipeline_emit(b->room, event, text, strlen(text)) < 0 ? -1 : 0;
	free(text);
	return rc;
}

static int bulk_run(struct hub_job *j)
{
	struct bulk_job *b = (struct bulk_job *)j;
	size_t end = MIN(b->done + BULK_CHUNK, b->total);
	json_t *ids = json_object_get(b->q, "ids");
	for (size_t i = b->done; i < end; i++) {
		json_t *id = json_array_get(ids, i);
		struct act_res res;
		if (act_one(wfstate_id_parse(json_string_value(id)), &b->act, &res) < 0) {
			json_decref(res.state);
			return -1;
		}
		const char *status = str(res.state, "status");
		json_t *r = json_pack("{s:O, s:b, s:o}", "id", id, "ok", res.status == 200,
				      "status", status ? json_string(status) : json_null());
		if (res.code)
			json_object_set_new(r, "error", json_pack("{s:s, s:s, s:i}", "code", res.code,
								  "message", res.message,
								  "status", res.status));
		json_array_append_new(b->results, r);
		json_decref(res.state);
		size_t n = i + 1;
		if ((n % BULK_PROGRESS_EVERY == 0 || n == end) &&
		    bulk_emit(b, "bulk.progress", json_pack("{s:s, s:I, s:I}", "bulk_id", b->bulk_id,
							    "done", (json_int_t)n,
							    "total", (json_int_t)b->total)) < 0)
			return -1;
	}
	size_t ok = 0;
	for (size_t i = b->done; i < end; i++)
		ok += json_is_true(json_object_get(json_array_get(b->results, i), "ok"));
	if (end == b->total &&
	    bulk_emit(b, "bulk.completed", json_pack("{s:s, s:I, s:I}", "bulk_id", b->bulk_id,
						     "succeeded", (json_int_t)(b->succeeded + ok),
						     "failed",
						     (json_int_t)(b->failed + end - b->done - ok))) < 0)
		return -1;
	return 0;
}

static void bulk_free(struct bulk_job *b)
{
	for (struct bulk_job **p = &wf.bulks; *p; p = &(*p)->next) {
		if (*p == b) {
			*p = b->next;
			break;
		}
	}
	ev_timer_stop(hub.loop, &b->next_chunk);
	json_decref(b->results);
	json_decref(b->q);
	free(b);
}

static void bulk_done(struct hub_job *j, bool committed)
{
	struct bulk_job *b = (struct bulk_job *)j;
	if (!committed) {
		/* The chunks before this one are committed and stay. */
		hub_reply_error(j->from, j->req, 503, "unavailable",
				"database write failed: the bulk stopped part-way");
		bulk_free(b);
		return;
	}
	size_t end = json_array_size(b->results);
	for (size_t i = b->done; i < end; i++) {
		if (json_is_true(json_object_get(json_array_get(b->results, i), "ok")))
			b->succeeded++;
		else
			b->failed++;
	}
	b->done = end;
	if (b->done < b->total) {
		ev_timer_start(hub.loop, &b->next_chunk);
		return;
	}
	wf.bulks_done++;
	hub_reply_json(j->from, j->req, 200,
		       json_pack("{s:s, s:I, s:I, s:I, s:O}", "bulk_id", b->bulk_id,
				 "total", (json_int_t)b->total, "succeeded", (json_int_t)b->succeeded,
				 "failed", (json_int_t)b->failed, "results", b->results));
	bulk_free(b);
}

static void next_chunk_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bulk_job *b = w->data;
	pipeline_job(&b->job);
}

static void bulk_start(struct link *l, uint64_t req, json_t *body)
{
	json_t *ids = json_object_get(body, "ids");
	struct act_req a;
	const char *why = json_is_object(body) ? act_parse(body, &a, false) : "a JSON object is required";
	if (!why && (!json_is_array(ids) || json_array_size(ids) < 1 || json_array_size(ids) > BULK_MAX))
		why = "ids must be a list of 1 to 1000 workflow ids";
	if (why) {
		hub_reply_error(l, req, 400, "bad_request", why);
		return;
	}
	struct bulk_job *b = xcalloc(1, sizeof(*b));
	b->job = (struct hub_job){ .run = bulk_run, .done = bulk_done, .from = l, .req = req };
	b->q = json_incref(body);
	b->act = a;
	memcpy(b->bulk_id, "bulk_", 5);
	random_hex(b->bulk_id + 5, 8);
	snprintf(b->room, sizeof(b->room), "user:%s", a.actor.id);
	b->results = json_array();
	b->total = json_array_size(ids);
	ev_timer_init(&b->next_chunk, next_chunk_cb, 0, 0);
	b->next_chunk.data = b;
	b->next = wf.bulks;
	wf.bulks = b;
	pipeline_job(&b->job);
}

void workflow_link_lost(struct link *l)
{
	for (struct bulk_job *b = wf.bulks; b; b = b->next)
		if (b->job.from == l)
			b->job.from = NULL;
}

/* ---- entry points -------------------------------------------------------------------- */

bool workflow_request(struct link *l, uint64_t req, const char *op, json_t *q)
{
	if (strcmp(op, "workflow_bulk") == 0) {
		bulk_start(l, req, json_object_get(q, "body"));
		return true;
	}
	if (strcmp(op, "workflow_define") && strcmp(op, "workflow_create") &&
	    strcmp(op, "workflow_act"))
		return false;
	struct write_job *w = xcalloc(1, sizeof(*w));
	w->job = (struct hub_job){ .run = write_run, .done = write_done, .from = l, .req = req };
	w->q = json_incref(q);
	pipeline_job(&w->job);
	return true;
}

void workflow_stats(json_t *stats)
{
	json_t *counts = store_workflow_counts(hub.store);
	json_t *by = json_object();
	for (int s = 0; s < WFSTATE_STATUS_COUNT; s++) {
		json_t *n = json_object_get(counts, wfstate_status_name((enum wfstate_status)s));
		json_object_set_new(by, wfstate_status_name((enum wfstate_status)s),
				    json_integer(json_integer_value(n)));
	}
	json_decref(counts);
	json_object_set_new(stats, "workflows",
		json_pack("{s:o, s:I, s:I, s:I, s:I}", "by_status", by,
			  "created", (json_int_t)wf.created, "transitions", (json_int_t)wf.transitions,
			  "refused", (json_int_t)wf.refused, "bulks", (json_int_t)wf.bulks_done));
}
