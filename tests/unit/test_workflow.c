/* test_workflow.c -- unit tests for wfstate.c: definition checks, every
 * transition of the approval state machine and every refusal, ids, and the
 * API's view of an instance row. */

#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "wfstate.h"
#include "test.h"

/* trader (role trader, 1 approval), then risk (role risk or user rita, 2). */
static json_t *seed_steps(void)
{
	json_t *body = json_loads("{\"name\":\"odds_change\",\"steps\":["
		"{\"name\":\"trader\",\"approvers\":{\"roles\":[\"trader\"]}},"
		"{\"name\":\"risk\",\"approvers\":{\"roles\":[\"risk\"],\"users\":[\"rita\"]},"
		"\"required\":2}]}", 0, NULL);
	const char *why = NULL;
	json_t *def = wfstate_definition(body, &why);
	json_decref(body);
	json_t *steps = json_incref(json_object_get(def, "steps"));
	json_decref(def);
	return steps;
}

static struct wfstate fresh(json_t *steps)
{
	return (struct wfstate){ WFSTATE_PENDING, 0, 1, "carl", steps };
}

static void test_definition_normalized(void)
{
	json_t *steps = seed_steps();
	CHECK_EQ_INT(json_array_size(steps), 2);
	json_t *s0 = json_array_get(steps, 0);
	CHECK_EQ_INT(json_integer_value(json_object_get(s0, "required")), 1);
	CHECK(json_is_array(json_object_get(json_object_get(s0, "approvers"), "users")));
	CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(s0, "approvers"), "users")), 0);
	json_decref(steps);
	/* duplicates within a list collapse */
	json_t *body = json_loads("{\"name\":\"d\",\"steps\":[{\"name\":\"a\",\"approvers\":"
				  "{\"users\":[\"u\",\"u\",\"v\"]},\"required\":2}]}", 0, NULL);
	const char *why = NULL;
	json_t *def = wfstate_definition(body, &why);
	CHECK(def != NULL);
	CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(
		json_array_get(json_object_get(def, "steps"), 0), "approvers"), "users")), 2);
	json_decref(def);
	json_decref(body);
}

static void test_definition_refused(void)
{
	static const char *const bad[] = {
		"{}",
		"[]",
		"{\"name\":\"x\"}",
		"{\"name\":\"x\",\"steps\":[]}",
		"{\"name\":\"\",\"steps\":[{\"name\":\"a\",\"approvers\":{\"roles\":[\"r\"]}}]}",
		"{\"name\":5,\"steps\":[{\"name\":\"a\",\"approvers\":{\"roles\":[\"r\"]}}]}",
		"{\"name\":\"x\",\"steps\":[{\"approvers\":{\"roles\":[\"r\"]}}]}",
		"{\"name\":\"x\",\"steps\":[{\"name\":\"a\"}]}",
		"{\"name\":\"x\",\"steps\":[{\"name\":\"a\",\"approvers\":{}}]}",
		"{\"name\":\"x\",\"steps\":[{\"name\":\"a\",\"approvers\":{\"roles\":[\"r\"]},\"required\":0}]}",
		"{\"name\":\"x\",\"steps\":[{\"name\":\"a\",\"approvers\":{\"roles\":[\"r\"]},\"required\":1.5}]}",
		"{\"name\":\"x\",\"steps\":[{\"name\":\"a\",\"approvers\":{\"roles\":[\"\"]}}]}",
		"{\"name\":\"x\",\"steps\":[{\"name\":\"a\",\"approvers\":{\"users\":[\"a b\"]}}]}",
		"{\"name\":\"x\",\"steps\":[{\"name\":\"a\",\"approvers\":{\"users\":[\"u\"]},\"required\":2}]}",
		/* two steps of one name */
		("{\"name\":\"x\",\"steps\":[{\"name\":\"a\",\"approvers\":{\"roles\":[\"r\"]}},"
		 "{\"name\":\"a\",\"approvers\":{\"roles\":[\"r\"]}}]}"),
		"{\"name\":\"x\",\"steps\":[5]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *body = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		const char *why = NULL;
		json_t *def = wfstate_definition(body, &why);
		CHECK(def == NULL);
		CHECK(why != NULL);
		if (def)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		json_decref(def);
		json_decref(body);
	}
}

