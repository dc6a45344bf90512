/* siostate.c -- Socket.IO sessions kept for connection state recovery. A
 * worker stores a session when it connects and when its rooms change, and
 * notes its disconnection; each write is a job of the next group commit, so
 * the worker's acknowledgement to the client follows the commit. Sessions
 * past the recovery window are deleted a few at a time as new ones come. */
#include "siostate.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "pipeline.h"
#include "util.h"

#define PRUNE_STEP 16

struct sio_job {
	struct hub_job job;
	json_t *q;
	bool touch;
};

static int sio_run(struct hub_job *j)
{
	struct sio_job *sj = (struct sio_job *)j;
	json_t *q = sj->q;
	int64_t now = pipeline_now();
	const char *pid = json_string_value(json_object_get(q, "pid"));
	if (sj->touch && pid)
		return store_sio_touch(hub.store, pid, now);
	if (sj->touch) {
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(q, "pids"), i, v)
			if (json_is_string(v) && store_sio_touch(hub.store, json_string_value(v), now) < 0)
				return -1;
		return 0;
	}
	char *rooms = json_dumps(json_object_get(q, "rooms"), JSON_COMPACT);
	struct store_sio_session ss = { pid, json_string_value(json_object_get(q, "sid")),
					json_string_value(json_object_get(q, "user")), rooms };
	int rc = store_sio_put(hub.store, &ss, now);
	free(rooms);
	if (rc == 0 && store_sio_prune(hub.store,
				       now - (int64_t)hub.cfg->socketio_recovery_window * 1000,
				       PRUNE_STEP) < 0)
		rc = -1;
	return rc;
}

static void sio_done(struct hub_job *j, bool committed)
{
	struct sio_job *sj = (struct sio_job *)j;
	if (committed)
		hub_reply(j->from, j->req, 200, "{}", 2);
	else
		hub_reply_error(j->from, j->req, 503, "unavailable", "database write failed");
	json_decref(sj->q);
	free(sj);
}

bool siostate_request(struct link *l, uint64_t req, const char *op, json_t *q)
{
	bool put = strcmp(op, "sio_put") == 0, touch = strcmp(op, "sio_touch") == 0;
	if (!put && !touch)
		return false;
	const char *pid = json_string_value(json_object_get(q, "pid"));
	bool many = touch && json_is_array(json_object_get(q, "pids"));
	if ((!pid && !many) || (put && (!json_is_string(json_object_get(q, "sid")) ||
					!json_is_object(json_object_get(q, "rooms"))))) {
		hub_reply_error(l, req, 400, "bad_request", "malformed session");
		return true;
	}
	struct sio_job *sj = xcalloc(1, sizeof(*sj));
	sj->job = (struct hub_job){ .run = sio_run, .done = sio_done, .from = l, .req = req };
	sj->q = json_incref(q);
	sj->touch = touch;
	pipeline_job(&sj->job);
	return true;
}
