/* session.h -- the client protocol on /ws (SPEC §3): authentication,
 * subscriptions with replay, publishing, notifications read state. */
#ifndef HERALD_SESSION_H
#define HERALD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "acl.h"
#include "conn.h"
#include "http.h"
#include "jwt.h"

struct jwt_claims;

/* Verifies a token with the configured keys, now. */
enum jwt_result session_verify_token(const char *token, size_t len, struct jwt_claims *out);
/* Right after the upgrade: claims (taken over; NULL when no token came with
 * the request) authenticate the connection; sends welcome. */
void session_open(struct conn *c, struct jwt_claims *claims);
/* One complete WebSocket message from the client. */
void session_message(struct conn *c, int opcode, const char *p, size_t n);
/* The connection is closing: leave rooms, free the session. */
void session_close(struct conn *c);

struct sub;
/* A subscription reached live delivery (after its replay): reply `subscribed`;
 * after a catch-up, again (without id) only when messages were lost. */
void session_subscribed(struct sub *s);
/* The hub is back: report every connection and its rooms again. */
void session_hub_back(void);

/* ---- shared with the Socket.IO protocol (sio.c) ---- */

/* Checks room against its namespace's rule for subscribing (or publishing)
 * with these claims. Returns NULL when allowed, else the error code
 * ("bad_request" for an invalid name, "forbidden"). */
const char *session_check_room(const struct jwt_claims *claims, const char *room, bool publish);
/* The rooms a connection with these claims joins by itself (user:{sub},
 * global); returns how many were written to out. */
size_t session_auto_rooms(const struct jwt_claims *claims, char out[2][ROOM_MAX + 1]);
/* Reports a client connection, its rooms and its end to the hub's registry. */
void session_report_open(uint64_t id, const char *user, const char *addr, int64_t connected_at);
void session_report_room(uint64_t id, const char *room, bool joined);
void session_report_close(uint64_t id);
/* The hub request (op workflow_act) for a client's workflow message
 * {action, workflow, comment?, version?}, acting as claims' sub (not NULL)
 * with its roles; NULL when action or workflow is missing. */
json_t *session_workflow_op(const struct jwt_claims *claims, json_t *msg);

#endif