static void test_full_approval(void)
{
	json_t *steps = seed_steps();
	json_t *trader = json_loads("[\"trader\"]", 0, NULL), *risk = json_loads("[\"risk\"]", 0, NULL);
	struct wfstate w = fresh(steps);
	struct wfstate_outcome o;
	struct wfstate_facts f = { 0, false, -1 };
	struct wfstate_actor tom = { "tom", trader }, rick = { "rick", risk }, rita = { "rita", NULL };
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_APPROVE, &tom, &f, &o), 0);
	CHECK(o.advanced && !o.completed);
	CHECK_EQ_INT(o.step, 0);
	CHECK_EQ_INT(w.status, WFSTATE_IN_PROGRESS);
	CHECK_EQ_INT(w.step, 1);
	CHECK_EQ_INT(w.version, 2);
	/* first of two approvals: the step stays */
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_APPROVE, &rick, &f, &o), 0);
	CHECK(!o.advanced && !o.completed);
	CHECK_EQ_INT(w.step, 1);
	CHECK_EQ_INT(w.version, 3);
	/* the same approver again: refused, nothing moves */
	f = (struct wfstate_facts){ 1, true, -1 };
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_APPROVE, &rick, &f, &o), 409);
	CHECK_EQ_STR(o.code, "conflict");
	CHECK_EQ_INT(w.version, 3);
	/* rita, named by user, completes the last step */
	f = (struct wfstate_facts){ 1, false, 3 };
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_APPROVE, &rita, &f, &o), 0);
	CHECK(o.advanced && o.completed);
	CHECK_EQ_INT(o.step, 1);
	CHECK_EQ_INT(w.status, WFSTATE_APPROVED);
	CHECK_EQ_INT(w.step, 2);
	CHECK_EQ_INT(w.version, 4);
	CHECK(wfstate_current(&w) == NULL);
	json_decref(trader);
	json_decref(risk);
	json_decref(steps);
}

static void test_refusals(void)
{
	json_t *steps = seed_steps();
	json_t *trader = json_loads("[\"trader\"]", 0, NULL), *admin = json_loads("[\"admin\"]", 0, NULL);
	struct wfstate_actor tom = { "tom", trader }, boss = { "boss", admin }, olga = { "olga", NULL };
	struct wfstate_actor carl = { "carl", NULL };
	struct wfstate_outcome o;
	struct wfstate_facts any = { 0, false, -1 };
	struct wfstate w = fresh(steps);
	/* not an approver of the current step: neither approve nor reject */
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_APPROVE, &olga, &any, &o), 403);
	CHECK_EQ_STR(o.code, "forbidden");
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_APPROVE, &boss, &any, &o), 403);
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_REJECT, &olga, &any, &o), 403);
	/* cancel: only the creator or an admin */
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_CANCEL, &tom, &any, &o), 403);
	CHECK_EQ_INT(w.version, 1);
	CHECK_EQ_INT(w.status, WFSTATE_PENDING);
	/* version mismatch */
	struct wfstate_facts stale = { 0, false, 7 };
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_APPROVE, &tom, &stale, &o), 409);
	CHECK_EQ_STR(o.message, "version mismatch");
	/* reject by an approver ends it */
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_REJECT, &tom, &any, &o), 0);
	CHECK_EQ_INT(w.status, WFSTATE_REJECTED);
	CHECK_EQ_INT(w.step, 0);
	CHECK_EQ_INT(w.version, 2);
	/* finished: 409 before any permission check, for every action and actor */
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_APPROVE, &olga, &any, &o), 409);
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_CANCEL, &carl, &any, &o), 409);
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_REJECT, &tom, &stale, &o), 409);
	CHECK_EQ_STR(o.message, "the workflow is finished");
	/* cancel by the creator, and by an admin */
	w = fresh(steps);
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_CANCEL, &carl, &any, &o), 0);
	CHECK_EQ_INT(w.status, WFSTATE_CANCELLED);
	w = fresh(steps);
	CHECK_EQ_INT(wfstate_apply(&w, WFSTATE_CANCEL, &boss, &any, &o), 0);
	CHECK_EQ_INT(w.status, WFSTATE_CANCELLED);
	CHECK(wfstate_finished(w.status));
	json_decref(trader);
	json_decref(admin);
	json_decref(steps);
}

