/* notify.h -- stored notifications: each is a row per user and the
 * `notification` event that carries it in user:{id}, committed together. */
#ifndef HERALD_NOTIFY_H
#define HERALD_NOTIFY_H

#include "hub.h"

/* Ops: notify (many users, one commit), read. */
hub_request_fn notify_request;

#endif
