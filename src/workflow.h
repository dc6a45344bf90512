/* workflow.h -- approval workflows in the hub: definitions, instances and
 * their transitions, each committed with its events and webhook deliveries. */
#ifndef HERALD_WORKFLOW_H
#define HERALD_WORKFLOW_H

#include <jansson.h>

#include "hub.h"

/* Ops: workflow_define {body}, workflow_create {body}, workflow_act {action,
 * id, actor, roles, comment, version}, workflow_bulk {body}. */
hub_request_fn workflow_request;

/* A link went away: its bulk actions go on, unanswered. */
void workflow_link_lost(struct link *l);

/* Adds the workflow figures to stats. */
void workflow_stats(json_t *stats);

#endif
