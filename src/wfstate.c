/* wfstate.c -- the approval workflow state machine and definition checks,
 * on plain values so that unit tests can walk every transition. */
#include "wfstate.h"

#include <stdio.h>
#include <string.h>

#include "acl.h"

static const char *const status_names[WFSTATE_STATUS_COUNT] = {
	[WFSTATE_PENDING] = "pending",
	[WFSTATE_IN_PROGRESS] = "in_progress",
	[WFSTATE_APPROVED] = "approved",
	[WFSTATE_REJECTED] = "rejected",
	[WFSTATE_CANCELLED] = "cancelled",
};

const char *wfstate_status_name(enum wfstate_status s)
{
	return s < WFSTATE_STATUS_COUNT ? status_names[s] : "unknown";
}

int wfstate_status_parse(const char *s)
{
	for (int i = 0; s && i < WFSTATE_STATUS_COUNT; i++)
		if (strcmp(s, status_names[i]) == 0)
			return i;
	return -1;
}

int wfstate_action_parse(const char *s)
{
	if (!s)
		return -1;
	if (strcmp(s, "approve") == 0)
		return WFSTATE_APPROVE;
	if (strcmp(s, "reject") == 0)
		return WFSTATE_REJECT;
	if (strcmp(s, "cancel") == 0)
		return WFSTATE_CANCEL;
	return -1;
}

const char *wfstate_action_done(enum wfstate_action a)
{
	return a == WFSTATE_APPROVE ? "approved" : a == WFSTATE_REJECT ? "rejected" : "cancelled";
}

bool wfstate_finished(enum wfstate_status s)
{
	return s == WFSTATE_APPROVED || s == WFSTATE_REJECTED || s == WFSTATE_CANCELLED;
}

int64_t wfstate_id_parse(const char *s)
{
	if (!s)
		return 0;
	if (strncmp(s, "wf_", 3) == 0)
		s += 3;
	if (*s < '1' || *s > '9' || strlen(s) > 18)
		return 0;
	int64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (*s - '0');
	}
	return v;
}

void wfstate_id_format(char out[WFSTATE_ID_LEN], int64_t id)
{
	snprintf(out, WFSTATE_ID_LEN, "wf_%lld", (long long)id);
}

bool wfstate_user_valid(const char *user)
{
	char room[ROOM_MAX + 2];
	if (!user || !*user)
		return false;
	int n = snprintf(room, sizeof(room), "user:%s", user);
	return n < (int)sizeof(room) && acl_room_valid(room, (size_t)n);
}

/* ---- definitions ----------------------------------------------------------------- */

static bool name_valid(json_t *v)
{
	return json_is_string(v) && json_string_length(v) >= 1 &&
	       json_string_length(v) <= WFSTATE_NAME_MAX && strlen(json_string_value(v)) ==
	       json_string_length(v);
}

