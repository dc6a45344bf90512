/* fuzz_workflow.c -- libFuzzer target for wfstate.c: definitions from
 * untrusted JSON, then actions on an instance, checked against the rules. */

/* Input: a definition as JSON, optionally followed by a NUL byte and action
 * bytes, three per action (what, who, and the database's facts). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "wfstate.h"

#define ACTIONS_MAX 64
#define ACTORS_MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has(json_t *list, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
		if (json_is_string(v) && s && strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

/* The rule, restated: the actor is named by the step's users or holds one
 * of its roles. */
static bool approver(json_t *step, const struct wfstate_actor *a)
{
	json_t *ap = json_object_get(step, "approvers");
	if (!a->id)
		return false;
	if (has(json_object_get(ap, "users"), a->id))
		return true;
	size_t i;
	json_t *r;
	json_array_foreach(a->roles, i, r)
		if (has(json_object_get(ap, "roles"), json_string_value(r)))
			return true;
	return false;
}

/* A name for the fuzzer's pick among the definition's users (or roles). */
static const char *pick(json_t *steps, const char *which, unsigned k)
{
	size_t n = json_array_size(steps);
	if (!n)
		return NULL;
	json_t *step = json_array_get(steps, k % n);
	json_t *list = json_object_get(json_object_get(step, "approvers"), which);
	size_t m = json_array_size(list);
	return m ? json_string_value(json_array_get(list, (k / n) % m)) : NULL;
}

/* The API's view of the instance must agree with it. */
static void check_json(const struct wfstate *w, int64_t id, json_t *def)
{
	char *steps = json_dumps(w->steps, JSON_COMPACT);
	json_t *row = json_pack("{s:I, s:O, s:s, s:i, s:s, s:I, s:s, s:s, s:s, s:s}",
				"id", (json_int_t)id, "definition", json_object_get(def, "name"),
				"status", wfstate_status_name(w->status), "step", w->step,
				"data", "{\"m\":[1,2]}", "version", (json_int_t)w->version,
				"created_by", w->created_by, "created_at", "2026-01-01T00:00:00.000Z",
				"updated_at", "2026-01-01T00:00:01.000Z", "steps", steps);
	free(steps);
	if (!row)
		abort();
	json_t *v = wfstate_json(row);
	char want[WFSTATE_ID_LEN];
	wfstate_id_format(want, id);
	json_t *cur = json_object_get(v, "current_step");
	json_t *step = wfstate_current(w);
	if (!v || strcmp(json_string_value(json_object_get(v, "id")), want) != 0 ||
	    json_integer_value(json_object_get(v, "version")) != w->version ||
	    wfstate_status_parse(json_string_value(json_object_get(v, "status"))) != (int)w->status ||
	    (step ? !json_equal(cur, json_object_get(step, "name")) : !json_is_null(cur)) ||
	    !json_is_object(json_object_get(v, "data")))
		abort();
	json_decref(v);
	json_decref(row);
}

