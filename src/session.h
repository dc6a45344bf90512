/* session.h -- the client protocol on /ws (SPEC §3): authentication,
 * subscriptions with replay, publishing, notifications read state. */
#ifndef HERALD_SESSION_H
#define HERALD_SESSION_H

#include <stddef.h>
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

#endif