static bool list_has(json_t *list, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
		if (strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

/* A list of distinct names (users when users is set); NULL when v is malformed. */
static json_t *names(json_t *v, bool users)
{
	if (!v || json_is_null(v))
		return json_array();
	if (!json_is_array(v) || json_array_size(v) > WFSTATE_APPROVERS_MAX)
		return NULL;
	json_t *out = json_array();
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x) {
		if (!name_valid(x) || (users && !wfstate_user_valid(json_string_value(x)))) {
			json_decref(out);
			return NULL;
		}
		if (!list_has(out, json_string_value(x)))
			json_array_append(out, x);
	}
	return out;
}

/* One step, normalized; NULL with *why when malformed. */
static json_t *step_check(json_t *s, const char **why)
{
	json_t *name = json_object_get(s, "name"), *ap = json_object_get(s, "approvers");
	json_t *req = json_object_get(s, "required");
	if (!json_is_object(s) || !name_valid(name)) {
		*why = "each step needs a name of 1 to 100 bytes";
		return NULL;
	}
	if (!json_is_object(ap)) {
		*why = "each step needs approvers: {roles: [..], users: [..]}";
		return NULL;
	}
	if (req && (!json_is_integer(req) || json_integer_value(req) < 1 ||
		    json_integer_value(req) > WFSTATE_APPROVERS_MAX)) {
		*why = "required must be an integer from 1 to 100";
		return NULL;
	}
	json_t *roles = names(json_object_get(ap, "roles"), false);
	json_t *users = names(json_object_get(ap, "users"), true);
	json_int_t required = req ? json_integer_value(req) : 1;
	if (!roles || !users)
		*why = "approvers' roles and users must be lists of names (users: valid user ids)";
	else if (json_array_size(roles) + json_array_size(users) == 0)
		*why = "each step needs at least one approver role or user";
	else if (json_array_size(roles) == 0 && (size_t)required > json_array_size(users))
		*why = "required exceeds the number of users who may approve the step";
	else
		return json_pack("{s:O, s:{s:o, s:o}, s:I}", "name", name, "approvers",
				 "roles", roles, "users", users, "required", required);
	json_decref(roles);
	json_decref(users);
	return NULL;
}

json_t *wfstate_definition(json_t *body, const char **why)
{
	json_t *name = json_object_get(body, "name"), *steps = json_object_get(body, "steps");
	if (!json_is_object(body) || !name_valid(name)) {
		*why = "name must be a string of 1 to 100 bytes";
		return NULL;
	}
	if (!json_is_array(steps) || json_array_size(steps) < 1 ||
	    json_array_size(steps) > WFSTATE_STEPS_MAX) {
		*why = "steps must be a list of 1 to 50 steps";
		return NULL;
	}
	json_t *out = json_array(), *names_seen = json_array();
	size_t i;
	json_t *s;
	json_array_foreach(steps, i, s) {
		json_t *step = step_check(s, why);
		if (step && list_has(names_seen, json_string_value(json_object_get(step, "name")))) {
			*why = "step names must be distinct";
			json_decref(step);
			step = NULL;
		}
		if (!step) {
			json_decref(out);
			json_decref(names_seen);
			return NULL;
		}
		json_array_append(names_seen, json_object_get(step, "name"));
		json_array_append_new(out, step);
	}
	json_decref(names_seen);
	return json_pack("{s:O, s:o}", "name", name, "steps", out);
}

/* ---- transitions ----------------------------------------------------------------- */

bool wfstate_may_approve(json_t *step, const struct wfstate_actor *actor)
{
	json_t *ap = json_object_get(step, "approvers");
	if (!actor->id)
		return false;
	if (list_has(json_object_get(ap, "users"), actor->id))
		return true;
	size_t i;
	json_t *r;
	json_array_foreach(actor->roles, i, r)
		if (json_is_string(r) && list_has(json_object_get(ap, "roles"), json_string_value(r)))
			return true;
	return false;
}

static bool has_role(const struct wfstate_actor *actor, const char *role)
{
	size_t i;
	json_t *r;
	json_array_foreach(actor->roles, i, r)
		if (json_is_string(r) && strcmp(json_string_value(r), role) == 0)
			return true;
	return false;
}

json_t *wfstate_current(const struct wfstate *w)
{
	return w->step >= 0 ? json_array_get(w->steps, (size_t)w->step) : NULL;
}

static int refuse(struct wfstate_outcome *out, int status, const char *code, const char *message)
{
	out->status = status;
	out->code = code;
	out->message = message;
	return status;
}

int wfstate_apply(struct wfstate *w, enum wfstate_action a, const struct wfstate_actor *actor,
		  const struct wfstate_facts *f, struct wfstate_outcome *out)
{
	*out = (struct wfstate_outcome){ .step = w->step };
	json_t *step = wfstate_current(w);
	if (wfstate_finished(w->status) || !step)
		return refuse(out, 409, "conflict", "the workflow is finished");
	if (f->version >= 0 && f->version != w->version)
		return refuse(out, 409, "conflict", "version mismatch");
	switch (a) {
	case WFSTATE_APPROVE:
		if (!wfstate_may_approve(step, actor))
			return refuse(out, 403, "forbidden", "not an approver of the current step");
		if (f->approved_already)
			return refuse(out, 409, "conflict", "already approved this step");
		if (f->approvals + 1 >= json_integer_value(json_object_get(step, "required"))) {
			out->advanced = true;
			w->step++;
			out->completed = (size_t)w->step >= json_array_size(w->steps);
		}
		w->status = out->completed ? WFSTATE_APPROVED : WFSTATE_IN_PROGRESS;
		break;
	case WFSTATE_REJECT:
		if (!wfstate_may_approve(step, actor))
			return refuse(out, 403, "forbidden", "not an approver of the current step");
		w->status = WFSTATE_REJECTED;
		break;
	case WFSTATE_CANCEL:
		if (!actor->id || (strcmp(actor->id, w->created_by) != 0 && !has_role(actor, "admin")))
			return refuse(out, 403, "forbidden", "only the creator or an admin may cancel");
		w->status = WFSTATE_CANCELLED;
		break;
	}
	w->version++;
	return 0;
}

/* ---- presentation ----------------------------------------------------------------- */

json_t *wfstate_json(json_t *row)
{
	char id[WFSTATE_ID_LEN];
	wfstate_id_format(id, json_integer_value(json_object_get(row, "id")));
	const char *steps_text = json_string_value(json_object_get(row, "steps"));
	const char *data_text = json_string_value(json_object_get(row, "data"));
	json_t *steps = steps_text ? json_loads(steps_text, 0, NULL) : NULL;
	json_t *data = data_text ? json_loads(data_text, JSON_DECODE_ANY, NULL) : NULL;
	json_int_t step = json_integer_value(json_object_get(row, "step"));
	json_t *cur = step >= 0 ? json_object_get(json_array_get(steps, (size_t)step), "name") : NULL;
	json_t *v = json_pack("{s:s, s:O, s:O, s:O, s:O, s:o, s:O, s:O, s:O}",
			      "id", id, "definition", json_object_get(row, "definition"),
			      "status", json_object_get(row, "status"),
			      "current_step", cur ? cur : json_null(),
			      "version", json_object_get(row, "version"),
			      "data", data ? data : json_null(),
			      "created_by", json_object_get(row, "created_by"),
			      "created_at", json_object_get(row, "created_at"),
			      "updated_at", json_object_get(row, "updated_at"));
	json_decref(steps);
	return v;
}