static void run(json_t *def, const uint8_t *p, size_t n)
{
	json_t *steps = json_object_get(def, "steps");
	size_t nsteps = json_array_size(steps);
	if (nsteps < 1 || nsteps > WFSTATE_STEPS_MAX)
		abort();
	struct wfstate w = { WFSTATE_PENDING, 0, 1, "carl", steps };
	int64_t id = 1 + (int64_t)(n * 7919);

	/* Actors: the creator, an outsider, an anonymous one, and people made of
	 * the definition's users and roles, some of them admins. */
	json_t *roles[ACTORS_MAX];
	struct wfstate_actor actors[ACTORS_MAX];
	for (unsigned i = 0; i < ACTORS_MAX; i++) {
		roles[i] = json_array();
		actors[i] = (struct wfstate_actor){ NULL, roles[i] };
	}
	actors[0].id = "carl";
	actors[1].id = "olga";
	unsigned seed = n ? p[0] : 0;
	for (unsigned i = 3; i < ACTORS_MAX; i++) {
		const char *u = pick(steps, "users", seed + i * 31);
		actors[i].id = u && (i & 1) ? u : i == 4 ? "carl" : "zed";
		const char *r = pick(steps, "roles", seed + i * 17);
		if (r && i != 5)
			json_array_append_new(roles[i], json_string(r));
		if (i == 6 || i == 7)
			json_array_append_new(roles[i], json_string("admin"));
		if (i == 7)
			json_array_append_new(roles[i], json_integer(7));  /* junk in a role list */
	}
	json_array_append_new(roles[2], json_string("admin"));   /* no id: still nobody */

	check_json(&w, id, def);
	for (size_t k = 0; k + 3 <= n && k / 3 < ACTIONS_MAX; k += 3) {
		enum wfstate_action a = (enum wfstate_action)(p[k] % 3);
		const struct wfstate_actor *who = &actors[p[k + 1] % ACTORS_MAX];
		json_t *step = wfstate_current(&w);
		json_int_t required = json_integer_value(json_object_get(step, "required"));
		struct wfstate_facts f = {
			.approvals = required ? (int)(p[k + 2] % (required + 1)) : p[k + 2] % 4,
			.approved_already = (p[k] >> 2) & 1,
		};
		switch ((p[k] >> 3) & 3) {
		case 0: f.version = -1; break;
		case 1: f.version = w.version; break;
		case 2: f.version = w.version + 1; break;
		default: f.version = w.version - 1; break;
		}
		struct wfstate before = w;
		struct wfstate_outcome out;
		int r = wfstate_apply(&w, a, who, &f, &out);
		if (r != out.status || out.step != before.step)
			abort();
		if (r != 0) {
			/* A refusal changes nothing and says why. */
			if ((r != 403 && r != 409) || !out.code || !out.message ||
			    w.status != before.status || w.step != before.step ||
			    w.version != before.version)
				abort();
			if (a != WFSTATE_CANCEL && !wfstate_finished(before.status) &&
			    (f.version < 0 || f.version == before.version) && approver(step, who) &&
			    !(a == WFSTATE_APPROVE && f.approved_already))
				abort();    /* an approver acting in turn was refused */
		} else {
			/* Allowed: only an unfinished workflow, at the expected version,
			 * moves, by one version, to a state its action explains. */
			if (wfstate_finished(before.status) || !step ||
			    (f.version >= 0 && f.version != before.version) ||
			    w.version != before.version + 1)
				abort();
			switch (a) {
			case WFSTATE_APPROVE:
				if (!approver(step, who) || f.approved_already ||
				    out.advanced != (f.approvals + 1 >= required) ||
				    w.step != before.step + (out.advanced ? 1 : 0) ||
				    out.completed != (out.advanced && (size_t)w.step == nsteps) ||
				    w.status != (out.completed ? WFSTATE_APPROVED : WFSTATE_IN_PROGRESS))
					abort();
				break;
			case WFSTATE_REJECT:
				if (!approver(step, who) || w.status != WFSTATE_REJECTED ||
				    w.step != before.step || out.advanced)
					abort();
				break;
			case WFSTATE_CANCEL:
				if (!who->id || (strcmp(who->id, "carl") != 0 && !has(who->roles, "admin")) ||
				    w.status != WFSTATE_CANCELLED || w.step != before.step)
					abort();
				break;
			}
		}
		/* The step stays within the steps; only an approved workflow is past the last. */
		if (w.step < 0 || (size_t)w.step > nsteps ||
		    ((size_t)w.step == nsteps) != (w.status == WFSTATE_APPROVED) ||
		    (wfstate_current(&w) == NULL) != ((size_t)w.step == nsteps))
			abort();
		check_json(&w, id, def);
	}
	/* A finished workflow refuses everything, whoever asks. */
	if (wfstate_finished(w.status)) {
		struct wfstate_facts f = { 0, false, -1 };
		for (unsigned i = 0; i < ACTORS_MAX; i++) {
			for (int a = WFSTATE_APPROVE; a <= WFSTATE_CANCEL; a++) {
				struct wfstate before = w;
				struct wfstate_outcome out;
				if (wfstate_apply(&w, (enum wfstate_action)a, &actors[i], &f, &out) != 409 ||
				    w.version != before.version || w.status != before.status)
					abort();
			}
		}
	}
	for (unsigned i = 0; i < ACTORS_MAX; i++)
		json_decref(roles[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t jlen = nul ? (size_t)(nul - data) : size;
	json_t *body = json_loadb((const char *)data, jlen, JSON_DECODE_ANY, NULL);
	if (!body)
		return 0;
	const char *why = NULL;
	json_t *def = wfstate_definition(body, &why);
	if (!def) {
		if (!why)
			abort();
	} else {
		/* Normalizing a normalized definition changes nothing. */
		const char *why2 = NULL;
		json_t *again = wfstate_definition(def, &why2);
		if (!again || !json_equal(again, def))
			abort();
		json_decref(again);
		run(def, nul ? nul + 1 : data + size, nul ? size - jlen - 1 : 0);
		json_decref(def);
	}
	json_decref(body);

	/* Names and ids from the same bytes. */
	char text[64];
	size_t tn = jlen < sizeof(text) - 1 ? jlen : sizeof(text) - 1;
	memcpy(text, data, tn);
	text[tn] = '\0';
	int64_t id = wfstate_id_parse(text);
	if (id < 0)
		abort();
	if (id > 0) {
		char back[WFSTATE_ID_LEN];
		wfstate_id_format(back, id);
		if (wfstate_id_parse(back) != id)
			abort();
	}
	int st = wfstate_status_parse(text);
	if (st >= 0 && strcmp(wfstate_status_name((enum wfstate_status)st), text) != 0)
		abort();
	int act = wfstate_action_parse(text);
	if (act >= 0 && !wfstate_action_done((enum wfstate_action)act))
		abort();
	(void)wfstate_user_valid(text);
	return 0;
}