static void test_names_and_ids(void)
{
	CHECK_EQ_INT(wfstate_status_parse("in_progress"), WFSTATE_IN_PROGRESS);
	CHECK_EQ_INT(wfstate_status_parse("done"), -1);
	CHECK_EQ_INT(wfstate_status_parse(NULL), -1);
	CHECK_EQ_STR(wfstate_status_name(WFSTATE_CANCELLED), "cancelled");
	CHECK_EQ_INT(wfstate_action_parse("reject"), WFSTATE_REJECT);
	CHECK_EQ_INT(wfstate_action_parse("Reject"), -1);
	CHECK_EQ_STR(wfstate_action_done(WFSTATE_APPROVE), "approved");
	CHECK_EQ_INT(wfstate_id_parse("wf_9"), 9);
	CHECK_EQ_INT(wfstate_id_parse("12"), 12);
	CHECK_EQ_INT(wfstate_id_parse("wf_"), 0);
	CHECK_EQ_INT(wfstate_id_parse("wf_0"), 0);
	CHECK_EQ_INT(wfstate_id_parse("wf_1x"), 0);
	CHECK_EQ_INT(wfstate_id_parse("wf_-1"), 0);
	CHECK_EQ_INT(wfstate_id_parse("wf_99999999999999999999"), 0);
	CHECK_EQ_INT(wfstate_id_parse(NULL), 0);
	char id[WFSTATE_ID_LEN];
	wfstate_id_format(id, 42);
	CHECK_EQ_STR(id, "wf_42");
	CHECK(wfstate_user_valid("alice@example.com"));
	CHECK(!wfstate_user_valid(""));
	CHECK(!wfstate_user_valid("a/b"));
	CHECK(!wfstate_user_valid(NULL));
}

static void test_state_json(void)
{
	json_t *row = json_loads("{\"id\":9,\"definition\":\"odds_change\",\"status\":\"in_progress\","
		"\"step\":1,\"data\":\"{\\\"m\\\":1}\",\"version\":3,\"created_by\":\"carl\","
		"\"created_at\":\"t0\",\"updated_at\":\"t1\",\"steps\":"
		"\"[{\\\"name\\\":\\\"trader\\\"},{\\\"name\\\":\\\"risk\\\"}]\"}", 0, NULL);
	json_t *v = wfstate_json(row);
	CHECK_EQ_STR(json_string_value(json_object_get(v, "id")), "wf_9");
	CHECK_EQ_STR(json_string_value(json_object_get(v, "current_step")), "risk");
	CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(v, "data"), "m")), 1);
	CHECK_EQ_INT(json_integer_value(json_object_get(v, "version")), 3);
	json_decref(v);
	/* approved: past the last step */
	json_object_set_new(row, "step", json_integer(2));
	v = wfstate_json(row);
	CHECK(json_is_null(json_object_get(v, "current_step")));
	json_decref(v);
	json_decref(row);
}

TEST_MAIN("workflow",
	  TEST(test_definition_normalized),
	  TEST(test_definition_refused),
	  TEST(test_full_approval),
	  TEST(test_refusals),
	  TEST(test_names_and_ids),
	  TEST(test_state_json))
