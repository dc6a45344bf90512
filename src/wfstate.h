/* wfstate.h -- the rules of approval workflows on plain values: what makes a
 * definition valid, and what an action does to an instance or why it is
 * refused. No database and no process state: the hub's workflow.c reads the
 * facts, asks here, and writes the outcome. */
#ifndef HERALD_WFSTATE_H
#define HERALD_WFSTATE_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#define WFSTATE_NAME_MAX 100       /* definition and step names, roles */
#define WFSTATE_STEPS_MAX 50
#define WFSTATE_APPROVERS_MAX 100  /* users, and roles, per step */
#define WFSTATE_COMMENT_MAX 2000
#define WFSTATE_ID_LEN 24          /* "wf_" + a decimal id, with its NUL */

enum wfstate_status {
	WFSTATE_PENDING,
	WFSTATE_IN_PROGRESS,
	WFSTATE_APPROVED,
	WFSTATE_REJECTED,
	WFSTATE_CANCELLED,
	WFSTATE_STATUS_COUNT
};

enum wfstate_action { WFSTATE_APPROVE, WFSTATE_REJECT, WFSTATE_CANCEL };

/* "pending", "in_progress", ...; parse returns -1 for an unknown name. */
const char *wfstate_status_name(enum wfstate_status s);
int wfstate_status_parse(const char *s);
/* "approve", "reject", "cancel" -> the action; -1 for anything else. */
int wfstate_action_parse(const char *s);
/* The action as history and events name it: "approved", "rejected", "cancelled". */
const char *wfstate_action_done(enum wfstate_action a);
/* Approved, rejected and cancelled workflows can no longer change. */
bool wfstate_finished(enum wfstate_status s);

/* "wf_12" -> 12; 0 when s is not such an id. wfstate_id_format writes it back. */
int64_t wfstate_id_parse(const char *s);
void wfstate_id_format(char out[WFSTATE_ID_LEN], int64_t id);

/* True when user names a user: user:{user} is a valid room name. */
bool wfstate_user_valid(const char *user);

/* Checks a definition {name, steps: [{name, approvers: {roles, users},
 * required}]} and returns it normalized (both approver lists present,
 * required defaulting to 1), a new reference. NULL when it is malformed,
 * with the reason in *why (a static string). */
json_t *wfstate_definition(json_t *body, const char **why);

/* Who acts: a user id and its roles (an array of strings, or NULL). */
struct wfstate_actor {
	const char *id;
	json_t *roles;
};

/* True when actor is an approver of step (a normalized definition step). */
bool wfstate_may_approve(json_t *step, const struct wfstate_actor *actor);

/* An instance, as far as the rules need it. */
struct wfstate {
	enum wfstate_status status;
	int step;                  /* index of the current step; the step count once approved */
	int64_t version;
	const char *created_by;
	json_t *steps;             /* the definition's normalized steps */
};

/* What the database knows about the current step, and what the caller expects. */
struct wfstate_facts {
	int approvals;             /* distinct approvals the current step has */
	bool approved_already;     /* the actor is one of them */
	int64_t version;           /* the version the caller expects; -1: any */
};

struct wfstate_outcome {
	int status;                /* 0: done; else the HTTP status of the refusal */
	const char *code;          /* the refusal's error code and message */
	const char *message;
	int step;                  /* the step the action happened at */
	bool advanced;             /* an approval that gave its step enough approvals */
	bool completed;            /* ... and that step was the last */
};

/* Applies action a of actor to w under the rules of SPEC §7: a finished
 * workflow refuses everything (409) before any permission check; a version
 * other than the expected one is 409; approve and reject need an approver
 * of the current step, cancel the creator or role admin (403); an approver
 * approves a step once (409). When allowed, w's status, step and version
 * are moved on; when refused, w is unchanged. Returns out->status. */
int wfstate_apply(struct wfstate *w, enum wfstate_action a, const struct wfstate_actor *actor,
		  const struct wfstate_facts *f, struct wfstate_outcome *out);

/* The step w is at: its definition step object, or NULL once approved. */
json_t *wfstate_current(const struct wfstate *w);

/* An instance row (columns id, definition, status, step, data, version,
 * created_by, created_at, updated_at, and the definition's steps as JSON
 * text) as the API shows it: {id, definition, status, current_step, version,
 * data, created_by, created_at, updated_at}. A new reference. */
json_t *wfstate_json(json_t *row);

#endif
